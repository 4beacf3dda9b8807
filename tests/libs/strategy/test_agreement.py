"""The event-driven backtester and the batch engine agree: same fills, equity and statistics.

The strategy runs event by event through BacktestRunner; the orders it sent are then replayed
as a signal array through tradebus.engine.Engine, which never saw the strategy.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.engine import SMA, STAT_KEYS, Engine, make_signals
from tradebus.engine.event import ORDER_STATES
from tradebus.strategy import BacktestRunner, Strategy
from tradebus.strategy.data import default_data_dir, load_klines, load_trades

from ..engine.reference import Account, curve_stats
from .scripted import registry


class BarFlip(Strategy):
    """Always in the market on 1m bars: long while SMA(10) > SMA(30), short while below."""

    def __init__(self, symbols, qty=0.5):
        super().__init__(symbols)
        self.fast, self.slow, self.qty = SMA(10), SMA(30), qty

    def on_bar(self, ctx, bar):
        f, s = self.fast.update(bar.close), self.slow.update(bar.close)
        if f is None or s is None:
            return
        if f > s and not ctx.is_long():
            self.market_buy(self.qty if ctx.is_flat() else 2 * self.qty)
        elif f < s and not ctx.is_short():
            self.market_sell(self.qty if ctx.is_flat() else 2 * self.qty)


class Brackets(Strategy):
    """Limit and stop orders around the close, on a fixed schedule of bars."""

    def __init__(self, symbols):
        super().__init__(symbols)
        self.n = 0

    def on_bar(self, ctx, bar):
        self.n += 1
        c = bar.close
        if self.n % 7 == 0:
            self.limit_buy(round(c * 0.999, 2), 0.1)
            self.limit_sell(round(c * 1.001, 2), 0.1)
        if self.n % 11 == 0:
            self.stop_market("sell", round(c * 0.998, 2), 0.2)
            self.stop_market("buy", round(c * 1.002, 2), 0.2)
        if self.n % 13 == 0:
            self.market_buy(0.3)


@pytest.fixture(scope="module")
def klines():
    bars = load_klines(default_data_dir() / "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz")
    n = 30_000
    return tuple(np.ascontiguousarray(x[:n]) for x in (bars.ts_ns, bars.open, bars.high, bars.low, bars.close, bars.volume))


def both(strategy_cls, bars, fill, **options):
    reg, sym = registry()
    bt = BacktestRunner(reg, fee_rate=0.0004, initial_capital=100_000, bar_fill=fill, **options)
    bt.set_strategy(strategy_cls([sym]))
    event = bt.run_bars(*bars)
    orders = event["orders"]
    types = np.where(orders["order_type"] == 0, 0, np.where(orders["order_type"] == 1, 1, 2)).astype(np.uint8)
    prices = np.where(orders["order_type"] == 2, orders["trigger"], orders["price"])
    signals = make_signals(orders["ts_ns"], orders["side"], orders["qty"], prices, types)
    engine = Engine(initial_capital=100_000, fee_rate=0.0004, fill=fill,
                    slippage_bps=options.get("slippage_bps", 0.0))
    engine.load_bars_df(*bars)
    return event, engine.run(signals, equity=True)


def assert_same(event, batch):
    # Every statistic, ratios included: both engines use one ledger, whose noise guards zero a
    # ratio of rounding noise (a position opened and marked at the same price) in both.
    for key in STAT_KEYS:
        assert event[key] == pytest.approx(batch[key], rel=1e-9, abs=1e-9), key
    assert len(event["fills"]) == len(batch["fills"])
    # The batch engine lists fills bar by bar in signal order within a phase; so does the venue.
    np.testing.assert_array_equal(event["fills"]["ts_ns"], batch["fills"]["timestamp_ns"])
    np.testing.assert_allclose(event["fills"]["price"], batch["fills"]["price"], rtol=1e-12)
    np.testing.assert_allclose(event["fills"]["qty"], batch["fills"]["quantity"], rtol=1e-12)
    np.testing.assert_allclose(event["equity"], batch["equity"], rtol=1e-12)


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_market_order_strategy_on_real_bars_matches_the_batch_engine(klines, fill):
    event, batch = both(BarFlip, klines, fill)
    assert event["total_trades"] > 500          # the comparison is about a busy strategy
    assert_same(event, batch)


def test_limit_and_stop_orders_on_real_bars_match_the_batch_engine(klines):
    event, batch = both(Brackets, klines, "next_open", slippage_bps=2.0)
    kinds = set(event["fills"]["order_type"].tolist())
    assert {0, 1, 2} <= kinds                   # market, limit and stop fills all happened
    assert event["unfilled_orders"] > 0
    assert_same(event, batch)


class Schedule(Strategy):
    def __init__(self, symbols, plan=()):
        super().__init__(symbols)
        self.plan = dict(plan)
        self.n = -1

    def on_bar(self, ctx, bar):
        self.n += 1
        side_qty = self.plan.get(self.n)
        if side_qty:
            side, qty = side_qty
            (self.market_buy if side == 0 else self.market_sell)(qty)


# Moves in whole basis points and prices in cents, as markets quote them. (With sub-tick moves
# of ~1e-12 the per-bar PnL is ~1e-14 of the capital and the batch engine's block-summed
# variance is rounding noise, so its Sharpe can differ from the per-bar formula's.)
@settings(max_examples=int(os.environ.get("TB_EXAMPLES", 40)), deadline=None)
@given(
    moves=st.lists(st.integers(-300, 300), min_size=2, max_size=120),
    plan=st.dictionaries(st.integers(0, 119), st.tuples(st.integers(0, 1), st.sampled_from([0.5, 1.0, 2.5])), max_size=30),
    fill=st.sampled_from(["close", "next_open"]),
    fee=st.sampled_from([0.0, 0.001]),
)
def test_random_bars_and_orders_agree_with_the_batch_engine(moves, plan, fill, fee):
    close = np.round(100.0 * np.exp(np.cumsum(moves) * 1e-4), 2)
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    ts = 1_700_000_000_000 + 60_000 * np.arange(len(close))
    bars = (ts, open_, high, low, close, np.ones(len(close)))
    reg, sym = registry(tick=0.0)
    bt = BacktestRunner(reg, fee_rate=fee, initial_capital=1_000, bar_fill=fill)
    bt.set_strategy(Schedule([sym], plan))
    event = bt.run_bars(*bars)
    orders = event["orders"]
    engine = Engine(initial_capital=1_000, fee_rate=fee, fill=fill)
    engine.load_bars_df(*bars)
    batch = engine.run(make_signals(orders["ts_ns"], orders["side"], orders["qty"]), equity=True)
    assert_same(event, batch)


def test_rounding_noise_gives_the_same_ratios_in_both_engines():
    # Every fill at 99.99 and no move after it: the per-bar PnL is float rounding only. The
    # event backtester used to take a Sharpe of about -242 from that noise; the one ledger's
    # guard makes every ratio 0 in both engines.
    close = np.round(100.0 * np.exp(np.cumsum([-1, 0, 0, 0, 0, 0, 0, 0, 0]) * 1e-4), 2)
    open_ = np.r_[100.0, close[:-1]]
    ts = 1_700_000_000_000 + 60_000 * np.arange(len(close))
    bars = (ts, open_, np.maximum(open_, close) * 1.002, np.minimum(open_, close) * 0.998, close,
            np.ones(len(close)))
    reg, sym = registry(tick=0.0)
    bt = BacktestRunner(reg, fee_rate=0.0, initial_capital=1_000, bar_fill="next_open")
    bt.set_strategy(Schedule([sym], {0: (0, 2.5), 1: (1, 2.5), 3: (1, 2.5), 7: (0, 1.0)}))
    event = bt.run_bars(*bars)
    orders = event["orders"]
    engine = Engine(initial_capital=1_000, fee_rate=0.0, fill="next_open")
    engine.load_bars_df(*bars)
    batch = engine.run(make_signals(orders["ts_ns"], orders["side"], orders["qty"]), equity=True)
    assert np.abs(np.diff(np.r_[1_000.0, batch["equity"]])).max() < 1e-9       # noise only
    assert (event["sharpe"], event["sortino"], event["calmar"]) == (0.0, 0.0, 0.0)
    assert_same(event, batch)


class TradeFlipAndQuote(Strategy):
    """On trades: flips long/short on an SMA(10)/SMA(30) cross with market orders, and every
    200 trades quotes a limit buy and sell 2 bp away (resting fills pay the maker rate)."""

    def __init__(self, symbols):
        super().__init__(symbols)
        self.fast, self.slow, self.n = SMA(10), SMA(30), 0

    def on_trade(self, ctx, trade):
        self.n += 1
        if self.n % 200 == 0:
            self.limit_buy(round(trade.price * 0.9998, 2), 0.003)
            self.limit_sell(round(trade.price * 1.0002, 2), 0.003)
        f, s = self.fast.update(trade.price), self.slow.update(trade.price)
        if f is None or s is None:
            return
        if f > s and not ctx.is_long():
            self.market_buy(0.01 if ctx.is_flat() else 0.02)
        elif f < s and not ctx.is_short():
            self.market_sell(0.01 if ctx.is_flat() else 0.02)


def test_event_statistics_on_real_trades_match_the_numpy_reference():
    # The event backtester's ledger against the plain reference: its fills are replayed through
    # reference.Account (taker or maker rate per fill), the equity is re-marked at the end of
    # each 1 s bucket that had trades (cash + position x the last trade price), and every
    # statistic is recomputed with reference.curve_stats.
    trades = load_trades(default_data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz")
    capital, taker, maker, interval = 10_000.0, 0.0004, -0.0001, 1_000_000_000
    reg, sym = registry(tick=0.0)
    bt = BacktestRunner(reg, fee_rate=taker, maker_fee_rate=maker, initial_capital=capital)
    bt.set_strategy(TradeFlipAndQuote([sym]))
    event = bt.run_trades(trades)
    fills = event["fills"]
    assert {0, 1} <= set(fills["is_maker"].tolist()) and event["total_trades"] > 50

    acct = Account(capital)
    for f in fills:
        q = float(f["qty"]) if f["side"] == 0 else -float(f["qty"])
        fee = acct.fill(q, float(f["price"]), maker if f["is_maker"] else taker)
        assert fee == pytest.approx(float(f["fee"]), rel=1e-12, abs=1e-15)
        assert acct.pos == pytest.approx(float(f["position"]), abs=1e-12)

    ts = trades.ts_ns
    starts = np.unique(ts - ts % interval)
    ends = starts + interval
    last_trade = np.searchsorted(ts, ends, "left") - 1
    fills_in = np.searchsorted(fills["ts_ns"], ends, "left")
    marks = Account(capital)
    equity, exposed, k = [], 0, 0
    for end_fills, last in zip(fills_in, last_trade):
        for f in fills[k:end_fills]:
            q = float(f["qty"]) if f["side"] == 0 else -float(f["qty"])
            marks.fill(q, float(f["price"]), maker if f["is_maker"] else taker)
        k = end_fills
        equity.append(marks.cash + marks.pos * float(trades.price[last]))
        exposed += marks.pos != 0.0
    np.testing.assert_array_equal(event["equity_ts"], starts)
    np.testing.assert_allclose(event["equity"], equity, rtol=1e-12)

    orders = event["orders"]
    want = {
        **curve_stats(np.array(equity), capital, int(np.diff(starts).min())),
        **acct.trade_stats(),
        "exposure_pct": 100.0 * exposed / len(starts),
        "total_fills": len(fills),
        "unfilled_orders": int(np.count_nonzero((orders["filled"] == 0)
                                                & (orders["status"] != ORDER_STATES.index("rejected")))),
    }
    assert set(want) == set(STAT_KEYS)
    for key in STAT_KEYS:
        assert event[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key
