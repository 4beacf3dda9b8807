"""Order books: ccxt's book -> top-N BookSnapshot and BookDelta; a crossed book resubscribes."""
from __future__ import annotations

import time

from tradebus.marketdata import parse
from tradebus.marketdata.book import is_crossed
from tradebus.marketdata.emit import BookEmitter

from ..watch import PARSE_ERRORS, RESYNC, Resync, StreamHandler


class Book(StreamHandler):
    stream = "book"

    async def subscribe(self) -> None:
        await super().subscribe()
        for symbol in self.symbols:  # new, or starting over after an error: SnapshotStart first
            if symbol not in self.group.state:
                emitter = self.group.state[symbol] = BookEmitter(self.feed.venue, symbol)
                for event in emitter.start():
                    await self.feed.publish(event)

    async def receive(self) -> bool:
        ex = self.feed.exchange
        if self.grouped:
            book = await ex.watch_order_book_for_symbols(self.symbols)  # the one book that changed
            symbol = book.get("symbol")
        else:
            symbol = self.symbols[0]
            book = await ex.watch_order_book(symbol)
        recv = time.time_ns()
        emitter = self.group.state.get(symbol) if symbol in self.wanted else None
        if emitter is None:
            return False
        good = await self.publish_book(symbol, book, emitter, recv)
        await self.publish_unseen()
        return good

    async def publish_book(self, symbol: str, book, emitter: BookEmitter, recv: int) -> bool:
        """A ccxt order book -> BookSnapshot / BookDelta events (False: it did not parse, skipped);
        Resync when it crosses. The book version handled is recorded in the group's nonces."""
        feed = self.feed
        self.group.nonces[symbol] = book.get("nonce")
        try:
            snap = parse.book_snapshot(feed.venue, symbol, book, feed.settings.book_depth, recv)
        except PARSE_ERRORS as exc:
            feed.bad("book", f"{exc!r}")
            return False
        if is_crossed(snap):
            feed.bad("book", f"crossed book {snap.bids[0]} >= {snap.asks[0]} at {snap.sequence}")
            raise Resync(f"crossed book at sequence {snap.sequence}", symbol)
        for event in emitter.on_snapshot(snap):
            await feed.publish(event)
        feed.counters["events.book"] += 1
        return True

    async def publish_unseen(self) -> None:
        """Books that changed while no watch was waiting. ccxt.pro wakes only a pending watch, so an
        update landing while the previous one is being published would otherwise wait for the
        symbol's next change (a book at rest would stay stale). Only books already published once
        are caught up; a (re)subscription's first book comes through the watch."""
        books, nonces = self.feed.exchange.orderbooks, self.group.nonces
        for symbol in self.symbols:
            emitter, book = self.group.state.get(symbol), books.get(symbol)
            if emitter is None or book is None or emitter.prev is None:
                continue
            nonce = book.get("nonce")
            if nonce is None or nonce == nonces.get(symbol) or not (book["bids"] and book["asks"]):
                continue
            await self.publish_book(symbol, book, emitter, time.time_ns())

    async def failed(self, exc: Exception) -> tuple[str, list[str]]:
        """A resync of a multi-symbol watch starts over the one book that went wrong where that can
        be told, else every book of the list. The others keep their state: ccxt re-snapshots them
        too, and consumers get a delta."""
        if not (self.grouped and isinstance(exc, RESYNC)):
            return await super().failed(exc)
        symbols = self.symbols
        named = getattr(exc, "symbol", None)
        dropped = [s for s in symbols if s not in self.feed.exchange.orderbooks]  # ccxt drops a book it gave up on
        if named in symbols:
            affected = [named]
        else:
            affected = dropped or symbols
        if named in symbols or not dropped:
            # ccxt still holds the wrong book: unsubscribe the list, so watching it again re-snapshots
            await self.feed.unsubscribe.symbols("book", symbols)
        return "resync", affected
