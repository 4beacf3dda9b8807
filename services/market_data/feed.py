"""Live feeds: one ccxt.pro instance per venue, one watch loop per (symbol x stream), or per
(stream x market type) where the venue has a multi-symbol watch.

The pieces: ``exchange`` makes the guarded ccxt.pro instance, ``watch`` holds the one watch loop
(subscribe, backoff, FeedStatus), ``streams`` a handler per stream (trades, book, bbo, bars,
funding), ``subscriptions`` the venue-side unsubscribes. This module decides which loops run:
subscriptions are accepted in one place, :meth:`VenueFeed.add`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt

from tradebus.exchanges.capabilities import check_subscription
from tradebus.marketdata import parse
from tradebus.marketdata.binance_trades import FAST_TRADE_EXCHANGES, TradeTap
from tradebus.retry import Backoff, BackoffSettings

from .exchange import guard_messages, make_exchange
from .settings import VenueSettings
from .streams import HANDLERS
from .subscriptions import Unsubscriber
from .watch import KIND, PARSE_ERRORS, Resync, StreamGroup, disconnected, report_failure, run_watch

log = logging.getLogger("tradebus.market_data")

__all__ = ["VenueFeed", "make_exchange", "guard_messages", "Resync", "StreamGroup", "GROUPED", "KIND"]

Publish = Callable[[Any], Awaitable[None]]

# the venue's multi-symbol watch per stream (``has`` key), used when ``for_symbols`` is on
GROUPED = {"trades": "watchTradesForSymbols", "book": "watchOrderBookForSymbols", "bbo": "watchBidsAsks",
           "bars": "watchOHLCVForSymbols"}


class VenueFeed:
    """Streams of one venue; symbols and streams can be added and removed while running."""

    def __init__(self, settings: VenueSettings, backoff: BackoffSettings, publish: Publish,
                 counters: Counter) -> None:
        self.settings = settings
        self.venue = settings.name
        self.backoff = backoff
        self.publish = publish
        self.counters = counters
        self.bad_logged: dict[str, float] = {}
        on_bad = lambda reason: self.bad("venue_message", reason)  # noqa: E731
        # trades normalised straight from the venue's frames where a normaliser exists (see binance_trades)
        self.tap = TradeTap(on_bad) if settings.fast_trades and settings.exchange in FAST_TRADE_EXCHANGES else None
        self.exchange = make_exchange(settings, on_bad, self.tap)
        self.unsubscribe = Unsubscriber(self.exchange, self.venue, settings.bar_interval, counters)
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}  # per-symbol watches
        self.trade_group = StreamGroup("trades")  # trades through the multi-symbol trade watch
        self.groups: dict[str, StreamGroup] = {}  # book / bbo / bars through multi-symbol watches
        self.instruments_sent: set[str] = set()

    @property
    def group(self) -> set[str]:
        """Symbols whose trades share the multi-symbol trade watch."""
        return self.trade_group.symbols

    def _all_groups(self) -> list[StreamGroup]:
        return [self.trade_group, *self.groups.values()]

    # ---------------------------------------------------------------- control

    def start(self) -> None:
        for symbol in self.settings.symbols:
            self.add(symbol, self.settings.streams)

    def add(self, symbol: str, streams: list[str]) -> list[str]:
        """Accept a subscription to ``symbol``'s ``streams`` (the one place that does); the streams
        that were not running already. UnsupportedSubscription (a ValueError saying what the venue
        can stream) before anything starts if one of them is not possible."""
        for stream in streams:
            if stream not in KIND:
                raise ValueError(f"unknown stream {stream!r}")
        wanted = check_subscription(self.exchange, symbol, streams, self.settings.book_depth,
                                    self.settings.bar_interval)
        if len(wanted) < len(streams):
            log.info("%s %s: no %s for a spot market", self.venue, symbol, sorted(set(streams) - set(wanted)))
        added = []
        for stream in wanted:
            if self._shared(stream):
                group = self.trade_group if stream == "trades" else self.groups.setdefault(stream, StreamGroup(stream))
                if symbol not in group.symbols:
                    group.symbols.add(symbol)
                    self._regroup(group)
                    added.append(stream)
                continue
            key = (symbol, stream)
            if key not in self.tasks or self.tasks[key].done():
                handler = HANDLERS[stream](self, [symbol])
                self.tasks[key] = asyncio.get_running_loop().create_task(
                    run_watch(handler), name=f"md:{self.venue}:{symbol}:{stream}")
                added.append(stream)
        return added

    def _shared(self, stream: str) -> bool:
        """All symbols of ``stream`` through one multi-symbol watch per market type."""
        method = GROUPED.get(stream)
        return bool(method and self.settings.for_symbols and self.exchange.has.get(method))

    def _regroup(self, group: StreamGroup) -> None:
        """Restart ``group`` with its current symbols (the new task un_watches what is no longer wanted)."""
        old = group.task
        if old is not None:
            old.cancel()
        group.task = asyncio.get_running_loop().create_task(
            self._run_group(group, sorted(group.symbols), old), name=f"md:{self.venue}:*:{group.stream}")

    async def remove(self, symbol: str, streams: list[str] | None = None) -> list[str]:
        """Stop publishing ``symbol``'s streams and unsubscribe them at the venue (where ccxt can)."""
        removed = []
        for group in self._all_groups():
            stream = group.stream
            if symbol in group.symbols and (streams is None or stream in streams):
                group.symbols.discard(symbol)
                group.state.pop(symbol, None)
                group.connected.discard(symbol)
                self._regroup(group)
                removed.append(stream)
        for (sym, stream), task in list(self.tasks.items()):
            if sym == symbol and (streams is None or stream in streams):
                task.cancel()
                del self.tasks[(sym, stream)]
                removed.append(stream)
                await asyncio.gather(task, return_exceptions=True)
                await self.unsubscribe.symbol(sym, stream)
        return removed

    def active(self) -> list[str]:
        names = [f"{self.venue}:{s}:{k}" for (s, k), t in self.tasks.items() if not t.done()]
        names += [f"{self.venue}:{s}:{g.stream}" for g in self._all_groups() for s in g.symbols]
        return sorted(names)

    async def stop(self) -> None:
        tasks = list(self.tasks.values()) + [g.task for g in self._all_groups() if g.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        try:
            await self.exchange.close()
        except Exception:  # closing a never-connected client can raise
            log.debug("closing %s", self.venue, exc_info=True)

    async def publish_instruments(self, symbols: list[str] | None = None) -> int:
        """Instrument events from ``load_markets`` for ``symbols`` (default: the configured ones)."""
        markets = await self.exchange.load_markets()
        wanted = symbols or sorted({s for s, _ in self.tasks} | set(self.settings.symbols)
                                   | {s for g in self._all_groups() for s in g.symbols})
        now, n = time.time_ns(), 0
        for symbol in wanted:
            market = markets.get(symbol)
            if market is None:
                self.bad("instrument", f"{symbol} not listed by {self.venue}")
                continue
            try:
                event = parse.instrument(self.venue, market, now)
            except PARSE_ERRORS as exc:
                self.bad("instrument", f"{symbol}: {exc}")
                continue
            await self.publish(event)
            n += 1
        return n

    # ---------------------------------------------------------------- what the watch loops share

    def bad(self, stream: str, reason: str) -> None:
        """Count and log (at most every 5 s per stream) a message that could not be used."""
        self.counters[f"bad.{stream}"] += 1
        now = time.monotonic()
        if now - self.bad_logged.get(stream, -1e9) >= 5.0:
            self.bad_logged[stream] = now
            log.warning("%s %s: bad input skipped: %s [%d so far]", self.venue, stream, reason,
                        self.counters[f"bad.{stream}"])

    async def check_listed(self, symbol: str) -> None:
        """Markets loaded and ``symbol`` listed (else BadSymbol); its Instrument at its first start."""
        await self.exchange.load_markets()
        if symbol not in self.exchange.markets:
            raise ccxt.BadSymbol(f"{self.venue} does not list {symbol}")
        if symbol not in self.instruments_sent:
            self.instruments_sent.add(symbol)
            await self.publish_instruments([symbol])

    async def _run_group(self, group: StreamGroup, symbols: list[str], previous: asyncio.Task | None) -> None:
        """One multi-symbol watch loop per market type, after un_watching the lists that changed."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        stream = group.stream
        by_type = await self._by_market_type(group, symbols)
        for market_type, listed in list(group.subscribed.items()):
            if by_type.get(market_type) != listed:
                await self.unsubscribe.changed(stream, listed, by_type.get(market_type, []))
                del group.subscribed[market_type]
        handler = HANDLERS[stream]
        await asyncio.gather(*(run_watch(handler(self, listed, group, market_type))
                               for market_type, listed in by_type.items()))

    async def _by_market_type(self, group: StreamGroup, symbols: list[str]) -> dict[str, list[str]]:
        """``symbols`` the venue lists, by market type (one multi-symbol watch each), once the
        markets are loaded (errors reported with backoff between tries); the Instrument of a
        symbol's first start is published, an unlisted symbol gets Disconnected."""
        backoff = Backoff(self.backoff)
        while True:
            try:
                await self.exchange.load_markets()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await report_failure(self, group.stream, symbols, exc, backoff, group)
        by_type: dict[str, list[str]] = {}
        for symbol in symbols:
            market = self.exchange.markets.get(symbol)
            if market is None:
                await disconnected(self, group.stream, [symbol], f"BadSymbol: {self.venue} does not list {symbol}")
                continue
            if symbol not in self.instruments_sent:
                self.instruments_sent.add(symbol)
                await self.publish_instruments([symbol])
            by_type.setdefault(market.get("type") or "spot", []).append(symbol)
        return by_type

