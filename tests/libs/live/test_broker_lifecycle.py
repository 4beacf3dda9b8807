"""CcxtBroker against sim_exchange: mode by credentials, use without ``async with``, FLOX's
lifecycle order and symbol strings, reconcile errors, stream errors with backoff reset, book depth,
and two brokers on two venues at once."""
from __future__ import annotations

import asyncio
import logging
import re

import ccxt
import ccxt.pro as ccxtpro
import pytest
import pytest_asyncio

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.live import CcxtBroker
from tradebus.services.sim_exchange.testing import until
from tradebus.strategy import Strategy

from .venue import open_perp_position, sim_with_account

KEYS = {"apiKey": "life-key", "secret": "life-secret", "enableRateLimit": False}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with sim_with_account("life-key", "life-secret") as venue:
        yield venue


def spot(sim):
    return point_ccxt_at_sim(ccxtpro.binance(KEYS), sim.url)


def perp(sim):
    return point_ccxt_at_sim(ccxtpro.binanceusdm(KEYS), sim.url)


class Journal(Strategy):
    """Writes down every callback; buys once on the first trade when ``buy``."""

    def __init__(self, symbols, buy=0.0):
        super().__init__(symbols)
        self.events, self.errors, self.updates, self.trades, self.buy = [], [], [], 0, buy

    def on_start(self):
        self.events.append(("start",))

    def on_initial_position(self, symbol, qty, avg_price):
        self.events.append(("initial", symbol, qty))

    def on_trade(self, ctx, trade):
        self.trades += 1
        if self.trades == 1:
            self.events.append(("trade", trade.symbol.name))
            if self.buy:
                self.market_buy(self.buy)

    def on_order_update(self, symbol, status, filled, avg_price):
        self.updates.append((symbol, status, filled))

    def on_error(self, symbol, error):
        self.errors.append((symbol, error))


async def stop(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_orders_go_out_when_credentials_are_given(caplog):
    assert CcxtBroker("binance", api_key="k", secret="s").live
    assert CcxtBroker("binance", api_key="k", secret="s", dry_run=True).dry_run
    assert CcxtBroker("binance").dry_run                       # public market data only
    assert CcxtBroker("binance", dry_run=False).dry_run        # nothing to sign orders with
    assert CcxtBroker("binance", exchange=ccxtpro.binance(KEYS)).live
    with pytest.raises(ValueError, match="contradicts"):
        CcxtBroker("binance", api_key="k", secret="s", dry_run=True, live=True)


async def test_one_log_line_states_the_mode(caplog):
    caplog.set_level(logging.INFO, logger="tradebus.live")
    keys = dict(api_key="key-4711", secret="secret-0815")
    for kwargs, mode in ((keys, "LIVE"), (dict(keys, dry_run=True), "DRY RUN (dry_run=True)"),
                         ({}, "DRY RUN: no credentials")):
        caplog.clear()
        broker = CcxtBroker("binance", **kwargs)
        async with broker:
            broker.adapter_for("BTC/USDT")  # second use: no second line
        lines = [r.getMessage() for r in caplog.records if r.name == "tradebus.live"]
        assert len(lines) == 1 and mode in lines[0]
        assert "4711" not in caplog.text and "0815" not in caplog.text    # no secret logged


async def test_without_async_with_orders_reach_the_venue_and_the_exchange_stays_open(sim):
    exchange = spot(sim)
    broker = CcxtBroker("binance", exchange=exchange, retry_initial_delay=0.05)
    btc = await broker.add_symbol("BTC/USDT")
    journal = broker.add_strategy(Journal([btc], buy=0.001))
    before = len(sim.account("life-key").orders)
    task = asyncio.ensure_future(broker.run(streams=("trades", "orders")))
    await until(lambda: any(s == "filled" for _, s, _ in journal.updates), step=lambda: sim.step(3))
    assert len(sim.account("life-key").orders) == before + 1
    assert journal.updates[-1][0] == "BTC/USDT"            # FLOX: the ccxt symbol string
    await stop(task)
    await broker.close()
    assert exchange.session is not None and not exchange.session.closed   # the caller's to close
    await exchange.close()


async def test_lifecycle_runner_first_then_initial_positions_then_streams(sim):
    await open_perp_position(sim.url, KEYS, 0.02)
    async with CcxtBroker("binanceusdm", exchange=perp(sim), dry_run=True, retry_initial_delay=0.05) as broker:
        sym = await broker.add_symbol("BTC/USDT:USDT")
        journal = broker.add_strategy(Journal([sym]))
        task = asyncio.ensure_future(broker.run(streams=("trades",)))
        await until(lambda: journal.trades >= 1, step=lambda: sim.step(3))
        await stop(task)
    await broker.exchange.close()
    kinds = [e[0] for e in journal.events]
    assert kinds[:3] == ["start", "initial", "trade"]
    _, symbol, qty = journal.events[1]
    assert type(symbol) is str and symbol == "BTC/USDT:USDT" and qty == pytest.approx(0.02)


async def test_spot_positions_not_supported_is_no_error(sim):
    errors = []
    async with CcxtBroker("binance", exchange=spot(sim), on_error=lambda s, e: errors.append(e),
                          retry_initial_delay=0.05) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        journal = broker.add_strategy(Journal([btc]))
        task = asyncio.ensure_future(broker.run(streams=("trades",)))
        await until(lambda: journal.trades >= 1, step=lambda: sim.step(3))
        await stop(task)
        assert broker.balance.get("BTC") is not None      # fetch_balance went through
    await broker.exchange.close()
    assert not errors and not journal.errors and not any(e[0] == "initial" for e in journal.events)


async def test_a_network_error_while_reconciling_reaches_on_error_and_run_goes_on(sim):
    errors = []
    async with CcxtBroker("binance", exchange=spot(sim), on_error=lambda s, e: errors.append((s, e)),
                          retry_initial_delay=0.05) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        journal = broker.add_strategy(Journal([btc]))
        sim.set_faults(error_rate=1.0)              # every REST request: 503
        try:
            task = asyncio.ensure_future(broker.run(streams=("trades",)))
            await until(lambda: errors)
        finally:
            sim.set_faults(error_rate=0.0)
        await until(lambda: journal.trades >= 3, step=lambda: sim.step(3))   # streams run
        assert not task.done()
        await stop(task)
    await broker.exchange.close()
    assert errors[0][0] is None and isinstance(errors[0][1], ccxt.NetworkError)
    assert journal.errors and journal.errors[0][0] is None and isinstance(journal.errors[0][1], ccxt.NetworkError)


async def test_stream_errors_reach_on_error_and_each_good_message_resets_the_backoff(sim, caplog):
    caplog.set_level(logging.WARNING, logger="tradebus.live")
    errors = []
    async with CcxtBroker("binance", exchange=spot(sim), on_error=lambda s, e: errors.append((s, e)),
                          retry_initial_delay=0.02, retry_multiplier=5.0, retry_max_delay=10.0) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        journal = broker.add_strategy(Journal([btc]))
        sim.set_faults(ws_drop_after_messages=2)
        try:
            task = asyncio.ensure_future(broker.run(streams=("trades",), reconcile=False))
            await until(lambda: len(errors) >= 3, step=lambda: sim.step(1), timeout=30)
        finally:
            sim.set_faults(ws_drop_after_messages=0)
        trades = journal.trades
        await until(lambda: journal.trades > trades, step=lambda: sim.step(3))   # run went on
        await stop(task)
    await broker.exchange.close()
    delays = [float(m) for m in re.findall(r"trades stream of BTC/USDT failed .*retrying in ([0-9.e-]+)s", caplog.text)]
    assert len(delays) >= 3 and all(d == pytest.approx(0.02) for d in delays)   # never 0.1, 0.5: reset
    assert all(s == "BTC/USDT" and isinstance(e, ccxt.NetworkError) for s, e in errors)
    assert journal.errors and journal.errors[0][0] == "BTC/USDT"


async def test_book_depth_reaches_watch_order_book(sim):
    exchange = spot(sim)
    asked = []
    fetch = exchange.fetch

    async def spy(url, method="GET", headers=None, body=None):
        if "/depth" in url:
            asked.append(url)
        return await fetch(url, method, headers, body)
    exchange.fetch = spy
    async with CcxtBroker("binance", exchange=exchange, book_depth=5, retry_initial_delay=0.05) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        books = []

        class Books(Strategy):
            def on_book_update(self, ctx):
                books.append(ctx.book)
        broker.add_strategy(Books([btc]))
        task = asyncio.ensure_future(broker.run(streams=("book",), reconcile=False))
        await until(lambda: asked and books, step=lambda: sim.step(3))
        await stop(task)
    await exchange.close()
    assert all("limit=5" in url for url in asked)


def test_the_venue_yaml_refines_the_book_depth_asked():
    assert CcxtBroker("bybit", book_depth=20).book_limit("BTC/USDT:USDT") == 50     # bybit refuses 20
    assert CcxtBroker("okx", book_depth=20).book_limit("BTC/USDT:USDT") == 400
    assert CcxtBroker("okx", book_depth=5).book_limit("BTC/USDT:USDT") == 5
    assert CcxtBroker("binance", book_depth=20).book_limit("BTC/USDT") == 20
    assert CcxtBroker("binance", book_depth=7000).book_limit("BTC/USDT") == 5000   # the venue's largest
    assert CcxtBroker("mexc", book_depth=20, sandbox=False).book_limit("BTC/USDT") == 20   # no YAML: as asked


async def test_two_brokers_on_two_venues_at_once(sim):
    async with CcxtBroker("binance", exchange=spot(sim), retry_initial_delay=0.05) as a, \
            CcxtBroker("binanceusdm", exchange=perp(sim), retry_initial_delay=0.05) as b:
        btc = await a.add_symbol("BTC/USDT")
        perp_btc = await b.add_symbol("BTC/USDT:USDT")
        assert int(btc) == int(perp_btc) == 1            # ids are scoped to their broker
        on_spot = a.add_strategy(Journal([btc], buy=0.001))
        on_perp = b.add_strategy(Journal([perp_btc], buy=0.002))
        acct = sim.account("life-key")
        spot_before, perp_before = len(acct.fills["spot"]), len(acct.fills["usdm"])
        tasks = [asyncio.ensure_future(a.run(streams=("trades", "orders"))),
                 asyncio.ensure_future(b.run(streams=("trades", "orders")))]
        await until(lambda: any(s == "filled" for _, s, _ in on_spot.updates)
                    and any(s == "filled" for _, s, _ in on_perp.updates), step=lambda: sim.step(3))
        for task in tasks:
            await stop(task)
        bought = [f for f in acct.fills["spot"][spot_before:] if f.order.side == "BUY"]
        held = sum(float(f.qty - (f.commission if f.commission_asset == "BTC" else 0)) for f in bought)
        assert a.runner.context(on_spot, btc).position == pytest.approx(held) and 0.0009 < held < 0.001  # net of fee
        held = sum(e[2] for e in on_perp.events if e[0] == "initial")   # earlier tests' perp position
        assert b.runner.context(on_perp, perp_btc).position == pytest.approx(held + 0.002)
        assert {u[0] for u in on_spot.updates} == {"BTC/USDT"} and {u[0] for u in on_perp.updates} == {"BTC/USDT:USDT"}
        assert len(acct.fills["spot"]) > spot_before and len(acct.fills["usdm"]) > perp_before
    await a.exchange.close()
    await b.exchange.close()
