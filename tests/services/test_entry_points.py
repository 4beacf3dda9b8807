"""Every service starts, registers with $SRV, survives bad input on its subjects, and stops on SIGTERM."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from tradebus.bus import discover
from tradebus.bus.client import RequestError
from tradebus.proto import ServiceCommand, ServiceStatus, Trade
from tradebus.proto.subjects import md_subject, order_event_subject, order_request_subject, service_subject

# service -> subjects it consumes (besides its svc.<name>.status endpoint)
SERVICES = {
    "market_data": [],
    # order events only of the strategies it hosts (the packaged local.yaml: sma_cross)
    "strategy_runner": [md_subject("sim", "BTC/USDT", "trade"), order_event_subject("sim", "sma_cross")],
    "order_router": [order_request_subject("sim", "s1")],
    "backtest_worker": [],
    "sim_exchange": [],
}

GARBAGE = [b"\xc1\xc1\xc1", b"\x93\x01\x02", b"\x00" * (600 * 1024)]


async def wait_for_service(nc, name: str, timeout: float = 20.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        replies = await discover(nc, "PING", name, timeout=0.2)
        if replies:
            return replies[0]
    raise AssertionError(f"{name} did not answer $SRV.PING within {timeout}s")


@pytest.mark.parametrize("name", list(SERVICES))
async def test_service_lifecycle_and_bad_input(name, bus, nats_server, tmp_path):
    extra = ["--port", "0"] if name == "sim_exchange" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tradebus.services.{name}", "--nats-url", nats_server.url, "--instance", f"test-{name}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        ping = await wait_for_service(bus.nc, name)
        assert ping["name"] == name and ping["metadata"]["instance"] == f"test-{name}"

        status_subject = service_subject(name, "status")
        # a service may already have met bad input at start (e.g. history it replays from a stream)
        before = (await bus.request(status_subject, ServiceCommand(service=name, command="status"), ServiceStatus)).counters
        for data in GARBAGE:
            reply = await bus.nc.request(status_subject, data, timeout=2)
            assert reply.headers["Nats-Service-Error-Code"] == "400"
        wrong_type = Trade(venue="sim", symbol="BTC/USDT", price=1.0, qty=1.0, side="buy", trade_id="1", ts_event=1, ts_recv=1)
        with pytest.raises(RequestError):
            await bus.request(status_subject, wrong_type, ServiceStatus)
        for subject in SERVICES[name]:
            for data in GARBAGE:
                await bus.nc.publish(subject, data)
            await bus.publish(subject, ServiceCommand(service="x", command="wrong type"))
        await bus.nc.flush()

        status = await bus.request(status_subject, ServiceCommand(service=name, command="status"), ServiceStatus)
        assert status.service == name and status.state == "running"
        expected_bad = before["bad_input"] + len(GARBAGE) + 1 + len(SERVICES[name]) * (len(GARBAGE) + 1)
        for _ in range(50):  # data-subject messages may still be in flight
            if status.counters["bad_input"] >= expected_bad:
                break
            await asyncio.sleep(0.05)
            status = await bus.request(status_subject, ServiceCommand(service=name, command="status"), ServiceStatus)
        assert status.counters["bad_input"] == expected_bad
        assert status.counters["bad_input.oversized"] == before.get("bad_input.oversized", 0) + 1 + len(SERVICES[name])
        assert await discover(bus.nc, "PING", name, timeout=0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
