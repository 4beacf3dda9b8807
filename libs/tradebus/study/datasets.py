"""Datasets of the backtest farm: bars named by their content hash, published once to a JetStream
object store and cached by each worker.

A dataset is a BAR_DTYPE array (timestamps in ns). Its id is ``bars-`` plus the first 32 hex
digits of the SHA-256 of its ``.npy`` bytes, so the same bars always get the same id and a
job names its data in 37 characters. Workers look for ``<id>.npy`` in their cache folder (which
may be a shared volume: that is the "shared path" way to hand out data), then fetch it from the
``bt_datasets`` object store, check the hash and keep it on disk and in memory.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from nats.js.errors import NotFoundError, ObjectNotFoundError

from tradebus.bus import Bus
from tradebus.data import data_dir
from tradebus.data.binance import read_binance_csv
from tradebus.engine import BAR_DTYPE, Engine
from tradebus.proto.subjects import OBJECT_BT_DATASETS

__all__ = [
    "DATASETS_BUCKET",
    "DEFAULT_BARS_FILE",
    "DatasetError",
    "DatasetCache",
    "data_dir",
    "default_cache_dir",
    "read_bars",
    "dataset_id",
    "encode_bars",
    "decode_bars",
    "declare_datasets",
    "publish_dataset",
    "fetch_dataset",
]

DATASETS_BUCKET = OBJECT_BT_DATASETS
DEFAULT_BARS_FILE = "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz"
_ID_PREFIX = "bars-"


class DatasetError(ValueError):
    """A dataset is missing, unreadable, or its bytes do not match its id."""




def default_cache_dir() -> Path:
    """$TRADEBUS_CACHE_DIR, else ``~/.cache/tradebus/datasets``."""
    env = os.environ.get("TRADEBUS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tradebus" / "datasets"


def read_bars(path: str | os.PathLike) -> np.ndarray:
    """Bars from a CSV (optionally gzipped), Parquet or ``.npy`` file, validated by the engine.

    CSV files are klines read by ``tradebus.data.binance`` (a header or Binance's headerless
    archive layout); Parquet columns are found by name like ``Engine.load_bars_frame`` does
    (open_time, timestamp, ... and open, high, low, close, volume); timestamps in ms, us or ns.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no such data file: {path}")
    name = path.name.lower()
    engine = Engine()
    try:
        if name.endswith(".npy"):
            engine.load_bars(np.load(path, allow_pickle=False))
        elif name.endswith(".csv") or name.endswith(".csv.gz"):
            frame = read_binance_csv(path, "klines")
            engine.load_bars_frame({"timestamp_ns": frame["ts_ns"],
                                    **{c: frame[c] for c in ("open", "high", "low", "close", "volume")}})
        elif name.endswith(".parquet") or name.endswith(".pq"):
            import pandas as pd

            engine.load_bars_frame(pd.read_parquet(path))
        else:
            raise DatasetError(f"{path}: unknown data format (expected .csv, .csv.gz, .parquet or .npy)")
    except (ValueError, TypeError, OSError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: {exc}") from exc
    return engine.instrument().bars()


def _canonical(bars: np.ndarray) -> np.ndarray:
    bars = np.asarray(bars)
    if bars.dtype != BAR_DTYPE or bars.ndim != 1:
        raise DatasetError(f"a dataset must be a one-dimensional BAR_DTYPE array, got {bars.dtype} {bars.shape}")
    return np.ascontiguousarray(bars)


def encode_bars(bars: np.ndarray) -> bytes:
    """The ``.npy`` bytes of a BAR_DTYPE array (what is hashed, stored and cached)."""
    buf = io.BytesIO()
    np.save(buf, _canonical(bars), allow_pickle=False)
    return buf.getvalue()


def _id_of(data: bytes) -> str:
    return _ID_PREFIX + hashlib.sha256(data).hexdigest()[:32]


def dataset_id(bars: np.ndarray) -> str:
    """Content id of a BAR_DTYPE array: ``bars-<32 hex digits of SHA-256>``."""
    return _id_of(encode_bars(bars))


def decode_bars(data: bytes, expect_id: str | None = None) -> np.ndarray:
    """Bars from ``.npy`` bytes; with ``expect_id``, raise DatasetError unless the hash matches."""
    if expect_id is not None and _id_of(data) != expect_id:
        raise DatasetError(f"dataset bytes hash to {_id_of(data)}, not {expect_id}")
    try:
        bars = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise DatasetError(f"not a .npy bars file: {exc}") from exc
    return _canonical(bars)


async def declare_datasets(bus: Bus):
    """Open (creating it the first time) the ``bt_datasets`` object store."""
    return await bus.object_store(DATASETS_BUCKET)


async def publish_dataset(bus: Bus, bars: np.ndarray) -> str:
    """Store ``bars`` in the object store unless a dataset with the same id is there; return the id."""
    data = encode_bars(bars)
    ident = _id_of(data)
    store = await declare_datasets(bus)
    try:
        info = await store.get_info(ident)
        if info.size == len(data):
            return ident
    except (ObjectNotFoundError, NotFoundError):
        pass
    await store.put(ident, data)
    return ident


async def fetch_dataset(bus: Bus, ident: str) -> bytes:
    """The ``.npy`` bytes of dataset ``ident`` from the object store, hash-checked."""
    if not ident.startswith(_ID_PREFIX):
        raise DatasetError(f"not a dataset id: {ident!r} (ids look like {_ID_PREFIX}<32 hex digits>)")
    store = await declare_datasets(bus)
    try:
        result = await store.get(ident)
    except (ObjectNotFoundError, NotFoundError):
        raise DatasetError(f"dataset {ident} is not in the {DATASETS_BUCKET} object store") from None
    data = bytes(result.data)
    if _id_of(data) != ident:
        raise DatasetError(f"dataset {ident} in the object store hashes to {_id_of(data)}")
    return data


class DatasetCache:
    """Datasets by id: in memory (the ``keep`` most recently used), on disk, then the object store."""

    def __init__(self, directory: str | os.PathLike | None = None, keep: int = 4) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()
        self.keep = keep
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetched = 0

    def cached(self, ident: str) -> np.ndarray | None:
        """The bars when they are in memory already (no I/O)."""
        bars = self._memory.get(ident)
        if bars is not None:
            self._memory.move_to_end(ident)
        return bars

    def _remember(self, ident: str, bars: np.ndarray) -> np.ndarray:
        bars.flags.writeable = False
        self._memory[ident] = bars
        self._memory.move_to_end(ident)
        while len(self._memory) > self.keep:
            self._memory.popitem(last=False)
        return bars

    def _read_disk(self, ident: str) -> np.ndarray | None:
        path = self.directory / f"{ident}.npy"
        if not path.is_file():
            return None
        try:
            return decode_bars(path.read_bytes(), ident)
        except (DatasetError, OSError):
            path.unlink(missing_ok=True)  # corrupt or foreign: fetch it again
            return None

    def _write_disk(self, ident: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{ident}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.directory / f"{ident}.npy")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, bus: Bus, ident: str) -> np.ndarray:
        """The bars of dataset ``ident``; raises DatasetError when no source has it."""
        bars = self.cached(ident)
        if bars is not None:
            return bars
        lock = self._locks.setdefault(ident, asyncio.Lock())
        async with lock:
            bars = self.cached(ident)
            if bars is None:
                bars = await asyncio.to_thread(self._read_disk, ident)
            if bars is None:
                data = await fetch_dataset(bus, ident)
                self.fetched += 1
                bars = decode_bars(data, ident)
                try:
                    await asyncio.to_thread(self._write_disk, ident, data)
                except OSError:
                    pass  # a read-only cache folder only costs a refetch next time
            return self._remember(ident, bars)
