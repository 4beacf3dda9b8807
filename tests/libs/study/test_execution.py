"""run_jobs against the engine called directly: same statistics, failures kept to their own job."""
from __future__ import annotations

import numpy as np
import pytest

from tradebus.engine import STAT_KEYS, Engine, permutation_paths
from tradebus.engine.examples import sma_cross
from tradebus.proto import BacktestJob, EngineSettings
from tradebus.proto.backtest import EngineMode
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, read_bars
from tradebus.study.execution import JobError, engine_options, run_job, run_jobs, window

HERE = "tests.libs.study.test_execution"


def boom(bars, **_):
    raise RuntimeError("strategy exploded")


def not_signals(bars, **_):
    return [1, 2, 3]


@pytest.fixture(scope="module")
def bars():
    return read_bars(data_dir() / DEFAULT_BARS_FILE)[:15_000]


def job(i: int, strategy: str = "sma_cross", dataset: str = "d1", seed=None, settings=None, **params) -> BacktestJob:
    return BacktestJob(job_id=f"j{i}", study_id="s", dataset_id=dataset, strategy=strategy, params=params, seed=seed,
                       settings=settings or EngineSettings())


def direct(bars, params, seed=None, **options) -> dict[str, float]:
    data = bars if seed is None else next(permutation_paths(bars, 1, seed=seed))
    engine = Engine(**options)
    engine.load_bars(data)
    return {k: float(v) for k, v in engine.run(sma_cross(data, **params)).items() if k in STAT_KEYS}


def test_a_batch_gives_the_statistics_of_direct_engine_runs(bars):
    settings = EngineSettings(initial_cash=50_000.0, taker_fee_bps=2.5, maker_fee_bps=2.5, slippage_bps=1.0,
                              fill="next_open")
    options = {"initial_capital": 50_000.0, "fee_rate": 2.5e-4, "slippage_bps": 1.0, "fill": "next_open"}
    grid = [(f, s) for f in (3, 7, 12) for s in (20, 45)]
    jobs = [job(i, settings=settings, fast=f, slow=s, quantity=0.3) for i, (f, s) in enumerate(grid)]
    outcomes = run_jobs({"d1": bars}, jobs, threads=2)
    assert [o.job_id for o in outcomes] == [j.job_id for j in jobs]
    for (f, s), outcome in zip(grid, outcomes):
        assert outcome.error is None
        assert outcome.stats == direct(bars, {"fast": f, "slow": s, "quantity": 0.3}, **options)
    assert engine_options(settings) == options


def test_permutation_jobs_run_on_the_path_of_their_seed(bars):
    jobs = [job(0, fast=5, slow=25)] + [job(i, seed=1000 + i, fast=5, slow=25) for i in range(1, 6)]
    outcomes = run_jobs({"d1": bars}, jobs)
    assert outcomes[0].stats == direct(bars, {"fast": 5, "slow": 25}, fee_rate=0.0, initial_capital=10_000.0)
    for j, outcome in zip(jobs[1:], outcomes[1:]):
        assert outcome.stats == direct(bars, {"fast": 5, "slow": 25}, seed=j.seed, fee_rate=0.0,
                                       initial_capital=10_000.0)
    assert len({o.stats["net_pnl"] for o in outcomes}) == 6  # every path differs from the others


def test_a_window_runs_on_its_bars_only(bars):
    ts = bars["timestamp_ns"]
    settings = EngineSettings(start=int(ts[2_000]), end=int(ts[9_000]))
    (outcome,) = run_jobs({"d1": bars}, [job(0, settings=settings, fast=4, slow=16)])
    assert outcome.stats == direct(bars[2_000:9_000], {"fast": 4, "slow": 16}, fee_rate=0.0, initial_capital=10_000.0)
    assert len(window(bars, EngineSettings(start=int(ts[100]))) ) == len(bars) - 100
    with pytest.raises(JobError, match="no bars in the window"):
        window(bars, EngineSettings(start=int(ts[-1]) + 1))
    run = run_job(bars, job(1, settings=settings, fast=4, slow=16), equity=True)
    assert len(run["equity"]) == 7_000 and run["timestamps"][0] == ts[2_000]


def test_a_failing_job_fails_alone(bars):
    jobs = [
        job(0, fast=5, slow=20),
        job(1, strategy=f"{HERE}:boom"),
        job(2, strategy=f"{HERE}:not_signals"),  # refused inside run_batch: the batch reruns one by one
        job(3, strategy="no_such_strategy"),
        job(4, fast=0, slow=20),
        job(5, seed=-1, fast=5, slow=20),
        job(6, dataset="missing", fast=5, slow=20),
        job(7, settings=EngineSettings(mode=EngineMode.EVENT), fast=5, slow=20),
        job(8, settings=EngineSettings(latency_ns=5), fast=5, slow=20),
        job(9, settings=EngineSettings(taker_fee_bps=4.0, maker_fee_bps=1.0), fast=5, slow=20),
        job(10, fast=6, slow=30),
    ]
    outcomes = run_jobs({"d1": bars}, jobs)
    errors = {o.job_id: o.error for o in outcomes}
    assert errors["j1"] == "RuntimeError: strategy exploded"
    assert "SIGNAL_DTYPE" in errors["j2"]
    assert "unknown strategy 'no_such_strategy'" in errors["j3"]
    assert "period must be an integer >= 1" in errors["j4"]
    assert "seed must be >= 0" in errors["j5"]
    assert "dataset missing is not loaded" in errors["j6"]
    assert errors["j7"] is None and "latency_ns" in errors["j8"]    # event mode runs (test_event_jobs.py)
    assert "one fee rate" in errors["j9"]
    assert errors["j0"] is None and errors["j10"] is None
    assert outcomes[0].stats == direct(bars, {"fast": 5, "slow": 20}, fee_rate=0.0, initial_capital=10_000.0)
    assert outcomes[10].stats == direct(bars, {"fast": 6, "slow": 30}, fee_rate=0.0, initial_capital=10_000.0)
    assert all(np.isfinite(o.elapsed_ns) for o in outcomes)
