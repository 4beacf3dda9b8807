"""Funding rates of perpetuals and futures, polled over REST every ``funding_interval`` seconds."""
from __future__ import annotations

import asyncio
import logging
import time

from tradebus.marketdata import parse

from ..watch import PARSE_ERRORS, StreamEnd, StreamHandler

log = logging.getLogger("tradebus.market_data")


class Funding(StreamHandler):
    stream = "funding"
    polled = False

    async def subscribe(self) -> None:
        await super().subscribe()
        symbol = self.symbols[0]
        market = self.feed.exchange.markets[symbol]
        if not (market.get("swap") or market.get("future")):
            log.info("%s %s: no funding stream for a %s market", self.feed.venue, symbol, market.get("type"))
            raise StreamEnd(symbol)
        self.polled = False

    async def receive(self) -> bool:
        feed, symbol = self.feed, self.symbols[0]
        if self.polled:
            await asyncio.sleep(feed.settings.funding_interval)
        self.polled = True
        raw = await feed.exchange.fetch_funding_rate(symbol)
        recv = time.time_ns()
        try:
            event = parse.funding(feed.venue, raw, recv)
        except PARSE_ERRORS as exc:
            feed.bad("funding", f"{exc!r}")
        else:
            await self.connected(symbol)
            await feed.publish(event)
            feed.counters["events.funding"] += 1
        return True
