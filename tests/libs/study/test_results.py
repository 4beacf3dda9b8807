"""Results table, Parquet/CSV round trip, summaries and the HTML report, from real engine runs."""
from __future__ import annotations

import struct
import time

import numpy as np
import pandas as pd
import pytest

from tradebus.proto import BacktestDead, BacktestResult
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, dataset_id, read_bars
from tradebus.study.execution import run_jobs
from tradebus.study.jobs import build_jobs, make_spec, parse_grid, walkforward_windows
from tradebus.study.report import write_report
from tradebus.study.results import (
    best_runs,
    permutation_summary,
    results_frame,
    save_results,
    walkforward_summary,
)


@pytest.fixture(scope="module")
def bars():
    return read_bars(data_dir() / DEFAULT_BARS_FILE)[:12_000]


def outcomes_of(spec, bars, drop: set[int] = frozenset(), kill: set[int] = frozenset()):
    """What workers would publish: a BacktestResult per job, dead letters for ``kill``, nothing for ``drop``."""
    planned = build_jobs(spec)
    outcomes = run_jobs({spec.dataset_id: bars}, [p.job for p in planned])
    results, dead = {}, {}
    for i, (p, o) in enumerate(zip(planned, outcomes)):
        if i in drop:
            continue
        if i in kill or o.error:
            dead[p.job.job_id] = BacktestDead(job=p.job, reason=o.error or "killed for the test", attempts=3, worker="w9")
        else:
            results[p.job.job_id] = BacktestResult(job_id=p.job.job_id, study_id=spec.study_id, stats=o.stats,
                                                   worker="w1", elapsed_ns=o.elapsed_ns, ts_init=time.time_ns())
    return planned, results, dead


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_sweep_table_files_and_report(bars, tmp_path):
    spec = make_spec("sweep", strategy="sma_cross", dataset_id=dataset_id(bars), dataset_name="btc.csv",
                     grid=parse_grid(["fast=2:10:2", "slow=20:60:20"]), params={"quantity": 0.1})
    planned, results, dead = outcomes_of(spec, bars, drop={3}, kill={5})
    frame = results_frame(spec, results, dead)
    assert list(frame["job_id"]) == [p.job.job_id for p in planned]
    assert frame["status"].value_counts().to_dict() == {"ok": 13, "dead": 1, "pending": 1}
    row = frame.iloc[0]
    assert row["fast"] == 2 and row["slow"] == 20 and row["quantity"] == 0.1
    assert row["net_pnl"] == results[row["job_id"]].stats["net_pnl"]
    assert frame.iloc[5]["error"] == "killed for the test" and np.isnan(frame.iloc[5]["net_pnl"])

    parquet, csv = save_results(frame, tmp_path)
    back = pd.read_parquet(parquet)
    pd.testing.assert_frame_equal(back, frame)
    assert len(pd.read_csv(csv)) == 15

    best = best_runs(frame, "sharpe", top=3)
    assert list(best["sharpe"]) == sorted(frame["sharpe"].dropna(), reverse=True)[:3]

    report = write_report(spec, frame, tmp_path, bars=bars, top=3)
    page = report.read_text()
    for name in ("equity.png", "heatmap.png"):
        assert f'src="{name}"' in page and png_size(tmp_path / name)[0] > 500
    assert spec.study_id in page and "killed for the test" in page and "1 pending" in page


def test_permutation_summary_and_report(bars, tmp_path):
    spec = make_spec("permutation", strategy="sma_cross", dataset_id=dataset_id(bars),
                     params={"fast": 8, "slow": 30, "quantity": 0.1}, n=40, seed=5)
    planned, results, dead = outcomes_of(spec, bars, kill={7})
    frame = results_frame(spec, results, dead)
    summary = permutation_summary(frame)
    real = results[planned[0].job.job_id].stats["net_pnl"]
    permuted = [r.stats["net_pnl"] for job_id, r in results.items() if job_id != planned[0].job.job_id]
    assert summary.n == 39 and summary.failed == 1 and len(permuted) == 39
    assert summary.p_values["net_pnl"] == (1 + sum(v >= real for v in permuted)) / 40
    assert summary.real["net_pnl"] == real
    report = write_report(spec, frame, tmp_path, bars=bars)
    page = report.read_text()
    assert 'src="distribution.png"' in page and 'src="equity.png"' in page and "p-values" in page
    assert png_size(tmp_path / "distribution.png")[0] > 500
    no_real = results_frame(spec, {k: v for k, v in results.items() if k != planned[0].job.job_id}, dead)
    assert permutation_summary(no_real) is None


def test_walkforward_summary_picks_in_sample_best_and_reports_its_out_of_sample(bars, tmp_path):
    windows = walkforward_windows(bars["timestamp_ns"], folds=3, is_ratio=2.0)
    spec = make_spec("walkforward", strategy="sma_cross", dataset_id=dataset_id(bars),
                     grid=parse_grid(["fast=3,6,9", "slow=20,40"]), params={"quantity": 0.1}, windows=windows,
                     objective="net_pnl")
    planned, results, dead = outcomes_of(spec, bars)
    frame = results_frame(spec, results, dead)
    summary = walkforward_summary(frame, spec)
    assert list(summary["fold"]) == [0, 1, 2]
    for _, fold in summary.iterrows():
        ins = frame[(frame["fold"] == fold["fold"]) & (frame["segment"] == "is")]
        best = ins.loc[ins["net_pnl"].idxmax()]
        assert (fold["fast"], fold["slow"]) == (best["fast"], best["slow"])
        oos = frame[(frame["fold"] == fold["fold"]) & (frame["segment"] == "oos") & (frame["fast"] == best["fast"])
                    & (frame["slow"] == best["slow"])]
        assert fold["oos_net_pnl"] == oos.iloc[0]["net_pnl"]
    report = write_report(spec, frame, tmp_path, bars=bars)
    page = report.read_text()
    assert 'src="folds.png"' in page and 'src="equity.png"' in page
    without_bars = write_report(spec, frame, tmp_path / "nobars")
    assert "Equity curves left out" in without_bars.read_text()
