"""Signal -> order request: each order type carries exactly the fields it takes."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tradebus.execution import orders
from tradebus.proto import CancelAll, ModifyOrder, OrderType, TimeInForce

SYM = SimpleNamespace(name="BTC/USDT")


def signal(order_type, **kw):
    """A Signal as the runner hands it over: every field present, 0 where unused."""
    base = dict(order_type=order_type, side="buy", quantity=0.5, price=0.0, trigger=0.0, offset=0.0,
                time_in_force="GTC", post_only=False, reduce_only=False, symbol=SYM, order_id=7)
    base.update(kw)
    return SimpleNamespace(**base)


def new(sig):
    return orders.new_order(sig, client_order_id="s-x-7", strategy="s", venue="sim", ts_init=3)


def test_price_and_post_only_go_only_to_the_types_that_take_them():
    # a price or post_only flag left on a signal of another type is not sent (NewOrder refuses them)
    market = new(signal("market", price=101.0, post_only=True))
    assert market.price is None and market.post_only is False and market.order_type is OrderType.MARKET
    stop = new(signal("stop_market", price=99.0, trigger=98.0, post_only=True))
    assert (stop.price, stop.trigger_price, stop.post_only) == (None, 98.0, False)
    limit = new(signal("limit", price=100.0, post_only=True, time_in_force="GTC"))
    assert (limit.price, limit.post_only, limit.time_in_force) == (100.0, True, TimeInForce.GTC)
    stop_limit = new(signal("stop_limit", price=100.0, trigger=101.0, post_only=True, time_in_force="IOC"))
    assert (stop_limit.price, stop_limit.trigger_price, stop_limit.post_only) == (100.0, 101.0, False)
    assert stop_limit.time_in_force is TimeInForce.IOC
    tp = new(signal("take_profit_limit", side="sell", price=120.0, trigger=119.0, reduce_only=True))
    assert (tp.price, tp.trigger_price, tp.reduce_only, tp.side.value) == (120.0, 119.0, True, "sell")


def test_trailing_stops_carry_their_offset_activation_and_gtc():
    trail = new(signal("trailing_stop", offset=5.0, time_in_force="IOC"))
    assert (trail.trailing_offset, trail.trailing_bps, trail.trigger_price) == (5.0, None, None)
    assert trail.time_in_force is TimeInForce.GTC
    pct = new(signal("trailing_stop_percent", offset=50.0, trigger=105.0))
    assert (pct.trailing_bps, pct.trailing_offset, pct.trigger_price) == (50.0, None, 105.0)


def test_close_position_and_an_unknown_type():
    close = new(signal("close_position", side="sell", quantity=0.25, reduce_only=True))
    assert (close.order_type, close.qty, close.reduce_only) == (OrderType.CLOSE_POSITION, 0.25, True)
    with pytest.raises(ValueError):
        new(signal("iceberg"))
    assert "iceberg" not in orders.ORDER_KINDS and "limit" in orders.ORDER_KINDS


def test_cancel_all_and_modify():
    every = orders.cancel_all(signal("cancel_all", symbol=None), strategy="s", venue="sim", ts_init=1)
    assert isinstance(every, CancelAll) and every.symbol is None
    one = orders.cancel_all(signal("cancel_all"), strategy="s", venue="sim", ts_init=1)
    assert one.symbol == "BTC/USDT"
    mod = orders.modify_order(signal("modify", price=0.0, quantity=0.2), client_order_id="c", strategy="s",
                              venue="sim", symbol="BTC/USDT", ts_init=1)
    assert isinstance(mod, ModifyOrder) and (mod.new_price, mod.new_qty) == (None, 0.2)


def test_loose_fields_follow_the_same_rules():
    """Another strategy API (MLThon's send_new_order) builds its orders through the same rules."""
    order = orders.build_new_order(order_type="market", side="sell", qty=0.2, price=99.0, post_only=True,
                                   time_in_force="IOC", symbol="BTC/USDT", client_order_id="m-1", strategy="m",
                                   venue="sim", ts_init=1, params={"triggerBy": "MarkPrice"})
    assert (order.price, order.post_only, order.time_in_force, order.params) == (None, False, TimeInForce.IOC,
                                                                                 {"triggerBy": "MarkPrice"})
    limit = orders.build_new_order(order_type=OrderType.LIMIT, side="buy", qty=0.2, price=99.0, symbol="BTC/USDT",
                                   client_order_id="m-2", strategy="m", venue="sim", ts_init=1)
    assert limit.price == 99.0 and limit.time_in_force is TimeInForce.GTC
