"""Submit a study to the farm and collect its results.

    spec = make_spec("sweep", strategy="sma_cross", dataset_id=ident, grid=parse_grid(["fast=5:50:5"]))
    await submit(bus, spec)                     # spec -> bt_studies KV, jobs -> BT_JOBS
    collector = Collector(bus, spec)
    await collector.run()                       # until every job has a result or a dead letter

Jobs are published with their job id as ``Nats-Msg-Id``, so submitting a study twice within the
BT_JOBS duplicate window does not queue its jobs twice. The collector reads BT_RESULTS through
an ephemeral pull consumer filtered on ``bt.*.<study>`` (results and dead letters) and keeps the
stream sequence it has read up to; if the consumer is lost (a server restart, a long
disconnection) it makes a new one from the next sequence, so nothing is skipped or read twice.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import KeyNotFoundError, NotFoundError

from tradebus.bus import Bus
from tradebus.proto import BacktestDead, BacktestProgress, BacktestResult
from tradebus.proto.codec import decoder_for, encode
from tradebus.proto.subjects import (
    BT_JOBS_STREAM,
    BT_RESULTS_STREAM,
    KV_BT_STUDIES,
    bt_dead_subject,
    bt_job_subject,
    bt_progress_subject,
    bt_result_subject,
    name_token,
)

from .jobs import PlannedJob, StudyError, StudySpec, build_jobs

__all__ = [
    "STUDIES_BUCKET",
    "declare_studies",
    "save_spec",
    "load_spec",
    "list_specs",
    "submit",
    "StoredCounts",
    "stored_counts",
    "Collector",
]

log = logging.getLogger("tradebus.study")

STUDIES_BUCKET = KV_BT_STUDIES
_spec_decoder = msgspec.json.Decoder(StudySpec)
_record_decoder = decoder_for(BacktestResult | BacktestDead)


async def declare_studies(bus: Bus):
    """Open (creating it the first time) the ``bt_studies`` KV bucket: study id -> StudySpec JSON."""
    return await bus.key_value(STUDIES_BUCKET)


async def save_spec(bus: Bus, spec: StudySpec) -> None:
    kv = await declare_studies(bus)
    await kv.put(spec.study_id, msgspec.json.encode(spec))


async def load_spec(bus: Bus, study_id: str) -> StudySpec:
    """The spec of ``study_id``; StudyError when no such study was submitted."""
    name_token(study_id, "study id")
    kv = await declare_studies(bus)
    try:
        entry = await kv.get(study_id)
    except (KeyNotFoundError, NotFoundError):
        raise StudyError(f"no study {study_id!r} (see `tradebus study list`)") from None
    return _spec_decoder.decode(entry.value)


async def list_specs(bus: Bus) -> list[StudySpec]:
    """Every stored study spec, oldest first."""
    kv = await declare_studies(bus)
    try:
        keys = await kv.keys()
    except Exception:  # nats-py raises NoKeysError (or a timeout) on an empty bucket
        return []
    specs = []
    for key in keys:
        try:
            specs.append(_spec_decoder.decode((await kv.get(key)).value))
        except (KeyNotFoundError, NotFoundError, msgspec.DecodeError):
            continue
    return sorted(specs, key=lambda s: s.created_ns)


async def submit(bus: Bus, spec: StudySpec, planned: list[PlannedJob] | None = None, window: int = 256) -> int:
    """Store the spec and publish every job (awaiting each JetStream ack, ``window`` in flight).

    Returns how many jobs the stream took as new (the rest were duplicates of an earlier submit).
    """
    planned = build_jobs(spec) if planned is None else planned
    await save_spec(bus, spec)
    subject = bt_job_subject(spec.study_id)
    new = 0
    for start in range(0, len(planned), window):
        chunk = planned[start:start + window]
        acks = await asyncio.gather(*(
            bus.js_store(subject, encode(p.job), headers={"Nats-Msg-Id": p.job.job_id}, stream=BT_JOBS_STREAM)
            for p in chunk
        ))
        new += sum(1 for ack in acks if not ack.duplicate)
    return new


@dataclass(frozen=True)
class StoredCounts:
    """What the streams hold for a study right now."""

    results: int
    dead: int
    queued: int


async def stored_counts(bus: Bus, study_id: str) -> StoredCounts:
    """Results and dead letters in BT_RESULTS, jobs still in BT_JOBS, for ``study_id``."""

    async def count(stream: str, subject: str) -> int:
        info = await bus.stream_info(stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())

    return StoredCounts(
        results=await count(BT_RESULTS_STREAM, bt_result_subject(study_id)),
        dead=await count(BT_RESULTS_STREAM, bt_dead_subject(study_id)),
        queued=await count(BT_JOBS_STREAM, bt_job_subject(study_id)),
    )


@dataclass
class Collector:
    """Reads a study's results and dead letters from BT_RESULTS, each job once."""

    bus: Bus
    spec: StudySpec
    results: dict[str, BacktestResult] = field(default_factory=dict)
    dead: dict[str, BacktestDead] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    _last_seq: int = 0
    _sub: object = None
    _consumer: str | None = None
    _dead_only: int = 0  # dead letters of jobs without a result
    _error_results: int = 0

    @property
    def total(self) -> int:
        return self.spec.total_jobs

    @property
    def done(self) -> int:
        """Jobs with an outcome: a result or a dead letter."""
        return len(self.results) + self._dead_only

    @property
    def failed(self) -> int:
        """Jobs whose outcome is a failure (a dead letter, or a result carrying an error)."""
        return self._dead_only + self._error_results

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    def progress(self) -> BacktestProgress:
        return BacktestProgress(study_id=self.spec.study_id, done=self.done, total=self.total, failed=self.failed,
                                workers=len(self.workers), ts_init=time.time_ns())

    async def _subscribe(self) -> None:
        await self._unsubscribe()
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if self._last_seq else api.DeliverPolicy.ALL,
            opt_start_seq=self._last_seq + 1 if self._last_seq else None,
            inactive_threshold=60.0,
            mem_storage=True,
        )
        name = f"collect_{secrets.token_hex(6)}"
        config.name = name
        config.filter_subject = f"bt.*.{self.spec.study_id}"  # bt.result.<study> and bt.dead.<study>
        await self.bus.declare_consumer(BT_RESULTS_STREAM, config)
        self._consumer = name
        self._sub = await self.bus.pull_subscribe(BT_RESULTS_STREAM, name)

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        name, self._consumer = self._consumer, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        if name is not None:
            try:  # it would go by itself after inactive_threshold; tidy up now
                await self.bus.delete_consumer(BT_RESULTS_STREAM, name)
            except Exception:
                pass

    def _take(self, msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._last_seq:  # re-read after a consumer was rebuilt
            return
        self._last_seq = seq
        self.records += 1
        try:
            record = _record_decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable record %d on %s: %s", seq, msg.subject, exc)
            return
        if isinstance(record, BacktestResult):
            if record.study_id != self.spec.study_id or record.job_id in self.results:
                return
            self.results[record.job_id] = record
            self.workers.add(record.worker)
            self._error_results += record.error is not None
            self._dead_only -= record.job_id in self.dead
        elif record.job.study_id == self.spec.study_id and record.job.job_id not in self.dead:
            self.dead[record.job.job_id] = record
            self._dead_only += record.job.job_id not in self.results
            if record.worker:
                self.workers.add(record.worker)

    async def poll(self, batch: int = 512, timeout: float = 1.0) -> int:
        """Read what is there (waiting up to ``timeout`` for the first record); return how many."""
        before = self.records
        try:
            if self._sub is None:
                await self._subscribe()
            msgs = await self._sub.fetch(batch, timeout=timeout)
        except (TimeoutError, NatsTimeoutError):
            await self._check_consumer()
            return 0
        except Exception as exc:  # disconnected, consumer gone, server restarting: rebuild next time
            log.debug("collector fetch failed (%s); resubscribing", exc)
            await self._unsubscribe()
            await asyncio.sleep(min(timeout, 0.5))
            return 0
        for msg in msgs:
            self._take(msg)
        return self.records - before

    async def _check_consumer(self) -> None:
        try:
            await self._sub.consumer_info()
        except NotFoundError:
            await self._unsubscribe()
        except Exception:
            pass

    async def run(self, on_update: Callable[[Collector], Awaitable[None] | None] | None = None,
                  timeout: float | None = None, publish_progress: bool = True) -> Collector:
        """Collect until every job has an outcome (or ``timeout`` seconds pass: TimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_published = 0.0
        try:
            while not self.complete:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"study {self.spec.study_id}: {self.done} of {self.total} jobs done "
                                       f"after {timeout:.0f}s")
                got = await self.poll()
                now = time.monotonic()
                if got and publish_progress and now - last_published >= 0.5:
                    last_published = now
                    await self._publish_progress()
                if on_update is not None:
                    maybe = on_update(self)
                    if maybe is not None:
                        await maybe
            if publish_progress:
                await self._publish_progress()
        finally:
            await self._unsubscribe()
        return self

    async def catch_up(self) -> Collector:
        """Read every record stored for the study now, then stop (for a study still running)."""
        counts = await stored_counts(self.bus, self.spec.study_id)
        idle = 0
        try:
            while self.records < counts.results + counts.dead and not self.complete and idle < 3:
                idle = 0 if await self.poll(timeout=1.0) else idle + 1
        finally:
            await self._unsubscribe()
        return self

    async def _publish_progress(self) -> None:
        try:
            await self.bus.publish(bt_progress_subject(self.spec.study_id), self.progress())
        except Exception:  # progress is advisory; a disconnected moment must not stop collection
            pass
