"""One strategy, a recorded stream: BacktestRunner and strategy_runner on the bus send the same orders.

The stream is the first real Binance spot trades of ../shared/data. strategy_runner runs as its
own process on a real nats-server; the test publishes the trades on ``md.sim.BTC-USDT.trade``.

``Router`` below STANDS IN FOR THE ORDER ROUTER (issue 6): it answers each NewOrder on
``ord.req.sim.<strategy>`` with an OrderAck and a Fill at the price of the next recorded trade, the rule of
the simulated venue for a market order without a book. The test replays in lockstep around
orders: after a trade that makes the backtest send an order, it waits for the runner's order and
for the runner to have taken in the ack and fill before publishing the next trade, as the
backtest's venue does. Everything else is replayed as fast as the bus takes it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tradebus.bus.jetstream import declare_all
from tradebus.proto import (
    Fill,
    NewOrder,
    OrderAck,
    OrderRequest,
    ServiceCommand,
    ServiceStatus,
    Side,
    Trade,
)
from tradebus.proto.subjects import md_subject, order_event_subject, order_request_wildcard, service_subject
from tradebus.strategy import BacktestRunner, SymbolRegistry
from tradebus.strategy.data import default_data_dir, load_trades

from .strategies import Flipper

HERE = Path(__file__).parent
N_TRADES = 1500
EXPLODE_EVERY = 100


def recorded_trades():
    t = load_trades(default_data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz")
    return t.ts_ns[:N_TRADES], t.price[:N_TRADES], t.qty[:N_TRADES], t.is_buy[:N_TRADES]


def backtest(ts, price, qty, is_buy):
    registry = SymbolRegistry()
    btc = registry.add_symbol("sim", "BTC/USDT", tick_size=0.01)
    strategy = Flipper([btc])
    bt = BacktestRunner(registry, fee_rate=0.0)
    bt.set_strategy(strategy)
    stats = bt.run_arrays(ts, price, qty, is_buy)
    return strategy, stats


class Router:
    """Stand-in for the order router: ack + fill each market/close order at the next trade."""

    def __init__(self, bus, prices):
        self.bus = bus
        self.prices = prices
        self.current = -1                 # index of the last trade published
        self.orders: list[tuple[int, str, str, float]] = []
        self.events_sent = 0
        self.arrived = asyncio.Condition()

    async def on_request(self, req, _msg) -> None:
        assert isinstance(req, NewOrder), f"unexpected request {req!r}"
        k = self.current
        self.orders.append((k, str(req.order_type), str(req.side), req.qty))
        fill_price = float(self.prices[k + 1]) if k + 1 < len(self.prices) else float(self.prices[k])
        subject = order_event_subject(req.venue, req.strategy)
        common = dict(venue=req.venue, strategy=req.strategy, symbol=req.symbol,
                      client_order_id=req.client_order_id, ts_init=1)
        await self.bus.publish(subject, OrderAck(exchange_order_id=f"x{len(self.orders)}", side=req.side,
                                                 order_type=req.order_type, qty=req.qty, **common))
        await self.bus.publish(subject, Fill(exchange_order_id=f"x{len(self.orders)}", trade_id=f"t{len(self.orders)}",
                                             side=req.side, price=fill_price, qty=req.qty, leaves_qty=0.0,
                                             cum_qty=req.qty, ts_event=1, **common))
        self.events_sent += 2
        async with self.arrived:
            self.arrived.notify_all()

    async def wait_orders(self, n: int, timeout: float = 20.0) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.orders) >= n), timeout)


async def status(bus) -> ServiceStatus:
    return await bus.request(service_subject("strategy_runner", "status"),
                             ServiceCommand(service="strategy_runner", command="status"), ServiceStatus)


async def wait_status(bus, check, what: str, proc=None, timeout: float = 20.0) -> ServiceStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"strategy_runner exited with {proc.returncode} before: {what}")
        try:
            st = await status(bus)
            if check(st):
                return st
        except Exception:                      # not up yet
            st = None
        if loop.time() > deadline:
            raise AssertionError(f"strategy_runner never reached: {what}; last status {st}")
        await asyncio.sleep(0.01)


def write_config(path: Path) -> Path:
    strategies = str(HERE / "strategies.py")
    config = {"services": {"strategy_runner": {"module": "tradebus.services.strategy_runner", "settings": {
        "status_interval": 0.2,
        "strategies": [
            {"name": "flipper", "class": f"{strategies}:Flipper", "venue": "sim",
             "symbols": [{"symbol": "BTC/USDT", "tick_size": 0.01}]},
            {"name": "exploding", "class": f"{strategies}:Exploding", "venue": "sim",
             "symbols": ["BTC/USDT"], "params": {"every": EXPLODE_EVERY}},
        ]}}}}
    path.write_text(yaml.safe_dump(config))
    return path


async def test_same_orders_in_backtest_and_live(bus, nats_server, tmp_path):
    ts, price, qty, is_buy = recorded_trades()
    strategy, stats = backtest(ts, price, qty, is_buy)
    expected = [(k, kind, side, abs(pos) if kind == "close_position" else 0.01) for k, kind, side, pos in strategy.sent]
    assert len(expected) >= 20 and {e[1] for e in expected} == {"market", "close_position"}
    order_points = {}
    for k, *_ in expected:
        order_points[k] = order_points.get(k, 0) + 1

    await declare_all(bus.js)                  # the ORDERS stream the runner publishes into
    router = Router(bus, price)
    await bus.subscribe(order_request_wildcard("sim"), OrderRequest, router.on_request)
    failures: list[ServiceStatus] = []

    async def on_event(event, _msg):
        failures.append(event)

    await bus.subscribe(service_subject("strategy_runner", "event"), ServiceStatus, on_event)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradebus.services.strategy_runner", "--config", str(write_config(tmp_path / "cfg.yaml")),
         "--nats-url", nats_server.url, "--instance", "live-test"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "TRADEBUS_LOG_LEVEL": "INFO"},
    )
    try:
        await wait_status(bus, lambda st: st.state in ("running", "degraded"), "running", proc)
        subject = md_subject("sim", "BTC/USDT", "trade")
        sent = 0
        for k in range(N_TRADES):
            router.current = k
            await bus.publish(subject, Trade(venue="sim", symbol="BTC/USDT", price=float(price[k]),
                                             qty=float(qty[k]), side=Side.BUY if is_buy[k] else Side.SELL,
                                             trade_id=str(k), ts_event=int(ts[k]), ts_recv=int(ts[k])))
            if k in order_points:
                sent += order_points[k]
                await router.wait_orders(sent)
                events = router.events_sent
                await wait_status(bus, lambda st: st.counters.get("order_events", 0) >= events,
                                  f"the ack and fill of order {sent}")
        final = await wait_status(bus, lambda st: st.counters.get("md_events", 0) >= N_TRADES, "all trades in")
        assert router.orders == expected
        assert final.counters["fills"] == len(expected) == stats["total_fills"]
        # The failing strategy was reported each time and did not stop the other one.
        assert final.counters["strategy_errors"] == N_TRADES // EXPLODE_EVERY
        assert final.state == "degraded" and "exploding raised in on_trade" in final.message
        await wait_status(bus, lambda st: len(failures) >= N_TRADES // EXPLODE_EVERY, "error events")
        assert all(f.state == "degraded" and "RuntimeError: exploding on trade" in f.message for f in failures)
        position = float(np.round(list(stats["positions"].values())[0], 10))
        await wait_status(bus, lambda st: f"flipper: orders={len(expected)} fills={len(expected)}" in st.message
                          and f"BTC/USDT pos={position:g}" in st.message, "the status line")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        log = out.decode(errors="replace")
        print(log[-5000:])                     # shown by pytest when the test fails
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" in log and "RuntimeError: exploding on trade 100" in log
    assert f"summary: flipper BTC/USDT: orders={len(expected)} fills={len(expected)}" in log
