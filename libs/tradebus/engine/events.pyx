"""Objects handed to a strategy's callbacks and the order vocabulary: TradeEvent, BarEvent,
Fill, Order, Signal, OrderError, ORDER_TYPES, ORDER_STATES, TIME_IN_FORCE (re-exported by
:mod:`tradebus.engine.event`).

Objects handed to callbacks are reused between events where that saves an allocation per event
(the trade and bar objects of a backtest): read their fields in the callback, copy what you keep.
"""
from libc.stdint cimport int64_t

__all__ = [
    "TradeEvent", "BarEvent", "Fill", "Order", "Signal", "OrderError", "ORDER_TYPES", "ORDER_STATES",
    "TIME_IN_FORCE", "SIDES", "POST_ONLY", "REDUCE_ONLY",
]

ORDER_TYPES = (
    "market", "limit", "stop_market", "stop_limit", "take_profit_market", "take_profit_limit",
    "trailing_stop", "trailing_stop_percent", "close_position", "cancel", "cancel_all", "modify",
)
ORDER_STATES = ("new", "acked", "partially_filled", "filled", "cancelled", "rejected", "expired")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
SIDES = ("buy", "sell")
POST_ONLY = FLAG_POST_ONLY
REDUCE_ONLY = FLAG_REDUCE_ONLY


class OrderError(Exception):
    """An order the venue (or router) refused, or a request on an order that failed.

    ``code`` is a tradebus.proto RejectCode value (or a cancel code); ``order_id`` the strategy's
    order id, None for requests not about one order (cancel_all).
    """

    def __init__(self, message, code="unknown", order_id=None, symbol=None):
        super().__init__(message)
        self.code = code
        self.order_id = order_id
        self.symbol = symbol




cdef class TradeEvent:
    """A public trade: ``price``, ``qty``, ``is_buy`` (the aggressor bought), ``side``,
    ``ts_ns``, ``symbol``, ``trade_id``. In a backtest one object is reused for every trade."""

    def __init__(self, symbol=None, double price=0.0, double qty=0.0, bint is_buy=True,
                 int64_t ts_ns=0, trade_id=None):
        self.symbol = symbol
        self.price = price
        self.qty = qty
        self.is_buy = is_buy
        self.ts_ns = ts_ns
        self.trade_id = trade_id

    @property
    def side(self):
        """Aggressor side: "buy" or "sell"."""
        return "buy" if self.is_buy else "sell"

    @property
    def quantity(self):
        """FLOX's name of ``qty``."""
        return self.qty

    def __repr__(self):
        return f"TradeEvent({self.symbol}, {self.side} {self.qty} @ {self.price}, ts={self.ts_ns})"


cdef class BarEvent:
    """An OHLCV bar stamped with its open time ``ts_ns``. Reused between bars in a backtest."""

    def __init__(self, symbol=None, int64_t ts_ns=0, double open=0.0, double high=0.0,
                 double low=0.0, double close=0.0, double volume=0.0):
        self.symbol = symbol
        self.ts_ns = ts_ns
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    def __repr__(self):
        return (f"BarEvent({self.symbol}, ts={self.ts_ns}, o={self.open} h={self.high} "
                f"l={self.low} c={self.close} v={self.volume})")


cdef class Fill:
    """One execution of one of the strategy's orders."""

    def __init__(self, int64_t order_id, symbol, str side, double price, double qty, double fee=0.0,
                 int64_t ts_ns=0, bint is_maker=False, double position=0.0, double leaves_qty=0.0,
                 str order_type="market", trade_id=None):
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.price = price
        self.qty = qty
        self.fee = fee
        self.ts_ns = ts_ns
        self.is_maker = is_maker
        self.position = position
        self.leaves_qty = leaves_qty
        self.order_type = order_type
        self.trade_id = trade_id

    def __repr__(self):
        return (f"Fill(order {self.order_id} {self.symbol} {self.side} {self.qty} @ {self.price}, "
                f"fee={self.fee}, position={self.position}, ts={self.ts_ns})")


cdef class Order:
    """A snapshot of one order: id, symbol, side, order_type, qty, price (limit, 0 if none),
    trigger, offset (trailing), filled, avg_price, status, time_in_force, flags, ts_ns, reason."""

    def __init__(self, int64_t id, symbol, str side, str order_type, double qty, double price=0.0,
                 double trigger=0.0, double offset=0.0, double filled=0.0, double avg_price=0.0,
                 str status="new", str time_in_force="GTC", int flags=0, int64_t ts_ns=0,
                 str reason=""):
        self.id = id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.qty = qty
        self.price = price
        self.trigger = trigger
        self.offset = offset
        self.filled = filled
        self.avg_price = avg_price
        self.status = status
        self.time_in_force = time_in_force
        self.flags = flags
        self.ts_ns = ts_ns
        self.reason = reason

    @property
    def post_only(self):
        return bool(self.flags & FLAG_POST_ONLY)

    @property
    def reduce_only(self):
        return bool(self.flags & FLAG_REDUCE_ONLY)

    @property
    def leaves_qty(self):
        return max(self.qty - self.filled, 0.0) if self.status in ("new", "acked", "partially_filled") else 0.0

    def __repr__(self):
        return (f"Order({self.id} {self.symbol} {self.side} {self.order_type} {self.qty}"
                f"{' @ ' + str(self.price) if self.price else ''}, {self.status}, filled={self.filled})")


cdef class Signal:
    """What an order method asks for, as handed to a Runner's ``on_signal``.

    side "buy"/"sell" ("" for cancel/cancel_all/modify); order_type one of ORDER_TYPES;
    quantity; price (limit price, or the new price of a modify; 0 when unused); trigger (stop
    and take-profit trigger, trailing activation; 0 when unused); offset (trailing: price offset,
    or basis points for trailing_stop_percent); order_id (the new order's id, or the order a
    cancel/modify is about; 0 for cancel_all); symbol (None for a cancel_all of every symbol);
    flags (POST_ONLY | REDUCE_ONLY); time_in_force; ts_ns; strategy. FLOX's names read the same
    values: trigger_price, trailing_offset, trailing_bps.
    """

    @property
    def post_only(self):
        return bool(self.flags & FLAG_POST_ONLY)

    @property
    def reduce_only(self):
        return bool(self.flags & FLAG_REDUCE_ONLY)

    # FLOX's field names (and those of tradebus.proto.NewOrder)
    @property
    def trigger_price(self):
        """``trigger`` (0 when unused)."""
        return self.trigger

    @property
    def trailing_offset(self):
        """A trailing stop's offset in price units (0 for other types)."""
        return self.offset if self.order_type == "trailing_stop" else 0.0

    @property
    def trailing_bps(self):
        """A percent trailing stop's offset in basis points (0 for other types)."""
        return self.offset if self.order_type == "trailing_stop_percent" else 0.0

    def as_dict(self):
        return {
            "side": self.side, "order_type": self.order_type, "quantity": self.quantity,
            "price": self.price, "trigger": self.trigger, "offset": self.offset,
            "order_id": self.order_id, "symbol": self.symbol, "flags": self.flags,
            "time_in_force": self.time_in_force, "ts_ns": self.ts_ns,
        }

    def __repr__(self):
        parts = [f"{self.order_type}", f"id={self.order_id}"]
        if self.side:
            parts.append(self.side)
        if self.quantity:
            parts.append(f"qty={self.quantity}")
        if self.price:
            parts.append(f"price={self.price}")
        if self.trigger:
            parts.append(f"trigger={self.trigger}")
        if self.offset:
            parts.append(f"offset={self.offset}")
        if self.flags:
            parts.append(f"flags={self.flags}")
        return f"Signal({self.symbol}, {' '.join(parts)})"


cdef Signal make_signal(str side, int otype, double qty, double price, double trigger, double offset,
                        int64_t order_id, object symbol, int flags, int tif, int64_t ts_ns,
                        object strategy):
    cdef Signal s = Signal.__new__(Signal)
    s.side = side
    s.order_type = ORDER_TYPES[otype]
    s.quantity = qty
    s.price = price
    s.trigger = trigger
    s.offset = offset
    s.order_id = order_id
    s.symbol = symbol
    s.flags = flags
    s.time_in_force = TIME_IN_FORCE[tif]
    s.ts_ns = ts_ns
    s.strategy = strategy
    return s
