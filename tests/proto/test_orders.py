"""Order request validation, at construction and at decode."""
from __future__ import annotations

import math

import msgspec
import pytest

from tradebus.proto import (
    CancelOrder,
    ModifyOrder,
    NewOrder,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
    codec,
)

T = OrderType
# the fields each order type needs, beyond the common ones
NEEDS = {
    T.MARKET: {},
    T.LIMIT: {"price": 100.0},
    T.STOP_MARKET: {"trigger_price": 90.0},
    T.STOP_LIMIT: {"price": 89.0, "trigger_price": 90.0},
    T.TAKE_PROFIT_MARKET: {"trigger_price": 110.0},
    T.TAKE_PROFIT_LIMIT: {"price": 111.0, "trigger_price": 110.0},
    T.TRAILING_STOP: {"trailing_offset": 5.0},
    T.TRAILING_STOP_PERCENT: {"trailing_bps": 50.0},
    T.CLOSE_POSITION: {},
}


def order(order_type: OrderType, **fields) -> NewOrder:
    base = dict(client_order_id="s-1", strategy="s", venue="binance", symbol="BTC/USDT", side=Side.SELL,
                order_type=order_type, qty=1.0, ts_init=1)
    return NewOrder(**(base | NEEDS[order_type] | fields))


def as_json(**fields) -> bytes:
    raw = {"type": "ord.new", "client_order_id": "s-1", "strategy": "s", "venue": "binance", "symbol": "BTC/USDT",
           "side": "buy", "order_type": "limit", "qty": 1.0, "ts_init": 1}
    raw.update(fields)
    return msgspec.json.encode({k: v for k, v in raw.items() if v is not ...})


def test_every_order_type_is_covered():
    assert set(NEEDS) == set(OrderType)


@pytest.mark.parametrize("order_type", list(OrderType), ids=str)
def test_each_type_builds_and_round_trips(order_type):
    msg = order(order_type)
    assert codec.decode(codec.encode(msg), OrderRequest) == msg
    assert codec.decode_json(codec.encode_json(msg), OrderRequest) == msg


@pytest.mark.parametrize("order_type", [t for t in OrderType if NEEDS[t]], ids=str)
def test_each_required_field_is_required(order_type):
    for name in NEEDS[order_type]:
        with pytest.raises(ValueError, match=name):
            order(order_type, **{name: None})


@pytest.mark.parametrize("order_type", list(OrderType), ids=str)
def test_fields_a_type_does_not_use_are_refused(order_type):
    unused = {"price": 1.0, "trigger_price": 1.0, "trailing_offset": 1.0, "trailing_bps": 1.0}
    for name in NEEDS[order_type]:
        unused.pop(name)
    if order_type in (T.TRAILING_STOP, T.TRAILING_STOP_PERCENT):
        unused.pop("trigger_price")  # the activation price, optional
    for name, value in unused.items():
        with pytest.raises(ValueError, match=name):
            order(order_type, **{name: value})


def test_trailing_stop_takes_an_activation_price():
    assert order(T.TRAILING_STOP, trigger_price=95.0).trigger_price == 95.0


def test_decoding_a_limit_order_without_price_fails_clearly():
    with pytest.raises(msgspec.ValidationError, match="LIMIT order s-1 needs a price"):
        codec.decode_json(as_json(), OrderRequest)
    with pytest.raises(msgspec.ValidationError, match="LIMIT order s-1 needs a price"):
        codec.decode(msgspec.msgpack.encode(msgspec.json.decode(as_json())), OrderRequest)
    assert codec.decode_json(as_json(price=10.0), OrderRequest).price == 10.0


@pytest.mark.parametrize("qty", [0.0, -1.0, math.nan, math.inf])
def test_qty_must_be_positive(qty):
    with pytest.raises(ValueError, match="qty"):
        order(T.MARKET, qty=qty)
    with pytest.raises(msgspec.ValidationError):
        codec.decode(msgspec.msgpack.encode(msgspec.json.decode(as_json(price=1.0))
                                            | {"qty": qty}), OrderRequest)


def test_close_position_qty_zero_means_whole_position():
    assert order(T.CLOSE_POSITION, qty=0.0).qty == 0.0
    with pytest.raises(ValueError, match="qty must be >= 0"):
        order(T.CLOSE_POSITION, qty=-1.0)


def test_prices_must_be_positive():
    with pytest.raises(ValueError, match="price must be a finite number > 0"):
        order(T.LIMIT, price=0.0)
    with pytest.raises(msgspec.ValidationError, match=r"Expected `float` > 0.0 - at `\$.price`"):
        codec.decode_json(as_json(price=-5.0), OrderRequest)


def test_post_only_needs_a_gtc_limit():
    assert order(T.LIMIT, post_only=True).post_only
    with pytest.raises(ValueError, match="post_only"):
        order(T.LIMIT, post_only=True, time_in_force=TimeInForce.IOC)
    with pytest.raises(ValueError, match="post_only"):
        order(T.MARKET, post_only=True)


@pytest.mark.parametrize("bad", ["", "has space", "a.b", "x" * 65, "ünï"])
def test_client_order_id_is_a_safe_token(bad):
    with pytest.raises(ValueError, match="client_order_id"):
        order(T.MARKET, client_order_id=bad)
    with pytest.raises(msgspec.ValidationError):
        codec.decode_json(as_json(client_order_id=bad, price=1.0), OrderRequest)


def test_plain_strings_become_enums():
    msg = NewOrder(client_order_id="c", strategy="s", venue="binance", symbol="BTC/USDT", side="buy",
                   order_type="limit", qty=1, price=2, time_in_force="IOC", ts_init=1)
    assert msg.side is Side.BUY and msg.order_type is T.LIMIT and msg.time_in_force is TimeInForce.IOC
    with pytest.raises(ValueError, match="'lmt' is not a valid OrderType"):
        NewOrder(client_order_id="c", strategy="s", venue="binance", symbol="BTC/USDT", side="buy",
                 order_type="lmt", qty=1, ts_init=1)


def test_unknown_enum_value_on_decode():
    with pytest.raises(msgspec.ValidationError, match=r"Invalid enum value 'iceberg' - at `\$.order_type`"):
        codec.decode_json(as_json(order_type="iceberg"), OrderRequest)


def test_modify_needs_a_change():
    with pytest.raises(ValueError, match="needs new_price and/or new_qty"):
        ModifyOrder(client_order_id="c", strategy="s", venue="binance", symbol="BTC/USDT", ts_init=1)
    assert ModifyOrder(client_order_id="c", strategy="s", venue="binance", symbol="BTC/USDT", new_qty=2.0,
                       ts_init=1).new_price is None
    with pytest.raises(ValueError, match="new_qty"):
        ModifyOrder(client_order_id="c", strategy="s", venue="binance", symbol="BTC/USDT", new_qty=-2.0, ts_init=1)


def test_cancel_checks_the_client_order_id():
    with pytest.raises(ValueError, match="client_order_id"):
        CancelOrder(client_order_id="a b", strategy="s", venue="binance", symbol="BTC/USDT", ts_init=1)


@pytest.mark.parametrize("value, ok", [
    ("sma-000001", True), ("a", True), ("A_b-9" * 12 + "abcd", True), ("x" * 65, False), ("", False),
    ("has space", False), ("dot.ted", False), ("abc\n", False), ("naïve", False), (12, False), (None, False)])
def test_one_client_order_id_rule(value, ok):
    """is_client_order_id is the rule NewOrder enforces (and what the router checks ids with)."""
    from tradebus.proto import is_client_order_id

    assert is_client_order_id(value) is ok
    if isinstance(value, str):
        if ok:
            assert order(T.MARKET, client_order_id=value).client_order_id == value
        else:
            with pytest.raises(ValueError, match="client_order_id"):
                order(T.MARKET, client_order_id=value)
