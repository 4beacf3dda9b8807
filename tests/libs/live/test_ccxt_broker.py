"""CcxtBroker against sim_exchange: lifecycle, routing through the adapters, fills back into the
runner, reconciliation, unsupported order types, dry run and argument checks."""
from __future__ import annotations

import asyncio

import ccxt.pro as ccxtpro
import pytest
import pytest_asyncio

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.live import CcxtBroker, UnsupportedOrderType
from tradebus.strategy import OrderError, Strategy

from .venue import open_perp_position, sim_with_account

KEYS = {"apiKey": "broker-key", "secret": "broker-secret", "enableRateLimit": False}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with sim_with_account("broker-key", "broker-secret") as venue:
        yield venue


async def until(predicate, step=None, timeout=10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        if step:
            step()
        await asyncio.sleep(0.01)


class Probe(Strategy):
    """On the first trade: a market buy, a far limit sell, and a trailing stop (ccxt's unified
    trailingDelta, which Binance spot refuses)."""

    def __init__(self, symbols):
        super().__init__(symbols)
        self.updates, self.errors, self.initial, self.trades = [], [], [], 0
        self.limit_id = self.trailing_id = None

    def on_trade(self, ctx, trade):
        self.trades += 1
        if self.trades == 1:
            self.market_buy(0.001)
            self.limit_id = self.limit_sell(round(trade.price * 1.2, 1), 0.001)
            self.trailing_id = self.trailing_stop("sell", 50.0, 0.001)

    def on_order_update(self, symbol, status, filled, avg_price, order=None):
        self.updates.append((status, filled, avg_price))

    def on_error(self, symbol, error):
        self.errors.append(error)

    def on_initial_position(self, symbol, qty, avg_price):  # FLOX: the ccxt symbol string
        self.initial.append((symbol, qty, avg_price))


def test_retry_settings_are_checked():
    for bad in (dict(retry_initial_delay=0), dict(retry_initial_delay=-1), dict(retry_multiplier=0.5),
                dict(retry_max_delay=0), dict(retry_initial_delay=5, retry_max_delay=1), dict(book_depth=0)):
        with pytest.raises(ValueError):
            CcxtBroker("binance", **bad)


async def test_broker_trades_the_sim_through_the_routing_table(sim):
    exchange = point_ccxt_at_sim(ccxtpro.binance(KEYS), sim.url)
    async with CcxtBroker("binance", exchange=exchange, live=True, retry_initial_delay=0.05) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        assert btc.tick_size == pytest.approx(0.01)
        probe = broker.add_strategy(Probe([btc]))
        task = asyncio.ensure_future(broker.run(streams=("trades", "book", "orders")))
        await until(lambda: any(s == "filled" for s, _, _ in probe.updates), step=lambda: sim.step(3))
        # the three orders go out concurrently: the market one can fill before the limit reaches the
        # venue, so wait for each one's outcome (the limit acked, the trailing stop refused) first
        await until(lambda: broker.runner.orders[probe.limit_id].exchange_order_id)
        # issue 13: routed with ccxt's unified params (FLOX), refused by ccxt for spot -> on_error
        await until(lambda: any(isinstance(e, OrderError) and e.order_id == probe.trailing_id for e in probe.errors))
        acct = sim.account("broker-key")
        sent = sorted(o.type for o in acct.orders.values())
        assert sent == ["LIMIT", "MARKET"]  # the trailing stop never left the process
        assert not any(isinstance(e, UnsupportedOrderType) for e in probe.errors)
        filled = [u for u in probe.updates if u[0] == "filled"][0]
        assert filled[1] == pytest.approx(0.001) and filled[2] > 0
        ctx = broker.runner.context(probe, btc)
        # issue 12: the spot buy's fee is charged in BTC, so the position holds what the account got
        fee = sum(float(f.commission) for f in acct.fills["spot"] if f.commission_asset == "BTC")
        assert ctx.position == pytest.approx(0.001 - fee) and fee > 0
        # cancel goes out with the tracked id; the order stream reports it back
        probe.cancel(probe.limit_id)
        await until(lambda: any(s == "cancelled" for s, _, _ in probe.updates), step=lambda: sim.step(1))
        assert not acct.open["spot"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # the exchange was passed in: the caller still owns it and it stays usable (issue 12)
    assert broker.exchange is exchange
    assert exchange.clients and exchange.session is not None and not exchange.session.closed
    assert (await exchange.fetch_ticker("BTC/USDT"))["last"] > 0
    await exchange.close()


async def test_reconcile_reports_initial_positions_and_dry_run_sends_nothing(sim):
    await open_perp_position(sim.url, KEYS, 0.01)
    exchange = point_ccxt_at_sim(ccxtpro.binanceusdm(KEYS), sim.url)
    before = len(sim.account("broker-key").orders)
    async with CcxtBroker("binanceusdm", exchange=exchange, dry_run=True, retry_initial_delay=0.05) as broker:
        assert broker.live is False
        perp = await broker.add_symbol("BTC/USDT:USDT")
        probe = broker.add_strategy(Probe([perp]))
        task = asyncio.ensure_future(broker.run(streams=("trades",)))
        await until(lambda: probe.trades >= 1 and len(broker.dry_run_log) >= 2, step=lambda: sim.step(3))
        assert probe.initial and probe.initial[0][0] == "BTC/USDT:USDT" and probe.initial[0][1] == pytest.approx(0.01)
        assert [k for k, _ in broker.dry_run_log][:2] == ["market", "limit"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await exchange.close()
    assert len(sim.account("broker-key").orders) == before
