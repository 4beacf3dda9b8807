"""Order events, published by the order router on ``ord.evt.<venue>.<strategy>``."""
from __future__ import annotations

import enum

from .base import Event, Liquidity, OrderState, OrderType, Side

__all__ = [
    "RejectCode",
    "CancelCode",
    "OrderAck",
    "OrderReject",
    "CancelAck",
    "CancelReject",
    "CancelAllAck",
    "CancelAllReject",
    "ModifyAck",
    "ModifyReject",
    "OrderCancelled",
    "Fill",
    "OrderStatus",
    "UnsupportedOp",
    "OrderEvent",
]


class RejectCode(enum.StrEnum):
    """Unified reason a request was refused, whatever the venue said (MLThon's GtwRejectCode)."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_ORDER = "invalid_order"
    ORDER_NOT_FOUND = "order_not_found"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    EXCHANGE_UNAVAILABLE = "exchange_unavailable"
    NETWORK_ERROR = "network_error"
    RISK_LIMIT = "risk_limit"
    KILL_SWITCH = "kill_switch"
    UNSUPPORTED = "unsupported"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"


class CancelCode(enum.StrEnum):
    """Why an order ended cancelled."""

    USER = "user"
    EXPIRED = "expired"
    IOC_FOK_UNFILLED = "ioc_fok_unfilled"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    SELF_TRADE = "self_trade"
    VENUE = "venue"
    RISK = "risk"
    KILL_SWITCH = "kill_switch"
    UNKNOWN = "unknown"


class _OrderEvent(Event, kw_only=True, frozen=True):
    """Fields every order event carries; ``strategy`` is the owner the event is routed to."""

    venue: str
    strategy: str
    ts_event: int = 0
    ts_init: int


class OrderAck(_OrderEvent, tag="ord.ack", kw_only=True, frozen=True):
    """The venue accepted a NewOrder."""

    symbol: str
    client_order_id: str
    exchange_order_id: str
    side: Side
    order_type: OrderType
    qty: float
    price: float | None = None
    trigger_price: float | None = None


class OrderReject(_OrderEvent, tag="ord.reject", kw_only=True, frozen=True):
    """A NewOrder was refused, by the router (risk, rate limit, validation) or the venue."""

    symbol: str
    client_order_id: str
    reject_code: RejectCode
    reason: str = ""


class CancelAck(_OrderEvent, tag="ord.cancel_ack", kw_only=True, frozen=True):
    """A CancelOrder was accepted; OrderCancelled follows when the order is gone."""

    symbol: str
    client_order_id: str
    exchange_order_id: str | None = None


class CancelReject(_OrderEvent, tag="ord.cancel_reject", kw_only=True, frozen=True):
    """A CancelOrder was refused (ORDER_NOT_FOUND when it already filled or ended)."""

    symbol: str
    client_order_id: str
    reject_code: RejectCode
    reason: str = ""


class CancelAllAck(_OrderEvent, tag="ord.cancel_all_ack", kw_only=True, frozen=True):
    """A CancelAll was carried out; ``count`` orders were asked to cancel."""

    symbol: str | None = None
    count: int = 0


class CancelAllReject(_OrderEvent, tag="ord.cancel_all_reject", kw_only=True, frozen=True):
    """A CancelAll was refused."""

    symbol: str | None = None
    reject_code: RejectCode
    reason: str = ""


class ModifyAck(_OrderEvent, tag="ord.modify_ack", kw_only=True, frozen=True):
    """A ModifyOrder was accepted; price and qty are the order's values afterwards."""

    symbol: str
    client_order_id: str
    exchange_order_id: str | None = None
    price: float | None = None
    qty: float | None = None


class ModifyReject(_OrderEvent, tag="ord.modify_reject", kw_only=True, frozen=True):
    """A ModifyOrder was refused; the order is unchanged."""

    symbol: str
    client_order_id: str
    reject_code: RejectCode
    reason: str = ""


class OrderCancelled(_OrderEvent, tag="ord.cancelled", kw_only=True, frozen=True):
    """An order left the book without filling completely.

    ``unsolicited`` is True when the strategy did not ask for it (expiry, IOC remainder,
    self-trade prevention, venue or risk action); ``cum_qty`` is what filled before.
    """

    symbol: str
    client_order_id: str
    exchange_order_id: str | None = None
    unsolicited: bool = False
    cancel_code: CancelCode = CancelCode.USER
    reason: str = ""
    cum_qty: float = 0.0


class Fill(_OrderEvent, tag="ord.fill", kw_only=True, frozen=True):
    """One execution of an order; ``ts_event`` is the execution time (also ``ts_exec``).

    ``qty`` is this execution, ``cum_qty`` the order's total so far and ``leaves_qty`` what is
    still open; ``fee`` is in ``fee_currency`` (negative for a rebate).
    """

    symbol: str
    client_order_id: str
    exchange_order_id: str
    trade_id: str
    side: Side
    price: float
    qty: float
    leaves_qty: float
    cum_qty: float
    fee: float = 0.0
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.UNKNOWN

    @property
    def ts_exec(self) -> int:
        """Execution time in ns (the venue's ``ts_event``)."""
        return self.ts_event


class OrderStatus(_OrderEvent, tag="ord.status", kw_only=True, frozen=True):
    """Full state of one order: the answer to a status query and the reconciled view."""

    symbol: str
    client_order_id: str
    exchange_order_id: str | None = None
    side: Side
    order_type: OrderType
    status: OrderState
    qty: float
    price: float | None = None
    filled_qty: float = 0.0
    avg_price: float = 0.0
    leaves_qty: float = 0.0
    trade_ids: tuple[str, ...] = ()
    """Venue trade ids of the executions counted in ``filled_qty`` (empty where fills are counted
    from the venue's cumulative quantity)."""
    fees: dict[str, float] = {}
    """Fees charged so far, by currency (as the venue charged them; negative for a rebate)."""


class UnsupportedOp(_OrderEvent, tag="ord.unsupported", kw_only=True, frozen=True):
    """The venue adapter cannot do ``op`` (an order type or operation); nothing was sent."""

    op: str
    reason: str = ""
    symbol: str | None = None
    client_order_id: str | None = None


OrderEvent = (
    OrderAck
    | OrderReject
    | CancelAck
    | CancelReject
    | CancelAllAck
    | CancelAllReject
    | ModifyAck
    | ModifyReject
    | OrderCancelled
    | Fill
    | OrderStatus
    | UnsupportedOp
)
"""Everything published under ``ord.evt.>``."""
