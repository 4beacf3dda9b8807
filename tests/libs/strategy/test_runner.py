"""Runner: live data in, Signals out, positions from the fills reported back, failures isolated."""
from __future__ import annotations

import threading

import pytest

from tradebus.strategy import Fill, OrderError, Runner, Strategy, SymbolRegistry


class Recorder(Strategy):
    def __init__(self, symbols, buy_every=0):
        super().__init__(symbols)
        self.log = []
        self.buy_every = buy_every
        self.n = 0
        self.threads = set()

    def on_start(self):
        self.log.append(("start",))

    def on_stop(self):
        self.log.append(("stop",))

    def on_trade(self, ctx, trade):
        self.threads.add(threading.get_ident())
        self.n += 1
        self.log.append(("trade", trade.price, trade.qty, trade.is_buy, trade.ts_ns, ctx.position, ctx.last_price))
        if self.buy_every and self.n % self.buy_every == 0:
            self.market_buy(1.0)

    def on_book_update(self, ctx):
        self.log.append(("book", ctx.best_bid, ctx.best_ask, ctx.mid))

    def on_bar(self, ctx, bar):
        self.log.append(("bar", bar.ts_ns, bar.close))

    def on_order_update(self, symbol, status, filled, avg_price, order):
        self.log.append(("update", order.id, status, filled, avg_price))

    def on_fill(self, fill):
        self.log.append(("fill", fill.order_id, fill.price, fill.qty, fill.fee, fill.position))

    def on_error(self, symbol, error):
        self.log.append(("error", type(error).__name__, str(error)))

    def on_timer(self, name):
        self.log.append(("timer", name))

    def on_initial_position(self, symbol, qty, avg_price):
        self.log.append(("initial", symbol, qty, avg_price))

    def on_params_update(self, params):
        self.log.append(("params", params))


@pytest.fixture
def setup():
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT", tick_size=0.01)
    signals = []
    runner = Runner(reg, signals.append)
    s = runner.add_strategy(Recorder([btc]))
    runner.start()
    return runner, s, signals, btc


def test_positions_follow_the_fills_reported_back(setup):
    runner, s, signals, btc = setup
    oid = s.market_buy(2.0)
    runner.on_trade(btc, 100.0, 0.1, True, 1)
    assert s.log[-1][5] == 0.0                       # sent, not filled: still flat
    assert runner.on_order_acked(oid, "X1")
    assert runner.on_fill(oid, 100.0, 0.5, fee=0.05, ts_ns=2, trade_id="t1")
    assert not runner.on_fill(999, 100.0, 0.5)       # unknown order id: ignored, reported False
    runner.on_fill(oid, 100.0, 0.5, trade_id="t1")   # the same execution again: ignored
    runner.on_fill(oid, 102.0, 1.5, fee=0.15, trade_id="t2")
    ctx = s.context()
    assert ctx.position == 2.0 and ctx.avg_price == pytest.approx(101.5) and ctx.fees == pytest.approx(0.2)
    updates = [e for e in s.log if e[0] in ("update", "fill")]
    assert updates == [
        ("update", oid, "acked", 0.0, 0.0),
        ("fill", oid, 100.0, 0.5, 0.05, 0.5),
        ("update", oid, "partially_filled", 0.5, 100.0),
        ("fill", oid, 102.0, 1.5, 0.15, 2.0),
        ("update", oid, "filled", 2.0, 101.5),
    ]
    sell = s.market_sell(2.0)
    runner.on_fill(sell, 110.0, 2.0)
    assert ctx.is_flat() and ctx.realized_pnl == pytest.approx(17.0)
    runner.on_trade(btc, 111.0, 0.1, True, 3)
    assert ctx.unrealized_pnl == 0.0 and runner.open_orders() == []


def test_rejects_and_cancels_reach_the_strategy(setup):
    runner, s, signals, btc = setup
    a = s.limit_buy(90.0, 1.0)
    b = s.limit_buy(91.0, 1.0)
    runner.on_order_rejected(a, "not enough balance", "insufficient_funds")
    runner.on_order_cancelled(b, "user")
    assert ("update", a, "rejected", 0.0, 0.0) in s.log and ("update", b, "cancelled", 0.0, 0.0) in s.log
    errors = [e for e in s.log if e[0] == "error"]
    assert errors == [("error", "OrderError", f"order {a} rejected (insufficient_funds): not enough balance")]
    runner.on_request_failed(b, "cancel refused", "order_not_found")
    assert s.log[-1] == ("error", "OrderError", "cancel refused")
    c = s.limit_buy(92.0, 1.0)
    runner.on_order_modified(c, price=92.5, qty=2.0)
    assert runner.orders[c].price == 92.5 and runner.orders[c].qty == 2.0


def test_a_failing_strategy_is_reported_and_the_others_go_on():
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT")
    failures = []

    class Broken(Recorder):
        def on_trade(self, ctx, trade):
            super().on_trade(ctx, trade)
            raise KeyError("bug in on_trade")

    signals = []
    runner = Runner(reg, signals.append, on_error=lambda st, where, exc: failures.append((st.name, where, repr(exc))))
    broken = runner.add_strategy(Broken([btc], buy_every=1))
    good = runner.add_strategy(Recorder([btc], buy_every=1), )
    runner.start()
    for i in range(3):
        runner.on_trade(btc, 100.0 + i, 1.0, True, i)
    assert failures == [("Broken", "on_trade", "KeyError('bug in on_trade')")] * 3
    assert [e for e in broken.log if e[0] == "error"] == [("error", "KeyError", "'bug in on_trade'")] * 3
    assert good.n == 3 and [g.strategy for g in signals].count(good) == 3
    assert runner.errors(broken) == 3 and runner.errors(good) == 0


def test_strategies_need_distinct_names():
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT")
    runner = Runner(reg, print)
    runner.add_strategy(Recorder([btc]))
    with pytest.raises(ValueError, match="already"):
        runner.add_strategy(Recorder([btc]))


def test_book_bar_params_initial_position_and_timers(setup):
    runner, s, signals, btc = setup
    runner.on_book_snapshot(btc, [100.0, 99.0], [1.0, 2.0], [101.0], [3.0], 1)
    runner.on_book_delta(btc, bids=[(100.0, 0.0)], asks=[(100.5, 1.0)], ts_ns=2)
    runner.on_book_snapshot(btc, 98.0, 1.0, 98.5, 1.0)             # a best bid/offer
    assert [e for e in s.log if e[0] == "book"] == [
        ("book", 100.0, 101.0, 100.5), ("book", 99.0, 100.5, 99.75), ("book", 98.0, 98.5, 98.25)]
    with pytest.raises(ValueError, match="bid level"):
        runner.on_book_snapshot(btc, [-1.0], [1.0], [], [])
    runner.on_bar(btc, 60, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert s.log[-1] == ("bar", 60, 1.5)
    runner.update_params("Recorder", {"qty": 2})
    assert s.log[-1] == ("params", {"qty": 2})
    runner.set_initial_position(s, btc, 0.7, 95.0)
    assert s.log[-1] == ("initial", btc, 0.7, 95.0) and s.context().position == 0.7
    s.set_timer("tick", 10.0)
    due = s.next_timer_due
    assert runner.poll_timers(due - 1) == 0
    assert runner.poll_timers(due) == 1 and s.log[-1] == ("timer", "tick")
    # ten intervals late: fires once and resumes from now
    assert runner.poll_timers(due + 100 * 10**9) == 1
    assert s.next_timer_due == due + 110 * 10**9
    s.cancel_timer("tick")
    assert runner.next_timer_due() is None


def test_threaded_runner_keeps_event_order_and_matches_the_synchronous_one():
    def run(threaded):
        reg = SymbolRegistry()
        btc = reg.add_symbol("sim", "BTC/USDT")
        signals = []
        runner = Runner(reg, signals.append, threaded=threaded, queue_size=16)
        s = runner.add_strategy(Recorder([btc], buy_every=7))
        runner.start()
        for i in range(2_000):
            runner.on_trade(btc, 100.0 + (i % 13), 0.01 * (i % 5 + 1), i % 2 == 0, i)
            if i % 50 == 49:
                runner.join()                        # fill what was sent so far
                for sig in list(signals):
                    if runner.orders[sig.order_id].status == "new":
                        runner.on_fill(sig.order_id, 100.0, 1.0)
        runner.stop()
        return s, [(g.order_id, g.order_type, g.quantity) for g in signals]

    sync, sync_signals = run(False)
    threaded, threaded_signals = run(True)
    assert threaded.log == sync.log and threaded_signals == sync_signals
    assert threaded.log[0] == ("start",) and threaded.log[-1] == ("stop",)
    assert threaded.threads and threading.get_ident() not in threaded.threads


def test_threaded_timers_fire_on_the_real_clock():
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT")
    fired = threading.Event()

    class Ticker(Strategy):
        def on_start(self):
            self.set_timer("fast", 0.01)
            self.count = 0

        def on_timer(self, name):
            self.count += 1
            if self.count == 3:
                fired.set()

    runner = Runner(reg, print, threaded=True)
    runner.add_strategy(Ticker([btc]))
    runner.start()
    try:
        assert fired.wait(timeout=10), "the timer did not fire three times"
    finally:
        runner.stop()


def test_signal_handler_may_refuse_an_order(setup):
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT")

    def refuse(sig):
        raise OrderError("risk limit", "risk_limit")

    runner = Runner(reg, refuse)
    s = runner.add_strategy(Recorder([btc]))
    with pytest.raises(OrderError, match="risk limit"):
        s.market_buy(1.0)
    assert runner.orders == {}
    assert isinstance(Fill(1, btc, "buy", 1.0, 1.0), Fill)


def test_spot_dust_left_by_a_base_asset_fee_is_flat_and_trading_goes_on():
    """A spot buy of 0.001 BTC paying its fee in BTC holds 0.000999; the lot is 0.00001. The
    close sells the whole lots (0.00099), its record closes on that fill, and the 0.000009 left
    is below a lot: flat, so the strategy buys again (it used to wait on an order left open)."""
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT", tick_size=0.01, lot_size=0.00001)
    signals = []
    runner = Runner(reg, signals.append)
    s = runner.add_strategy(Recorder([btc]))
    runner.start()
    ctx = s.context()
    buy = s.market_buy(0.001)
    runner.on_fill(buy, 60_000.0, 0.001, fee=0.06, trade_id="b1", position_change=0.001 - 0.000001)
    assert ctx.position == pytest.approx(0.000999) and ctx.is_long() and ctx.closable() == 0.00099
    close = s.close_position()
    assert signals[-1].quantity == 0.00099 and signals[-1].order_type == "close_position"
    runner.on_fill(close, 60_010.0, 0.00099, fee=0.0594, trade_id="c1")
    assert runner.orders[close].status == "filled" and not ctx.open_orders() and not runner.open_orders(s)
    assert ctx.position == pytest.approx(0.000009)           # the account holds it: the position says so
    assert ctx.is_flat() and not ctx.is_long() and not ctx.is_short() and ctx.closable() == 0.0
    assert s.close_position() is None                        # nothing a venue would take
    again = s.market_buy(0.001)
    runner.on_fill(again, 60_000.0, 0.001, fee=0.06, trade_id="b2", position_change=0.001 - 0.000001)
    assert ctx.closable() == 0.001                           # the dust adds up to whole lots again
    s.close_position()
    assert signals[-1].quantity == 0.001


def test_an_order_the_venue_reports_filled_closes_below_its_quantity(setup):
    """Without a lot size a close asks for the exact position; the venue rounds it down. The
    order status the router reports (filled) closes the record, and a late fill keeps it closed."""
    runner, s, signals, btc = setup
    buy = s.market_buy(2.0)
    runner.on_fill(buy, 100.0, 2.0, trade_id="b1", position_change=1.998)
    close = s.close_position()
    assert signals[-1].quantity == pytest.approx(1.998)
    runner.on_fill(close, 100.0, 1.99, trade_id="c1")
    assert runner.orders[close].status == "partially_filled"
    assert runner.on_order_filled(close) and not runner.on_order_filled(999)
    assert runner.orders[close].status == "filled" and not s.context().open_orders()
    runner.on_fill(close, 100.0, 0.001, trade_id="c2")
    assert runner.orders[close].status == "filled"
    assert ("update", close, "filled", pytest.approx(1.99), 100.0) in s.log
