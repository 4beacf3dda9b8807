"""The BBO handler against the sim through unmodified ccxt.pro: best levels that change while the
previous BBO is being published (no watch waiting, so ccxt.pro only keeps them) are published
before the next watch, so a BBO at rest is the venue's, not one update behind."""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tradebus.proto import BBO
from tradebus.retry import BackoffSettings
from tradebus.services.market_data.feed import VenueFeed
from tradebus.services.market_data.streams import HANDLERS
from tradebus.services.market_data.watch import StreamGroup

from .conftest import until, venue_settings

SYMBOL = "BTC/USDT"


def venue_top(sim) -> tuple[float, float, float, float]:
    book = sim.engine.books[("spot", "BTCUSDT")]
    bid, ask = book.bids.top(1)[0], book.asks.top(1)[0]
    return float(bid[0]), float(bid[1]), float(ask[0]), float(ask[1])


@pytest.mark.parametrize("for_symbols", [True, False], ids=["grouped", "per_symbol"])
async def test_best_levels_changed_during_a_publish_are_not_left_behind(sim, for_symbols):
    events: list = []
    moved: list = []

    async def publish(event) -> None:
        events.append(event)
        if isinstance(event, BBO) and not moved:  # while this one is being published the venue moves
            before = venue_top(sim)
            while venue_top(sim) == before:
                sim.step(5)
            cached = lambda: feed.exchange.bidsasks.get(SYMBOL) or {}  # noqa: E731
            await until(lambda: (cached().get("bid"), cached().get("bidVolume"), cached().get("ask"),
                                 cached().get("askVolume")) == venue_top(sim))
            moved.append(before)

    feed = VenueFeed(venue_settings(sim, symbols=[SYMBOL], streams=["bbo"], for_symbols=for_symbols),
                     BackoffSettings(initial=0.05, cap=0.5), publish, Counter())
    handler = HANDLERS["bbo"](feed, [SYMBOL], StreamGroup("bbo") if for_symbols else None, "spot")
    try:
        await handler.subscribe()
        received = asyncio.ensure_future(handler.receive())
        await until(lambda: received.done() or any(isinstance(e, BBO) for e in events), step=lambda: sim.step(5))
        await asyncio.wait_for(received, 10)
        assert moved and received.result()
        last = [e for e in events if isinstance(e, BBO)][-1]
        assert (last.bid_price, last.bid_qty, last.ask_price, last.ask_qty) == venue_top(sim) != moved[0]
    finally:
        await feed.stop()
