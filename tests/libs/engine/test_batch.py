"""tradebus.engine.batch: hand-worked runs, loading, bad input, run_batch, real data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tradebus.engine import (
    BAR_DTYPE,
    DEFAULT_FILL,
    SIGNAL_DTYPE,
    STAT_KEYS,
    Engine,
    PyBar,
    make_signals,
    normalize_timestamps,
)
from tradebus.engine.examples import sma_cross

from .reference import reference_run

T0_MS = 1_700_000_000_000
MIN_MS = 60_000
NS = 1_000_000


def bars_engine(closes, opens=None, highs=None, lows=None, **config) -> tuple[Engine, np.ndarray]:
    closes = np.asarray(closes, dtype=float)
    opens = closes if opens is None else np.asarray(opens, dtype=float)
    highs = np.maximum(opens, closes) if highs is None else np.asarray(highs, dtype=float)
    lows = np.minimum(opens, closes) if lows is None else np.asarray(lows, dtype=float)
    ts = T0_MS + MIN_MS * np.arange(len(closes))
    engine = Engine(**{"fee_rate": 0.0, "fill": "close", **config})
    engine.load_bars_df(ts, opens, highs, lows, closes, np.ones(len(closes)))
    return engine, ts


def at(i: int) -> int:
    return T0_MS + MIN_MS * i


# --- fills and statistics, worked by hand --------------------------------------------------

def test_round_trip_at_closes_with_fees():
    engine, _ = bars_engine([100, 110, 105, 120], fee_rate=0.001, initial_capital=10_000)
    out = engine.run(make_signals([at(0), at(3)], [0, 1], [2.0, 2.0]), equity=True)
    fees = 0.001 * 2 * 100 + 0.001 * 2 * 120
    assert out["total_trades"] == 1 and out["winning_trades"] == 1
    assert out["total_fees"] == pytest.approx(fees)
    assert out["net_pnl"] == pytest.approx(40 - fees)
    assert out["gross_profit"] == pytest.approx(40 - fees)
    assert out["final_capital"] == pytest.approx(10_000 + 40 - fees)
    assert out["return_pct"] == pytest.approx((40 - fees) / 100)
    # Equity: bought at bar 0's close; the fall from 110 to 105 is the drawdown.
    assert out["equity"].tolist() == pytest.approx([10_000 - 0.2, 10_019.8, 10_009.8, 10_039.56])
    assert out["max_drawdown"] == pytest.approx(10.0)
    assert out["max_drawdown_pct"] == pytest.approx(100 * 10 / 10_019.8)
    assert out["exposure_pct"] == 75.0
    assert out["profit_factor"] == math.inf and out["avg_loss"] == 0.0


def test_market_orders_fill_at_the_next_open_by_default_everywhere():
    # One default for every entry point: the batch engine, the farm's job settings, the study
    # CLI and the event backtester fill a market order at the next bar's open (no look-ahead).
    import inspect

    from tradebus.cli import build_parser
    from tradebus.proto import EngineSettings
    from tradebus.strategy import BacktestRunner

    assert DEFAULT_FILL == "next_open"
    engine = Engine(fee_rate=0.0)
    assert engine.config["fill"] == "next_open"
    engine.load_bars_df([at(0), at(1), at(2)], [10.0, 12.0, 13.0], [11.0, 12.5, 14.0],
                        [10.0, 12.0, 13.0], [11.0, 12.5, 14.0], [1.0, 1.0, 1.0])
    out = engine.run(make_signals([at(0)], [0], [1.0]), equity=True)
    assert out["fills"]["price"].tolist() == [12.0]            # bar 1's open, not bar 0's close
    assert EngineSettings().fill == "next_open"
    assert inspect.signature(BacktestRunner).parameters["bar_fill"].default == "next_open"
    args = build_parser().parse_args(["study", "sweep", "--grid", "fast=5"])
    assert args.fill == "next_open"


def test_next_open_fills_at_the_following_open():
    engine, _ = bars_engine([100, 110, 105, 120], opens=[99, 101, 108, 104], fill="next_open")
    out = engine.run(make_signals([at(0), at(2), at(3)], [0, 1, 0], [1.0, 1.0, 1.0]), equity=True)
    assert out["fills"]["price"].tolist() == [101.0, 104.0]
    assert out["fills"]["bar"].tolist() == [1, 3]
    assert out["unfilled_orders"] == 1          # stamped at the last bar: no next open
    assert out["net_pnl"] == pytest.approx(3.0)


def test_slippage_moves_market_fills_against_the_taker():
    engine, _ = bars_engine([100, 100], slippage_bps=10)
    out = engine.run(make_signals([at(0), at(1)], [0, 1], [1.0, 1.0]), equity=True)
    assert out["fills"]["price"].tolist() == pytest.approx([100.1, 99.9])
    assert out["net_pnl"] == pytest.approx(-0.2)
    assert out["losing_trades"] == 1 and out["avg_loss"] == pytest.approx(-0.2)


def test_limit_fills_only_when_a_later_bar_trades_through():
    # Bar 1's low touches 95 without going through; bar 2's goes below.
    engine, _ = bars_engine([100, 98, 97, 99], lows=[99, 95, 94.5, 98])
    buy = make_signals([at(0)], [0], [1.0], prices=[95.0], types=[1])
    out = engine.run(buy, equity=True)
    assert out["fills"]["bar"].tolist() == [2] and out["fills"]["price"].tolist() == [95.0]
    # The bar the limit is stamped at does not count, even if it trades through.
    out = engine.run(make_signals([at(2)], [0], [1.0], prices=[96.0], types=[1]), equity=True)
    assert out["total_fills"] == 0 and out["unfilled_orders"] == 1


def test_limit_fill_pays_no_slippage():
    engine, _ = bars_engine([100, 98], lows=[99, 90], slippage_bps=50)
    out = engine.run(make_signals([at(0)], [0], [1.0], prices=[95.0], types=[1]), equity=True)
    assert out["fills"]["price"].tolist() == [95.0]


def test_stop_fills_at_trigger_or_at_a_gapped_open():
    engine, _ = bars_engine([100, 104, 112], opens=[100, 101, 111], highs=[101, 106, 113])
    # Buy stop at 105: bar 1 reaches it intrabar -> 105.
    out = engine.run(make_signals([at(0)], [0], [1.0], prices=[105.0], types=[2]), equity=True)
    assert out["fills"]["price"].tolist() == [105.0]
    # Buy stop at 110 stamped at bar 1: bar 2 opens above it -> fills at the open, 111.
    out = engine.run(make_signals([at(1)], [0], [1.0], prices=[110.0], types=[2]), equity=True)
    assert out["fills"]["price"].tolist() == [111.0] and out["fills"]["bar"].tolist() == [2]
    # A high exactly at the trigger reaches it.
    out = engine.run(make_signals([at(0)], [0], [1.0], prices=[106.0], types=[2]), equity=True)
    assert out["fills"]["bar"].tolist() == [1]


def test_sell_stop_below_a_long_is_a_stop_loss():
    engine, _ = bars_engine([100, 98, 90], opens=[100, 99, 95], lows=[99, 96, 89])
    sig = make_signals([at(0), at(0)], [0, 1], [1.0, 1.0], prices=[np.nan, 97.0], types=[0, 2])
    out = engine.run(sig, equity=True)
    assert out["fills"]["price"].tolist() == [100.0, 97.0]
    assert out["net_pnl"] == pytest.approx(-3.0) and out["total_trades"] == 1


def test_selling_more_than_held_flips_short_and_splits_the_round_trip():
    engine, _ = bars_engine([100, 110, 100, 90], fee_rate=0.01)
    sig = make_signals([at(0), at(1), at(3)], [0, 1, 0], [1.0, 3.0, 2.0])
    out = engine.run(sig, equity=True)
    assert out["fills"]["position"].tolist() == [1.0, -2.0, 0.0]
    assert out["total_trades"] == 2 and out["winning_trades"] == 2
    long_trade = 10 - 1.0 - 1.1                  # +10, fee on entry, fee on the closing unit
    short_trade = 2 * 20 - 2.2 - 1.8              # 2 units 110 -> 90, opening fee part, exit fee
    assert out["gross_profit"] == pytest.approx(long_trade + short_trade)
    assert out["net_pnl"] == pytest.approx(long_trade + short_trade)
    assert out["avg_win"] == pytest.approx((long_trade + short_trade) / 2)


def test_signals_before_the_first_bar_and_after_the_data():
    engine, _ = bars_engine([100, 101, 102])
    sig = make_signals([at(-5), at(3), at(2) + 59_999], [0, 1, 1], [1.0, 1.0, 1.0])
    out = engine.run(sig, equity=True)
    # Before the data: stamped before bar 0, fills at bar 0's close. At the end of the last
    # bar's minute: still the last bar. One interval after the last bar: never fills.
    assert out["fills"]["bar"].tolist() == [0, 2]
    assert out["fills"]["signal"].tolist() == [0, 1]
    assert out["unfilled_orders"] == 1


def test_open_position_counts_in_equity_not_as_a_trade():
    engine, _ = bars_engine([100, 105])
    out = engine.run(make_signals([at(0)], [0], [1.0]))
    assert out["total_trades"] == 0 and out["net_pnl"] == pytest.approx(5.0)
    assert out["win_rate"] == 0.0 and out["profit_factor"] == 0.0


def test_no_signals_and_flat_prices_give_zeros_not_nan():
    engine, _ = bars_engine([100, 100, 100])
    for signals in (make_signals([], [], []), make_signals([at(0)], [0], [1.0])):
        out = engine.run(signals)
        for key in STAT_KEYS:
            assert not math.isnan(out[key]), key
        assert out["sharpe"] == out["sortino"] == out["calmar"] == 0.0


def test_sharpe_and_sortino_follow_the_documented_formulas():
    closes = [100, 102, 101, 104, 103, 107, 106]
    engine, ts = bars_engine(closes, initial_capital=1_000)
    out = engine.run(make_signals([at(0)], [0], [1.0]), equity=True)
    r = np.diff(np.concatenate(([1_000.0], out["equity"]))) / 1_000
    ppy = 365 * 86400 / 60
    assert out["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-12)
    down = math.sqrt(np.sum(np.minimum(r, 0) ** 2) / len(r))
    assert out["sortino"] == pytest.approx(r.mean() / down * math.sqrt(ppy), rel=1e-12)
    calmar = out["return_pct"] * ppy / len(r) / out["max_drawdown_pct"]
    assert out["calmar"] == pytest.approx(calmar, rel=1e-12)


def test_fills_of_one_bar_run_open_then_intrabar_then_close():
    engine, _ = bars_engine([100, 100, 100], lows=[100, 90, 100], fill="next_open")
    sig = make_signals([at(0), at(0)], [1, 0], [1.0, 1.0], prices=[np.nan, 95.0], types=[0, 1])
    out = engine.run(sig, equity=True)
    assert out["fills"]["signal"].tolist() == [0, 1]  # market at bar 1's open, then the limit
    assert out["fills"]["position"].tolist() == [-1.0, 0.0]


# --- loading --------------------------------------------------------------------------------

def sample_bars(n=50, seed=3):
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + rng.uniform(0, 1, n)
    low = np.minimum(open_, close) - rng.uniform(0, 1, n)
    ts = T0_MS + MIN_MS * np.arange(n)
    return ts, open_, high, low, close, rng.uniform(1, 5, n)


def test_timestamp_units_and_datetime64_load_the_same():
    ts, *cols = sample_bars()
    sig = make_signals(ts[[3, 20]], [0, 1], [1.0, 1.0])
    results = []
    for stamps in (ts, ts * 1_000, ts * 1_000_000, ts.astype("datetime64[ms]")):
        engine = Engine()
        engine.load_bars_df(stamps, *cols)
        assert engine.instrument().timestamps[0] == T0_MS * NS
        results.append(engine.run(sig))
    assert all(r == results[0] for r in results)
    assert normalize_timestamps([T0_MS * 1000]).tolist() == [T0_MS * NS]
    assert make_signals(ts[[3]] * NS, [0], [1.0])["timestamp_ns"][0] == ts[3] * NS


def test_load_bars_and_frames_match_load_bars_df():
    ts, o, h, l, c, v = sample_bars()
    sig = make_signals(ts[[2, 30]], [0, 1], [1.0, 1.0])
    engine = Engine()
    engine.load_bars_df(ts, o, h, l, c, v)
    want = engine.run(sig)

    bars = np.zeros(len(ts), dtype=BAR_DTYPE)
    for name, col in zip(BAR_DTYPE.names, (ts * NS, o, h, l, c, v)):
        bars[name] = col
    engine.load_bars(bars)
    assert engine.run(sig) == want
    np.testing.assert_array_equal(engine.instrument().bars(), bars)

    engine.load_bars_frame({"Open_Time": ts, "Open": o, "High": h, "Low": l, "Close": c, "Volume": v})
    assert engine.run(sig) == want


def test_load_bars_frame_with_pandas():
    pd = pytest.importorskip("pandas")
    ts, o, h, l, c, v = sample_bars()
    sig = make_signals(ts[[2, 30]], [0, 1], [1.0, 1.0])
    engine = Engine()
    engine.load_bars_df(ts, o, h, l, c, v)
    want = engine.run(sig)
    frame = pd.DataFrame({"open": o, "high": h, "low": l, "close": c, "volume": v},
                         index=pd.to_datetime(ts, unit="ms", utc=True))
    engine.load_bars_frame(frame)
    assert engine.run(sig) == want
    engine.load_bars_frame(frame.reset_index(names="date"))
    assert engine.run(sig) == want


def test_load_bars_frame_with_polars():
    pl = pytest.importorskip("polars")
    ts, o, h, l, c, v = sample_bars()
    sig = make_signals(ts[[2, 30]], [0, 1], [1.0, 1.0])
    engine = Engine()
    engine.load_bars_df(ts, o, h, l, c, v)
    want = engine.run(sig)
    engine.load_bars_frame(pl.DataFrame({"timestamp": ts, "open": o, "high": h, "low": l,
                                         "close": c, "volume": v}))
    assert engine.run(sig) == want


def test_symbols_side_by_side():
    ts, o, h, l, c, v = sample_bars()
    engine = Engine()
    engine.load_bars_df(ts, o, h, l, c, v, symbol="BTC/USDT")
    engine.load_bars_df(ts, o * 2, h * 2, l * 2, c * 2, v, symbol="ETH/USDT")
    sig = make_signals(ts[[2, 30]], [0, 1], [1.0, 1.0])
    btc, eth = engine.run(sig, symbol="BTC/USDT"), engine.run(sig, symbol="ETH/USDT")
    assert eth["net_pnl"] == pytest.approx(2 * btc["net_pnl"])
    with pytest.raises(ValueError, match="several instruments"):
        engine.run(sig)
    with pytest.raises(ValueError, match="unknown symbol 'SOL/USDT'"):
        engine.run(sig, symbol="SOL/USDT")
    engine.unload("ETH/USDT")
    assert engine.run(sig) == btc


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, message", [
    (lambda ts, o, h, l, c, v: ts.__setitem__(7, ts[6]), "bars row 7: timestamp is not after"),
    (lambda ts, o, h, l, c, v: ts.__setitem__(7, ts[5]), "bars row 7: timestamp is not after"),
    (lambda ts, o, h, l, c, v: c.__setitem__(4, np.nan), "bars row 4: close must be finite"),
    (lambda ts, o, h, l, c, v: o.__setitem__(9, np.inf), "bars row 9: open must be finite"),
    (lambda ts, o, h, l, c, v: l.__setitem__(3, -1.0), "bars row 3: low must be finite and > 0"),
    (lambda ts, o, h, l, c, v: h.__setitem__(5, l[5] - 0.5), "bars row 5: high"),
    (lambda ts, o, h, l, c, v: c.__setitem__(6, h[6] + 1), "bars row 6: close is outside"),
    (lambda ts, o, h, l, c, v: v.__setitem__(8, np.nan), "bars row 8: volume"),
])
def test_bad_bars_name_the_row(mutate, message):
    ts, o, h, l, c, v = sample_bars()
    mutate(ts, o, h, l, c, v)
    engine = Engine()
    with pytest.raises(ValueError, match=message):
        engine.load_bars_df(ts, o, h, l, c, v)
    assert engine.symbols == []


def test_empty_and_mismatched_bars():
    engine = Engine()
    with pytest.raises(ValueError, match="no bars"):
        engine.load_bars_df([], [], [], [], [], [])
    with pytest.raises(ValueError, match="closes has shape"):
        engine.load_bars_df([1, 2], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="no bars loaded"):
        engine.run(make_signals([], [], []))
    with pytest.raises(ValueError, match="lack the fields"):
        engine.load_bars(np.zeros(3, dtype=[("timestamp_ns", "i8"), ("close", "f8")]))
    with pytest.raises(ValueError, match="no volume column"):
        engine.load_bars_frame({"ts": [1], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]})


@pytest.mark.parametrize("kwargs, message", [
    ({"quantities": [1.0, 0.0]}, "row 1: quantity 0.0 must be finite and > 0"),
    ({"quantities": [-2.0, 1.0]}, "row 0: quantity -2.0"),
    ({"quantities": [1.0, np.nan]}, "row 1: quantity nan"),
    ({"sides": [0, 2]}, "row 1: side 2"),
    ({"types": [0, 3]}, "row 1: type 3"),
    ({"types": [1, 0]}, "row 0: a limit or stop order needs a finite price"),
    ({"types": [0, 2], "prices": [1.0, -5.0]}, "row 1: a limit or stop order needs"),
    ({"timestamps": [1.5, 2.0]}, "timestamps row 0: 1.5 is not an integer"),
    ({"sides": [0]}, "sides has shape"),
])
def test_bad_signals_name_the_row(kwargs, message):
    args = {"timestamps": [at(0), at(1)], "sides": [0, 1], "quantities": [1.0, 1.0], **kwargs}
    with pytest.raises(ValueError, match=message):
        make_signals(**args)


def test_make_signals_sorts_stably_and_keeps_limit_prices():
    sig = make_signals([at(2), at(0), at(2)], [1, 0, 0], [1.0, 2.0, 3.0],
                       prices=[np.nan, 50.0, np.nan], types=[0, 1, 0])
    assert sig.dtype == SIGNAL_DTYPE and sig.dtype.itemsize == 26
    assert sig["quantity"].tolist() == [2.0, 1.0, 3.0]
    assert sig["price"][0] == 50.0 and sig["type"].tolist() == [1, 0, 0]


def test_hand_built_signal_arrays_are_checked_by_run():
    engine, _ = bars_engine([100, 101, 102])
    sig = np.zeros(3, dtype=SIGNAL_DTYPE)
    sig["timestamp_ns"] = [at(0) * NS, at(2) * NS, at(1) * NS]
    sig["quantity"] = 1.0
    with pytest.raises(ValueError, match="signal row 2: timestamp is earlier"):
        engine.run(sig)
    sig["timestamp_ns"] = [at(0) * NS, at(1) * NS, at(2) * NS]
    sig["quantity"][1] = -1.0
    with pytest.raises(ValueError, match="signal row 1: quantity must be finite and > 0"):
        engine.run(sig)
    sig["quantity"][1] = 1.0
    sig["type"][2] = 1
    with pytest.raises(ValueError, match="signal row 2: a limit or stop order needs"):
        engine.run(sig)
    with pytest.raises(TypeError, match="SIGNAL_DTYPE"):
        engine.run(np.zeros(3))


@pytest.mark.parametrize("kwargs", [
    {"initial_capital": 0}, {"fee_rate": -0.1}, {"slippage_bps": float("nan")}, {"fill": "open"},
])
def test_bad_engine_settings(kwargs):
    with pytest.raises(ValueError):
        Engine(**kwargs)


# --- run_batch ------------------------------------------------------------------------------

def random_signal_sets(ts, k, seed=1):
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(k):
        m = int(rng.integers(0, 30))
        idx = rng.integers(-2, len(ts) + 2, m)
        stamps = ts[0] + MIN_MS * idx
        sets.append(make_signals(stamps, rng.integers(0, 2, m), rng.choice([0.5, 1.0, 2.0], m),
                                 prices=rng.uniform(95, 105, m), types=rng.integers(0, 3, m)))
    return sets


@pytest.mark.parametrize("threads", [1, 0, 2])
def test_run_batch_equals_a_loop_of_run(threads):
    ts, o, h, l, c, v = sample_bars(n=400)
    engine = Engine(fee_rate=0.0005, slippage_bps=2.0)
    engine.load_bars_df(ts, o, h, l, c, v)
    sets = random_signal_sets(ts, 64)
    assert engine.run_batch(sets, threads=threads) == [engine.run(s) for s in sets]


def test_run_batch_pairs_run_each_on_its_own_symbol():
    engine = Engine()
    items, want = [], []
    for k in range(6):
        ts, o, h, l, c, v = sample_bars(n=120, seed=k)
        engine.load_bars_df(ts, o, h, l, c, v, symbol=k)
        sig = random_signal_sets(ts, 1, seed=k)[0]
        items.append((k, sig))
        want.append(engine.run(sig, symbol=k))
    assert engine.run_batch(items, threads=2) == want
    assert engine.run_batch([s for _, s in items], symbol=3) == [engine.run(s, symbol=3) for _, s in items]


def test_run_batch_bad_items_name_the_item():
    ts, o, h, l, c, v = sample_bars()
    engine = Engine()
    engine.load_bars_df(ts, o, h, l, c, v, symbol="A")
    good = make_signals(ts[[1]], [0], [1.0])
    with pytest.raises(ValueError, match="batch item 1: unknown symbol 'B'"):
        engine.run_batch([("A", good), ("B", good)])
    bad = good.copy()
    bad["side"] = 7
    with pytest.raises(ValueError, match="batch item 2: signal row 0: side must be"):
        engine.run_batch([good, good, bad], symbol="A")
    with pytest.raises(TypeError, match="batch item 0"):
        engine.run_batch([[1, 2, 3]], symbol="A")
    assert engine.run_batch([]) == []


# --- real data ------------------------------------------------------------------------------

def test_real_btc_klines_sma_cross_matches_reference(btc_bars):
    assert len(btc_bars) == 130_708
    signals = sma_cross(btc_bars)
    assert 4_000 < len(signals) < 6_000
    for fill in ("close", "next_open"):
        engine = Engine(initial_capital=100_000, fee_rate=0.0001, slippage_bps=1.0, fill=fill)
        engine.load_bars(btc_bars)
        assert engine.instrument().uniform
        got = engine.run(signals)
        bars = {"ts": btc_bars["timestamp_ns"], **{k: btc_bars[k] for k in ("open", "high", "low", "close")}}
        rows = [{"timestamp_ns": int(s["timestamp_ns"]), "side": int(s["side"]),
                 "quantity": float(s["quantity"]), "price": float(s["price"]), "type": int(s["type"])}
                for s in signals]
        want = reference_run(bars, rows, 100_000.0, 0.0001, 1.0, fill).stats
        for key in STAT_KEYS:
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key


def test_timestamps_out_of_range_are_refused():
    ts, o, h, l, c, v = sample_bars(n=3)
    with pytest.raises(ValueError, match="bars row 2: timestamp is out of range"):
        Engine().load_bars_df(np.array([T0_MS * NS, T0_MS * NS + 1, 2**62 + 5]), o, h, l, c, v)
    with pytest.raises(ValueError, match="timestamps row 1: .* is out of range"):
        make_signals(np.array([T0_MS * NS, -(2**62)]), [0, 0], [1.0, 1.0])


def test_a_failed_reload_keeps_the_loaded_bars():
    ts, o, h, l, c, v = sample_bars()
    engine = Engine()
    engine.load_bars_df(ts, o, h, l, c, v, symbol="A")
    before = engine.instrument("A").close.copy()
    bad = c.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="bars row 3"):
        engine.load_bars_df(ts, o, h, l, bad, v, symbol="A")
    np.testing.assert_array_equal(engine.instrument("A").close, before)


def test_rounding_noise_is_not_a_return():
    # 0.1 + 0.2 bought and 0.3 sold at the same price leave only rounding residue in the cash.
    engine, _ = bars_engine([100.03, 100.03, 100.03, 100.03])
    out = engine.run(make_signals([at(0), at(1), at(2)], [0, 0, 1], [0.1, 0.2, 0.3]), equity=True)
    assert out["fills"]["position"][-1] == 0.0 and out["total_trades"] == 1
    assert abs(out["net_pnl"]) < 1e-9
    assert out["sharpe"] == out["sortino"] == out["calmar"] == 0.0


# --- FLOX's names: default symbol 1, PyBar ------------------------------------------------

def test_flox_default_symbol_finds_bars_loaded_without_a_symbol():
    engine, _ = bars_engine([100.0, 101.0, 103.0])
    signals = make_signals([at(0), at(2)], [0, 1], [1.0, 1.0])
    want = engine.run(signals)
    assert engine.run(signals, symbol=1) == want
    assert engine.run_batch([signals, signals], symbol=1) == [want, want]
    assert engine.run_batch([(1, signals)]) == [want]
    with pytest.raises(ValueError, match="unknown symbol 2"):
        engine.run(signals, symbol=2)


def test_flox_default_symbol_does_not_shadow_a_named_instrument():
    engine, ts = bars_engine([100.0, 101.0, 103.0])
    engine.load_bars_df(ts, [5.0] * 3, [5.0] * 3, [5.0] * 3, [5.0] * 3, [1.0] * 3, symbol=1)
    assert engine.instrument(1).close.tolist() == [5.0] * 3
    assert engine.instrument(None).close.tolist() == [100.0, 101.0, 103.0]


def test_load_bars_accepts_flox_pybar_fixed_point():
    rng = np.random.default_rng(3)
    n = 300
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.001, n))), 2)
    opens = np.r_[closes[0], closes[:-1]]
    highs, lows = np.maximum(opens, closes) + 0.05, np.minimum(opens, closes) - 0.05
    volumes = np.round(rng.uniform(0, 5, n), 4)
    ts = (T0_MS + MIN_MS * np.arange(n)) * NS
    bars = np.zeros(n, dtype=PyBar)
    bars["timestamp_ns"] = ts
    for name, values in (("open", opens), ("high", highs), ("low", lows), ("close", closes),
                         ("volume", volumes)):
        bars[name + "_raw"] = np.round(values * 1e8).astype(np.int64)
    flox, plain = Engine(fill="close"), Engine(fill="close")
    flox.load_bars(bars)
    plain.load_bars_df(ts, opens, highs, lows, closes, volumes)
    for name in ("timestamps", "open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(getattr(flox.instrument(), name), getattr(plain.instrument(), name),
                                   rtol=1e-15)
    signals = sma_cross(plain.instrument().bars(), fast=5, slow=20)
    assert flox.run(signals, symbol=1) == pytest.approx(plain.run(signals))


def test_pybar_with_float_prices_is_refused_with_the_field_named():
    bars = np.zeros(2, dtype=[(name, "<f8") if name != "timestamp_ns" else (name, "<i8")
                              for name in PyBar.names])
    bars["timestamp_ns"] = [at(0) * NS, at(1) * NS]
    with pytest.raises(ValueError, match="open_raw must be int64 fixed point"):
        Engine().load_bars(bars)
