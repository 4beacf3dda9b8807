"""Matching engine without the server: queue priority, replay interaction, funds, positions, triggers."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus.services.sim_exchange.engine import Account, Engine, Instrument, SimError

D = Decimal
NOW = 1_700_000_000_000


def make(market: str = "spot", fee: str = "0.001") -> tuple[Engine, Instrument, Account, Account]:
    inst = Instrument(symbol="BTCUSDT", unified="BTC/USDT" if market == "spot" else "BTC/USDT:USDT",
                      market=market, base="BTC", quote="USDT", tick=D("0.01"), step=D("0.00001"),
                      min_qty=D("0.00001"), max_qty=D("9000"), min_notional=D("5"), maker_fee=D(fee),
                      taker_fee=D(fee))
    a = Account("a", "sa", {"USDT": D(100000), "BTC": D(1)}, {"USDT": D(10000)}, 10)
    b = Account("b", "sb", {"USDT": D(100000), "BTC": D(1)}, {"USDT": D(10000)}, 10)
    engine = Engine([inst], [a, b], clock=lambda: NOW)
    engine.seed_book(inst, bids=[(D("100.00"), D("2")), (D("99.99"), D("3"))],
                     asks=[(D("100.01"), D("1")), (D("100.02"), D("4"))])
    return engine, inst, a, b


def limit(engine, acct, inst, side, qty, price, **kw):
    return engine.place(acct, inst, side=side, type="LIMIT", qty=D(qty), price=D(price), tif=kw.pop("tif", "GTC"), **kw)


def book(engine, inst, n=5):
    b = engine.books[inst.key]
    return b.bids.top(n), b.asks.top(n)


def test_replayed_trades_consume_the_queue_ahead_before_a_resting_order():
    engine, inst, a, _ = make()
    order = limit(engine, a, inst, "BUY", "0.5", "100.00")
    assert order.queue_ahead == D(2) and order.status == "NEW"
    assert a.spot["USDT"] == [D("99950.00000000"), D("50.00000000")]
    engine.apply_trade(inst, D("100.00"), D("1.5"), buyer_maker=True)
    assert order.executed == 0 and order.queue_ahead == D("0.5")
    engine.apply_trade(inst, D("100.00"), D("1.0"), buyer_maker=True)
    assert order.status == "FILLED" and order.executed == D("0.5")
    assert order.fills[0].is_maker and order.fills[0].commission == D("0.0005")
    assert a.spot["USDT"] == [D("99950.00000000"), D(0)]
    assert a.spot["BTC"][0] == D("1.4995")
    prints = [(t.price, t.qty) for t in engine.trades[inst.key]]
    # the 1.0 trade printed as our 0.5 fill and the 0.5 of replayed liquidity ahead of us
    assert prints == [(D("100.00"), D("1.5")), (D("100.00"), D("0.5")), (D("100.00"), D("0.5"))]


def test_a_trade_through_the_price_fills_better_orders_first():
    engine, inst, a, _ = make()
    order = limit(engine, a, inst, "BUY", "0.5", "100.00")
    engine.apply_trade(inst, D("99.99"), D("0.3"), buyer_maker=True)
    assert order.executed == D("0.3") and order.fills[0].price == D("100.00")
    assert [(t.price, t.qty) for t in engine.trades[inst.key]] == [(D("100.00"), D("0.3"))]


def test_taker_sweeps_market_liquidity_and_user_orders_in_price_time_priority():
    engine, inst, a, b = make()
    resting = limit(engine, b, inst, "SELL", "0.5", "100.01")
    assert resting.queue_ahead == D(1)
    taker = engine.place(a, inst, side="BUY", type="MARKET", qty=D("1.2"))
    assert taker.status == "FILLED"
    assert [(f.price, f.qty, f.is_maker) for f in taker.fills] == [
        (D("100.01"), D("1"), False), (D("100.01"), D("0.2"), False)]
    assert resting.executed == D("0.2") and resting.fills[0].is_maker
    assert book(engine, inst)[1][0] == (D("100.01"), D("0.3"))
    # b sold 0.2 BTC as maker: base unlocked and paid, quote received less the maker fee
    assert b.spot["BTC"] == [D("0.5"), D("0.3")]
    assert b.spot["USDT"][0] == D(100000) + D("20.002") - D("0.02000200")


def test_depth_update_that_shrinks_a_level_moves_the_order_up_the_queue():
    engine, inst, a, _ = make()
    order = limit(engine, a, inst, "BUY", "0.5", "100.00")
    engine.apply_depth(inst, [(True, D("100.00"), D("0.5"))])
    assert order.queue_ahead == D("0.5")
    assert book(engine, inst)[0][0] == (D("100.00"), D("1.0"))  # market 0.5 + ours 0.5
    engine.apply_trade(inst, D("100.00"), D("0.6"), buyer_maker=True)
    assert order.executed == D("0.1")


def test_replayed_liquidity_crossing_a_resting_order_trades_at_the_order_price():
    engine, inst, a, _ = make()
    order = limit(engine, a, inst, "BUY", "0.5", "100.00")
    engine.apply_depth(inst, [(False, D("99.99"), D("0.3"))])
    assert order.executed == D("0.3") and order.fills[0].price == D("100.00") and order.fills[0].is_maker
    bids, asks = book(engine, inst)
    assert asks[0] == (D("100.01"), D("1")) and bids[0] == (D("100.00"), D("2.2"))


def test_spot_funds_are_locked_and_released_exactly():
    engine, inst, a, _ = make()
    order = limit(engine, a, inst, "BUY", "1", "90.00")
    assert a.spot["USDT"] == [D("99910.00000000"), D("90.00000000")]
    engine.cancel(a, inst, order.order_id)
    assert order.status == "CANCELED" and a.spot["USDT"] == [D(100000), D(0)]
    with pytest.raises(SimError) as err:
        limit(engine, a, inst, "BUY", "2000", "100.00")
    assert (err.value.code, err.value.msg) == (-2010, "Account has insufficient balance for requested action.")
    with pytest.raises(SimError) as err:
        engine.cancel(a, inst, order.order_id)
    assert err.value.code == -2011


@pytest.mark.parametrize("qty, price, message", [
    ("0.1", "100.005", "Filter failure: PRICE_FILTER"),
    ("0.000001", "100.00", "Filter failure: LOT_SIZE"),
    ("0.01", "100.00", "Filter failure: MIN_NOTIONAL"),
])
def test_filters_reject_like_the_venue(qty, price, message):
    engine, inst, a, _ = make()
    with pytest.raises(SimError) as err:
        limit(engine, a, inst, "BUY", qty, price)
    assert (err.value.code, err.value.msg) == (-1013, message)
    assert not a.open["spot"] and a.spot["USDT"] == [D(100000), D(0)]


def test_time_in_force_and_post_only():
    engine, inst, a, _ = make()
    with pytest.raises(SimError) as err:
        engine.place(a, inst, side="BUY", type="LIMIT_MAKER", qty=D("0.1"), price=D("100.01"))
    assert err.value.msg == "Order would immediately match and take."
    assert not a.orders and a.spot["USDT"] == [D(100000), D(0)]
    ioc = limit(engine, a, inst, "BUY", "2", "100.01", tif="IOC")
    assert (ioc.status, ioc.executed) == ("EXPIRED", D(1))
    fok = limit(engine, a, inst, "BUY", "5", "100.02", tif="FOK")
    assert (fok.status, fok.executed) == ("EXPIRED", D(0))
    assert book(engine, inst)[1][0] == (D("100.02"), D("4"))
    assert a.spot["USDT"][1] == 0


def test_market_buy_by_quote_amount_spends_at_most_the_amount():
    engine, inst, a, _ = make()
    order = engine.place(a, inst, side="BUY", type="MARKET", qty=None, quote_qty=D("150"))
    assert [(f.price, f.qty) for f in order.fills] == [(D("100.01"), D("1")), (D("100.02"), D("0.49980"))]
    assert order.cum_quote == D("100.01") + D("49.98999600")
    assert order.status == "FILLED" and order.qty == D("1.4998")
    assert a.spot["USDT"] == [D(100000) - order.cum_quote, D(0)]


def test_spot_stop_loss_triggers_on_the_last_trade_price():
    engine, inst, a, _ = make()
    with pytest.raises(SimError) as err:
        engine.place(a, inst, side="SELL", type="STOP_LOSS", qty=D("0.5"), stop_price=D("100.50"))
    assert err.value.msg == "Stop price would trigger immediately."
    stop = engine.place(a, inst, side="SELL", type="STOP_LOSS", qty=D("0.5"), stop_price=D("99.99"))
    assert stop.status == "NEW" and a.spot["BTC"] == [D("0.5"), D("0.5")]
    engine.apply_trade(inst, D("100.00"), D("0.1"), buyer_maker=True)
    assert stop.status == "NEW"
    engine.apply_trade(inst, D("99.99"), D("0.1"), buyer_maker=True)
    assert stop.status == "FILLED" and stop.working_time == NOW
    assert [(f.price, f.qty) for f in stop.fills] == [(D("100.00"), D("0.5"))]
    assert a.spot["BTC"] == [D("0.5"), D(0)]


def test_take_profit_limit_rests_after_trigger():
    engine, inst, a, _ = make()
    order = engine.place(a, inst, side="SELL", type="TAKE_PROFIT_LIMIT", qty=D("0.5"), price=D("100.50"),
                         stop_price=D("100.20"), tif="GTC")
    engine.apply_trade(inst, D("100.20"), D("0.1"), buyer_maker=False)
    assert order.status == "NEW" and order.working_time == NOW and order not in engine.stops[inst.key]
    assert book(engine, inst)[1][-1] == (D("100.50"), D("0.5"))


def test_futures_position_entry_pnl_fees_and_reduce_only():
    engine, inst, a, _ = make("usdm", fee="0.0005")
    buy = engine.place(a, inst, side="BUY", type="MARKET", qty=D("2"))
    pos = a.positions["BTCUSDT"]
    assert pos.amount == D(2) and pos.entry == (D("100.01") + D("100.02")) / 2
    fees = D("0.05000500") + D("0.05001000")
    assert a.futures["USDT"] == D(10000) - fees
    with pytest.raises(SimError) as err:
        engine.place(a, inst, side="BUY", type="MARKET", qty=D("1"), reduce_only=True)
    assert err.value.code == -2022
    sell = engine.place(a, inst, side="SELL", type="MARKET", qty=D("3"), reduce_only=True)
    assert sell.executed == D(2) and sell.status == "EXPIRED" and pos.amount == 0
    realized = D("100.00") * 2 - (D("100.01") + D("100.02"))
    assert sum(f.realized_pnl for f in sell.fills) == realized
    assert a.futures["USDT"] == D(10000) - fees + realized - D("0.10000000")
    assert buy.status == "FILLED"


def test_futures_margin_check():
    engine, inst, a, _ = make("usdm")
    engine.seed_book(inst, bids=[(D("100.00"), D("2000"))], asks=[(D("100.01"), D("2000"))])
    with pytest.raises(SimError) as err:  # 1011 * 99 / 10x > 10,000 USDT
        limit(engine, a, inst, "BUY", "1011", "99.00")
    assert (err.value.code, err.value.msg) == (-2019, "Margin is insufficient.")
    limit(engine, a, inst, "BUY", "900", "99.00")
    assert engine.futures_state(a)["order_im"] == D("8910")


def test_close_position_stop_and_trailing_stop():
    engine, inst, a, _ = make("usdm")
    engine.place(a, inst, side="BUY", type="MARKET", qty=D("1"))
    close = engine.place(a, inst, side="SELL", type="STOP_MARKET", qty=None, stop_price=D("99.50"),
                         close_position=True, algo=True)
    trail = engine.place(a, inst, side="SELL", type="TRAILING_STOP_MARKET", qty=D("0.5"),
                         callback_rate=D("1"), reduce_only=True, algo=True)
    assert close.status == trail.status == "NEW" and trail.trail_extreme == D("100.01")
    engine.apply_depth(inst, [(False, D("110.00"), D("5")), (True, D("109.00"), D("5"))])
    engine.apply_trade(inst, D("110.00"), D("0.1"), buyer_maker=False)
    assert trail.trail_extreme == D("110.00") and trail.status == "NEW"
    engine.apply_trade(inst, D("109.00"), D("0.1"), buyer_maker=True)  # 0.9 % below the high
    assert trail.status == "NEW"
    engine.apply_trade(inst, D("108.90"), D("0.1"), buyer_maker=True)  # 1 % below: fires
    assert trail.status == "FINISHED" and trail.actual_order_id is not None
    child = a.orders[("usdm", trail.actual_order_id)]
    assert child.status == "FILLED" and child.executed == D("0.5") and child.fills[0].price == D("109.00")
    assert a.positions["BTCUSDT"].amount == D("0.5")
    engine.apply_trade(inst, D("99.50"), D("0.1"), buyer_maker=True)
    assert close.status == "FINISHED" and a.positions["BTCUSDT"].amount == 0


def test_same_inputs_give_the_same_fills():
    def run():
        engine, inst, a, b = make()
        limit(engine, b, inst, "SELL", "0.7", "100.01")
        limit(engine, a, inst, "BUY", "0.4", "100.00")
        engine.place(a, inst, side="BUY", type="MARKET", qty=D("1.5"))
        engine.apply_trade(inst, D("100.00"), D("2.2"), buyer_maker=True)
        engine.apply_depth(inst, [(False, D("99.98"), D("0.1"))])
        return [(f.trade_id, f.order.order_id, f.price, f.qty, f.is_maker) for acct in (a, b)
                for f in acct.fills["spot"]], book(engine, inst, 10)
    assert run() == run()
