"""Replay of the real Binance captures in ../shared/data gives the live event sequence."""
from __future__ import annotations

import bisect
import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest

from tradebus.data import data_dir
from tradebus.marketdata.book import LevelBook
from tradebus.marketdata.replay import Replayer, detect_kind, open_sources
from tradebus.proto import BBO, Bar, BookDelta, BookSnapshot, FeedStatus, Trade

D = data_dir()
SPOT = "binance_spot_BTCUSDT_20240808T2354Z_"
USDM = "binance_usdm_BTCUSDT_20240808T2354Z_"


async def replay(paths, **kw):
    events, counters = [], Counter()

    async def publish(e):
        events.append(e)
    sources = open_sources(paths, "binance", "BTC/USDT", counters=counters, **kw)
    n = await Replayer(sources, publish, counters=counters).run()
    assert n == len(events)
    return events, counters


def tickers(path: Path) -> tuple[list[int], list[tuple]]:
    ids, tops = [], []
    with gzip.open(path, "rt") as fh:
        for r in csv.DictReader(fh):
            ids.append(int(r["update_id"]))
            tops.append((float(r["bid_price"]), float(r["bid_qty"]), float(r["ask_price"]), float(r["ask_qty"])))
    return ids, tops


@pytest.mark.parametrize("prefix,updates,ticker,allowed", [
    (SPOT, "depth_updates.csv.gz", "bookticker.csv.gz", 2),
    (USDM, "depth_updates_first45s.csv.gz", "bookticker_first45s.csv.gz", 0)])
async def test_book_replay_top_of_book_matches_the_recorded_book_ticker(prefix, updates, ticker, allowed):
    events, counters = await replay([D / (prefix + "depth_snapshot.csv"), D / (prefix + updates)], depth=20)
    assert counters["bad.replay"] == 0
    snaps = [e for e in events if isinstance(e, BookSnapshot)]
    assert [e.state for e in events if isinstance(e, FeedStatus)] == ["snapshot_start", "snapshot_end"]
    ids, tops = tickers(D / (prefix + ticker))
    mismatches = compared = 0
    for s in snaps[1:]:
        i = bisect.bisect_right(ids, s.sequence) - 1
        if i < 0:
            continue
        compared += 1
        mismatches += (s.bids[0][0], s.bids[0][1], s.asks[0][0], s.asks[0][1]) != tops[i]
    assert compared >= len(snaps) - 5 and mismatches <= allowed, (compared, mismatches)
    # and the deltas rebuild every snapshot
    book = LevelBook()
    book.reset(snaps[0])
    checked = 0
    for e in events:
        if isinstance(e, BookDelta):
            book.apply(e)
        elif isinstance(e, BookSnapshot) and e is not snaps[0]:
            assert book.top(20) == (e.bids, e.asks)
            checked += 1
    assert checked == len(snaps) - 1


async def test_trades_bbo_and_klines_replay():
    events, counters = await replay([D / (SPOT + "trades.csv.gz"), D / (SPOT + "bookticker.csv.gz")])
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(trades) == 19_904 and counters["bad.replay"] == 0
    assert [int(t.trade_id) for t in trades] == list(range(3735683259, 3735703163))
    recv = [e.ts_recv for e in events]
    assert recv == sorted(recv)  # merged in arrival order
    assert all(q.bid_price < q.ask_price for q in events if isinstance(q, BBO))
    bars, _ = await replay([D / "binance_spot_ETHUSDT_1m_20250520_20250818.csv.gz"])
    assert len(bars) == 130_708 and all(isinstance(b, Bar) and b.closed for b in bars[:10])
    assert bars[1].ts_open - bars[0].ts_open == 60 * 10**9


async def test_bad_rows_are_counted_and_skipped(tmp_path):
    src = D / (SPOT + "trades.csv.gz")
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()[:101]
    broken = lines[:10] + ["garbage,,,", lines[10].replace(",", ";"), "1,2,3"] + lines[10:]
    broken[20] = broken[20].rsplit(",", 2)[0] + ",maybe,true"
    path = tmp_path / "btc_trades.csv"
    path.write_text("\n".join(broken) + "\n")
    events, counters = await replay([path])
    assert counters["bad.replay"] == 4 and len(events) == 100 - 1


async def test_official_headerless_formats(tmp_path):
    (tmp_path / "BTCUSDT-trades-2024-08-08.csv").write_text(
        "1,61000.1,0.5,30500.05,1723161254000,true,true\n2,61000.2,0.1,6100.02,1723161254001000,false,true\n")
    (tmp_path / "BTCUSDT-aggTrades-2024-08-08.csv").write_text("9,61000.3,0.2,3,4,1723161254002,false,true\n")
    (tmp_path / "BTCUSDT-1m-2024-08-08.csv").write_text(
        "1723161240000,1,2,0.5,1.5,10,1723161299999,15,3,5,7,0\n")
    paths = sorted(tmp_path.iterdir())
    assert [detect_kind(p) for p in paths] == ["klines", "aggtrades", "trades"]
    events, counters = await replay(paths)
    trades = [e for e in events if isinstance(e, Trade)]
    assert [(t.trade_id, t.side, t.ts_event) for t in trades] == [
        ("1", "sell", 1723161254000 * 10**6), ("2", "buy", 1723161254001 * 10**6), ("9", "buy", 1723161254002 * 10**6)]
    assert counters["bad.replay"] == 0


def test_t_depth_archives_are_refused_clearly():
    with pytest.raises(ValueError, match="T_DEPTH"):
        open_sources([D / "binance_usdm_BTCUSDT_T_DEPTH_20221101_update_sample.csv"], "binance", "BTC/USDT:USDT")


async def test_paced_replay_publishes_the_same_sequence():
    paths = [D / (USDM + "depth_snapshot.csv"), D / (USDM + "depth_updates_first45s.csv.gz")]
    fast, _ = await replay(paths)
    paced = []

    async def publish(e):
        paced.append(e)
    # 45 s of data at 10,000x: the pacing path (sleeps between events) runs, the order is unchanged
    await Replayer(open_sources(paths, "binance", "BTC/USDT"), publish, speed=10_000).run()
    assert paced == fast
