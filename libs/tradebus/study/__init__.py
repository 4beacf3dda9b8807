"""Backtest studies on the farm: datasets, job building, result collection and reports.

A study (parameter sweep, permutation test, walk-forward) is a :class:`StudySpec`; it is split
into BacktestJobs on the BT_JOBS work queue, backtest_worker processes run them on the Cython
engine, and the :class:`Collector` gathers the BacktestResults. ``tradebus study`` is the
command line over this package.
"""
from .client import Collector, StoredCounts, list_specs, load_spec, save_spec, stored_counts, submit
from .datasets import DatasetCache, DatasetError, dataset_id, publish_dataset, read_bars
from .execution import JobOutcome, run_job, run_jobs
from .jobs import (
    PlannedJob,
    StudyError,
    StudySpec,
    build_jobs,
    grid_points,
    make_spec,
    parse_assignments,
    parse_grid,
    walkforward_windows,
)
from .strategies import STRATEGIES, register_strategy, resolve_strategy

__all__ = [
    "Collector", "StoredCounts", "list_specs", "load_spec", "save_spec", "stored_counts", "submit",
    "DatasetCache", "DatasetError", "dataset_id", "publish_dataset", "read_bars",
    "JobOutcome", "run_job", "run_jobs",
    "PlannedJob", "StudyError", "StudySpec", "build_jobs", "grid_points", "make_spec", "parse_assignments",
    "parse_grid", "walkforward_windows",
    "STRATEGIES", "register_strategy", "resolve_strategy",
]
