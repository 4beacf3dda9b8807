"""market_data refuses a subscription the venue cannot stream, before any watch starts."""
from __future__ import annotations

from collections import Counter

import pytest

from tradebus.exchanges import UnsupportedSubscription
from tradebus.retry import BackoffSettings
from tradebus.services.market_data.feed import VenueFeed
from tradebus.services.market_data.settings import VenueSettings


async def test_unsupported_subscription_is_refused_with_a_reason():
    async def publish(event):
        raise AssertionError("nothing may be published")
    feed = VenueFeed(VenueSettings(name="bybit", exchange="bybit", symbols=[], book_depth=1000, bar_interval="8h"),
                     BackoffSettings(), publish, Counter())
    try:
        with pytest.raises(UnsupportedSubscription, match="streams books up to 500 levels"):
            feed.add("BTC/USDT:USDT", ["trades", "book"])
        with pytest.raises(UnsupportedSubscription, match="no '8h' bars"):
            feed.add("BTC/USDT:USDT", ["bars"])
        assert not feed.tasks and not feed.trade_group.symbols and not feed.groups  # nothing started, not even the trades
    finally:
        await feed.exchange.close()
