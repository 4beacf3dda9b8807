"""Replay recorded market data as the same md events live feeds publish.

Sources: Binance public-data CSVs (trades, aggTrades, klines; with or without a header, ms or us
timestamps), the hftbacktest-style captures of ../shared/data (trades, bookTicker, depth snapshot
plus diffs), files written by ``tradebus data download``, and the project's own Parquet recordings.
Each source yields ``(key_ns, event)`` in time order; sources are merged on the key (the local
receive time when the file has one) and published at 1x, Nx or as fast as possible (speed 0).
A row that does not parse is logged with the reason, counted and skipped.
"""
from __future__ import annotations

import asyncio
import csv
import gzip
import heapq
import io
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tradebus.proto import BBO, Bar, BookSnapshot, MarketDataEvent, Trade
from tradebus.proto.base import MdKind, Side
from tradebus.proto.codec import decoder_for
from tradebus.proto.market import FeedState

from .emit import BookEmitter, status
from .parse import timeframe_ms

log = logging.getLogger("tradebus.marketdata.replay")

__all__ = ["open_sources", "Replayer", "Source", "detect_kind", "BadRows"]

Item = tuple[int, Any]


class BadRows:
    """Counts and logs (rate-limited) rows that do not parse."""

    def __init__(self, counters: Counter | None = None) -> None:
        self.counters = counters if counters is not None else Counter()
        self._last = 0.0

    def __call__(self, path: Path, line: int, reason: str) -> None:
        self.counters["bad.replay"] += 1
        now = time.monotonic()
        if now - self._last >= 5.0:
            self._last = now
            log.warning("%s line %d skipped: %s [%d bad rows so far]", path.name, line, reason,
                        self.counters["bad.replay"])


def _open(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="")


def _header(path: Path) -> list[str] | None:
    with _open(path) as fh:
        first = next(csv.reader(fh), None)
    if not first:
        return None
    try:
        float(first[0])
        return None  # official Binance files have no header
    except ValueError:
        return [c.strip() for c in first]


def _ts_ns(value: str) -> int:
    """Binance time in ms (or us since 2025 for spot archives, or ns) -> ns."""
    t = int(value)
    if t >= 10 ** 17:
        return t
    if t >= 10 ** 14:
        return t * 1000
    return t * 1_000_000


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def detect_kind(path: Path) -> str:
    """trades | aggtrades | klines | bookticker | depth_snapshot | depth_updates | recording."""
    if path.is_dir() or path.suffix == ".parquet":
        return "recording"
    name = path.name.lower()
    header = _header(path)
    cols = set(header or ())
    if header is None:
        with _open(path) as fh:
            n = len(next(csv.reader(fh)))
        if "aggtrade" in name or n == 8 and "trade" in name and "agg" in name:
            return "aggtrades"
        if n == 12 or n == 6:
            return "klines"
        if n == 7:
            return "trades"
        if n == 8:
            return "aggtrades"
        raise ValueError(f"{path}: cannot tell the file kind ({n} columns, no header)")
    if "update_type" in cols:
        return "t_depth"
    if {"level", "side", "last_update_id"} <= cols:
        return "depth_snapshot"
    if {"first_update_id", "last_update_id", "side"} <= cols:
        return "depth_updates"
    if {"bid_price", "ask_price"} <= cols:
        return "bookticker"
    if "agg_trade_id" in cols:
        return "aggtrades"
    if "open_time" in cols:
        return "klines"
    if {"price", "qty"} <= cols or {"price", "quantity"} <= cols:
        return "trades"
    raise ValueError(f"{path}: cannot tell the file kind from header {header}")


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with _open(path) as fh:
        reader = csv.reader(fh)
        yield from enumerate(reader, 1)


def _col(header: list[str] | None, *names: str, default: int | None = None) -> int | None:
    if header is None:
        return default
    for n in names:
        if n in header:
            return header.index(n)
    return default


def trades_source(path: Path, venue: str, symbol: str, bad: BadRows, agg: bool = False) -> Iterator[Item]:
    header = _header(path)
    if header is None:  # official: id,price,qty,quote_qty,time,m,M / agg: a,p,q,f,l,T,m,M
        i_id, i_p, i_q, i_t, i_m, i_recv = (0, 1, 2, 5, 6, None) if agg else (0, 1, 2, 4, 5, None)
    else:
        i_id = _col(header, "trade_id", "agg_trade_id", "id")
        i_p = _col(header, "price")
        i_q = _col(header, "qty", "quantity")
        i_t = _col(header, "trade_time_ms", "transact_time", "time", "event_time_ms")
        i_m = _col(header, "is_buyer_maker")
        i_recv = _col(header, "local_ts_ns")
        if None in (i_p, i_q, i_t, i_m):
            raise ValueError(f"{path}: trades header lacks price/qty/time/is_buyer_maker: {header}")
    for line, row in _rows(path):
        if header is not None and line == 1:
            continue
        try:
            ts = _ts_ns(row[i_t])
            recv = int(row[i_recv]) if i_recv is not None else ts
            price, qty = float(row[i_p]), float(row[i_q])
            if not (price > 0 and qty >= 0):
                raise ValueError(f"price/qty out of range {price} {qty}")
            t = Trade(venue=venue, symbol=symbol, price=price, qty=qty,
                      side=Side.SELL if _bool(row[i_m]) else Side.BUY,
                      trade_id=row[i_id] if i_id is not None else "", ts_event=ts, ts_recv=recv)
        except (ValueError, IndexError) as exc:
            bad(path, line, f"{exc}")
            continue
        yield recv, t


def klines_source(path: Path, venue: str, symbol: str, bad: BadRows, interval: str = "1m") -> Iterator[Item]:
    header = _header(path)
    span = timeframe_ms(interval) * 1_000_000
    idx = [_col(header, n, default=d) for n, d in
           (("open_time", 0), ("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5))]
    for line, row in _rows(path):
        if header is not None and line == 1:
            continue
        try:
            t, o, h, low, c, v = (row[i] for i in idx)
            ts_open = _ts_ns(t)
            o, h, low, c, v = float(o), float(h), float(low), float(c), float(v)
            if not (low <= min(o, c) and h >= max(o, c)):
                raise ValueError(f"inconsistent OHLC {row}")
            close_ts = ts_open + span - 1_000_000
            bar = Bar(venue=venue, symbol=symbol, interval=interval, ts_open=ts_open, open=o, high=h, low=low,
                      close=c, volume=v, closed=True, ts_event=close_ts, ts_recv=close_ts)
        except (ValueError, IndexError) as exc:
            bad(path, line, f"{exc}")
            continue
        yield close_ts, bar


def bookticker_source(path: Path, venue: str, symbol: str, bad: BadRows) -> Iterator[Item]:
    header = _header(path) or []
    i_recv, i_e = _col(header, "local_ts_ns"), _col(header, "event_time_ms")
    i = [_col(header, n) for n in ("bid_price", "bid_qty", "ask_price", "ask_qty")]
    last = None
    for line, row in _rows(path):
        if line == 1:
            continue
        try:
            recv = int(row[i_recv]) if i_recv is not None else _ts_ns(row[i_e])
            top = tuple(float(row[k]) for k in i)
            if top[0] >= top[2]:
                raise ValueError(f"crossed bid/ask {top}")
        except (ValueError, IndexError, TypeError) as exc:
            bad(path, line, f"{exc}")
            continue
        if top == last:
            continue
        last = top
        yield recv, BBO(venue=venue, symbol=symbol, bid_price=top[0], bid_qty=top[1], ask_price=top[2],
                        ask_qty=top[3], ts_event=_ts_ns(row[i_e]) if i_e is not None else 0, ts_recv=recv)


def book_source(snapshot: Path, updates: Path, venue: str, symbol: str, depth: int, bad: BadRows) -> Iterator[Item]:
    """Snapshot + diffs with Binance's sync rule -> the live book event sequence (top ``depth``)."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    header = _header(snapshot) or []
    i_recv, i_id, i_side = (_col(header, n) for n in ("local_ts_ns", "last_update_id", "side"))
    i_p, i_q, i_e = _col(header, "price"), _col(header, "qty"), _col(header, "event_time_ms")
    snap_ts, last_id, snap_event = 0, 0, 0
    for line, row in _rows(snapshot):
        if line == 1:
            continue
        try:
            snap_ts, last_id = int(row[i_recv]), int(row[i_id])
            snap_event = _ts_ns(row[i_e]) if i_e is not None else 0
            (bids if row[i_side] == "bid" else asks)[float(row[i_p])] = float(row[i_q])
        except (ValueError, IndexError) as exc:
            bad(snapshot, line, f"{exc}")
    emitter = BookEmitter(venue, symbol)

    def top(seq: int, ts_event: int, recv: int) -> BookSnapshot:
        b = heapq.nlargest(depth, bids.items())
        a = heapq.nsmallest(depth, asks.items())
        return BookSnapshot(venue=venue, symbol=symbol, bids=b, asks=a, depth=depth, sequence=seq,
                            ts_event=ts_event, ts_recv=recv)

    for ev in emitter.start(snap_ts):
        yield snap_ts, ev
    for ev in emitter.on_snapshot(top(last_id, snap_event, snap_ts)):
        yield snap_ts, ev

    uh = _header(updates) or []
    c = {n: _col(uh, n) for n in ("local_ts_ns", "event_time_ms", "first_update_id", "last_update_id",
                                   "prev_last_update_id", "side", "price", "qty")}
    futures = c["prev_last_update_id"] is not None
    prev_u: int | None = None
    group: list[tuple[bool, float, float]] = []
    key = None
    meta = (0, 0)

    def apply() -> Iterator[Item]:
        nonlocal prev_u
        first, last, pu = key
        recv, ev_ts = meta
        if prev_u is None:  # the first applied event straddles the snapshot
            stale = last < last_id if futures else last <= last_id
            if stale:
                return
            ok = first <= last_id <= last if futures else first <= last_id + 1 <= last
            if not ok:
                bad(updates, 0, f"first event {first}..{last} does not follow snapshot {last_id}")
                return
        else:
            gap = (pu != prev_u) if futures else (first != prev_u + 1)
            if gap:
                bad(updates, 0, f"sequence gap: {first}..{last} after {prev_u}")
                yield recv, status(venue, symbol, MdKind.BOOK, FeedState.DISCONNECTED,
                                   f"sequence gap after {prev_u}", ts=recv)
                for ev in emitter.start(recv):
                    yield recv, ev
        for is_bid, price, qty in group:
            levels = bids if is_bid else asks
            if qty == 0:
                levels.pop(price, None)
            else:
                levels[price] = qty
        prev_u = last
        snap = top(last, ev_ts, recv)
        if snap.bids and snap.asks and snap.bids[0][0] >= snap.asks[0][0]:
            bad(updates, 0, f"crossed book after {last}")
            return
        for ev in emitter.on_snapshot(snap):
            yield recv, ev

    for line, row in _rows(updates):
        if line == 1:
            continue
        try:
            k = (int(row[c["first_update_id"]]), int(row[c["last_update_id"]]),
                 int(row[c["prev_last_update_id"]]) if futures else 0)
            change = (row[c["side"]] == "bid", float(row[c["price"]]), float(row[c["qty"]]))
            m = (int(row[c["local_ts_ns"]]), _ts_ns(row[c["event_time_ms"]]))
        except (ValueError, IndexError, TypeError) as exc:
            bad(updates, line, f"{exc}")
            continue
        if k != key and key is not None:
            yield from apply()
            group = []
        key, meta = k, m
        group.append(change)
    if key is not None:
        yield from apply()


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
