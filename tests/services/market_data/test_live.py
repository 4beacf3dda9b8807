"""market_data against sim_exchange through unmodified ccxt.pro: every stream, gaps, drops, control."""
from __future__ import annotations

import csv
import gzip

from tradebus.data import data_dir
from tradebus.proto import BBO, Bar, BookSnapshot, FeedStatus, FundingRate, Instrument, Trade, TradeBatch

from .conftest import assert_book_at_rest, rebuild, until

SYM = "BTC/USDT"


def trades_of(collector, symbol=SYM) -> list[Trade]:
    out = []
    for e in collector.events:
        if isinstance(e, Trade) and e.symbol == symbol:
            out.append(e)
        elif isinstance(e, TradeBatch) and e.symbol == symbol:
            out.extend(e.trades())
    return out


def states(collector, symbol=SYM, stream="book") -> list[str]:
    return [e.state for e in collector.of(FeedStatus, symbol) if e.stream == stream]


def engine_top(sim, n=20, market="spot", symbol="BTCUSDT"):
    book = sim.engine.books[(market, symbol)]
    return ([(float(p), float(q)) for p, q in book.bids.top(n)], [(float(p), float(q)) for p, q in book.asks.top(n)])


async def test_trades_are_the_venue_prints(sim, live):
    md, col, _ = live
    await until(lambda: len(trades_of(col)) >= 40, step=lambda: sim.step(20))
    engine = {str(t.trade_id): t for t in sim.engine.trades[("spot", "BTCUSDT")]}
    seen = trades_of(col)
    assert len({t.trade_id for t in seen}) == len(seen)  # no duplicates
    for t in seen:
        printed = engine[t.trade_id]
        assert (t.price, t.qty) == (float(printed.price), float(printed.qty))
        assert t.side == ("sell" if printed.buyer_maker else "buy")
        assert t.ts_event == printed.time * 1_000_000 and t.ts_recv >= t.ts_event
    assert col.of(TradeBatch, SYM), "a burst of trades is published as a TradeBatch"
    assert "connected" in states(col, stream="trade")
    feed = md.feeds["sim"]  # trades of both symbols ride watch_trades_for_symbols (one loop per market type)
    assert feed.group == {SYM, "BTC/USDT:USDT"} and not any(k == "trades" for _, k in feed.tasks)


async def test_book_snapshot_cycle_and_deltas_rebuild_every_snapshot(sim, live):
    md, col, _ = live
    await until(lambda: len(col.of(BookSnapshot, SYM)) >= 30, step=lambda: sim.step(20))
    assert states(col)[:2] == ["snapshot_start", "snapshot_end"]
    # replay the bus in order: a consumer book rebuilt from deltas equals every snapshot
    snaps, deltas = rebuild(list(col.events), SYM)
    assert snaps >= 25 and deltas >= 25
    # at rest the published book is the venue's top 20
    await assert_book_at_rest(md, col, sim, SYM)


async def test_depth_gap_resyncs_the_book(sim, live):
    md, col, counters = live
    await until(lambda: col.of(BookSnapshot, SYM), step=lambda: sim.step(20))
    before = len(col.events)
    sim.inject_depth_gap("BTCUSDT")
    await until(lambda: "disconnected" in [e.state for e in col.events[before:] if isinstance(e, FeedStatus)
                                           and e.symbol == SYM and e.stream == "book"], step=lambda: sim.step(20))
    gap = next(e for e in col.events[before:] if isinstance(e, FeedStatus) and e.symbol == SYM
               and e.state == "disconnected")
    assert "Checksum" in gap.reason or "nonce" in gap.reason.lower()
    await until(lambda: [e.state for e in col.events[before:] if isinstance(e, FeedStatus) and e.symbol == SYM
                         and e.stream == "book"][-2:] == ["snapshot_start", "snapshot_end"]
                or states(col)[-1] == "snapshot_end" and states(col).count("snapshot_end") >= 2,
                step=lambda: sim.step(20))
    assert counters["resync.book"] >= 1
    await assert_book_at_rest(md, col, sim, SYM)


async def test_bbo_follows_the_best_levels(sim, live):
    md, col, _ = live
    await until(lambda: len(col.of(BBO, SYM)) >= 10, step=lambda: sim.step(10))
    for q in col.of(BBO, SYM):
        assert q.bid_price < q.ask_price and q.bid_qty > 0 and q.ask_qty > 0
    tops = [(q.bid_price, q.bid_qty, q.ask_price, q.ask_qty) for q in col.of(BBO, SYM)]
    assert all(a != b for a, b in zip(tops, tops[1:])), "a BBO only on a best-level change"
    bids, asks = engine_top(sim, 1)
    await until(lambda: tops_now(col) == (*bids[0], *asks[0]))


def tops_now(col):
    q = col.of(BBO, SYM)[-1]
    return (q.bid_price, q.bid_qty, q.ask_price, q.ask_qty)


async def test_bars_are_the_venue_klines(sim, live):
    md, col, _ = live
    await until(lambda: col.of(Bar, SYM), step=lambda: sim.step(20), timeout=15)
    bar = col.of(Bar, SYM)[-1]
    kline = next(k for k in sim.engine.klines[("spot", "BTCUSDT")] if k.open_time * 1_000_000 == bar.ts_open)
    assert bar.interval == "1m" and bar.open == float(kline.open) and bar.low <= bar.close <= bar.high


async def test_funding_and_instruments(sim, live):
    md, col, _ = live
    await until(lambda: col.of(FundingRate, "BTC/USDT:USDT"))
    f = col.of(FundingRate, "BTC/USDT:USDT")[-1]
    assert f.rate == 0.0001 and f.mark_price > 0 and f.ts_next_funding > f.ts_event > 0
    assert not col.of(FundingRate, SYM), "no funding for a spot market"
    await until(lambda: {i.symbol for i in col.of(Instrument)} >= {SYM, "BTC/USDT:USDT"})
    spot = next(i for i in col.of(Instrument) if i.symbol == SYM)
    perp = next(i for i in col.of(Instrument) if i.symbol == "BTC/USDT:USDT")
    assert (spot.tick_size, spot.lot_size, spot.min_notional, spot.price_precision) == (0.01, 0.00001, 5.0, 2)
    assert (perp.market_type, perp.tick_size, perp.settle) == ("swap", 0.1, "USDT")
    n = len(col.of(Instrument))
    from tradebus.proto import ServiceCommand
    assert (await md.control(ServiceCommand(service="market_data", command="instruments"))).startswith("published 2")
    await until(lambda: len(col.of(Instrument)) >= n + 2)


async def test_dropped_connection_disconnects_backs_off_and_resubscribes(sim, live):
    md, col, counters = live
    await until(lambda: col.of(BookSnapshot, SYM), step=lambda: sim.step(20))
    before, errors = len(col.events), counters["errors.trades"]
    assert await sim.drop_ws() >= 1
    await until(lambda: {("trade", "disconnected"), ("book", "disconnected")} <= {
        (e.stream, e.state) for e in col.events[before:] if isinstance(e, FeedStatus) and e.symbol == SYM},
        step=lambda: sim.step(5))
    after = col.events[before:]
    await until(lambda: any(isinstance(e, FeedStatus) and e.symbol == SYM and e.stream == "book"
                            and e.state == "snapshot_end" for e in col.events[before:]), step=lambda: sim.step(20))
    n = len(trades_of(col))
    await until(lambda: len(trades_of(col)) > n + 5, step=lambda: sim.step(20))
    assert counters["errors.trades"] > errors
    assert any(isinstance(e, FeedStatus) and e.state == "connected" and e.stream == "trade"
               for e in col.events[before:])
    del after


async def test_symbols_added_and_removed_at_run_time(sim, live):
    from tradebus.proto import ServiceCommand
    md, col, _ = live
    msg = await md.control(ServiceCommand(service="market_data", command="add",
                                          args={"venue": "sim", "symbols": "ETH/USDT", "streams": "trades"}))
    assert "sim:ETH/USDT:trades" in msg
    await until(lambda: trades_of(col, "ETH/USDT"), step=lambda: sim.step(20))
    assert [i.tick_size for i in col.of(Instrument, "ETH/USDT")] == [0.01]  # published when first added
    msg = await md.control(ServiceCommand(service="market_data", command="remove",
                                          args={"venue": "sim", "symbols": "ETH/USDT"}))
    assert "ETH/USDT" not in msg.split("active:")[1]
    for bad in ({"venue": "nope", "symbols": "X/Y"}, {"venue": "sim", "symbols": "ETH/USDT", "streams": "zz"}):
        try:
            await md.control(ServiceCommand(service="market_data", command="add", args=bad))
        except ValueError:
            pass
        else:
            raise AssertionError(f"{bad} accepted")


async def test_unknown_symbol_is_reported_and_nothing_else_stops(sim, live):
    from tradebus.proto import ServiceCommand
    md, col, counters = live
    await md.control(ServiceCommand(service="market_data", command="add",
                                    args={"venue": "sim", "symbols": "NOPE/USDT", "streams": "trades"}))
    await until(lambda: any(isinstance(e, FeedStatus) and e.symbol == "NOPE/USDT" and e.state == "disconnected"
                            for e in col.events))
    n = len(trades_of(col))
    await until(lambda: len(trades_of(col)) > n, step=lambda: sim.step(20))
    await md.control(ServiceCommand(service="market_data", command="remove",
                                    args={"venue": "sim", "symbols": "NOPE/USDT"}))


def _bookticker_tops() -> set[tuple[float, float, float, float]]:
    path = data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_bookticker.csv.gz"
    with gzip.open(path, "rt") as fh:
        rows = csv.DictReader(fh)
        return {(float(r["bid_price"]), float(r["bid_qty"]), float(r["ask_price"]), float(r["ask_qty"]))
                for r in rows}


async def test_recorded_depth_through_the_sim_matches_the_recorded_book_ticker(sim, live):
    """The sim replays the real snapshot + diffs; every top of book market_data publishes (outside
    the two injected/dropped resyncs, which are the same data) is a state the venue's own
    bookTicker stream reported."""
    md, col, _ = live
    await until(lambda: len(col.of(BookSnapshot, SYM)) >= 150, step=lambda: sim.step(20), timeout=60)
    tops = _bookticker_tops()
    snaps = col.of(BookSnapshot, SYM)
    seen = [(s.bids[0][0], s.bids[0][1], s.asks[0][0], s.asks[0][1]) for s in snaps]
    matched = sum(t in tops for t in seen)
    assert matched >= 0.97 * len(seen), f"{matched}/{len(seen)} tops found in the bookTicker recording"


async def test_venue_messages_that_do_not_parse_are_counted_and_the_streams_go_on(sim, live):
    """Malformed frames pushed into ccxt.pro's own websocket client, as if the venue sent them."""
    md, col, counters = live
    await until(lambda: trades_of(col), step=lambda: sim.step(20))
    exchange = md.feeds["sim"].exchange
    bad_before = counters["bad.venue_message"]
    frames = [b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"abc","q":"1",'
              b'"T":1,"m":true}}',
              b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":2,"p":"-5","q":"1",'
              b'"T":1,"m":true}}',
              b'not json at all']
    for client in list(exchange.clients.values()):
        for frame in frames:
            client.handle_text_or_binary_message(frame)
    # the fast trade path counts them when the feed drains its batch, in the next loop turn
    await until(lambda: counters["bad.venue_message"] >= bad_before + 2)
    n = len(trades_of(col))
    await until(lambda: len(trades_of(col)) > n + 3, step=lambda: sim.step(20))
    assert all(t.price > 0 for t in trades_of(col))


async def test_a_crossed_book_is_dropped_and_resubscribed(sim, live):
    """A valid-sequence depth frame that crosses the book: counted, Disconnected, fresh snapshot."""
    import json
    import time

    md, col, counters = live
    await until(lambda: col.of(BookSnapshot, SYM), step=lambda: sim.step(20))
    exchange = md.feeds["sim"].exchange
    book = exchange.orderbooks[SYM]
    nonce, best_ask = book["nonce"], book["asks"][0][0]
    before, resyncs = len(col.events), counters["resync.book"]
    frame = {"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": int(time.time() * 1000), "s": "BTCUSDT", "U": nonce + 1, "u": nonce + 1,
        "b": [[f"{best_ask + 100:.2f}", "1.00000000"]], "a": []}}
    # the connection whose pending future is this book's (one per subscription on ccxt's binance)
    owners = [c for c in exchange.clients.values() if f"orderbook::{SYM}" in c.futures]
    assert len(owners) == 1
    owners[0].handle_text_or_binary_message(json.dumps(frame))
    await until(lambda: counters["resync.book"] > resyncs)
    await until(lambda: [e.state for e in col.events[before:] if isinstance(e, FeedStatus) and e.symbol == SYM
                         and e.stream == "book"][-3:] == ["disconnected", "snapshot_start", "snapshot_end"],
                step=lambda: sim.step(20))
    reason = next(e.reason for e in col.events[before:] if isinstance(e, FeedStatus) and e.state == "disconnected")
    assert "crossed" in reason and counters["bad.book"] >= 1
    assert all(s.bids[0][0] < s.asks[0][0] for s in col.of(BookSnapshot, SYM))
    await assert_book_at_rest(md, col, sim, SYM)
