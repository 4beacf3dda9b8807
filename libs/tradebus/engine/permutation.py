"""Permutation tests: is a strategy's result better than on markets with the same returns in a
random order?

A strategy is a signal rule (:mod:`tradebus.engine.rule_language`, or the name of a built-in
such as ``"sma_cross"``), run by the fused pipeline (fused.pyx: paths, indicators, rule and
engine per path in one parallel loop), or a Python signal function, run path by path.
Both see the same paths for the same seed (paths.pyx).
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from tradebus.engine.bars import BAR_DTYPE  # noqa: F401  BAR_DTYPE: the doctests
from tradebus.engine.batch import Engine
from tradebus.engine.examples import builtin_rule
from tradebus.engine.fused import permutation_stats
from tradebus.engine.ledger import STAT_KEYS
from tradebus.engine.paths import PathSource, check_seed
from tradebus.engine.rule_language import Rule, RuleError
from tradebus.engine.rules import compile_program, rule_signals

__all__ = ["PermutationResult", "as_rule", "permutation_paths", "permutation_test"]

MODES = ("paths", "signals")
# Paths loaded at once in "paths" mode are limited to about this many bytes of engine memory.
PATH_MEMORY_BUDGET = 1 << 30
BYTES_PER_BAR = 49  # six float64 columns plus the block summaries


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of :func:`permutation_test`.

    real: statistics of the strategy on the real bars; distribution: each statistic over the
    permuted runs (arrays of length n); p_values: for each statistic, the share of runs at least
    as high as the real one, (1 + #{perm >= real}) / (n + 1); p_value: p_values[statistic];
    seed: the seed of the paths (drawn when none was given).
    """

    real: dict
    distribution: dict[str, np.ndarray]
    p_values: dict[str, float]
    statistic: str
    p_value: float
    n: int
    mode: str
    seed: int


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


def permutation_paths(bars, n: int, seed: int | None = None, start: int = 0) -> Iterator[np.ndarray]:
    """Yield n BAR_DTYPE paths whose close-to-close moves are the real ones shuffled.

    Bar 0 and the timestamps stay; each bar keeps its open, high and low relative to its close
    (and its volume), so a shuffled bar moves with its return. The k-th path is path
    ``start + k`` of ``seed`` (an integer in [0, 2**64); None draws one): same seed, same
    paths, here and in the fused pipeline.

    >>> bars = np.zeros(3, dtype=BAR_DTYPE)
    >>> bars["timestamp_ns"] = [0, 60_000_000_000, 120_000_000_000]
    >>> for f in ("open", "high", "low", "close"): bars[f] = [100.0, 110.0, 99.0]
    >>> sorted(round(float(p["close"][-1]), 6) for p in permutation_paths(bars, 2, seed=1))
    [99.0, 99.0]
    """
    source = PathSource(_loaded(bars))
    seed = secrets.randbits(64) if seed is None else check_seed(seed)
    for k in range(int(n)):
        yield source.path(seed, start + k)


def as_rule(strategy) -> Rule | None:
    """The rule of ``strategy`` (a Rule or a built-in's name), or None for a Python function."""
    if isinstance(strategy, Rule):
        return strategy
    if isinstance(strategy, str):
        rule = builtin_rule(strategy)
        if rule is None:
            raise RuleError(f"no built-in rule is called {strategy!r}")
        return rule
    if not callable(strategy):
        raise TypeError(f"strategy must be a Rule, a built-in rule's name or a signal function, "
                        f"got {type(strategy).__name__}")
    return None


def permutation_test(
    bars,
    strategy: Rule | str | Callable[[np.ndarray], np.ndarray],
    n: int = 1000,
    seed: int | None = None,
    *,
    mode: str = "paths",
    statistic: str = "net_pnl",
    threads: int = 0,
    batch_size: int | None = None,
    params: Mapping[str, float] | None = None,
    **engine_options,
) -> PermutationResult:
    """Permutation test of ``strategy`` on ``bars``: a signal Rule (``params`` bind its
    parameters; unbound ones take their defaults), a built-in rule's name, or a Python signal
    function (bars -> signals from make_signals).

    A rule runs in the fused pipeline: per path, in parallel, path, indicators, rule and run.
    A function runs path by path: mode="paths" loads each of the n shuffled paths as an
    instrument and runs the signals the strategy makes on it, in one run_batch of
    ``batch_size`` paths at a time (by default as many as fit in about 1 GiB of engine memory,
    49 bytes a bar). mode="signals" (FLOX's variant): the signals made on each shuffled path
    run on the real bars. Path k is path k of ``seed`` (None draws one, kept in the result).
    The p-value is one-sided, high is better, for every statistic. engine_options go to Engine
    (initial_capital, fee_rate, slippage_bps, fill).

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
    rule = as_rule(strategy)
    seed = secrets.randbits(64) if seed is None else check_seed(seed)
    instrument = _loaded(bars)
    real_bars = instrument.bars()
    real_engine = Engine(**engine_options)
    real_engine.load_bars(real_bars)
    if rule is not None:
        program = compile_program(rule.compile(len(real_bars), **dict(params or {})))
        real = real_engine.run(rule_signals(real_bars, program))
        results = permutation_stats(real_engine, PathSource(real_engine.instrument()), program,
                                    np.full(n, seed, dtype=np.uint64), np.arange(n, dtype=np.uint64),
                                    on_real=mode == "signals", threads=threads)
    else:
        if params:
            raise ValueError("params bind a rule's parameters; bind a function's yourself")
        real = real_engine.run(strategy(real_bars))  # type: ignore[operator]
        results = _function_runs(real_engine, real_bars, strategy, n, seed, mode, threads,  # type: ignore[arg-type]
                                 batch_size, engine_options)
    distribution = {key: np.array([r[key] for r in results], dtype=np.float64) for key in STAT_KEYS}
    p_values = {
        key: float((1 + np.count_nonzero(values >= real[key])) / (n + 1))
        for key, values in distribution.items()
    }
    return PermutationResult(real=real, distribution=distribution, p_values=p_values,
                             statistic=statistic, p_value=p_values[statistic], n=n, mode=mode,
                             seed=seed)


def _function_runs(real_engine: Engine, real_bars: np.ndarray, strategy_fn: Callable, n: int, seed: int,
                   mode: str, threads: int, batch_size: int | None, engine_options: dict) -> list[dict]:
    """The permuted runs of a Python signal function, path by path."""
    paths = permutation_paths(real_bars, n, seed)
    if mode == "signals":
        return real_engine.run_batch([strategy_fn(path) for path in paths], threads=threads)
    per_batch = batch_size or max(1, PATH_MEMORY_BUDGET // (BYTES_PER_BAR * real_bars.shape[0]))
    results: list[dict] = []
    while len(results) < n:
        engine = Engine(**engine_options)
        items = []
        for k in range(min(per_batch, n - len(results))):
            path = next(paths)
            engine.load_bars(path, symbol=k)
            items.append((k, strategy_fn(path)))
        results.extend(engine.run_batch(items, threads=threads))
        del engine
    return results
