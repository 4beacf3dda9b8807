"""Best bid/ask: ccxt's bids-asks or ticker -> BBO, published when the best levels change."""
from __future__ import annotations

import time

from tradebus.marketdata import parse

from ..watch import PARSE_ERRORS, StreamHandler


class Bbo(StreamHandler):
    stream = "bbo"

    async def receive(self) -> bool:
        ex, recv = self.feed.exchange, None
        if self.grouped:
            tickers = await ex.watch_bids_asks(self.symbols)  # {symbol: entry} of what changed
            recv = time.time_ns()
            for symbol, raw in tickers.items():
                if symbol in self.wanted and raw is not None:
                    await self.publish_bbo(symbol, raw, recv)
            return True
        symbol = self.symbols[0]
        if ex.has.get("watchBidsAsks"):
            raw = (await ex.watch_bids_asks([symbol])).get(symbol)
        else:
            raw = await ex.watch_ticker(symbol)
        return raw is not None and await self.publish_bbo(symbol, raw, time.time_ns())

    async def publish_bbo(self, symbol: str, raw: dict, recv: int) -> bool:
        """A ccxt ticker / bids-asks entry -> BBO when the best levels changed (the group's state holds
        the last top published per symbol). False: it did not parse."""
        feed = self.feed
        try:
            bbo = parse.bbo_from_ticker(feed.venue, raw, recv)
        except PARSE_ERRORS as exc:
            feed.bad("bbo", f"{exc!r}")
            return False
        await self.connected(symbol)
        top = (bbo.bid_price, bbo.bid_qty, bbo.ask_price, bbo.ask_qty)
        if top != self.group.state.get(symbol):
            self.group.state[symbol] = top
            await feed.publish(bbo)
            feed.counters["events.bbo"] += 1
        return True
