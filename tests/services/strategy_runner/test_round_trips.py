"""The local stack's defect: a spot strategy stopped after its first round trip. The buy's fee is
taken in BTC (0.001 bought, 0.000999 held), the venue trades whole lots of 0.00001: the close used
to ask for 0.000999, the router sent 0.00099, and the runner kept that order open forever (and the
0.000009 left was a position, so a strategy waiting to be flat never was again).

Real parts: a sim_exchange (Binance spot, 0.1% taker fee paid in the bought asset), the order
router trading it through ccxt, a StrategyHost with the strategy, on a real nats-server."""
from __future__ import annotations

import argparse
import asyncio
import logging
import time
from decimal import Decimal
from pathlib import Path

import ccxt.pro as ccxtpro
import msgspec
import pytest

from tradebus.bus.jetstream import declare_all
from tradebus.bus.service import ServiceContext
from tradebus.config import DeploymentConfig
from tradebus.exchanges import make_adapter
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.execution import RiskEngine
from tradebus.proto import Fill, OrderEvent, Trade
from tradebus.proto.subjects import order_event_subject
from tradebus.retry import BackoffSettings
from tradebus.services.order_router.router import OrderRouter, RouterOptions
from tradebus.services.sim_exchange.settings import Account, default_config
from tradebus.services.sim_exchange.testing import running_sim, until
from tradebus.services.strategy_runner.host import StrategyHost
from tradebus.services.strategy_runner.settings import StrategyRunnerSettings

HERE = Path(__file__).parent
VENUE, NAME, LOT = "roundtrip", "roundtrips", 0.00001
KEYS = {"apiKey": "rt-key", "secret": "rt-secret", "enableRateLimit": False, "timeout": 5000}
ROUND_TRIPS = 4


def sim_config():
    config = default_config(speed="0")
    account = Account(api_key="rt-key", secret="rt-secret", spot={"USDT": "100000"}, futures={"USDT": "0"})
    return msgspec.structs.replace(config, accounts=[*config.accounts, account])


def host_for(bus, venue: str = VENUE) -> StrategyHost:
    settings = msgspec.convert({"strategies": [{
        "name": NAME, "class": f"{HERE / 'strategies.py'}:RoundTrips", "venue": venue,
        "symbols": [{"symbol": "BTC/USDT", "tick_size": 0.01, "lot_size": LOT}], "params": {"qty": 0.001}}]},
        StrategyRunnerSettings)
    svc = ServiceContext("strategy_runner", argparse.Namespace(instance="rt"), DeploymentConfig(), bus,
                         logging.getLogger("test"))
    return StrategyHost(svc, settings)


async def test_a_spot_strategy_keeps_trading_round_trips_with_fees_paid_in_btc(bus):
    await declare_all(bus.js)
    async with running_sim(sim_config()) as sim:
        exchange = point_ccxt_at_sim(ccxtpro.binance(KEYS), sim.url)
        router = OrderRouter(bus, VENUE, [make_adapter("binance:spot", exchange)], RiskEngine(),
                             RouterOptions(backoff=BackoffSettings(initial=0.05, cap=0.5)))
        await router.start()
        host = host_for(bus)
        fills: list[Fill] = []

        async def on_event(event, msg):
            if isinstance(event, Fill):
                fills.append(event)
            await host.on_order_event(event, msg)

        sub = await bus.subscribe(order_event_subject(VENUE, NAME), OrderEvent, on_event)
        try:
            await until(router.ready.is_set)
            await host.start()
            strategy = host.runner.strategy(NAME)
            n = 0

            async def tick() -> None:
                nonlocal n
                n += 1
                await host.on_market_data(Trade(venue=VENUE, symbol="BTC/USDT", price=61_838.0, qty=0.01, side="buy",
                                                trade_id=str(n), ts_event=time.time_ns(), ts_recv=time.time_ns()))

            while strategy.closes < ROUND_TRIPS or host.runner.open_orders():
                await tick()
                await asyncio.sleep(0.02)
                assert n < 1000, f"stuck after {strategy.buys} buys, {strategy.closes} closes: {host.status_line()}"
            ctx = host.runner.context(strategy, host.symbols[(VENUE, "BTC/USDT")])
            assert strategy.buys == ROUND_TRIPS and strategy.closes == ROUND_TRIPS
            assert ctx.is_flat() and 0.0 <= ctx.position < LOT
            assert all(r.status == "filled" for r in host.runner.orders.values())
            closes = [f for f in fills if str(f.side) == "sell"]
            assert len(fills) == 2 * ROUND_TRIPS and len(closes) == ROUND_TRIPS
            assert all(f.qty in (0.00099, 0.001) for f in closes)
            # the position is what the account holds: the venue's BTC balance, dust included
            btc = sum(sim.account("rt-key").asset("BTC"), Decimal(0))
            assert abs(float(btc) - ctx.position) < 1e-12
        finally:
            await sub.unsubscribe()
            await router.stop()


def fill_of(coid: str, trade_id: str, venue: str = "longsession") -> Fill:
    return Fill(venue=venue, strategy=NAME, symbol="BTC/USDT", client_order_id=coid, exchange_order_id="x",
                trade_id=trade_id, side="buy", price=60_000.0, qty=0.001, leaves_qty=0.0, cum_qty=0.001, fee=0.06,
                fee_currency="USDT", ts_event=1, ts_init=1)


async def test_a_long_session_forgets_old_orders_and_ignores_late_events_about_them(bus):
    await declare_all(bus.js)
    host = host_for(bus, "longsession")
    host.runner.orders.keep_closed = 2
    await host.start()
    strategy = host.runner.strategy(NAME)
    ctx = host.runner.context(strategy, host.symbols[("longsession", "BTC/USDT")])
    coids = []
    for i in range(5):
        coids.append(host._order_client[strategy.market_buy(0.001)])
        await host.on_order_event(fill_of(coids[-1], f"t{i}"))
    host._forget_closed()
    assert [c in host._client_ids for c in coids] == [False, False, False, True, True]
    assert len(host.runner.orders) == 2 and ctx.position == pytest.approx(0.005)
    await host.on_order_event(fill_of(coids[0], "t0"))   # repeated after it was forgotten: not a new position
    assert ctx.position == pytest.approx(0.005)
    await host.on_order_event(fill_of("roundtrips-oldsession-7", "x7"))   # a previous session's order still counts
    assert ctx.position == pytest.approx(0.006)
