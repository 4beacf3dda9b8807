"""Backtest farm messages: jobs on the BT_JOBS work queue, results, progress, dead letters."""
from __future__ import annotations

import enum
from typing import Any

import msgspec

from .base import Event, Request
from .control import ParamValue

__all__ = [
    "EngineMode",
    "EngineSettings",
    "DEFAULT_FILL",
    "BacktestJob",
    "BacktestResult",
    "BacktestProgress",
    "BacktestDead",
    "BacktestMessage",
]


class EngineMode(enum.StrEnum):
    """BATCH: vectorised run over bars; EVENT: trades/books drive a simulated venue."""

    BATCH = "batch"
    EVENT = "event"


DEFAULT_FILL = "next_open"
"""The market fill rule everywhere unless told otherwise: Engine, BacktestRunner, studies (tradebus.engine re-exports it)."""


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How the engine runs a job. Fees and slippage are in basis points of notional.

    ``start``/``end`` bound the dataset in ns (0 = from its start / to its end). ``fill`` is the
    market fill rule: ``next_open`` (the default, DEFAULT_FILL: at the next bar's open, no
    look-ahead) or ``close`` (at the close of the signal's bar). The default was ``close`` before
    2026-12: a job or study stored earlier with the field left out now reads as next_open.

    ``mode`` BATCH runs the batch engine, which has one fee rate (``taker_fee_bps``; a different
    ``maker_fee_bps``) and no latency: it refuses the others. EVENT runs the event backtester
    with a fee model (maker fee for resting limit fills, taker fee otherwise) and a latency model:
    constant ``latency_ns`` (order entry) and ``response_latency_ns`` (reports back to the
    strategy), or drawn from recorded ``latency_samples_ns`` (and ``response_latency_samples_ns``)
    with ``latency_seed``.
    """

    mode: EngineMode = EngineMode.BATCH
    initial_cash: float = 10_000.0
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 0.0
    slippage_bps: float = 0.0
    latency_ns: int = 0
    start: int = 0
    end: int = 0
    fill: str = DEFAULT_FILL
    response_latency_ns: int = 0
    latency_samples_ns: tuple[int, ...] = ()
    response_latency_samples_ns: tuple[int, ...] = ()
    latency_seed: int = 0


class BacktestJob(Request, tag="bt.job", kw_only=True, frozen=True):
    """One backtest: a strategy with one parameter set on one dataset.

    ``seed`` makes randomised runs (permutation tests) reproducible; the same job always gives
    the same result, so a redelivered job can be run again safely.

    ``rule`` (added 2026-12) carries the strategy as data: a compiled signal rule's spec
    (``tradebus.study.rules``: ``Rule.to_spec()``, plain JSON values), which the worker compiles
    and runs; its ``param(...)`` placeholders take their values from ``params``. ``strategy``
    then only names the run. Without a rule, ``strategy`` names a registered signal function.
    """

    job_id: str
    study_id: str
    dataset_id: str
    strategy: str
    params: dict[str, ParamValue] = {}
    seed: int | None = None
    settings: EngineSettings = msgspec.field(default_factory=EngineSettings)
    ts_init: int = 0
    rule: dict[str, Any] | None = None


class BacktestResult(Event, tag="bt.result", kw_only=True, frozen=True):
    """Outcome of a job: statistics by name, or ``error`` when the run failed."""

    job_id: str
    study_id: str
    stats: dict[str, float] = {}
    error: str | None = None
    worker: str
    elapsed_ns: int = 0
    ts_init: int = 0


class BacktestProgress(Event, tag="bt.progress", kw_only=True, frozen=True):
    """How far a study is: ``done`` of ``total`` jobs (``failed`` included in done)."""

    study_id: str
    done: int
    total: int
    failed: int = 0
    workers: int = 0
    ts_init: int = 0


class BacktestDead(Event, tag="bt.dead", kw_only=True, frozen=True):
    """A job given up on after ``attempts`` deliveries; the job is kept for inspection or replay."""

    job: BacktestJob
    reason: str
    attempts: int
    worker: str = ""
    ts_init: int = 0


BacktestMessage = BacktestJob | BacktestResult | BacktestProgress | BacktestDead
"""Everything published under ``bt.>``."""
