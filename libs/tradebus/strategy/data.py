"""Market-data files for backtests: trades, klines and L2 depth, as numpy columns.

Files are read by ``tradebus.data.binance`` (plain or ``.gz``, with or without a header):

* **Trades** — the recorder layout of ``../shared/data``, Binance's public trade and aggTrades
  archives, ``tradebus data download`` files and tradebus's own ``ts_ns, price, qty, side``
  (side ``buy``/``sell``, the aggressor; written by :func:`write_trades_csv`).
* **Klines** — ``open_time, open, high, low, close, volume``, Binance's 12-column archive, and
  tradebus's own ``ts_ns, open, high, low, close, volume``.
* **Depth** — a REST snapshot plus diff-depth updates, spot (``U``/``u``) or USD-M
  (``U``/``u``/``pu``), checked and trimmed with Binance's rules for joining them.

Timestamps are int64 nanoseconds. Trade files give the exchange's trade time as ``ts_ns`` and,
when recorded, the local receive time as ``recv_ts``: book replays order everything by receive
time, the only clock common to all streams.
"""
from __future__ import annotations

import csv
import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tradebus.data import data_dir
from tradebus.data.binance import BinanceFrame, read_binance_csv

__all__ = [
    "TradeData",
    "BarData",
    "BookData",
    "BookReplay",
    "default_data_dir",
    "load_trades",
    "load_klines",
    "load_depth",
    "merge_book",
    "write_trades_csv",
    "write_bars_csv",
    "symbol_from_filename",
]


def default_data_dir() -> Path:
    """``$TRADEBUS_DATA_DIR``, else ``shared/data`` beside the repository."""
    return data_dir()


@dataclass
class TradeData:
    """Trades of one symbol: ``ts_ns`` (int64), ``price``, ``qty`` (float64), ``is_buy`` (uint8:
    the aggressor bought), optional ``recv_ts`` (local receive time) and ``trade_id``."""

    ts_ns: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    is_buy: np.ndarray
    recv_ts: np.ndarray | None = None
    trade_id: np.ndarray | None = None
    symbol: str | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass
class BarData:
    """OHLCV bars stamped with their open time (``ts_ns``, int64 ns)."""

    ts_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: str | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)


@dataclass
class BookData:
    """A depth snapshot and the diff updates that follow it (already checked and trimmed).

    ``bids``/``asks`` are (price, qty) lists; update rows have ``ts_ns``, ``is_bid``, ``price``,
    ``qty`` (0 removes the level) and ``last_of_event`` (1 on the last row of each update event).
    """

    snapshot_ts: int
    last_update_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_ns: np.ndarray
    is_bid: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    last_of_event: np.ndarray
    events: int = 0
    dropped_events: int = 0
    symbol: str | None = None
    event_update_ids: np.ndarray | None = None   # last update id (u) of each applied event


@dataclass
class BookReplay:
    """Book updates and trades merged in time order, the input of SimVenue.run_book."""

    snapshot_ts: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    kind: np.ndarray            # 0: book level, 1: trade
    ts_ns: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    flag: np.ndarray            # book: 1 = bid side; trade: 1 = aggressor bought
    last_of_event: np.ndarray
    symbol: str | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Trades and klines (files read by tradebus.data.binance)

TRADE_KINDS = ("trades", "aggtrades")


def _trades(frame: BinanceFrame) -> TradeData:
    ids = frame.get("trade_id")
    return TradeData(frame["ts_ns"], frame["price"], frame["qty"], (~frame["is_buyer_maker"]).view(np.uint8),
                     frame.get("recv_ts_ns"), ids)


def _bars(frame: BinanceFrame) -> BarData:
    return BarData(frame["ts_ns"], frame["open"], frame["high"], frame["low"], frame["close"], frame["volume"])


def load_csv(path: str | os.PathLike) -> TradeData | BarData:
    """Trades or bars, whichever the file holds."""
    frame = read_binance_csv(path, kinds=TRADE_KINDS + ("klines",))
    if not len(frame):
        raise ValueError(f"{path}: no data rows")
    data = _bars(frame) if frame.kind == "klines" else _trades(frame)
    data.symbol = symbol_from_filename(path)
    return data


def load_trades(path: str | os.PathLike) -> TradeData:
    """Trades from a CSV file (see the module docstring for the layouts)."""
    data = load_csv(path)
    if not isinstance(data, TradeData):
        raise ValueError(f"{path}: holds bars, not trades")
    return data


def load_klines(path: str | os.PathLike) -> BarData:
    """OHLCV bars from a kline CSV file."""
    data = load_csv(path)
    if not isinstance(data, BarData):
        raise ValueError(f"{path}: holds trades, not bars")
    return data


_NAME_TOKEN = re.compile(r"[A-Za-z0-9]+")


def symbol_from_filename(path: str | os.PathLike) -> str | None:
    """The token of a file name that looks like a symbol, upper-cased: BTCUSDT in
    binance_spot_BTCUSDT_1m... and in FLOX's btcusdt_trades.csv (one case throughout, not Mixed)."""
    stem = Path(path).name.split(".")[0]
    for token in _NAME_TOKEN.findall(stem):
        upper = token.upper()
        if len(upper) >= 6 and upper.isalpha() and token in (upper, token.lower()) and any(
            upper.endswith(q) for q in ("USDT", "USDC", "BUSD", "FDUSD", "USD", "BTC", "ETH", "EUR")
        ):
            return upper
    return None


# ---------------------------------------------------------------------------------------------
# Depth

def load_depth(snapshot: str | os.PathLike, updates: str | os.PathLike) -> BookData:
    """A depth snapshot plus the diff updates after it, joined by Binance's rules.

    Spot: drop events with ``u <= lastUpdateId``; the first kept event has ``U <= lastUpdateId
    + 1 <= u``; each next event has ``U = previous u + 1``. USD-M (files with
    ``prev_last_update_id``): drop ``u < lastUpdateId``; the first has ``U <= lastUpdateId <=
    u``; each next has ``pu = previous u``. A gap raises ValueError.
    """
    snap = read_binance_csv(snapshot, "depth_snapshot")
    snap_path, upd_path = snap.path, Path(updates)
    ids = np.unique(snap["last_update_id"])
    if len(ids) != 1:
        raise ValueError(f"{snap_path}: a snapshot has one last_update_id, found {len(ids)}")
    last_id = int(ids[0])
    is_bid = snap["is_bid"]
    bids = list(zip(snap["price"][is_bid].tolist(), snap["qty"][is_bid].tolist()))
    asks = list(zip(snap["price"][~is_bid].tolist(), snap["qty"][~is_bid].tolist()))
    snap_times = snap.get("recv_ts_ns")
    snap_ts = int(snap_times[0]) if snap_times is not None and len(snap_times) else 0

    upd = read_binance_csv(upd_path, "depth_updates")
    futures = "prev_last_update_id" in upd
    first, last = upd["first_update_id"], upd["last_update_id"]
    prev = upd["prev_last_update_id"] if futures else None
    keep = last >= last_id if futures else last > last_id
    kept_rows = np.flatnonzero(keep)
    if not len(kept_rows):
        raise ValueError(f"{upd_path}: no update follows the snapshot (lastUpdateId {last_id})")
    # events: runs of rows with the same (first, last) update ids
    starts = np.flatnonzero(np.r_[True, (first[1:] != first[:-1]) | (last[1:] != last[:-1])])
    event_of_row = np.cumsum(np.r_[True, (first[1:] != first[:-1]) | (last[1:] != last[:-1])]) - 1
    kept_events = np.unique(event_of_row[kept_rows])
    dropped = len(starts) - len(kept_events)
    e0 = starts[kept_events[0]]
    if futures:
        if not (first[e0] <= last_id <= last[e0]):
            raise ValueError(f"{upd_path}: first update after the snapshot has U={first[e0]} "
                             f"u={last[e0]}, which does not cover lastUpdateId {last_id}")
    elif not (first[e0] <= last_id + 1 <= last[e0]):
        raise ValueError(f"{upd_path}: first update after the snapshot has U={first[e0]} "
                         f"u={last[e0]}, which does not cover lastUpdateId+1 = {last_id + 1}")
    ev_rows = starts[kept_events]
    for a, b in zip(ev_rows[:-1], ev_rows[1:]):
        ok = prev[b] == last[a] if futures else first[b] == last[a] + 1
        if not ok:
            raise ValueError(f"{upd_path}: sequence gap after update id {last[a]} (next event "
                             f"U={first[b]}{f', pu={prev[b]}' if futures else ''}): the book cannot be rebuilt")
    sel = kept_rows
    times = upd.get("recv_ts_ns", upd.get("event_ts_ns"))
    ts = times[sel] if times is not None else np.zeros(len(sel), dtype=np.int64)
    ts = np.maximum(ts, snap_ts)          # buffered before the snapshot: applied right after it
    is_bid = upd["is_bid"][sel].view(np.uint8)
    price = upd["price"][sel]
    qty = upd["qty"][sel]
    ev = event_of_row[sel]
    last_of_event = np.r_[ev[1:] != ev[:-1], True].astype(np.uint8)
    return BookData(snap_ts, last_id, bids, asks, ts, is_bid, price, qty, last_of_event,
                    events=len(kept_events), dropped_events=int(dropped),
                    symbol=symbol_from_filename(snap_path), event_update_ids=last[ev_rows])


def merge_book(book: BookData, trades: TradeData | None = None) -> BookReplay:
    """Book updates and trades in one time-ordered stream (book rows first on equal times).

    Trades are placed by their receive time (``recv_ts``) when the file has one, so they
    interleave with the book as they arrived; trades before the snapshot are left out.
    """
    n_book = len(book.ts_ns)
    if trades is None or len(trades) == 0:
        return BookReplay(book.snapshot_ts, book.bids, book.asks, np.zeros(n_book, np.uint8),
                          book.ts_ns, book.price, book.qty, book.is_bid, book.last_of_event,
                          symbol=book.symbol)
    tts = trades.recv_ts if trades.recv_ts is not None else trades.ts_ns
    after = tts >= book.snapshot_ts
    tts = tts[after]
    ts = np.concatenate([book.ts_ns, tts])
    order = np.argsort(ts, kind="stable")
    kind = np.concatenate([np.zeros(n_book, np.uint8), np.ones(len(tts), np.uint8)])[order]
    price = np.concatenate([book.price, trades.price[after]])[order]
    qty = np.concatenate([book.qty, trades.qty[after]])[order]
    flag = np.concatenate([book.is_bid, trades.is_buy[after]])[order]
    last = np.concatenate([book.last_of_event, np.zeros(len(tts), np.uint8)])[order]
    return BookReplay(book.snapshot_ts, book.bids, book.asks, np.ascontiguousarray(kind),
                      np.ascontiguousarray(ts[order]), np.ascontiguousarray(price),
                      np.ascontiguousarray(qty), np.ascontiguousarray(flag), np.ascontiguousarray(last),
                      symbol=book.symbol or trades.symbol,
                      extra={"trades": int(after.sum()), "book_rows": n_book})


# ---------------------------------------------------------------------------------------------
# Writing the project's own format

def write_trades_csv(path: str | os.PathLike, ts_ns, price, qty, is_buy) -> None:
    """Write trades as ``ts_ns,price,qty,side`` (gzip when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts_ns", "price", "qty", "side"])
        for t, p, q, b in zip(ts_ns, price, qty, is_buy):
            w.writerow([int(t), repr(float(p)), repr(float(q)), "buy" if b else "sell"])


def write_bars_csv(path: str | os.PathLike, ts_ns, open_, high, low, close, volume) -> None:
    """Write bars as ``ts_ns,open,high,low,close,volume`` (gzip when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts_ns", "open", "high", "low", "close", "volume"])
        for row in zip(ts_ns, open_, high, low, close, volume):
            w.writerow([int(row[0])] + [repr(float(x)) for x in row[1:]])

