"""Batch backtest engine: load, one run, 1,000 permutation runs, against FLOX's figures and numpy.

Data: the real Binance BTCUSDT 1-minute klines in ../shared/data (130,708 bars) and 100,000
synthetic bars (a seeded random walk). Strategy: the long-only SMA(10)/SMA(30) cross of
tradebus.engine.examples.sma_cross, as in FLOX's benchmark (about 3,900 signals per 100K bars).

Figures (wall clock, median of repeats):
- load: Engine.load_bars_df of the arrays (check, copy, block summaries), reloading one symbol
  (as a benchmark loop does: freed memory is reused) and, separately, the first load of a
  process (fresh pages from the kernel);
- one run: Engine.run of the strategy's signals;
- 1,000 permutation runs: Engine.run_batch of the signals made on 1,000 return-shuffled paths,
  all run on the loaded bars (FLOX's variant), on 1 and on 2 threads; the scaling between them;
- permutation_test(n=1000) end to end in tradebus's default mode (each path its own instrument):
  path generation, the strategy in Python, loading and the batch together;
- memory: bytes per loaded bar and the scratch each concurrent run needs;
- a straightforward vectorised numpy implementation of the same run, side by side.

Usage: ``python bench/engine.py [--quick]`` (--quick prints without recording). OpenBLAS is
kept to one thread so its idle spinning does not compete with the engine's OpenMP threads.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from _results import record  # noqa: E402
from tradebus.engine import BAR_DTYPE, Engine, permutation_paths, permutation_test  # noqa: E402
from tradebus.engine.examples import sma_cross  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("TRADEBUS_DATA_DIR", ROOT.parent / "shared" / "data"))
KLINES = DATA_DIR / "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz"
FLOX = {"load": 0.47, "run": 1.5, "batch": 594.0}   # ms, FLOX's C++ engine on this machine (issue 3)
CONFIG = {"initial_capital": 100_000.0, "fee_rate": 0.0001, "fill": "close"}   # FLOX fills at the close


def synthetic_bars(n: int = 100_000, seed: int = 42) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    bars = np.zeros(n, dtype=BAR_DTYPE)
    bars["timestamp_ns"] = 1_700_000_000_000_000_000 + 60_000_000_000 * np.arange(n)
    bars["open"] = np.concatenate(([close[0]], close[:-1]))
    bars["high"] = np.maximum(bars["open"], close) * (1 + np.abs(rng.normal(0, 0.0005, n)))
    bars["low"] = np.minimum(bars["open"], close) * (1 - np.abs(rng.normal(0, 0.0005, n)))
    bars["close"] = close
    bars["volume"] = rng.uniform(1, 10, n)
    return bars


def real_bars() -> np.ndarray | None:
    if not KLINES.exists():
        return None
    with gzip.open(KLINES, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", skiprows=1)
    engine = Engine()
    engine.load_bars_df(raw[:, 0].astype(np.int64), *raw[:, 1:6].T)
    return engine.instrument().bars()


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def numpy_run(bars: np.ndarray, signals: np.ndarray, initial_capital: float, fee_rate: float,
              fill: str = "close") -> dict:
    """The same run (market orders at the close) written the obvious way with numpy."""
    capital = initial_capital
    close = bars["close"]
    at = np.maximum(np.searchsorted(bars["timestamp_ns"], signals["timestamp_ns"], "right") - 1, 0)
    qty = np.where(signals["side"] == 0, signals["quantity"], -signals["quantity"])
    price = close[at]
    fee = fee_rate * np.abs(qty) * price
    flow = np.zeros(len(close))
    np.add.at(flow, at, qty * price + fee)
    traded = np.zeros(len(close))
    np.add.at(traded, at, qty)
    equity = capital - np.cumsum(flow) + np.cumsum(traded) * close
    r = np.diff(equity, prepend=capital) / capital
    peak = np.maximum.accumulate(np.concatenate(([capital], equity)))[1:]
    ppy = 365 * 86400e9 / np.min(np.diff(bars["timestamp_ns"]))
    return {
        "net_pnl": equity[-1] - capital,
        "sharpe": r.mean() / r.std(ddof=1) * np.sqrt(ppy),
        "max_drawdown": np.max(peak - equity),
        "max_drawdown_pct": np.max((peak - equity) / peak) * 100,
    }


def first_load_ms(path: Path) -> float:
    """A fresh process's first load_bars of the saved bars (pages come from the kernel)."""
    code = (
        "import os, time, numpy as np; os.environ['OPENBLAS_NUM_THREADS']='1';"
        "from tradebus.engine import Engine;"
        f"b=np.load({str(path)!r}); cols=[np.ascontiguousarray(b[k]) for k in b.dtype.names];"
        "e=Engine(); t=time.perf_counter(); e.load_bars_df(*cols); print((time.perf_counter()-t)*1e3)"
    )
    runs = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)]
    return statistics.median(runs)


def measure(name: str, bars: np.ndarray, paths: int, repeats: int, tmp: Path) -> list[tuple[str, str]]:
    cols = [np.ascontiguousarray(bars[k]) for k in BAR_DTYPE.names]
    engine = Engine(**CONFIG)
    load = median_ms(lambda: engine.load_bars_df(*cols), repeats)
    np.save(tmp, bars)
    cold = first_load_ms(tmp)
    signals = sma_cross(bars)
    run = median_ms(lambda: engine.run(signals), repeats)
    numpy_ms = median_ms(lambda: numpy_run(bars, signals, **CONFIG), max(3, repeats // 10))
    stats, ref = engine.run(signals), numpy_run(bars, signals, **CONFIG)
    agree = max(abs(stats[k] - ref[k]) / max(abs(ref[k]), 1e-12) for k in ref)

    sets = [sma_cross(p) for p in permutation_paths(bars, paths, seed=1)]
    batch = {t: median_ms(lambda t=t: engine.run_batch(sets, threads=t), 5) for t in (1, 2)}
    per_bar = engine.instrument().nbytes / len(bars)
    scratch = (max(len(s) for s in sets) + 1) * 32

    t0 = time.perf_counter()
    study = permutation_test(bars, sma_cross, n=paths, seed=1, **CONFIG)
    study_ms = (time.perf_counter() - t0) * 1e3
    per_100k = 100_000 / len(bars)
    def verdict(ok):
        return "met" if ok else "missed"
    targets = (f"load < 0.3 ms: {verdict(load * per_100k < 0.3)}; run < 0.3 ms: "
               f"{verdict(run * per_100k < 0.3)}; 1000 runs on 2 threads < 60 ms: "
               f"{verdict(paths == 1000 and batch[2] * per_100k < 60)} (per 100K bars)")
    return [
        (f"{name}: bars / signals (SMA 10/30 cross)", f"{len(bars):,} / {len(signals):,}"),
        (f"{name}: issue 3 targets", targets),
        (f"{name}: load (reloading, median)", f"{load:.3f} ms  (FLOX 0.47 ms per 100K)"),
        (f"{name}: load (first in a fresh process)", f"{cold:.3f} ms"),
        (f"{name}: one run", f"{run:.3f} ms  (FLOX 1.5 ms per 100K)"),
        (f"{name}: one run, vectorised numpy", f"{numpy_ms:.2f} ms ({numpy_ms / run:.0f}x slower; "
                                               f"max rel. difference {agree:.1e})"),
        (f"{name}: {paths} permutation runs, run_batch, 1 thread", f"{batch[1]:.1f} ms"),
        (f"{name}: {paths} permutation runs, run_batch, 2 threads",
         f"{batch[2]:.1f} ms  (FLOX 594 ms for 1000 per 100K)"),
        (f"{name}: scaling 1 -> 2 threads", f"{batch[1] / batch[2]:.2f}x"),
        (f"{name}: permutation_test(n={paths}) end to end, paths mode",
         f"{study_ms / 1e3:.2f} s  (p-value {study.p_value:.3f})"),
        (f"{name}: memory per loaded bar / per concurrent run",
         f"{per_bar:.1f} B / {scratch / 1024:.0f} KiB scratch"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="100 paths and fewer repeats; prints, does not record")
    args = parser.parse_args()
    paths, repeats = (100, 20) if args.quick else (1000, 200)
    load_before = os.getloadavg()[0]
    tmp = Path("/tmp") / f"tradebus_bench_bars_{os.getpid()}.npy"
    rows = []
    try:
        rows += measure("synthetic 100K", synthetic_bars(), paths, repeats, tmp)
        real = real_bars()
        if real is not None:
            rows += measure("BTCUSDT 1m", real, paths, repeats, tmp)
        else:
            print(f"real data not found at {KLINES}; synthetic only")
    finally:
        tmp.unlink(missing_ok=True)
    notes = (
        f"Load average before the run: {load_before:.2f}, after: {os.getloadavg()[0]:.2f} "
        "(other work may share the 2 cores). FLOX's figures are the issue's, measured on this machine "
        "for 100K bars. 'paths mode' loads every shuffled path as its own instrument and calls "
        "the Python strategy on it, so it is bound by numpy and Python, not by the engine."
    )
    if args.quick:
        for key, value in rows:
            print(f"  {key:<58}  {value}")
        print(notes)
    else:
        record("engine (tradebus.engine, Cython batch backtest)", rows, notes)


if __name__ == "__main__":
    main()
