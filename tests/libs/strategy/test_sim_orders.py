"""The simulated venue on trades: every order type of the API, checked against hand-worked prices."""
from __future__ import annotations

import numpy as np
import pytest

from tradebus.strategy import CANCEL_REASONS

from .scripted import SEC, T0, run_trades


def test_market_order_fills_at_the_next_trade_and_position_follows_the_fill():
    stats, s = run_trades([100.0, 101.0, 102.0], {0: lambda s, ctx: s.market_buy(2.0)}, fee_rate=0.001)
    assert s.fills() == [(1, 101.0, 2.0, False)]
    # the order was sent on trade 0; the strategy sees the position from trade 1 on, not before
    assert s.positions == [0.0, 2.0, 2.0]
    assert s.statuses(1) == ["acked", "filled"]
    fill = stats["fills"][0]
    assert fill["ts_ns"] == T0 + SEC and fill["fee"] == pytest.approx(0.001 * 2 * 101.0)
    assert stats["positions"] and list(stats["positions"].values()) == [2.0]
    assert stats["total_fees"] == pytest.approx(0.202)
    # marked at the last trade: 2 x (102 - 101) - fee
    assert stats["net_pnl"] == pytest.approx(2.0 - 0.202)


def test_round_trip_pnl_and_statistics_by_hand():
    script = {0: lambda s, ctx: s.market_buy(1.0), 2: lambda s, ctx: s.close_position()}
    stats, s = run_trades([100.0, 100.0, 110.0, 120.0, 90.0], script, fee_rate=0.01)
    assert s.fills() == [(1, 100.0, 1.0, False), (2, 120.0, 1.0, False)]
    pnl = 20.0 - 0.01 * 100 - 0.01 * 120
    assert stats["total_trades"] == 1 and stats["winning_trades"] == 1
    assert stats["net_pnl"] == pytest.approx(pnl) and stats["gross_profit"] == pytest.approx(pnl)
    assert stats["win_rate"] == 1.0 and stats["profit_factor"] == float("inf")
    # marked at the end of each 1 s bucket: flat, bought at 100 (fee 1), at 110, sold at 120, at 90
    assert stats["equity"].tolist() == pytest.approx([100_000, 100_000 - 1.0, 100_000 + 9.0, 100_000 + pnl, 100_000 + pnl])
    assert stats["exposure_pct"] == pytest.approx(100 * 2 / 5)


def test_limit_rests_until_a_trade_prints_through_it():
    stats, s = run_trades([100.0, 99.5, 99.0, 98.9, 98.0], {0: lambda s, ctx: s.limit_buy(99.0, 1.0)})
    # 99.0 (equal) does not fill a queue-free resting bid; 98.9 trades through it
    assert s.fills() == [(1, 99.0, 1.0, True)]
    assert stats["fills"]["ts_ns"].tolist() == [T0 + 3 * SEC]
    assert stats["fills"]["is_maker"].tolist() == [1]


def test_marketable_limit_takes_the_next_trade_within_its_limit():
    stats, s = run_trades([100.0, 100.5, 102.0], {0: lambda s, ctx: s.limit_buy(101.0, 1.0)})
    assert s.fills() == [(1, 100.5, 1.0, False)]
    # too far: the next trade is above the limit, so the order rests as a maker
    stats, s = run_trades([100.0, 101.5, 100.9], {0: lambda s, ctx: s.limit_buy(101.0, 1.0)})
    assert s.fills() == [(1, 101.0, 1.0, True)]


def test_post_only_ioc_and_fok():
    stats, s = run_trades([100.0, 99.0], {0: lambda s, ctx: s.limit_buy(100.5, 1.0, post_only=True)})
    assert s.statuses(1) == ["acked", "cancelled"]
    assert stats["orders"]["reason"].tolist() == [CANCEL_REASONS.index("post_only_would_take")]
    stats, s = run_trades([100.0, 99.0], {0: lambda s, ctx: s.limit_buy(99.5, 1.0, time_in_force="IOC")})
    assert s.statuses(1) == ["acked", "cancelled"] and s.fills() == []
    stats, s = run_trades([100.0, 99.0], {0: lambda s, ctx: s.limit_buy(100.0, 1.0, time_in_force="FOK")})
    assert s.fills() == [(1, 99.0, 1.0, False)]
    stats, s = run_trades([100.0, 100.2], {0: lambda s, ctx: s.limit_buy(100.0, 1.0, time_in_force="IOC")})
    assert s.fills() == [] and s.statuses(1) == ["acked", "cancelled"]


def test_stop_market_and_stop_limit_trigger_on_trades():
    prices = [100.0, 101.0, 102.0, 103.0, 101.5, 101.0]
    stats, s = run_trades(prices, {0: lambda s, ctx: s.stop_market("buy", 102.0, 1.0)})
    assert s.fills() == [(1, 102.0, 1.0, False)]            # the trade that reached the trigger
    stats, s = run_trades(prices, {0: lambda s, ctx: s.stop_market("buy", 102.0, 1.0)}, slippage_bps=10)
    assert s.fills()[0][1] == pytest.approx(102.0 * 1.001)
    # stop limit: triggers at 103 (>= 102.5) with limit 101.8 below it, then rests; 101.5 fills it
    stats, s = run_trades(prices, {0: lambda s, ctx: s.stop_limit("buy", 102.5, 101.8, 1.0)})
    assert s.fills() == [(1, 101.8, 1.0, True)]
    assert stats["fills"]["ts_ns"].tolist() == [T0 + 4 * SEC]
    # sell stop
    stats, s = run_trades([100.0, 99.0, 98.0], {0: lambda s, ctx: s.stop_market("sell", 99.0, 1.0)})
    assert s.fills() == [(1, 99.0, 1.0, False)]


def test_take_profit_orders_trigger_the_other_way():
    prices = [100.0, 101.0, 102.0, 99.0, 98.0]
    stats, s = run_trades(prices, {0: lambda s, ctx: s.take_profit_market("sell", 102.0, 1.0)})
    assert s.fills() == [(1, 102.0, 1.0, False)]
    stats, s = run_trades(prices, {0: lambda s, ctx: s.take_profit_market("buy", 99.0, 1.0)})
    assert s.fills() == [(1, 99.0, 1.0, False)]
    stats, s = run_trades(prices, {0: lambda s, ctx: s.take_profit_limit("buy", 99.0, 98.5, 1.0)})
    assert s.fills() == [(1, 98.5, 1.0, True)]               # rests after the trigger; 98 prints through


def test_trailing_stops_follow_the_best_price():
    prices = [100.0, 102.0, 105.0, 104.0, 103.1, 102.9, 101.0]
    stats, s = run_trades(prices, {0: lambda s, ctx: s.trailing_stop("sell", 2.0, 1.0)})
    # highest trade 105; 103.1 is within 2, 102.9 is not
    assert s.fills() == [(1, 102.9, 1.0, False)]
    stats, s = run_trades(prices, {0: lambda s, ctx: s.trailing_stop_percent("sell", 100, 1.0)})
    assert s.fills() == [(1, 103.1, 1.0, False)]             # 1% of 105 = 1.05 -> stop at 103.95
    # activation: trailing starts once 104 traded, so the first peak is 105 anyway; a buy trail
    stats, s = run_trades([100.0, 98.0, 97.0, 97.5, 98.5], {0: lambda s, ctx: s.trailing_stop("buy", 1.0, 1.0, activation=98.0)})
    assert s.fills() == [(1, 98.5, 1.0, False)]
    stats, s = run_trades([100.0, 99.0, 100.5], {0: lambda s, ctx: s.trailing_stop("buy", 1.0, 1.0, activation=95.0)})
    assert s.fills() == []                                   # never activated


def test_close_position_and_reduce_only_never_increase_the_position():
    script = {0: lambda s, ctx: s.market_buy(3.0), 2: lambda s, ctx: s.close_position()}
    stats, s = run_trades([100.0, 101.0, 102.0, 103.0], script)
    assert s.fills() == [(1, 101.0, 3.0, False), (2, 103.0, 3.0, False)]
    assert stats["orders"]["order_type"].tolist() == [0, 8] and stats["orders"]["flags"][1] == 2
    # flat: close_position sends nothing
    stats, s = run_trades([100.0, 101.0], {0: lambda s, ctx: s.close_position()})
    assert s.ids == [] and len(stats["orders"]) == 0
    # reduce-only sell larger than the position is clipped to it
    script = {0: lambda s, ctx: s.market_buy(1.0), 1: lambda s, ctx: s.market_sell(5.0, reduce_only=True)}
    stats, s = run_trades([100.0, 101.0, 102.0], script)
    assert s.fills()[-1] == (2, 102.0, 1.0, False) and s.positions == [0.0, 1.0, 0.0]
    assert list(stats["positions"].values()) == [0.0]
    # reduce-only with nothing to reduce is cancelled, not filled
    stats, s = run_trades([100.0, 101.0], {0: lambda s, ctx: s.market_sell(1.0, reduce_only=True)})
    assert s.fills() == [] and s.statuses(1) == ["acked", "cancelled"]


def test_cancel_modify_and_cancel_all():
    script = {0: lambda s, ctx: s.limit_buy(95.0, 1.0), 1: lambda s, ctx: s.cancel(s.ids[0])}
    stats, s = run_trades([100.0, 99.0, 90.0], script)
    assert s.statuses(1) == ["acked", "cancelled"] and s.fills() == []
    assert stats["unfilled_orders"] == 1 and stats["cancelled_orders"] == 1
    # modify the price up: fills at the new price
    script = {0: lambda s, ctx: s.limit_buy(95.0, 1.0), 1: lambda s, ctx: s.modify(s.ids[0], price=99.5)}
    stats, s = run_trades([100.0, 100.0, 99.0], script)
    assert s.fills() == [(1, 99.5, 1.0, True)]
    script = {0: lambda s, ctx: s.limit_buy(95.0, 1.0), 1: lambda s, ctx: s.modify(s.ids[0], qty=2.0)}
    stats, s = run_trades([100.0, 100.0, 94.0], script)
    assert s.fills() == [(1, 95.0, 2.0, True)]
    # cancelling a filled order is reported through on_error
    script = {0: lambda s, ctx: s.market_buy(1.0), 2: lambda s, ctx: s.cancel(s.ids[0])}
    stats, s = run_trades([100.0, 101.0, 102.0], script)
    assert any(e[0] == "error" and "not open" in e[1] for e in s.events)
    # cancel_all
    script = {0: lambda s, ctx: (s.limit_buy(90.0, 1.0), s.limit_sell(110.0, 1.0))[0],
              1: lambda s, ctx: s.cancel_all()}
    stats, s = run_trades([100.0, 100.0, 80.0, 120.0], script)
    assert s.fills() == [] and stats["cancelled_orders"] == 2


def test_latency_delays_the_venue():
    stats, s = run_trades([100.0, 101.0, 102.0, 103.0, 104.0], {0: lambda s, ctx: s.market_buy(1.0)},
                          latency_ns=int(2.5 * SEC))
    assert s.fills() == [(1, 103.0, 1.0, False)]
    assert s.statuses(1) == ["acked", "filled"]
    assert stats["fills"]["ts_ns"].tolist() == [T0 + 3 * SEC]


def test_timers_run_on_the_backtest_clock():
    def start(s, ctx):
        s.set_timer("tick", 2.5)
    stats, s = run_trades([100.0] * 8, {0: start})
    timers = [e for e in s.events if e[0] == "timer"]
    assert timers == [("timer", "tick", T0 + int(2.5 * SEC)), ("timer", "tick", T0 + 5 * SEC)]
    def start_once(s, ctx):
        s.set_timer("once", 1.5, repeat=False)
    stats, s = run_trades([100.0, 101.0, 102.0, 103.0], {0: start_once})
    assert [e[1] for e in s.events if e[0] == "timer"] == ["once"]


def test_daily_timer_fires_at_the_wall_clock_time():
    from tradebus.strategy import BacktestRunner, Strategy

    from .scripted import registry

    class Daily(Strategy):
        def __init__(self, symbols):
            super().__init__(symbols)
            self.fired = []
            self.set_daily_timer("close", "00:00:30")       # before attaching: resolved at start

        def on_timer(self, name):
            self.fired.append((name, self.context().now_ns))

    reg, sym = registry()
    day = 86_400 * SEC
    start = (T0 // day) * day                                  # midnight UTC
    ts = start + np.array([10, 40, day // SEC + 10, day // SEC + 50], dtype=np.int64) * SEC
    strategy = Daily([sym])
    bt = BacktestRunner(reg)
    bt.set_strategy(strategy)
    bt.run_arrays(ts, [1.0] * 4, [1.0] * 4)
    assert strategy.fired == [("close", start + 30 * SEC), ("close", start + day + 30 * SEC)]


def test_orders_sent_in_a_callback_reach_the_venue_after_it_returns():
    seen = []

    def act(s, ctx):
        s.market_buy(1.0)
        seen.append((ctx.position, len(ctx.open_orders())))

    stats, s = run_trades([100.0, 101.0], {0: act})
    assert seen == [(0.0, 1)]                     # still flat inside the callback, order pending


def test_equity_marks_use_time_buckets():
    stats, s = run_trades([100.0] * 10, {}, step=SEC // 4, mark_interval=1.0)
    assert stats["equity_ts"].tolist() == [T0, T0 + SEC, T0 + 2 * SEC]
    stats, s = run_trades([100.0] * 10, {}, step=SEC // 4, mark_interval=0.5)
    assert len(stats["equity_ts"]) == 5


def test_a_strategy_that_raises_stops_the_backtest_with_its_error():
    def boom(s, ctx):
        raise ZeroDivisionError("strategy bug")

    with pytest.raises(ZeroDivisionError, match="strategy bug"):
        run_trades([100.0, 101.0], {1: boom})


def test_an_order_loop_is_stopped():
    from tradebus.strategy import BacktestRunner, Strategy

    from .scripted import registry

    class Loop(Strategy):
        def on_trade(self, ctx, trade):
            self.limit_buy(1.0, 1.0)

        def on_order_update(self, symbol, status, filled, avg_price):
            self.limit_buy(1.0, 1.0)                  # re-sends on every ack: never settles

    reg, sym = registry()
    bt = BacktestRunner(reg)
    bt.set_strategy(Loop([sym]))
    with pytest.raises(RuntimeError, match="requests at one instant"):
        bt.run_arrays([T0], [100.0], [1.0])
