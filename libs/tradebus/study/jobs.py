"""Studies and their jobs: a parameter sweep, a permutation test or a walk-forward, described by a
:class:`StudySpec` and split into BacktestJobs.

The spec is all a study is: the job list is rebuilt from it (same ids, same seeds), so anyone
holding the spec (the ``bt_studies`` KV bucket keeps it) can collect and report the results.

* sweep: one job per point of the parameter grid.
* permutation: job 0 runs on the real bars, jobs 1..n on permuted paths, one seed each
  (derived from the study seed with numpy's SeedSequence).
* walkforward: the bars are cut into ``folds`` rolling (or anchored) windows, each an in-sample
  part followed by an out-of-sample part; every grid point runs on both parts of every fold.
"""
from __future__ import annotations

import math
import re
import secrets
import time
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import msgspec
import numpy as np

from tradebus.engine import STAT_KEYS
from tradebus.proto import BacktestJob, EngineSettings
from tradebus.proto.control import ParamValue
from tradebus.proto.subjects import name_token

from .rules import Rule, RuleError
from .settings import study_settings, venue_of

__all__ = [
    "KINDS",
    "MAX_JOBS",
    "StudySpec",
    "PlannedJob",
    "StudyError",
    "new_study_id",
    "parse_value",
    "parse_assignments",
    "parse_grid",
    "grid_points",
    "permutation_seeds",
    "walkforward_windows",
    "build_jobs",
    "make_spec",
    "rule_spec_of",
]

KINDS = ("sweep", "permutation", "walkforward")
# Column names of the results table that parameters may not take.
RESERVED_NAMES = frozenset(STAT_KEYS) | {"job_id", "index", "seed", "segment", "fold", "permutation", "status",
                                          "error", "worker", "attempts", "elapsed_ms"}
MAX_JOBS = 1_000_000
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StudyError(ValueError):
    """A study description that cannot be turned into jobs."""


class StudySpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything needed to rebuild a study's jobs and read its results.

    ``venue`` is the venue whose fees are the defaults (``study.settings``); ``bars`` the
    dataset's length (0: not recorded). ``rule``: the strategy as a signal rule's spec
    (``tradebus.study.rules``), carried by every job; ``strategy`` then names it. ``windows``
    (walkforward) holds ``(is_start, is_end, oos_start, oos_end)`` in ns per fold, ends
    exclusive, 0 for an open end. ``objective`` is the statistic that ranks runs.
    """

    study_id: str
    kind: str
    strategy: str
    dataset_id: str
    dataset_name: str = ""
    settings: EngineSettings = msgspec.field(default_factory=EngineSettings)
    grid: dict[str, list[ParamValue]] = {}
    params: dict[str, ParamValue] = {}
    n: int = 0
    seed: int | None = None
    windows: list[tuple[int, int, int, int]] = []
    objective: str = "sharpe"
    total_jobs: int = 0
    created_ns: int = 0
    venue: str = ""
    bars: int = 0
    rule: dict[str, Any] | None = None


@dataclass(frozen=True)
class PlannedJob:
    """A job and the facts about it the results table shows (params, seed, fold, segment)."""

    job: BacktestJob
    meta: dict[str, Any] = field(default_factory=dict)


def new_study_id(kind: str) -> str:
    """``<kind>-YYYYmmdd-HHMMSS-<4 hex>`` (a valid subject token)."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"


def parse_value(text: str) -> ParamValue:
    """``"5"`` -> 5, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise StudyError(f"parameter value {text!r} is not finite")
        return value
    return text


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not value.strip():
        raise StudyError(f"expected name=value, got {item!r}")
    if not _PARAM_NAME.fullmatch(name):
        raise StudyError(f"parameter name {name!r} is not an identifier")
    return name, value.strip()


def parse_assignments(items: list[str] | None) -> dict[str, ParamValue]:
    """``["quantity=0.5", "mode=fast"]`` -> ``{"quantity": 0.5, "mode": "fast"}``."""
    out: dict[str, ParamValue] = {}
    for item in items or []:
        name, value = _split(item)
        if name in out:
            raise StudyError(f"parameter {name!r} given twice")
        out[name] = parse_value(value)
    return out


def _range(name: str, spec: str) -> list[ParamValue]:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise StudyError(f"{name}: a range is start:stop[:step], got {spec!r}")
    values = [parse_value(p) for p in parts]
    if len(values) == 2:
        values.append(1)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise StudyError(f"{name}: range bounds and step must be numbers, got {spec!r}")
    start, stop, step = values
    if step <= 0:
        raise StudyError(f"{name}: step must be > 0, got {step}")
    if stop < start:
        raise StudyError(f"{name}: stop {stop} is below start {start}")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if count > MAX_JOBS:
        raise StudyError(f"{name}: {count} values is too many")
    if all(isinstance(v, int) for v in values):
        return [start + i * step for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]


def parse_grid(items: list[str] | None) -> dict[str, list[ParamValue]]:
    """``["fast=5:50:5", "slow=20,40,80"]`` -> value lists. ``a:b:s`` includes b when it lands on
    the step; ``a:b`` steps by 1; ``x,y,z`` lists values; a single value fixes the parameter."""
    grid: dict[str, list[ParamValue]] = {}
    for item in items or []:
        name, spec = _split(item)
        if name in grid:
            raise StudyError(f"grid parameter {name!r} given twice")
        if ":" in spec:
            values = _range(name, spec)
        else:
            values = [parse_value(v) for v in spec.split(",") if v.strip()]
        if not values:
            raise StudyError(f"{name}: no values in {spec!r}")
        if len(set(map(repr, values))) != len(values):
            raise StudyError(f"{name}: repeated values in {spec!r}")
        grid[name] = values
    return grid


def grid_points(grid: dict[str, list[ParamValue]]) -> list[dict[str, ParamValue]]:
    """Every combination, the last parameter varying fastest; ``[{}]`` for an empty grid."""
    names = list(grid)
    total = math.prod(len(v) for v in grid.values())
    if total > MAX_JOBS:
        raise StudyError(f"the grid has {total} points; at most {MAX_JOBS} jobs per study")
    return [dict(zip(names, combo)) for combo in product(*(grid[n] for n in names))]


def permutation_seeds(seed: int, n: int) -> list[int]:
    """n distinct-in-practice 63-bit seeds derived from ``seed`` (numpy SeedSequence)."""
    state = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)
    return [int(s) & ((1 << 63) - 1) for s in state]


def walkforward_windows(timestamps: np.ndarray, folds: int, is_ratio: float = 3.0,
                        anchored: bool = False) -> list[tuple[int, int, int, int]]:
    """``folds`` windows over bars with these timestamps (ns), as (is_start, is_end, oos_start,
    oos_end), ends exclusive, 0 for "to the end of the data".

    Out-of-sample parts are consecutive, ``n // (folds + is_ratio)`` bars each; each is preceded
    by an in-sample part ``is_ratio`` times as long (from the first bar when ``anchored``).
    The last out-of-sample part runs to the end of the data.
    """
    n = len(timestamps)
    if folds < 1:
        raise StudyError(f"folds must be >= 1, got {folds}")
    if not is_ratio > 0:
        raise StudyError(f"is_ratio must be > 0, got {is_ratio}")
    oos_len = int(n // (folds + is_ratio))
    is_len = int(is_ratio * oos_len)
    if oos_len < 2 or is_len < 2:
        raise StudyError(f"{n} bars are too few for {folds} folds with in-sample ratio {is_ratio}")

    def at(index: int) -> int:
        return int(timestamps[index]) if index < n else 0

    windows = []
    for fold in range(folds):
        is_start = 0 if anchored else fold * oos_len
        oos_start = fold * oos_len + is_len
        oos_end = n if fold == folds - 1 else oos_start + oos_len
        windows.append((at(is_start), at(oos_start), at(oos_start), at(oos_end)))
    return windows


def make_spec(kind: str, *, strategy: str, dataset_id: str, settings: EngineSettings | None = None,
              grid: dict[str, list[ParamValue]] | None = None, params: dict[str, ParamValue] | None = None,
              n: int = 0, seed: int | None = None, windows: list | None = None, objective: str = "sharpe",
              study_id: str | None = None, dataset_name: str = "", venue: str | None = None,
              bars: int = 0, rule: Any = None) -> StudySpec:
    """A checked StudySpec (its ``total_jobs`` filled in).

    Without ``settings`` the study runs with the venue's taker fee and next-open fills
    (:func:`tradebus.study.settings.study_settings`); the venue is ``venue``, else the one the
    dataset name starts with, else Binance spot. ``rule`` (a Rule or its spec) is checked and
    stored in its canonical spec form.
    """
    if kind not in KINDS:
        raise StudyError(f"kind must be one of {KINDS}, got {kind!r}")
    if objective not in STAT_KEYS:
        raise StudyError(f"objective must be one of the engine statistics {STAT_KEYS}, got {objective!r}")
    study_id = study_id or new_study_id(kind)
    try:
        venue = venue_of(dataset_name, venue)
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    try:
        name_token(study_id, "study id")
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    grid, params = dict(grid or {}), dict(params or {})
    rule_spec = rule_spec_of(rule) if rule is not None else None
    clash = set(grid) & set(params)
    if clash:
        raise StudyError(f"parameters both swept and fixed: {sorted(clash)}")
    reserved = (set(grid) | set(params)) & RESERVED_NAMES
    if reserved:
        raise StudyError(f"parameter names {sorted(reserved)} are reserved for result columns")
    if kind == "permutation":
        if grid:
            raise StudyError("a permutation test runs one parameter set: use fixed params, not a grid")
        if n < 1:
            raise StudyError(f"a permutation test needs n >= 1 permutations, got {n}")
        if seed is None:
            seed = secrets.randbits(63)
        total = n + 1
    elif kind == "walkforward":
        if not windows:
            raise StudyError("a walk-forward study needs its windows (see walkforward_windows)")
        total = 2 * len(windows) * len(grid_points(grid))
    else:
        total = len(grid_points(grid))
    if total > MAX_JOBS:
        raise StudyError(f"{total} jobs; at most {MAX_JOBS} per study")
    return StudySpec(
        study_id=study_id, kind=kind, strategy=strategy, dataset_id=dataset_id, dataset_name=dataset_name,
        settings=settings or study_settings(venue), grid=grid, params=params, n=n, seed=seed,
        windows=[tuple(int(x) for x in w) for w in (windows or [])], objective=objective, total_jobs=total,
        created_ns=time.time_ns(), venue=venue, bars=int(bars), rule=rule_spec,
    )


def rule_spec_of(rule: Any) -> dict[str, Any]:
    """The canonical spec of a Rule or of a rule spec (a mapping); StudyError naming the bad part."""
    try:
        return (rule if isinstance(rule, Rule) else Rule.from_spec(rule)).to_spec()
    except (RuleError, TypeError, ValueError) as exc:
        raise StudyError(f"rule: {exc}") from None


def build_jobs(spec: StudySpec) -> list[PlannedJob]:
    """The study's jobs, in a fixed order; ids are ``<study_id>-<index>``."""
    out: list[PlannedJob] = []

    def add(params: dict, seed: int | None = None, settings: EngineSettings | None = None, **meta: Any) -> None:
        """Append one job; ``meta`` columns come before the params in the results table."""
        index = len(out)
        job = BacktestJob(
            job_id=f"{spec.study_id}-{index:06d}", study_id=spec.study_id, dataset_id=spec.dataset_id,
            strategy=spec.strategy, params={**spec.params, **params}, seed=seed,
            settings=settings or spec.settings, rule=spec.rule,
        )
        out.append(PlannedJob(job, {"job_id": job.job_id, "index": index, "seed": seed, **meta, **job.params}))

    if spec.kind == "sweep":
        for point in grid_points(spec.grid):
            add(point)
    elif spec.kind == "permutation":
        add({}, None, segment="real", permutation=0)
        for k, seed in enumerate(permutation_seeds(spec.seed or 0, spec.n)):
            add({}, seed, segment="permuted", permutation=k + 1)
    elif spec.kind == "walkforward":
        points = grid_points(spec.grid)
        for fold, (is_start, is_end, oos_start, oos_end) in enumerate(spec.windows):
            for segment, start, end in (("is", is_start, is_end), ("oos", oos_start, oos_end)):
                settings = msgspec.structs.replace(spec.settings, start=start, end=end)
                for point in points:
                    add(point, None, settings, fold=fold, segment=segment)
    else:
        raise StudyError(f"unknown study kind {spec.kind!r}")
    if len(out) != spec.total_jobs:
        raise StudyError(f"spec says {spec.total_jobs} jobs but it builds {len(out)}")
    return out
