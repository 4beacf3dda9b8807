"""Permutation tests: is a strategy's result better than on markets with the same returns in a
random order?"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from tradebus.engine.bars import BAR_DTYPE  # noqa: F401  BAR_DTYPE: the doctests
from tradebus.engine.batch import Engine
from tradebus.engine.ledger import STAT_KEYS
from tradebus.engine.paths import permuted_path

__all__ = ["PermutationResult", "permutation_paths", "permutation_test"]

MODES = ("paths", "signals")
# Paths loaded at once in "paths" mode are limited to about this many bytes of engine memory.
PATH_MEMORY_BUDGET = 1 << 30
BYTES_PER_BAR = 49  # six float64 columns plus the block summaries


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    real: statistics of the strategy on the real bars; distribution: each statistic over the
    permuted runs (arrays of length n); p_values: for each statistic, the share of runs at least
    as high as the real one, (1 + #{perm >= real}) / (n + 1); p_value: p_values[statistic].
    """

    real: dict
    distribution: dict[str, np.ndarray]
    p_values: dict[str, float]
    statistic: str
    p_value: float
    n: int
    mode: str
    seed: int | None


def _loaded(bars):
    """The validated instrument (timestamps in ns) of a BAR_DTYPE array, frame or mapping."""
    engine = Engine()
    if isinstance(bars, np.ndarray) and bars.dtype.names:
        engine.load_bars(bars)
    else:
        engine.load_bars_frame(bars)
    return engine.instrument()


def _as_bars(bars) -> np.ndarray:
    """Validated BAR_DTYPE copy (timestamps in ns) of a BAR_DTYPE array, frame or mapping."""
    return _loaded(bars).bars()


def permutation_paths(bars, n: int, seed: int | None = None) -> Iterator[np.ndarray]:
    """Yield n BAR_DTYPE paths whose close-to-close log returns are the real ones shuffled.

    Bar 0 and the timestamps stay; each bar keeps its open, high and low relative to its close
    (and its volume), so a shuffled bar moves with its return. Same seed, same paths.

    >>> bars = np.zeros(3, dtype=BAR_DTYPE)
    >>> bars["timestamp_ns"] = [0, 60_000_000_000, 120_000_000_000]
    >>> for f in ("open", "high", "low", "close"): bars[f] = [100.0, 110.0, 99.0]
    >>> sorted(round(float(p["close"][-1]), 6) for p in permutation_paths(bars, 2, seed=1))
    [99.0, 99.0]
    """
    inst = _loaded(bars)
    close = inst.close
    log_returns = np.log(close[1:] / close[:-1])
    shape = np.empty((close.shape[0] - 1, 4))     # (open, high, low) / close, volume by row
    for j, f in enumerate(("open", "high", "low")):
        shape[:, j] = getattr(inst, f)[1:] / close[1:]
    shape[:, 3] = inst.volume[1:]
    first = np.array([inst.open[0], inst.high[0], inst.low[0], close[0], inst.volume[0]])
    rng = np.random.default_rng(seed)
    for _ in range(int(n)):
        order = rng.permutation(log_returns.shape[0])
        closes = close[0] * np.exp(np.cumsum(log_returns[order]))
        yield permuted_path(inst.timestamps, first, closes, order, shape)


def permutation_test(
    bars,
    strategy_fn: Callable[[np.ndarray], np.ndarray],
    n: int = 1000,
    seed: int | None = None,
    *,
    mode: str = "paths",
    statistic: str = "net_pnl",
    threads: int = 0,
    batch_size: int | None = None,
    **engine_options,
) -> PermutationResult:
    """Permutation test of ``strategy_fn`` (bars -> signals from make_signals) on ``bars``.

    mode="paths": each of the n shuffled paths is loaded as an instrument and the signals the
    strategy makes on it run on it, in one run_batch of ``batch_size`` paths at a time (by
    default as many as fit in about 1 GiB of engine memory, 49 bytes a bar: all of them for up
    to ~20M path-bars). mode="signals" (FLOX's variant): the signals made on each shuffled path
    run on the real bars, in one run_batch. The p-value is one-sided, high is better, for every
    statistic. engine_options go to Engine (initial_capital, fee_rate, slippage_bps, fill).

    >>> from tradebus.engine import make_signals
    >>> bars = np.zeros(4, dtype=BAR_DTYPE)
    >>> bars["timestamp_ns"] = np.arange(4) * 60_000_000_000
    >>> for f in ("open", "high", "low", "close"): bars[f] = [10.0, 11.0, 10.5, 12.0]
    >>> buy_and_hold = lambda b: make_signals(b["timestamp_ns"][:1], [0], [1.0])
    >>> result = permutation_test(bars, buy_and_hold, n=20, seed=7, fee_rate=0.0, fill="close")
    >>> round(result.real["net_pnl"], 6), len(result.distribution["net_pnl"]), 0 < result.p_value <= 1
    (2.0, 20, True)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if statistic not in STAT_KEYS:
        raise ValueError(f"unknown statistic {statistic!r}; one of {STAT_KEYS}")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    real_bars = _as_bars(bars)
    real_engine = Engine(**engine_options)
    real_engine.load_bars(real_bars)
    real = real_engine.run(strategy_fn(real_bars))
    paths = permutation_paths(real_bars, n, seed)
    if mode == "signals":
        results = real_engine.run_batch([strategy_fn(path) for path in paths], threads=threads)
    else:
        per_batch = batch_size or max(1, PATH_MEMORY_BUDGET // (BYTES_PER_BAR * real_bars.shape[0]))
        results = []
        while len(results) < n:
            engine = Engine(**engine_options)
            items = []
            for k in range(min(per_batch, n - len(results))):
                path = next(paths)
                engine.load_bars(path, symbol=k)
                items.append((k, strategy_fn(path)))
            results.extend(engine.run_batch(items, threads=threads))
            del engine
    distribution = {key: np.array([r[key] for r in results], dtype=np.float64) for key in STAT_KEYS}
    p_values = {
        key: float((1 + np.count_nonzero(values >= real[key])) / (n + 1))
        for key, values in distribution.items()
    }
    return PermutationResult(real=real, distribution=distribution, p_values=p_values,
                             statistic=statistic, p_value=p_values[statistic], n=n, mode=mode,
                             seed=seed)
