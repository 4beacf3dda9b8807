"""Trades: ccxt's unified trades, or the frames a TradeTap normalises straight off the wire."""
from __future__ import annotations

import asyncio
import time

from tradebus.marketdata import parse
from tradebus.marketdata.emit import trade_events

from ..watch import PARSE_ERRORS, StreamHandler


class Trades(StreamHandler):
    stream = "trades"

    sink = None
    task: asyncio.Task | None = None

    def watch(self):
        ex = self.feed.exchange
        return ex.watch_trades_for_symbols(self.symbols) if self.grouped else ex.watch_trades(self.symbols[0])

    async def subscribe(self) -> None:
        await super().subscribe()
        self.group.connected.difference_update(self.symbols)  # Connected again before each one's next trade
        if self.feed.tap is not None:
            self.sink, self.task = self.feed.tap.open(self.symbols), None

    async def receive(self) -> bool:
        if self.sink is not None:
            return await self._tapped()
        raw = await self.watch()
        await self.publish_ccxt(raw, time.time_ns())
        return True

    async def _tapped(self) -> bool:
        """Trades the tap takes off the wire, published per symbol once per event-loop turn.

        The ccxt watch stays pending underneath: it made the subscription, and ccxt rejects it
        when the connection fails or closes, which raises here and so reaches the watch loop's
        backoff and resubscription, as on the generic path.
        """
        feed, sink = self.feed, self.sink
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.watch())
            self.task.add_done_callback(sink.wake)
        await sink.wait(self.task)
        good = False
        for symbol, events, n in sink.drain(feed.venue, feed.settings.max_batch):
            await self.connected(symbol)
            for event in events:
                await feed.publish(event)
            feed.counters["events.trade"] += n
            good = True
        if self.task.done():
            raw, self.task = self.task.result(), None  # raises the connection's error
            # ccxt resolved trades itself (frames the tap did not route): the generic way
            await self.publish_ccxt(raw, time.time_ns())
        return good

    async def close(self) -> None:
        if self.sink is not None:
            self.feed.tap.close(self.sink)
            self.sink = None
        task, self.task = self.task, None
        if task is not None:
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved, so asyncio does not log it as lost

    async def publish_ccxt(self, raw: list, recv: int) -> None:
        """ccxt unified trades -> Trade / TradeBatch per symbol (Connected before a symbol's first)."""
        feed = self.feed
        per_symbol: dict[str, list] = {}
        for t in raw:
            try:
                trade = parse.trade(feed.venue, t, recv)
            except PARSE_ERRORS as exc:
                feed.bad("trades", f"{exc!r} in {t!r:.200}")
                continue
            per_symbol.setdefault(trade.symbol, []).append(trade)
        for symbol, trades in per_symbol.items():
            await self.connected(symbol)
            for event in trade_events(trades, feed.settings.max_batch):
                await feed.publish(event)
            feed.counters["events.trade"] += len(trades)
