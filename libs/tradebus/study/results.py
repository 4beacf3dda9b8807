"""A study's outcomes as a table (pandas), saved as Parquet and CSV, plus the summaries a report
shows: the best runs of a sweep, the p-values of a permutation test, the folds of a walk-forward.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tradebus.engine import STAT_KEYS
from tradebus.proto import BacktestDead, BacktestResult

from .jobs import PlannedJob, StudySpec, build_jobs

__all__ = [
    "results_frame",
    "save_results",
    "best_runs",
    "PermutationSummary",
    "permutation_summary",
    "walkforward_summary",
]



def results_frame(spec: StudySpec, results: dict[str, BacktestResult], dead: dict[str, BacktestDead],
                  planned: list[PlannedJob] | None = None) -> pd.DataFrame:
    """One row per job, in job order: its meta and params, ``status`` (ok, dead or pending), the
    statistics (NaN unless ok), ``error``, ``worker``, ``attempts`` and ``elapsed_ms``."""
    planned = build_jobs(spec) if planned is None else planned
    rows = []
    for p in planned:
        row = dict(p.meta)
        result = results.get(p.job.job_id)
        gone = dead.get(p.job.job_id)
        if result is not None and result.error is None:
            row.update(status="ok", error=None, worker=result.worker, attempts=np.nan,
                       elapsed_ms=result.elapsed_ns / 1e6)
            row.update({key: result.stats.get(key, np.nan) for key in STAT_KEYS})
        elif result is not None or gone is not None:
            row.update(status="dead", error=result.error if result is not None else gone.reason,
                       worker=(result.worker if result is not None else gone.worker),
                       attempts=(gone.attempts if gone is not None else np.nan), elapsed_ms=np.nan)
        else:
            row.update(status="pending", error=None, worker=None, attempts=np.nan, elapsed_ms=np.nan)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for key in STAT_KEYS:
        if key not in frame:
            frame[key] = np.nan
    frame[list(STAT_KEYS)] = frame[list(STAT_KEYS)].astype("float64")
    return frame


def save_results(frame: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.parquet`` and ``results.csv`` into ``out_dir``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parquet, csv = out / "results.parquet", out / "results.csv"
    frame.to_parquet(parquet, index=False)
    frame.to_csv(csv, index=False)
    return parquet, csv


def best_runs(frame: pd.DataFrame, objective: str, top: int = 10, segment: str | None = None) -> pd.DataFrame:
    """The ``top`` finished runs with the highest ``objective`` (NaN ranks last)."""
    ok = frame[frame["status"] == "ok"]
    if segment is not None and "segment" in ok:
        ok = ok[ok["segment"] == segment]
    return ok.sort_values(objective, ascending=False, na_position="last").head(top)


@dataclass(frozen=True)
class PermutationSummary:
    """The real run's statistics and, per statistic, the permuted values and the p-value
    (1 + #{permuted >= real}) / (n + 1) over the n permutations that finished."""

    real: dict[str, float]
    distribution: dict[str, np.ndarray]
    p_values: dict[str, float]
    n: int
    failed: int


def permutation_summary(frame: pd.DataFrame) -> PermutationSummary | None:
    """None when the real run has not finished."""
    real_rows = frame[(frame["segment"] == "real") & (frame["status"] == "ok")]
    if real_rows.empty:
        return None
    real = {key: float(real_rows.iloc[0][key]) for key in STAT_KEYS}
    permuted = frame[frame["segment"] == "permuted"]
    ok = permuted[permuted["status"] == "ok"]
    distribution = {key: ok[key].to_numpy(dtype=np.float64) for key in STAT_KEYS}
    n = len(ok)
    p_values = {key: float((1 + np.count_nonzero(values >= real[key])) / (n + 1))
                for key, values in distribution.items()}
    return PermutationSummary(real, distribution, p_values, n, int((permuted["status"] == "dead").sum()))


def walkforward_summary(frame: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Per fold: the in-sample best parameters (by the study's objective), their in-sample and
    out-of-sample objective and the out-of-sample statistics of those parameters."""
    params = list(spec.grid) + [p for p in spec.params if p not in spec.grid]
    rows = []
    for fold, (is_start, _is_end, oos_start, oos_end) in enumerate(spec.windows):
        part = frame[frame["fold"] == fold]
        ins = best_runs(part, spec.objective, top=1, segment="is")
        if ins.empty:
            continue
        chosen = ins.iloc[0]
        oos = part[(part["segment"] == "oos") & (part["status"] == "ok")]
        for name in spec.grid:
            oos = oos[oos[name] == chosen[name]]
        row = {"fold": fold, "is_start": pd.Timestamp(is_start, unit="ns"), "oos_start": pd.Timestamp(oos_start, unit="ns"),
               "oos_end": pd.Timestamp(oos_end, unit="ns") if oos_end else pd.NaT}
        row.update({name: chosen[name] for name in params})
        row[f"is_{spec.objective}"] = chosen[spec.objective]
        if oos.empty:
            row[f"oos_{spec.objective}"] = np.nan
        else:
            best_oos = oos.iloc[0]
            row[f"oos_{spec.objective}"] = best_oos[spec.objective]
            for key in ("net_pnl", "return_pct", "max_drawdown_pct", "total_trades"):
                row[f"oos_{key}"] = best_oos[key]
            row["oos_job_id"] = best_oos["job_id"]
        rows.append(row)
    return pd.DataFrame(rows)
