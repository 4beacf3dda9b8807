"""Backtest farm throughput: jobs/s and overhead against running the engine directly.

Two workloads on the real BTCUSDT 1m klines (shared/data), sma_cross strategy:

(a) a permutation test: the real run plus 1000 permuted paths of the first 100,000 bars;
(b) a 2,000-point parameter sweep (fast 5..100 step 5 x slow 10..1000 step 10) on all 130,708 bars.

Direct baselines run in this process: (a) ``permutation_test`` (path generation, signals and
``run_batch``, as the engine does it) and (b) signals for every point then one ``run_batch``; the
time inside ``run_batch`` alone is reported too. The farm runs the same studies through a real
nats-server (JetStream file storage), 1 and then 2 backtest_worker processes, and the collector:
wall time from the first job published to the last result read. Workers are warmed first (dataset
fetched and cached, imports done), as a long-running farm would be.

    .venv/bin/python bench/farm.py [--perms 1000] [--bars 100000]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import record
from tradebus.bus import Bus, EmbeddedNats, discover
from tradebus.bus.jetstream import declare_all
from tradebus.data import data_dir
from tradebus.engine import Engine, permutation_paths, permutation_test
from tradebus.engine.examples import sma_cross
from tradebus.proto import EngineSettings
from tradebus.study import Collector, make_spec, parse_grid, publish_dataset, read_bars, submit
from tradebus.study.datasets import DEFAULT_BARS_FILE

FAST, SLOW = 10, 30
# What the direct baselines run: no fee, 100,000 capital (studies would default to the venue fee).
SETTINGS = EngineSettings(initial_cash=100_000.0)
SWEEP_GRID = ["fast=5:100:5", "slow=10:1000:10"]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def direct_permutations(bars, n: int) -> tuple[float, float, float]:
    """(wall seconds of permutation_test, its CPU seconds, seconds inside run_batch for the same paths)."""
    cpu0 = time.process_time()
    wall, _ = timed(lambda: permutation_test(bars, lambda b: sma_cross(b, FAST, SLOW), n=n, seed=1, fee_rate=0.0,
                                             initial_capital=100_000.0))
    cpu = time.process_time() - cpu0
    inside = 0.0
    paths = permutation_paths(bars, n, seed=1)
    done = 0
    while done < n:  # batches of 250 paths keep memory near 1.2 GB
        engine = Engine(fee_rate=0.0, initial_capital=100_000.0)
        items = []
        for k in range(min(250, n - done)):
            path = next(paths)
            engine.load_bars(path, symbol=k)
            items.append((k, sma_cross(path, FAST, SLOW)))
        seconds, _ = timed(lambda: engine.run_batch(items))
        inside += seconds
        done += len(items)
        del engine, items
    return wall, cpu, inside


def direct_sweep(bars, points: list[dict]) -> tuple[float, float, float]:
    """(wall seconds for signals + one run_batch, its CPU seconds, seconds inside run_batch)."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    engine = Engine(fee_rate=0.0, initial_capital=100_000.0)
    engine.load_bars(bars)
    signals = [sma_cross(bars, **p) for p in points]
    inside, _ = timed(lambda: engine.run_batch(signals))
    return time.perf_counter() - t0, time.process_time() - cpu0, inside


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by the workers, the nats-server and this process between start() and stop()."""

    def __init__(self, workers: list[subprocess.Popen], server_pid: int) -> None:
        self.workers = workers
        self.server_pid = server_pid

    def snapshot(self) -> tuple[float, float, float]:
        return (sum(cpu_seconds(p.pid) for p in self.workers), cpu_seconds(self.server_pid), time.process_time())

    def start(self) -> None:
        self._start = self.snapshot()

    def stop(self) -> tuple[float, float, float]:
        end = self.snapshot()
        return tuple(b - a for a, b in zip(self._start, end))


def start_workers(url: str, count: int, cache: Path, logs: Path, *flags: str) -> list[subprocess.Popen]:
    """``count`` backtest_worker processes (``flags`` added to their command lines)."""
    procs = []
    for i in range(count):
        log = open(logs / f"w{count}-{i + 1}.log", "ab")
        procs.append(subprocess.Popen([sys.executable, "-m", "tradebus.services.backtest_worker", "--nats-url", url,
                                       "--instance", f"bench-w{i + 1}", "--cache-dir", str(cache), *flags],
                                      stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


async def wait_workers(bus: Bus, count: int) -> None:
    for _ in range(300):
        if len(await discover(bus.nc, "PING", "backtest_worker", timeout=0.2)) >= count:
            return
    raise RuntimeError(f"{count} workers did not come up")


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


async def run_study(bus: Bus, spec, meter: CpuMeter | None = None) -> tuple[float, float, int, tuple]:
    """(seconds to publish the jobs, seconds from first publish to last result, workers seen,
    CPU seconds of workers, server and this process)."""
    if meter:
        meter.start()
    t0 = time.perf_counter()
    await submit(bus, spec)
    t_submit = time.perf_counter() - t0
    collector = await Collector(bus, spec).run(timeout=3600, publish_progress=False)
    elapsed = time.perf_counter() - t0
    if collector.dead or len(collector.results) != spec.total_jobs:
        raise RuntimeError(f"{spec.study_id}: {len(collector.results)} results, {len(collector.dead)} dead")
    cpu = meter.stop() if meter else (0.0, 0.0, 0.0)
    return t_submit, elapsed, len(collector.workers), cpu


@contextlib.asynccontextmanager
async def bench_bus():
    """(server, bus, temporary folder): a fresh nats-server with file storage, the streams declared."""
    with tempfile.TemporaryDirectory(prefix="tradebus-bench-farm-") as tmp:
        tmp = Path(tmp)
        (tmp / "logs").mkdir()
        with EmbeddedNats(state_dir=tmp / "nats") as server:
            bus = await Bus.connect(server.url)
            try:
                await declare_all(bus.js)
                yield server, bus, tmp
            finally:
                await bus.close()


async def farm(bars_perm, bars_sweep, n_perm: int, worker_counts=(1, 2)) -> dict:
    out = {}
    async with bench_bus() as (server, bus, tmp):
        perm_id = await publish_dataset(bus, bars_perm)
        sweep_id = await publish_dataset(bus, bars_sweep)
        for count in worker_counts:
            procs = start_workers(server.url, count, tmp / "cache", tmp / "logs")
            meter = CpuMeter(procs, server.process.pid)
            try:
                await wait_workers(bus, count)
                for ident in (perm_id, sweep_id):  # warm-up: every worker fetches and caches both datasets
                    warm = make_spec("sweep", strategy="sma_cross", dataset_id=ident, settings=SETTINGS,
                                     grid=parse_grid([f"fast=2:{1 + 8 * count}:1"]), params={"slow": 30})
                    await run_study(bus, warm)
                perm = make_spec("permutation", strategy="sma_cross", dataset_id=perm_id, n=n_perm, seed=1,
                                 params={"fast": FAST, "slow": SLOW}, settings=SETTINGS)
                sweep = make_spec("sweep", strategy="sma_cross", dataset_id=sweep_id, grid=parse_grid(SWEEP_GRID),
                                  settings=SETTINGS)
                out[("perm", count)] = await run_study(bus, perm, meter)
                out[("sweep", count)] = await run_study(bus, sweep, meter)
                t0 = time.perf_counter()
                collector = await Collector(bus, sweep).catch_up()
                out[("read", count)] = (time.perf_counter() - t0, collector.records)
            finally:
                stop_workers(procs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perms", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=100_000)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    bars = read_bars(data_dir() / DEFAULT_BARS_FILE)
    bars_perm = bars[: args.bars].copy()
    points = [{"fast": f, "slow": s} for f in range(5, 101, 5) for s in range(10, 1001, 10)]
    print(f"direct permutation test: {args.perms} paths of {len(bars_perm)} bars ...", flush=True)
    perm_wall, perm_cpu, perm_inside = direct_permutations(bars_perm, args.perms)
    print(f"direct sweep: {len(points)} points on {len(bars)} bars ...", flush=True)
    sweep_wall, sweep_cpu, sweep_inside = direct_sweep(bars, points)
    print("farm with 1 and 2 workers ...", flush=True)
    res = asyncio.run(farm(bars_perm, bars, args.perms))
    load_after = os.getloadavg()[0]
    rows = []
    ceilings = {}
    for kind, title, jobs, wall0, cpu0, inside in (
        ("perm", f"(a) permutation test: {args.perms} paths x {len(bars_perm):,} bars (+1 real run)", args.perms + 1,
         perm_wall, perm_cpu, perm_inside),
        ("sweep", f"(b) sweep: {len(points):,} points x {len(bars):,} bars", len(points), sweep_wall, sweep_cpu,
         sweep_inside),
    ):
        direct_name = "permutation_test" if kind == "perm" else "signals + one run_batch"
        rows += [
            (title, ""),
            (f"  direct ({direct_name}), one process",
             f"{wall0:.2f} s ({jobs / wall0:,.0f} runs/s; CPU {1e3 * cpu0 / jobs:.2f} ms/run)"),
            ("  of which inside run_batch", f"{inside:.2f} s"),
        ]
        for count in (1, 2):
            _, wall, seen, (w_cpu, s_cpu, c_cpu) = res[(kind, count)]
            rows.append((f"  farm, {count} worker{'s' if count > 1 else ''}",
                         f"{wall:.2f} s ({jobs / wall:,.0f} jobs/s, {wall / wall0:.2f}x direct; "
                         f"{seen} worker(s) seen)"))
            rows.append(("    CPU per job: workers / nats-server / submit+collect",
                         f"{1e3 * w_cpu / jobs:.2f} / {1e3 * s_cpu / jobs:.2f} / {1e3 * c_cpu / jobs:.2f} ms"))
        speedup = res[(kind, 1)][1] / res[(kind, 2)][1]
        rows.append(("  speed-up 1 -> 2 workers (wall)", f"{speedup:.2f}x"))
        w_cpu, s_cpu, c_cpu = res[(kind, 2)][3]
        ceilings[kind] = (jobs / w_cpu, jobs / max(s_cpu, 1e-9), jobs / max(c_cpu, 1e-9))
    submit_s = res[("sweep", 2)][0]
    read_s, read_n = res[("read", 2)]
    rows += [
        ("bus path (does not grow with workers)", ""),
        ("  jobs published with JetStream acks (one client)", f"{len(points) / submit_s:,.0f} jobs/s"),
        ("  results read back by the collector", f"{read_n / read_s:,.0f} results/s"),
    ]
    for kind, label in (("perm", "permutations"), ("sweep", "sweep")):
        per_worker, server_cap, client_cap = ceilings[kind]
        limit = min(server_cap, client_cap)
        rows.append((f"projection, {label}: one worker per free core",
                     f"{per_worker:,.0f} jobs/s per worker; linear until ~{limit / per_worker:,.0f} workers "
                     f"(~{limit:,.0f} jobs/s, where one nats-server core or the collector saturates)"))
    rows.append(("load average before / after", f"{load_before:.2f} / {load_after:.2f}"))
    notes = ("Workers, nats-server and this process share a 2-core machine with other work (see the load "
             "average), so wall-clock speed-up from 1 to 2 workers is bounded by the free cores; the CPU-per-job "
             "lines are load independent. Farm time runs from the first job published to the last result read "
             "(JetStream file storage, explicit acks, job ids as Nats-Msg-Id); workers were warmed up (datasets "
             "cached) first. A worker runs its batch's signal and path generation in one Python thread, then one "
             "run_batch, so it uses about one core: N workers on N free cores give N x one worker's rate. The "
             "projection divides one worker's CPU per job into a core, and bounds the farm by the CPU per job of "
             "the nats-server and of the single collecting client measured here (each taken as one core; the "
             "server is multi-threaded and several collectors can split a study, so this is conservative).")
    record("backtest farm", rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
