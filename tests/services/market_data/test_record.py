"""Record what market_data publishes (Parquet or JetStream), replay it, get identical events."""
from __future__ import annotations

import asyncio
from collections import Counter

from tradebus.bus import Bus
from tradebus.data import data_dir
from tradebus.marketdata.record import read_jetstream, recording_files
from tradebus.proto import MarketDataEvent
from tradebus.proto.codec import decoder_for
from tradebus.services.market_data.service import MarketData
from tradebus.services.market_data.settings import MarketDataSettings, RecordSettings, ReplaySettings

from .conftest import Collector, until

USDM = "binance_usdm_BTCUSDT_20240808T2354Z_"
FILES = [str(data_dir() / (USDM + n)) for n in
         ("depth_snapshot.csv", "depth_updates_first45s.csv.gz", "bookticker_first45s.csv.gz")]


async def run_md(nats_server, settings: MarketDataSettings, venue: str) -> tuple[list, Counter]:
    """Start market_data with ``settings``, wait for its replay to finish, stop it; the bus events."""
    bus, sub = await Bus.connect(nats_server.url), await Bus.connect(nats_server.url)
    col = Collector()
    await sub.subscribe(f"md.{venue}.>", MarketDataEvent, col, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await sub.nc.flush()
    counters: Counter = Counter()
    md = MarketData(bus, settings, counters)
    await md.start()
    await asyncio.wait_for(md.replay_task, 60)
    await bus.nc.flush()
    await until(lambda: len(col.events) >= counters["published"])
    await md.stop()
    await bus.close()
    await sub.close()
    assert len(col.events) == counters["published"] > 0
    return col.events, counters


async def test_parquet_recording_replays_into_identical_events(nats_server, tmp_path):
    rec = tmp_path / "rec"
    first, counters = await run_md(nats_server, MarketDataSettings(
        replay=ReplaySettings(files=FILES, venue="recpq", symbol="BTC/USDT:USDT", speed=0),
        record=RecordSettings(enabled=True, format="parquet", path=str(rec), rotate_rows=2000)), "recpq")
    files = recording_files(rec)
    assert len(files) == -(-len(first) // 2000) and counters["bad.replay"] == 0
    again, _ = await run_md(nats_server, MarketDataSettings(
        replay=ReplaySettings(files=[str(rec)], venue="ignored", speed=0)), "recpq")
    assert again == first
    assert {type(e).__name__ for e in again} == {"FeedStatus", "BookSnapshot", "BookDelta", "BBO"}


async def test_jetstream_recording_holds_identical_events(nats_server):
    first, _ = await run_md(nats_server, MarketDataSettings(
        replay=ReplaySettings(files=FILES[:2], venue="recjs", symbol="BTC/USDT:USDT", speed=0),
        record=RecordSettings(enabled=True, format="jetstream", stream="MD_REC_TEST", retention_hours=1)), "recjs")
    bus = await Bus.connect(nats_server.url)
    try:
        decode = decoder_for(MarketDataEvent).decode
        stored = [decode(data) async for _, subject, data in read_jetstream(bus, "MD_REC_TEST")]
        info = await bus.js.stream_info("MD_REC_TEST")
        assert info.config.max_age == 3600
    finally:
        await bus.close()
    assert stored == first


async def test_cli_replay_of_a_recording_gives_identical_events(nats_server, tmp_path):
    from tradebus.cli import main as cli_main

    rec = tmp_path / "rec"
    first, _ = await run_md(nats_server, MarketDataSettings(
        replay=ReplaySettings(files=FILES[:2], venue="reccli", symbol="BTC/USDT:USDT", speed=0),
        record=RecordSettings(enabled=True, path=str(rec))), "reccli")
    sub = await Bus.connect(nats_server.url)
    col = Collector()
    await sub.subscribe("md.reccli.>", MarketDataEvent, col, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await sub.nc.flush()
    try:
        assert await asyncio.to_thread(cli_main, ["replay", str(rec), "--nats-url", nats_server.url]) == 0
        await until(lambda: len(col.events) >= len(first))
    finally:
        await sub.close()
    assert col.events == first


async def test_parquet_retention_removes_old_files(tmp_path):
    import os

    from tradebus.marketdata.record import ParquetRecorder
    from tradebus.proto import FeedStatus

    rec = ParquetRecorder(tmp_path, rotate_rows=1, retention_hours=1)
    ev = FeedStatus(venue="v", symbol="S", state="connected", ts_init=1)
    await rec.add("md.v.S.status", b"x", ev)
    old = recording_files(tmp_path)[0]
    os.utime(old, (1, 1))
    await rec.add("md.v.S.status", b"y", FeedStatus(venue="v", symbol="S", state="connected", ts_init=2))
    await rec.close()
    assert [f.name for f in recording_files(tmp_path)] == ["md-00000000000000000002-000002.parquet"]


async def test_jetstream_recorder_declares_its_stream_through_bus_jetstream(nats_server):
    """The recorder's stream comes from ``md_record_stream``; a restart with another retention
    updates it in place and keeps what was recorded."""
    from tradebus.bus.jetstream import md_record_stream
    from tradebus.marketdata.record import JetStreamRecorder

    bus = await Bus.connect(nats_server.url)
    try:
        await JetStreamRecorder(bus, "MD_REC_DECL", ["venue_a", "venue_b"], 2).start()
        await bus.js.publish("md.venue_a.BTC-USDT.trade", b"x")
        await JetStreamRecorder(bus, "MD_REC_DECL", ["venue_b", "venue_a"], 3).start()
        info = await bus.js.stream_info("MD_REC_DECL")
        want = md_record_stream("MD_REC_DECL", ["venue_a", "venue_b"], 3)
        assert info.config.subjects == want.subjects == ["md.venue_a.>", "md.venue_b.>"]
        assert info.config.max_age == want.max_age == 3 * 3600 and info.state.messages == 1
        assert md_record_stream("X", [], 0).subjects == ["md.>"] and md_record_stream("X", [], 0).max_age is None
    finally:
        await bus.close()
