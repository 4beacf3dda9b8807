"""Multi-symbol watches (``for_symbols``) against sim_exchange through unmodified ccxt.pro: per-symbol
events from one connection per stream, fewer connections than per-symbol mode, and symbols removed
at run time unsubscribed at the venue, then added again."""
from __future__ import annotations

import contextlib
from collections import Counter

import pytest_asyncio

from tradebus.bus import Bus
from tradebus.marketdata.emit import status
from tradebus.proto import BBO, Bar, BookSnapshot, FeedStatus, MarketDataEvent, ServiceCommand, Trade, TradeBatch
from tradebus.proto.market import FeedState
from tradebus.retry import BackoffSettings
from tradebus.services.market_data.service import MarketData
from tradebus.services.market_data.settings import MarketDataSettings

from .conftest import Collector, assert_book_at_rest, rebuild, until, venue_settings

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
STREAMS = ["trades", "book", "bbo", "bars"]
BACKOFF = BackoffSettings(initial=0.05, multiplier=2.0, cap=0.5)
# the sim's stream names (spot) of one symbol, as ccxt.pro subscribes them
VENUE_STREAMS = {"trades": "{}@trade", "book": "{}@depth@100ms", "bbo": "{}@bookTicker", "bars": "{}@kline_1m"}


@contextlib.asynccontextmanager
async def running_md(sim, nats_server, name="sim", **kw):
    """A MarketData streaming SYMBOLS x STREAMS from the sim as venue ``name`` (its own subjects)."""
    bus = await Bus.connect(nats_server.url)
    sub_bus = await Bus.connect(nats_server.url)
    collector = Collector()
    await sub_bus.subscribe(f"md.{name}.>", MarketDataEvent, collector)
    await sub_bus.nc.flush()
    counters: Counter = Counter()
    settings = MarketDataSettings(venues=[venue_settings(sim, name=name, symbols=SYMBOLS, streams=STREAMS, **kw)],
                                  backoff=BACKOFF)
    md = MarketData(bus, settings, counters)
    await md.start()
    try:
        yield md, collector, counters
    finally:
        await md.stop()
        await bus.close()
        await sub_bus.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def grouped(sim, nats_server):
    async with running_md(sim, nats_server, for_symbols=True) as md:
        yield md


def of_symbol(events, cls, symbol):
    return [e for e in events if isinstance(e, cls) and e.symbol == symbol]


def trades_of(events, symbol):
    out = []
    for e in events:
        if isinstance(e, Trade) and e.symbol == symbol:
            out.append(e)
        elif isinstance(e, TradeBatch) and e.symbol == symbol:
            out.extend(e.trades())
    return out


def engine_top(sim, symbol, n=20):
    book = sim.engine.books[("spot", symbol.replace("/", ""))]
    return ([(float(p), float(q)) for p, q in book.bids.top(n)], [(float(p), float(q)) for p, q in book.asks.top(n)])


def subscribers(sim, symbol, stream):
    """The sim's connections subscribed to ``symbol``'s ``stream``."""
    name = VENUE_STREAMS[stream].format(symbol.replace("/", "").lower())
    return sim.hub.subs.get(("spot", name), set())


async def marker(md, col) -> int:
    """A cut in the bus: every event the collector gets after the returned index was published after now
    (one publishing connection, so NATS keeps the order)."""
    sent = status(next(iter(md.feeds)), "MARKER", None, FeedState.CONNECTED)
    await md.publish(sent)
    await until(lambda: sent in col.events)
    return col.events.index(sent)


async def test_grouped_streams_publish_per_symbol_events(sim, grouped):
    md, col, _ = grouped
    feed = md.feeds["sim"]
    assert set(feed.groups) == {"book", "bbo", "bars"} and not feed.tasks  # every stream rides a grouped watch
    assert feed.group == set(SYMBOLS) and all(g.symbols == set(SYMBOLS) for g in feed.groups.values())
    await until(lambda: all(len(of_symbol(col.events, BookSnapshot, s)) >= 20 for s in SYMBOLS)
                and all(of_symbol(col.events, BBO, s) and of_symbol(col.events, Bar, s) for s in SYMBOLS),
                step=lambda: sim.step(20))
    for symbol in SYMBOLS:
        states = [e.state for e in of_symbol(col.events, FeedStatus, symbol) if e.stream == "book"]
        assert states[:2] == ["snapshot_start", "snapshot_end"]
        snaps, deltas = rebuild(list(col.events), symbol)
        assert snaps >= 15 and deltas >= 15
        for q in of_symbol(col.events, BBO, symbol):
            assert q.bid_price < q.ask_price
        assert all(b.interval == "1m" for b in of_symbol(col.events, Bar, symbol))
    # at rest each published book is the venue's top 20 of that symbol, and the BBO its best levels
    for symbol in SYMBOLS:
        await assert_book_at_rest(md, col, sim, symbol)
        bids, asks = engine_top(sim, symbol, 1)
        await until(lambda: (lambda q: (q.bid_price, q.bid_qty, q.ask_price, q.ask_qty))(
            of_symbol(col.events, BBO, symbol)[-1]) == (*bids[0], *asks[0]))


async def test_a_depth_gap_resyncs_only_that_symbols_book(sim, grouped):
    md, col, counters = grouped
    await until(lambda: all(of_symbol(col.events, BookSnapshot, s) for s in SYMBOLS), step=lambda: sim.step(20))
    cut, resyncs = await marker(md, col), counters["resync.book"]
    sim.inject_depth_gap("ETHUSDT")

    def book_states(symbol):
        return [e.state for e in of_symbol(col.events[cut:], FeedStatus, symbol) if e.stream == "book"]
    await until(lambda: book_states("ETH/USDT")[-3:] == ["disconnected", "snapshot_start", "snapshot_end"],
                step=lambda: sim.step(20))
    gap = next(e for e in of_symbol(col.events[cut:], FeedStatus, "ETH/USDT") if e.state == "disconnected")
    assert "Checksum" in gap.reason and counters["resync.book"] == resyncs + 1
    n = len(of_symbol(col.events, BookSnapshot, "BTC/USDT"))
    await until(lambda: len(of_symbol(col.events, BookSnapshot, "BTC/USDT")) > n + 5, step=lambda: sim.step(20))
    assert book_states("BTC/USDT") == []  # the other book of the list went on, by deltas
    for symbol in SYMBOLS:
        assert rebuild(list(col.events), symbol)[0] >= 10
        await assert_book_at_rest(md, col, sim, symbol)


async def test_grouped_mode_opens_fewer_connections_than_per_symbol(sim, nats_server, grouped):
    md, col, _ = grouped
    await until(lambda: all(of_symbol(col.events, BookSnapshot, s) for s in SYMBOLS), step=lambda: sim.step(20))
    async with running_md(sim, nats_server, name="solo", for_symbols=False) as (single, single_col, _):
        feed = single.feeds["solo"]
        assert not feed.groups and not feed.group and len(feed.tasks) == len(SYMBOLS) * len(STREAMS)
        await until(lambda: all(of_symbol(single_col.events, BookSnapshot, s) and of_symbol(single_col.events, BBO, s)
                                and trades_of(single_col.events, s) for s in SYMBOLS), step=lambda: sim.step(20))
        per_symbol = len(feed.exchange.clients)
    grouped_clients = len(md.feeds["sim"].exchange.clients)
    # grouped: one connection per stream; per symbol: one per (symbol, stream), bars aside (ccxt shares those)
    assert grouped_clients == len(STREAMS) and per_symbol > grouped_clients


async def test_removed_symbol_is_unsubscribed_at_the_venue_and_can_be_added_again(sim, grouped):
    md, col, counters = grouped
    await until(lambda: all(subscribers(sim, s, k) for s in SYMBOLS for k in STREAMS))
    connections = set(md.feeds["sim"].exchange.clients)
    reply = await md.control(ServiceCommand(service="market_data", command="remove",
                                            args={"venue": "sim", "symbols": "ETH/USDT"}))
    assert "ETH/USDT" not in reply.split("active:")[1]
    # the venue is sent UNSUBSCRIBE for every stream of the symbol; the other symbol's stay, on the same connections
    await until(lambda: not any(subscribers(sim, "ETH/USDT", k) for k in STREAMS))
    assert all(subscribers(sim, "BTC/USDT", k) for k in STREAMS)
    assert set(md.feeds["sim"].exchange.clients) == connections
    await until(lambda: all(counters[f"unsubscribed.{k}"] >= 1 for k in STREAMS))
    cut = await marker(md, col)
    await until(lambda: len(of_symbol(col.events[cut:], BookSnapshot, "BTC/USDT")) >= 10
                and trades_of(col.events[cut:], "BTC/USDT"), step=lambda: sim.step(20))
    assert not [e for e in col.events[cut:] if getattr(e, "symbol", None) == "ETH/USDT"]
    # the remaining symbol's book, BBO and bars went on without a break: no Disconnected, no new snapshot cycle
    assert not [e for e in col.events[cut:] if isinstance(e, FeedStatus) and e.symbol == "BTC/USDT"
                and e.stream != "trade"]
    assert rebuild(list(col.events), "BTC/USDT")[0] >= 10

    reply = await md.control(ServiceCommand(service="market_data", command="add",
                                            args={"venue": "sim", "symbols": "ETH/USDT"}))
    assert all(f"sim:ETH/USDT:{k}" in reply for k in STREAMS)
    await until(lambda: all(subscribers(sim, "ETH/USDT", k) for k in STREAMS))
    assert set(md.feeds["sim"].exchange.clients) == connections  # each stream kept its one connection
    await until(lambda: len(of_symbol(col.events[cut:], BookSnapshot, "ETH/USDT")) >= 10
                and of_symbol(col.events[cut:], BBO, "ETH/USDT") and of_symbol(col.events[cut:], Bar, "ETH/USDT"),
                step=lambda: sim.step(20))
    states = [e.state for e in of_symbol(col.events[cut:], FeedStatus, "ETH/USDT") if e.stream == "book"]
    assert states[:2] == ["snapshot_start", "snapshot_end"]
    for symbol in SYMBOLS:
        assert rebuild(list(col.events), symbol)[0] >= 10


async def test_per_symbol_mode_also_unsubscribes_a_removed_symbol(sim, nats_server):
    async with running_md(sim, nats_server, name="solo", for_symbols=False) as (md, col, counters):
        await until(lambda: all(of_symbol(col.events, BookSnapshot, s) for s in SYMBOLS), step=lambda: sim.step(20))
        before = {k: len(subscribers(sim, "ETH/USDT", k)) for k in STREAMS}
        await md.control(ServiceCommand(service="market_data", command="remove",
                                        args={"venue": "solo", "symbols": "ETH/USDT", "streams": "book,bbo"}))
        await until(lambda: all(counters[f"unsubscribed.{k}"] >= 1 for k in ("book", "bbo")))
        assert {k: len(subscribers(sim, "ETH/USDT", k)) for k in STREAMS} == {**before, "book": before["book"] - 1,
                                                                              "bbo": before["bbo"] - 1}
        cut = await marker(md, col)
        await until(lambda: len(of_symbol(col.events[cut:], BookSnapshot, "BTC/USDT")) >= 5
                    and trades_of(col.events[cut:], "ETH/USDT"), step=lambda: sim.step(20))
        assert not of_symbol(col.events[cut:], BookSnapshot, "ETH/USDT") and not of_symbol(col.events[cut:], BBO,
                                                                                             "ETH/USDT")
