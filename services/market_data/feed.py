"""Live feeds: one ccxt.pro instance per venue, one asyncio task per (symbol x stream)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt
import ccxt.pro as ccxtpro

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.marketdata import parse
from tradebus.marketdata.binance_trades import FAST_TRADE_EXCHANGES, TradeTap
from tradebus.marketdata.book import is_crossed
from tradebus.marketdata.emit import BarCloser, BookEmitter, status, trade_events
from tradebus.proto.base import MdKind
from tradebus.proto.market import FeedState
from tradebus.retry import Backoff, BackoffSettings

from .settings import VenueSettings

log = logging.getLogger("tradebus.market_data")

Publish = Callable[[Any], Awaitable[None]]
PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
KIND = {"trades": MdKind.TRADE, "book": MdKind.BOOK, "bbo": MdKind.BBO, "bars": MdKind.BAR,
        "funding": MdKind.FUNDING}


# the venue's multi-symbol watch per stream (``has`` key), used when ``for_symbols`` is on
GROUPED = {"book": "watchOrderBookForSymbols", "bbo": "watchBidsAsks", "bars": "watchOHLCVForSymbols"}
# unsubscribing a grouped watch: the exact symbol list it was watched with (ccxt keys the connection by it)
UNWATCH_GROUPED = {"trades": "unWatchTradesForSymbols", "book": "unWatchOrderBookForSymbols",
                   "bbo": "unWatchBidsAsks", "bars": "unWatchOHLCVForSymbols"}
UNWATCH_TIMEOUT = 5.0  # seconds to wait for the venue to acknowledge an UNSUBSCRIBE
# binance-family ccxt.pro picks a connection per symbol list by these keys (its klines share one connection)
STREAM_KEYS = {"trades": "multipleTrades::{}", "book": "multipleOrderbook::{}", "bbo": "bookTicker::{}"}


class Resync(Exception):
    """The stream's state is wrong (crossed book): drop it and subscribe again."""

    def __init__(self, message: str, symbol: str | None = None) -> None:
        super().__init__(message)
        self.symbol = symbol


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


def guard_messages(exchange, on_bad: Callable[[str], None],
                   take: Callable[[Any, Any], bool] | None = None) -> None:
    """Skip (and report) a venue message ccxt.pro cannot parse.

    In ccxt 4.5.90 an exception out of ``handle_message`` escapes the client's receive callback,
    which then never schedules the next receive: the connection would go silent for good. The
    instance's handler is wrapped (no ccxt code changes) so such a message is counted and skipped.
    ``take`` (a TradeTap's) sees each message first, inside the same guard; True means it kept it.
    """
    handle = exchange.handle_message

    if take is None:
        def handle_message(client, message):
            try:
                return handle(client, message)
            except Exception as exc:
                on_bad(f"{type(exc).__name__}: {exc} in {str(message)[:200]}")
    else:
        def handle_message(client, message):
            try:
                if take(client, message):
                    return None
                return handle(client, message)
            except Exception as exc:
                on_bad(f"{type(exc).__name__}: {exc} in {str(message)[:200]}")
    exchange.handle_message = handle_message


def make_exchange(settings: VenueSettings, on_bad: Callable[[str], None] | None = None,
                  tap: TradeTap | None = None):
    """A ccxt.pro instance; ``tap`` (inside the guard, so its errors are counted too) takes trades first."""
    cls = getattr(ccxtpro, settings.exchange)
    config = {"enableRateLimit": True, "newUpdates": True, **settings.options}
    # ccxt.pro keeps this many trades between two watch returns and drops older ones: the default
    # 1,000 lost half the trades of a 100k/s burst on the generic path
    config["options"] = {"tradesLimit": 20_000, **config.get("options", {})}
    exchange = cls(config)
    if settings.sim_url:
        point_ccxt_at_sim(exchange, settings.sim_url)
    if on_bad is not None:
        if tap is not None:
            tap.attach(exchange)
        guard_messages(exchange, on_bad, tap.take if tap is not None else None)
    elif tap is not None:
        tap.install(exchange)
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
        on_bad = lambda reason: self.bad("venue_message", reason)  # noqa: E731
        # trades normalised straight from the venue's frames where a normaliser exists (see binance_trades)
        self.tap = TradeTap(on_bad) if settings.fast_trades and settings.exchange in FAST_TRADE_EXCHANGES else None
        self.exchange = make_exchange(settings, on_bad, self.tap)
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}
        self.group: set[str] = set()  # symbols whose trades share one watch_trades_for_symbols loop
        self.group_task: asyncio.Task | None = None
        self.trades_watched: list[str] = []  # the trade group's symbols as last run (to un_watch on change)
        self.groups: dict[str, StreamGroup] = {}  # book / bbo / bars through multi-symbol watches
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
            if self._shared(stream):
                group = self.groups.setdefault(stream, StreamGroup(stream))
                if symbol not in group.symbols:
                    group.symbols.add(symbol)
                    self._regroup(group)
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
        self.group_task = asyncio.get_running_loop().create_task(
            self._regroup_trades(sorted(self.group), old), name=f"md:{self.venue}:*:trades")

    async def _regroup_trades(self, symbols: list[str], previous: asyncio.Task | None) -> None:
        """Unsubscribe the trade lists (per market type) that changed, then run the new group, if any.

        A group replaced before its task ever ran (start-up adds symbols one by one) is not unsubscribed.
        """
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        old, new = self._by_type(self.trades_watched), self._by_type(symbols)
        for market_type, listed in old.items():
            await self._unwatch_changed("trades", listed, new.get(market_type, []))
        self.trades_watched = symbols
        if symbols:
            await self._run_group(symbols, None)

    def _by_type(self, symbols: list[str]) -> dict[str, list[str]]:
        """Listed symbols split by market type, in order (as the trade group splits them)."""
        markets = self.exchange.markets or {}
        by_type: dict[str, list[str]] = {}
        for symbol in symbols:
            if symbol in markets:
                by_type.setdefault(markets[symbol].get("type") or "spot", []).append(symbol)
        return by_type

    def _shared(self, stream: str) -> bool:
        """Book, BBO and bars of all symbols through one multi-symbol watch per market type."""
        method = GROUPED.get(stream)
        return bool(method and self.settings.for_symbols and self.exchange.has.get(method))

    def _regroup(self, group: StreamGroup) -> None:
        """Restart ``group`` with its current symbols (the new task un_watches what is no longer wanted)."""
        old = group.task
        if old is not None:
            old.cancel()
        group.task = asyncio.get_running_loop().create_task(
            self._run_stream_group(group, sorted(group.symbols), old), name=f"md:{self.venue}:*:{group.stream}")

    async def remove(self, symbol: str, streams: list[str] | None = None) -> list[str]:
        """Stop publishing ``symbol``'s streams and unsubscribe them at the venue (where ccxt can)."""
        removed = []
        if symbol in self.group and (streams is None or "trades" in streams):
            self.group.discard(symbol)
            self._restart_group()
            removed.append("trades")
        for stream, group in self.groups.items():
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
                await self._unwatch(sym, stream)
        return removed

    def active(self) -> list[str]:
        names = [f"{self.venue}:{s}:{k}" for (s, k), t in self.tasks.items() if not t.done()]
        names += [f"{self.venue}:{s}:trades" for s in self.group]
        names += [f"{self.venue}:{s}:{g.stream}" for g in self.groups.values() for s in g.symbols]
        return sorted(names)

    async def stop(self) -> None:
        tasks = list(self.tasks.values()) + ([self.group_task] if self.group_task else [])
        tasks += [g.task for g in self.groups.values() if g.task is not None]
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
        wanted = symbols or sorted({s for s, _ in self.tasks} | self.group | set(self.settings.symbols)
                                   | {s for g in self.groups.values() for s in g.symbols})
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
        by_type = await self._by_market_type(symbols, "trades",
                                             lambda exc, backoff: self._group_error(symbols, exc, backoff))
        await asyncio.gather(*(self._group_loop(group) for group in by_type.values()))

    async def _by_market_type(self, symbols: list[str], stream: str,
                              on_error: Callable[[Exception, Backoff], Awaitable[None]]) -> dict[str, list[str]]:
        """``symbols`` the venue lists, by market type (one multi-symbol watch each), once the
        markets are loaded (``on_error`` reports and backs off between tries); the Instrument of a
        symbol's first start is published, an unlisted symbol gets Disconnected."""
        backoff = Backoff(self.backoff)
        while True:
            try:
                await self.exchange.load_markets()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await on_error(exc, backoff)
        by_type: dict[str, list[str]] = {}
        for symbol in symbols:
            market = self.exchange.markets.get(symbol)
            if market is None:
                self.counters[f"errors.{stream}"] += 1
                log.warning("%s %s %s: not listed by the venue", self.venue, symbol, stream)
                await self.publish(status(self.venue, symbol, KIND[stream], FeedState.DISCONNECTED,
                                          f"BadSymbol: {self.venue} does not list {symbol}"))
                continue
            if symbol not in self.instruments_sent:
                self.instruments_sent.add(symbol)
                await self.publish_instruments([symbol])
            by_type.setdefault(market.get("type") or "spot", []).append(symbol)
        return by_type

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
                if self.tap is not None:
                    await self._tapped_trades(symbols, lambda: self.exchange.watch_trades_for_symbols(symbols),
                                              backoff)
                connected: set[str] = set()
                while True:
                    raw = await self.exchange.watch_trades_for_symbols(symbols)
                    await self._publish_ccxt_trades(raw, time.time_ns(), connected)
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._group_error(symbols, exc, backoff)

    async def _publish_ccxt_trades(self, raw: list, recv: int, connected: set[str]) -> None:
        """ccxt unified trades -> Trade / TradeBatch per symbol (Connected before a symbol's first)."""
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

    async def _tapped_trades(self, symbols: list[str], watch: Callable[[], Awaitable[list]],
                             backoff: Backoff) -> None:
        """Trades the tap takes off the wire, published per symbol once per event-loop turn.

        The ccxt watch stays pending underneath: it made the subscription, and ccxt rejects it
        when the connection fails or closes, which raises here and so reaches the caller's
        backoff and resubscription, as on the generic path. Only returns by raising.
        """
        loop = asyncio.get_running_loop()
        sink = self.tap.open(symbols)
        connected: set[str] = set()
        task: asyncio.Task | None = None
        try:
            while True:
                if task is None:
                    task = loop.create_task(watch())
                    task.add_done_callback(sink.wake)
                await sink.wait(task)
                for symbol, events, n in sink.drain(self.venue, self.settings.max_batch):
                    if symbol not in connected:
                        connected.add(symbol)
                        await self._connected(symbol, MdKind.TRADE)
                    for event in events:
                        await self.publish(event)
                    self.counters["events.trade"] += n
                    backoff.reset()
                if task.done():
                    raw, task = task.result(), None  # raises the connection's error
                    # ccxt resolved trades itself (frames the tap did not route): the generic way
                    await self._publish_ccxt_trades(raw, time.time_ns(), connected)
        finally:
            self.tap.close(sink)
            if task is not None:
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not log it as lost

    async def _unwatch(self, symbol: str, stream: str) -> None:
        """Unsubscribe one symbol's own (per-symbol) stream at the venue, where ccxt can."""
        ex = self.exchange
        if stream == "trades":
            await self._call_unwatch("unWatchTrades", lambda: ex.un_watch_trades(symbol), stream, [symbol])
        elif stream == "book":
            await self._call_unwatch("unWatchOrderBook", lambda: ex.un_watch_order_book(symbol), stream, [symbol])
            ex.orderbooks.pop(symbol, None) if hasattr(ex.orderbooks, "pop") else None
        elif stream == "bbo" and ex.has.get("watchBidsAsks"):
            await self._call_unwatch("unWatchBidsAsks", lambda: ex.un_watch_bids_asks([symbol]), stream, [symbol])
        elif stream == "bbo":
            await self._call_unwatch("unWatchTicker", lambda: ex.un_watch_ticker(symbol), stream, [symbol])
        elif stream == "bars":
            await self._call_unwatch("unWatchOHLCV", lambda: ex.un_watch_ohlcv(symbol, self.settings.bar_interval),
                                     stream, [symbol])
        # funding is polled over REST: nothing to unsubscribe

    async def _unwatch_changed(self, stream: str, old: list[str], new: list[str]) -> None:
        """Before a grouped watch of ``old`` becomes one of ``new`` (one market type): unsubscribe what goes.

        Where the connection can be kept, only the symbols that go are unsubscribed, and the ones that
        stay go on uninterrupted; otherwise the whole old list is, and ``new`` is subscribed afresh.
        """
        if not old or old == new:
            return
        gone = [s for s in old if s not in new]
        if new and self._keep_connection(stream, old, [new, gone]):
            await self._unwatch_symbols(stream, gone)
        else:
            await self._unwatch_symbols(stream, old)

    def _keep_connection(self, stream: str, old: list[str], lists: list[list[str]]) -> bool:
        """Point ``lists`` at the connection ``old`` was watched on (binance-family ccxt.pro picks one
        per symbol list, so a changed list would otherwise open another); False where that cannot be done."""
        table, key = self.exchange.options.get("streamBySubscriptionsHash"), STREAM_KEYS.get(stream)
        if table is None:
            return False
        if stream == "bars":
            return True  # already one klines connection per market type, whatever the list
        connection = table.get(key.format(",".join(old))) if key else None
        if connection is None:
            return False
        for symbols in lists:
            if symbols:
                table[key.format(",".join(symbols))] = connection
        return True

    async def _unwatch_symbols(self, stream: str, symbols: list[str]) -> None:
        """Unsubscribe ``symbols`` of a grouped watch at the venue (ccxt finds the connection by the list:
        the one watched, or one ``_keep_connection`` pointed there)."""
        if not symbols:
            return
        ex = self.exchange
        call = {"trades": lambda: ex.un_watch_trades_for_symbols(symbols),
                "book": lambda: ex.un_watch_order_book_for_symbols(symbols),
                "bbo": lambda: ex.un_watch_bids_asks(symbols),
                "bars": lambda: ex.un_watch_ohlcv_for_symbols([[s, self.settings.bar_interval] for s in symbols]),
                }[stream]
        await self._call_unwatch(UNWATCH_GROUPED[stream], call, stream, symbols)

    async def _call_unwatch(self, method: str, call: Callable[[], Awaitable[Any]], stream: str,
                            symbols: list[str]) -> None:
        """Run a ccxt ``un_watch_*`` the venue has; one it lacks or that fails leaves the stream as it is
        (its events are no longer published either way), logged at debug."""
        if not self.exchange.has.get(method):
            log.debug("%s has no %s: %s %s stays subscribed at the venue", self.venue, method, symbols, stream)
            return
        try:
            await asyncio.wait_for(call(), UNWATCH_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception:  # NotSupported, UnsubscribeError, a closed connection, no acknowledgement
            log.debug("%s %s %s failed", self.venue, method, symbols, exc_info=True)
            return
        self.counters[f"unsubscribed.{stream}"] += len(symbols)

    async def _connected(self, symbol: str, kind: MdKind) -> None:
        self.counters[f"connected.{kind}"] += 1
        await self.publish(status(self.venue, symbol, kind, FeedState.CONNECTED))

    async def _trades(self, symbol: str, backoff: Backoff) -> None:
        ex, first = self.exchange, True
        if self.tap is not None:
            await self._tapped_trades([symbol], lambda: ex.watch_trades(symbol), backoff)
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
        emitters, nonces = {symbol: emitter}, {}
        while True:
            book = await ex.watch_order_book(symbol)
            if await self._publish_book(symbol, book, depth, emitter, time.time_ns(), nonces):
                backoff.reset()
            await self._publish_unseen_books([symbol], depth, emitters, nonces)

    async def _bbo(self, symbol: str, backoff: Backoff) -> None:
        ex, tops, connected = self.exchange, {}, set()
        use_bids_asks = bool(ex.has.get("watchBidsAsks"))
        while True:
            if use_bids_asks:
                raw = (await ex.watch_bids_asks([symbol])).get(symbol)
            else:
                raw = await ex.watch_ticker(symbol)
            recv = time.time_ns()
            if raw is not None and await self._publish_bbo(symbol, raw, recv, tops, connected):
                backoff.reset()

    async def _publish_bbo(self, symbol: str, raw: dict, recv: int, tops: dict, connected: set) -> bool:
        """A ccxt ticker / bids-asks entry -> BBO when the best levels changed (``tops``: the last
        published per symbol; Connected before a symbol's first). False: it did not parse."""
        try:
            bbo = parse.bbo_from_ticker(self.venue, raw, recv)
        except PARSE_ERRORS as exc:
            self.bad("bbo", f"{exc!r}")
            return False
        if symbol not in connected:
            connected.add(symbol)
            await self._connected(symbol, MdKind.BBO)
        top = (bbo.bid_price, bbo.bid_qty, bbo.ask_price, bbo.ask_qty)
        if top != tops.get(symbol):
            tops[symbol] = top
            await self.publish(bbo)
            self.counters["events.bbo"] += 1
        return True

    async def _bars(self, symbol: str, backoff: Backoff) -> None:
        ex, interval, first = self.exchange, self.settings.bar_interval, True
        closer = BarCloser()
        while True:
            rows = await ex.watch_ohlcv(symbol, interval)
            recv = time.time_ns()
            if first:
                first = False
                await self._connected(symbol, MdKind.BAR)
            await self._publish_bars(symbol, interval, rows, closer, recv)
            backoff.reset()

    async def _publish_bars(self, symbol: str, interval: str, rows, closer: BarCloser, recv: int) -> None:
        """ccxt OHLCV rows -> the Bar events ``closer`` lets out (each bar once, when it closes)."""
        for row in rows:
            try:
                bar = parse.bar(self.venue, symbol, interval, row, False, recv)
            except PARSE_ERRORS as exc:
                self.bad("bars", f"{exc!r} in {row!r:.200}")
                continue
            for event in closer.on_bar(bar):
                await self.publish(event)
                self.counters["events.bar"] += 1

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

    # ---------------------------------------------------------------- grouped book / bbo / bars

    async def _run_stream_group(self, group: StreamGroup, symbols: list[str], previous: asyncio.Task | None) -> None:
        """One multi-symbol watch loop per market type, after un_watching the lists that changed."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        stream = group.stream
        by_type = await self._by_market_type(
            symbols, stream, lambda exc, backoff: self._stream_group_error(group, symbols, exc, backoff))
        for market_type, listed in list(group.subscribed.items()):
            if by_type.get(market_type) != listed:
                await self._unwatch_changed(stream, listed, by_type.get(market_type, []))
                del group.subscribed[market_type]
        loop = {"book": self._book_group, "bbo": self._bbo_group, "bars": self._bars_group}[stream]
        await asyncio.gather(*(loop(group, market_type, listed) for market_type, listed in by_type.items()))

    async def _stream_group_error(self, group: StreamGroup, symbols: list[str], exc: Exception, backoff: Backoff,
                                  counter: str = "errors") -> None:
        """Disconnected for ``symbols`` (their state starts over), then back off."""
        reason = f"{type(exc).__name__}: {exc}"[:500]
        self.counters[f"{counter}.{group.stream}"] += 1
        delay = backoff.next()
        log.warning("%s %s %s: %s; retry in %.2fs", self.venue, ",".join(symbols), group.stream, reason, delay)
        for symbol in symbols:
            group.state.pop(symbol, None)
            group.connected.discard(symbol)
            await self.publish(status(self.venue, symbol, KIND[group.stream], FeedState.DISCONNECTED, reason))
        await asyncio.sleep(delay)

    async def _book_group(self, group: StreamGroup, market_type: str, symbols: list[str]) -> None:
        ex, depth, backoff, wanted = self.exchange, self.settings.book_depth, Backoff(self.backoff), set(symbols)
        while True:
            for symbol in symbols:  # new, or starting over after an error: SnapshotStart first
                if symbol not in group.state:
                    emitter = group.state[symbol] = BookEmitter(self.venue, symbol)
                    for event in emitter.start():
                        await self.publish(event)
            group.subscribed[market_type] = symbols
            try:
                while True:
                    book = await ex.watch_order_book_for_symbols(symbols)  # the one book that changed
                    recv = time.time_ns()
                    symbol = book.get("symbol")
                    emitter = group.state.get(symbol) if symbol in wanted else None
                    if emitter is None:
                        continue
                    if await self._publish_book(symbol, book, depth, emitter, recv, group.nonces):
                        backoff.reset()
                    await self._publish_unseen_books(symbols, depth, group.state, group.nonces)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._book_group_error(group, symbols, exc, backoff)

    async def _publish_book(self, symbol: str, book, depth: int, emitter: BookEmitter, recv: int,
                            nonces: dict) -> bool:
        """A ccxt order book -> BookSnapshot / BookDelta events (False: it did not parse, skipped);
        Resync when it crosses. ``nonces`` records the book version handled."""
        nonces[symbol] = book.get("nonce")
        try:
            snap = parse.book_snapshot(self.venue, symbol, book, depth, recv)
        except PARSE_ERRORS as exc:
            self.bad("book", f"{exc!r}")
            return False
        if is_crossed(snap):
            self.bad("book", f"crossed book {snap.bids[0]} >= {snap.asks[0]} at {snap.sequence}")
            raise Resync(f"crossed book at sequence {snap.sequence}", symbol)
        for event in emitter.on_snapshot(snap):
            await self.publish(event)
        self.counters["events.book"] += 1
        return True

    async def _publish_unseen_books(self, symbols: list[str], depth: int, emitters: dict, nonces: dict) -> None:
        """Books that changed while no watch was waiting. ccxt.pro wakes only a pending watch, so an
        update landing while the previous one is being published would otherwise wait for the
        symbol's next change (a book at rest would stay stale). Only books already published once
        are caught up; a (re)subscription's first book comes through the watch."""
        books = self.exchange.orderbooks
        for symbol in symbols:
            emitter, book = emitters.get(symbol), books.get(symbol)
            if emitter is None or book is None or emitter.prev is None:
                continue
            nonce = book.get("nonce")
            if nonce is None or nonce == nonces.get(symbol) or not (book["bids"] and book["asks"]):
                continue
            await self._publish_book(symbol, book, depth, emitter, time.time_ns(), nonces)

    async def _book_group_error(self, group: StreamGroup, symbols: list[str], exc: Exception,
                                backoff: Backoff) -> None:
        """A resync starts over the one book that went wrong where that can be told, else every book of
        the list. The others keep their state: ccxt re-snapshots them too, and consumers get a delta."""
        if not isinstance(exc, (ccxt.ChecksumError, ccxt.InvalidNonce, Resync)):
            await self._stream_group_error(group, symbols, exc, backoff)
            return
        named = getattr(exc, "symbol", None)
        dropped = [s for s in symbols if s not in self.exchange.orderbooks]  # ccxt drops a book it gave up on
        if named in symbols:
            affected = [named]
        else:
            affected = dropped or symbols
        if named in symbols or not dropped:
            # ccxt still holds the wrong book: unsubscribe the list, so watching it again re-snapshots
            await self._unwatch_symbols("book", symbols)
        await self._stream_group_error(group, affected, exc, backoff, counter="resync")

    async def _bbo_group(self, group: StreamGroup, market_type: str, symbols: list[str]) -> None:
        ex, backoff, wanted = self.exchange, Backoff(self.backoff), set(symbols)
        while True:
            group.subscribed[market_type] = symbols
            try:
                while True:
                    tickers = await ex.watch_bids_asks(symbols)  # {symbol: entry} of what changed
                    recv = time.time_ns()
                    for symbol, raw in tickers.items():
                        if symbol in wanted and raw is not None:
                            await self._publish_bbo(symbol, raw, recv, group.state, group.connected)
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._stream_group_error(group, symbols, exc, backoff)

    async def _bars_group(self, group: StreamGroup, market_type: str, symbols: list[str]) -> None:
        ex, interval, backoff, wanted = self.exchange, self.settings.bar_interval, Backoff(self.backoff), set(symbols)
        pairs = [[symbol, interval] for symbol in symbols]
        while True:
            group.subscribed[market_type] = symbols
            try:
                while True:
                    result = await ex.watch_ohlcv_for_symbols(pairs)  # {symbol: {interval: rows}}
                    recv = time.time_ns()
                    for symbol, by_interval in result.items():
                        if symbol not in wanted:
                            continue
                        if symbol not in group.connected:
                            group.connected.add(symbol)
                            await self._connected(symbol, MdKind.BAR)
                        closer = group.state.setdefault(symbol, BarCloser())
                        await self._publish_bars(symbol, interval, by_interval.get(interval) or [], closer, recv)
                    backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._stream_group_error(group, symbols, exc, backoff)
