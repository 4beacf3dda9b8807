"""tradebus.engine.fused through permutation_test and sweep: the fused pipeline equals the Engine
run on the same paths and signals, the Python-function path, and a plain numpy backtest."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tradebus.engine import STAT_KEYS, Engine, permutation_paths, permutation_test, sweep
from tradebus.engine.examples import SMA_CROSS_RULE, sma_cross
from tradebus.engine.fused import STAGES, permutation_stats
from tradebus.engine.paths import PathSource
from tradebus.engine.rule_language import (
    Rule,
    RuleError,
    bbands,
    close,
    cross_above,
    cross_below,
    limit,
    param,
    rsi,
    sma,
    stop,
)
from tradebus.engine.rules import compile_program

from .conftest import random_bars
from .vectorised_reference import sma_cross_stats


def engine_stats(bars, signals, **options) -> dict:
    engine = Engine(**options)
    engine.load_bars(bars)
    return engine.run(signals)


def assert_rows_equal(got: dict, want: dict) -> None:
    for key in STAT_KEYS:
        assert got[key] == want[key] or (math.isnan(got[key]) and math.isnan(want[key])), key


RULES = [
    SMA_CROSS_RULE,
    Rule(entry_long=cross_above(sma(close, 5), sma(close, 20)) & (rsi(close, 9) < 65),
         exit_long=cross_below(sma(close, 5), sma(close, 20)),
         entry_short=close > bbands(close, 15, 1.5).upper, exit_short=close < bbands(close, 15, 1.5).mid,
         order=limit(4), quantity=2.0),
    Rule(entry_long=rsi(close, 7) < 35, exit_long=rsi(close, 7) > 60, order=stop(10)),
]


@pytest.mark.parametrize("rule", RULES, ids=["sma_cross", "long_short_limit", "rsi_stop"])
@pytest.mark.parametrize("mode", ["paths", "signals"])
def test_fused_permutations_equal_the_engine_on_the_same_paths(rule, mode):
    bars = random_bars(1_500, seed=11, vol=0.006)
    options = {"fee_rate": 0.0005, "slippage_bps": 1.5}
    result = permutation_test(bars, rule, n=24, seed=2024, mode=mode, **options)
    assert result.seed == 2024 and result.n == 24 and result.mode == mode
    assert_rows_equal(result.real, engine_stats(bars, rule.signals(bars), **options))
    for k, path in enumerate(permutation_paths(bars, 24, seed=2024)):
        want = engine_stats(bars if mode == "signals" else path, rule.signals(path), **options)
        assert_rows_equal({key: result.distribution[key][k] for key in STAT_KEYS}, want)


@pytest.mark.parametrize("mode", ["paths", "signals"])
def test_a_rule_and_its_python_function_give_the_same_study_row_for_row(mode):
    bars = random_bars(2_000, seed=12)
    fused = permutation_test(bars, "sma_cross", n=16, seed=77, mode=mode, params={"fast": 7, "slow": 25},
                             fee_rate=0.001)
    python = permutation_test(bars, lambda b: sma_cross(b, 7, 25), n=16, seed=77, mode=mode, fee_rate=0.001)
    assert fused.real == python.real
    for key in STAT_KEYS:
        np.testing.assert_array_equal(fused.distribution[key], python.distribution[key], err_msg=key)
    assert fused.p_values == python.p_values


def test_fused_permutations_equal_a_plain_numpy_backtest():
    bars = random_bars(3_000, seed=13)
    result = permutation_test(bars, SMA_CROSS_RULE, n=12, seed=5, params={"fast": 10, "slow": 30},
                              fee_rate=1e-4, initial_capital=100_000.0, fill="next_open")
    for k, path in enumerate(permutation_paths(bars, 12, seed=5)):
        want = sma_cross_stats(path, 10, 30, fee_rate=1e-4)
        assert want["total_fills"] > 20
        for key, value in want.items():
            assert result.distribution[key][k] == pytest.approx(value, rel=1e-9, abs=1e-7), key


def test_farm_style_paths_one_seed_each_and_stage_timings():
    bars = random_bars(800, seed=14)
    engine = Engine(fee_rate=0.0)
    engine.load_bars(bars)
    program = compile_program(SMA_CROSS_RULE.compile(800))
    seeds = [3, 99, 2**64 - 1]
    timings: dict = {}
    got = permutation_stats(engine, PathSource(engine.instrument()), program, seeds, [0, 0, 0], threads=2,
                            timings=timings)
    for seed, row in zip(seeds, got):
        path = next(permutation_paths(bars, 1, seed=seed))
        assert_rows_equal(row, engine_stats(path, sma_cross(path), fee_rate=0.0))
    assert set(timings) == set(STAGES) and all(v >= 0 for v in timings.values())


def test_results_do_not_depend_on_the_thread_count():
    bars = random_bars(1_000, seed=17)
    one = permutation_test(bars, RULES[1], n=10, seed=8, threads=1)
    two = permutation_test(bars, RULES[1], n=10, seed=8, threads=2)
    for key in STAT_KEYS:
        np.testing.assert_array_equal(one.distribution[key], two.distribution[key], err_msg=key)


def test_sweep_equals_one_engine_run_per_point():
    bars = random_bars(2_500, seed=15)
    grid = {"fast": [3, 5, 10], "slow": [20, 30, 5]}
    result = sweep(bars, "sma_cross", grid, fee_rate=0.0002, threads=2)
    assert [(p["fast"], p["slow"]) for p in result.points] == [(f, s) for f in (3, 5, 10) for s in (20, 30, 5)]
    for k, point in enumerate(result.points):
        want = engine_stats(bars, sma_cross(bars, **point), fee_rate=0.0002)
        assert_rows_equal({key: result.stats[key][k] for key in STAT_KEYS}, want)
    rows = result.rows()
    assert rows[0]["fast"] == 3 and rows[0]["net_pnl"] == result.stats["net_pnl"][0]
    assert result.best("net_pnl")["net_pnl"] == result.stats["net_pnl"].max()


def test_sweep_of_a_general_rule_and_a_list_of_points():
    bars = random_bars(1_200, seed=16, vol=0.008)
    fast, slow = sma(close, 8), sma(close, 21)
    rule = Rule(entry_long=cross_above(fast, slow) & (rsi(close, param("n", 14)) < param("top")),
                exit_long=cross_below(fast, slow), order=limit(param("bps", 2.0)))
    points = [{"top": 60}, {"top": 80, "n": 7}, {"top": 70, "bps": 0.0}]
    result = sweep(bars, rule, points, fee_rate=0.0001)
    for k, point in enumerate(points):
        want = engine_stats(bars, rule.signals(bars, **point), fee_rate=0.0001)
        assert_rows_equal({key: result.stats[key][k] for key in STAT_KEYS}, want)


def test_sweep_and_permutation_refuse_what_they_cannot_run():
    bars = random_bars(100)
    with pytest.raises(RuleError, match=r"grid point 1: unbound param\(s\) \['x'\]"):
        sweep(bars, Rule(entry_long=close > sma(close, 3) * param("x")), [{"x": 1.0}, {}])
    with pytest.raises(RuleError, match="needs 200 bars"):
        sweep(bars, "sma_cross", {"slow": [20, 200]})
    with pytest.raises(TypeError, match="sweep runs a signal Rule"):
        sweep(bars, sma_cross, {"fast": [2]})
    with pytest.raises(RuleError, match="no built-in rule is called 'nope'"):
        permutation_test(bars, "nope", n=2)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        permutation_test(bars, "sma_cross", n=2, seed=-1)
    with pytest.raises(ValueError, match="params bind a rule"):
        permutation_test(bars, sma_cross, n=2, params={"fast": 3})
