"""Recording of published md events: rotating Parquet files (pyarrow) or a JetStream stream.

A Parquet recording holds one row per event: ``ts`` (the event's ts_recv / ts_init, ns),
``subject`` and ``payload`` (the exact msgpack bytes that went on the bus), so replaying it gives
identical events. Files are named ``md-<first ts>-<seq>.parquet`` and sort in time order.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("tradebus.marketdata.record")

__all__ = ["ParquetRecorder", "JetStreamRecorder", "make_recorder", "read_parquet", "read_jetstream",
           "recording_files"]

SCHEMA_FIELDS = ("ts", "subject", "payload")


def event_ts(event: Any) -> int:
    return getattr(event, "ts_recv", 0) or getattr(event, "ts_init", 0) or time.time_ns()


class ParquetRecorder:
    """Buffers rows and writes one Parquet file per ``rotate_rows`` rows or ``rotate_seconds``."""

    def __init__(self, path: str | Path, rotate_rows: int = 100_000, rotate_seconds: float = 300.0,
                 retention_hours: float = 0.0) -> None:
        import pyarrow  # noqa: F401  (fail at start, not at the first rotation)

        self.dir = Path(path)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rotate_rows, self.rotate_seconds, self.retention_hours = rotate_rows, rotate_seconds, retention_hours
        self.ts: list[int] = []
        self.subjects: list[str] = []
        self.payloads: list[bytes] = []
        self.started = time.monotonic()
        self.seq = 0
        self.files_written = 0
        self.rows_written = 0
        self._timer: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.rotate_seconds))
            if self.ts and time.monotonic() - self.started >= self.rotate_seconds:
                await self.rotate()

    async def add(self, subject: str, data: bytes, event: Any) -> None:
        self.ts.append(event_ts(event))
        self.subjects.append(subject)
        self.payloads.append(data)
        if len(self.ts) >= self.rotate_rows:
            await self.rotate()

    async def rotate(self) -> Path | None:
        async with self._lock:
            if not self.ts:
                self.started = time.monotonic()
                return None
            ts, subjects, payloads = self.ts, self.subjects, self.payloads
            self.ts, self.subjects, self.payloads = [], [], []
            self.started = time.monotonic()
            self.seq += 1
            path = self.dir / f"md-{ts[0]:020d}-{self.seq:06d}.parquet"
            await asyncio.to_thread(_write, path, ts, subjects, payloads)
            self.files_written += 1
            self.rows_written += len(ts)
            if self.retention_hours > 0:
                self._retain()
            return path

    def _retain(self) -> None:
        cutoff = time.time() - self.retention_hours * 3600
        for f in self.dir.glob("md-*.parquet"):
            try:
                if f.stat().st_mtime < cutoff:
                    f.unlink()
                    log.info("retention: removed %s", f)
            except OSError:
                pass

    async def close(self) -> None:
        if self._timer:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        await self.rotate()


def _write(path: Path, ts: list[int], subjects: list[str], payloads: list[bytes]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"ts": pa.array(ts, pa.int64()), "subject": pa.array(subjects, pa.string()),
                      "payload": pa.array(payloads, pa.binary())})
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.rename(path)


def recording_files(path: str | Path) -> list[Path]:
    """The Parquet files of a recording (a folder or one file), in time order."""
    path = Path(path)
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def read_parquet(path: str | Path) -> Iterator[tuple[int, str, bytes]]:
    """(ts, subject, payload) rows of a recording, in recorded order."""
    import pyarrow.parquet as pq

    for f in recording_files(path):
        table = pq.read_table(f, columns=list(SCHEMA_FIELDS))
        yield from zip(table.column("ts").to_pylist(), table.column("subject").to_pylist(),
                       table.column("payload").to_pylist())


class JetStreamRecorder:
    """Captures ``md.<venue>.>`` in a JetStream stream (max_age = retention); nothing to do per event."""

    def __init__(self, bus, stream: str, venues: list[str], retention_hours: float) -> None:
        self.bus, self.stream, self.venues, self.retention_hours = bus, stream, venues, retention_hours

    async def start(self) -> None:
        from tradebus.bus.jetstream import md_record_stream

        await self.bus.declare_stream(md_record_stream(self.stream, self.venues, self.retention_hours))

    async def add(self, subject: str, data: bytes, event: Any) -> None:
        return None

    async def close(self) -> None:
        return None


async def read_jetstream(bus, stream: str, idle: float = 1.0) -> AsyncIterator[tuple[int, str, bytes]]:
    """(ts, subject, payload) of every message in ``stream``, oldest first (stops when idle)."""
    info = await bus.stream_info(stream)
    last = info.state.last_seq
    if not info.state.messages:
        return
    sub = await bus.read_stream(stream)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle)
            except TimeoutError:
                return
            seq = msg.metadata.sequence.stream
            yield int(msg.metadata.timestamp.timestamp() * 1e9), msg.subject, msg.data
            if seq >= last:
                return
    finally:
        await sub.unsubscribe()


async def make_recorder(settings, bus, venues: list[str]):
    if settings.format == "jetstream":
        rec = JetStreamRecorder(bus, settings.stream, venues, settings.retention_hours)
        await rec.start()
        return rec
    rec = ParquetRecorder(settings.path, settings.rotate_rows, settings.rotate_seconds, settings.retention_hours)
    rec.start()
    return rec
