"""The one watch loop of market_data on a scripted stream: what every stream handler inherits."""
from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter

import pytest

from tradebus.proto import FeedStatus
from tradebus.retry import BackoffSettings
from tradebus.services.market_data.watch import StreamEnd, StreamGroup, StreamHandler, run_watch


class Feed:
    """What a handler uses of its VenueFeed: settings, counters, the venue token and publish."""

    def __init__(self) -> None:
        self.backoff = BackoffSettings(initial=0.01, multiplier=2.0, cap=0.04)
        self.counters: Counter = Counter()
        self.venue = "v"
        self.events: list = []

    async def publish(self, event) -> None:
        self.events.append(event)


class Scripted(StreamHandler):
    """Plays ``script``: "ok" a good message, "bad" one that was skipped, an exception is raised."""

    stream = "bbo"

    def __init__(self, feed, script, group) -> None:
        super().__init__(feed, ["A/B", "C/D"], group, "spot")
        self.script, self.subscriptions = list(script), 0

    async def subscribe(self) -> None:
        await super().subscribe()
        self.subscriptions += 1
        self.group.state.setdefault("A/B", "state")

    async def receive(self) -> bool:
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if step == "ok":
            await self.connected("A/B")
        return step == "ok"


async def test_errors_back_off_report_and_resubscribe_and_a_good_message_resets(caplog):
    feed, group = Feed(), StreamGroup("bbo")
    script = [OSError("down"), OSError("down"), "bad", OSError("down"), "ok", OSError("down"), StreamEnd()]
    handler = Scripted(feed, script, group)
    caplog.set_level(logging.WARNING, logger="tradebus.market_data")
    await asyncio.wait_for(run_watch(handler), 5)
    delays = [float(d) for d in re.findall(r"retry in ([0-9.]+)s", caplog.text)]
    # a skipped message does not reset the backoff, a good one does
    assert delays == [0.01, 0.02, 0.04, 0.01]
    assert handler.subscriptions == 5 and group.subscribed == {"spot": ["A/B", "C/D"]}
    assert feed.counters["errors.bbo"] == 4 and feed.counters["connected.bbo"] == 1
    states = [(e.symbol, e.state) for e in feed.events if isinstance(e, FeedStatus)]
    assert states == [("A/B", "disconnected"), ("C/D", "disconnected")] * 3 + [
        ("A/B", "connected"), ("A/B", "disconnected"), ("C/D", "disconnected")]
    assert all("OSError: down" in e.reason for e in feed.events if e.state == "disconnected")
    assert group.state == {"A/B": "state"} and group.connected == set()   # state started over, then set again


async def test_cancellation_stops_the_loop():
    feed = Feed()

    class Forever(Scripted):
        async def receive(self) -> bool:
            await asyncio.sleep(3600)
            return True

    task = asyncio.ensure_future(run_watch(Forever(feed, [], StreamGroup("bbo"))))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not feed.events
