"""Event-mode backtest jobs: the event backtester with the job's fee and latency models."""
from __future__ import annotations

import numpy as np
import pytest

from tradebus.engine import STAT_KEYS, Engine
from tradebus.engine.examples import sma_cross
from tradebus.proto import BacktestJob, EngineSettings
from tradebus.proto.backtest import EngineMode
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, read_bars
from tradebus.study.event_jobs import EventJobError, event_options, run_event_job
from tradebus.study.execution import run_job, run_jobs

QUOTER = "tests.services.backtest_worker.strategies:Quoter"   # an event-mode strategy
MINUTE = 60_000_000_000


@pytest.fixture(scope="module")
def bars():
    return read_bars(data_dir() / DEFAULT_BARS_FILE)[:6_000]


def job(strategy="sma_cross", seed=None, **settings) -> BacktestJob:
    params = {"fast": 10, "slow": 40} if strategy == "sma_cross" else {}
    return BacktestJob(job_id="j", study_id="s", dataset_id="d1", strategy=strategy, params=params, seed=seed,
                       settings=EngineSettings(mode=EngineMode.EVENT, **settings))


def test_a_signal_function_gives_the_batch_engines_result(bars):
    """Market-order signals sent by SignalReplay fill like the batch engine fills them."""
    for fill in ("close", "next_open"):
        settings = dict(initial_cash=100_000.0, taker_fee_bps=4.0, maker_fee_bps=4.0, slippage_bps=1.0, fill=fill)
        event = run_event_job(bars, job(**settings))
        engine = Engine(initial_capital=100_000.0, fee_rate=4e-4, slippage_bps=1.0, fill=fill)
        engine.load_bars(bars)
        batch = engine.run(sma_cross(bars, fast=10, slow=40))
        assert batch["total_fills"] > 20
        for key in ("total_fills", "total_trades", "winning_trades", "losing_trades"):
            assert event[key] == batch[key], key
        for key in ("net_pnl", "total_fees", "gross_profit", "gross_loss", "max_drawdown", "final_capital"):
            assert event[key] == pytest.approx(batch[key], rel=1e-9, abs=1e-6), key


def test_maker_and_taker_fees(bars):
    result = run_event_job(bars, job(QUOTER, taker_fee_bps=4.0, maker_fee_bps=-1.0))
    fills = result["fills"]
    maker = fills["is_maker"] == 1
    assert maker.sum() > 10 and (~maker).sum() > 2
    notional = fills["qty"] * fills["price"]
    assert np.allclose(fills["fee"][maker], -1e-4 * notional[maker])       # a rebate
    assert np.allclose(fills["fee"][~maker], 4e-4 * notional[~maker])
    assert result["total_fees"] == pytest.approx(fills["fee"].sum())


def test_entry_latency_moves_market_fills_to_the_next_bar(bars):
    """An order sent at a bar's close with 30 s of latency reaches the venue inside the next
    bar and fills at that bar's open (with no latency and fill=close: at the signal bar's close)."""
    signals = sma_cross(bars, fast=10, slow=40)
    stamp = np.searchsorted(bars["timestamp_ns"], signals["timestamp_ns"], side="right") - 1
    now = run_event_job(bars, job(fill="close"))
    assert now["fills"]["price"].tolist() == bars["close"][stamp].tolist()
    late = run_event_job(bars, job(fill="close", latency_ns=MINUTE // 2, response_latency_ns=MINUTE))
    assert late["fills"]["price"].tolist() == bars["open"][stamp + 1].tolist()
    assert late["fills"]["ts_ns"].tolist() == bars["timestamp_ns"][stamp + 1].tolist()


def test_recorded_latency_is_reproducible_per_seed(bars):
    samples = (0, 2 * MINUTE, 5 * MINUTE)
    runs = {seed: run_event_job(bars, job(latency_samples_ns=samples, latency_seed=seed)) for seed in (1, 2)}
    again = run_event_job(bars, job(latency_samples_ns=samples, latency_seed=1))
    assert again["fills"].tolist() == runs[1]["fills"].tolist()
    assert runs[1]["fills"]["ts_ns"].tolist() != runs[2]["fills"]["ts_ns"].tolist()


def test_run_jobs_runs_event_jobs_and_fails_bad_ones_alone(bars):
    jobs = [
        job(taker_fee_bps=2.0, maker_fee_bps=1.0, latency_ns=1_000),
        job(latency_ns=-5),
        job(response_latency_samples_ns=(1, 2)),
        job(latency_ns=5, latency_samples_ns=(1, 2)),
        job(taker_fee_bps=-3.0),
        job(QUOTER, seed=3, taker_fee_bps=2.0),
    ]
    jobs = [BacktestJob(job_id=f"j{i}", study_id="s", dataset_id="d1", strategy=j.strategy, params=j.params,
                        seed=j.seed, settings=j.settings) for i, j in enumerate(jobs)]
    outcomes = run_jobs({"d1": bars}, jobs)
    errors = {o.job_id: o.error for o in outcomes}
    assert errors["j0"] is None and errors["j5"] is None
    assert "latency_ns" in errors["j1"]
    assert "response_latency_samples_ns" in errors["j2"]
    assert "not both" in errors["j3"]
    assert "taker_fee_bps=-3.0" in errors["j4"]
    direct = run_event_job(bars, jobs[0])
    assert outcomes[0].stats == {k: float(direct[k]) for k in STAT_KEYS}
    assert set(outcomes[5].stats) == set(STAT_KEYS)
    redraw = run_job(bars, jobs[0], equity=True)
    assert len(redraw["equity"]) == len(bars) and redraw["timestamps"][0] == bars["timestamp_ns"][0]


def test_event_options():
    options = event_options(EngineSettings(mode=EngineMode.EVENT, taker_fee_bps=4.0, maker_fee_bps=1.0,
                                           latency_ns=7, response_latency_ns=9, fill="next_open"))
    assert (options["fee_model"].maker_rate, options["fee_model"].taker_rate) == (1e-4, 4e-4)
    assert (options["latency_model"].entry_ns, options["latency_model"].response_ns) == (7, 9)
    assert options["bar_fill"] == "next_open"
    with pytest.raises(EventJobError, match="fill"):
        event_options(EngineSettings(mode=EngineMode.EVENT, fill="open"))


def test_study_command_line_asks_for_event_mode():
    import argparse

    from tradebus.cli.study import _settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["study", "sweep", "--grid", "fast=2:4", "--mode", "event", "--fee-bps", "4",
                              "--maker-fee-bps", "-0.5", "--latency-ns", "1000", "--response-latency-ns", "2000"])
    assert _settings(args) == EngineSettings(mode=EngineMode.EVENT, initial_cash=100_000.0, taker_fee_bps=4.0,
                                             maker_fee_bps=-0.5, latency_ns=1000, response_latency_ns=2000)
    args = parser.parse_args(["study", "sweep", "--grid", "fast=2:4", "--fee-bps", "3"])
    assert _settings(args) == EngineSettings(initial_cash=100_000.0, taker_fee_bps=3.0, maker_fee_bps=3.0)
