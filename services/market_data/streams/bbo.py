"""Best bid/ask: ccxt's bids-asks or ticker -> BBO, published when the best levels change."""
from __future__ import annotations

import time

from tradebus.marketdata import parse

from ..watch import PARSE_ERRORS, StreamHandler


class Bbo(StreamHandler):
    stream = "bbo"

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.handled: dict[str, dict] = {}  # per symbol: the ccxt entry last handled

    async def receive(self) -> bool:
        ex, recv = self.feed.exchange, None
        if self.grouped:
            tickers = await ex.watch_bids_asks(self.symbols)  # {symbol: entry} of what changed
            recv = time.time_ns()
            for symbol, raw in tickers.items():
                if symbol in self.wanted and raw is not None:
                    await self.publish_bbo(symbol, raw, recv)
            await self.publish_unseen()
            return True
        symbol = self.symbols[0]
        if ex.has.get("watchBidsAsks"):
            raw = (await ex.watch_bids_asks([symbol])).get(symbol)
        else:
            raw = await ex.watch_ticker(symbol)
        good = raw is not None and await self.publish_bbo(symbol, raw, time.time_ns())
        await self.publish_unseen()
        return good

    async def publish_unseen(self) -> None:
        """Best levels that changed while no watch was waiting. ccxt.pro resolves only a pending
        watch (it keeps the entry in ``bidsasks`` / ``tickers``), so an update landing while the
        previous one is being published would wait for the symbol's next change (a BBO at rest
        would stay stale). Only symbols already published once are caught up."""
        ex = self.feed.exchange
        caught = True
        while caught:  # again while publishing let more land
            caught = False
            latest = (ex.bidsasks if ex.has.get("watchBidsAsks") else ex.tickers) or {}
            for symbol in self.symbols:
                raw = latest.get(symbol)
                if raw is not None and raw is not self.handled.get(symbol) and symbol in self.group.state:
                    await self.publish_bbo(symbol, raw, time.time_ns())
                    caught = True

    async def publish_bbo(self, symbol: str, raw: dict, recv: int) -> bool:
        """A ccxt ticker / bids-asks entry -> BBO when the best levels changed (the group's state holds
        the last top published per symbol). False: it did not parse."""
        feed = self.feed
        self.handled[symbol] = raw
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
