"""Binance ``trade`` / ``aggTrade`` stream messages straight to Trade / TradeBatch events.

ccxt.pro keeps the connection: subscription, ping/pong, reconnection and errors all stay on its
own code path. A :class:`TradeTap` sits in front of the exchange instance's ``handle_message``
(the way ``guard_messages`` wraps it; no ccxt code changes) and takes the trade messages of the
symbols a feed asked for, before ccxt's ``parse_trade``, ``ArrayCache`` and per-message future
resolution (about 46 us of CPU a trade in market_data on ccxt 4.5.90, against about 6 us with
the tap, on an otherwise idle machine; bench/RESULTS.md). Every other message, and trades of symbols nobody asked the tap for,
go on to ccxt unchanged. Unlike ccxt's trade cache (``tradesLimit`` trades between two watch
returns), nothing is dropped when more trades arrive in one event-loop turn.

The events equal what ``parse.trade`` makes of ccxt's own parse of the same frame, ts_recv aside
(tests/libs/marketdata/test_binance_trades.py checks it on recorded frames, spot and USD-M).
"""
from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections.abc import Callable
from typing import Any

from tradebus.proto import Trade, TradeBatch
from tradebus.proto.base import Side

__all__ = ["FAST_TRADE_EXCHANGES", "Pending", "TradeSink", "TradeTap", "parse_trade_message"]

FAST_TRADE_EXCHANGES = frozenset({"binance", "binanceusdm"})  # ccxt.pro classes with Binance's trade frames
_TRADE_EVENTS = frozenset({"trade", "aggTrade"})
_INF = math.inf
_SIDE_OF_CODE = (Side.BUY, Side.SELL)


class Pending:
    """Trade messages of one symbol taken since the feed last published, with their receive times.

    Taking a message costs two list appends; the columns are built per batch in :meth:`events`,
    one pass per field, and a batch with a bad message is redone message by message.
    """

    __slots__ = ("symbol", "msgs", "recv")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.msgs: list[dict] = []
        self.recv: list[int] = []

    def __len__(self) -> int:
        return len(self.msgs)

    def clear(self) -> None:
        self.msgs, self.recv = [], []

    def events(self, venue: str, max_batch: int, on_bad: Callable[[str], None]) -> list[Trade | TradeBatch]:
        """The same events as ``emit.trade_events``: a lone print as Trade, else TradeBatch chunks.

        Bad messages are reported through ``on_bad`` and left out.
        """
        try:
            cols = _columns(self.msgs, self.recv)
        except _PARSE_ERRORS:  # at least one bad message: message by message, to skip just those
            cols = _columns_one_by_one(self.msgs, self.recv, on_bad)
        prices, qtys, sides, ts_event, ts_recv, ids = cols
        n = len(sides)
        if n == 1:
            return [Trade(venue=venue, symbol=self.symbol, price=prices[0], qty=qtys[0], side=_SIDE_OF_CODE[sides[0]],
                          trade_id=ids[0], ts_event=ts_event[0], ts_recv=ts_recv[0])]
        out: list[Trade | TradeBatch] = []
        for i in range(0, n, max_batch):
            j = i + max_batch
            chunk_ids = ids[i:j]
            out.append(TradeBatch.from_columns(
                venue=venue, symbol=self.symbol, prices=prices[i:j], qtys=qtys[i:j], sides=sides[i:j],
                ts_event=ts_event[i:j], ts_recv=ts_recv[i:j], trade_ids=chunk_ids if any(chunk_ids) else ()))
        return out


_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError)
Columns = tuple[array, array, bytes, array, array, list[str]]


def _columns(msgs: list[dict], recv: list[int]) -> Columns:
    """Columns of messages that are all good; raises (a ``_PARSE_ERRORS``) when any one is not."""
    makers = [m["m"] for m in msgs]
    if set(map(type, makers)) != {bool}:
        raise ValueError("trade side")
    prices = array("d", [float(m["p"]) for m in msgs])
    qtys = array("d", [float(m["q"]) for m in msgs])
    # sum() is nan or inf when any value is; then min() is enough for the lower bounds
    if not (sum(prices) < _INF and min(prices) > 0.0 and sum(qtys) < _INF and min(qtys) >= 0.0):
        raise ValueError("trade price/amount out of range")
    ts_event = array("q", [t * 1_000_000 for t in array("q", [m["T"] for m in msgs])])  # T not an int: TypeError
    ids = [m.get("t") for m in msgs]
    if None in ids:  # aggTrade: the aggregate id
        ids = [m.get("a") if tid is None else tid for tid, m in zip(ids, msgs)]
        if None in ids:
            raise ValueError("trade id")
    return prices, qtys, bytes(makers), ts_event, array("q", recv), list(map(str, ids))


def _columns_one_by_one(msgs: list[dict], recv: list[int], on_bad: Callable[[str], None]) -> Columns:
    prices, qtys, sides, ts_event, ts_recv, ids = array("d"), array("d"), bytearray(), array("q"), array("q"), []
    for m, r in zip(msgs, recv):
        try:
            price, qty, side, ts, tid = parse_trade_message(m)
        except _PARSE_ERRORS as exc:
            on_bad(f"{type(exc).__name__}: {exc} in {str(m)[:200]}")
            continue
        prices.append(price)
        qtys.append(qty)
        sides.append(side)
        ts_event.append(ts)
        ts_recv.append(r)
        ids.append(tid)
    return prices, qtys, bytes(sides), ts_event, ts_recv, ids


def parse_trade_message(m: dict) -> tuple[float, float, int, int, str]:
    """(price, qty, side code, ts_event ns, trade id) of one Binance trade/aggTrade payload.

    ccxt reads: side from ``m`` (buyer is maker -> the taker sold), price ``p``, amount ``q``,
    id ``t`` else ``a`` (aggTrade), time ``T`` (ms). ``parse.trade`` then rejects a missing side,
    a missing or non-finite number, price <= 0 and amount < 0; so does this (raising ValueError,
    KeyError or TypeError).
    """
    maker = m["m"]
    if maker is True:
        side = 1
    elif maker is False:
        side = 0
    else:
        raise ValueError(f"trade side from m={maker!r}")
    price = float(m["p"])
    qty = float(m["q"])
    if not 0.0 < price < _INF or not 0.0 <= qty < _INF:
        raise ValueError(f"trade price/amount out of range: {price} {qty}")
    ts = m.get("T")
    if type(ts) is not int:  # ccxt's safe_integer: int(float(x)), None when that fails
        try:
            ts = int(float(ts))
        except (TypeError, ValueError, OverflowError):
            ts = 0
    tid = m.get("t")
    if tid is None:
        tid = m.get("a")
    return price, qty, side, ts * 1_000_000, "" if tid is None else str(tid)


class TradeSink:
    """The trades one feed loop asked the tap for; the loop awaits :meth:`wait` then :meth:`drain`."""

    def __init__(self, symbols: list[str], on_bad: Callable[[str], None]) -> None:
        self.pending = {symbol: Pending(symbol) for symbol in symbols}
        self.on_bad = on_bad
        self.dirty = False
        self._waiter: asyncio.Future | None = None

    def wake(self, *_: Any) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, stop: asyncio.Future | None = None) -> None:
        """Until trades were taken (or ``stop`` is done): at most once per event-loop turn."""
        while not self.dirty and (stop is None or not stop.done()):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def drain(self, venue: str, max_batch: int) -> list[tuple[str, list[Trade | TradeBatch], int]]:
        """(symbol, events, trade count) of every symbol with trades since the last drain."""
        out = []
        if self.dirty:
            self.dirty = False
            for symbol, p in self.pending.items():
                if p.msgs:
                    events = p.events(venue, max_batch, self.on_bad)
                    p.clear()
                    n = sum(len(e) if type(e) is TradeBatch else 1 for e in events)
                    if n:
                        out.append((symbol, events, n))
        return out


class TradeTap:
    """Takes Binance trade messages of registered symbols off an exchange instance's message path."""

    def __init__(self, on_bad: Callable[[str], None]) -> None:
        self.on_bad = on_bad
        self.exchange = None
        # market id -> route, for spot connections (True) and contract ones (False)
        self.routes: dict[bool, dict[str, tuple[TradeSink, Pending]]] = {True: {}, False: {}}
        self._by_url: dict[str, dict[str, tuple[TradeSink, Pending]]] = {}

    def attach(self, exchange) -> None:
        """Use ``exchange``'s markets and connections; the caller puts :meth:`take` in its message path."""
        self.exchange = exchange

    def install(self, exchange) -> None:
        """Wrap ``exchange.handle_message`` (before any connection exists: ccxt binds it per client)."""
        self.attach(exchange)
        handle = exchange.handle_message
        take = self.take

        def handle_message(client, message):
            if take(client, message):
                return None
            return handle(client, message)
        exchange.handle_message = handle_message

    def open(self, symbols: list[str]) -> TradeSink:
        """Route the trades of ``symbols`` (unified, markets loaded) to a new sink."""
        sink = TradeSink(symbols, self.on_bad)
        for symbol in symbols:
            market = self.exchange.market(symbol)
            # ccxt's handle_trade resolves the market id by the connection: spot URL -> spot market
            self.routes[bool(market.get("spot"))][market["id"]] = (sink, sink.pending[symbol])
        return sink

    def close(self, sink: TradeSink) -> None:
        for routes in self.routes.values():
            for key, (owner, _) in list(routes.items()):
                if owner is sink:
                    del routes[key]

    def take(self, client, message: Any) -> bool:
        """True when ``message`` is a trade of a routed symbol: kept for its sink's next drain."""
        if type(message) is not dict:
            return False
        event = message.get("e")
        if event is None:
            data = message.get("data")  # combined-stream wrapper {"stream": ..., "data": {...}}
            if type(data) is not dict:
                return False
            message = data
            event = message.get("e")
        if event not in _TRADE_EVENTS:
            return False
        routes = self._by_url.get(client.url)
        if routes is None:
            routes = self._by_url[client.url] = self.routes[bool(self.exchange.is_spot_url(client))]
        route = routes.get(message.get("s"))
        if route is None:
            return False
        sink, pending = route
        pending.msgs.append(message)  # parsed (or counted as bad) when the feed drains the sink
        pending.recv.append(time.time_ns())
        if not sink.dirty:
            sink.dirty = True
            sink.wake()
        return True
