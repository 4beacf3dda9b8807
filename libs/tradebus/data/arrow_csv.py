"""CSV files through pyarrow, with every malformed row named by file and line, and Arrow
columns as numpy arrays without pyarrow's pandas detour. The Binance layouts on top of this
are in :mod:`tradebus.data.binance`.

Parsing (:func:`parse`) fixes the column types up front and runs pyarrow's multithreaded reader,
no Python per row. When a file has a malformed row, :func:`diagnose` reads it again serially as
text, finds every bad row (wrong column count, a value not of its column's type, an empty one)
and its line, and either raises :class:`CsvRowError` for the first or hands each to an
``on_bad_row(path, line, reason)`` callback and leaves the row out.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = ["CsvRowError", "BadRowLog", "OnBadRow", "TRUE", "FALSE", "is_gzip", "parse", "parse_options",
           "convert_options", "open_stream", "has_empty", "diagnose", "report", "to_numpy", "chunk_numpy",
           "labels", "label_text", "timestamps_ns", "out_of_range"]

OnBadRow = Callable[[Path, int, str], None]

TRUE = ("true", "True", "TRUE", "1", "t")
FALSE = ("false", "False", "FALSE", "0", "f")


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
# Parsing

def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_stream(path: Path) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)


def parse_options(on_invalid) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=on_invalid)


def convert_options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(column_types=types, include_columns=list(types), null_values=[""],
                                strings_can_be_null=False, true_values=list(TRUE), false_values=list(FALSE))


def parse(path: Path, names: list[str], skip: int, types: dict[str, pa.DataType], threads: bool,
          on_invalid, block_size: int | None) -> pa.Table:
    """Columns ``types`` (by name) of a CSV whose columns are ``names``, after ``skip`` lines."""
    read = pacsv.ReadOptions(column_names=names, skip_rows=skip, use_threads=threads,
                             **({"block_size": block_size} if block_size else {}))
    with open_stream(path) as stream:
        return pacsv.read_csv(stream, read_options=read, parse_options=parse_options(on_invalid),
                              convert_options=convert_options(types))


def has_empty(column: pa.ChunkedArray | pa.Array) -> bool:
    """A null (an empty number: blank line or missing value) or an empty text value."""
    if column.null_count:
        return True
    if pa.types.is_dictionary(column.type):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        return any("" in chunk.dictionary.to_pylist() for chunk in chunks)
    if pa.types.is_string(column.type) and len(column):
        return pc.min_max(pc.utf8_length(column))["min"].as_py() == 0
    return False


# ---------------------------------------------------------------------------------------------
# The slow path, only taken when a row is malformed: find every bad row and its line

def diagnose(path: Path, names: list[str], skip: int, types: dict[str, pa.DataType],
             on_bad_row: OnBadRow | None, since: int = 0) -> tuple[pa.Table, np.ndarray]:
    """The rows from line ``since`` on (all by default) as text, converted, with every bad row
    reported (or the first raised) and left out; and the line of each row kept."""
    invalid: list[tuple[int, str, int, int]] = []

    def note_invalid(row) -> str:
        invalid.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    as_text = {n: pa.string() for n in types}
    table = parse(path, names, skip, as_text, False, note_invalid, None)
    first = skip + 1
    bad_lines = {n for n, *_ in invalid}
    every = np.arange(first, first + table.num_rows + len(invalid), dtype=np.int64)
    lines = every[~np.isin(every, np.fromiter(bad_lines, np.int64, len(bad_lines)))] if bad_lines else every
    if since:
        later = lines >= since
        table, lines = table.filter(pa.array(later)), lines[later]
    problems: list[tuple[int, str]] = [
        (n, f"expected {exp} columns, found {act}: {text[:80]!r}") for n, text, exp, act in invalid if n >= since]

    blank = np.ones(table.num_rows, dtype=bool)
    for n in types:
        blank &= np.asarray(pc.equal(table.column(n), "").to_numpy(zero_copy_only=False), dtype=bool)
    keep = ~blank
    for found, target in types.items():
        text = table.column(found)
        if not (pa.types.is_integer(target) or pa.types.is_floating(target) or pa.types.is_boolean(target)):
            continue
        bad = _unconvertible(text, target, keep)
        for i in bad:
            value = text[int(i)].as_py()
            reason = "empty" if value == "" else f"{value!r} is not {_type_words(target)}"
            problems.append((int(lines[i]), f"column {found!r}: {reason}"))
        keep[bad] = False
    report(path, problems, on_bad_row)
    mask = pa.array(keep)
    table = table.filter(mask)
    lines = lines[keep]
    cast = {}
    for found, target in types.items():
        column = table.column(found)
        if pa.types.is_dictionary(target):
            cast[found] = pc.dictionary_encode(column)
        else:
            cast[found] = column if pa.types.is_string(target) else pc.cast(column, target)
    return pa.table(cast), lines


def report(path: Path, problems: list[tuple[int, str]], on_bad_row: OnBadRow | None) -> None:
    """Raise the first (by line) of ``problems``, or hand each to ``on_bad_row``."""
    if problems:
        problems.sort()
        if on_bad_row is None:
            raise CsvRowError(path, *problems[0])
        for line, reason in problems:
            on_bad_row(path, line, reason)


def _type_words(target: pa.DataType) -> str:
    if pa.types.is_boolean(target):
        return "true/false"
    return "an integer" if pa.types.is_integer(target) else "a number"


def _unconvertible(text: pa.ChunkedArray, target: pa.DataType, keep: np.ndarray) -> np.ndarray:
    """Row indices (among ``keep``) whose text does not convert to ``target``."""
    arr = text.combine_chunks()
    if pa.types.is_boolean(target):
        ok = pc.is_in(arr, value_set=pa.array(TRUE + FALSE)).to_numpy(zero_copy_only=False)
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
# Arrow -> numpy

# Arrow -> numpy through the buffers: pyarrow's own to_numpy() imports pandas (a second or so
# the first time), which a process reading one file should not pay.
_NUMPY = {pa.int64(): np.dtype(np.int64), pa.float64(): np.dtype(np.float64)}


def chunk_numpy(chunk: pa.Array) -> np.ndarray:
    t, n, offset = chunk.type, len(chunk), chunk.offset
    if pa.types.is_boolean(t):
        bits = np.frombuffer(chunk.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[offset:offset + n].astype(bool)
    dtype = _NUMPY.get(t)
    if dtype is None:                       # text: prices kept exact
        return np.array(chunk.to_pylist(), dtype=object)
    return np.frombuffer(chunk.buffers()[1], dtype=dtype, count=n, offset=offset * dtype.itemsize)


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A writable, contiguous numpy copy of a column without nulls."""
    parts = [chunk_numpy(chunk) for chunk in column.chunks]
    if not parts:
        return np.array([], dtype=_NUMPY.get(column.type, np.dtype(bool if pa.types.is_boolean(column.type) else object)))
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def labels(column: pa.ChunkedArray, yes: tuple[str, ...], no: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(row's label is in ``yes``, row's label is in neither) of a dictionary-encoded label column,
    looked up once per distinct label."""
    is_yes, unknown = [np.zeros(0, dtype=bool)], [np.zeros(0, dtype=bool)]
    for chunk in column.chunks:
        values = chunk.dictionary.to_pylist()
        indices = chunk_numpy(chunk.indices.cast(pa.int64()))
        is_yes.append(np.array([v in yes for v in values] or [False], dtype=bool)[indices])
        unknown.append(np.array([v not in yes and v not in no for v in values] or [False], dtype=bool)[indices])
    return np.concatenate(is_yes), np.concatenate(unknown)


def label_text(column: pa.ChunkedArray, row: int) -> str:
    for chunk in column.chunks:
        if row < len(chunk):
            return chunk[row].as_py()
        row -= len(chunk)
    raise IndexError(row)


# ---------------------------------------------------------------------------------------------
# Times

_SCALE = {"ms": 1_000_000, "us": 1_000, "ns": 1}


def _scale_of(magnitude: np.ndarray | int) -> np.ndarray | int:
    """ns per unit for times of this magnitude: below 1e13 ms, below 1e16 us, else ns (the scale
    ``tradebus.engine.normalize_timestamps`` uses)."""
    return np.where(magnitude < 10**13, 1_000_000, np.where(magnitude < 10**16, 1_000, 1))


_INT64_MAX = np.iinfo(np.int64).max


def out_of_range(values: np.ndarray, unit: str | None = None) -> np.ndarray:
    """Which times would overflow int64 nanoseconds (past the year 2262) once scaled."""
    mag = np.abs(values)
    if unit is not None:
        return mag > _INT64_MAX // _SCALE[unit]
    if not len(values) or int(mag.max()) <= _INT64_MAX // 1_000_000:
        return np.zeros(len(values), dtype=bool)
    return (((mag > _INT64_MAX // 1_000_000) & (mag < 10**13))
            | ((mag > _INT64_MAX // 1_000) & (mag < 10**16)) | (values == np.iinfo(np.int64).min))


def timestamps_ns(values: np.ndarray, unit: str | None = None, *, in_place: bool = False) -> np.ndarray:
    """int64 ns from integer times in ``unit`` (ms/us/ns), or, with no unit, each value's magnitude
    (one file may mix ms and us). ``in_place`` scales ``values`` itself (an int64 array)."""
    values = np.asarray(values, dtype=np.int64)
    if unit is None and len(values):
        low, high = int(values.min()), int(values.max())
        scale = int(_scale_of(high))
        if low < 0 or int(_scale_of(low)) != scale:    # mixed units (or before 1970): value by value
            return values * _scale_of(np.abs(values))
    else:
        scale = _SCALE[unit] if unit is not None else 1
    if scale == 1:
        return values
    if in_place:
        values *= scale
        return values
    return values * scale
