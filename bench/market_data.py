"""market_data throughput and latency: sim_exchange -> ccxt.pro -> market_data -> NATS -> subscriber.

The sim runs in its own process (``python -m tradebus.services.sim_exchange``); market_data (real
ccxt.pro, ``watch_trades_for_symbols`` for BTC/USDT and ETH/USDT) and a bus subscriber share this
process, over a real nats-server. Figures:

- trade events/s the subscriber receives while the sim runs as fast as it can: with
  ``market_data_sim.yaml`` (a trade-heavy synthetic market), fast trades on and off, and with the
  default config (the recorded BTCUSDT depth + trades, then the synthetic market), plus the CPU
  each process spends per trade and the venue trade ids missing at the subscriber;
- venue-to-subscriber latency p50/p99 at real-time speed: subscriber clock minus the venue's
  trade time T (whole ms, floored: it over-states the latency by 0 to 1 ms), and
  ccxt-receive-to-subscriber (ns) for the part market_data and NATS add;
- replay throughput: the real spot trades file published by ``Replayer`` to the subscriber.

Usage: ``python bench/market_data.py [--seconds 15] [--repeat 3]``.
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
from tradebus.data import data_dir  # noqa: E402
from tradebus.marketdata.replay import Replayer, open_sources  # noqa: E402
from tradebus.proto import MarketDataEvent, Trade, TradeBatch  # noqa: E402
from tradebus.services.market_data.service import MarketData  # noqa: E402
from tradebus.services.market_data.settings import MarketDataSettings, VenueSettings  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.trades = 0
        self.messages = 0
        self.venue_lat: list[int] = []
        self.recv_lat: list[int] = []
        self.measure = False
        self.last_id: dict[str, int] = {}
        self.missing = 0  # venue trade ids skipped (the sim numbers each symbol's trades 1, 2, 3, ...)

    def _ids(self, symbol: str, first: str, last: str, n: int) -> None:
        """Gaps in the trade ids, from each message's first and last id (messages arrive in order)."""
        first_id, last_id = int(first), int(last)
        prev = self.last_id.get(symbol)
        if prev is not None:
            self.missing += max(0, first_id - prev - 1)
        self.missing += max(0, last_id - first_id + 1 - n)
        self.last_id[symbol] = last_id

    async def __call__(self, event, msg) -> None:
        now = time.time_ns()
        self.messages += 1
        if isinstance(event, TradeBatch):
            n = len(event)
            if event.trade_ids:
                self._ids(event.symbol, event.trade_ids[0], event.trade_ids[-1], n)
            if self.measure:
                cols = event.columns()
                self.venue_lat.extend(now - t for t in cols.ts_event)
                self.recv_lat.extend(now - t for t in cols.ts_recv)
        elif isinstance(event, Trade):
            n = 1
            if event.trade_id:
                self._ids(event.symbol, event.trade_id, event.trade_id, 1)
            if self.measure:
                self.venue_lat.append(now - event.ts_event)
                self.recv_lat.append(now - event.ts_recv)
        else:
            return
        self.trades += n


TRADE_HEAVY = Path(__file__).with_name("market_data_sim.yaml")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sim(speed: str, nats_url: str, sim_config: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    extra = ["--sim-config", str(sim_config)] if sim_config else []
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.sim_exchange", "--port", str(port),
                             "--speed", speed, "--nats-url", nats_url, "--log-level", "WARNING", *extra],
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


async def live(nats_url: str, speed: str, seconds: float, measure: bool, sim_config: Path | None = None,
               nats_pid: int | None = None, fast_trades: bool = True) -> tuple[Sink, float, Counter]:
    proc, url = start_sim(speed, nats_url, sim_config)
    bus, sub = await Bus.connect(nats_url), await Bus.connect(nats_url)
    sink = Sink()
    await sub.subscribe("md.sim.>", MarketDataEvent, sink, pending_msgs_limit=-1, pending_bytes_limit=-1)
    counters: Counter = Counter()
    md = MarketData(bus, MarketDataSettings(venues=[VenueSettings(
        name="sim", sim_url=url, symbols=["BTC/USDT", "ETH/USDT"], streams=["trades"],
        options={"enableRateLimit": False}, fast_trades=fast_trades)]), counters)
    try:
        await md.start()
        while sink.trades == 0:  # connected and flowing
            await asyncio.sleep(0.05)
        sink.measure = measure
        start_n, start, cpu = sink.trades, time.perf_counter(), time.process_time()
        others = {"sim": proc.pid, "nats": nats_pid}
        cpu0 = {k: cpu_seconds(pid) for k, pid in others.items() if pid}
        await asyncio.sleep(seconds)
        took = time.perf_counter() - start
        n = max(1, sink.trades - start_n)
        rate = (sink.trades - start_n) / took
        counters["cpu_us_per_trade"] = round((time.process_time() - cpu) / n * 1e6, 1)
        counters["cpu_share"] = round((time.process_time() - cpu) / took * 100)
        for k, c0 in cpu0.items():
            used = cpu_seconds(others[k]) - c0
            counters[f"{k}_cpu_us_per_trade"] = round(used / n * 1e6, 1)
            counters[f"{k}_cpu_share"] = round(used / took * 100)
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


def cpu_rows(label: str, c: Counter) -> list[tuple[str, str]]:
    return [
        (f"{label}: CPU per trade, market_data + subscriber process",
         f"{c['cpu_us_per_trade']} us ({c['cpu_share']}% of a core)"),
        (f"{label}: CPU per trade, sim_exchange process",
         f"{c['sim_cpu_us_per_trade']} us ({c['sim_cpu_share']}% of a core)"),
        (f"{label}: CPU per trade, nats-server", f"{c['nats_cpu_us_per_trade']} us ({c['nats_cpu_share']}% of a core)"),
    ]


async def main_async(seconds: float, repeat: int) -> None:
    load_before = os.getloadavg()
    short = min(seconds, 8.0)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(state_dir=tmp) as nats:
        pid = nats.process.pid
        # the VM's 2 cores are shared with other jobs: the sustained run is repeated, the median kept
        runs = [await live(nats.url, "max", seconds, False, TRADE_HEAVY, pid) for _ in range(repeat)]
        rates = sorted(r[1] for r in runs)
        fast, fast_rate, counters = sorted(runs, key=lambda r: r[1])[(len(runs) - 1) // 2]
        gen, gen_rate, gen_counters = await live(nats.url, "max", short, False, TRADE_HEAVY, pid, fast_trades=False)
        dflt, dflt_rate, dflt_counters = await live(nats.url, "max", short, False, None, pid)
        slow, slow_rate, _ = await live(nats.url, "1", seconds, measure=True)
        r_rate, r_n = await replay_rate(nats.url)
    load_after = os.getloadavg()
    per_msg = fast.trades / max(1, fast.messages)
    record("market_data: sim_exchange -> ccxt.pro -> market_data -> NATS -> subscriber", [
        (f"trade events/s, speed max, trade-heavy sim, fast trades (median of {repeat} sustained {seconds:.0f} s runs)",
         f"{fast_rate:,.0f}"),
        ("all runs", " / ".join(f"{r:,.0f}" for r in rates)),
        ("trades per bus message (median run)", f"{per_msg:.1f}"),
        ("venue trades missing at the subscriber (all runs)", f"{sum(r[0].missing for r in runs):,}"),
        *cpu_rows("median run", counters),
        ("implied ceiling of the market_data process on one core",
         f"{1e6 / max(0.1, counters['cpu_us_per_trade']):,.0f}/s"),
        (f"trade events/s, speed max, trade-heavy sim, generic ccxt parse (fast_trades off, {short:.0f} s)",
         f"{gen_rate:,.0f}"),
        *cpu_rows("generic run", gen_counters)[:1],
        ("generic run: venue trades missing at the subscriber",
         f"{gen.missing:,} of {gen.missing + gen.trades:,}" + (
             " (it falls behind: the sim cuts a consumer that far behind off with code 1008, as Binance does, "
             "and ccxt keeps at most tradesLimit trades between two watch returns)" if gen.missing else "")),
        (f"trade events/s, speed max, default sim config (depth-heavy recording first), fast trades ({short:.0f} s)",
         f"{dflt_rate:,.0f} (sim CPU {dflt_counters['sim_cpu_share']}% of a core)"),
        ("trade events/s, sim at speed 1 (default config, recorded trades)", f"{slow_rate:,.0f}"),
        ("venue -> subscriber latency p50 (speed 1)", pct(slow.venue_lat, 50)),
        ("venue -> subscriber latency p99 (speed 1)", pct(slow.venue_lat, 99)),
        ("ccxt receive -> subscriber p50 (speed 1)", pct(slow.recv_lat, 50)),
        ("ccxt receive -> subscriber p99 (speed 1)", pct(slow.recv_lat, 99)),
        ("latency samples", f"{len(slow.venue_lat):,}"),
        ("replay: real spot trades file -> subscriber, events/s", f"{r_rate:,.0f} ({r_n:,} trades)"),
        ("load average before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}"),
    ], notes=(
        "sim_exchange, nats-server and the market_data + subscriber process on the same 2-core VM shared "
        "with other jobs; CPU per trade is each process's CPU time over the window divided by the trades "
        "the subscriber received. Throughput uses bench/market_data_sim.yaml (two synthetic spot markets, "
        "100 trades per replay step), since with the default config the sim spends its core on replaying "
        "the recorded depth, not on trades (row 'default sim config'). 'fast trades': Binance trade "
        "frames normalised by tradebus.marketdata.binance_trades, ccxt.pro running the connection; "
        "'generic': ccxt.pro's parse_trade. Venue trade time T has ms resolution and the sim stamps it "
        "floored (as Binance does), so 'venue -> subscriber' over-states the true latency by 0-1 ms "
        "(0.5 ms on average); 'ccxt receive' is stamped in ns when ccxt hands the decoded frame over. "
        "Target: >= 100,000 trade events/s and p50 < 2 ms."))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--repeat", type=int, default=3, help="sustained fast-trades runs; the median is reported")
    args = p.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(main_async(args.seconds, max(1, args.repeat)))


if __name__ == "__main__":
    main()
