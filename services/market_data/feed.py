"""Live feeds: one ccxt.pro instance per venue, one asyncio task per (symbol x stream)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Awaitable, Callable

import ccxt
import ccxt.pro as ccxtpro

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.marketdata import parse
from tradebus.marketdata.backoff import Backoff, BackoffSettings
from tradebus.marketdata.book import is_crossed
from tradebus.marketdata.emit import BarCloser, BookEmitter, status, trade_events
from tradebus.proto.base import MdKind
from tradebus.proto.market import FeedState

from .settings import VenueSettings

log = logging.getLogger("tradebus.market_data")

Publish = Callable[[Any], Awaitable[None]]
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
KIND = {"trades": MdKind.TRADE, "book": MdKind.BOOK, "bbo": MdKind.BBO, "bars": MdKind.BAR,
        "funding": MdKind.FUNDING}


class Resync(Exception):
    """The stream's state is wrong (crossed book): drop it and subscribe again."""


def guard_messages(exchange, on_bad: Callable[[str], None]) -> None:
    """Skip (and report) a venue message ccxt.pro cannot parse.

    In ccxt 4.5.90 an exception out of ``handle_message`` escapes the client's receive callback,
    which then never schedules the next receive: the connection would go silent for good. The
    instance's handler is wrapped (no ccxt code changes) so such a message is counted and skipped.
    """
    handle = exchange.handle_message

    def handle_message(client, message):
        try:
            return handle(client, message)
        except Exception as exc:
            on_bad(f"{type(exc).__name__}: {exc} in {str(message)[:200]}")
    exchange.handle_message = handle_message


def make_exchange(settings: VenueSettings, on_bad: Callable[[str], None] | None = None):
    cls = getattr(ccxtpro, settings.exchange)
    config = {"enableRateLimit": True, "newUpdates": True, **settings.options}
    exchange = cls(config)
    if settings.sim_url:
        point_ccxt_at_sim(exchange, settings.sim_url)
    if on_bad is not None:
        guard_messages(exchange, on_bad)
    return exchange


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
        self.exchange = make_exchange(settings, lambda reason: self.bad("venue_message", reason))
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}
        self.group: set[str] = set()  # symbols whose trades share one watch_trades_for_symbols loop
        self.group_task: asyncio.Task | None = None
        self.instruments_sent: set[str] = set()

    # ---------------------------------------------------------------- control

    def start(self) -> None:
        for symbol in self.settings.symbols:
            self.add(symbol, self.settings.streams)

    def _grouped(self, stream: str) -> bool:
        """Trades of all symbols through one ``watch_trades_for_symbols`` loop per market type."""
        return (stream == "trades" and self.settings.for_symbols
                and bool(self.exchange.has.get("watchTradesForSymbols")))

    def add(self, symbol: str, streams: list[str]) -> list[str]:
        added = []
        for stream in streams:
            if stream not in KIND:
                raise ValueError(f"unknown stream {stream!r}")
            if self._grouped(stream):
                if symbol not in self.group:
                    self.group.add(symbol)
                    self._restart_group()
                    added.append(stream)
                continue
            key = (symbol, stream)
            if key not in self.tasks or self.tasks[key].done():
                self.tasks[key] = asyncio.get_running_loop().create_task(self._run(symbol, stream),
                                                                         name=f"md:{self.venue}:{symbol}:{stream}")
                added.append(stream)
        return added

    def _restart_group(self) -> None:
        old = self.group_task
        if old is not None:
            old.cancel()
        symbols = sorted(self.group)
        self.group_task = asyncio.get_running_loop().create_task(
            self._run_group(symbols, old), name=f"md:{self.venue}:*:trades") if symbols else None

    async def remove(self, symbol: str, streams: list[str] | None = None) -> list[str]:
        removed = []
        if symbol in self.group and (streams is None or "trades" in streams):
            self.group.discard(symbol)
            self._restart_group()
            removed.append("trades")
        for (sym, stream), task in list(self.tasks.items()):
            if sym == symbol and (streams is None or stream in streams):
                task.cancel()
                del self.tasks[(sym, stream)]
                removed.append(stream)
                await asyncio.gather(task, return_exceptions=True)
        return removed

    def active(self) -> list[str]:
        names = [f"{self.venue}:{s}:{k}" for (s, k), t in self.tasks.items() if not t.done()]
        names += [f"{self.venue}:{s}:trades" for s in self.group]
        return sorted(names)

    async def stop(self) -> None:
        tasks = list(self.tasks.values()) + ([self.group_task] if self.group_task else [])
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
        wanted = symbols or sorted({s for s, _ in self.tasks} | self.group | set(self.settings.symbols))
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

    # ---------------------------------------------------------------- streams

    def bad(self, stream: str, reason: str) -> None:
        """Count and log (at most every 5 s per stream) a message that could not be used."""
        self.counters[f"bad.{stream}"] += 1
        now = time.monotonic()
        if now - self.bad_logged.get(stream, -1e9) >= 5.0:
            self.bad_logged[stream] = now
            log.warning("%s %s: bad input skipped: %s [%d so far]", self.venue, stream, reason,
                        self.counters[f"bad.{stream}"])

    async def _run(self, symbol: str, stream: str) -> None:
        backoff = Backoff(self.backoff)
        kind = KIND[stream]
        loop = {"trades": self._trades, "book": self._book, "bbo": self._bbo, "bars": self._bars,
                "funding": self._funding}[stream]
        while True:
            try:
                await self.exchange.load_markets()
                if symbol not in self.exchange.markets:
                    raise ccxt.BadSymbol(f"{self.venue} does not list {symbol}")
                if symbol not in self.instruments_sent:  # at the first start of a symbol's streams
                    self.instruments_sent.add(symbol)
                    await self.publish_instruments([symbol])
                await loop(symbol, backoff)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every stream error: report, back off, subscribe again
                reason = f"{type(exc).__name__}: {exc}"[:500]
                if isinstance(exc, (ccxt.ChecksumError, ccxt.InvalidNonce, Resync)):
                    self.counters[f"resync.{stream}"] += 1
                    await self._unwatch(symbol, stream)
                else:
                    self.counters[f"errors.{stream}"] += 1
                if isinstance(exc, ccxt.BadSymbol):
                    self.instruments_sent: set[str] = set()
                delay = backoff.next()
                log.warning("%s %s %s: %s; retry in %.2fs", self.venue, symbol, stream, reason, delay)
                await self.publish(status(self.venue, symbol, kind, FeedState.DISCONNECTED, reason))
                await asyncio.sleep(delay)

    async def _run_group(self, symbols: list[str], previous: asyncio.Task | None) -> None:
        """Grouped trades: symbols split by market type, one for_symbols loop each, own backoff."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        backoff = Backoff(self.backoff)
        while True:
            try:
                await self.exchange.load_markets()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._group_error(symbols, exc, backoff)
        by_type: dict[str, list[str]] = {}
        for symbol in symbols:
            market = self.exchange.markets.get(symbol)
            if market is None:
                self.counters["errors.trades"] += 1
                log.warning("%s %s trades: not listed by the venue", self.venue, symbol)
                await self.publish(status(self.venue, symbol, MdKind.TRADE, FeedState.DISCONNECTED,
                                          f"BadSymbol: {self.venue} does not list {symbol}"))
                continue
            if symbol not in self.instruments_sent:
                self.instruments_sent.add(symbol)
                await self.publish_instruments([symbol])
            by_type.setdefault(market.get("type") or "spot", []).append(symbol)
        await asyncio.gather(*(self._group_loop(group) for group in by_type.values()))

    async def _group_error(self, symbols: list[str], exc: Exception, backoff: Backoff) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        self.counters["errors.trades"] += 1
        delay = backoff.next()
        log.warning("%s %s trades: %s; retry in %.2fs", self.venue, ",".join(symbols), reason, delay)
        for symbol in symbols:
            await self.publish(status(self.venue, symbol, MdKind.TRADE, FeedState.DISCONNECTED, reason))
        await asyncio.sleep(delay)

    async def _group_loop(self, symbols: list[str]) -> None:
        backoff = Backoff(self.backoff)
        while True:
            try:
                connected: set[str] = set()
                while True:
                    raw = await self.exchange.watch_trades_for_symbols(symbols)
                    recv = time.time_ns()
                    per_symbol: dict[str, list] = {}
                    for t in raw:
                        try:
                            trade = parse.trade(self.venue, t, recv)
                        except PARSE_ERRORS as exc:
                            self.bad("trades", f"{exc!r} in {t!r:.200}")
                            continue
                        per_symbol.setdefault(trade.symbol, []).append(trade)
                    for symbol, trades in per_symbol.items():
                        if symbol not in connected:
                            connected.add(symbol)
                            await self._connected(symbol, MdKind.TRADE)
                        for event in trade_events(trades, self.settings.max_batch):
                            await self.publish(event)
                        self.counters["events.trade"] += len(trades)
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._group_error(symbols, exc, backoff)

    async def _unwatch(self, symbol: str, stream: str) -> None:
        if stream == "book":
            try:
                await self.exchange.un_watch_order_book(symbol)
            except Exception:
                log.debug("un_watch_order_book %s", symbol, exc_info=True)
            self.exchange.orderbooks.pop(symbol, None) if hasattr(self.exchange.orderbooks, "pop") else None

    async def _connected(self, symbol: str, kind: MdKind) -> None:
        self.counters[f"connected.{kind}"] += 1
        await self.publish(status(self.venue, symbol, kind, FeedState.CONNECTED))

    async def _trades(self, symbol: str, backoff: Backoff) -> None:
        ex, first = self.exchange, True
        while True:
            raw = await ex.watch_trades(symbol)
            recv = time.time_ns()
            trades = []
            for t in raw:
                try:
                    trades.append(parse.trade(self.venue, t, recv))
                except PARSE_ERRORS as exc:
                    self.bad("trades", f"{exc!r} in {t!r:.200}")
            if first:
                first = False
                await self._connected(symbol, MdKind.TRADE)
            for event in trade_events(trades, self.settings.max_batch):
                await self.publish(event)
            self.counters["events.trade"] += len(trades)
            backoff.reset()

    async def _book(self, symbol: str, backoff: Backoff) -> None:
        ex, depth = self.exchange, self.settings.book_depth
        emitter = BookEmitter(self.venue, symbol)
        for event in emitter.start():
            await self.publish(event)
        while True:
            book = await ex.watch_order_book(symbol)
            recv = time.time_ns()
            try:
                snap = parse.book_snapshot(self.venue, symbol, book, depth, recv)
            except PARSE_ERRORS as exc:
                self.bad("book", f"{exc!r}")
                continue
            if is_crossed(snap):
                self.bad("book", f"crossed book {snap.bids[0]} >= {snap.asks[0]} at {snap.sequence}")
                raise Resync(f"crossed book at sequence {snap.sequence}")
            for event in emitter.on_snapshot(snap):
                await self.publish(event)
            self.counters["events.book"] += 1
            backoff.reset()

    async def _bbo(self, symbol: str, backoff: Backoff) -> None:
        ex, last, first = self.exchange, None, True
        use_bids_asks = bool(ex.has.get("watchBidsAsks"))
        while True:
            if use_bids_asks:
                raw = (await ex.watch_bids_asks([symbol])).get(symbol)
            else:
                raw = await ex.watch_ticker(symbol)
            recv = time.time_ns()
            if raw is None:
                continue
            try:
                bbo = parse.bbo_from_ticker(self.venue, raw, recv)
            except PARSE_ERRORS as exc:
                self.bad("bbo", f"{exc!r}")
                continue
            if first:
                first = False
                await self._connected(symbol, MdKind.BBO)
            top = (bbo.bid_price, bbo.bid_qty, bbo.ask_price, bbo.ask_qty)
            if top != last:
                last = top
                await self.publish(bbo)
                self.counters["events.bbo"] += 1
            backoff.reset()

    async def _bars(self, symbol: str, backoff: Backoff) -> None:
        ex, interval, first = self.exchange, self.settings.bar_interval, True
        closer = BarCloser()
        while True:
            rows = await ex.watch_ohlcv(symbol, interval)
            recv = time.time_ns()
            if first:
                first = False
                await self._connected(symbol, MdKind.BAR)
            for row in rows:
                try:
                    bar = parse.bar(self.venue, symbol, interval, row, False, recv)
                except PARSE_ERRORS as exc:
                    self.bad("bars", f"{exc!r} in {row!r:.200}")
                    continue
                for event in closer.on_bar(bar):
                    await self.publish(event)
                    self.counters["events.bar"] += 1
            backoff.reset()

    async def _funding(self, symbol: str, backoff: Backoff) -> None:
        market = self.exchange.markets[symbol]
        if not (market.get("swap") or market.get("future")):
            log.info("%s %s: no funding stream for a %s market", self.venue, symbol, market.get("type"))
            return
        first = True
        while True:
            raw = await self.exchange.fetch_funding_rate(symbol)
            recv = time.time_ns()
            try:
                event = parse.funding(self.venue, raw, recv)
            except PARSE_ERRORS as exc:
                self.bad("funding", f"{exc!r}")
            else:
                if first:
                    first = False
                    await self._connected(symbol, MdKind.FUNDING)
                await self.publish(event)
                self.counters["events.funding"] += 1
            backoff.reset()
            await asyncio.sleep(self.settings.funding_interval)
