"""Every panel of the services dashboard has data when a real Prometheus scrapes the local stack.

`tradebus up` runs the packaged stack (sim venue, market data, the sample strategy, the router,
one backtest worker) on free ports; Prometheus reads the targets file `tradebus up` writes. The
test drives what the sample strategy may not do in a short run: orders (a fill, a risk reject,
a venue reject), a malformed market data message, and a small sweep on the farm. `tradebus
status` is checked on the same stack.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tradebus.bus import Bus
from tradebus.proto import NewOrder, OrderType, Side
from tradebus.proto.codec import encode
from tradebus.proto.subjects import ORDERS_STREAM, order_request_subject
from tradebus.study.client import submit
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, publish_dataset, read_bars
from tradebus.study.jobs import make_spec

from .stack import Stack, panel_queries, prometheus_binary

SERVICES = {"sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    binary = prometheus_binary()
    s = Stack(tmp_path_factory.mktemp("monitoring"))
    try:
        s.start(binary)
        yield s
    finally:
        s.stop()


async def order(bus: Bus, coid: str, qty: float) -> None:
    request = NewOrder(client_order_id=coid, strategy="probe", venue="sim", symbol="BTC/USDT", side=Side.BUY,
                       order_type=OrderType.MARKET, qty=qty, ts_init=time.time_ns())
    await bus.js_publish(order_request_subject("sim", request.strategy), encode(request), headers={"Nats-Msg-Id": coid},
                         stream=ORDERS_STREAM)


async def drive(stack: Stack) -> None:
    """Orders, a malformed message and a farm sweep once every service's metrics are scraped."""
    await stack.until(lambda: {r["metric"]["service"] for r in stack.query('up{job="tradebus"} == 1')} >= SERVICES,
                      "not every service's /metrics endpoint was scraped")
    bus = await Bus.connect(stack.operator_config())
    try:
        # the router waits for its venue connection: orders go once it has asked the venue something
        await stack.until(lambda: stack.query("tradebus_venue_request_seconds_count"), "the router never called the venue")
        tag = str(time.time_ns())
        await order(bus, f"fill-{tag}", 0.001)       # filled on the sim
        await order(bus, f"risk-{tag}", 5.0)         # above max_order_qty: refused by the risk gate
        await order(bus, f"tiny-{tag}", 0.00001)     # below the sim's MIN_NOTIONAL: refused by the venue
        await bus.publish_bytes("md.sim.BTC-USDT.trade", b"\xc1 not msgpack")  # the runner rejects it
        bars = read_bars(data_dir() / DEFAULT_BARS_FILE)[:3000]
        dataset = await publish_dataset(bus, bars)
        spec = make_spec("sweep", strategy="sma_cross", dataset_id=dataset,
                         grid={"fast": [5, 10, 15], "slow": [30, 40, 50]})
        assert await submit(bus, spec) == 9
    finally:
        await bus.close()


async def test_every_dashboard_panel_returns_data_from_prometheus(stack):
    await drive(stack)
    queries = panel_queries()
    assert len(queries) >= 14

    def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not stack.query(expr)]

    missing: list[str] = []

    def all_have_data() -> bool:
        missing[:] = empty()
        return not missing

    await stack.until(all_have_data, "dashboard panels without data")
    assert not missing
    # the driven orders, by outcome and reject code (labels are bounded: never an order id)
    outcomes = {(r["metric"]["event"], r["metric"].get("code", ""))
                for r in stack.query("sum by (event, code) (tradebus_order_events_total)")}
    assert {("OrderAck", ""), ("Fill", ""), ("OrderReject", "risk_limit"), ("OrderReject", "invalid_order")} <= outcomes
    errors = {(r["metric"]["method"], r["metric"]["error"]) for r in stack.query("tradebus_venue_errors_total")}
    assert ("create_order", "BadRequest") in errors  # the sim's MIN_NOTIONAL answer, as ccxt classes it
    families = {r["metric"]["family"] for r in stack.query("tradebus_bus_bad_messages_total")}
    assert "md.trade" in families
    await stack.until(lambda: [r for r in stack.query('sum(tradebus_backtest_jobs_total{outcome="done"})')
                               if float(r["value"][1]) == 9], "the farm did not count the 9 jobs of the sweep")


async def test_status_shows_health_rates_and_consumer_lag(stack):
    await stack.until(lambda: stack.query('tradebus_marketdata_events_total'), "no market data flowed")
    out = subprocess.run([sys.executable, "-m", "tradebus.cli", "status", "--nats-url", stack.nats_url, "--json",
                          "--interval", "2", "--state-dir", str(stack.state)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {r["name"]: r for r in report["services"]}
    assert set(rows) >= SERVICES
    assert rows["market_data"]["out_per_s"] > 0  # md events published during the interval
    assert rows["strategy_runner"]["in_per_s"] > 0
    assert {r["health"] for r in rows.values()} == {"ok"}, rows
    consumers = {(c["stream"], c["consumer"]): c for c in report["consumers"]}
    assert ("ORDERS", "router_sim") in consumers
    assert ("BT_JOBS", "bt_workers") in consumers
    assert all(c["pending"] >= 0 and c["unacked"] >= 0 for c in consumers.values())

    table = subprocess.run([sys.executable, "-m", "tradebus.cli", "status", "--nats-url", stack.nats_url,
                            "--interval", "0.5", "--state-dir", str(stack.state)], capture_output=True, text=True,
                           timeout=60)
    assert table.returncode == 0, table.stderr
    assert "IN/S" in table.stdout and "HEALTH" in table.stdout and "router_sim" in table.stdout

