"""tradebus.engine.indicators against plain numpy definitions; streaming equals vectorised."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.engine import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    VWAP,
    Bollinger,
    RollingStd,
    atr,
    bollinger,
    ema,
    macd,
    rolling_std,
    rsi,
    sma,
    vwap,
)

RTOL = 1e-9


def walk(n: int, seed: int = 0, start: float = 30_000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, 0.002, n)))


# --- plain definitions ------------------------------------------------------------------------

def ref_sma(x, n):
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        out[i] = np.mean(x[i - n + 1:i + 1])
    return out


def ref_ema(x, n):
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    alpha = 2 / (n + 1)
    value = np.mean(x[:n])
    out[n - 1] = value
    for i in range(n, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def ref_rsi(x, n):
    out = np.full(len(x), np.nan)
    change = np.diff(x)
    if len(change) < n:
        return out
    gain, loss = np.mean(np.maximum(change[:n], 0)), np.mean(np.maximum(-change[:n], 0))
    for i in range(n, len(x)):
        if i > n:
            gain = (gain * (n - 1) + max(change[i - 1], 0)) / n
            loss = (loss * (n - 1) + max(-change[i - 1], 0)) / n
        out[i] = 50.0 if gain + loss == 0 else 100 - 100 / (1 + gain / loss) if loss else 100.0
    return out


def ref_atr(h, l, c, n):
    tr = h - l
    prev = np.concatenate(([np.nan], c[:-1]))
    tr[1:] = np.maximum.reduce([tr[1:], np.abs(h[1:] - prev[1:]), np.abs(l[1:] - prev[1:])])
    out = np.full(len(c), np.nan)
    if len(c) < n:
        return out
    value = np.mean(tr[:n])
    out[n - 1] = value
    for i in range(n, len(c)):
        value = (value * (n - 1) + tr[i]) / n
        out[i] = value
    return out


def ref_std(x, n, ddof=0):
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        out[i] = np.std(x[i - n + 1:i + 1], ddof=ddof)
    return out


def ref_vwap(p, v, n=None):
    out = np.full(len(p), np.nan)
    for i in range(len(p)):
        lo = 0 if n is None else i - n + 1
        if lo < 0:
            continue
        vol = v[lo:i + 1].sum()
        if vol > 0:
            out[i] = (p[lo:i + 1] * v[lo:i + 1]).sum() / vol
    return out


def close(a, b, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


# --- vectorised against the definitions -----------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 10, 30])
def test_sma_ema_rsi(n):
    x = walk(3_000)
    close(sma(x, n), ref_sma(x, n))
    close(ema(x, n), ref_ema(x, n))
    close(rsi(x, n), ref_rsi(x, n))


@pytest.mark.parametrize("n, ddof", [(2, 0), (20, 0), (20, 1)])
def test_rolling_std_and_bollinger(n, ddof):
    x = walk(3_000, seed=1)
    # Absolute floor: a rolling update cannot be more exact than the rounding of the prices.
    close(rolling_std(x, n, ddof), ref_std(x, n, ddof), atol=1e-9 * x.max())
    mid, up, low = bollinger(x, n, 2.5)
    std = ref_std(x, n)
    close(mid, ref_sma(x, n))
    close(up, ref_sma(x, n) + 2.5 * std, atol=1e-9 * x.max())
    close(low, ref_sma(x, n) - 2.5 * std, atol=1e-9 * x.max())


def test_rolling_std_of_a_flat_stretch_is_zero():
    x = np.concatenate((walk(200, seed=3), np.full(50, 123.25)))
    assert rolling_std(x, 10)[-1] == pytest.approx(0.0, abs=1e-9)


def test_atr():
    c = walk(2_000, seed=2)
    rng = np.random.default_rng(2)
    h = c * (1 + rng.uniform(0, 0.003, len(c)))
    l = c * (1 - rng.uniform(0, 0.003, len(c)))
    for n in (1, 14):
        close(atr(h, l, c, n), ref_atr(h, l, c, n))


def test_macd():
    x = walk(2_000, seed=4)
    line, signal, hist = macd(x, 12, 26, 9)
    want_line = ref_ema(x, 12) - ref_ema(x, 26)
    valid = ~np.isnan(want_line)
    want_signal = np.full(len(x), np.nan)
    want_signal[valid] = ref_ema(want_line[valid], 9)
    first = 26 - 1 + 9 - 1
    assert np.isnan(line[:first]).all() and not np.isnan(line[first:]).any()
    close(line[first:], want_line[first:], atol=1e-9 * x.max())
    close(signal, want_signal, atol=1e-9 * x.max())
    close(hist[first:], (want_line - want_signal)[first:], atol=1e-9 * x.max())


@pytest.mark.parametrize("n", [None, 1, 25])
def test_vwap(n):
    p = walk(1_500, seed=5)
    v = np.random.default_rng(5).uniform(0, 3, len(p))
    v[:3] = 0.0
    close(vwap(p, v, n), ref_vwap(p, v, n))


# --- streaming equals vectorised ------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1_000.0), min_size=0, max_size=80), st.integers(1, 12))
def test_streaming_equals_vectorised(values, n):
    x = np.array(values, dtype=float)
    h, l = x * 1.01, x * 0.99
    v = np.linspace(0.0, 2.0, len(x))
    cases = [
        (SMA(n), lambda s, i: s.update(x[i]), sma(x, n)),
        (EMA(n), lambda s, i: s.update(x[i]), ema(x, n)),
        (RSI(n), lambda s, i: s.update(x[i]), rsi(x, n)),
        (ATR(n), lambda s, i: s.update(h[i], l[i], x[i]), atr(h, l, x, n)),
        (RollingStd(n), lambda s, i: s.update(x[i]), rolling_std(x, n)),
        (VWAP(n), lambda s, i: s.update(x[i], v[i]), vwap(x, v, n)),
    ]
    for state, push, want in cases:
        got = [push(state, i) for i in range(len(x))]
        assert [g is None for g in got] == np.isnan(want).tolist(), type(state).__name__
        assert [g for g in got if g is not None] == want[~np.isnan(want)].tolist()
    bands = Bollinger(n, 2.0)
    got = [bands.update(value) for value in x]
    mid, up, low = bollinger(x, n, 2.0)
    assert [g for g in got if g is not None] == list(zip(mid[~np.isnan(mid)], up[~np.isnan(up)], low[~np.isnan(low)]))
    state = MACD(2, 4, 3)
    got = [state.update(value) for value in x]
    line, sig, hist = macd(x, 2, 4, 3)
    assert [g for g in got if g is not None] == list(zip(line[~np.isnan(line)], sig[~np.isnan(sig)], hist[~np.isnan(hist)]))


def test_update_returns_none_until_warm_and_is_constant_time():
    s = SMA(3)
    assert [s.update(x) for x in (1.0, 2.0)] == [None, None]
    assert s.update(3.0) == 2.0
    # The ring buffer keeps working long after the window filled.
    for i in range(10_000):
        s.update(float(i))
    assert s.update(10_000.0) == pytest.approx(9_999.0)
    assert RSI(14).update(1.0) is None


def test_rsi_of_a_flat_series_is_50_and_of_a_rising_one_100():
    assert rsi(np.full(20, 5.0), 14)[-1] == 50.0
    assert rsi(np.arange(20.0), 14)[-1] == 100.0


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: SMA(0), lambda: EMA(-1), lambda: RSI(2.5),
                                  lambda: MACD(26, 12), lambda: RollingStd(3, ddof=3),
                                  lambda: Bollinger(5, k=-1), lambda: VWAP(0)])
def test_bad_parameters(make):
    with pytest.raises(ValueError):
        make()


def test_bad_values_name_the_row():
    with pytest.raises(ValueError, match="values row 2: nan is not finite"):
        sma([1.0, 2.0, math.nan], 2)
    with pytest.raises(ValueError, match="row 1: high 1.0 is below low 2.0"):
        atr([3.0, 1.0], [2.0, 2.0], [2.5, 2.0], 1)
    with pytest.raises(ValueError, match="volumes row 0: -1.0 is negative"):
        vwap([1.0], [-1.0])
    with pytest.raises(ValueError, match="must be finite"):
        SMA(2).update(math.inf)
    with pytest.raises(ValueError, match="volume must be >= 0"):
        VWAP().update(1.0, -2.0)
