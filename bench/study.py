"""Studies at engine speed (issue 18): a permutation test and a parameter sweep end to end,
side by side with a vectorised numpy reference and vectorbt on the same spec.

Spec (the peer harness's): SMA(10)/SMA(30) cross, long only (buy 1 unit when the fast average
closes above the slow one, sell when it closes back below), market orders filled at the next
bar's open, fee 1e-4 of notional, 100,000 capital.

(a) permutation test, 1000 paths of 100,000 synthetic bars (bench/engine.py's random walk):
    - ``permutation_test(bars, rule, n=1000)``: the compiled rule in the fused pipeline;
    - ``permutation_test(bars, sma_cross, n=1000)``: the Python signal function (before issue 18);
    - numpy: the same 1000 paths (same seed, same permutations) and the same signals and
      backtest, vectorised over paths in chunks; its net PnL distribution is checked against
      tradebus's;
    - vectorbt ``Portfolio.from_signals`` on the same paths (signals shifted one bar, priced at
      the open: vectorbt's next-open fill), JIT warm-up excluded.
(b) sweep, 2,000 points (fast 5..100 step 5 x slow 10..1000 step 10) over the 130,708 real
    BTCUSDT 1m bars: ``sweep(bars, rule, grid)`` end to end, the Python function + run_batch way,
    the numpy reference (one moving average per length, shared by the points) and vectorbt.
(c) the farm: bench/farm.py's measurement of a rule permutation study on real workers.

    .venv/bin/python bench/study.py [--perms 1000] [--quick] [--no-vectorbt] [--no-farm]

``make bench`` installs vectorbt (the ``bench`` extra); without it that column is left out.
Timings are wall clock on a shared 2-core machine: the load average is printed and recorded.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from _results import record  # noqa: E402
from engine import synthetic_bars  # noqa: E402
from tradebus.engine import Engine, permutation_paths, permutation_test, sweep  # noqa: E402
from tradebus.engine.examples import sma_cross  # noqa: E402

FAST, SLOW = 10, 30
QUANTITY = 1.0
CAPITAL = 100_000.0
FEE = 1e-4
SEED = 1
SWEEP_FAST = list(range(5, 101, 5))
SWEEP_SLOW = list(range(10, 1001, 10))
ENGINE = {"initial_capital": CAPITAL, "fee_rate": FEE, "fill": "next_open"}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------- numpy reference ----------
def moving_average(close: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average along the last axis, NaN while warming up (cumulative sums of the
    prices less the first one, which keeps their rounding error small)."""
    base = close[..., :1]
    csum = np.cumsum(close - base, axis=-1)
    out = np.full(close.shape, np.nan)
    out[..., window - 1] = csum[..., window - 1] / window
    out[..., window:] = (csum[..., window:] - csum[..., :-window]) / window
    return out + base


def flip_backtest(opens: np.ndarray, closes: np.ndarray, above: np.ndarray, ppy: float) -> dict[str, np.ndarray]:
    """Long-only flips on rows of bars: hold QUANTITY from the open after ``above`` turns True to
    the open after it turns False. Net PnL (marked at the last close), Sharpe of per-bar equity
    returns, and the number of fills, per row."""
    target = above.astype(np.float64) * QUANTITY
    change = np.diff(target, axis=-1, prepend=0.0)[..., :-1]        # decided at bar t, filled at t + 1
    price = opens[..., 1:]
    flow = np.zeros(above.shape)
    flow[..., 1:] = -(change * price) - FEE * np.abs(change) * price
    position = np.zeros(above.shape)
    position[..., 1:] = np.cumsum(change, axis=-1)
    equity = CAPITAL + np.cumsum(flow, axis=-1) + position * closes
    returns = np.diff(equity, axis=-1, prepend=CAPITAL) / CAPITAL
    with np.errstate(invalid="ignore", divide="ignore"):       # a run that never trades: NaN
        sharpe = returns.mean(axis=-1) / returns.std(axis=-1, ddof=1) * np.sqrt(ppy)
    return {"net_pnl": equity[..., -1] - CAPITAL, "sharpe": sharpe,
            "fills": np.count_nonzero(change, axis=-1)}


def _ppy(bars: np.ndarray) -> float:
    return 365 * 86400e9 / np.min(np.diff(bars["timestamp_ns"]))


def numpy_flips(opens: np.ndarray, closes: np.ndarray, ppy: float) -> dict[str, np.ndarray]:
    """The spec on rows of bars (one path per row): the SMA cross, then the flips' backtest."""
    above = moving_average(closes, FAST) > moving_average(closes, SLOW)
    return flip_backtest(opens, closes, above, ppy)


def numpy_permutations(bars: np.ndarray, n: int, seed: int, chunk: int = 25) -> dict[str, np.ndarray]:
    """The SMA-cross permutation study written with numpy: n paths whose close-to-close moves are
    the real ones shuffled (numpy's generator; open/close ratios move with their bar), ``chunk``
    paths per vectorised pass."""
    close = bars["close"]
    log_returns = np.log(close[1:] / close[:-1])
    open_ratio = bars["open"][1:] / close[1:]
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, n, chunk):
        orders = np.stack([rng.permutation(log_returns.shape[0]) for _ in range(min(chunk, n - start))])
        closes = np.empty((orders.shape[0], close.shape[0]))
        closes[:, 0] = close[0]
        closes[:, 1:] = close[0] * np.exp(np.cumsum(log_returns[orders], axis=1))
        opens = np.empty_like(closes)
        opens[:, 0] = bars["open"][0]
        opens[:, 1:] = closes[:, 1:] * open_ratio[orders]
        parts.append(numpy_flips(opens, closes, _ppy(bars)))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def numpy_on_paths(paths: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The numpy backtest of the spec on given BAR_DTYPE paths (tradebus's own, for the check)."""
    return numpy_flips(np.stack([p["open"] for p in paths]), np.stack([p["close"] for p in paths]), _ppy(paths[0]))


def numpy_sweep(bars: np.ndarray, chunk: int = 20) -> dict[str, np.ndarray]:
    """The 2,000-point sweep with numpy: each moving average computed once, the points' backtests
    vectorised ``chunk`` at a time (fast-major order, like the grid)."""
    close, opens = bars["close"], bars["open"]
    ppy = _ppy(bars)
    averages = {w: moving_average(close, w) for w in sorted(set(SWEEP_FAST) | set(SWEEP_SLOW))}
    points = [(f, s) for f in SWEEP_FAST for s in SWEEP_SLOW]
    parts = []
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        above = np.stack([averages[f] > averages[s] for f, s in block])
        parts.append(flip_backtest(opens[None, :], close[None, :], above, ppy))
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


# ---------------------------------------------------------------- vectorbt ------------------
def vectorbt_available() -> bool:
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        return False
    return True


def _vbt_portfolio(vbt, opens, closes, fast_ma: np.ndarray, slow_ma: np.ndarray) -> np.ndarray:
    """Total profit per column of vectorbt's from_signals on the spec: entries where
    fast > slow starts to hold (from the first warm bar, like sma_cross), exits where it stops,
    decided at t and traded at t + 1's open. The cash is ample so that no order is refused for
    want of it (tradebus lets cash go negative): profits compare one to one."""
    with np.errstate(invalid="ignore"):
        above = fast_ma > slow_ma                                   # NaN (warming up) compares False
    before = np.zeros_like(above)
    before[1:] = above[:-1]
    entries, exits = above & ~before, ~above & before
    entries = np.concatenate([np.zeros_like(entries[:1]), entries[:-1]])
    exits = np.concatenate([np.zeros_like(exits[:1]), exits[:-1]])
    pf = vbt.Portfolio.from_signals(closes, entries, exits, price=opens, size=QUANTITY, fees=FEE,
                                    init_cash=CAPITAL * 1e6, freq="1min")
    return np.asarray(pf.total_profit())


def vectorbt_permutations(bars: np.ndarray, n: int, seed: int, chunk: int = 50) -> np.ndarray:
    """Total profit of the spec on tradebus's permuted paths, ``chunk`` paths (columns) a call."""
    import pandas as pd
    import vectorbt as vbt

    out = []
    paths = permutation_paths(bars, n, seed)
    for start in range(0, n, chunk):
        block = [next(paths) for _ in range(min(chunk, n - start))]
        closes = pd.DataFrame(np.stack([p["close"] for p in block], axis=1))
        opens = pd.DataFrame(np.stack([p["open"] for p in block], axis=1))
        fast = vbt.MA.run(closes, FAST).ma.to_numpy()
        slow = vbt.MA.run(closes, SLOW).ma.to_numpy()
        out.append(_vbt_portfolio(vbt, opens, closes, fast, slow))
    return np.concatenate(out)


def vectorbt_sweep(bars: np.ndarray, chunk: int = 100) -> np.ndarray:
    """The 2,000-point sweep with vectorbt: one MA.run over every window length, then
    from_signals on ``chunk`` points (columns) at a time."""
    import pandas as pd
    import vectorbt as vbt

    windows = sorted(set(SWEEP_FAST) | set(SWEEP_SLOW))
    ma = vbt.MA.run(pd.Series(bars["close"]), windows).ma.to_numpy()
    column = {w: k for k, w in enumerate(windows)}
    points = [(f, s) for f in SWEEP_FAST for s in SWEEP_SLOW]
    out = []
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        closes = np.repeat(bars["close"][:, None], len(block), axis=1)
        opens = np.repeat(bars["open"][:, None], len(block), axis=1)
        out.append(_vbt_portfolio(vbt, opens, closes, ma[:, [column[f] for f, _ in block]],
                                  ma[:, [column[s] for _, s in block]]))
    return np.concatenate(out)


def vectorbt_warm_up(bars: np.ndarray) -> float:
    """Seconds of numba compilation on first use (excluded from the figures)."""
    part = bars[:2000]
    seconds, _ = timed(lambda: (vectorbt_permutations(part, 2, SEED), vectorbt_sweep(part, chunk=50)))
    return seconds


# ---------------------------------------------------------------- tradebus ------------------
def python_sweep(bars: np.ndarray) -> list[dict]:
    """The sweep before issue 18: the Python signal function per point, then one run_batch."""
    engine = Engine(**ENGINE)
    engine.load_bars(bars)
    return engine.run_batch([sma_cross(bars, f, s, QUANTITY) for f in SWEEP_FAST for s in SWEEP_SLOW])


def agreement(a, b) -> str:
    """How close two per-run net PnL arrays are: runs within 1e-9 of the capital, largest gap."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    gap = np.abs(a - b) / CAPITAL
    return f"{np.count_nonzero(gap <= 1e-9)}/{len(a)} runs equal, max |diff| {np.max(gap):.1e} of capital"


# ---------------------------------------------------------------- the farm ------------------
async def farm_permutations(bars: np.ndarray, n: int, workers: int = 2, threads: int = 1) -> dict:
    """A rule permutation study (the spec, n paths + the real run) on ``workers`` real
    backtest_worker processes: wall time from the first job published to the last result read,
    and the CPU the workers, the nats-server and this process spent, per job (bench/farm.py's
    harness: warmed workers, JetStream file storage)."""
    from farm import CpuMeter, bench_bus, run_study, start_workers, stop_workers, wait_workers
    from tradebus.study import build_jobs, make_spec, publish_dataset, run_jobs
    from tradebus.study.rules import resolve_rule
    from tradebus.study.settings import study_settings

    settings = study_settings(taker_fee_bps=FEE * 1e4, initial_cash=CAPITAL)
    rule = resolve_rule("sma_cross")
    async with bench_bus() as (server, bus, tmp):
        ident = await publish_dataset(bus, bars)
        procs = start_workers(server.url, workers, tmp / "cache", tmp / "logs", "--threads", str(threads))
        meter = CpuMeter(procs, server.process.pid)
        try:
            await wait_workers(bus, workers)
            warm = make_spec("permutation", strategy="sma_cross", rule=rule, dataset_id=ident, n=8 * workers,
                             seed=2, settings=settings, params={"fast": FAST, "slow": SLOW})
            await run_study(bus, warm)          # datasets fetched and cached, imports done
            spec = make_spec("permutation", strategy="sma_cross", rule=rule, dataset_id=ident, n=n, seed=SEED,
                             settings=settings, params={"fast": FAST, "slow": SLOW})
            _, wall, seen, (w_cpu, s_cpu, c_cpu) = await run_study(bus, spec, meter)
        finally:
            stop_workers(procs)
    jobs = [p.job for p in build_jobs(spec)]
    cpu0 = time.process_time()
    run_jobs({ident: bars}, jobs, threads)  # the same jobs' computation alone, in this process
    compute = time.process_time() - cpu0
    count = len(jobs)
    return {"wall": wall, "workers_seen": seen, "worker_ms": 1e3 * w_cpu / count, "server_ms": 1e3 * s_cpu / count,
            "client_ms": 1e3 * c_cpu / count, "compute_ms": 1e3 * compute / count}


# ---------------------------------------------------------------- main ----------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def best_of(repeats: int, fn):
    """(fastest wall seconds of ``repeats`` runs, the CPU seconds of that run (every thread of
    this process), the last result). CPU time moves less with the machine's load than wall."""
    best, cpu, out = float("inf"), 0.0, None
    for _ in range(repeats):
        cpu0 = time.process_time()
        seconds, out = timed(fn)
        if seconds < best:
            best, cpu = seconds, time.process_time() - cpu0
    return best, cpu, out


def permutation_rows(bars: np.ndarray, n: int, args) -> tuple[list[tuple[str, str]], float]:
    from tradebus.study.rules import resolve_rule

    rule = resolve_rule("sma_cross")
    label = f"(a) permutation test, {n} paths x {len(bars):,} synthetic bars"
    rows = [(label, "")]
    compiled_s, cpu, result = best_of(3, lambda: permutation_test(bars, rule, n=n, seed=SEED,
                                                                  params={"fast": FAST, "slow": SLOW}, **ENGINE))
    rows.append(("  permutation_test(bars, rule) end to end (best of 3)",
                 f"{compiled_s:.3f} s, CPU {cpu:.2f} s = {1e3 * cpu / (n + 1):.2f} ms per run "
                 f"(target < 0.5 s on 2 cores: {verdict(compiled_s < 0.5)}; p-value {result.p_value:.3f})"))
    if not args.no_python:
        python_s, _ = timed(lambda: permutation_test(bars, lambda b: sma_cross(b, FAST, SLOW, QUANTITY), n=n,
                                                     seed=SEED, **ENGINE))
        rows.append(("  permutation_test(bars, sma_cross) end to end, Python function (before)",
                     f"{python_s:.2f} s  ({python_s / compiled_s:.0f}x the rule)"))
    numpy_s, _, _ = best_of(2, lambda: numpy_permutations(bars, n, SEED))
    check = numpy_on_paths(list(permutation_paths(bars, 20, SEED)))["net_pnl"]
    rows.append(("  numpy reference, vectorised over paths (best of 2)",
                 f"{numpy_s:.2f} s  ({numpy_s / compiled_s:.1f}x the rule; on tradebus's first 20 paths: "
                 f"{agreement(check, result.distribution['net_pnl'][:20])})"))
    if vectorbt_available() and not args.no_vectorbt:
        jit = vectorbt_warm_up(bars)
        vbt_s, profits = timed(lambda: vectorbt_permutations(bars, n, SEED))
        rows.append(("  vectorbt Portfolio.from_signals, 50 paths per call",
                     f"{vbt_s:.2f} s  ({vbt_s / compiled_s:.0f}x the rule; "
                     f"{agreement(profits, result.distribution['net_pnl'])}; JIT warm-up {jit:.1f} s excluded)"))
    return rows, compiled_s


def sweep_rows(real: np.ndarray, args) -> list[tuple[str, str]]:
    from tradebus.study.rules import resolve_rule

    rule = resolve_rule("sma_cross")
    grid = {"fast": SWEEP_FAST, "slow": SWEEP_SLOW}
    points = len(SWEEP_FAST) * len(SWEEP_SLOW)
    rows = [(f"(b) sweep, {points:,} SMA points x {len(real):,} real BTCUSDT 1m bars", "")]
    compiled_s, cpu, result = best_of(3, lambda: sweep(real, rule, grid, **ENGINE))
    pnl = result.stats["net_pnl"]
    rows.append(("  sweep(bars, rule, grid) end to end (best of 3)",
                 f"{compiled_s:.3f} s, CPU {cpu:.2f} s  (target < 1 s: {verdict(compiled_s < 1.0)})"))
    python_s, stats = timed(lambda: python_sweep(real))
    rows.append(("  Python sma_cross per point + one run_batch (before)",
                 f"{python_s:.2f} s  ({python_s / compiled_s:.0f}x the rule; "
                 f"{agreement([s['net_pnl'] for s in stats], pnl)})"))
    numpy_s, ref = timed(lambda: numpy_sweep(real))
    rows.append(("  numpy reference, one moving average per length",
                 f"{numpy_s:.2f} s  ({numpy_s / compiled_s:.1f}x the rule; {agreement(ref['net_pnl'], pnl)})"))
    if vectorbt_available() and not args.no_vectorbt:
        vbt_s, profits = timed(lambda: vectorbt_sweep(real))
        rows.append(("  vectorbt Portfolio.from_signals, 100 points per call",
                     f"{vbt_s:.2f} s  ({vbt_s / compiled_s:.0f}x the rule; {agreement(profits, pnl)})"))
    return rows


def main() -> int:
    import asyncio

    from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, read_bars

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perms", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 paths, print only (nothing recorded)")
    parser.add_argument("--no-vectorbt", action="store_true")
    parser.add_argument("--no-python", action="store_true", help="skip the slow Python-function baselines")
    parser.add_argument("--no-farm", action="store_true")
    args = parser.parse_args()
    n = 100 if args.quick else args.perms
    load_before = os.getloadavg()
    bars = synthetic_bars(100_000)
    rows, direct_s = permutation_rows(bars, n, args)
    real = read_bars(data_dir() / DEFAULT_BARS_FILE)
    rows += sweep_rows(real, args)
    if not args.no_farm:
        farm = asyncio.run(farm_permutations(bars, n, workers=2))
        rows += [
            (f"(c) farm: the same rule permutation study, {n} paths + the real run, 2 workers", ""),
            ("  worker CPU per job", f"{farm['worker_ms']:.3f} ms  (target < 1 ms: {verdict(farm['worker_ms'] < 1)})"),
            ("  of which computing (the same jobs through run_jobs in process)", f"{farm['compute_ms']:.3f} ms CPU per job"),
            ("  nats-server / submit+collect CPU per job", f"{farm['server_ms']:.3f} / {farm['client_ms']:.3f} ms"),
            ("  wall, first job published to last result read",
             f"{farm['wall']:.2f} s = {farm['wall'] / direct_s:.2f}x the direct call "
             f"(target within 1.5x: {verdict(farm['wall'] <= 1.5 * direct_s)}; {farm['workers_seen']} workers seen)"),
        ]
    load_after = os.getloadavg()
    rows.append(("load average (1/5/15 min) before / after",
                 "{:.2f} {:.2f} {:.2f} / {:.2f} {:.2f} {:.2f}".format(*load_before, *load_after)))
    notes = ("Spec: SMA(10)/SMA(30) long-only flips of 1 unit, next-open fills, fee 1e-4, capital 100,000; "
             "the rule is the built-in sma_cross's rule form (tradebus.study.rules). The machine is shared: "
             "2 cores with other helpers' builds and tests (see the load average), so the figures are upper "
             "bounds and the parallel ones move most. The numpy reference draws its own permutations with "
             "numpy's generator (same work, different paths) and is checked on tradebus's own first paths; "
             "its moving averages are cumulative sums, so where two averages are exactly equal in the engine "
             "(flat prices) they can differ by ~1e-10 and flip one decision: a few sweep points differ. "
             "vectorbt runs on tradebus's paths. Farm: real nats-server (JetStream file storage) and two "
             "backtest_worker processes on the same 2 cores as the direct call, workers warmed first.")
    if args.quick:
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"  {key:<{width}}  {value}")
        print(notes)
    else:
        record("studies at engine speed (issue 18)", rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
