"""The environment's rules: start-up order, rejects, stop/start, timers, commands, params,
statuses, errors and the watchdog, in the event-driven backtester."""
import time

import numpy as np
import pytest

from tradebus.mlthon.api.istrat_env import MDSub
from tradebus.mlthon.basics.defs import (
    TIF,
    CancelCode,
    Exchange,
    ExecInstructions,
    FeedHandlerStatus,
    GtwRejectCode,
    GtwStatus,
    OrderType,
    Side,
)
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty

from .conftest import Recorder, market, run

BIN = Exchange.Binance


def _limit(env, price="50", qty="0.5", side=Side.Buy, iid=1, **kw):
    return env.send_new_order(None, BIN, iid, side, price, qty, ExecInstructions.Unset, OrderType.Limit, TIF.GTC,
                              False, **kw)


def at_trade(n, fn):
    """A hook on on_public_trade that runs fn(self) once, at the n-th trade."""
    def hook(self, *args):
        self.trade_count = getattr(self, "trade_count", 0) + 1
        if self.trade_count == n:
            fn(self)
    return hook


def subscribe_trades(self, instruments):
    self.env.subscribe_to_market_data(BIN, ["BTC-USDT"], [MDSub.PublicTrades])


def test_start_up_order_and_shutdown():
    rec = Recorder()
    run(rec)
    names = rec.names()
    assert names[:4] == ["on_framework_connected", "on_start", "on_instruments", "on_strat_params_update"]
    assert names[-2:] == ["on_stop", "on_framework_disconnected"]
    assert "on_gateway_status" not in names and "on_feed_handler_status" not in names
    (inst,) = rec.calls[2][1]
    assert inst.get_instrument_name() == "BTC-USDT" and inst.get_instrument_id() == 1


def test_no_login_means_no_start_and_requests_refused():
    rec = Recorder(login=False)
    host = run(rec)
    assert rec.names() == ["on_framework_connected", "on_framework_disconnected"]
    host.env.fetch_account_info(BIN)
    host.env.drain()
    assert rec.calls[-1][0] == "on_request_reject" and rec.calls[-1][2] == GtwRejectCode.NotLoggedIn


def test_market_data_only_by_subscription():
    rec = Recorder(hooks={"on_instruments": subscribe_trades})
    ts, px, qty, is_buy = market(50)
    run(rec, (ts, px, qty, is_buy))
    trades = [c for c in rec.calls if c[0] == "on_public_trade"]
    assert len(trades) == 50
    _, exch, iid, side, price, q, exec_ts, recv_ts = trades[0]
    assert (exch, iid, side) == (BIN, 1, Side.Buy if is_buy[0] else Side.Sell)
    assert isinstance(price, Price) and price == Price(repr(float(px[0])))
    assert isinstance(q, Qty) and exec_ts == ts[0]
    assert "on_best_bid_level_update" not in rec.names()


def test_level_book_and_order_book_are_unsupported():
    rec = Recorder(hooks={"on_instruments": lambda self, i: self.env.subscribe_to_market_data(
        BIN, ["BTC-USDT"], [MDSub.LevelBook, MDSub.OrderBook])})
    run(rec, market(5))
    assert [c for c in rec.calls if c[0] == "on_unsupported_op"] == [
        ("on_unsupported_op", BIN, "LevelBook"), ("on_unsupported_op", BIN, "OrderBook")]


def test_order_lifecycle_ack_modify_cancel():
    state = {}

    def place(self):
        state["id"] = _limit(self.env, "50", "0.5")

    def on_ack(self, exch, cid, *rest):
        self.env.send_modify_order(BIN, cid, "51", "0.75")

    def on_modified(self, exch, cid, new_price, new_qty, leaves):
        self.env.send_cancel_order(BIN, 1, cid)

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": at_trade(3, place),
                          "on_new_order_ack": on_ack, "on_modify_order_ack": on_modified})
    run(rec)
    cid = state["id"]
    order_calls = [c for c in rec.calls if c[0] in ("on_new_order_ack", "on_modify_order_ack", "on_cancel_order_ack",
                                                    "on_order_cancelled")]
    ack, mod, cack, cancelled = order_calls
    assert ack[:3] == ("on_new_order_ack", BIN, cid)
    assert (ack[4], ack[5], ack[6], ack[7], ack[8], ack[9]) == (1, Side.Buy, Price("50"), Qty("0.5"), Qty("0.5"),
                                                                OrderType.Limit)
    assert mod == ("on_modify_order_ack", BIN, cid, Price("51"), Qty("0.75"), Qty("0.75"))
    assert cack == ("on_cancel_order_ack", BIN, cid)
    assert cancelled[:4] == ("on_order_cancelled", BIN, cid, False)
    assert cancelled[6] == CancelCode.CanceledByUser


def test_market_order_executions_and_leaves():
    def buy(self):
        self.env.send_new_order(None, BIN, 1, Side.Buy, None, "0.3", ExecInstructions.Unset, OrderType.Market,
                                TIF.IOC, False)

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": at_trade(2, buy)})
    host = run(rec)
    execs = [c for c in rec.calls if c[0] == "on_order_execution"]
    assert sum(c[5].to_float() for c in execs) == pytest.approx(0.3)
    assert execs[-1][6] == Qty(0)
    names = rec.names()
    assert names.index("on_new_order_ack") < names.index("on_order_execution")
    assert host.context().position == pytest.approx(0.3)


def test_unsolicited_cancel_of_a_post_only_that_would_take():
    def place(self):
        price = str(round(self.calls[-1][4].to_float() * 1.05, 2))      # far through the market
        self.env.send_new_order(None, BIN, 1, Side.Buy, price, "0.1", ExecInstructions.PostOnly, OrderType.Limit,
                                TIF.GTC, False)

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": at_trade(2, place)})
    run(rec)
    (cancelled,) = [c for c in rec.calls if c[0] == "on_order_cancelled"]
    assert cancelled[3] is True and cancelled[6] == CancelCode.PostOnlyWouldTake


@pytest.mark.parametrize("request_fn, callback, code", [
    (lambda env: _limit(env, price="abc"), "on_new_order_reject", GtwRejectCode.InvalidPrice),
    (lambda env: _limit(env, price="-5"), "on_new_order_reject", GtwRejectCode.InvalidPrice),
    (lambda env: _limit(env, qty="-1"), "on_new_order_reject", GtwRejectCode.InvalidQty),
    (lambda env: _limit(env, qty="zero"), "on_new_order_reject", GtwRejectCode.InvalidQty),
    (lambda env: _limit(env, iid=77), "on_new_order_reject", GtwRejectCode.UnknownInstrument),
    (lambda env: _limit(env, symbol="DOGE-USDT"), "on_new_order_reject", GtwRejectCode.UnknownInstrument),
    (lambda env: env.send_cancel_order(BIN, 1, 4242), "on_cancel_order_reject", GtwRejectCode.UnknownOrder),
    (lambda env: env.send_modify_order(BIN, 4242, "10", None), "on_modify_order_reject", GtwRejectCode.UnknownOrder),
    (lambda env: env.send_modify_order(Exchange.OKX, 4242, "10", None), "on_modify_order_reject",
     GtwRejectCode.UnknownInstrument),
    (lambda env: env.send_cancel_all(BIN, 99), "on_cancel_all_reject", GtwRejectCode.UnknownInstrument),
    (lambda env: env.fetch_position_info(BIN, 99), "on_request_reject", GtwRejectCode.UnknownInstrument),
    (lambda env: env.fetch_order_status(BIN, 1, 4242), "on_request_reject", GtwRejectCode.UnknownOrder),
    (lambda env: env.fetch_wallet_info(Exchange.OKX, "USDT"), "on_request_reject", GtwRejectCode.UnknownInstrument),
])
def test_bad_requests_get_a_reject_and_nothing_is_sent(request_fn, callback, code):
    rec = Recorder(hooks={"on_instruments": subscribe_trades,
                          "on_public_trade": at_trade(2, lambda self: request_fn(self.env))})
    host = run(rec)
    rejects = [c for c in rec.calls if c[0] == callback]
    assert len(rejects) == 1
    reject = rejects[0]
    if callback == "on_request_reject":            # (exchange, code, detail, request type)
        assert reject[2] == code and reject[3]
    else:                                           # (exchange, id, code, reason)
        assert reject[3] == code and reject[4]
    assert len(host.result["orders"]) == 0


def test_symbol_by_keyword():
    rec = Recorder(hooks={"on_instruments": subscribe_trades,
                          "on_public_trade": at_trade(2, lambda self: _limit(self.env, iid=None, symbol="BTC-USDT"))})
    run(rec)
    assert "on_new_order_ack" in rec.names()


def test_answers_arrive_after_the_request_returns():
    seen = []

    def place(self):
        _limit(self.env, price="abc")
        seen.append(len([c for c in self.calls if c[0] == "on_new_order_reject"]))

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": at_trade(2, place)})
    run(rec)
    assert seen == [0] and rec.names().count("on_new_order_reject") == 1


def test_stop_refuses_requests_until_the_next_start():
    def stop(self):
        self.host.command("stop", ["now"])
        _limit(self.env)                       # refused: stopped

    def start(self):
        self.host.command("START", ["again"])
        _limit(self.env)                       # accepted

    def on_stop(self, params):
        self.env.send_stop_ack()

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_stop": on_stop})
    calls = {"n": 0}

    def trade(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            stop(self)
        elif calls["n"] == 5:
            start(self)

    rec.hooks["on_public_trade"] = trade
    run(rec, market(20))
    names = rec.names()
    stop_at = names.index("on_stop")
    assert rec.calls[stop_at] == ("on_stop", "now")
    reject = next(c for c in rec.calls if c[0] == "on_request_reject")
    assert reject[2] == GtwRejectCode.StrategyStopped and reject[4] == "NewOrder"
    assert ("on_start", "again") in rec.calls
    assert names.count("on_new_order_ack") == 1
    assert names.index("on_new_order_ack") > names.index("on_request_reject")
    assert names.count("on_instruments") == 1      # only on the first start


def test_gateway_status_only_on_transitions_and_gates_orders():
    def trade(self, *args):
        self.n = getattr(self, "n", 0) + 1
        if self.n == 2:
            self.host.gateway_update(GtwStatus.ReadyToTrade)          # no change: no callback
            self.host.gateway_update(GtwStatus.Maintenance, "venue maintenance")
            self.host.gateway_update(GtwStatus.Maintenance)
            _limit(self.env)
        if self.n == 4:
            self.host.gateway_update(GtwStatus.ReadyToTrade)
            _limit(self.env)

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": trade})
    run(rec, market(10))
    statuses = [c for c in rec.calls if c[0] == "on_gateway_status"]
    assert statuses == [("on_gateway_status", BIN, GtwStatus.Maintenance, "venue maintenance"),
                        ("on_gateway_status", BIN, GtwStatus.ReadyToTrade, "")]
    reject = next(c for c in rec.calls if c[0] == "on_request_reject")
    assert reject[2] == GtwRejectCode.GtwNotReady
    assert rec.names().count("on_new_order_ack") == 1


def test_feed_status_and_rate_limit_thresholds():
    rec = Recorder()
    host = run(rec, market(3))
    host.feed_update(1, FeedHandlerStatus.SnapshotEnd)                 # already ready: nothing
    host.feed_update(1, FeedHandlerStatus.Disconnected, "ws closed")
    host.feed_update(1, FeedHandlerStatus.SnapshotStart)
    host.feed_update(1, FeedHandlerStatus.SnapshotEnd)
    for used in (0.2, 0.55, 0.6, 0.95, 1.0, 1.0, 0.3, 0.51):
        host.rate_limit_update(used, 99)
    feed = [c[2] for c in rec.calls if c[0] == "on_feed_handler_status"]
    assert feed == [FeedHandlerStatus.Disconnected, FeedHandlerStatus.SnapshotStart, FeedHandlerStatus.SnapshotEnd]
    rates = [(c[2], c[3], c[4]) for c in rec.calls if c[0] == "on_rate_limit_info"]
    assert rates == [(100, 45, 99), (100, 5, 99), (100, 0, 99), (100, 49, 99)]


def test_params_updates_reach_the_strategy():
    def trade(self, *args):
        self.n = getattr(self, "n", 0) + 1
        if self.n == 3:
            self.host.on_params_update({"qty": "2"})

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": trade})
    run(rec, market(5), params={"qty": "1"})
    assert [c[1] for c in rec.calls if c[0] == "on_strat_params_update"] == [{"qty": "1"}, {"qty": "2"}]


def test_timer_renews_while_true_under_the_event_clock():
    fired = []

    def setup(self, instruments):
        def tick():
            fired.append(self.env._host.now_ns())
            return len(fired) < 3
        self.env.setup_timer(1000, tick)

    rec = Recorder(hooks={"on_instruments": setup})
    ts, px, qty, is_buy = market(100, step_ns=100_000_000)       # 10 s of trades
    run(rec, (ts, px, qty, is_buy))
    assert len(fired) == 3
    assert np.diff(fired).tolist() == [1_000_000_000, 1_000_000_000]


def test_daily_callback_in_the_system_time_zone(monkeypatch):
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX-only")
    monkeypatch.setenv("TZ", "Asia/Tokyo")          # UTC+9, no daylight saving
    time.tzset()
    try:
        fired = []

        def setup(self, instruments):
            def daily():
                fired.append(self.env._host.now_ns())
                return True
            self.env.setup_daily_callback("09:00:00", daily)

        rec = Recorder(hooks={"on_instruments": setup})
        day = 86_400 * 10**9
        start = 1_700_000_000 * 10**9 // day * day + day // 2                # noon UTC
        n = 3 * 24 * 60                                                       # three days, a trade a minute
        ts, px, qty, is_buy = market(n, start_ns=start, step_ns=60 * 10**9)
        run(rec, (ts, px, qty, is_buy))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert len(fired) >= 2
    assert all(t % day == 0 for t in fired)              # 09:00 in Tokyo is 00:00 UTC


def test_command_hooks_are_case_insensitive_and_get_string_lists():
    got = []

    def setup(self, instruments):
        self.env.add_cmd_hook("Rebalance", lambda params: got.append(params))

    rec = Recorder(hooks={"on_instruments": setup})
    host = run(rec, market(3))
    assert host.command("REBALANCE", ["1", "x"]) is True
    assert host.command("unknown", []) is False
    assert got == [["1", "x"]]


def test_a_raising_callback_is_reported_and_the_others_go_on():
    def boom(self, *args):
        raise RuntimeError("strategy bug")

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": boom})
    host = run(rec, market(10))
    assert rec.names().count("on_public_trade") == 10
    assert len(host.guard.errors) == 10 and host.guard.errors[0][0] == "on_public_trade"
    assert rec.names()[-1] == "on_framework_disconnected"


def test_watchdog_names_a_slow_callback():
    def slow(self, *args):
        time.sleep(0.3)

    rec = Recorder(hooks={"on_strat_params_update": slow})
    host = run(rec, market(3), bound=0.05)
    assert [name for name, _ in host.guard.slow] == ["on_strat_params_update"]
    assert host.guard.slow[0][1] > 0.05
    assert ("slow", "on_strat_params_update") == host.reports[0][:2]


def test_fetch_answers_in_the_backtest():
    def trade(self, *args):
        self.n = getattr(self, "n", 0) + 1
        if self.n == 2:
            self.env.send_new_order(None, BIN, 1, Side.Buy, None, "0.5", ExecInstructions.Unset, OrderType.Market,
                                    TIF.IOC, False)
        if self.n == 5:
            env = self.env
            env.fetch_position_info(BIN, 1)
            env.fetch_wallet_info(BIN, "BTC")
            env.fetch_wallet_info(BIN, "usdt")
            env.fetch_account_info(BIN)
            env.fetch_funding_info(BIN, 1)
            env.fetch_orders_info(BIN)

    rec = Recorder(hooks={"on_instruments": subscribe_trades, "on_public_trade": trade})
    host = run(rec)
    pos = next(c for c in rec.calls if c[0] == "on_position_info")
    assert pos[3] == Qty("0.5")
    wallets = {c[2]: c[3] for c in rec.calls if c[0] == "on_wallet_info"}
    execs = [c for c in rec.calls if c[0] == "on_order_execution"]
    cost = sum(c[4].to_float() * c[5].to_float() for c in execs)
    fee = float(host.result["fills"]["fee"].sum())
    assert wallets["BTC"] == Qty("0.5")
    assert wallets["USDT"].to_float() == pytest.approx(10_000 - cost - fee)
    assert ("on_account_info", BIN, "recorder") in rec.calls
    assert ("on_unsupported_op", BIN, "FetchFundingInfo") in rec.calls
    assert ("on_orders_info", BIN, []) in rec.calls
