"""Order requests, sent by strategies to the venue's order router on ``ord.req.<venue>.<strategy>``."""
from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec

from .base import OrderType, Request, Side, TimeInForce

__all__ = [
    "CLIENT_ORDER_ID_PATTERN",
    "ClientOrderId",
    "is_client_order_id",
    "NewOrder",
    "CancelOrder",
    "CancelAll",
    "ModifyOrder",
    "OrderRequest",
]

CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_CLIENT_ORDER_ID = re.compile(CLIENT_ORDER_ID_PATTERN)

# Letters, digits, '_' and '-' only, so the id is also a valid NATS token, KV key and
# Nats-Msg-Id; venues with stricter rules get it translated by their adapter.
ClientOrderId = Annotated[str, msgspec.Meta(pattern=CLIENT_ORDER_ID_PATTERN)]

_NEEDS_PRICE = {OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
_NEEDS_TRIGGER = {
    OrderType.STOP_MARKET,
    OrderType.STOP_LIMIT,
    OrderType.TAKE_PROFIT_MARKET,
    OrderType.TAKE_PROFIT_LIMIT,
}
_TRAILING = {OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_PERCENT}


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def is_client_order_id(value: object) -> bool:
    """Whether ``value`` is a valid client order id (the one rule: ``CLIENT_ORDER_ID_PATTERN``)."""
    return isinstance(value, str) and _CLIENT_ORDER_ID.fullmatch(value) is not None


def _check_client_order_id(name: str, value: str) -> None:
    if not is_client_order_id(value):
        raise ValueError(f"{name} must be 1-64 of [A-Za-z0-9_-], got {value!r}")


class NewOrder(Request, tag="ord.new", kw_only=True, frozen=True):
    """Place an order.

    Which price fields an order type needs (a missing one, or one the type does not use, is
    rejected when the request is built or decoded):

    ========================  =====  =============  ===========================
    order_type                price  trigger_price  trailing
    ========================  =====  =============  ===========================
    MARKET, CLOSE_POSITION    -      -              -
    LIMIT                     yes    -              -
    STOP_MARKET               -      yes            -
    STOP_LIMIT                yes    yes            -
    TAKE_PROFIT_MARKET        -      yes            -
    TAKE_PROFIT_LIMIT         yes    yes            -
    TRAILING_STOP             -      optional       trailing_offset (price units)
    TRAILING_STOP_PERCENT     -      optional       trailing_bps (basis points)
    ========================  =====  =============  ===========================

    On trailing stops ``trigger_price`` is the activation price. ``qty`` must be > 0, except on
    CLOSE_POSITION where 0 means "the whole position". ``post_only`` needs a GTC LIMIT order.
    ``params`` carries venue-specific extras the router passes through (e.g. ``triggerBy``).
    """

    client_order_id: ClientOrderId
    strategy: str
    venue: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Annotated[float, msgspec.Meta(ge=0)]
    price: Annotated[float, msgspec.Meta(gt=0)] | None = None
    trigger_price: Annotated[float, msgspec.Meta(gt=0)] | None = None
    trailing_offset: Annotated[float, msgspec.Meta(gt=0)] | None = None
    trailing_bps: Annotated[float, msgspec.Meta(gt=0)] | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    params: dict[str, str | int | float | bool] = {}
    ts_init: int

    def __post_init__(self) -> None:
        # Decoding already yields enums; this lets callers pass plain strings ("limit").
        for name, enum_type in (("side", Side), ("order_type", OrderType), ("time_in_force", TimeInForce)):
            value = getattr(self, name)
            if not isinstance(value, enum_type):
                msgspec.structs.force_setattr(self, name, enum_type(value))
        _check_client_order_id("client_order_id", self.client_order_id)
        kind = self.order_type
        what = f"{kind.name} order {self.client_order_id}"
        if kind is OrderType.CLOSE_POSITION:
            if not (math.isfinite(self.qty) and self.qty >= 0):
                raise ValueError(f"{what}: qty must be >= 0 (0 = whole position), got {self.qty!r}")
        else:
            _positive(f"{what}: qty", self.qty)
        for name in ("price", "trigger_price", "trailing_offset", "trailing_bps"):
            _positive(f"{what}: {name}", getattr(self, name))

        if kind in _NEEDS_PRICE and self.price is None:
            raise ValueError(f"{what} needs a price")
        if kind not in _NEEDS_PRICE and self.price is not None:
            raise ValueError(f"{what} takes no price (got {self.price!r})")
        if kind in _NEEDS_TRIGGER and self.trigger_price is None:
            raise ValueError(f"{what} needs a trigger_price")
        if kind not in _NEEDS_TRIGGER | _TRAILING and self.trigger_price is not None:
            raise ValueError(f"{what} takes no trigger_price (got {self.trigger_price!r})")
        if (kind is OrderType.TRAILING_STOP) != (self.trailing_offset is not None):
            raise ValueError(f"trailing_offset is required by TRAILING_STOP and only by it ({what})")
        if (kind is OrderType.TRAILING_STOP_PERCENT) != (self.trailing_bps is not None):
            raise ValueError(
                f"trailing_bps is required by TRAILING_STOP_PERCENT and only by it ({what})"
            )
        if self.post_only and (kind is not OrderType.LIMIT or self.time_in_force is not TimeInForce.GTC):
            raise ValueError(f"{what}: post_only needs a GTC LIMIT order")


class CancelOrder(Request, tag="ord.cancel", kw_only=True, frozen=True):
    """Cancel one order by its client order id (plus the exchange id when known).

    The CancelAck only acknowledges the request; OrderCancelled reports the cancellation.
    """

    client_order_id: ClientOrderId
    exchange_order_id: str | None = None
    strategy: str
    venue: str
    symbol: str
    ts_init: int

    def __post_init__(self) -> None:
        _check_client_order_id("client_order_id", self.client_order_id)


class CancelAll(Request, tag="ord.cancel_all", kw_only=True, frozen=True):
    """Cancel the strategy's open orders on ``symbol``, or on every symbol when None."""

    strategy: str
    venue: str
    symbol: str | None = None
    ts_init: int


class ModifyOrder(Request, tag="ord.modify", kw_only=True, frozen=True):
    """Change the price and/or quantity of an open order (at least one of them)."""

    client_order_id: ClientOrderId
    exchange_order_id: str | None = None
    strategy: str
    venue: str
    symbol: str
    new_price: Annotated[float, msgspec.Meta(gt=0)] | None = None
    new_qty: Annotated[float, msgspec.Meta(gt=0)] | None = None
    ts_init: int

    def __post_init__(self) -> None:
        _check_client_order_id("client_order_id", self.client_order_id)
        if self.new_price is None and self.new_qty is None:
            raise ValueError(f"ModifyOrder {self.client_order_id} needs new_price and/or new_qty")
        _positive("new_price", self.new_price)
        _positive("new_qty", self.new_qty)


OrderRequest = NewOrder | CancelOrder | CancelAll | ModifyOrder
"""Everything published under ``ord.req.>``."""
