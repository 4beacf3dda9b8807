"""The backtest worker loop: BT_JOBS work queue -> batch engine -> BT_RESULTS.

Every worker binds to the one durable pull consumer ``bt_workers`` and repeats:

1. fetch up to ``batch`` jobs;
2. run the first-time jobs together (``run_jobs``: one ``run_batch`` per dataset and settings)
   in a thread, then each redelivered job on its own, so a job that crashes its worker takes
   as few others with it as possible; ``in_progress()`` heartbeats go out for every job held
   until it is acknowledged;
3. publish each result to ``bt.result.<study>`` with the job id as ``Nats-Msg-Id`` and wait for
   the stream's ack, and only then ack the job. A redelivered job's result is stored once.

A job that fails is nak'ed (redelivered after ``retry_delay``) until its ``attempts``-th run;
that run's error goes out as a BacktestDead on ``bt.dead.<study>`` and the job is acked. A job
that can never run (its rule does not compile: ``JobOutcome.retry`` False) is dead-lettered on
its first run, with the compiler's message as the reason. The
consumer allows one delivery more than ``attempts``: a job delivered that often had runs that
gave no answer at all (its workers died or hung), so it is dead-lettered without running again.
"""
from __future__ import annotations

import asyncio
import logging
import time

from nats.errors import TimeoutError as NatsTimeoutError

from tradebus import metrics
from tradebus.bus.jetstream import work_queue_consumer
from tradebus.bus.service import ServiceContext
from tradebus.proto import BacktestDead, BacktestJob, BacktestResult
from tradebus.proto.codec import encode
from tradebus.proto.subjects import BT_JOBS_STREAM, BT_RESULTS_STREAM, BT_WORKER_CONSUMER, bt_dead_subject, bt_result_subject
from tradebus.retry import Backoff
from tradebus.study.datasets import DatasetCache, DatasetError, declare_datasets
from tradebus.study.execution import JobOutcome, run_jobs

from .settings import CONNECTION_BACKOFF, WorkerSettings

__all__ = ["WorkerSettings", "Worker"]

log = logging.getLogger("tradebus.backtest_worker")


class _Held:
    """A delivered job and its message until it is acked, nak'ed or terminated."""

    __slots__ = ("msg", "job", "delivered")

    def __init__(self, msg, job: BacktestJob) -> None:
        self.msg = msg
        self.job = job
        self.delivered = msg.metadata.num_delivered


class Worker:
    """One worker process's consumer loop; ``start`` it from the service setup."""

    def __init__(self, svc: ServiceContext, settings: WorkerSettings) -> None:
        self.svc = svc
        self.settings = settings
        self.cache = DatasetCache(settings.cache_dir or None)
        self.held: set[_Held] = set()
        self._sub = None
        self._loop_task: asyncio.Task | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self._backlog_task: asyncio.Task | None = None

    async def _declare(self) -> None:
        """Streams, dataset store and the shared consumer (idempotent), then bind to the consumer."""
        bus = self.svc.bus
        await bus.declare_all()
        await declare_datasets(bus)
        config = work_queue_consumer(BT_WORKER_CONSUMER, None, self.settings.ack_wait, self.settings.attempts + 1,
                                     self.settings.max_ack_pending)
        await bus.declare_consumer(BT_JOBS_STREAM, config)
        old, self._sub = self._sub, await bus.pull_subscribe(BT_JOBS_STREAM, BT_WORKER_CONSUMER)
        if old is not None:
            try:
                await old.unsubscribe()
            except Exception:
                pass

    async def start(self) -> None:
        for outcome in ("done", "dead", "retried"):  # series from 0, so the first jobs show in rate()
            metrics.BACKTEST_JOBS.labels(outcome)
        await self._declare()
        self._heartbeat_task = asyncio.create_task(self._heartbeats())
        self._loop_task = asyncio.create_task(self._loop())
        self._backlog_task = asyncio.create_task(metrics.watch_consumer(
            lambda: self.svc.bus.consumer_info(BT_JOBS_STREAM, BT_WORKER_CONSUMER), BT_JOBS_STREAM, BT_WORKER_CONSUMER))
        self.svc.on_stop(self.stop)
        self.svc.message = "idle"

    async def stop(self) -> None:
        """Finish the batch in hand (its results are published and acked), then return."""
        if self._loop_task is not None:
            try:
                await self._loop_task
            except Exception:
                log.exception("worker loop failed")
        for task in (self._heartbeat_task, self._backlog_task):
            if task is not None:
                task.cancel()
        if self._sub is not None:
            try:  # a pull subscription's leftover status messages would stall the drain
                await self._sub.unsubscribe()
            except Exception:
                pass

    async def _loop(self) -> None:
        failures = 0
        while not self.svc.stopping.is_set():
            try:
                msgs = await self._sub.fetch(self.settings.batch_size, timeout=self.settings.fetch_timeout)
                failures = 0
            except (TimeoutError, NatsTimeoutError):
                failures = 0
                continue
            except Exception as exc:  # disconnected, server restarting, or the consumer was removed
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("fetch failed (%d in a row): %s", failures, exc)
                await asyncio.sleep(min(0.25 * failures, 5.0))
                if failures % 4 == 0:
                    try:  # a server that lost its state, or a deleted consumer: declare it all again
                        await self._declare()
                    except Exception as again:
                        log.debug("re-declaring failed: %s", again)
                continue
            try:
                await self._handle(msgs)
            except Exception:
                self.svc.counters["batch_errors"] += 1
                log.exception("batch failed; its unacked jobs will be redelivered")
            finally:
                self.held.clear()
                self.svc.message = "idle"

    async def _heartbeats(self) -> None:
        interval = self.settings.ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            for held in list(self.held):
                try:
                    await held.msg.in_progress()
                except Exception:
                    pass

    async def _handle(self, msgs: list) -> None:
        fresh: list[_Held] = []
        retried: list[_Held] = []
        for msg in msgs:
            job = self.svc.bus.decode(msg.subject, msg.data, BacktestJob)
            if job is None:  # counted as bad input by the bus; it can never succeed
                await msg.term()
                continue
            held = _Held(msg, job)
            self.held.add(held)
            if held.delivered > 1:
                self.svc.counters["redeliveries"] += 1
            (fresh if held.delivered == 1 else retried).append(held)
        self.svc.counters["batches"] += 1
        if fresh:
            await self._process(fresh)
        for held in retried:
            await self._process([held])

    async def _process(self, items: list[_Held]) -> None:
        runnable = []
        for held in items:
            if held.delivered > self.settings.attempts:
                reason = (f"no outcome after {held.delivered - 1} deliveries: the workers running it "
                          f"died or did not answer within ack_wait ({self.settings.ack_wait:g}s)")
                await self._finish(held, JobOutcome(held.job.job_id, None, reason, 0))
            else:
                runnable.append(held)
        if not runnable:
            return
        datasets, missing = {}, {}
        for ident in {h.job.dataset_id for h in runnable}:
            try:
                datasets[ident] = await self._dataset(ident)
            except DatasetError as exc:
                missing[ident] = f"DatasetError: {exc}"
        self.svc.counters["datasets_fetched"] = self.cache.fetched
        studies = sorted({h.job.study_id for h in runnable})
        self.svc.message = f"running {len(runnable)} job(s) of {', '.join(studies)}"
        jobs = [h.job for h in runnable if h.job.dataset_id in datasets]
        outcomes = iter(await asyncio.to_thread(run_jobs, datasets, jobs, self.settings.threads) if jobs else [])
        results = []
        for held in runnable:
            error = missing.get(held.job.dataset_id)
            results.append(JobOutcome(held.job.job_id, None, error, 0) if error else next(outcomes))
        await asyncio.gather(*(self._finish(held, outcome) for held, outcome in zip(runnable, results)))

    async def _dataset(self, ident: str):
        """The bars of ``ident``. A missing or corrupt dataset is the job's failure (DatasetError);
        a connection problem is not: it is retried (the jobs' heartbeats go on) for up to ack_wait."""
        deadline = time.monotonic() + self.settings.ack_wait
        backoff = Backoff(CONNECTION_BACKOFF)
        while True:
            try:
                return await self.cache.get(self.svc.bus, ident)
            except DatasetError:
                raise
            except Exception as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    raise DatasetError(f"cannot fetch {ident}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(delay)

    async def _finish(self, held: _Held, outcome: JobOutcome) -> None:
        """Publish the job's outcome (a result, a dead letter, or a nak for another try)."""
        job = held.job
        if outcome.error is None:
            record = BacktestResult(job_id=job.job_id, study_id=job.study_id, stats=outcome.stats or {},
                                    worker=self.svc.instance, elapsed_ns=outcome.elapsed_ns, ts_init=time.time_ns())
            subject = bt_result_subject(job.study_id)
        elif outcome.retry and held.delivered < self.settings.attempts:
            self.svc.counters["jobs_retried"] += 1
            metrics.BACKTEST_JOBS.labels("retried").inc()
            log.info("job %s failed (delivery %d of %d): %s", job.job_id, held.delivered, self.settings.attempts,
                     outcome.error)
            try:
                await held.msg.nak(delay=self.settings.retry_delay)
            except Exception:
                pass  # not nak'ed: redelivered after ack_wait instead
            self.held.discard(held)
            return
        else:
            record = BacktestDead(job=job, reason=outcome.error, attempts=held.delivered, worker=self.svc.instance,
                                  ts_init=time.time_ns())
            subject = bt_dead_subject(job.study_id)
            log.warning("job %s dead after %d deliveries: %s", job.job_id, held.delivered, outcome.error)
        if not await self._publish(subject, record, job.job_id):
            self.held.discard(held)  # left unacked: the server redelivers it after ack_wait
            return
        try:  # a lost ack only brings the job back: its result is then a duplicate the stream drops
            await held.msg.ack()
        except Exception as exc:
            log.warning("ack of %s failed: %s", job.job_id, exc)
        self.held.discard(held)
        self.svc.counters["jobs_done" if outcome.error is None else "jobs_dead"] += 1
        metrics.BACKTEST_JOBS.labels("done" if outcome.error is None else "dead").inc()

    async def _publish(self, subject: str, record, job_id: str) -> bool:
        """Publish to BT_RESULTS and wait for the stream's ack, retrying through a reconnection
        for up to ack_wait; False when it never got through."""
        payload = encode(record)
        deadline = time.monotonic() + self.settings.ack_wait
        backoff = Backoff(CONNECTION_BACKOFF)
        while True:
            try:
                ack = await self.svc.bus.js_store(subject, payload, headers={"Nats-Msg-Id": job_id},
                                                  stream=BT_RESULTS_STREAM, timeout=5.0)
                if ack.duplicate:
                    self.svc.counters["results_duplicate"] += 1
                return True
            except Exception as exc:
                delay = backoff.next()
                if time.monotonic() + delay > deadline:
                    log.warning("could not publish the outcome of %s: %s", job_id, exc)
                    return False
                await asyncio.sleep(delay)
