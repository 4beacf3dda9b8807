"""Unsubscribing at the venue: one symbol's own watch, or the symbols that leave a multi-symbol watch."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("tradebus.market_data")

__all__ = ["Unsubscriber", "UNWATCH_GROUPED", "UNWATCH_TIMEOUT", "STREAM_KEYS"]

# unsubscribing a grouped watch: the exact symbol list it was watched with (ccxt keys the connection by it)
UNWATCH_GROUPED = {"trades": "unWatchTradesForSymbols", "book": "unWatchOrderBookForSymbols",
                   "bbo": "unWatchBidsAsks", "bars": "unWatchOHLCVForSymbols"}
UNWATCH_TIMEOUT = 5.0  # seconds to wait for the venue to acknowledge an UNSUBSCRIBE
# binance-family ccxt.pro picks a connection per symbol list by these keys (its klines share one connection)
STREAM_KEYS = {"trades": "multipleTrades::{}", "book": "multipleOrderbook::{}", "bbo": "bookTicker::{}"}


class Unsubscriber:
    """``un_watch_*`` calls of one venue, where ccxt has them; counts ``unsubscribed.<stream>``."""

    def __init__(self, exchange, venue: str, bar_interval: str, counters: Counter) -> None:
        self.exchange, self.venue, self.bar_interval, self.counters = exchange, venue, bar_interval, counters

    async def symbol(self, symbol: str, stream: str) -> None:
        """Unsubscribe one symbol's own (per-symbol) stream at the venue, where ccxt can."""
        ex = self.exchange
        if stream == "trades":
            await self._call("unWatchTrades", lambda: ex.un_watch_trades(symbol), stream, [symbol])
        elif stream == "book":
            await self._call("unWatchOrderBook", lambda: ex.un_watch_order_book(symbol), stream, [symbol])
            ex.orderbooks.pop(symbol, None) if hasattr(ex.orderbooks, "pop") else None
        elif stream == "bbo" and ex.has.get("watchBidsAsks"):
            await self._call("unWatchBidsAsks", lambda: ex.un_watch_bids_asks([symbol]), stream, [symbol])
        elif stream == "bbo":
            await self._call("unWatchTicker", lambda: ex.un_watch_ticker(symbol), stream, [symbol])
        elif stream == "bars":
            await self._call("unWatchOHLCV", lambda: ex.un_watch_ohlcv(symbol, self.bar_interval), stream, [symbol])
        # funding is polled over REST: nothing to unsubscribe

    async def changed(self, stream: str, old: list[str], new: list[str]) -> None:
        """Before a grouped watch of ``old`` becomes one of ``new`` (one market type): unsubscribe what goes.

        Where the connection can be kept, only the symbols that go are unsubscribed, and the ones that
        stay go on uninterrupted; otherwise the whole old list is, and ``new`` is subscribed afresh.
        """
        if not old or old == new:
            return
        gone = [s for s in old if s not in new]
        if new and self._keep_connection(stream, old, [new, gone]):
            await self.symbols(stream, gone)
        else:
            await self.symbols(stream, old)

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

    async def symbols(self, stream: str, symbols: list[str]) -> None:
        """Unsubscribe ``symbols`` of a grouped watch at the venue (ccxt finds the connection by the list:
        the one watched, or one ``_keep_connection`` pointed there)."""
        if not symbols:
            return
        ex = self.exchange
        call = {"trades": lambda: ex.un_watch_trades_for_symbols(symbols),
                "book": lambda: ex.un_watch_order_book_for_symbols(symbols),
                "bbo": lambda: ex.un_watch_bids_asks(symbols),
                "bars": lambda: ex.un_watch_ohlcv_for_symbols([[s, self.bar_interval] for s in symbols]),
                }[stream]
        await self._call(UNWATCH_GROUPED[stream], call, stream, symbols)

    async def _call(self, method: str, call: Callable[[], Awaitable[Any]], stream: str, symbols: list[str]) -> None:
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
