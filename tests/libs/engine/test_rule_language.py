"""tradebus.engine.rule_language: building rules, their JSON spec, compiling, refusing bad rules."""
from __future__ import annotations

import json

import pytest

from tradebus.engine.examples import SMA_CROSS_RULE, builtin_rule, sma_cross
from tradebus.engine.rule_language import (
    Rule,
    RuleError,
    atr,
    bbands,
    close,
    cross_above,
    cross_below,
    ema,
    high,
    limit,
    low,
    macd,
    market,
    open_,
    param,
    rolling_std,
    rsi,
    sma,
    stop,
    volume,
    vwap,
)
from tradebus.engine.rule_program import OPCODES


def sample_rules() -> list[Rule]:
    fast, slow = sma(close, param("fast")), sma(close, param("slow", 30))
    bands, lines = bbands(close, 20, 2.5), macd(close, 6, 13, 4)
    return [
        Rule(entry_long=cross_above(fast, slow) & (rsi(close, 14) < 70), exit_long=cross_below(fast, slow)),
        Rule(entry_long=close < bands.lower, exit_long=close > bands.mid,
             entry_short=(lines.hist < 0) | (close > bands.upper), exit_short=~(lines.line < lines.signal),
             order=limit(param("offset")), quantity=param("size", 2.0)),
        Rule(entry_short=vwap(period=param("w")) > close * 1.001, exit_short=atr(7) > (high - low) / 2,
             order=stop(15)),
        Rule(entry_long=ema(open_, 5) - rolling_std(close, 10, 1) >= volume / 1000 + 3,
             exit_long=ema(vwap(close), 3) <= low),
        SMA_CROSS_RULE,
    ]


@pytest.mark.parametrize("rule", sample_rules(), ids=lambda r: repr(r)[:40])
def test_spec_round_trips_through_json(rule):
    spec = json.loads(json.dumps(rule.to_spec()))
    assert Rule.from_spec(spec) == rule
    assert Rule.from_spec(spec).to_spec() == spec


def test_params_bind_with_defaults_and_compile():
    rule = sample_rules()[0]
    assert rule.params == {"fast", "slow"}
    with pytest.raises(RuleError, match=r"unbound param\(s\) \['fast'\]"):
        rule.compile()
    program = rule.compile(fast=5)                       # slow takes its default, 30
    periods = sorted(ins[5] for ins in program.numbers if ins[0] == OPCODES["sma"])
    assert periods == [5.0, 30.0]
    assert rule.bind(fast=5, slow=7).params == frozenset()


def test_the_program_computes_each_distinct_part_once():
    fast, slow = sma(close, 10), sma(close, 30)
    rule = Rule(entry_long=cross_above(fast, slow) & (sma(close, 10) > 0), exit_long=cross_below(sma(close, 10), slow))
    program = rule.compile()
    assert [ins[0] for ins in program.numbers].count(OPCODES["sma"]) == 2
    bands = bbands(close, 20)
    program = Rule(entry_long=close < bands.lower, exit_long=close > bands.upper).compile()
    assert [ins[0] for ins in program.numbers].count(OPCODES["bbands"]) == 1   # one pass, three columns
    # dependency order: every input column is written before it is read
    written = set(range(5))
    for op, col, *ins, _p0, _p1, _p2 in program.numbers:
        assert all(i in written for i in ins if i >= 0)
        written.update(range(col, col + (3 if op in (OPCODES["bbands"], OPCODES["macd"]) else 1)))


def test_builtin_rule_forms_are_registered():
    assert builtin_rule("sma_cross") is SMA_CROSS_RULE
    assert builtin_rule("nothing") is None
    from tradebus.study.strategies import resolve_rule
    assert resolve_rule("sma_cross") is SMA_CROSS_RULE
    assert resolve_rule("tradebus.engine.examples:sma_cross") is SMA_CROSS_RULE
    assert sma_cross.__name__ == "sma_cross"


@pytest.mark.parametrize("build, message", [
    (lambda: sma(close > 3, 10), r"sma x: a number series is needed, got a condition: \(close > 3\)"),
    (lambda: close & (close > 1), r"& left side: a condition .* got a number series: close"),
    (lambda: Rule(entry_long=sma(close, 3)), r"entry_long: a condition .* got a number series: sma\(close, 3\)"),
    (lambda: Rule(exit_long=close > 1), "a rule needs entry_long or entry_short"),
    (lambda: Rule(entry_short=close > 1, exit_long=close > 2), "exit_long without entry_long"),
    (lambda: close > True, "a series or a number is needed, got True"),
    (lambda: close > "3", "a series or a number is needed"),
    (lambda: bool(close < 3), "no truth value"),
    (lambda: 1 < close < 3, "no truth value"),
    (lambda: sma(close, 0), "sma period: must be >= 1, got 0"),
    (lambda: sma(close, 2.5), "sma period: an integer is needed"),
    (lambda: macd(close, 30, 20), r"fast \(30\) must be shorter than slow \(20\)"),
    (lambda: rolling_std(close, 5, 2), "ddof"),
    (lambda: Rule(entry_long=close > 1, quantity=0), "quantity must be > 0"),
    (lambda: limit(-1), "limit offset_bps: must be >= 0"),
    (lambda: param("not a name"), "param name must be an identifier"),
    (lambda: Rule(entry_long=macd(close, param("f"), 20).line < 0).compile(f=30), r"fast \(30\)"),
    (lambda: Rule(entry_long=sma(close, param("n")) > 1).compile(n=True), "a number is needed, got True"),
    (lambda: Rule(entry_long=cross_above(sma(close, 5), sma(close, 30))).compile(n_bars=20),
     r"entry_long: sma\(close, 30\) needs 30 bars before its first value but the data has 20"),
    (lambda: Rule(entry_long=rsi(sma(close, 10), 14) > 50).compile(n_bars=23),
     r"rsi\(sma\(close, 10\), 14\) needs 24 bars"),
])
def test_bad_rules_are_refused_naming_the_part(build, message):
    with pytest.raises(RuleError, match=message):
        build()


@pytest.mark.parametrize("spec, message", [
    ({"entry_long": {"foo": [1]}}, "entry_long: unknown function 'foo'"),
    ({"entry_long": {"gt": ["closing", 1]}}, "unknown series 'closing'"),
    ({"entry_long": {"gt": [{"sma": ["close"]}, 1]}}, r"sma\(\) missing 1 required positional argument"),
    ({"entry_long": {"gt": [{"bbands": ["close"]}, 1]}}, r"'bbands' is not an indicator output; use \['bbands.upper'"),
    ({"entry_long": {"and": ["close", {"gt": ["close", 1]}]}}, "& left side: a condition"),
    ({"entry_long": {"gt": ["close", 1]}, "exit": {}}, r"unknown rule field\(s\) \['exit'\]"),
    ({"entry_long": {"gt": ["close", 1]}, "order": {"twap": []}}, "order 'twap'"),
    ({"define": {"a": {"ref": "b"}, "b": {"and": [{"ref": "a"}, {"gt": ["close", 1]}]}},
      "entry_long": {"ref": "a"}}, "define: cycle of references a -> b -> a"),
    ({"entry_long": {"ref": "nowhere"}}, r"ref 'nowhere' is not in define"),
    ({"entry_long": True}, "entry_long: a series, number or expression is needed, got True"),
    ([1, 2], "a rule spec must be a mapping"),
])
def test_bad_specs_are_refused_naming_the_part(spec, message):
    with pytest.raises(RuleError, match=message):
        Rule.from_spec(spec)


def test_defines_are_shared_and_rule_errors_are_value_errors():
    spec = {"define": {"fast": {"sma": ["close", 5]}, "slow": {"sma": ["close", 20]}},
            "entry_long": {"cross_above": [{"ref": "fast"}, {"ref": "slow"}]},
            "exit_long": {"cross_below": [{"ref": "fast"}, {"ref": "slow"}]}, "order": {"market": []}}
    rule = Rule.from_spec(spec)
    assert rule == Rule(entry_long=cross_above(sma(close, 5), sma(close, 20)),
                        exit_long=cross_below(sma(close, 5), sma(close, 20)), order=market())
    assert issubclass(RuleError, ValueError)
