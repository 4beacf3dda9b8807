"""Farm jobs that carry a signal rule, end to end: real nats-server, real worker processes.

The reference is the engine run directly on each job's bars (the window, or path 0 of the job's
seed from ``permutation_paths``) with the Python ``sma_cross`` signal function: no farm code,
no rule compiler in between.
"""
from __future__ import annotations

import msgspec

from tradebus.cli.study import _print_summary
from tradebus.engine import permutation_paths
from tradebus.engine.examples import sma_cross
from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit
from tradebus.study.report import write_report
from tradebus.study.results import results_frame
from tradebus.study.rules import Rule, close, cross_above, cross_below, param, resolve_rule, sma

from .farm import direct_stats, real_bars, stored_records
from .test_farm import COLLECT_TIMEOUT, status_once, workers


def engine_options(spec) -> dict:
    s = spec.settings
    return {"initial_capital": s.initial_cash, "fee_rate": s.taker_fee_bps / 1e4, "slippage_bps": s.slippage_bps,
            "fill": s.fill}


def job_path(bars, job):
    return bars if job.seed is None else next(permutation_paths(bars, 1, seed=job.seed))


async def test_rule_permutation_and_sweep_studies_equal_the_direct_runs(farm, tmp_path):
    server, bus = farm
    bars = real_bars(6_000)
    ident = await publish_dataset(bus, bars)
    rule = resolve_rule("sma_cross")
    perm = make_spec("permutation", strategy="sma_cross", rule=rule, dataset_id=ident, n=40, seed=11,
                     params={"fast": 8, "slow": 30, "quantity": 0.5})
    sweep = make_spec("sweep", strategy="sma_cross", rule=rule, dataset_id=ident,
                      grid=parse_grid(["fast=3:12:3", "slow=20,40"]))
    assert perm.settings.taker_fee_bps == 10.0 and perm.settings.fill == "next_open"  # the study defaults
    assert all(p.job.rule == rule.to_spec() for p in build_jobs(perm))
    async with workers(bus, server, tmp_path, 2, batch=16):
        await submit(bus, perm)
        await submit(bus, sweep)
        got_perm = await Collector(bus, perm).run(timeout=COLLECT_TIMEOUT)
        got_sweep = await Collector(bus, sweep).run(timeout=COLLECT_TIMEOUT)
    for spec, collector in ((perm, got_perm), (sweep, got_sweep)):
        assert collector.dead == {} and len(collector.results) == spec.total_jobs
        for planned in build_jobs(spec):
            job = planned.job
            expected = direct_stats(job_path(bars, job), sma_cross, job.params, **engine_options(spec))
            assert collector.results[job.job_id].stats == expected, job.job_id
    assert await stored_records(bus.js, perm.study_id) == (41, 0)


async def test_a_rule_that_cannot_compile_is_dead_lettered_at_once_with_its_reason(farm, tmp_path, capsys):
    server, bus = farm
    bars = real_bars(3_000)
    ident = await publish_dataset(bus, bars)
    good = make_spec("sweep", strategy="sma_cross", rule=resolve_rule("sma_cross"), dataset_id=ident,
                     grid=parse_grid(["fast=5,10"]))
    # a spec from another producer: it never went through make_spec's check
    unknown = msgspec.structs.replace(
        make_spec("permutation", strategy="typo", rule=resolve_rule("sma_cross"), dataset_id=ident, n=3, seed=1),
        rule={"entry_long": {"smaa": ["close", 10]}})
    too_long = Rule(entry_long=cross_above(sma(close, 10), sma(close, param("slow"))),
                    exit_long=cross_below(sma(close, 10), sma(close, param("slow"))))
    window = make_spec("sweep", strategy="long_sma", rule=too_long, dataset_id=ident,
                       grid=parse_grid(["slow=50,50000"]))
    async with workers(bus, server, tmp_path, 1, attempts=3, retry_delay=0.1):
        for spec in (unknown, window, good):
            await submit(bus, spec)
        dead_unknown = await Collector(bus, unknown).run(timeout=COLLECT_TIMEOUT)
        dead_window = await Collector(bus, window).run(timeout=COLLECT_TIMEOUT)
        fine = await Collector(bus, good).run(timeout=COLLECT_TIMEOUT)
        status = await status_once(bus, jobs_dead=5, jobs_done=3)
    assert len(dead_unknown.dead) == 4 and dead_unknown.results == {}
    for dead in dead_unknown.dead.values():
        assert dead.attempts == 1  # not retried: the rule itself is wrong
        assert dead.reason.startswith("RuleError") and "smaa" in dead.reason
    (bad_id,) = dead_window.dead
    assert bad_id == build_jobs(window)[1].job.job_id  # slow=50000 on 3,000 bars
    reason = dead_window.dead[bad_id].reason
    assert reason.startswith("RuleError") and "50000" in reason and dead_window.dead[bad_id].attempts == 1
    assert len(dead_window.results) == 1 and len(fine.results) == 2 and fine.dead == {}
    assert status.counters.get("jobs_retried", 0) == 0 and status.counters["jobs_dead"] == 5

    frame = results_frame(window, dead_window.results, dead_window.dead)
    assert list(frame["status"]) == ["ok", "dead"] and frame.iloc[1]["error"] == reason
    page = write_report(window, frame, tmp_path / "report").read_text()
    assert "Dead jobs (1)" in page and "50000" in page
    capsys.readouterr()
    _print_summary(unknown, results_frame(unknown, dead_unknown.results, dead_unknown.dead), top=3)
    err = capsys.readouterr().err
    assert "0 ok, 4 dead" in err
    assert f"dead {build_jobs(unknown)[0].job.job_id} and 3 more: RuleError: entry_long: unknown function 'smaa'" in err
