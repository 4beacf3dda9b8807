"""Unmodified ccxt.binance against the sim: market data and every spot order type, checked against
the engine's books, orders and balances."""
from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from .conftest import D, balances, last_price, sweep, top

SYMBOL = "BTC/USDT"


async def test_load_markets_reflects_the_instrument_config(spot, sim):
    assert set(spot.markets) == {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT"}
    btc = spot.market(SYMBOL)
    assert (btc["spot"], btc["active"], btc["id"]) == (True, True, "BTCUSDT")
    assert (btc["precision"]["amount"], btc["precision"]["price"]) == (1e-05, 0.01)
    assert btc["limits"]["amount"]["min"] == 1e-05 and btc["limits"]["cost"]["min"] == 5.0
    perp = spot.market("BTC/USDT:USDT")
    assert (perp["swap"], perp["linear"], perp["settle"], perp["precision"]["price"]) == (True, True, "USDT", 0.1)
    assert perp["limits"]["cost"]["min"] == 100.0
    assert await spot.fetch_time() > 0


async def test_order_book_is_the_recorded_snapshot_then_follows_the_replay(spot, sim):
    book = await spot.fetch_order_book(SYMBOL, 20)
    bids, asks = top(sim, n=20)
    # levels 0 of the real Binance snapshot in shared/data
    assert book["bids"][0] == [61837.63, 3.78826] and book["asks"][0] == [61837.64, 1.54698]
    assert book["bids"] == [[float(p), float(q)] for p, q in bids]
    assert book["asks"] == [[float(p), float(q)] for p, q in asks]
    assert book["nonce"] == sim.engine.books[("spot", "BTCUSDT")].update_id
    assert sim.step(300) == 300
    book = await spot.fetch_order_book(SYMBOL, 5)
    bids, asks = top(sim, n=5)
    assert book["bids"] == [[float(p), float(q)] for p, q in bids] and book["asks"][0][0] == float(asks[0][0])


async def test_trades_and_ohlcv_come_from_the_replay(spot, sim):
    sim.step(200)
    # ccxt orders same-millisecond trades by id text; the venue's order is by id number
    trades = sorted(await spot.fetch_trades(SYMBOL, limit=50), key=lambda t: int(t["id"]))
    engine_trades = list(sim.engine.trades[("spot", "BTCUSDT")])[-50:]
    assert [t["id"] for t in trades] == [str(t.trade_id) for t in engine_trades]
    assert [t["price"] for t in trades] == [float(t.price) for t in engine_trades]
    assert [t["side"] for t in trades] == ["sell" if t.buyer_maker else "buy" for t in engine_trades]
    candles = await spot.fetch_ohlcv(SYMBOL, "1m")
    klines = sim.engine.klines[("spot", "BTCUSDT")]
    assert len(candles) == len(klines) >= 1
    assert candles[-1][4] == float(klines[-1].close) == float(engine_trades[-1].price)
    assert candles[-1][5] == float(klines[-1].volume)
    eth = await spot.fetch_ohlcv("ETH/USDT", "1m", limit=1000)
    # 500 minutes of the real ETHUSDT klines served as history, in minute steps ending now
    assert len(eth) >= 500 and all(b[0] - a[0] == 60000 for a, b in zip(eth, eth[1:]))
    assert eth[0][1:5] == [2528.14, 2530.8, 2527.97, 2528.28]
    hourly = await spot.fetch_ohlcv("ETH/USDT", "1h", limit=3)
    assert all(c[0] % 3_600_000 == 0 for c in hourly)


async def test_market_buy_fills_against_the_book(spot, sim):
    before = balances(sim)
    expected = sweep(top(sim)[1], D("0.5"))
    order = await spot.create_order(SYMBOL, "market", "buy", 0.5)
    cost = sum(p * q for p, q in expected)
    assert (order["status"], order["filled"], order["type"]) == ("closed", 0.5, "market")
    assert order["cost"] == pytest.approx(float(cost)) and len(order["trades"]) == len(expected)
    fee = D("0.5") * D("0.001")
    after = balances(sim)
    assert after["BTC"][0] == before["BTC"][0] + D("0.5") - fee
    assert after["USDT"][0] == before["USDT"][0] - sum(p * q for p, q in expected).quantize(D("1e-8"))
    assert order["fee"] == {"currency": "BTC", "cost": float(fee)}


async def test_market_buy_by_cost_uses_quote_order_qty(spot, sim):
    before = balances(sim)
    order = await spot.create_market_buy_order_with_cost(SYMBOL, 100)
    assert order["status"] == "closed" and 0 < order["cost"] <= 100
    engine_order = sim.account().orders[("spot", int(order["id"]))]
    assert engine_order.quote_qty == D(100) and engine_order.cum_quote == D(str(order["info"]["cummulativeQuoteQty"]))
    assert balances(sim)["USDT"][0] == before["USDT"][0] - engine_order.cum_quote


async def test_limit_gtc_rests_locks_funds_and_cancels(spot, sim):
    before = balances(sim)
    bid = float(top(sim)[0][0][0]) - 100
    order = await spot.create_order(SYMBOL, "limit", "buy", 0.01, bid)
    assert (order["status"], order["price"], order["timeInForce"]) == ("open", bid, "GTC")
    locked = (D(str(bid)) * D("0.01")).quantize(D("1e-8"))
    assert balances(sim)["USDT"] == (before["USDT"][0] - locked, before["USDT"][1] + locked)
    assert [o["id"] for o in await spot.fetch_open_orders(SYMBOL)] == [order["id"]]
    assert (await spot.fetch_order(order["id"], SYMBOL))["status"] == "open"
    assert top(sim)[0] == sorted(top(sim)[0], reverse=True)
    cancelled = await spot.cancel_order(order["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert balances(sim)["USDT"] == before["USDT"] and not sim.account().open["spot"]


async def test_limit_ioc_and_fok(mover_spot, sim):
    best, size = top(sim)[1][0]
    ioc = await mover_spot.create_order(SYMBOL, "limit", "buy", float(size + D("0.5")), float(best),
                                        {"timeInForce": "IOC"})
    assert (ioc["status"], ioc["filled"]) == ("expired", float(size))
    before = balances(sim, "sim-key-2")
    best, size = top(sim)[1][0]
    fok = await mover_spot.create_order(SYMBOL, "limit", "buy", float(size + D("0.5")), float(best),
                                        {"timeInForce": "FOK"})
    assert (fok["status"], fok["filled"]) == ("expired", 0.0)
    assert sim.account("sim-key-2").orders[("spot", int(fok["id"]))].status == "EXPIRED"
    assert balances(sim, "sim-key-2") == before and top(sim)[1][0] == (best, size)


async def test_post_only_limit_maker(spot, sim):
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await spot.create_order(SYMBOL, "limit", "buy", 0.01, float(top(sim)[1][0][0]), {"postOnly": True})
    order = await spot.create_order(SYMBOL, "limit", "buy", 0.01, float(top(sim)[0][0][0]), {"postOnly": True})
    assert order["postOnly"] is True and order["info"]["type"] == "LIMIT_MAKER" and order["status"] == "open"
    engine_order = sim.account().orders[("spot", int(order["id"]))]
    assert engine_order.queue_ahead == top(sim)[0][0][1] - D("0.01")
    await spot.cancel_order(order["id"], SYMBOL)


async def test_stop_and_take_profit_orders_trigger_on_trades(spot, mover_spot, sim):
    last = last_price(sim)
    stop_loss = await spot.create_order(SYMBOL, "market", "sell", 0.001, None, {"stopLossPrice": float(last - 2)})
    stop_limit = await spot.create_order(SYMBOL, "limit", "sell", 0.001, float(last - 50),
                                         {"stopLossPrice": float(last - 2)})
    take_profit = await spot.create_order(SYMBOL, "market", "buy", 0.001, None,
                                          {"takeProfitPrice": float(last - 2)})
    tp_limit = await spot.create_order(SYMBOL, "limit", "buy", 0.001, float(last + 5),
                                       {"takeProfitPrice": float(last - 2)})
    types = [o["info"]["type"] for o in (stop_loss, stop_limit, take_profit, tp_limit)]
    assert types == ["STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
    assert all(o["status"] == "open" and o["triggerPrice"] == float(last - 2) for o in
               (stop_loss, stop_limit, take_profit, tp_limit))
    assert len(sim.engine.stops[("spot", "BTCUSDT")]) == 4
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # "Stop price would trigger immediately."
        await spot.create_order(SYMBOL, "market", "sell", 0.001, None, {"stopLossPrice": float(last + 5)})
    # another account sells through the bids: the last price falls below the triggers
    printed = len(sim.engine.trades[("spot", "BTCUSDT")])
    sweep_order = await mover_spot.create_order(SYMBOL, "market", "sell", 20)
    lowest = min(t.price for t in list(sim.engine.trades[("spot", "BTCUSDT")])[printed:])
    assert sweep_order["filled"] == 20 and lowest <= last - 2
    assert not sim.engine.stops[("spot", "BTCUSDT")]
    results = [await spot.fetch_order(o["id"], SYMBOL) for o in (stop_loss, stop_limit, take_profit, tp_limit)]
    assert [r["status"] for r in results] == ["closed", "closed", "closed", "closed"]
    assert all(r["filled"] == 0.001 for r in results)


async def test_edit_order_uses_cancel_replace(spot, sim):
    price = float(top(sim)[0][-1][0])
    order = await spot.create_order(SYMBOL, "limit", "buy", 0.01, price)
    edited = await spot.edit_order(order["id"], SYMBOL, "limit", "buy", 0.02, price - 1)
    assert edited["id"] != order["id"] and (edited["amount"], edited["price"]) == (0.02, price - 1)
    acct = sim.account()
    assert acct.orders[("spot", int(order["id"]))].status == "CANCELED"
    assert [o.order_id for o in acct.open["spot"].values()] == [int(edited["id"])]
    # the replaced order is gone: -2022 with the -2011 inside, BadResponse in ccxt's spot map
    with pytest.raises(ccxt.BadResponse, match='"cancelResponse":{"code":-2011'):
        await spot.edit_order(order["id"], SYMBOL, "limit", "buy", 0.02, price - 2)
    assert [o.order_id for o in acct.open["spot"].values()] == [int(edited["id"])]


async def test_cancel_all_orders(spot, sim):
    price = float(top(sim)[0][-1][0])
    await spot.create_order(SYMBOL, "limit", "buy", 0.01, price)
    await spot.create_order(SYMBOL, "limit", "sell", 0.01, float(top(sim)[1][-1][0]))
    open_before = len(sim.account().open["spot"])
    cancelled = await spot.cancel_all_orders(SYMBOL)
    assert len(cancelled) == open_before >= 2 and {o["status"] for o in cancelled} == {"canceled"}
    assert not sim.account().open["spot"] and await spot.fetch_open_orders(SYMBOL) == []
    assert balances(sim)["USDT"][1] == 0 and balances(sim)["BTC"][1] == 0


async def test_balance_and_my_trades_match_the_engine(spot, sim):
    balance = await spot.fetch_balance()
    for asset, (free, locked) in balances(sim).items():
        assert balance[asset]["free"] == float(free) and balance[asset]["used"] == float(locked)
    mine = await spot.fetch_my_trades(SYMBOL, limit=1000)
    fills = sim.account().fills["spot"]
    assert [t["id"] for t in mine] == [str(f.trade_id) for f in fills if f.order.inst.symbol == "BTCUSDT"]
    assert mine[0]["order"] == str(fills[0].order.order_id) and mine[0]["fee"]["cost"] == float(fills[0].commission)
    all_orders = await spot.fetch_orders(SYMBOL, limit=1000)
    assert len(all_orders) == len([o for (m, _), o in sim.account().orders.items() if m == "spot"
                                   and o.inst.symbol == "BTCUSDT"])


async def test_eth_market_is_synthetic_around_the_kline_price(spot, sim):
    book = await spot.fetch_order_book("ETH/USDT", 5)
    assert 2000 < book["bids"][0][0] < book["asks"][0][0] < 3000
    sim.step(500)
    assert Decimal(2000) < last_price(sim, "ETHUSDT") < Decimal(3000)
    order = await spot.create_order("ETH/USDT", "market", "buy", 0.01)
    assert order["status"] == "closed" and order["filled"] == 0.01


async def test_test_orders_are_validated_but_not_placed(spot, sim):
    before = (len(sim.account().orders), balances(sim))
    await spot.create_order(SYMBOL, "limit", "buy", 0.01, 60000, {"test": True})
    with pytest.raises(ccxt.BadRequest, match="MIN_NOTIONAL"):
        await spot.create_order(SYMBOL, "limit", "buy", 0.00002, 60000, {"test": True})
    assert (len(sim.account().orders), balances(sim)) == before
