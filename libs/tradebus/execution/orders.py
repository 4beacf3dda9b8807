"""Strategy signal -> order request: the one mapping of a ``tradebus.strategy.Signal`` to
``NewOrder`` / ``CancelOrder`` / ``ModifyOrder`` / ``CancelAll``.

A Signal carries every field for every order type (0 when unused); a request carries only the
fields its order type takes (see ``NewOrder``'s table): a price on limit types, a trigger on
stop / take-profit types (and as the activation of a trailing stop), ``post_only`` on LIMIT
only, and GTC on trailing stops (the venues take no other time in force there).
"""
from __future__ import annotations

from typing import Any

from tradebus.proto import CancelAll, CancelOrder, ModifyOrder, NewOrder, OrderType, Side, TimeInForce

__all__ = ["ORDER_KINDS", "REQUEST_KINDS", "build_new_order", "new_order", "cancel_order", "cancel_all", "modify_order"]

ORDER_KINDS = frozenset(t.value for t in OrderType)
"""Signal order types that become a NewOrder (the routing table's rows)."""
REQUEST_KINDS = frozenset({"cancel", "cancel_all", "modify"})
"""Signal order types that address orders already sent."""

_PRICED = {OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
_TRIGGERED = {OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT}
_TRAILING = {OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_PERCENT}


def new_order(sig: Any, *, client_order_id: str, strategy: str, venue: str, ts_init: int) -> NewOrder:
    """The NewOrder a new-order Signal asks for. Raises ValueError for an order type outside the
    routing table or fields the type needs and the signal lacks (``NewOrder``'s checks)."""
    return build_new_order(order_type=sig.order_type, side=sig.side or "buy", qty=sig.quantity, price=sig.price,
                           trigger=sig.trigger, offset=sig.offset, time_in_force=sig.time_in_force,
                           post_only=sig.post_only, reduce_only=sig.reduce_only, symbol=sig.symbol.name,
                           client_order_id=client_order_id, strategy=strategy, venue=venue, ts_init=ts_init)


def build_new_order(*, order_type: OrderType | str, side: Side | str, qty: float, symbol: str, client_order_id: str,
                    strategy: str, venue: str, ts_init: int, price: float | None = None, trigger: float | None = None,
                    offset: float | None = None, time_in_force: TimeInForce | str | None = None,
                    post_only: bool = False, reduce_only: bool = False,
                    params: dict[str, str | int | float | bool] | None = None) -> NewOrder:
    """A NewOrder from loose fields (a Signal's, or another strategy API's such as MLThon's):
    each field goes only to the order types that take it. ``offset`` is the trailing offset
    (price units, TRAILING_STOP) or basis points (TRAILING_STOP_PERCENT); ``trigger`` is also a
    trailing stop's activation price."""
    kind = OrderType(order_type)
    fields: dict[str, Any] = {}
    if kind in _PRICED:
        fields["price"] = price
    if kind in _TRIGGERED or (kind in _TRAILING and trigger):
        fields["trigger_price"] = trigger
    if kind is OrderType.TRAILING_STOP:
        fields["trailing_offset"] = offset
    elif kind is OrderType.TRAILING_STOP_PERCENT:
        fields["trailing_bps"] = offset
    tif = TimeInForce.GTC if kind in _TRAILING else TimeInForce(time_in_force or "GTC")
    return NewOrder(client_order_id=client_order_id, strategy=strategy, venue=venue, symbol=symbol, side=Side(side),
                    order_type=kind, qty=qty, time_in_force=tif, post_only=bool(post_only) and kind is OrderType.LIMIT,
                    reduce_only=bool(reduce_only), params=dict(params or {}), ts_init=ts_init, **fields)


def cancel_order(*, client_order_id: str, strategy: str, venue: str, symbol: str, ts_init: int,
                 exchange_order_id: str | None = None) -> CancelOrder:
    """Cancel one order (a "cancel" Signal's ``order_id`` resolved to its client order id)."""
    return CancelOrder(client_order_id=client_order_id, exchange_order_id=exchange_order_id, strategy=strategy,
                       venue=venue, symbol=symbol, ts_init=ts_init)


def cancel_all(sig: Any, *, strategy: str, venue: str, ts_init: int) -> CancelAll:
    """Cancel every open order of ``strategy`` (in the signal's symbol when it names one)."""
    return CancelAll(strategy=strategy, venue=venue, symbol=None if sig.symbol is None else sig.symbol.name,
                     ts_init=ts_init)


def modify_order(sig: Any, *, client_order_id: str, strategy: str, venue: str, symbol: str,
                 ts_init: int) -> ModifyOrder:
    """A "modify" Signal: a 0 price or quantity keeps the order's own."""
    return ModifyOrder(client_order_id=client_order_id, strategy=strategy, venue=venue, symbol=symbol,
                       new_price=sig.price or None, new_qty=sig.quantity or None, ts_init=ts_init)
