"""The engine against the plain per-bar reference, on random bars and signal sets."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebus.engine import STAT_KEYS, Engine, make_signals

from .reference import reference_run, tolerance_scales

MINUTE_NS = 60_000_000_000
RATIO_STATS = ("sharpe", "sortino", "calmar")
PCT_STATS = ("return_pct", "max_drawdown_pct", "exposure_pct")


def assert_agrees(engine: Engine, bars: dict, signals: np.ndarray, config: dict) -> dict:
    """Run both; require every statistic, fill and equity value to agree to 1e-9 relative."""
    got = engine.run(signals, equity=True)
    rows = [{k: (int(s[k]) if k in ("timestamp_ns", "side", "type") else float(s[k]))
             for k in signals.dtype.names} for s in signals]
    want = reference_run(bars, rows, **config)
    interval = engine.instrument().bar_interval_ns
    scales = tolerance_scales(want.stats, want.equity, config["capital"], interval)
    money = scales["default_money"]
    for key in STAT_KEYS:
        g, w = got[key], want.stats[key]
        if isinstance(w, int):
            assert g == w, f"{key}: engine {g} != reference {w}"
        elif math.isinf(w):
            assert g == w, f"{key}: engine {g} != reference {w}"
        else:
            scale = scales.get(key, 100.0 * money / config["capital"] if key in PCT_STATS else money)
            abs_tol = 1e-9 * scale if key in RATIO_STATS else 1e-12 * scale
            assert math.isclose(g, w, rel_tol=1e-9, abs_tol=abs_tol), (
                f"{key}: engine {g!r} != reference {w!r}")
    np.testing.assert_allclose(got["equity"], want.equity, rtol=1e-12, atol=1e-9)
    fills = got["fills"]
    assert len(fills) == len(want.fills)
    for f, w in zip(fills, want.fills):
        assert (int(f["bar"]), int(f["signal"]), int(f["side"]), int(f["type"])) == (
            w["bar"], w["signal"], w["side"], w["type"])
        assert int(f["timestamp_ns"]) == int(bars["ts"][w["bar"]])
        for key in ("quantity", "price", "fee", "position"):
            assert math.isclose(float(f[key]), w[key], rel_tol=1e-12, abs_tol=1e-12), key
    return got


@st.composite
def scenarios(draw, max_bars=150):
    n = draw(st.integers(1, max_bars))
    ticks = st.integers(-300, 300)
    moves = np.array(draw(st.lists(ticks, min_size=n, max_size=n)))
    gaps = np.array(draw(st.lists(st.integers(-60, 60), min_size=n, max_size=n)))
    up = np.array(draw(st.lists(st.integers(0, 150), min_size=n, max_size=n)))
    down = np.array(draw(st.lists(st.integers(0, 150), min_size=n, max_size=n)))
    # Prices in cents on a 0.01 grid, as venues quote them; far from zero.
    close_c = 200_000 + np.cumsum(moves)
    open_c = np.concatenate(([close_c[0]], close_c[:-1])) + gaps
    high_c = np.maximum(open_c, close_c) + up
    low_c = np.minimum(open_c, close_c) - down
    if draw(st.booleans()):
        steps = np.full(n, MINUTE_NS, dtype=np.int64)
    else:
        steps = MINUTE_NS * np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)),
                                     dtype=np.int64)
    ts = 1_700_000_000_000_000_000 + np.concatenate(([0], np.cumsum(steps[1:])))
    bars = {"ts": ts, "open": open_c / 100, "high": high_c / 100, "low": low_c / 100,
            "close": close_c / 100}

    m = draw(st.integers(0, 40))
    rows = draw(st.lists(st.tuples(
        st.integers(-3, n + 2),                        # bar the signal is near
        st.sampled_from([0, 0, 0, 1, MINUTE_NS - 1, MINUTE_NS // 2, 3 * MINUTE_NS]),
        st.integers(0, 1),                             # side
        st.sampled_from([0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0]),
        st.sampled_from([0, 0, 1, 2]),                 # type
        st.integers(-800, 800),                        # limit/stop offset from the bar's close, cents
    ), min_size=m, max_size=m))
    sig_ts, sides, qtys, types, prices = [], [], [], [], []
    for near, offset, side, qty, kind, delta in rows:
        anchor = ts[min(max(near, 0), n - 1)]
        t = anchor + (near - min(max(near, 0), n - 1)) * MINUTE_NS + offset
        sig_ts.append(t)
        sides.append(side)
        qtys.append(qty)
        types.append(kind)
        prices.append((close_c[min(max(near, 0), n - 1)] + delta) / 100)
    signals = make_signals(np.array(sig_ts, dtype=np.int64), sides, qtys,
                           prices=np.array(prices), types=types)
    config = {
        "capital": draw(st.sampled_from([10_000.0, 100_000.0])),
        "fee_rate": draw(st.sampled_from([0.0, 0.0001, 0.001])),
        "slippage_bps": draw(st.sampled_from([0.0, 1.0, 5.5])),
        "fill": draw(st.sampled_from(["close", "next_open"])),
    }
    return bars, signals, config


def engine_for(bars: dict, config: dict) -> Engine:
    engine = Engine(initial_capital=config["capital"], fee_rate=config["fee_rate"],
                    slippage_bps=config["slippage_bps"], fill=config["fill"])
    engine.load_bars_df(bars["ts"], bars["open"], bars["high"], bars["low"], bars["close"],
                        np.ones(len(bars["ts"])))
    return engine


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_engine_matches_reference(scenario):
    bars, signals, config = scenario
    assert_agrees(engine_for(bars, config), bars, signals, config)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(scenarios(max_bars=700))
def test_engine_matches_reference_across_blocks(scenario):
    # Long enough that held stretches span whole 64-bar blocks.
    bars, signals, config = scenario
    assert_agrees(engine_for(bars, config), bars, signals, config)


def random_walk_bars(n: int, seed: int, uniform: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    close_c = 3_000_000 + np.cumsum(rng.integers(-900, 901, n))
    open_c = np.concatenate(([close_c[0]], close_c[:-1])) + rng.integers(-50, 51, n)
    high_c = np.maximum(open_c, close_c) + rng.integers(0, 400, n)
    low_c = np.minimum(open_c, close_c) - rng.integers(0, 400, n)
    steps = np.full(n, MINUTE_NS) if uniform else MINUTE_NS * rng.integers(1, 3, n)
    ts = 1_750_000_000_000_000_000 + np.concatenate(([0], np.cumsum(steps[1:])))
    return {"ts": ts, "open": open_c / 100, "high": high_c / 100, "low": low_c / 100,
            "close": close_c / 100}


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("fill", ["close", "next_open"])
def test_long_holds_and_far_orders_across_superblocks(uniform, fill):
    """20,000 bars: holds of thousands of bars (whole 4,096-bar superblocks), a short position,
    and limit/stop orders that rest for most of the data or never fill."""
    n = 20_000
    bars = random_walk_bars(n, seed=11, uniform=uniform)
    ts, close = bars["ts"], bars["close"]
    lo, hi = float(bars["low"].min()), float(bars["high"].max())
    def at(i):
        return int(ts[i])
    signals = make_signals(
        [at(10), at(9_000), at(9_000), at(15_500), at(100), at(200), at(300), at(301), at(19_999)],
        [0, 1, 1, 0, 0, 1, 0, 1, 0],
        [2.0, 2.0, 1.0, 1.0, 0.5, 0.5, 0.7, 0.7, 1.0],
        prices=[np.nan, np.nan, np.nan, np.nan, lo + 0.5, hi - 0.5, hi - 1.0, lo - 1.0, np.nan],
        types=[0, 0, 0, 0, 1, 1, 2, 2, 0],
    )
    config = {"capital": 1_000_000.0, "fee_rate": 0.0002, "slippage_bps": 1.0, "fill": fill}
    got = assert_agrees(engine_for(bars, config), bars, signals, config)
    assert got["total_fills"] >= 5
    assert 0 < close.min()


def test_many_short_trades_on_long_data():
    n = 12_000
    bars = random_walk_bars(n, seed=5)
    rng = np.random.default_rng(9)
    idx = np.sort(rng.choice(n, 600, replace=False))
    signals = make_signals(bars["ts"][idx], np.arange(600) % 2, rng.choice([0.5, 1.0, 2.0], 600),
                           prices=bars["close"][idx] * rng.choice([0.995, 1.005], 600),
                           types=rng.choice([0, 0, 1, 2], 600))
    config = {"capital": 100_000.0, "fee_rate": 0.0001, "slippage_bps": 0.0, "fill": "close"}
    assert_agrees(engine_for(bars, config), bars, signals, config)


@pytest.mark.parametrize("n, crash_blocks", [
    (64 * 3 + 10, None), (64 * 4, None), (64 * 5 + 1, None), (64 * 6 + 63, None),
    (64 * 64 * 2 + 100, (63, 64, 100, 127)),           # inside whole superblocks
])
def test_falls_inside_every_block_are_found(n, crash_blocks):
    """A long hold whose worst fall lies inside one whole block, for lengths that end on a
    partial or a whole block and have an odd or even number of blocks."""
    for crash_block in crash_blocks or range(1, n // 64):
        close_c = 100_000 + 10 * np.arange(n)                  # steady rise, no fall at all ...
        start = crash_block * 64 + 20
        close_c[start:start + 10] -= 5_000                     # ... but a fall of 49.90 in one block
        bars = {"ts": 1_750_000_000_000_000_000 + MINUTE_NS * np.arange(n),
                "open": close_c / 100, "high": close_c / 100, "low": close_c / 100,
                "close": close_c / 100}
        signals = make_signals(bars["ts"][[2]], [0], [1.0])
        config = {"capital": 10_000.0, "fee_rate": 0.0, "slippage_bps": 0.0, "fill": "close"}
        got = assert_agrees(engine_for(bars, config), bars, signals, config)
        assert got["max_drawdown"] == pytest.approx(49.9, abs=1e-6)


@pytest.mark.parametrize("spike_bar", [70, 130, 4_095, 4_096, 5_000, 8_191, 9_000, 9_199])
def test_resting_orders_find_a_single_touch_in_any_block(spike_bar):
    n = 9_200
    close_c = np.full(n, 100_000)
    low_c, high_c = close_c - 10, close_c + 10
    low_c[spike_bar] -= 3_000                              # the only bar through 985.00
    high_c[spike_bar] += 3_000                             # and through 1015.00
    bars = {"ts": 1_750_000_000_000_000_000 + MINUTE_NS * np.arange(n), "open": close_c / 100,
            "high": high_c / 100, "low": low_c / 100, "close": close_c / 100}
    signals = make_signals(bars["ts"][[1, 1, 1, 1]], [0, 1, 0, 1], [1.0, 1.0, 1.0, 1.0],
                           prices=[985.0, 1015.0, 1015.0, 985.0], types=[1, 1, 2, 2])
    config = {"capital": 10_000.0, "fee_rate": 0.0, "slippage_bps": 0.0, "fill": "close"}
    got = assert_agrees(engine_for(bars, config), bars, signals, config)
    assert got["fills"]["bar"].tolist() == [spike_bar] * 4
