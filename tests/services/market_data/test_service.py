"""The market_data process: no reachable venue -> FeedStatus Disconnected with backoff, control over NATS."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import yaml

from tradebus.bus import free_port
from tradebus.proto import FeedStatus, MarketDataEvent, ServiceCommand, ServiceStatus
from tradebus.proto.subjects import service_subject

from ..test_entry_points import wait_for_service


async def test_unreachable_venue_backs_off_and_the_service_keeps_serving(bus, nats_server, tmp_path):
    port = free_port()
    config = {"nats": {"url": nats_server.url}, "services": {"market_data": {
        "module": "tradebus.services.market_data",
        "settings": {"venues": [{"name": "sim", "sim_url": f"http://127.0.0.1:{port}", "symbols": ["BTC/USDT"],
                                 "streams": ["trades", "book"], "options": {"timeout": 2000}}],
                     "backoff": {"initial": 0.05, "multiplier": 2.0, "cap": 0.4}}}}}
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(config))
    seen: list[FeedStatus] = []

    async def on_md(event, msg):
        if isinstance(event, FeedStatus):
            seen.append(event)
    await bus.subscribe("md.sim.>", MarketDataEvent, on_md)
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.market_data", "--config", str(path),
                             "--nats-url", nats_server.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=tmp_path)
    try:
        await wait_for_service(bus.nc, "market_data")
        for _ in range(200):
            if sum(1 for s in seen if s.stream == "book") >= 3:
                break
            await asyncio.sleep(0.05)
        book = [s for s in seen if s.stream == "book"]
        assert len(book) >= 3 and all(s.state == "disconnected" for s in book), seen
        assert book[0].reason.startswith("ExchangeNotAvailable")
        control = service_subject("market_data", "control")
        reply = await bus.nc.request(control, b"\xc1garbage", timeout=2)
        assert reply.headers["Nats-Service-Error-Code"] == "400"
        ok = await bus.request(control, ServiceCommand(service="market_data", command="list"), ServiceStatus)
        assert "sim:BTC/USDT:book" in ok.message and ok.state == "running"
        no = await bus.request(control, ServiceCommand(service="market_data", command="add",
                                                       args={"venue": "x", "symbols": "A/B"}), ServiceStatus)
        assert no.message.startswith("rejected") and no.counters["control.rejected"] == 1
        status = await bus.request(service_subject("market_data", "status"),
                                   ServiceCommand(service="market_data", command="status"), ServiceStatus)
        assert status.counters["errors.book"] >= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]


async def test_venue_that_comes_up_later_is_picked_up_after_backoff(nats_server):
    """Disconnected + backoff while nothing listens; once the venue is up the streams resubscribe."""
    from collections import Counter

    from tradebus.bus import Bus
    from tradebus.proto import BookSnapshot, Trade, TradeBatch
    from tradebus.retry import BackoffSettings
    from tradebus.services.market_data.service import MarketData
    from tradebus.services.market_data.settings import MarketDataSettings, VenueSettings
    from tradebus.services.sim_exchange.settings import default_config
    from tradebus.services.sim_exchange.testing import running_sim

    from .conftest import Collector, until

    port = free_port()
    bus, sub = await Bus.connect(nats_server.url), await Bus.connect(nats_server.url)
    col = Collector()
    await sub.subscribe("md.later.>", MarketDataEvent, col)
    await sub.nc.flush()
    counters: Counter = Counter()
    md = MarketData(bus, MarketDataSettings(
        venues=[VenueSettings(name="later", sim_url=f"http://127.0.0.1:{port}", symbols=["ETH/USDT"],
                              streams=["trades", "book"], options={"enableRateLimit": False})],
        backoff=BackoffSettings(initial=0.05, multiplier=1.5, cap=0.3)), counters)
    await md.start()
    try:
        await until(lambda: len(col.of(FeedStatus)) >= 4)
        assert {e.state for e in col.of(FeedStatus)} == {"disconnected"}
        async with running_sim(default_config(speed="0"), port=port) as sim:
            await until(lambda: col.of(BookSnapshot) and (col.of(Trade) or col.of(TradeBatch)),
                        step=lambda: sim.step(20), timeout=20)
            assert [e.state for e in col.of(FeedStatus) if e.stream == "book"][-2:] == [
                "snapshot_start", "snapshot_end"]
            assert counters["errors.trades"] >= 2 and counters["errors.book"] >= 2
    finally:
        await md.stop()
        await bus.close()
        await sub.close()
