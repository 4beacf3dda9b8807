"""Trades end to end through the real sim_exchange and a real ccxt.pro connection, with the Binance
fast normaliser on and (for comparison) off: every print the venue makes after subscription
arrives once and in order, a malformed trade frame is counted and skipped, the stream goes on."""
from __future__ import annotations

from collections import Counter

import pytest

from tradebus.bus import Bus
from tradebus.proto import FeedStatus, MarketDataEvent
from tradebus.retry import BackoffSettings
from tradebus.services.market_data.service import MarketData
from tradebus.services.market_data.settings import MarketDataSettings

from .conftest import Collector, until, venue_settings
from .test_live import trades_of

SYMBOLS = {"BTC/USDT": ("spot", "BTCUSDT"), "BTC/USDT:USDT": ("usdm", "BTCUSDT")}


async def start(sim, nats_server, fast: bool, for_symbols: bool):
    bus, sub = await Bus.connect(nats_server.url), await Bus.connect(nats_server.url)
    col = Collector()
    await sub.subscribe("md.sim.>", MarketDataEvent, col)
    await sub.nc.flush()
    counters: Counter = Counter()
    md = MarketData(bus, MarketDataSettings(
        venues=[venue_settings(sim, symbols=list(SYMBOLS), streams=["trades"], fast_trades=fast,
                               for_symbols=for_symbols)],
        backoff=BackoffSettings(initial=0.05, multiplier=2.0, cap=0.5)), counters)
    await md.start()
    return md, col, counters, (bus, sub)


def complete(sim, col, symbol: str) -> bool:
    """What arrived is exactly what the venue printed from the first received trade on."""
    got = [t.trade_id for t in trades_of(col, symbol)]
    printed = [str(t.trade_id) for t in sim.engine.trades[SYMBOLS[symbol]]]
    return bool(got) and got[0] in printed and got == printed[printed.index(got[0]):]


async def settle(sim, col, steps: int = 300) -> None:
    for _ in range(steps // 20):
        sim.step(20)
    for symbol in SYMBOLS:
        await until(lambda: complete(sim, col, symbol))


@pytest.mark.parametrize("fast, for_symbols", [(True, True), (True, False), (False, True)],
                         ids=["fast", "fast-per-symbol", "generic"])
async def test_trades_arrive_complete_and_in_order_and_bad_frames_are_skipped(sim, nats_server, fast, for_symbols):
    md, col, counters, buses = await start(sim, nats_server, fast, for_symbols)
    try:
        feed = md.feeds["sim"]
        assert (feed.tap is not None) is fast
        assert bool(feed.group) is for_symbols  # one watch_trades_for_symbols loop, or watch_trades per symbol
        await until(lambda: all(trades_of(col, s) for s in SYMBOLS), step=lambda: sim.step(20))
        await settle(sim, col)
        for symbol in SYMBOLS:
            assert len(trades_of(col, symbol)) >= 5
            assert [e.state for e in col.of(FeedStatus, symbol) if e.stream == "trade"][0] == "connected"
        # ccxt's own trade cache is untouched on the fast path: the tap took every trade
        assert bool(feed.exchange.trades.get("BTC/USDT")) is not fast

        before = counters["bad.venue_message"] + counters["bad.trades"]
        spot = [c for c in feed.exchange.clients.values() if "/stream/" in c.url]
        assert len(spot) == 1  # binance: one spot connection either way
        for frame in (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1,"m":true,"M":true}',
                      b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":2,"p":"1",'
                      b'"q":"1","T":1,"m":"maybe","M":true}}'):
            spot[0].handle_text_or_binary_message(frame)
        await until(lambda: counters["bad.venue_message"] + counters["bad.trades"] >= before + (2 if fast else 1))
        await settle(sim, col)  # nothing lost, nothing out of order after the bad frames
        assert counters["errors.trades"] == 0
    finally:
        await md.stop()
        for b in buses:
            await b.close()
