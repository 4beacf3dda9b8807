"""Parameter sweeps of a signal rule, fused: every distinct indicator of every point computed
once over the bars, then per point (in parallel) its conditions, signals and engine run."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from tradebus.engine.batch import Engine
from tradebus.engine.fused import sweep_stats
from tradebus.engine.ledger import STAT_KEYS
from tradebus.engine.permutation import _loaded, as_rule
from tradebus.engine.rule_language import Rule, RuleError
from tradebus.engine.rules import compile_program

__all__ = ["SweepResult", "expand_grid", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    """Outcome of :func:`sweep`: ``points[i]`` (the parameters) scored ``stats[key][i]``."""

    points: list[dict]
    stats: dict[str, np.ndarray]

    def rows(self) -> list[dict]:
        """One dict per point: its parameters, then every statistic."""
        return [{**point, **{key: values[i].item() for key, values in self.stats.items()}}
                for i, point in enumerate(self.points)]

    def best(self, statistic: str = "sharpe") -> dict:
        """The row with the highest ``statistic`` (the first of equals)."""
        if statistic not in self.stats:
            raise ValueError(f"unknown statistic {statistic!r}; one of {STAT_KEYS}")
        return self.rows()[int(np.argmax(self.stats[statistic]))]


def expand_grid(grid: Mapping[str, Sequence] | Sequence[Mapping]) -> list[dict]:
    """A list of parameter dicts as given, or every combination of a dict of lists (the last
    name varying fastest)."""
    if isinstance(grid, Mapping):
        names = list(grid)
        for name in names:
            if isinstance(grid[name], (str, bytes)) or not isinstance(grid[name], Sequence):
                raise RuleError(f"grid {name!r}: a list of values is needed, got {grid[name]!r}")
        return [dict(zip(names, combo)) for combo in product(*(grid[name] for name in names))]
    points = [dict(point) for point in grid]
    for k, point in enumerate(points):
        if not all(isinstance(name, str) for name in point):
            raise RuleError(f"grid point {k}: parameter names must be strings")
    return points


def sweep(bars, rule: Rule | str, grid: Mapping[str, Sequence] | Sequence[Mapping], *, threads: int = 0,
          **engine_options) -> SweepResult:
    """Run ``rule`` (a Rule or a built-in rule's name) at every point of ``grid`` on ``bars``
    (a BAR_DTYPE array, frame or mapping). engine_options go to Engine (initial_capital,
    fee_rate, slippage_bps, fill); threads=0 uses all cores.

    >>> from tradebus.engine import BAR_DTYPE
    >>> bars = np.zeros(60, dtype=BAR_DTYPE)
    >>> bars["timestamp_ns"] = np.arange(60) * 60_000_000_000
    >>> for f in ("open", "high", "low", "close"): bars[f] = 100 + np.sin(np.arange(60) / 5)
    >>> result = sweep(bars, "sma_cross", {"fast": [2, 3], "slow": [10, 20]}, fee_rate=0.0)
    >>> [(p["fast"], p["slow"]) for p in result.points], len(result.stats["net_pnl"])
    ([(2, 10), (2, 20), (3, 10), (3, 20)], 4)
    """
    resolved = as_rule(rule)
    if resolved is None:
        raise TypeError("sweep runs a signal Rule (or a built-in rule's name); for a Python "
                        "function run Engine.run_batch over its signals")
    points = expand_grid(grid)
    engine = Engine(**engine_options)
    engine.load_bars(_loaded(bars).bars())
    instrument = engine.instrument()
    program = compile_program(resolved.compile_grid(points, len(instrument)))
    results = sweep_stats(engine, instrument, program, threads=threads)
    stats = {key: np.array([r[key] for r in results], dtype=np.float64) for key in STAT_KEYS}
    return SweepResult(points=points, stats=stats)
