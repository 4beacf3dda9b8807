"""market_data throughput and latency: sim_exchange -> ccxt.pro -> market_data -> NATS -> subscriber.

The sim runs in its own process (``python -m tradebus.services.sim_exchange``), replaying the real
BTCUSDT capture and then its synthetic market at ``--speed max``; market_data (real ccxt.pro,
``watch_trades`` for BTC/USDT and ETH/USDT) and a bus subscriber share this process, over a real
nats-server. Figures:

- trade events/s the subscriber receives while the sim replays as fast as it can;
- venue-to-subscriber latency p50/p99 at real-time speed: subscriber clock minus the venue's
  trade time (ms resolution, so +-1 ms), and ccxt-receive-to-subscriber (ns) for the part
  market_data and NATS add;
- replay throughput: the real spot trades file published by ``Replayer`` to the subscriber.

Usage: ``python bench/market_data.py [--seconds 15]``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _results import record  # noqa: E402

from tradebus.bus import Bus, EmbeddedNats, free_port  # noqa: E402
from tradebus.marketdata.replay import Replayer, open_sources  # noqa: E402
from tradebus.proto import MarketDataEvent, Trade, TradeBatch  # noqa: E402
from tradebus.services.market_data.service import MarketData  # noqa: E402
from tradebus.services.market_data.settings import MarketDataSettings, VenueSettings  # noqa: E402
from tradebus.data import data_dir  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.trades = 0
        self.messages = 0
        self.venue_lat: list[int] = []
        self.recv_lat: list[int] = []
        self.measure = False

    async def __call__(self, event, msg) -> None:
        now = time.time_ns()
        self.messages += 1
        if isinstance(event, TradeBatch):
            n = len(event)
            if self.measure:
                cols = event.columns()
                self.venue_lat.extend(now - t for t in cols.ts_event)
                self.recv_lat.extend(now - t for t in cols.ts_recv)
        elif isinstance(event, Trade):
            n = 1
            if self.measure:
                self.venue_lat.append(now - event.ts_event)
                self.recv_lat.append(now - event.ts_recv)
        else:
            return
        self.trades += n


def start_sim(speed: str, nats_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.sim_exchange", "--port", str(port),
                             "--speed", speed, "--nats-url", nats_url, "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "listening" in line:
            return proc, f"http://127.0.0.1:{port}"
        if len(seen) > 50:
            break
    proc.kill()
    raise SystemExit("sim did not start:\n" + "".join(seen))


async def live(nats_url: str, speed: str, seconds: float, measure: bool) -> tuple[Sink, float, Counter]:
    proc, url = start_sim(speed, nats_url)
    bus, sub = await Bus.connect(nats_url), await Bus.connect(nats_url)
    sink = Sink()
    await sub.subscribe("md.sim.>", MarketDataEvent, sink, pending_msgs_limit=-1, pending_bytes_limit=-1)
    counters: Counter = Counter()
    md = MarketData(bus, MarketDataSettings(venues=[VenueSettings(
        name="sim", sim_url=url, symbols=["BTC/USDT", "ETH/USDT"], streams=["trades"],
        options={"enableRateLimit": False})]), counters)
    try:
        await md.start()
        while sink.trades == 0:  # connected and flowing
            await asyncio.sleep(0.05)
        sink.measure = measure
        start_n, start, cpu = sink.trades, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        took = time.perf_counter() - start
        rate = (sink.trades - start_n) / took
        counters["cpu_us_per_trade"] = int((time.process_time() - cpu) / max(1, sink.trades - start_n) * 1e6)
    finally:
        await md.stop()
        await bus.close()
        await sub.close()
        proc.terminate()
        proc.wait(10)
    return sink, rate, counters


async def replay_rate(nats_url: str) -> tuple[float, int]:
    bus, sub = await Bus.connect(nats_url), await Bus.connect(nats_url)
    sink = Sink()
    await sub.subscribe("md.binance.>", MarketDataEvent, sink, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await sub.nc.flush()
    from tradebus.proto.codec import encode
    from tradebus.proto.subjects import subject_for

    async def publish(e):
        await bus.nc.publish(subject_for(e), encode(e))
    sources = open_sources([data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz"], "binance", "BTC/USDT")
    start = time.perf_counter()
    n = await Replayer(sources, publish).run()
    await bus.nc.flush()
    while sink.trades < n:
        await asyncio.sleep(0.01)
    took = time.perf_counter() - start
    await bus.close()
    await sub.close()
    return n / took, n


def pct(values: list[int], q: float) -> str:
    return f"{np.percentile(np.asarray(values), q) / 1e6:.3f} ms" if values else "n/a"


async def main_async(seconds: float) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(state_dir=tmp) as nats:
        fast, fast_rate, counters = await live(nats.url, "max", seconds, measure=False)
        slow, slow_rate, _ = await live(nats.url, "1", seconds, measure=True)
        r_rate, r_n = await replay_rate(nats.url)
    load_after = os.getloadavg()
    per_msg = fast.trades / max(1, fast.messages)
    record("market_data: sim_exchange -> ccxt.pro -> market_data -> NATS -> subscriber", [
        ("trade events/s, sim at speed max (sustained, %.0f s)" % seconds, f"{fast_rate:,.0f}"),
        ("trades per bus message at speed max", f"{per_msg:.1f}"),
        ("CPU per trade event, market_data + subscriber process", f"{counters['cpu_us_per_trade']} us"),
        ("implied ceiling of that process on one core", f"{1e6 / max(1, counters['cpu_us_per_trade']):,.0f}/s"),
        ("trade events/s, sim at speed 1", f"{slow_rate:,.0f}"),
        ("venue -> subscriber latency p50 (speed 1)", pct(slow.venue_lat, 50)),
        ("venue -> subscriber latency p99 (speed 1)", pct(slow.venue_lat, 99)),
        ("ccxt receive -> subscriber p50 (speed 1)", pct(slow.recv_lat, 50)),
        ("ccxt receive -> subscriber p99 (speed 1)", pct(slow.recv_lat, 99)),
        ("latency samples", f"{len(slow.venue_lat):,}"),
        ("replay: real spot trades file -> subscriber, events/s", f"{r_rate:,.0f} ({r_n:,} trades)"),
        ("load average before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}"),
    ], notes=("sim_exchange in its own process; market_data and the subscriber in one process, 2 shared "
              "cores. Target: >= 100,000 trade events/s and p50 < 2 ms. Venue time has ms resolution."))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=15.0)
    args = p.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(main_async(args.seconds))


if __name__ == "__main__":
    main()
