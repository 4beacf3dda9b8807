"""Jobs that carry a signal rule (tradebus.study.rule_jobs through run_jobs / run_job) and the
command line's ``--rule``: checked against the engine run directly with the Python function."""
from __future__ import annotations

import argparse
import json

import msgspec
import numpy as np
import pytest

from tradebus.engine import STAT_KEYS, Engine, permutation_paths
from tradebus.engine.examples import sma_cross
from tradebus.proto import BacktestJob, EngineSettings
from tradebus.proto.backtest import EngineMode
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, read_bars
from tradebus.study.execution import run_job, run_jobs
from tradebus.study.jobs import StudyError, build_jobs, make_spec
from tradebus.study.rule_jobs import job_rule
from tradebus.study.rules import resolve_rule

SETTINGS = EngineSettings(initial_cash=100_000.0, taker_fee_bps=10.0, maker_fee_bps=10.0)


@pytest.fixture(scope="module")
def bars() -> np.ndarray:
    return read_bars(data_dir() / DEFAULT_BARS_FILE)[:8_000].copy()


def direct(bars, params: dict, seed: int | None = None) -> dict[str, float]:
    data = bars if seed is None else next(permutation_paths(bars, 1, seed=seed))
    engine = Engine(initial_capital=100_000.0, fee_rate=1e-3)
    engine.load_bars(data)
    out = engine.run(sma_cross(data, **params))
    return {k: float(out[k]) for k in STAT_KEYS}


def rule_job(index: int, seed: int | None = None, rule=None, settings=SETTINGS, **params) -> BacktestJob:
    return BacktestJob(job_id=f"r-{index}", study_id="r", dataset_id="d", strategy="sma_cross", params=params,
                       seed=seed, settings=settings, rule=rule if rule is not None else resolve_rule("sma_cross").to_spec())


def test_rule_jobs_equal_the_python_function_run_directly(bars):
    jobs = [rule_job(0, fast=5, slow=20), rule_job(1, fast=8, slow=40, quantity=0.3),
            *[rule_job(2 + k, seed=1000 + k, fast=6, slow=25) for k in range(6)],
            rule_job(9, seed=77, fast=10, slow=30)]
    outcomes = run_jobs({"d": bars}, jobs, threads=2)
    for job, outcome in zip(jobs, outcomes):
        assert outcome.error is None and outcome.job_id == job.job_id
        assert outcome.stats == direct(bars, job.params, job.seed), job.job_id
    single = run_job(bars, jobs[3], equity=True)  # the report's direct path: same numbers, with a curve
    assert {k: float(single[k]) for k in STAT_KEYS} == outcomes[3].stats and len(single["equity"]) == len(bars)


def test_a_bad_rule_fails_its_jobs_for_good_and_spares_the_others(bars):
    bad_spec = {"entry_long": {"cross_above": [{"sma": ["close", 10]}, {"rsi": ["close", "fourteen"]}]}}
    jobs = [rule_job(0, rule=bad_spec), rule_job(1, fast=5, slow=20), rule_job(2, fast=5, slow=20_000),
            rule_job(3, seed=5, fast=5, slow=20_000), rule_job(4, seed=5, fast=5, slow=20)]
    out = run_jobs({"d": bars}, jobs)
    assert out[0].error.startswith("RuleError") and "rsi" in out[0].error and out[0].retry is False
    for k in (2, 3):  # a window longer than the 8,000 bars
        assert out[k].error.startswith("RuleError") and "20000" in out[k].error and out[k].retry is False
    assert out[1].stats == direct(bars, {"fast": 5, "slow": 20})
    assert out[4].stats == direct(bars, {"fast": 5, "slow": 20}, seed=5)
    python = run_jobs({"d": bars}, [msgspec.structs.replace(jobs[1], rule=None, params={"fast": 0})])[0]
    assert "period must be" in python.error and python.retry is True  # a Python function's failure may pass


def test_compiled_rules_are_cached_per_rule_spec(bars):
    a, b = rule_job(0, fast=5, slow=20), rule_job(1, fast=9, slow=50)
    assert job_rule(a) is job_rule(b)  # equal specs, one parsed rule
    reordered = dict(reversed(list(a.rule.items())))
    assert job_rule(msgspec.structs.replace(a, rule=reordered)) is job_rule(a)


def test_event_mode_job_replays_the_rule_signals(bars):
    settings = EngineSettings(mode=EngineMode.EVENT, initial_cash=100_000.0, taker_fee_bps=10.0, maker_fee_bps=10.0)
    with_rule = rule_job(0, settings=settings, fast=5, slow=20)
    python = msgspec.structs.replace(with_rule, rule=None)
    part = bars[:3_000]
    got, want = run_jobs({"d": part}, [with_rule, python])
    assert got.error is None and got.stats == want.stats and got.stats["total_trades"] > 0


def test_make_spec_checks_the_rule_and_stores_its_canonical_spec():
    rule = resolve_rule("sma_cross")
    spec = make_spec("sweep", strategy="sma_cross", dataset_id="bars-x", grid={"fast": [5, 6]},
                     rule=json.loads(json.dumps(rule.to_spec())))
    assert spec.rule == rule.to_spec() and {p.job.rule == spec.rule for p in build_jobs(spec)} == {True}
    with pytest.raises(StudyError, match="rule: .*bollinger"):
        make_spec("sweep", strategy="x", dataset_id="bars-x", rule={"entry_long": {"bollinger": ["close", 20]}})


def _args(*argv: str):
    from tradebus.cli.study import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["study", "sweep", "--grid", "fast=2:4", *argv])


def test_command_line_takes_a_rule_file_or_the_builtin_rule(tmp_path):
    from tradebus.cli.study import _strategy

    name, rule = _strategy(_args())
    assert name == "sma_cross" and rule == resolve_rule("sma_cross")  # built-ins run as rules
    yaml_file = tmp_path / "trend.yaml"
    yaml_file.write_text("entry_long: {cross_above: [{ema: [close, {param: fast}]}, {sma: [close, 50]}]}\n"
                         "exit_long: {cross_below: [{ema: [close, {param: fast}]}, {sma: [close, 50]}]}\n")
    name, spec = _strategy(_args("--rule", str(yaml_file)))
    assert name == "rule:trend" and spec["entry_long"]["cross_above"][1] == {"sma": ["close", 50]}
    json_file = tmp_path / "same.json"
    json_file.write_text(json.dumps(spec))
    assert _strategy(_args("--rule", str(json_file), "--strategy", "mine")) == ("mine", spec)
    assert _strategy(_args("--strategy", "some_module_only_workers_have:fn")) == (
        "some_module_only_workers_have:fn", None)  # runs as Python on the workers
    bad = tmp_path / "bad.yaml"
    bad.write_text("entry_long: {cross_above: [{sma: [close, 10]}, {wma: [close, 30]}]}\n")
    with pytest.raises(StudyError, match="wma"):
        _strategy(_args("--rule", str(bad)))
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(StudyError, match="expected a mapping"):
        _strategy(_args("--rule", str(listed)))
    with pytest.raises(StudyError, match="missing.yaml"):
        _strategy(_args("--rule", str(tmp_path / "missing.yaml")))
