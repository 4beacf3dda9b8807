"""Replay recorded market data as the same md events live feeds publish.

Sources: Binance public-data CSVs (trades, aggTrades, klines; with or without a header, ms or us
timestamps), the hftbacktest-style captures of ../shared/data (trades, bookTicker, depth snapshot
plus diffs), files written by ``tradebus data download``, and the project's own Parquet recordings.
Each source yields ``(key_ns, event)`` in time order; sources are merged on the key (the local
receive time when the file has one) and published at 1x, Nx or as fast as possible (speed 0).
Files are read by ``tradebus.data.binance``; a row that does not parse (or holds impossible
values: a crossed quote, inconsistent OHLC) is logged with its file and line, counted and skipped.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tradebus.data import binance
from tradebus.proto import BBO, Bar, BookSnapshot, MarketDataEvent, Trade
from tradebus.proto.base import MdKind, Side
from tradebus.proto.codec import decoder_for
from tradebus.proto.market import FeedState

from .book import LevelBook
from .emit import BookEmitter, status
from .parse import timeframe_ms

log = logging.getLogger("tradebus.marketdata.replay")

__all__ = ["open_sources", "Replayer", "Source", "detect_kind", "BadRows"]

Item = tuple[int, Any]


class BadRows(binance.BadRowLog):
    """Counts (``bad.replay``) and logs, rate-limited, the rows that do not parse."""

    def __init__(self, counters: Counter | None = None) -> None:
        super().__init__(log, counters, "bad.replay")


def detect_kind(path: Path) -> str:
    """trades | aggtrades | klines | bookticker | depth_snapshot | depth_updates | t_depth | recording."""
    if path.is_dir() or path.suffix == ".parquet":
        return "recording"
    return binance.detect_kind(path)


def _read(path: Path, kind: str, bad: BadRows) -> binance.BinanceFrame:
    return binance.read_binance_csv(path, kind, on_bad_row=bad)


def _refuse(frame: binance.BinanceFrame, ok: np.ndarray, bad: BadRows, why: Callable[[int], str]) -> np.ndarray:
    """Report the rows where ``ok`` is False; the indices of the others."""
    for i in np.flatnonzero(~ok):
        bad(frame.path, int(frame.lines[i]), why(int(i)))
    return np.flatnonzero(ok)


def trades_source(path: Path, venue: str, symbol: str, bad: BadRows, agg: bool = False) -> Iterator[Item]:
    f = _read(path, "aggtrades" if agg else "trades", bad)
    price, qty = f["price"], f["qty"]
    rows = _refuse(f, (price > 0) & (qty >= 0), bad, lambda i: f"price/qty out of range {price[i]} {qty[i]}")
    ts = f["ts_ns"][rows].tolist()
    recv = f["recv_ts_ns"][rows].tolist() if "recv_ts_ns" in f else ts
    ids = f["trade_id"][rows].astype(str).tolist() if "trade_id" in f else [""] * len(rows)
    sides = [Side.SELL if m else Side.BUY for m in f["is_buyer_maker"][rows].tolist()]
    for t, r, p, q, side, tid in zip(ts, recv, price[rows].tolist(), qty[rows].tolist(), sides, ids):
        yield r, Trade(venue=venue, symbol=symbol, price=p, qty=q, side=side, trade_id=tid, ts_event=t, ts_recv=r)


def klines_source(path: Path, venue: str, symbol: str, bad: BadRows, interval: str = "1m") -> Iterator[Item]:
    f = _read(path, "klines", bad)
    span = timeframe_ms(interval) * 1_000_000
    o, h, low, c = f["open"], f["high"], f["low"], f["close"]
    rows = _refuse(f, (low <= np.minimum(o, c)) & (h >= np.maximum(o, c)), bad,
                   lambda i: f"inconsistent OHLC {o[i]} {h[i]} {low[i]} {c[i]}")
    opens = f["ts_ns"][rows]
    for ts_open, close_ts, *ohlcv in zip(opens.tolist(), (opens + span - 1_000_000).tolist(),
                                         *(f[n][rows].tolist() for n in ("open", "high", "low", "close", "volume"))):
        yield close_ts, Bar(venue=venue, symbol=symbol, interval=interval, ts_open=ts_open, open=ohlcv[0],
                            high=ohlcv[1], low=ohlcv[2], close=ohlcv[3], volume=ohlcv[4], closed=True,
                            ts_event=close_ts, ts_recv=close_ts)


def bookticker_source(path: Path, venue: str, symbol: str, bad: BadRows) -> Iterator[Item]:
    f = _read(path, "bookticker", bad)
    recv = f.get("recv_ts_ns", f.get("event_ts_ns"))
    if recv is None:
        raise ValueError(f"{path}: a book ticker file needs local_ts_ns or event_time_ms")
    bid, ask = f["bid_price"], f["ask_price"]
    rows = _refuse(f, bid < ask, bad, lambda i: f"crossed bid/ask {bid[i]} {ask[i]}")
    event = f["event_ts_ns"][rows].tolist() if "event_ts_ns" in f else [0] * len(rows)
    last = None
    for r, e, *top in zip(recv[rows].tolist(), event, *(f[n][rows].tolist() for n in
                                                        ("bid_price", "bid_qty", "ask_price", "ask_qty"))):
        if top == last:
            continue
        last = top
        yield r, BBO(venue=venue, symbol=symbol, bid_price=top[0], bid_qty=top[1], ask_price=top[2],
                     ask_qty=top[3], ts_event=e, ts_recv=r)


def book_source(snapshot: Path, updates: Path, venue: str, symbol: str, depth: int, bad: BadRows) -> Iterator[Item]:
    """Snapshot + diffs with Binance's sync rule -> the live book event sequence (top ``depth``)."""
    snap = _read(snapshot, "depth_snapshot", bad)
    book = LevelBook()
    for is_bid, price, qty in zip(snap["is_bid"].tolist(), snap["price"].tolist(), snap["qty"].tolist()):
        book.set_level(is_bid, price, qty)
    snap_ts = int(snap["recv_ts_ns"][-1]) if len(snap) and "recv_ts_ns" in snap else 0
    last_id = int(snap["last_update_id"][-1]) if len(snap) else 0
    snap_event = int(snap["event_ts_ns"][-1]) if len(snap) and "event_ts_ns" in snap else 0
    emitter = BookEmitter(venue, symbol)

    def top(seq: int, ts_event: int, recv: int) -> BookSnapshot:
        bids, asks = book.top(depth)
        return BookSnapshot(venue=venue, symbol=symbol, bids=bids, asks=asks, depth=depth, sequence=seq,
                            ts_event=ts_event, ts_recv=recv)

    for ev in emitter.start(snap_ts):
        yield snap_ts, ev
    for ev in emitter.on_snapshot(top(last_id, snap_event, snap_ts)):
        yield snap_ts, ev

    upd = _read(updates, "depth_updates", bad)
    futures = "prev_last_update_id" in upd
    first, last = upd["first_update_id"], upd["last_update_id"]
    pu = upd["prev_last_update_id"] if futures else np.zeros(len(upd), dtype=np.int64)
    recv_col = upd.get("recv_ts_ns", upd.get("event_ts_ns"))
    event_col = upd.get("event_ts_ns", recv_col)
    # one event = a run of rows with the same (U, u, pu)
    change = np.r_[True, (first[1:] != first[:-1]) | (last[1:] != last[:-1]) | (pu[1:] != pu[:-1])]
    starts = np.flatnonzero(change).tolist() + [len(upd)]
    is_bid, price, qty = upd["is_bid"].tolist(), upd["price"].tolist(), upd["qty"].tolist()
    prev_u: int | None = None
    for a, b in zip(starts[:-1], starts[1:]):
        ev_first, ev_last, ev_pu = int(first[a]), int(last[a]), int(pu[a])
        line = int(upd.lines[a])
        recv, ev_ts = int(recv_col[b - 1]), int(event_col[b - 1])
        if prev_u is None:  # the first applied event straddles the snapshot
            stale = ev_last < last_id if futures else ev_last <= last_id
            if stale:
                continue
            ok = ev_first <= last_id <= ev_last if futures else ev_first <= last_id + 1 <= ev_last
            if not ok:
                bad(updates, line, f"first event {ev_first}..{ev_last} does not follow snapshot {last_id}")
                continue
        else:
            gap = (ev_pu != prev_u) if futures else (ev_first != prev_u + 1)
            if gap:
                bad(updates, line, f"sequence gap: {ev_first}..{ev_last} after {prev_u}")
                yield recv, status(venue, symbol, MdKind.BOOK, FeedState.DISCONNECTED,
                                   f"sequence gap after {prev_u}", ts=recv)
                for ev in emitter.start(recv):
                    yield recv, ev
        for i in range(a, b):
            book.set_level(is_bid[i], price[i], qty[i])
        prev_u = ev_last
        snap_now = top(ev_last, ev_ts, recv)
        if snap_now.bids and snap_now.asks and snap_now.bids[0][0] >= snap_now.asks[0][0]:
            bad(updates, line, f"crossed book after {ev_last}")
            continue
        for ev in emitter.on_snapshot(snap_now):
            yield recv, ev


def recording_source(path: Path, bad: BadRows) -> Iterator[Item]:
    from .record import read_parquet

    decode = decoder_for(MarketDataEvent).decode
    for i, (ts, _subject, payload) in enumerate(read_parquet(path), 1):
        try:
            yield ts, decode(payload)
        except Exception as exc:  # msgspec.DecodeError / ValidationError
            bad(path, i, f"{exc}")


Source = Iterator[Item]


def open_sources(paths: Iterable[Path], venue: str, symbol: str, depth: int = 20,
                 counters: Counter | None = None, interval: str = "1m") -> list[Source]:
    """One source per file (a depth snapshot pairs with the depth-updates file next to it)."""
    bad = BadRows(counters)
    paths = [Path(p) for p in paths]
    kinds = {p: detect_kind(p) for p in paths}
    sources: list[Source] = []
    snapshots = [p for p in paths if kinds[p] == "depth_snapshot"]
    updates = [p for p in paths if kinds[p] == "depth_updates"]
    for snap in snapshots:
        prefix = snap.name.split("_depth_snapshot")[0]
        match = [u for u in updates if u.name.startswith(prefix)] or updates[:1]
        if not match:
            raise ValueError(f"{snap}: a depth snapshot needs its depth-updates file")
        updates.remove(match[0])
        sources.append(book_source(snap, match[0], venue, symbol, depth, bad))
    if updates:
        raise ValueError(f"depth updates without a snapshot: {updates}")
    for p in paths:
        k = kinds[p]
        if k in ("trades", "aggtrades"):
            sources.append(trades_source(p, venue, symbol, bad, agg=k == "aggtrades"))
        elif k == "klines":
            sources.append(klines_source(p, venue, symbol, bad, interval))
        elif k == "bookticker":
            sources.append(bookticker_source(p, venue, symbol, bad))
        elif k == "recording":
            sources.append(recording_source(p, bad))
        elif k == "t_depth":
            raise ValueError(f"{p}: Binance T_DEPTH archives are not supported by replay yet")
    return sources


class Replayer:
    """Merges sources on their key and publishes at ``speed`` (0: as fast as possible)."""

    def __init__(self, sources: list[Source], publish: Callable[[Any], Awaitable[None]], speed: float = 0.0,
                 counters: Counter | None = None) -> None:
        self.sources, self.publish, self.speed = sources, publish, speed
        self.counters = counters if counters is not None else Counter()

    async def run(self) -> int:
        n = 0
        start_wall = start_key = None
        merged = heapq.merge(*self.sources, key=lambda item: item[0])
        for key, event in merged:
            if self.speed > 0:
                if start_key is None:
                    start_wall, start_key = time.monotonic(), key
                wait = start_wall + (key - start_key) / 1e9 / self.speed - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            await self.publish(event)
            n += 1
            if n % 2000 == 0:
                await asyncio.sleep(0)
        self.counters["replayed"] += n
        return n
