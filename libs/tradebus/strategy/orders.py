"""The orders a Runner sent: an OrderRecord each, an index of the open ones, and a bounded
memory of the closed ones (a runner that trades for days must not keep every order it ever sent,
nor look through all of them for a strategy's open orders on every trade)."""
from __future__ import annotations

from dataclasses import dataclass, field

from tradebus.engine.event import Order, Strategy

from .symbols import Symbol

__all__ = ["OrderRecord", "OrderRecords", "KEEP_CLOSED"]

_OPEN = ("new", "acked", "partially_filled")
KEEP_CLOSED = 2_000
"""Closed orders a runner remembers (the most recent), for late or repeated events about them."""


@dataclass
class OrderRecord:
    """What the runner knows of one order it sent (from the signal and the events back)."""

    order_id: int
    strategy: Strategy
    symbol: Symbol
    side: str
    order_type: str
    qty: float
    price: float
    trigger: float
    offset: float
    flags: int
    time_in_force: str
    ts_ns: int
    status: str = "new"
    filled: float = 0.0
    notional: float = 0.0
    reason: str = ""
    exchange_order_id: str | None = None
    trade_ids: set = field(default_factory=set)

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled > 0 else 0.0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    def snapshot(self) -> Order:
        return Order(self.order_id, self.symbol, self.side, self.order_type, self.qty, self.price,
                     self.trigger, self.offset, self.filled, self.avg_price, self.status,
                     self.time_in_force, self.flags, self.ts_ns, self.reason)


class OrderRecords(dict[int, OrderRecord]):
    """order id -> OrderRecord of every open order and of the ``keep_closed`` most recently
    closed ones (older ones are forgotten: an event about them is one for an unknown order).
    Call ``changed(record)`` after a record's status changes."""

    def __init__(self, keep_closed: int = KEEP_CLOSED):
        super().__init__()
        if keep_closed < 0:
            raise ValueError(f"keep_closed must be >= 0, got {keep_closed!r}")
        self.keep_closed = keep_closed
        self._open: dict[int, OrderRecord] = {}
        self._closed: dict[int, None] = {}            # insertion-ordered: oldest first

    def add(self, record: OrderRecord) -> None:
        self[record.order_id] = record
        self._open[record.order_id] = record

    def discard(self, order_id: int) -> None:
        self.pop(order_id, None)
        self._open.pop(order_id, None)
        self._closed.pop(order_id, None)

    def changed(self, record: OrderRecord) -> None:
        oid = record.order_id
        if record.is_open:
            self._open[oid] = record
            self._closed.pop(oid, None)
            return
        if self._open.pop(oid, None) is None:
            return
        self._closed[oid] = None
        while len(self._closed) > self.keep_closed:
            old = next(iter(self._closed))
            del self._closed[old]
            self.pop(old, None)

    def open(self, strategy: Strategy | None = None, symbol: Symbol | None = None) -> list[OrderRecord]:
        """The open orders (of ``strategy``, in ``symbol``), oldest first."""
        return [r for r in list(self._open.values())
                if (strategy is None or r.strategy is strategy) and (symbol is None or r.symbol is symbol)]
