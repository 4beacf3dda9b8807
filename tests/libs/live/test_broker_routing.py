"""FLOX's routing table on a ccxt venue with no YAML file (MEXC spot): every row goes out with
ccxt's unified parameters. The exchange is real ccxt; only its HTTP ``fetch`` is replaced, to
capture the outgoing request and answer like the venue, so ccxt's own order code runs."""
from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.pro as ccxtpro
import pytest

from tradebus.exchanges import adapter_keys, load_config
from tradebus.execution import RiskEngine, RiskLimits
from tradebus.live import ADAPTERS_BY_EXCHANGE, CcxtBroker, UnsupportedOrderType
from tradebus.strategy import OrderError, Strategy

MARKET = {
    "id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "settle": None, "baseId": "BTC",
    "quoteId": "USDT", "settleId": None, "type": "spot", "spot": True, "swap": False, "future": False,
    "option": False, "margin": False, "contract": False, "linear": None, "inverse": None, "contractSize": None,
    "active": True, "precision": {"amount": 0.0001, "price": 0.01},
    "limits": {"amount": {"min": 0.0001}, "price": {}, "cost": {}, "leverage": {}}, "info": {},
    "taker": 0.001, "maker": 0.001, "created": None, "expiry": None, "expiryDatetime": None, "strike": None,
    "optionType": None,
}


class Captured:
    """A MEXC exchange whose HTTP layer records each request and answers with an order."""

    def __init__(self):
        self.exchange = ccxtpro.mexc({"apiKey": "k", "secret": "s", "enableRateLimit": False})
        self.exchange.set_markets([MARKET])
        self.requests: list[tuple[str, str, dict]] = []
        self.next_id = 100
        self.exchange.fetch = self.fetch

    async def fetch(self, url, method="GET", headers=None, body=None):
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        query.update(dict(parse_qsl(body or "")))
        self.requests.append((method, parts.path, query))
        self.next_id += 1
        return {"symbol": query.get("symbol", "BTCUSDT"), "orderId": str(query.get("orderId") or self.next_id),
                "clientOrderId": query.get("newClientOrderId") or query.get("origClientOrderId"),
                "price": query.get("price", "0"), "origQty": query.get("quantity", "0"), "executedQty": "0",
                "type": query.get("type", "LIMIT"), "side": query.get("side", "BUY"), "status": "NEW",
                "transactTime": 1_700_000_000_000}

    def orders(self) -> list[dict]:
        return [q for m, path, q in self.requests if m == "POST" and path.endswith("/order")]


class Hands(Strategy):
    def __init__(self, symbols):
        super().__init__(symbols)
        self.errors = []

    def on_error(self, symbol, error):
        self.errors.append((symbol, error))


async def started(cls=CcxtBroker, **kwargs):
    """A broker of ``cls`` on a captured MEXC, with BTC/USDT and a started Hands strategy."""
    venue = Captured()
    broker = cls("mexc", exchange=venue.exchange, **kwargs)   # no async with: ready on first use
    btc = await broker.add_symbol("BTC/USDT")
    hands = broker.add_strategy(Hands([btc]))
    broker.runner.start()
    return venue, broker, btc, hands


async def close(venue, broker):
    await broker.close()
    await venue.exchange.close()


async def until(predicate, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_mexc_has_no_venue_yaml():
    assert "mexc" not in ADAPTERS_BY_EXCHANGE
    assert all(load_config(key).ccxt_id != "mexc" for key in adapter_keys())


async def test_every_routing_row_goes_out_with_ccxts_unified_params():
    venue, broker, btc, hands = await started()
    assert broker.live

    async def sent(call, n=1):
        before = len(venue.requests)
        result = call()
        await until(lambda: len(venue.requests) >= before + n)
        return result, venue.requests[before:]

    _, [(_, _, q)] = await sent(lambda: hands.market_sell(0.01))
    assert (q["type"], q["side"], q["quantity"]) == ("MARKET", "SELL", "0.01")
    limit_id, [(_, _, q)] = await sent(lambda: hands.limit_buy(50000.0, 0.02))
    assert (q["type"], q["side"], q["quantity"], q["price"]) == ("LIMIT", "BUY", "0.02", "50000")
    _, [(_, _, q)] = await sent(lambda: hands.stop_market("sell", 49000.0, 0.01))
    assert (q["type"], float(q["stopPrice"])) == ("STOP_MARKET", 49000)
    _, [(_, _, q)] = await sent(lambda: hands.stop_limit("sell", 49000.0, 48900.0, 0.01))
    assert (q["type"], float(q["stopPrice"]), float(q["price"])) == ("STOP_LIMIT", 49000, 48900)
    _, [(_, _, q)] = await sent(lambda: hands.take_profit_market("sell", 52000.0, 0.01))
    assert (q["type"], float(q["stopPrice"])) == ("TAKE_PROFIT_MARKET", 52000)
    _, [(_, _, q)] = await sent(lambda: hands.take_profit_limit("sell", 52000.0, 52100.0, 0.01))
    assert (q["type"], float(q["stopPrice"]), float(q["price"])) == ("TAKE_PROFIT_LIMIT", 52000, 52100)
    _, [(_, _, q)] = await sent(lambda: hands.trailing_stop("sell", 25.0, 0.01))
    assert (q["type"], float(q["trailingDelta"])) == ("TRAILING_STOP_MARKET", 25.0)
    _, [(_, _, q)] = await sent(lambda: hands.trailing_stop_percent("sell", 50.0, 0.01))
    assert (q["type"], float(q["callbackRate"])) == ("TRAILING_STOP_MARKET", 0.5)   # bps / 100
    ctx = broker.runner.context(hands, btc)
    ctx._set_position(0.03, 50000.0)
    _, [(_, _, q)] = await sent(lambda: hands.close_position())
    assert (q["type"], q["side"], q["quantity"], q["reduceOnly"]) == ("MARKET", "SELL", "0.03", "true")
    # every order carries our client order id
    assert all(q["newClientOrderId"].startswith("tb") for q in venue.orders())
    # modify: edit_order on the tracked venue id (MEXC spot edits as cancel + new order)
    exchange_id = broker._exchange_id(limit_id)
    _, edit = await sent(lambda: hands.modify(limit_id, price=50500.0, qty=0.03), n=2)
    assert edit[0][0] == "DELETE" and edit[0][2]["orderId"] == exchange_id
    assert (edit[1][2]["type"], edit[1][2]["price"], edit[1][2]["quantity"]) == ("LIMIT", "50500", "0.03")
    # cancel: cancel_order with the tracked id
    _, [(method, _, q)] = await sent(lambda: hands.cancel(limit_id))
    assert method == "DELETE" and q["orderId"] == exchange_id
    assert not hands.errors
    await close(venue, broker)


async def test_cancel_all_cancels_every_tracked_order_of_the_symbol():
    venue, broker, btc, hands = await started()
    ids = [hands.limit_buy(40000.0 + i, 0.01) for i in range(3)]
    await until(lambda: all(broker._exchange_id(i) for i in ids))
    before = len(venue.requests)
    hands.cancel_all()
    await until(lambda: len(venue.requests) == before + 3)
    cancelled = {q["orderId"] for m, _, q in venue.requests[before:] if m == "DELETE"}
    assert cancelled == {broker._exchange_id(i) for i in ids}
    await close(venue, broker)


class BybitBroker(CcxtBroker):   # FLOX's subclassing example, as written there
    async def _place_stop_market(self, sym, side, sig):
        await self.exchange.create_order(
            sym, "stop_market", side, self._qty(sig), None,
            {"stopPrice": self._trigger(sig), "triggerBy": "MarkPrice"},
        )


async def test_place_override_example_refines_its_row_only():
    venue, broker, btc, hands = await started(BybitBroker)
    hands.stop_market("sell", 49000.12, 0.0123)
    await until(lambda: len(venue.orders()) == 1)
    q = venue.orders()[0]
    assert (q["type"], float(q["stopPrice"]), q["triggerBy"], float(q["quantity"])) == ("STOP_MARKET", 49000.12,
                                                                                        "MarkPrice", 0.0123)
    hands.take_profit_market("sell", 52000.0, 0.01)      # not overridden: the default row
    await until(lambda: len(venue.orders()) == 2)
    assert "triggerBy" not in venue.orders()[1] and venue.orders()[1]["type"] == "TAKE_PROFIT_MARKET"
    await close(venue, broker)


class NoTrailing(CcxtBroker):
    async def _place_trailing(self, sym, side, sig):
        raise ccxt.NotSupported(f"{self.exchange_id} has no trailing stops")


async def test_a_row_the_venue_cannot_do_reaches_on_error_as_unsupported_and_nothing_is_sent():
    errors = []
    venue, broker, btc, hands = await started(NoTrailing, on_error=lambda sym, exc: errors.append((sym, exc)))
    oid = hands.trailing_stop("sell", 25.0, 0.01)
    await until(lambda: hands.errors and errors)
    assert not venue.requests
    symbol, error = hands.errors[0]
    assert symbol == "BTC/USDT" and isinstance(error, UnsupportedOrderType) and error.order_id == oid
    assert errors[0][0] == "BTC/USDT" and isinstance(errors[0][1], OrderError)
    assert broker.runner.orders[oid].status == "rejected"
    await close(venue, broker)


async def test_unknown_symbol_is_a_value_error_naming_it():
    venue = Captured()
    broker = CcxtBroker("mexc", exchange=venue.exchange)
    with pytest.raises(ValueError, match="DOGE/EUR"):
        await broker.add_symbol("DOGE/EUR")
    await close(venue, broker)


async def test_pre_trade_risk_checks_refuse_before_anything_is_sent():
    risk = RiskEngine({"*": RiskLimits(max_order_qty=0.05)})
    venue, broker, btc, hands = await started(risk=risk)
    big = hands.market_buy(0.06)
    await until(lambda: hands.errors)
    assert not venue.requests and broker.runner.orders[big].status == "rejected"
    assert hands.errors[0][1].code == "risk_limit" and "max_order_qty" in str(hands.errors[0][1])
    hands.market_buy(0.05)
    await until(lambda: len(venue.orders()) == 1)
    await close(venue, broker)


async def test_kill_switch_cancels_open_orders_and_refuses_new_ones_until_released():
    venue, broker, btc, hands = await started()
    resting = hands.limit_buy(40000.0, 0.01)
    await until(lambda: broker._exchange_id(resting))
    assert await broker.kill(hands.name) == 1
    assert venue.requests[-1][0] == "DELETE" and venue.requests[-1][2]["orderId"] == broker._exchange_id(resting)
    sent = len(venue.orders())
    refused = hands.market_buy(0.01)
    await until(lambda: hands.errors)
    assert hands.errors[0][1].code == "kill_switch" and broker.runner.orders[refused].status == "rejected"
    assert len(venue.orders()) == sent
    broker.release(hands.name)
    hands.market_buy(0.01)
    await until(lambda: len(venue.orders()) == sent + 1)
    await close(venue, broker)
