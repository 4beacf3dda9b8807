"""The one watch loop every market-data stream runs, and the base of the per-stream handlers.

A handler watches one stream (trades, book, bbo, bars or funding) of one symbol, or of the
symbols of one market type that share the venue's multi-symbol watch. :func:`run_watch` does
what is common to all: subscribe, receive, reset the backoff after a good message, and on an
error count it, publish Disconnected for the symbols it hit, back off and subscribe again.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import ccxt

from tradebus.marketdata.emit import status
from tradebus.proto.base import MdKind
from tradebus.proto.market import FeedState
from tradebus.retry import Backoff

if TYPE_CHECKING:
    from .feed import VenueFeed

log = logging.getLogger("tradebus.market_data")

__all__ = ["KIND", "PARSE_ERRORS", "Resync", "StreamEnd", "StreamGroup", "StreamHandler", "run_watch",
           "report_failure", "disconnected"]

KIND = {"trades": MdKind.TRADE, "book": MdKind.BOOK, "bbo": MdKind.BBO, "bars": MdKind.BAR,
        "funding": MdKind.FUNDING}
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)


class Resync(Exception):
    """The stream's state is wrong (crossed book): drop it and subscribe again."""

    def __init__(self, message: str, symbol: str | None = None) -> None:
        super().__init__(message)
        self.symbol = symbol


RESYNC = (ccxt.ChecksumError, ccxt.InvalidNonce, Resync)


class StreamEnd(Exception):
    """The stream has nothing to watch (funding of a spot market): the loop ends quietly."""


class StreamGroup:
    """The symbols of one stream that share the venue's multi-symbol watch (one loop per market type)."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.symbols: set[str] = set()
        self.task: asyncio.Task | None = None
        self.subscribed: dict[str, list[str]] = {}  # market type -> the list last watched, to un_watch it
        self.state: dict[str, Any] = {}  # per symbol: BookEmitter / last BBO top / BarCloser, kept on regroups
        self.connected: set[str] = set()
        self.nonces: dict[str, Any] = {}  # book streams: the ccxt nonce last published per symbol


class StreamHandler:
    """One stream of ``symbols``: through the venue's multi-symbol watch when ``group`` is given
    (its state outlives the handler), else one symbol's own watch with private state."""

    stream = ""

    def __init__(self, feed: VenueFeed, symbols: list[str], group: StreamGroup | None = None,
                 market_type: str = "") -> None:
        self.feed, self.symbols, self.market_type = feed, symbols, market_type
        self.grouped = group is not None
        self.group = group if group is not None else StreamGroup(self.stream)
        self.wanted = set(symbols)

    @property
    def kind(self) -> MdKind:
        return KIND[self.stream]

    async def subscribe(self) -> None:
        """Before each (re)subscription. A symbol's own watch first checks the venue lists the
        symbol (and publishes its Instrument the first time); a grouped one records its list."""
        if self.grouped:
            self.group.subscribed[self.market_type] = self.symbols
        else:
            await self.feed.check_listed(self.symbols[0])

    async def receive(self) -> bool:
        """Wait for the venue's next message and publish its events; True when it was good."""
        raise NotImplementedError

    async def close(self) -> None:
        """After the subscription ended (error or cancellation)."""

    async def failed(self, exc: Exception) -> tuple[str, list[str]]:
        """What an error means: the counter (``errors``/``resync``) and the symbols it hit, after
        undoing what must be (a resync unsubscribes, so the next watch starts from a snapshot)."""
        if self.grouped:
            return "errors", self.symbols
        if isinstance(exc, RESYNC):
            await self.feed.unsubscribe.symbol(self.symbols[0], self.stream)
            return "resync", self.symbols
        if isinstance(exc, ccxt.BadSymbol):
            self.feed.instruments_sent.clear()
        return "errors", self.symbols

    async def connected(self, symbol: str) -> None:
        """Connected, once per symbol and subscription, before its first event."""
        if symbol not in self.group.connected:
            self.group.connected.add(symbol)
            self.feed.counters[f"connected.{self.kind}"] += 1
            await self.feed.publish(status(self.feed.venue, symbol, self.kind, FeedState.CONNECTED))


async def disconnected(feed: VenueFeed, stream: str, symbols: list[str], reason: str,
                       group: StreamGroup | None = None, counter: str = "errors", retry: float | None = None) -> None:
    """Count the error and publish Disconnected for ``symbols`` (their state in ``group`` starts over)."""
    feed.counters[f"{counter}.{stream}"] += 1
    log.warning("%s %s %s: %s%s", feed.venue, ",".join(symbols), stream, reason,
                "" if retry is None else f"; retry in {retry:.2f}s")
    for symbol in symbols:
        if group is not None:
            group.state.pop(symbol, None)
            group.connected.discard(symbol)
        await feed.publish(status(feed.venue, symbol, KIND[stream], FeedState.DISCONNECTED, reason))


async def report_failure(feed: VenueFeed, stream: str, symbols: list[str], exc: Exception, backoff: Backoff,
                         group: StreamGroup | None, counter: str = "errors") -> None:
    """Disconnected for ``symbols`` because of ``exc``, then back off."""
    delay = backoff.next()
    await disconnected(feed, stream, symbols, f"{type(exc).__name__}: {exc}"[:500], group, counter, delay)
    await asyncio.sleep(delay)


async def run_watch(handler: StreamHandler) -> None:
    """Subscribe, receive until an error, report it, back off, subscribe again; until cancelled."""
    backoff = Backoff(handler.feed.backoff)
    while True:
        try:
            await handler.subscribe()
            try:
                while True:
                    if await handler.receive():
                        backoff.reset()
            finally:
                await handler.close()
        except asyncio.CancelledError:
            raise
        except StreamEnd:
            return
        except Exception as exc:  # every stream error: report, back off, subscribe again
            counter, symbols = await handler.failed(exc)
            await report_failure(handler.feed, handler.stream, symbols, exc, backoff, handler.group, counter)
