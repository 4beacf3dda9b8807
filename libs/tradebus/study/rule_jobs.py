"""Farm jobs that carry a signal rule (``BacktestJob.rule``): compiled once per rule spec and
parameter set, run in the engine's fused pipeline.

Jobs of one dataset window, engine settings and rule run together:

* jobs without a seed (a sweep's points, a walk-forward's runs, a permutation test's real run)
  are the points of one compiled grid: each distinct indicator is computed once over the bars
  and the points run in parallel (``sweep_stats``);
* jobs with a seed and the same parameters are one fused permutation call: path ``0`` of each
  job's seed (the path ``permutation_paths(window, 1, seed)`` yields, as for a Python signal
  function) is built, evaluated and backtested per thread with no Python per path
  (``permutation_stats``).

A rule that does not parse or compile (unknown indicator, a window longer than the data, an
unbound parameter...) raises RuleError naming the part; running it again cannot help.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import msgspec
import numpy as np

from tradebus.engine import Engine
from tradebus.engine.fused import permutation_stats, sweep_stats
from tradebus.engine.paths import PathSource
from tradebus.engine.rules import CompiledProgram, compile_program
from tradebus.proto import BacktestJob

from .rules import Rule, RuleError

__all__ = ["RuleError", "rule_key", "job_rule", "rule_signals", "run_rule_jobs"]

_encoder = msgspec.json.Encoder(order="sorted")


def rule_key(spec: Mapping) -> bytes:
    """The canonical bytes of a rule spec: the cache key of its compiled forms."""
    return _encoder.encode(spec)


@lru_cache(maxsize=128)
def _rule(key: bytes) -> Rule:
    return Rule.from_spec(msgspec.json.decode(key))


def job_rule(job: BacktestJob) -> Rule:
    """The job's rule, parsed once per distinct spec; RuleError when it does not parse."""
    if job.rule is None:
        raise RuleError(f"job {job.job_id} carries no rule")
    return _rule(rule_key(job.rule))


def _params_key(params: Mapping) -> tuple:
    return tuple(sorted(params.items()))


@lru_cache(maxsize=512)
def _program(key: bytes, params: tuple, n_bars: int) -> CompiledProgram:
    """The compiled program of one rule spec and parameter set for data of ``n_bars`` bars."""
    return compile_program(_rule(key).compile(n_bars, **dict(params)))


def rule_signals(bars: np.ndarray, job: BacktestJob) -> np.ndarray:
    """The signals the job's rule makes on ``bars`` with the job's parameters."""
    params: dict[str, Any] = dict(job.params)  # a non-number where the rule needs one: RuleError
    return job_rule(job).signals(bars, **params)


def _grid(key: bytes, jobs: list[BacktestJob], n_bars: int) -> tuple[CompiledProgram | None, dict[int, RuleError]]:
    """One program for the jobs' points, and the jobs (by position) whose point does not compile."""
    rule = _rule(key)
    try:
        return compile_program(rule.compile_grid([j.params for j in jobs], n_bars)), {}
    except RuleError:
        pass
    bad: dict[int, RuleError] = {}
    for k, job in enumerate(jobs):
        try:
            _program(key, _params_key(job.params), n_bars)
        except RuleError as exc:
            bad[k] = exc
    good = [j.params for k, j in enumerate(jobs) if k not in bad]
    return (compile_program(rule.compile_grid(good, n_bars)) if good else None), bad


def run_rule_jobs(engine: Engine, jobs: list[BacktestJob], threads: int = 0) -> list[dict | BaseException]:
    """Statistics of each job (all with the same rule) on the bars loaded in ``engine`` (its only
    instrument, the jobs' window), or the exception that stopped it (RuleError: the rule)."""
    out: list[dict | BaseException | None] = [None] * len(jobs)
    inst = engine.instrument()
    n_bars = len(inst)
    key = rule_key(jobs[0].rule or {})
    try:
        _rule(key)
    except RuleError as exc:
        return [exc] * len(jobs)
    plain = [i for i, j in enumerate(jobs) if j.seed is None]
    if plain:
        program, bad = _grid(key, [jobs[i] for i in plain], n_bars)
        for k, error in bad.items():
            out[plain[k]] = error
        good = [i for k, i in enumerate(plain) if k not in bad]
        if program is not None:
            for i, stats in zip(good, sweep_stats(engine, inst, program, threads=threads)):
                out[i] = stats
    by_params: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        if job.seed is not None:
            if job.seed < 0:
                out[i] = RuleError(f"seed must be >= 0, got {job.seed}")
            else:
                by_params.setdefault(_params_key(job.params), []).append(i)
    source = PathSource(inst) if by_params else None
    for params, members in by_params.items():
        try:
            program = _program(key, params, n_bars)
        except RuleError as exc:
            for i in members:
                out[i] = exc
            continue
        seeds = np.array([jobs[i].seed for i in members], dtype=np.uint64)
        stats = permutation_stats(engine, source, program, seeds, np.zeros(len(members), dtype=np.uint64),
                                  threads=threads)
        for i, row in zip(members, stats):
            out[i] = row
    return out  # type: ignore[return-value]
