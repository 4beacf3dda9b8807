"""A paused sim_exchange replaying ../shared/data, and a market_data instance streaming from it
through real ccxt.pro onto a real NATS server; every md event is collected."""
from __future__ import annotations

from collections import Counter

import pytest_asyncio

from tradebus.bus import Bus
from tradebus.marketdata.book import LevelBook
from tradebus.proto import BookDelta, BookSnapshot, FeedStatus, MarketDataEvent
from tradebus.retry import BackoffSettings
from tradebus.services.market_data.service import MarketData
from tradebus.services.market_data.settings import MarketDataSettings, VenueSettings
from tradebus.services.sim_exchange.settings import default_config
from tradebus.services.sim_exchange.testing import running_sim, until  # noqa: F401  (re-exported to the tests)


class Collector:
    def __init__(self) -> None:
        self.events: list = []

    async def __call__(self, event, msg) -> None:
        self.events.append(event)

    def of(self, cls, symbol: str | None = None) -> list:
        return [e for e in self.events if isinstance(e, cls) and (symbol is None or e.symbol == symbol)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with running_sim(default_config(speed="0")) as venue:
        yield venue


def venue_settings(sim, **kw) -> VenueSettings:
    base = dict(name="sim", exchange="binance", sim_url=sim.url, options={"enableRateLimit": False},
                symbols=["BTC/USDT"], streams=["trades", "book", "bbo", "bars"], book_depth=20)
    base.update(kw)
    return VenueSettings(**base)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(sim, nats_server):
    """(MarketData, Collector, counters) streaming BTC/USDT and BTC/USDT:USDT from the sim."""
    bus = await Bus.connect(nats_server.url)
    sub_bus = await Bus.connect(nats_server.url)
    collector = Collector()
    await sub_bus.subscribe("md.sim.>", MarketDataEvent, collector)
    await sub_bus.nc.flush()
    counters: Counter = Counter()
    settings = MarketDataSettings(
        venues=[venue_settings(sim, symbols=["BTC/USDT", "BTC/USDT:USDT"],
                               streams=["trades", "book", "bbo", "bars", "funding"], funding_interval=0.5)],
        backoff=BackoffSettings(initial=0.05, multiplier=2.0, cap=0.5))
    md = MarketData(bus, settings, counters)
    await md.start()
    yield md, collector, counters
    await md.stop()
    await bus.close()
    await sub_bus.close()


def rebuild(events, symbol) -> tuple[int, int]:
    """Replay the bus in order: a book rebuilt from ``symbol``'s deltas equals each of its snapshots."""
    book, have, snaps, deltas = LevelBook(), False, 0, 0
    for e in events:
        if getattr(e, "symbol", None) != symbol:
            continue
        if isinstance(e, FeedStatus) and e.stream == "book" and e.state != "snapshot_end":
            book.clear()
            have = False
        elif isinstance(e, BookSnapshot):
            if have:
                assert book.top(20) == (e.bids, e.asks) and book.sequence == e.sequence
                snaps += 1
            else:
                book.reset(e)
                have = True
            assert len(e.bids) == len(e.asks) == 20 and e.bids[0][0] < e.asks[0][0]
        elif isinstance(e, BookDelta) and have:
            book.apply(e)
            deltas += 1
    return snaps, deltas


async def assert_book_at_rest(md, col, sim, symbol: str, market: str = "spot", depth: int = 20) -> None:
    """Once the feed holds the venue's last book version, the last BookSnapshot published for
    ``symbol`` is the venue's top ``depth`` (its sequence may be older: a last change beyond the
    top ``depth`` publishes nothing)."""
    engine = sim.engine.books[(market, symbol.split(":")[0].replace("/", ""))]
    books = [feed.exchange.orderbooks for feed in md.feeds.values()]
    await until(lambda: any((b.get(symbol) or {}).get("nonce") == engine.update_id for b in books))

    def venue_top():
        return ([(float(p), float(q)) for p, q in engine.bids.top(depth)],
                [(float(p), float(q)) for p, q in engine.asks.top(depth)])

    def published_top():
        last = [e for e in col.events if isinstance(e, BookSnapshot) and e.symbol == symbol][-1]
        return last.bids, last.asks
    await until(lambda: published_top() == venue_top())
