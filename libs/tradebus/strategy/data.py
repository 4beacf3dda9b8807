"""Market-data files for backtests: trades, klines and L2 depth, as numpy columns.

Formats read (plain or ``.gz``; the header, when present, decides; without one, the column
count does):

* **Trades** — the recorder layout of ``../shared/data`` (``local_ts_ns, event_time_ms,
  trade_time_ms, trade_id, price, qty, is_buyer_maker, ...``), Binance's public trade archive
  (``id, price, qty, quote_qty, time, is_buyer_maker, is_best_match``), Binance aggTrades
  (``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
  is_buyer_maker, is_best_match``) and tradebus's own ``ts_ns, price, qty, side[, trade_id]``
  (side ``buy``/``sell``, the aggressor).
* **Klines** — ``open_time, open, high, low, close, volume`` (the shared files), Binance's
  12-column kline archive, and tradebus's own ``ts_ns, open, high, low, close, volume``.
* **Depth** — a REST snapshot (``local_ts_ns, last_update_id, [event_time_ms,
  transaction_time_ms,] side, level, price, qty``) plus diff-depth updates, spot (``U``/``u``)
  or USD-M (``U``/``u``/``pu``), checked and trimmed with Binance's rules for joining them.

Timestamps become int64 nanoseconds (ms/us/ns told apart by magnitude). Trade files give the
exchange's trade time as ``ts_ns`` and, when recorded, the local receive time as ``recv_ts``:
book replays order everything by receive time, the only clock common to all streams.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tradebus.data import data_dir
from tradebus.engine import normalize_timestamps

__all__ = [
    "TradeData",
    "BarData",
    "BookData",
    "BookReplay",
    "default_data_dir",
    "read_csv",
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
# CSV reading

def _open_text(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: str | os.PathLike) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, rows) of a CSV file, gzip or not. A first row with a field that is
    neither a number nor true/false is the header; names are lower-cased and stripped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    with _open_text(path) as fh:
        rows = [row for row in csv.reader(fh) if row]
    if not rows:
        raise ValueError(f"{path}: empty file")
    first = rows[0]
    if any(not _is_number(x) and x.strip().lower() not in ("true", "false") for x in first):
        return [x.strip().lower() for x in first], rows[1:]
    return None, rows


def _column(rows: list[list[str]], i: int, dtype, path: Path, name: str) -> np.ndarray:
    try:
        return np.array([r[i] for r in rows], dtype=dtype)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{path}: column {name!r} (#{i}) is not {np.dtype(dtype).name}: {exc}") from None


def _bools(rows: list[list[str]], i: int, path: Path, name: str) -> np.ndarray:
    try:
        return np.array([_BOOL[r[i].strip().lower()] for r in rows], dtype=np.uint8)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"{path}: column {name!r} must be true/false, found {exc}") from None


_BOOL = {"true": 1, "false": 0, "1": 1, "0": 0, "t": 1, "f": 0, "yes": 1, "no": 0}


def _ns(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(normalize_timestamps(values), dtype=np.int64)


def _pick(header: list[str], *names: str) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


# ---------------------------------------------------------------------------------------------
# Trades and klines

_TRADE_TIME = ("trade_time_ms", "time", "transact_time", "timestamp", "ts_ns", "timestamp_ns", "ts")
_PRICE = ("price", "p")
_QTY = ("qty", "quantity", "amount", "q", "size")


def _trades_from_header(header, rows, path) -> TradeData:
    it = _pick(header, *_TRADE_TIME)
    ip = _pick(header, *_PRICE)
    iq = _pick(header, *_QTY)
    if it is None or ip is None or iq is None:
        raise ValueError(f"{path}: a trade file needs time, price and qty columns; found {header}")
    ts = _ns(_column(rows, it, np.int64, path, header[it]))
    price = _column(rows, ip, np.float64, path, header[ip])
    qty = _column(rows, iq, np.float64, path, header[iq])
    im = _pick(header, "is_buyer_maker", "m", "isbuyermaker")
    iside = _pick(header, "side", "taker_side", "is_buy")
    if im is not None:
        is_buy = 1 - _bools(rows, im, path, header[im])
    elif iside is not None and header[iside] == "is_buy":
        is_buy = _bools(rows, iside, path, "is_buy")
    elif iside is not None:
        sides = [r[iside].strip().lower() for r in rows]
        bad = {s for s in sides if s not in ("buy", "sell", "b", "s")}
        if bad:
            raise ValueError(f"{path}: side must be buy/sell, found {sorted(bad)[:3]}")
        is_buy = np.array([s in ("buy", "b") for s in sides], dtype=np.uint8)
    else:
        raise ValueError(f"{path}: a trade file needs is_buyer_maker or side; found {header}")
    recv = None
    ir = _pick(header, "local_ts_ns", "recv_ts", "ts_recv")
    if ir is not None:
        recv = _column(rows, ir, np.int64, path, header[ir])
    iid = _pick(header, "trade_id", "id", "agg_trade_id", "a")
    ids = _column(rows, iid, np.int64, path, header[iid]) if iid is not None else None
    return TradeData(ts, price, qty, np.ascontiguousarray(is_buy, dtype=np.uint8), recv, ids)


def _trades_headerless(rows, path) -> TradeData:
    width = len(rows[0])
    if width == 7:        # id, price, qty, quote_qty, time, is_buyer_maker, is_best_match
        it, ip, iq, im, iid = 4, 1, 2, 5, 0
    elif width == 8:      # agg_id, price, qty, first_id, last_id, time, is_buyer_maker, best_match
        it, ip, iq, im, iid = 5, 1, 2, 6, 0
    else:
        raise ValueError(f"{path}: a headerless trade file has 7 (trades) or 8 (aggTrades) "
                         f"columns, this one has {width}")
    return TradeData(
        _ns(_column(rows, it, np.int64, path, "time")),
        _column(rows, ip, np.float64, path, "price"),
        _column(rows, iq, np.float64, path, "qty"),
        np.ascontiguousarray(1 - _bools(rows, im, path, "is_buyer_maker"), dtype=np.uint8),
        None,
        _column(rows, iid, np.int64, path, "id"),
    )


def _bars(header, rows, path) -> BarData:
    if header is None:
        if len(rows[0]) < 6:
            raise ValueError(f"{path}: a kline file needs open time, open, high, low, close, volume")
        idx = [0, 1, 2, 3, 4, 5]
    else:
        it = _pick(header, "open_time", "ts_ns", "timestamp_ns", "timestamp", "time", "ts", "date")
        idx = [it] + [_pick(header, name, name[0]) for name in ("open", "high", "low", "close", "volume")]
        if any(i is None for i in idx):
            raise ValueError(f"{path}: a kline file needs open_time, open, high, low, close, volume; "
                             f"found {header}")
    names = ("open_time", "open", "high", "low", "close", "volume")
    cols = [_column(rows, i, np.int64 if k == 0 else np.float64, path, names[k]) for k, i in enumerate(idx)]
    return BarData(_ns(cols[0]), *cols[1:])


def _kind(header: list[str] | None, rows: list[list[str]]) -> str:
    if header is None:
        return "bars" if len(rows[0]) in (6, 12) else "trades"
    if "open" in header and "close" in header:
        return "bars"
    if _pick(header, *_PRICE) is not None:
        return "trades"
    raise ValueError(f"not a trade or kline file; columns: {header}")


def load_csv(path: str | os.PathLike) -> TradeData | BarData:
    """Trades or bars, whichever the file holds."""
    path = Path(path)
    header, rows = read_csv(path)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    if _kind(header, rows) == "bars":
        data = _bars(header, rows, path)
    elif header is None:
        data = _trades_headerless(rows, path)
    else:
        data = _trades_from_header(header, rows, path)
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

def _side_is_bid(value: str) -> int:
    v = value.strip().lower()
    if v in ("bid", "b", "buy", "bids"):
        return 1
    if v in ("ask", "a", "sell", "asks"):
        return 0
    raise ValueError(f"depth side must be bid/ask, got {value!r}")


def load_depth(snapshot: str | os.PathLike, updates: str | os.PathLike) -> BookData:
    """A depth snapshot plus the diff updates after it, joined by Binance's rules.

    Spot: drop events with ``u <= lastUpdateId``; the first kept event has ``U <= lastUpdateId
    + 1 <= u``; each next event has ``U = previous u + 1``. USD-M (files with
    ``prev_last_update_id``): drop ``u < lastUpdateId``; the first has ``U <= lastUpdateId <=
    u``; each next has ``pu = previous u``. A gap raises ValueError.
    """
    snap_path, upd_path = Path(snapshot), Path(updates)
    header, rows = read_csv(snap_path)
    if header is None or _pick(header, "last_update_id") is None:
        raise ValueError(f"{snap_path}: a depth snapshot needs a header with last_update_id, side, price, qty")
    i_ts = _pick(header, "local_ts_ns", "ts_ns", "timestamp")
    i_id, i_side = header.index("last_update_id"), header.index("side")
    i_px, i_qty = header.index("price"), header.index("qty")
    ids = {int(r[i_id]) for r in rows}
    if len(ids) != 1:
        raise ValueError(f"{snap_path}: a snapshot has one last_update_id, found {len(ids)}")
    last_id = ids.pop()
    bids, asks = [], []
    for r in rows:
        level = (float(r[i_px]), float(r[i_qty]))
        (bids if _side_is_bid(r[i_side]) else asks).append(level)
    snap_ts = int(normalize_timestamps(np.array([int(rows[0][i_ts])]))[0]) if i_ts is not None else 0

    header, rows = read_csv(upd_path)
    if header is None:
        raise ValueError(f"{upd_path}: depth updates need a header")
    need = ("first_update_id", "last_update_id", "side", "price", "qty")
    if any(n not in header for n in need):
        raise ValueError(f"{upd_path}: depth updates need columns {need}; found {header}")
    i_ts = _pick(header, "local_ts_ns", "ts_ns", "event_time_ms", "timestamp")
    i_first, i_last = header.index("first_update_id"), header.index("last_update_id")
    i_prev = _pick(header, "prev_last_update_id", "pu")
    i_side, i_px, i_qty = header.index("side"), header.index("price"), header.index("qty")
    futures = i_prev is not None

    first = _column(rows, i_first, np.int64, upd_path, "first_update_id")
    last = _column(rows, i_last, np.int64, upd_path, "last_update_id")
    prev = _column(rows, i_prev, np.int64, upd_path, header[i_prev]) if futures else None
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
    ts = _ns(_column(rows, i_ts, np.int64, upd_path, header[i_ts])[sel]) if i_ts is not None \
        else np.zeros(len(sel), dtype=np.int64)
    ts = np.maximum(ts, snap_ts)          # buffered before the snapshot: applied right after it
    sides = np.array([r[i_side] for r in rows])[sel]
    is_bid = np.isin(sides, ("bid", "b", "BID", "buy")).astype(np.uint8)
    unknown = ~(is_bid.astype(bool) | np.isin(sides, ("ask", "a", "ASK", "sell")))
    if unknown.any():
        raise ValueError(f"{upd_path}: depth side must be bid/ask, got {sides[np.argmax(unknown)]!r}")
    price = _column(rows, i_px, np.float64, upd_path, "price")[sel]
    qty = _column(rows, i_qty, np.float64, upd_path, "qty")[sel]
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

