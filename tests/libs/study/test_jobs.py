"""Study specs and job building: grids, seeds, walk-forward windows, ids, refusals."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from tradebus.proto import BacktestJob, EngineSettings
from tradebus.proto.codec import decoder_for, encode
from tradebus.study.jobs import (
    StudyError,
    StudySpec,
    build_jobs,
    grid_points,
    make_spec,
    parse_assignments,
    parse_grid,
    permutation_seeds,
    walkforward_windows,
)

MINUTE = 60_000_000_000


def test_grid_ranges_include_the_stop_and_lists_keep_their_types():
    grid = parse_grid(["fast=5:50:5", "slow=20:200:10", "q=0.5:1.5:0.25", "mode=a,b", "flag=true"])
    assert grid["fast"] == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert len(grid["slow"]) == 19 and grid["slow"][-1] == 200
    assert grid["q"] == [0.5, 0.75, 1.0, 1.25, 1.5]
    assert grid["mode"] == ["a", "b"] and grid["flag"] == [True]
    assert parse_grid(["n=3:5"])["n"] == [3, 4, 5]
    assert parse_grid(["x=1:10:4"])["x"] == [1, 5, 9]


@pytest.mark.parametrize("item, message", [
    ("fast", "expected name=value"),
    ("fast=", "expected name=value"),
    ("1x=3", "not an identifier"),
    ("fast=5:1", "below start"),
    ("fast=1:5:0", "step must be > 0"),
    ("fast=a:b", "must be numbers"),
    ("fast=1,1", "repeated values"),
    ("fast=1:2:3:4", "start:stop"),
])
def test_bad_grid_items_are_refused_with_the_reason(item, message):
    with pytest.raises(StudyError, match=message):
        parse_grid([item])


def test_grid_points_cover_the_product_with_the_last_parameter_fastest():
    points = grid_points({"a": [1, 2], "b": [10, 20, 30]})
    assert points == [{"a": 1, "b": 10}, {"a": 1, "b": 20}, {"a": 1, "b": 30},
                      {"a": 2, "b": 10}, {"a": 2, "b": 20}, {"a": 2, "b": 30}]
    assert grid_points({}) == [{}]
    with pytest.raises(StudyError, match="given twice"):
        parse_grid(["a=1", "a=2"])
    assert parse_assignments(["quantity=0.5", "name=x"]) == {"quantity": 0.5, "name": "x"}


def test_sweep_jobs_are_rebuilt_identically_from_the_spec():
    spec = make_spec("sweep", strategy="sma_cross", dataset_id="bars-x", grid=parse_grid(["fast=5:50:5", "slow=20:200:10"]),
                     params={"quantity": 0.1}, settings=EngineSettings(taker_fee_bps=2.0))
    assert spec.total_jobs == 190
    jobs = build_jobs(spec)
    again = build_jobs(msgspec.json.decode(msgspec.json.encode(spec), type=StudySpec))
    assert [p.job for p in jobs] == [p.job for p in again]
    assert len({p.job.job_id for p in jobs}) == 190
    first = jobs[0].job
    assert first.params == {"quantity": 0.1, "fast": 5, "slow": 20} and first.settings.taker_fee_bps == 2.0
    assert jobs[0].meta["fast"] == 5 and jobs[0].meta["job_id"] == first.job_id
    wire = decoder_for(BacktestJob).decode(encode(first))
    assert wire == first and len(encode(first)) < 300  # jobs stay small


def test_permutation_jobs_are_one_real_run_and_n_seeded_runs():
    spec = make_spec("permutation", strategy="sma_cross", dataset_id="bars-x", params={"fast": 10, "slow": 30},
                     n=500, seed=42)
    jobs = build_jobs(spec)
    assert len(jobs) == 501 and jobs[0].job.seed is None and jobs[0].meta["segment"] == "real"
    seeds = [p.job.seed for p in jobs[1:]]
    assert seeds == permutation_seeds(42, 500) and len(set(seeds)) == 500
    assert all(0 <= s < 2**63 for s in seeds)
    assert permutation_seeds(43, 5) != permutation_seeds(42, 5)
    unseeded = make_spec("permutation", strategy="sma_cross", dataset_id="bars-x", n=3)
    assert unseeded.seed is not None  # a random seed, recorded so the study can be rebuilt


def test_walkforward_windows_roll_forward_without_overlap_out_of_sample():
    ts = np.arange(1000, dtype=np.int64) * MINUTE + 1_700_000_000_000_000_000
    windows = walkforward_windows(ts, folds=4, is_ratio=3.0)
    oos_len = 1000 // 7
    assert len(windows) == 4
    for fold, (is_start, is_end, oos_start, _oos_end) in enumerate(windows):
        assert is_end == oos_start  # out-of-sample starts where in-sample ends
        assert (oos_start - is_start) // MINUTE == 3 * oos_len
        if fold:
            assert oos_start == windows[fold - 1][3]  # consecutive out-of-sample parts
    assert windows[-1][3] == 0  # the last part runs to the end of the data
    anchored = walkforward_windows(ts, folds=4, is_ratio=3.0, anchored=True)
    assert all(w[0] == ts[0] for w in anchored) and [w[2] for w in anchored] == [w[2] for w in windows]
    with pytest.raises(StudyError, match="too few"):
        walkforward_windows(ts[:10], folds=4, is_ratio=3.0)


def test_walkforward_jobs_run_every_point_in_and_out_of_sample():
    ts = np.arange(1000, dtype=np.int64) * MINUTE
    windows = walkforward_windows(ts + MINUTE, folds=3, is_ratio=2.0)
    spec = make_spec("walkforward", strategy="sma_cross", dataset_id="bars-x", grid=parse_grid(["fast=5,10"]),
                     windows=windows)
    jobs = build_jobs(spec)
    assert spec.total_jobs == len(jobs) == 3 * 2 * 2
    by_fold = {(p.meta["fold"], p.meta["segment"]): p.job.settings for p in jobs}
    assert by_fold[(1, "is")].start == windows[1][0] and by_fold[(1, "oos")].end == windows[1][3]


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "nope"}, "kind must be"),
    ({"kind": "sweep", "objective": "luck"}, "objective"),
    ({"kind": "sweep", "study_id": "has space"}, "study id"),
    ({"kind": "sweep", "grid": {"fast": [1]}, "params": {"fast": 2}}, "both swept and fixed"),
    ({"kind": "sweep", "params": {"seed": 2}}, "reserved"),
    ({"kind": "permutation", "n": 0}, "n >= 1"),
    ({"kind": "permutation", "n": 5, "grid": {"fast": [1, 2]}}, "not a grid"),
    ({"kind": "walkforward", "grid": {"fast": [1]}}, "windows"),
])
def test_bad_specs_are_refused_with_the_reason(kwargs, message):
    kind = kwargs.pop("kind")
    with pytest.raises(StudyError, match=message):
        make_spec(kind, strategy="sma_cross", dataset_id="bars-x", **kwargs)
