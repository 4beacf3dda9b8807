"""The one reader of Binance CSV files: trades, aggTrades, klines, bookTicker, depth snapshots,
diff-depth updates and T_DEPTH archives, with or without a header row, plain or gzip.

Parsing is pyarrow's multithreaded CSV reader with the column types fixed up front, so the
common case runs no Python per row. Every kind is read into **canonical columns** (the same
names whatever the file spelled them)::

    frame = read_binance_csv("binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz")
    frame.kind                      # "trades"
    frame["ts_ns"], frame["price"]  # int64 ns, float64 numpy arrays
    frame.lines                     # the file line of each row (header = line 1), for messages

Canonical columns per kind (``?`` = only when the file has it):

* trades / aggtrades: ``ts_ns``, ``price``, ``qty``, ``is_buyer_maker`` (bool), ``trade_id``?,
  ``recv_ts_ns``? (local receive time), ``event_ts_ns``?
* klines: ``ts_ns`` (open time), ``open``, ``high``, ``low``, ``close``, ``volume``
* bookticker: ``bid_price``, ``bid_qty``, ``ask_price``, ``ask_qty``, ``update_id``?,
  ``recv_ts_ns``?, ``event_ts_ns``?
* depth_snapshot: ``last_update_id``, ``is_bid`` (bool), ``price``, ``qty``, ``level``?,
  ``recv_ts_ns``?, ``event_ts_ns``?
* depth_updates: ``first_update_id``, ``last_update_id``, ``is_bid``, ``price``, ``qty``,
  ``prev_last_update_id``? (USD-M ``pu``), ``recv_ts_ns``?, ``event_ts_ns``?
* t_depth: ``ts_ns``, ``first_update_id``, ``last_update_id``, ``prev_last_update_id``,
  ``is_bid``, ``is_snapshot`` (bool), ``price``, ``qty``

Timestamps become int64 nanoseconds: a ``*_ms``/``*_us``/``*_ns`` column name says its unit,
otherwise each value's magnitude does (Binance's spot archives switched from ms to us in 2025,
so one file can hold both). ``exact=True`` keeps prices and quantities as their decimal text
(numpy object arrays of str) for callers that compute in ``Decimal``.

A malformed row (wrong column count, a value that is not of its column's type, an unknown side)
raises :class:`CsvRowError` naming the file and the line; with ``on_bad_row=callback`` the
callback gets ``(path, line, reason)`` for each bad row and the rows are left out instead.
Blank lines are skipped. :func:`iter_binance_csv` gives the same frames block by block
(pyarrow's streaming ``open_csv``) for files too big to hold in memory.

**Columns without copies.** ``frame[name]`` is a writable numpy array made with one copy per
column (Arrow's chunks concatenated; booleans unpacked; timestamps scaled to ns). To skip that
copy, read ``frame.table`` (a ``pyarrow.Table`` of the parsed columns, in the file's units):
``tradebus.data.arrow_csv.chunk_numpy(chunk)`` of a numeric chunk is a read-only view of Arrow's
buffer (``np.frombuffer``), and a ``block_size`` larger than the file gives one chunk per
column. (``chunk.to_numpy()`` is zero-copy too, but makes pyarrow import pandas: about a second
the first time; these modules avoid it.)
"""
from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .arrow_csv import (
    BadRowLog,
    CsvRowError,
    OnBadRow,
    convert_options,
    diagnose,
    has_empty,
    is_gzip,
    label_text,
    labels,
    open_stream,
    out_of_range,
    parse,
    parse_options,
    report,
    timestamps_ns,
    to_numpy,
)

__all__ = [
    "KINDS",
    "CsvRowError",
    "BadRowLog",
    "BinanceFrame",
    "detect_kind",
    "read_header",
    "read_binance_csv",
    "iter_binance_csv",
    "timestamps_ns",
    "out_of_range",
]

KINDS = ("trades", "aggtrades", "klines", "bookticker", "depth_snapshot", "depth_updates", "t_depth")
_DESCRIPTION = {"trades": "trade", "aggtrades": "trade", "klines": "kline", "bookticker": "book ticker",
                "depth_snapshot": "depth snapshot", "depth_updates": "depth updates", "t_depth": "T_DEPTH"}

_BID = ("bid", "b", "BID", "buy", "bids", "B")
_ASK = ("ask", "a", "ASK", "sell", "asks", "A")
_BUY = ("buy", "b", "BUY", "Buy")
_SELL = ("sell", "s", "SELL", "Sell")


# ---------------------------------------------------------------------------------------------
# Column layouts

@dataclass(frozen=True)
class _Col:
    """One canonical column: the header names it may have, its type, and its unit for times."""

    name: str
    aliases: tuple[str, ...]
    type: str                     # int | float | bool | side | buysell | text | snap
    required: bool = True
    units: dict = field(default_factory=dict)   # alias -> "ms" | "us" | "ns" (else by magnitude)


def _time(name: str, aliases: tuple[str, ...], required: bool = True) -> _Col:
    units = {a: a.rsplit("_", 1)[1] for a in aliases if a.rsplit("_", 1)[-1] in ("ms", "us", "ns")}
    return _Col(name, aliases, "time", required, units)


_RECV = _time("recv_ts_ns", ("local_ts_ns", "recv_ts", "ts_recv", "recv_ts_ns"), required=False)
_EVENT = _time("event_ts_ns", ("event_time_ms", "event_time"), required=False)
_STAMPS = (_RECV, _EVENT)
_PRICE = ("price", "p")
_QTY = ("qty", "quantity", "amount", "q", "size")

_TRADE = (
    _time("ts_ns", ("trade_time_ms", "time", "transact_time", "timestamp", "ts_ns", "timestamp_ns", "ts",
                    "event_time_ms")),
    _Col("price", _PRICE, "float"),
    _Col("qty", _QTY, "float"),
    _Col("is_buyer_maker", ("is_buyer_maker", "m", "isbuyermaker"), "bool", required=False),
    _Col("side", ("side", "taker_side"), "buysell", required=False),
    _Col("is_buy", ("is_buy",), "bool", required=False),
    _Col("trade_id", ("trade_id", "id", "agg_trade_id", "a"), "int", required=False),
    *_STAMPS,
)
_KLINE = (
    _time("ts_ns", ("open_time", "ts_ns", "timestamp_ns", "timestamp", "time", "ts", "date")),
    *(_Col(n, (n, n[0]), "float") for n in ("open", "high", "low", "close", "volume")),
)
_LEVEL = (_Col("is_bid", ("side",), "side"), _Col("price", _PRICE, "float"), _Col("qty", _QTY, "float"))
_TICKER = (
    *(_Col(n, (n, f"best_{n}"), "float") for n in ("bid_price", "bid_qty", "ask_price", "ask_qty")),
    _Col("update_id", ("update_id",), "int", required=False),
    *_STAMPS,
)
_SNAPSHOT = (
    _Col("last_update_id", ("last_update_id",), "int"),
    *_LEVEL,
    _Col("level", ("level",), "int", required=False),
    *_STAMPS,
)
_UPDATES = (
    _Col("first_update_id", ("first_update_id",), "int"),
    _Col("last_update_id", ("last_update_id",), "int"),
    _Col("prev_last_update_id", ("prev_last_update_id", "pu"), "int", required=False),
    *_LEVEL,
    *_STAMPS,
)
_T_DEPTH = (
    _time("ts_ns", ("timestamp",)),
    _Col("first_update_id", ("first_update_id",), "int"),
    _Col("last_update_id", ("last_update_id",), "int"),
    _Col("prev_last_update_id", ("pu",), "int"),
    _Col("is_snapshot", ("update_type",), "snap"),
    *_LEVEL,
)
_LAYOUTS = {"trades": _TRADE, "aggtrades": _TRADE, "klines": _KLINE, "bookticker": _TICKER,
            "depth_snapshot": _SNAPSHOT, "depth_updates": _UPDATES, "t_depth": _T_DEPTH}

# Binance's public archives (data.binance.vision) carry no header row
_HEADERLESS = {
    "trades": ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"),
    "aggtrades": ("agg_trade_id", "price", "qty", "first_trade_id", "last_trade_id", "transact_time",
                  "is_buyer_maker", "is_best_match"),
    "klines": ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
               "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"),
}


# ---------------------------------------------------------------------------------------------
# Sniffing: header and kind

def _first_line(path: Path) -> str:
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                return line
    return ""


def _is_value(text: str) -> bool:
    if text.strip().lower() in ("true", "false"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_header(path: str | os.PathLike) -> tuple[list[str] | None, int]:
    """(header names lower-cased and stripped, or None when the file has no header; column count).

    A first row with a field that is neither a number nor true/false is a header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    first = _first_line(path)
    if not first:
        raise ValueError(f"{path}: empty file")
    fields = first.split(",")
    if all(_is_value(x) for x in fields):
        return None, len(fields)
    return [x.strip().strip('"').lower() for x in fields], len(fields)


def _kind_of(path: Path, header: list[str] | None, width: int) -> str | None:
    name = path.name.lower()
    if header is None:
        if "aggtrade" in name and width == 8:
            return "aggtrades"
        return {6: "klines", 12: "klines", 7: "trades", 8: "aggtrades"}.get(width)
    cols = set(header)
    if "update_type" in cols:
        return "t_depth"
    if {"level", "side", "last_update_id"} <= cols:
        return "depth_snapshot"
    if {"first_update_id", "last_update_id", "side"} <= cols:
        return "depth_updates"
    if {"bid_price", "ask_price"} <= cols or {"best_bid_price", "best_ask_price"} <= cols:
        return "bookticker"
    if "agg_trade_id" in cols:
        return "aggtrades"
    if "open" in cols and "close" in cols:
        return "klines"
    if cols & set(_PRICE) and cols & set(_QTY):
        return "trades"
    return None


def _describe(kinds: Iterable[str]) -> str:
    names = list(dict.fromkeys(_DESCRIPTION[k] for k in kinds))
    return " or ".join(names)


def detect_kind(path: str | os.PathLike, kinds: Iterable[str] = KINDS) -> str:
    """Which of ``kinds`` the file holds, from its header (or, without one, its column count)."""
    path = Path(path)
    kinds = tuple(kinds)
    header, width = read_header(path)
    kind = _kind_of(path, header, width)
    if kind is None and header is None:
        raise ValueError(f"{path}: cannot tell the file kind: headerless Binance files have 7 (trades) or "
                         f"8 (aggTrades) columns, or 6 or 12 (klines); this one has {width}")
    if kind is None or kind not in kinds:
        raise ValueError(f"{path}: not a {_describe(kinds)} file; columns: {header}")
    return kind


# ---------------------------------------------------------------------------------------------
# Reading

@dataclass
class BinanceFrame:
    """Canonical numpy columns of one file (see the module docstring), the file line of each row,
    and the parsed Arrow table."""

    path: Path
    kind: str
    header: list[str] | None
    columns: dict[str, np.ndarray]
    lines: np.ndarray
    table: pa.Table

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def get(self, name: str, default=None):
        return self.columns.get(name, default)


# labels (side, update type) as dictionaries: a handful of distinct strings per column
_LABEL_TYPE = pa.dictionary(pa.int32(), pa.string())
_ARROW = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "time": pa.int64(), "side": _LABEL_TYPE,
          "buysell": _LABEL_TYPE, "snap": _LABEL_TYPE}


def _plan(path: Path, kind: str, header: list[str] | None, exact: bool) -> dict[str, tuple[_Col, str]]:
    """canonical name -> (column spec, the file's column name)."""
    names = header if header is not None else list(_HEADERLESS[kind])
    plan: dict[str, tuple[_Col, str]] = {}
    for col in _LAYOUTS[kind]:
        found = next((a for a in col.aliases if a in names), None)
        if found is None:
            if col.required:
                raise ValueError(f"{path}: a {_DESCRIPTION[kind]} file needs a {col.name} column "
                                 f"(one of {list(col.aliases)}); found {names}")
            continue
        if found in (f for _, f in plan.values()):
            continue          # one file column serves one canonical column (the first that asks)
        plan[col.name] = (col, found)
    if kind in ("trades", "aggtrades") and not {"is_buyer_maker", "side", "is_buy"} & plan.keys():
        raise ValueError(f"{path}: a trade file needs is_buyer_maker or side; found {names}")
    return plan


def _arrow_type(col: _Col, exact: bool) -> pa.DataType:
    if col.type == "float" and exact:
        return pa.string()
    return _ARROW[col.type]


@dataclass
class _File:
    """How one file is read: its kind, header, column names, the rows to skip and the columns wanted."""

    path: Path
    kind: str
    header: list[str] | None
    names: list[str]
    skip: int
    plan: dict[str, tuple[_Col, str]]
    types: dict[str, pa.DataType]

    @property
    def first_line(self) -> int:
        return self.skip + 1


def _file(path: str | os.PathLike, kind: str | None, kinds: Iterable[str], exact: bool) -> _File:
    path = Path(path)
    header, width = read_header(path)
    if kind is None:
        kind = detect_kind(path, kinds)
    elif kind not in KINDS:
        raise ValueError(f"unknown file kind {kind!r}; one of {KINDS}")
    if header is None and kind not in _HEADERLESS:
        raise ValueError(f"{path}: a {_DESCRIPTION[kind]} file needs a header row")
    if header is None and width not in (len(_HEADERLESS[kind]), 6 if kind == "klines" else -1):
        raise ValueError(f"{path}: a headerless {_DESCRIPTION[kind]} file has {len(_HEADERLESS[kind])} columns, "
                         f"this one has {width}")
    names = list(header) if header is not None else list(_HEADERLESS[kind][:width])
    names = [n if names.index(n) == i else f"{n}#{i}" for i, n in enumerate(names)]
    plan = _plan(path, kind, header, exact)
    types = {found: _arrow_type(col, exact) for col, found in plan.values()}
    skip = 0 if header is None else 1 + _leading_blank_lines(path)
    return _File(path, kind, header, names, skip, plan, types)


def _frame(f: _File, table: pa.Table, lines: np.ndarray, on_bad_row: OnBadRow | None) -> BinanceFrame:
    columns, keep = _columns(f.path, table, f.plan, lines, on_bad_row)
    if not keep.all():
        lines, table = lines[keep], table.filter(pa.array(keep))
        columns = {k: v[keep] for k, v in columns.items()}
    return BinanceFrame(f.path, f.kind, f.header, columns, lines, table)


def _clean(table: pa.Table | pa.RecordBatch, types: dict[str, pa.DataType]) -> bool:
    return not any(has_empty(table.column(n)) for n in types)


def read_binance_csv(path: str | os.PathLike, kind: str | None = None, *, kinds: Iterable[str] = KINDS,
                     exact: bool = False, on_bad_row: OnBadRow | None = None,
                     threads: bool = True, block_size: int | None = None) -> BinanceFrame:
    """Read a Binance CSV file into canonical columns (see the module docstring).

    kind: one of KINDS, or None to detect it (among ``kinds``). exact: prices and quantities as
    decimal text. on_bad_row: called with (path, line, reason) for each malformed row, which is
    then left out; without it the first malformed row raises CsvRowError.
    """
    f = _file(path, kind, kinds, exact)
    invalid: list[int | None] = []

    def note_invalid(row) -> str:
        invalid.append(row.number)
        return "skip"

    table = None
    try:
        table = parse(f.path, f.names, f.skip, f.types, threads, note_invalid, block_size)
    except pa.ArrowInvalid:
        pass                                   # a value of the wrong type: find it below
    if table is None or invalid or not _clean(table, f.types):
        table, lines = diagnose(f.path, f.names, f.skip, f.types, on_bad_row)
    else:
        lines = np.arange(f.first_line, f.first_line + table.num_rows, dtype=np.int64)
    return _frame(f, table, lines, on_bad_row)


def iter_binance_csv(path: str | os.PathLike, kind: str | None = None, *, kinds: Iterable[str] = KINDS,
                     exact: bool = False, on_bad_row: OnBadRow | None = None,
                     block_size: int = 16 << 20) -> Iterator[BinanceFrame]:
    """:func:`read_binance_csv` for files too big to hold: frames of about ``block_size`` bytes of
    CSV each, in file order (pyarrow's streaming reader, ``open_csv``).

    From the first malformed row on, the rest of the file is read by the serial pass that finds
    bad rows (it holds that rest as text), so frames and errors are those of read_binance_csv.
    """
    f = _file(path, kind, kinds, exact)
    invalid: list[int | None] = []

    def note_invalid(row) -> str:
        invalid.append(row.number)
        return "skip"

    read = pacsv.ReadOptions(column_names=f.names, skip_rows=f.skip, block_size=block_size)
    next_line = f.first_line
    with open_stream(f.path) as stream:
        reader = pacsv.open_csv(stream, read_options=read, parse_options=parse_options(note_invalid),
                                convert_options=convert_options(f.types))
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid:
                break
            if invalid or not _clean(batch, f.types):
                break
            lines = np.arange(next_line, next_line + batch.num_rows, dtype=np.int64)
            next_line += batch.num_rows
            yield _frame(f, pa.Table.from_batches([batch]), lines, on_bad_row)
    # a malformed row in what is left: the serial pass, from the first line not yet given out
    table, lines = diagnose(f.path, f.names, f.skip, f.types, on_bad_row, since=next_line)
    yield _frame(f, table, lines, on_bad_row)


def _leading_blank_lines(path: Path) -> int:
    opener = gzip.open if is_gzip(path) else open
    n = 0
    with opener(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                return n
            n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Arrow columns -> canonical numpy columns

def _columns(path: Path, table: pa.Table, plan: dict[str, tuple[_Col, str]], lines: np.ndarray,
             on_bad_row: OnBadRow | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Canonical columns, and the mask of rows whose side / update type is known."""
    keep = np.ones(table.num_rows, dtype=bool)
    out: dict[str, np.ndarray] = {}
    problems: list[tuple[int, str]] = []
    for name, (col, found) in plan.items():
        column = table.column(found)
        if col.type == "time":
            raw, unit = to_numpy(column), col.units.get(found)
            late = out_of_range(raw, unit)
            if late.any():
                problems += [(int(lines[i]), f"column {found!r}: time {raw[i]} is out of range (after 2262 in ns)")
                             for i in np.flatnonzero(late)]
                keep &= ~late
                raw[late] = 0
            out[name] = timestamps_ns(raw, unit, in_place=True)
        elif col.type in _LABELS:
            yes, no, what = _LABELS[col.type]
            is_yes, unknown = labels(column, yes, no)
            if unknown.any():
                problems += [(int(lines[i]), f"{what}, found {label_text(column, int(i))!r}")
                             for i in np.flatnonzero(unknown)]
                keep &= ~unknown
            out[name] = is_yes
        else:
            out[name] = to_numpy(column)
    report(path, problems, on_bad_row)
    if "side" in out:                       # tradebus's own trades: side of the aggressor
        out.setdefault("is_buyer_maker", ~out.pop("side"))
    if "is_buy" in out:
        out.setdefault("is_buyer_maker", ~out.pop("is_buy"))
    return out, keep


_LABELS = {"side": (_BID, _ASK, "side must be bid/ask"), "buysell": (_BUY, _SELL, "side must be buy/sell"),
           "snap": (("snap",), ("set",), "update_type must be snap/set")}
