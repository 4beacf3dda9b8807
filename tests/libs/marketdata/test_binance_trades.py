"""The Binance fast trade normaliser against ccxt.pro's own parse, on recorded Binance trades.

Frames are rebuilt field for field from the real captures in ../shared/data (spot ``@trade``
with ``M``, USD-M ``@trade`` with ``X``, and ``@aggTrade`` from the same rows). Each frame goes
through ccxt.pro binance's ``handle_message`` (``handle_trade`` -> ``parse_ws_trade``) plus
``parse.trade`` on one instance, and through the TradeTap on another; the events must be equal
field by field, ts_recv aside. Markets come from a local sim_exchange through ccxt's
``load_markets``, so symbol resolution is ccxt's real one.
"""
from __future__ import annotations

import asyncio
import csv
import gzip
import itertools

import ccxt.pro as ccxtpro
import msgspec
import pytest
import pytest_asyncio

from tradebus.data import data_dir
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.marketdata import parse
from tradebus.marketdata.binance_trades import TradeTap
from tradebus.marketdata.emit import trade_events
from tradebus.proto import Trade, TradeBatch
from tradebus.proto.base import Side
from tradebus.services.sim_exchange.settings import default_config
from tradebus.services.sim_exchange.testing import running_sim

N = 600  # recorded rows per file


def _rows(name: str) -> list[dict]:
    with gzip.open(data_dir() / name, "rt", newline="") as fh:
        return list(itertools.islice(csv.DictReader(fh), N))


def spot_trade_frames() -> list[dict]:
    return [{"e": "trade", "E": int(r["event_time_ms"]), "s": "BTCUSDT", "t": int(r["trade_id"]), "p": r["price"],
             "q": r["qty"], "T": int(r["trade_time_ms"]), "m": r["is_buyer_maker"] == "true",
             "M": r["is_best_match"] == "true"}
            for r in _rows("binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz")]


def usdm_trade_frames() -> list[dict]:
    return [{"e": "trade", "E": int(r["event_time_ms"]), "T": int(r["trade_time_ms"]), "s": "BTCUSDT",
             "t": int(r["trade_id"]), "p": r["price"], "q": r["qty"], "X": r["order_type"],
             "m": r["is_buyer_maker"] == "true"}
            for r in _rows("binance_usdm_BTCUSDT_20240808T2354Z_trades.csv.gz")]


def agg_frames(frames: list[dict]) -> list[dict]:
    return [{"e": "aggTrade", "E": f["E"], "s": f["s"], "a": f["t"] - 1000, "p": f["p"], "q": f["q"],
             "f": f["t"], "l": f["t"], "T": f["T"], "m": f["m"], "M": True} for f in frames]


_made: list = []


@pytest_asyncio.fixture(scope="module")
async def markets():
    async with running_sim(default_config(speed="0")) as sim:
        ex = ccxtpro.binance({"enableRateLimit": False})
        point_ccxt_at_sim(ex, sim.url)
        try:
            yield sim.url, await ex.load_markets()
        finally:
            for made in _made:
                made.clients.clear()  # never connected: only the HTTP session to close
            await asyncio.gather(*(made.close() for made in [ex] + _made))  # each close() sleeps 0.25 s
            _made.clear()


def instance(url: str, markets: dict):
    ex = ccxtpro.binance({"enableRateLimit": False, "newUpdates": True})
    point_ccxt_at_sim(ex, url)
    ex.set_markets(markets)
    _made.append(ex)
    return ex


def client_for(ex, market_type: str):
    """A ccxt.pro Client of the venue's stream URL (never connected: frames are handed to it)."""
    return ex.client(ex.urls["api"]["ws"]["spot" if market_type == "spot" else "linear"])


def generic_trades(ex, client, frames: list[dict], symbol: str) -> list[Trade]:
    """ccxt.pro's path: handle_message -> handle_trade -> parse_ws_trade, then parse.trade."""
    out = []
    for frame in frames:
        ex.handle_message(client, frame)
        out.append(parse.trade("binance", ex.trades[symbol][-1], 0))
    return out


def tapped_events(ex, client, frames: list[dict], symbols: list[str], bad: list[str], chunk: int = 37,
                  max_batch: int = 1000) -> list[Trade | TradeBatch]:
    tap = TradeTap(bad.append)
    tap.install(ex)
    sink = tap.open(symbols)
    events = []
    for i in range(0, len(frames), chunk):  # several frames per "event-loop turn", as on the wire
        for frame in frames[i:i + chunk]:
            assert ex.handle_message(client, frame) is None
        for _, evs, n in sink.drain("binance", max_batch):
            assert n == sum(len(e) if isinstance(e, TradeBatch) else 1 for e in evs)
            events += evs
    return events


def flat(events) -> list[Trade]:
    out = []
    for e in events:
        out.extend(e.trades() if isinstance(e, TradeBatch) else [e])
    return out


def no_recv(trades: list[Trade]) -> list[Trade]:
    return [msgspec.structs.replace(t, ts_recv=0) for t in trades]


CASES = {
    "spot trade": (spot_trade_frames, "spot", "BTC/USDT"),
    "spot aggTrade": (lambda: agg_frames(spot_trade_frames()), "spot", "BTC/USDT"),
    "usdm trade": (usdm_trade_frames, "linear", "BTC/USDT:USDT"),
    "usdm aggTrade": (lambda: agg_frames(usdm_trade_frames()), "linear", "BTC/USDT:USDT"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_fast_path_equals_ccxt_parse_on_recorded_frames(markets, case):
    url, mkts = markets
    make, mtype, symbol = CASES[case]
    frames = make()
    ex_generic, ex_fast = instance(url, mkts), instance(url, mkts)
    expected = generic_trades(ex_generic, client_for(ex_generic, mtype), frames, symbol)
    bad: list[str] = []
    got = flat(tapped_events(ex_fast, client_for(ex_fast, mtype), frames, [symbol], bad))
    assert not bad
    assert len(got) == len(expected) == N
    assert no_recv(got) == no_recv(expected)
    for g, e in zip(got, expected):  # spelled out for the fields that matter most
        assert (g.symbol, g.side, g.trade_id, g.price, g.qty, g.ts_event) == (
            e.symbol, e.side, e.trade_id, e.price, e.qty, e.ts_event)
    # buyer is maker -> the aggressor sold; the recording has both
    assert {(f["m"], t.side) for f, t in zip(frames, got)} == {(True, Side.SELL), (False, Side.BUY)}
    assert all(t.ts_recv > 0 for t in got)
    assert not ex_fast.trades  # nothing went through ccxt's parse on the fast instance


async def test_batches_are_the_events_trade_events_makes(markets):
    """Same grouping rules as the generic path: a lone print is a Trade, else max_batch chunks."""
    url, mkts = markets
    frames = spot_trade_frames()
    ex_generic, ex_fast = instance(url, mkts), instance(url, mkts)
    expected = generic_trades(ex_generic, client_for(ex_generic, "spot"), frames, "BTC/USDT")
    for chunk, max_batch in ((1, 1000), (37, 10), (600, 1000), (600, 7)):
        got = tapped_events(instance(url, mkts), client_for(ex_fast, "spot"), frames, ["BTC/USDT"], [], chunk,
                            max_batch)
        want = [e for i in range(0, N, chunk) for e in trade_events(expected[i:i + chunk], max_batch)]
        assert [type(e) for e in got] == [type(e) for e in want]
        for g, w in zip(got, want):
            g_fields, w_fields = msgspec.structs.asdict(g), msgspec.structs.asdict(w)
            del g_fields["ts_recv"], w_fields["ts_recv"]
            assert g_fields == w_fields


async def test_market_comes_from_the_connection_and_the_combined_wrapper_is_read(markets):
    url, mkts = markets
    ex = instance(url, mkts)
    bad: list[str] = []
    tap = TradeTap(bad.append)
    tap.install(ex)
    sink = tap.open(["BTC/USDT", "BTC/USDT:USDT"])
    spot, usdm = spot_trade_frames()[0], usdm_trade_frames()[0]
    ex.handle_message(client_for(ex, "spot"), {"stream": "btcusdt@trade", "data": spot})
    ex.handle_message(client_for(ex, "linear"), usdm)
    got = {s: evs for s, evs, _ in sink.drain("binance", 1000)}
    assert [e.trade_id for e in got["BTC/USDT"]] == [str(spot["t"])]
    assert [e.trade_id for e in got["BTC/USDT:USDT"]] == [str(usdm["t"])]
    assert not bad


async def test_unrouted_symbols_and_other_messages_go_on_to_ccxt(markets):
    url, mkts = markets
    ex = instance(url, mkts)
    tap = TradeTap(lambda r: None)
    tap.install(ex)
    sink = tap.open(["BTC/USDT"])
    client = client_for(ex, "spot")
    eth = dict(spot_trade_frames()[0], s="ETHUSDT")
    ex.handle_message(client, eth)
    assert ex.trades["ETH/USDT"][-1]["id"] == str(eth["t"])  # ccxt parsed it
    assert not sink.drain("binance", 1000)
    tap.close(sink)
    ex.handle_message(client, spot_trade_frames()[0])  # closed: back to ccxt too
    assert len(ex.trades["BTC/USDT"]) == 1


BAD = [
    {"p": "abc"}, {"p": "-5"}, {"p": "0"}, {"q": "nan"}, {"q": "-1"}, {"p": "inf"}, {"m": None}, {"m": "yes"},
]


@pytest.mark.parametrize("change", BAD, ids=[str(b) for b in BAD])
async def test_a_malformed_trade_is_counted_and_skipped_and_the_next_goes_through(markets, change):
    url, mkts = markets
    good = spot_trade_frames()[:2]
    frame = dict(good[0], **change)
    # the generic path refuses it too (ccxt raises, or parse.trade does)
    ex_generic = instance(url, mkts)
    with pytest.raises(Exception):  # noqa: B017
        generic_trades(ex_generic, client_for(ex_generic, "spot"), [frame], "BTC/USDT")
    ex = instance(url, mkts)
    bad: list[str] = []
    events = tapped_events(ex, client_for(ex, "spot"), [frame, good[1]], ["BTC/USDT"], bad)
    assert len(bad) == 1
    assert [t.trade_id for t in flat(events)] == [str(good[1]["t"])]


async def test_a_trade_without_a_side_field_is_bad(markets):
    url, mkts = markets
    frame = {k: v for k, v in spot_trade_frames()[0].items() if k != "m"}
    ex = instance(url, mkts)
    bad: list[str] = []
    assert tapped_events(ex, client_for(ex, "spot"), [frame], ["BTC/USDT"], bad) == []
    assert len(bad) == 1
