"""Bars: ccxt OHLCV rows -> Bar events, each bar published closed once a later one opens."""
from __future__ import annotations

import time

from tradebus.marketdata import parse
from tradebus.marketdata.emit import BarCloser

from ..watch import PARSE_ERRORS, StreamHandler


class Bars(StreamHandler):
    stream = "bars"

    async def receive(self) -> bool:
        ex, interval = self.feed.exchange, self.feed.settings.bar_interval
        if self.grouped:
            result = await ex.watch_ohlcv_for_symbols([[s, interval] for s in self.symbols])
            recv = time.time_ns()
            by_symbol = {s: rows.get(interval) or [] for s, rows in result.items() if s in self.wanted}
        else:
            rows = await ex.watch_ohlcv(self.symbols[0], interval)
            recv = time.time_ns()
            by_symbol = {self.symbols[0]: rows}
        for symbol, rows in by_symbol.items():
            await self.connected(symbol)
            await self.publish_bars(symbol, interval, rows, recv)
        return True

    async def publish_bars(self, symbol: str, interval: str, rows, recv: int) -> None:
        """ccxt OHLCV rows -> the Bar events the symbol's BarCloser lets out (each bar once, when it closes)."""
        feed = self.feed
        closer = self.group.state.setdefault(symbol, BarCloser())
        for row in rows:
            try:
                bar = parse.bar(feed.venue, symbol, interval, row, False, recv)
            except PARSE_ERRORS as exc:
                feed.bad("bars", f"{exc!r} in {row!r:.200}")
                continue
            for event in closer.on_bar(bar):
                await feed.publish(event)
                feed.counters["events.bar"] += 1
