"""Run backtest jobs: the one place a BacktestJob becomes an engine run.

Batch-mode jobs run on the batch engine, as below; event-mode jobs (``EngineMode.EVENT``) run
one by one on the event backtester (:mod:`tradebus.study.event_jobs`); batch jobs that carry a
signal rule run compiled, in the engine's fused pipeline (:mod:`tradebus.study.rule_jobs`).

The worker calls :func:`run_jobs` on a fetched batch; reports call :func:`run_job` to redraw the
equity curve of a run. Jobs that share a dataset and engine settings run in one ``run_batch``
call (the engine releases the GIL and uses ``threads`` cores). A job that fails (unknown
strategy, bad parameters, bad signals) gets its own error; the others of the batch still run.

A job with a ``seed`` runs on a permuted path of its window: the bars whose close-to-close
returns are the real ones shuffled, ``next(permutation_paths(window, 1, seed))``.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tradebus.engine import STAT_KEYS, Engine, permutation_paths
from tradebus.proto import BacktestJob, EngineSettings
from tradebus.proto.backtest import EngineMode

from .event_jobs import event_stats, run_event_job
from .rule_jobs import RuleError, rule_key, rule_signals, run_rule_jobs
from .strategies import resolve_strategy

__all__ = ["JobOutcome", "JobError", "engine_options", "window", "job_bars", "run_job", "run_jobs"]

# Permuted paths loaded into one engine at a time stay under about this many bytes.
PATH_MEMORY_BUDGET = 256 << 20
_BYTES_PER_BAR = 49  # six float64 columns plus the engine's block summaries
_REAL = "__real__"
_MAX_ERROR_CHARS = 2000


class JobError(ValueError):
    """A job the engine cannot run as asked (unsupported settings, empty window)."""


@dataclass(frozen=True)
class JobOutcome:
    """Statistics of one job (every STAT_KEYS value as float), or the error that stopped it.

    ``retry`` False: the error is in the job itself (a rule that does not compile) and running
    it again cannot help, so the worker dead-letters it at once.
    """

    job_id: str
    stats: dict[str, float] | None
    error: str | None
    elapsed_ns: int
    retry: bool = True


def engine_options(settings: EngineSettings) -> dict:
    """Engine keyword arguments for ``settings``; JobError for what the batch engine cannot do.

    The batch engine charges one fee rate on every fill: ``taker_fee_bps``. A ``maker_fee_bps``
    other than 0 or the taker fee, the event mode and a latency are refused, not ignored.
    """
    if settings.mode != EngineMode.BATCH:
        raise JobError(f"engine mode {settings.mode!s} is not supported by the batch engine (use batch)")
    if settings.latency_ns:
        raise JobError("latency_ns is not supported by the batch engine (it must be 0)")
    if settings.maker_fee_bps not in (0.0, settings.taker_fee_bps):
        raise JobError("the batch engine has one fee rate: maker_fee_bps must be 0 or equal to taker_fee_bps")
    if settings.start and settings.end and settings.end <= settings.start:
        raise JobError(f"window end {settings.end} is not after its start {settings.start}")
    return {
        "initial_capital": settings.initial_cash,
        "fee_rate": settings.taker_fee_bps / 10_000.0,
        "slippage_bps": settings.slippage_bps,
        "fill": settings.fill,
    }


def window(bars: np.ndarray, settings: EngineSettings) -> np.ndarray:
    """The bars with ``start <= timestamp < end`` (0 leaves that side open)."""
    ts = bars["timestamp_ns"]
    lo = int(np.searchsorted(ts, settings.start, side="left")) if settings.start else 0
    hi = int(np.searchsorted(ts, settings.end, side="left")) if settings.end else len(bars)
    if hi <= lo:
        raise JobError(f"no bars in the window [{settings.start}, {settings.end}) of a dataset "
                       f"spanning [{int(ts[0])}, {int(ts[-1])}]")
    return bars[lo:hi]


def job_bars(bars: np.ndarray, job: BacktestJob) -> np.ndarray:
    """The bars job ``job`` runs on: its window, permuted when it has a seed."""
    part = window(bars, job.settings)
    if job.seed is None:
        return part
    if job.seed < 0:
        raise JobError(f"seed must be >= 0, got {job.seed}")
    return next(permutation_paths(part, 1, seed=job.seed))


def _signals(bars: np.ndarray, job: BacktestJob) -> np.ndarray:
    if job.rule is not None:
        return rule_signals(bars, job)
    return resolve_strategy(job.strategy)(bars, **job.params)


def _stats(raw: dict) -> dict[str, float]:
    return {key: float(raw[key]) for key in STAT_KEYS}


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def run_job(bars: np.ndarray, job: BacktestJob, equity: bool = False) -> dict:
    """Run one job directly (no batching); with equity=True the dict also has ``equity``,
    ``fills`` and ``timestamps`` (of the bars it ran on; an event-mode job's equity is marked
    at every bar too). Raises on failure."""
    if job.settings.mode == EngineMode.EVENT:
        data = job_bars(bars, job)
        out = run_event_job(data, job)
        if equity:
            out["timestamps"] = data["timestamp_ns"]
        return out
    engine = Engine(**engine_options(job.settings))
    data = job_bars(bars, job)
    engine.load_bars(data)
    out = engine.run(_signals(data, job), equity=equity)
    if equity:
        out["timestamps"] = data["timestamp_ns"]
    return out


def run_jobs(datasets: Mapping[str, np.ndarray], jobs: Sequence[BacktestJob], threads: int = 0) -> list[JobOutcome]:
    """Run ``jobs`` (datasets by id) and return one outcome per job, in the order given."""
    outcomes: list[JobOutcome | None] = [None] * len(jobs)
    groups: dict[tuple[str, EngineSettings, bytes | None], list[int]] = {}
    for index, job in enumerate(jobs):
        key = None if job.rule is None else rule_key(job.rule)
        groups.setdefault((job.dataset_id, job.settings, key), []).append(index)
    for (ident, settings, key), indices in groups.items():
        members = [jobs[i] for i in indices]
        bars = datasets.get(ident)
        if bars is None:
            results = [JobOutcome(job.job_id, None, f"DatasetError: dataset {ident} is not loaded", 0) for job in members]
        elif settings.mode == EngineMode.EVENT:
            results = [_run_event(bars, job) for job in members]
        elif key is not None:
            results = _run_rule_group(bars, settings, members, threads)
        else:
            results = _run_group(bars, settings, members, threads)
        for index, outcome in zip(indices, results):
            outcomes[index] = outcome
    return outcomes  # type: ignore[return-value]


def _run_event(bars: np.ndarray, job: BacktestJob) -> JobOutcome:
    """One event-mode job (the event backtester runs one strategy at a time)."""
    t0 = time.perf_counter_ns()
    try:
        stats = event_stats(run_event_job(job_bars(bars, job), job))
    except Exception as exc:  # a failing strategy fails its job only
        return JobOutcome(job.job_id, None, _describe(exc), time.perf_counter_ns() - t0, not isinstance(exc, RuleError))
    return JobOutcome(job.job_id, stats, None, time.perf_counter_ns() - t0)


def _run_rule_group(bars: np.ndarray, settings: EngineSettings, jobs: list[BacktestJob],
                    threads: int) -> list[JobOutcome]:
    """Outcomes of rule jobs (same dataset, settings and rule) from the fused pipeline."""
    start = time.perf_counter_ns()
    try:
        engine = Engine(**engine_options(settings))
        engine.load_bars(window(bars, settings))
    except (JobError, ValueError) as exc:
        return [JobOutcome(job.job_id, None, _describe(exc), time.perf_counter_ns() - start) for job in jobs]
    try:
        results = run_rule_jobs(engine, jobs, threads)
    except Exception as exc:  # the engine refused the batch (signal table full, no memory): retry
        return [JobOutcome(job.job_id, None, _describe(exc), time.perf_counter_ns() - start) for job in jobs]
    share = (time.perf_counter_ns() - start) // len(jobs)
    return [JobOutcome(job.job_id, None, _describe(r), share, not isinstance(r, RuleError))
            if isinstance(r, BaseException) else JobOutcome(job.job_id, _stats(r), None, share)
            for job, r in zip(jobs, results)]


def _run_group(bars: np.ndarray, settings: EngineSettings, jobs: list[BacktestJob], threads: int) -> list[JobOutcome]:
    """Outcomes of ``jobs`` (same dataset and settings), in their order."""
    start = time.perf_counter_ns()
    try:
        engine = Engine(**engine_options(settings))
        part = window(bars, settings)
    except (JobError, ValueError) as exc:
        return [JobOutcome(job.job_id, None, _describe(exc), time.perf_counter_ns() - start) for job in jobs]
    out: list[JobOutcome | None] = [None] * len(jobs)
    pending: list[tuple[int, object, np.ndarray, int]] = []  # job index, symbol, signals, build ns
    path_bytes = 0
    real_loaded = False
    for index, job in enumerate(jobs):
        t0 = time.perf_counter_ns()
        symbol: object = _REAL
        try:
            if job.seed is None:
                if not real_loaded:
                    engine.load_bars(part, symbol=_REAL)
                    real_loaded = True
                data = part
            else:
                if job.seed < 0:
                    raise JobError(f"seed must be >= 0, got {job.seed}")
                data = next(permutation_paths(part, 1, seed=job.seed))
                symbol = index
                engine.load_bars(data, symbol=symbol)
                path_bytes += _BYTES_PER_BAR * len(data)
            signals = _signals(data, job)
        except Exception as exc:  # a failing strategy fails its job only
            out[index] = JobOutcome(job.job_id, None, _describe(exc), time.perf_counter_ns() - t0)
            if symbol != _REAL and symbol in engine.symbols:
                engine.unload(symbol)
            continue
        pending.append((index, symbol, signals, time.perf_counter_ns() - t0))
        if path_bytes >= PATH_MEMORY_BUDGET:
            _run_pending(engine, jobs, pending, threads, out)
            pending, path_bytes = [], 0
    _run_pending(engine, jobs, pending, threads, out)
    return out  # type: ignore[return-value]


def _run_pending(engine: Engine, jobs: list[BacktestJob], pending: list, threads: int, out: list) -> None:
    """Run the prepared signal sets in one run_batch call; fill their slots of ``out``."""
    if not pending:
        return
    t0 = time.perf_counter_ns()
    try:
        results: list = engine.run_batch([(symbol, signals) for _, symbol, signals, _ in pending], threads=threads)
    except Exception:  # one bad signal set fails the whole call: run them one by one
        results = []
        for _, symbol, signals, _ in pending:
            try:
                results.append(engine.run(signals, symbol=symbol))
            except Exception as exc:
                results.append(exc)
    share = (time.perf_counter_ns() - t0) // len(pending)
    for (index, symbol, _, build_ns), result in zip(pending, results):
        if symbol != _REAL:
            engine.unload(symbol)
        job_id = jobs[index].job_id
        if isinstance(result, BaseException):
            out[index] = JobOutcome(job_id, None, _describe(result), build_ns + share)
        else:
            out[index] = JobOutcome(job_id, _stats(result), None, build_ns + share)
