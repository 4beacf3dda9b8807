"""Price-level deltas between consecutive book snapshots, and the book a consumer rebuilds from them."""
from __future__ import annotations

from tradebus.engine.event import OrderBook
from tradebus.proto import BookDelta, BookSnapshot
from tradebus.proto.market import BookAction, BookSide, LevelChange

__all__ = ["diff_levels", "delta_between", "LevelBook", "is_crossed"]


def _side_changes(side: BookSide, old: list[tuple[float, float]], new: list[tuple[float, float]],
                  out: list[LevelChange]) -> None:
    before = dict(old)
    after = dict(new)
    for price, qty in new:
        prev = before.get(price)
        if prev is None:
            out.append(LevelChange(side, price, qty, BookAction.ADD))
        elif prev != qty:
            out.append(LevelChange(side, price, qty, BookAction.MODIFY))
    for price, _ in old:
        if price not in after:
            out.append(LevelChange(side, price, 0.0, BookAction.DELETE))


def diff_levels(old: BookSnapshot | None, new: BookSnapshot) -> list[LevelChange]:
    """Level changes that turn ``old``'s levels into ``new``'s (everything ADDed when old is None)."""
    out: list[LevelChange] = []
    _side_changes(BookSide.BID, old.bids if old else [], new.bids, out)
    _side_changes(BookSide.ASK, old.asks if old else [], new.asks, out)
    return out


def delta_between(old: BookSnapshot, new: BookSnapshot) -> BookDelta:
    """The BookDelta from ``old`` to ``new`` (sequence = new's, first_sequence = old's + 1)."""
    return BookDelta(venue=new.venue, symbol=new.symbol, changes=diff_levels(old, new), sequence=new.sequence,
                     first_sequence=old.sequence + 1 if old.sequence else 0, ts_event=new.ts_event,
                     ts_recv=new.ts_recv)


def is_crossed(snap: BookSnapshot) -> bool:
    return bool(snap.bids and snap.asks and snap.bids[0][0] >= snap.asks[0][0])


class LevelBook:
    """A consumer's price-level book: reset from a BookSnapshot, then apply BookDeltas.

    The levels live in the engine's compiled ``OrderBook`` (the one price-level book of tradebus,
    also behind strategies' ``ctx.book``); this adds the bus side: snapshots, deltas, sequence.
    """

    def __init__(self) -> None:
        self.levels = OrderBook()
        self.sequence = 0

    def reset(self, snap: BookSnapshot) -> None:
        self.levels.set_snapshot(snap.bids, snap.asks)
        self.sequence = snap.sequence

    def clear(self) -> None:
        self.levels.reset()
        self.sequence = 0

    def set_level(self, is_bid: bool, price: float, qty: float) -> None:
        """One level; qty 0 removes it."""
        self.levels.update(bool(is_bid), price, qty)

    def apply(self, delta: BookDelta) -> None:
        update = self.levels.update
        for ch in delta.changes:
            update(ch.side == BookSide.BID, ch.price, 0.0 if ch.action == BookAction.DELETE else ch.qty)
        self.sequence = delta.sequence

    def top(self, n: int = 0) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best ``n`` levels of each side, best first (0: all)."""
        depth = n or None
        return self.levels.bids(depth), self.levels.asks(depth)
