"""The metrics of tradebus.metrics: bounded subject families, the bus's counting, metric ports,
the targets file of `tradebus up`, strategy gauges, and the health `tradebus status` derives."""
from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest
from prometheus_client import REGISTRY, generate_latest

from tradebus import metrics
from tradebus.cli.status import health, service_rows
from tradebus.cli.up import child_specs, write_targets
from tradebus.config import ConfigError, DeploymentConfig, decode_settings
from tradebus.proto import ServiceCommand


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("subject, family", [
    ("md.sim.BTC-USDT.trade", "md.trade"),
    ("md.binance.ETH-USDT-USDT.book", "md.book"),
    ("ord.req.sim", "ord.req"),
    ("ord.evt.sim.sma_cross", "ord.evt"),
    ("acct.sim.balance", "acct.balance"),
    ("bt.job.sweep-123", "bt.job"),
    ("svc.order_router.query.sim", "svc.order_router"),
    ("ctl.sma_cross.params", "ctl"),
    ("$KV.router_state.abc", "$KV.router_state"),
    ("_INBOX.x8f2k.17", "_INBOX"),
])
def test_subject_families_drop_symbols_strategies_and_ids(subject, family):
    assert metrics.subject_family(subject) == family


async def test_the_bus_counts_in_out_bad_and_handler_time(bus):
    subject = "svc.metricsprobe.status"
    family = "svc.metricsprobe"
    before_in = sample("tradebus_bus_messages_in_total", family=family)
    before_out = sample("tradebus_bus_messages_out_total", family=family)
    before_bad = sample("tradebus_bus_bad_messages_total", family=family, kind="undecodable")
    before_handled = sample("tradebus_handler_seconds_count", family=family)
    before_failed = sample("tradebus_handler_errors_total", family=family)
    seen = asyncio.Event()
    calls = 0

    async def handler(cmd, _msg):
        nonlocal calls
        calls += 1
        if cmd.command == "boom":
            raise RuntimeError("handler failure on purpose")
        seen.set()

    await bus.subscribe(subject, ServiceCommand, handler)
    await bus.publish(subject, ServiceCommand(service="metricsprobe", command="boom"))
    await bus.publish_bytes(subject, b"\xc1 not msgpack")
    await bus.publish(subject, ServiceCommand(service="metricsprobe", command="status"))
    await asyncio.wait_for(seen.wait(), 5)
    assert calls == 2
    assert sample("tradebus_bus_messages_out_total", family=family) - before_out == 3
    assert sample("tradebus_bus_messages_in_total", family=family) - before_in == 3
    assert sample("tradebus_bus_bad_messages_total", family=family, kind="undecodable") - before_bad == 1
    assert sample("tradebus_handler_seconds_count", family=family) - before_handled == 2
    assert sample("tradebus_handler_errors_total", family=family) - before_failed == 1
    assert bus.published >= 3


def test_strategy_position_and_pnl_are_read_at_scrape_time():
    state = {"position": 0.5, "realized_pnl": 2.0, "unrealized_pnl": -0.5, "fees": 0.25, "avg_price": 1.0}
    stop = metrics.STRATEGIES.add(lambda: [{"strategy": "probe_s", "symbols": {"BTC/USDT": dict(state)}}])
    try:
        assert sample("tradebus_strategy_position", strategy="probe_s", symbol="BTC/USDT") == 0.5
        assert sample("tradebus_strategy_pnl", strategy="probe_s", symbol="BTC/USDT", kind="net") == 1.25
        state["position"] = -1.0
        assert sample("tradebus_strategy_position", strategy="probe_s", symbol="BTC/USDT") == -1.0
    finally:
        stop()
    assert b"probe_s" not in generate_latest(REGISTRY)


def test_a_metrics_port_must_be_a_tcp_port():
    with pytest.raises(ConfigError, match="metrics_port"):
        decode_settings({"services": {"x": {"module": "m", "metrics_port": 70000}}}, DeploymentConfig, "test.yaml")


def test_up_gives_each_replica_its_port_and_replaces_a_taken_one(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        config = decode_settings({"services": {
            "market_data": {"module": "tradebus.services.market_data", "metrics_port": taken},
            "backtest_worker": {"module": "tradebus.services.backtest_worker", "replicas": 2, "metrics_port": 39411},
            "quiet": {"module": "tradebus.services.sim_exchange"},
        }}, DeploymentConfig, "test.yaml")
        specs, targets = child_specs(config, "cfg.yaml", "nats://127.0.0.1:4222", None, None)
    ports = {t.instance: t.port for t in targets}
    assert ports["market_data"] != taken
    assert set(ports) == {"market_data", "backtest_worker-1", "backtest_worker-2"}  # "quiet" has no port
    if ports["backtest_worker-1"] == 39411:  # free here: replica i gets port + i
        assert ports["backtest_worker-2"] == 39412
    assert len(set(ports.values())) == 3
    argv = {s.name: s.argv for s in specs}
    assert argv["backtest_worker-2"][argv["backtest_worker-2"].index("--metrics-port") + 1] == str(ports["backtest_worker-2"])
    assert "--metrics-port" not in argv["quiet"]
    assert argv["quiet"][0] == sys.executable

    path = tmp_path / "targets.json"
    write_targets(path, "0.0.0.0", targets)
    groups = json.loads(path.read_text())
    assert {g["labels"]["instance_name"]: g["targets"] for g in groups} == {
        name: [f"127.0.0.1:{port}"] for name, port in ports.items()}
    assert {g["labels"]["service"] for g in groups} == {"market_data", "backtest_worker"}


def test_status_health_and_rates_from_two_stats_samples():
    def stats(sid: str, **counters) -> dict:
        return {"id": sid, "started": "t0", "endpoints": [{"name": "status", "data": counters}]}

    infos = [{"name": n, "id": i, "version": "1", "metadata": {"instance": n}} for n, i in
             (("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"))]
    first = {"1": stats("1", received=10, published=4, handler_errors=0, bad_input=0, state="running"),
             "2": stats("2", received=0, published=0, handler_errors=1, bad_input=0, state="running"),
             "3": stats("3", received=5, state="running"),
             "4": stats("4", received=0, state="starting")}
    second = {"1": stats("1", received=30, published=8, handler_errors=0, bad_input=0, state="running"),
              "2": stats("2", received=1, published=0, handler_errors=3, bad_input=1, state="running"),
              "4": stats("4", received=0, state="starting")}
    rows = {r["name"]: r for r in service_rows(infos, first, second, 2.0)}
    assert (rows["a"]["health"], rows["a"]["in_per_s"], rows["a"]["out_per_s"]) == ("ok", 10.0, 2.0)
    assert rows["b"]["health"] == "degraded (2 handler errors, 1 rejected)"
    assert rows["c"]["health"] == "lost" and rows["c"]["in_per_s"] == 0.0
    assert rows["d"]["health"] == "starting"
    assert health({"received": 1}, {"received": 2}) == "ok"
