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
Blank lines are skipped.

**Columns without copies.** ``frame[name]`` is a numpy array built once per column (Arrow
chunks concatenated; booleans unpacked; timestamps scaled to ns). To avoid even that copy, use
``frame.table`` (a ``pyarrow.Table`` of the parsed columns, in the file's units) and take
``chunk.to_numpy(zero_copy_only=True)`` per chunk of a numeric column, or pass a
``block_size`` larger than the file so the table has one chunk per column and
``frame.table[name].chunk(0).to_numpy()`` views Arrow's buffer directly.
"""
from __future__ import annotations

import gzip
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "KINDS",
    "CsvRowError",
    "BadRowLog",
    "BinanceFrame",
    "detect_kind",
    "read_header",
    "read_binance_csv",
    "timestamps_ns",
]

KINDS = ("trades", "aggtrades", "klines", "bookticker", "depth_snapshot", "depth_updates", "t_depth")
_DESCRIPTION = {"trades": "trade", "aggtrades": "trade", "klines": "kline", "bookticker": "book ticker",
                "depth_snapshot": "depth snapshot", "depth_updates": "depth updates", "t_depth": "T_DEPTH"}

OnBadRow = Callable[[Path, int, str], None]

_TRUE = ("true", "True", "TRUE", "1", "t")
_FALSE = ("false", "False", "FALSE", "0", "f")
_BID = ("bid", "b", "BID", "buy", "bids", "B")
_ASK = ("ask", "a", "ASK", "sell", "asks", "A")
_BUY = ("buy", "b", "BUY", "Buy")
_SELL = ("sell", "s", "SELL", "Sell")


class CsvRowError(ValueError):
    """A row of a data file that cannot be read: ``path``, ``line`` (1 = the first line), ``reason``."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}: line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


class BadRowLog:
    """An ``on_bad_row`` callback for services that report bad rows and keep going: counts them in
    ``counters[key]`` and logs them with file, line and reason (at most one line per ``every`` s)."""

    def __init__(self, log: logging.Logger, counters: Counter | None = None, key: str = "bad_rows",
                 every: float = 5.0) -> None:
        self.log, self.key, self.every = log, key, every
        self.counters = counters if counters is not None else Counter()
        self._last = -every

    def __call__(self, path: Path, line: int, reason: str) -> None:
        self.counters[self.key] += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.warning("%s line %d skipped: %s [%d bad rows so far]", Path(path).name, line, reason,
                             self.counters[self.key])


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
    _RECV,
    _EVENT,
)
_KLINE = (
    _time("ts_ns", ("open_time", "ts_ns", "timestamp_ns", "timestamp", "time", "ts", "date")),
    *(_Col(n, (n, n[0]), "float") for n in ("open", "high", "low", "close", "volume")),
)
_TICKER = (
    _Col("bid_price", ("bid_price", "best_bid_price"), "float"),
    _Col("bid_qty", ("bid_qty", "best_bid_qty"), "float"),
    _Col("ask_price", ("ask_price", "best_ask_price"), "float"),
    _Col("ask_qty", ("ask_qty", "best_ask_qty"), "float"),
    _Col("update_id", ("update_id",), "int", required=False),
    _RECV,
    _EVENT,
)
_SNAPSHOT = (
    _Col("last_update_id", ("last_update_id",), "int"),
    _Col("is_bid", ("side",), "side"),
    _Col("price", _PRICE, "float"),
    _Col("qty", _QTY, "float"),
    _Col("level", ("level",), "int", required=False),
    _RECV,
    _EVENT,
)
_UPDATES = (
    _Col("first_update_id", ("first_update_id",), "int"),
    _Col("last_update_id", ("last_update_id",), "int"),
    _Col("prev_last_update_id", ("prev_last_update_id", "pu"), "int", required=False),
    _Col("is_bid", ("side",), "side"),
    _Col("price", _PRICE, "float"),
    _Col("qty", _QTY, "float"),
    _RECV,
    _EVENT,
)
_T_DEPTH = (
    _time("ts_ns", ("timestamp",)),
    _Col("first_update_id", ("first_update_id",), "int"),
    _Col("last_update_id", ("last_update_id",), "int"),
    _Col("prev_last_update_id", ("pu",), "int"),
    _Col("is_bid", ("side",), "side"),
    _Col("is_snapshot", ("update_type",), "snap"),
    _Col("price", _PRICE, "float"),
    _Col("qty", _QTY, "float"),
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

def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _first_line(path: Path) -> str:
    opener = gzip.open if _is_gzip(path) else open
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


def timestamps_ns(values: np.ndarray, unit: str | None = None) -> np.ndarray:
    """int64 ns from integer times in ``unit`` (ms/us/ns), or, with no unit, each value's magnitude
    (below 1e13 ms, below 1e16 us, else ns: the scale ``tradebus.engine.normalize_timestamps`` uses)."""
    values = np.asarray(values, dtype=np.int64)
    if unit is not None:
        return values * {"ms": 1_000_000, "us": 1_000, "ns": 1}[unit]
    mag = np.abs(values)
    return np.where(mag < 10**13, values * 1_000_000, np.where(mag < 10**16, values * 1_000, values))


_ARROW = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "time": pa.int64()}


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
    return _ARROW.get(col.type, pa.string())


def _open(path: Path) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None)


def _parse(path: Path, names: list[str], skip: int, types: dict[str, pa.DataType], threads: bool,
           on_invalid, block_size: int | None) -> pa.Table:
    read = pacsv.ReadOptions(column_names=names, skip_rows=skip, use_threads=threads,
                             **({"block_size": block_size} if block_size else {}))
    parse = pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid)
    convert = pacsv.ConvertOptions(column_types=types, include_columns=list(types), null_values=[""],
                                   strings_can_be_null=False, true_values=list(_TRUE),
                                   false_values=list(_FALSE))
    with _open(path) as stream:
        return pacsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)


def read_binance_csv(path: str | os.PathLike, kind: str | None = None, *, kinds: Iterable[str] = KINDS,
                     exact: bool = False, on_bad_row: OnBadRow | None = None,
                     threads: bool = True, block_size: int | None = None) -> BinanceFrame:
    """Read a Binance CSV file into canonical columns (see the module docstring).

    kind: one of KINDS, or None to detect it (among ``kinds``). exact: prices and quantities as
    decimal text. on_bad_row: called with (path, line, reason) for each malformed row, which is
    then left out; without it the first malformed row raises CsvRowError.
    """
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
    file_names = list(header) if header is not None else list(_HEADERLESS[kind][:width])
    file_names = [n if file_names.index(n) == i else f"{n}#{i}" for i, n in enumerate(file_names)]
    plan = _plan(path, kind, header, exact)
    types = {found: _arrow_type(col, exact) for col, found in plan.values()}
    skip = 0 if header is None else 1 + _leading_blank_lines(path)
    first_line = skip + 1

    invalid: list[tuple[int | None, str]] = []

    def note_invalid(row) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    table = None
    try:
        table = _parse(path, file_names, skip, types, threads, note_invalid, block_size)
    except pa.ArrowInvalid:
        pass                                   # a value of the wrong type: find it below
    if table is None or invalid or any(_has_empty(table.column(n)) for n in types):
        table, lines = _diagnose(path, file_names, skip, types, plan, on_bad_row)
    else:
        lines = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
    columns, keep = _columns(path, table, plan, lines, on_bad_row)
    if not keep.all():
        lines, table = lines[keep], table.filter(pa.array(keep))
        columns = {k: v[keep] for k, v in columns.items()}
    return BinanceFrame(path, kind, header, columns, lines, table)


def _has_empty(column: pa.ChunkedArray) -> bool:
    """A null (an empty number: blank line or missing value) or an empty text value."""
    if column.null_count:
        return True
    return pa.types.is_string(column.type) and bool(pc.any(pc.equal(pc.utf8_length(column), 0)).as_py())


def _leading_blank_lines(path: Path) -> int:
    opener = gzip.open if _is_gzip(path) else open
    n = 0
    with opener(path, "rb") as fh:
        for raw in fh:
            if raw.strip():
                return n
            n += 1
    return n


# ---------------------------------------------------------------------------------------------
# The slow path, only taken when a row is malformed: find every bad row and its line

def _diagnose(path: Path, names: list[str], skip: int, types: dict[str, pa.DataType],
              plan: dict[str, tuple[_Col, str]], on_bad_row: OnBadRow | None) -> tuple[pa.Table, np.ndarray]:
    invalid: list[tuple[int, str, int, int]] = []

    def note_invalid(row) -> str:
        invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    as_text = {n: pa.string() for n in types}
    table = _parse(path, names, skip, as_text, False, note_invalid, None)
    first = skip + 1
    bad_lines = {n for n, *_ in invalid}
    every = np.arange(first, first + table.num_rows + len(invalid), dtype=np.int64)
    lines = every[~np.isin(every, np.fromiter(bad_lines, np.int64, len(bad_lines)))] if bad_lines else every
    problems: list[tuple[int, str]] = [
        (n, f"expected {exp} columns, found {act}: {text[:80]!r}") for n, text, exp, act in invalid]

    blank = np.ones(table.num_rows, dtype=bool)
    for n in types:
        blank &= np.asarray(pc.equal(table.column(n), "").to_numpy(zero_copy_only=False), dtype=bool)
    keep = ~blank
    for col, found in plan.values():
        text = table.column(found)
        target = types[found]
        if pa.types.is_string(target):
            continue
        bad = _unconvertible(text, target, keep)
        for i in bad:
            value = text[int(i)].as_py()
            reason = "empty" if value == "" else f"{value!r} is not {_TYPE_WORDS[col.type]}"
            problems.append((int(lines[i]), f"column {found!r}: {reason}"))
        keep[bad] = False
    if problems:
        problems.sort()
        if on_bad_row is None:
            raise CsvRowError(path, *problems[0])
        for line, reason in problems:
            on_bad_row(path, line, reason)
    mask = pa.array(keep)
    table = table.filter(mask)
    lines = lines[keep]
    cast = {}
    for found, target in types.items():
        column = table.column(found)
        cast[found] = column if pa.types.is_string(target) else pc.cast(column, target)
    return pa.table(cast), lines


_TYPE_WORDS = {"int": "an integer", "time": "an integer timestamp", "float": "a number", "bool": "true/false"}


def _unconvertible(text: pa.ChunkedArray, target: pa.DataType, keep: np.ndarray) -> np.ndarray:
    """Row indices (among ``keep``) whose text does not convert to ``target``."""
    arr = text.combine_chunks()
    if pa.types.is_boolean(target):
        ok = pc.is_in(arr, value_set=pa.array(_TRUE + _FALSE)).to_numpy(zero_copy_only=False)
        return np.flatnonzero(keep & ~ok)
    idx = np.flatnonzero(keep)
    bad: list[int] = []

    def search(lo: int, hi: int) -> None:   # bisect on pyarrow casts: k bad rows cost k*log(n) casts
        try:
            pc.cast(arr.take(pa.array(idx[lo:hi])), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if hi - lo == 1:
                bad.append(int(idx[lo]))
            else:
                mid = (lo + hi) // 2
                search(lo, mid)
                search(mid, hi)

    if len(idx):
        search(0, len(idx))
    return np.array(bad, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Arrow columns -> canonical numpy columns

def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(column.to_numpy())


def _columns(path: Path, table: pa.Table, plan: dict[str, tuple[_Col, str]], lines: np.ndarray,
             on_bad_row: OnBadRow | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Canonical columns, and the mask of rows whose side / update type is known."""
    keep = np.ones(table.num_rows, dtype=bool)
    out: dict[str, np.ndarray] = {}
    problems: list[tuple[int, str]] = []
    for name, (col, found) in plan.items():
        column = table.column(found)
        if col.type == "time":
            out[name] = timestamps_ns(_numpy(column), col.units.get(found))
        elif col.type in _LABELS:
            yes, no, what = _LABELS[col.type]
            is_yes = pc.is_in(column, value_set=pa.array(yes)).to_numpy(zero_copy_only=False)
            unknown = ~(is_yes | pc.is_in(column, value_set=pa.array(no)).to_numpy(zero_copy_only=False))
            if unknown.any():
                texts = column.to_numpy(zero_copy_only=False)
                problems += [(int(lines[i]), f"{what}, found {texts[i]!r}") for i in np.flatnonzero(unknown)]
                keep &= ~unknown
            out[name] = is_yes
        else:
            out[name] = _numpy(column)
    if problems:
        problems.sort()
        if on_bad_row is None:
            raise CsvRowError(path, *problems[0])
        for line, reason in problems:
            on_bad_row(path, line, reason)
    if "side" in out:                       # tradebus's own trades: side of the aggressor
        out.setdefault("is_buyer_maker", ~out.pop("side"))
    if "is_buy" in out:
        out.setdefault("is_buyer_maker", ~out.pop("is_buy"))
    return out, keep


_LABELS = {"side": (_BID, _ASK, "side must be bid/ask"), "buysell": (_BUY, _SELL, "side must be buy/sell"),
           "snap": (("snap",), ("set",), "update_type must be snap/set")}
