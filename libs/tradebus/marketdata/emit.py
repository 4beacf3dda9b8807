"""Event sequences shared by live feeds and replay, so both publish the same events."""
from __future__ import annotations

import time
from typing import Any

from tradebus.proto import Bar, BookSnapshot, FeedStatus, Trade, TradeBatch
from tradebus.proto.base import MdKind
from tradebus.proto.market import FeedState

from .book import delta_between, diff_levels

__all__ = ["BookEmitter", "BarCloser", "trade_events", "status"]


def status(venue: str, symbol: str, stream: MdKind | None, state: FeedState, reason: str = "",
           ts: int = 0) -> FeedStatus:
    return FeedStatus(venue=venue, symbol=symbol, stream=stream, state=state, reason=reason,
                      ts_init=ts or time.time_ns())


class BookEmitter:
    """Turns consecutive top-N snapshots into SnapshotStart, BookSnapshot, SnapshotEnd, then
    BookDelta + BookSnapshot per change (nothing when the top N did not change)."""

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue, self.symbol = venue, symbol
        self.prev: BookSnapshot | None = None
        self.started = False

    def start(self, ts: int = 0) -> list[Any]:
        """A (re)subscription: consumers drop their book until SnapshotEnd."""
        self.prev, self.started = None, True
        return [status(self.venue, self.symbol, MdKind.BOOK, FeedState.SNAPSHOT_START, ts=ts)]

    def on_snapshot(self, snap: BookSnapshot) -> list[Any]:
        out: list[Any] = [] if self.started else self.start(snap.ts_recv)
        prev = self.prev
        if prev is None:
            out += [snap, status(self.venue, self.symbol, MdKind.BOOK, FeedState.SNAPSHOT_END, ts=snap.ts_recv)]
        else:
            if not diff_levels(prev, snap):
                return out
            out += [delta_between(prev, snap), snap]
        self.prev = snap
        return out


class BarCloser:
    """Marks bars closed: a forming bar is re-published with ``closed=True`` once a later bar opens."""

    def __init__(self) -> None:
        self.last: Bar | None = None

    def on_bar(self, bar: Bar) -> list[Bar]:
        out: list[Bar] = []
        last = self.last
        if last is not None and bar.ts_open > last.ts_open and not last.closed:
            out.append(_closed(last))
        if last is not None and bar.ts_open < last.ts_open:
            return out  # a late update of an already closed bar
        out.append(bar)
        self.last = bar
        return out


def _closed(bar: Bar) -> Bar:
    import msgspec
    return msgspec.structs.replace(bar, closed=True)


def trade_events(trades: list[Trade], max_batch: int = 1000) -> list[Trade | TradeBatch]:
    """One Trade for a lone print, TradeBatch chunks when many arrive at once."""
    if len(trades) <= 1:
        return list(trades)
    return [TradeBatch.from_trades(trades[i:i + max_batch]) for i in range(0, len(trades), max_batch)]
