"""tradebus.engine.rules: compiled rules give the indicators' numbers, numpy's conditions and the
signals of the Python strategy functions and of a plain state-machine reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebus.engine import indicators as ind
from tradebus.engine import make_signals
from tradebus.engine.examples import RULE_FORMS, sma_cross
from tradebus.engine.rule_language import (
    Rule,
    RuleError,
    atr,
    bbands,
    close,
    const,
    cross_above,
    cross_below,
    ema,
    high,
    limit,
    low,
    macd,
    market,
    open_,
    rolling_std,
    rsi,
    sma,
    stop,
    volume,
    vwap,
)
from tradebus.engine.rule_program import OPCODES
from tradebus.engine.rules import INSTR_DTYPE, evaluate

from .conftest import random_bars

SIGNAL_FIELDS = ("timestamp_ns", "side", "quantity", "price", "type")


def assert_same_signals(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    for field in SIGNAL_FIELDS:
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)


def columns_of(bars, *series):
    """The compiled columns of number series (evaluated through a rule that reads them all)."""
    cond = series[0] > 0
    for s in series[1:]:
        cond = cond | (s > 0)
    columns, _, _ = evaluate(bars, Rule(entry_long=cond).compile(len(bars)))
    program = Rule(entry_long=cond).compile(len(bars))
    read = [row[2] for row in program.points[0].conditions if row[0] == OPCODES["gt"]]
    return [columns[c] for c in read]


def test_indicator_columns_are_the_indicators_numbers():
    bars = random_bars(700, seed=3)
    c, h, lo, v = bars["close"], bars["high"], bars["low"], bars["volume"]
    bands, lines = bbands(close, 20, 1.5), macd(close, 5, 13, 4)
    got = columns_of(bars, sma(close, 9), ema(close, 12), rsi(close, 14), atr(10), rolling_std(close, 15, 1),
                     bands.upper, bands.mid, bands.lower, lines.line, lines.signal, lines.hist,
                     vwap(), vwap(close, 30), sma(open_, 4), ema(volume, 3))
    mid, upper, lower = ind.bollinger(c, 20, 1.5)
    line, signal, hist = ind.macd(c, 5, 13, 4)
    want = [ind.sma(c, 9), ind.ema(c, 12), ind.rsi(c, 14), ind.atr(h, lo, c, 10), ind.rolling_std(c, 15, 1),
            upper, mid, lower, line, signal, hist, ind.vwap((h + lo + c) / 3, v), ind.vwap(c, v, 30),
            ind.sma(bars["open"], 4), ind.ema(v, 3)]
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"series {k}")


def test_an_indicator_over_another_warms_up_after_it_and_arithmetic_is_elementwise():
    bars = random_bars(300, seed=4)
    c = bars["close"]
    got = columns_of(bars, ema(sma(close, 10), 5), rsi(ema(close, 7), 3), (high - low) / close * 100 + 1)
    inner = ind.sma(c, 10)
    want_ema = np.full(300, np.nan)
    want_ema[9:] = ind.ema(inner[9:], 5)
    want_rsi = np.full(300, np.nan)
    want_rsi[6:] = ind.rsi(ind.ema(c, 7)[6:], 3)
    np.testing.assert_array_equal(got[0], want_ema)
    np.testing.assert_array_equal(got[1], want_rsi)
    np.testing.assert_array_equal(got[2], (bars["high"] - bars["low"]) / c * 100 + 1)


def test_conditions_follow_numpy_with_nan_false():
    bars = random_bars(400, seed=5)
    c = bars["close"]
    f, s, r = ind.sma(c, 5), ind.sma(c, 20), ind.rsi(c, 14)
    fast, slow, strength = sma(close, 5), sma(close, 20), rsi(close, 14)
    conditions = [cross_above(fast, slow), cross_below(fast, slow), strength <= 40, strength >= 60,
                  (fast > slow) & ~(strength < 50), (fast < slow) | (strength > 70), cross_above(close, 100)]
    rule = Rule(entry_long=conditions[0], exit_long=conditions[1], entry_short=conditions[2],
                exit_short=conditions[3])
    with np.errstate(invalid="ignore"):
        prev_f, prev_s = np.concatenate(([np.nan], f[:-1])), np.concatenate(([np.nan], s[:-1]))
        prev_c = np.concatenate(([np.nan], c[:-1]))
        want = [(f > s) & (prev_f <= prev_s), (f < s) & (prev_f >= prev_s), r <= 40, r >= 60,
                (f > s) & ~(r < 50), (f < s) | (r > 70), (c > 100) & (prev_c <= 100)]
    for cond, expected in zip(conditions, want):
        r2 = Rule(entry_long=cond)
        program = r2.compile(len(bars))
        _, slots, _ = evaluate(bars, program)
        np.testing.assert_array_equal(slots[program.points[0].sides[0]].astype(bool), expected, err_msg=repr(cond))
    assert rule.compile(len(bars)).points[0].sides == (0, 1, 2, 3)


def reference_signals(bars, entry_long, exit_long, entry_short, exit_short, order_type, offset_bps, quantity):
    """The documented state machine, bar by bar."""
    rows, pos = [], 0
    for t in range(len(bars)):
        el, xl, es, xs = (bool(x[t]) if x is not None else False for x in (entry_long, exit_long, entry_short, exit_short))
        sides = []
        if pos == 0:
            if el:
                sides, pos = [0], 1
            elif es:
                sides, pos = [1], -1
        elif pos == 1 and (xl or es):
            sides, pos = ([1, 1], -1) if es else ([1], 0)
        elif pos == -1 and (xs or el):
            sides, pos = ([0, 0], 1) if el else ([0], 0)
        for side in sides:
            c = bars["close"][t]
            if order_type == 0:
                price = math.nan
            elif (order_type == 1) == (side == 0):
                price = c * (1 - offset_bps / 10_000)
            else:
                price = c * (1 + offset_bps / 10_000)
            rows.append((bars["timestamp_ns"][t], side, quantity, price, order_type))
    if not rows:
        return make_signals(np.zeros(0, dtype=np.int64), [], [])
    ts, side, q, price, kind = (np.array(col) for col in zip(*rows))
    return make_signals(ts, side, q, price, kind)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(30, 300), lo=st.floats(10, 50), hi=st.floats(50, 90),
       k=st.floats(0.0, 3.0), order=st.sampled_from(["market", "limit", "stop"]), offset=st.floats(0, 100),
       quantity=st.floats(0.01, 5.0), shorts=st.booleans())
def test_rule_signals_follow_the_state_machine(seed, n, lo, hi, k, order, offset, quantity, shorts):
    bars = random_bars(n, seed=seed, vol=0.01)
    c = bars["close"]
    strength, bands = rsi(close, 5), bbands(close, 10, k)
    kind = {"market": market(), "limit": limit(offset), "stop": stop(offset)}[order]
    rule = Rule(entry_long=strength < lo, exit_long=strength > hi,
                entry_short=(close > bands.upper) if shorts else None,
                exit_short=cross_below(close, bands.mid) if shorts else None, order=kind, quantity=quantity)
    r = ind.rsi(c, 5)
    mid, upper, _ = ind.bollinger(c, 10, k)
    with np.errstate(invalid="ignore"):
        prev_c, prev_mid = np.concatenate(([np.nan], c[:-1])), np.concatenate(([np.nan], mid[:-1]))
        want = reference_signals(bars, r < lo, r > hi, (c > upper) if shorts else None,
                                 ((c < mid) & (prev_c >= prev_mid)) if shorts else None,
                                 {"market": 0, "limit": 1, "stop": 2}[order], kind.offset_bps, quantity)
    assert_same_signals(rule.signals(bars), want)


@pytest.mark.parametrize("fn", list(RULE_FORMS), ids=lambda f: f.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_builtin_rule_makes_its_functions_signals_on_random_bars(fn, data):
    n = data.draw(st.integers(2, 400), label="n")
    bars = random_bars(n, seed=data.draw(st.integers(0, 2**32 - 1), label="seed"),
                       vol=data.draw(st.sampled_from([0.0005, 0.004, 0.02]), label="vol"))
    params = {"fast": data.draw(st.integers(1, min(n, 40)), label="fast"),
              "slow": data.draw(st.integers(1, min(n, 80)), label="slow"),
              "quantity": data.draw(st.floats(0.001, 100.0), label="quantity")}
    assert_same_signals(RULE_FORMS[fn].signals(bars, **params), fn(bars, **params))


@pytest.mark.parametrize("fn", list(RULE_FORMS), ids=lambda f: f.__name__)
def test_every_builtin_rule_makes_its_functions_signals_on_real_bars(fn, btc_bars):
    for params in ({}, {"fast": 5, "slow": 100}, {"fast": 50, "slow": 20, "quantity": 0.5}):
        assert_same_signals(RULE_FORMS[fn].signals(btc_bars, **params), fn(btc_bars, **params))
    assert len(sma_cross(btc_bars)) > 4_000


def test_a_window_longer_than_the_data_is_refused_before_running():
    bars = random_bars(50)
    with pytest.raises(RuleError, match=r"sma\(close, 80\) needs 80 bars before its first value but the data has 50"):
        RULE_FORMS[sma_cross].signals(bars, slow=80)


def test_instruction_layout_and_constant_columns():
    assert INSTR_DTYPE.itemsize == 48
    bars = random_bars(20)
    columns, slots, signals = evaluate(bars, Rule(entry_long=close > const(100.5)).compile(len(bars)))
    assert np.all(columns[5] == 100.5)
    assert signals["side"].tolist() == ([0] if (bars["close"] > 100.5).any() else [])
