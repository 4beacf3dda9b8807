"""Every JetStream stream, durable consumer and KV bucket tradebus uses, declared in one place.

``await declare_all(bus.js)`` is idempotent: a missing stream is created, an existing one with
the same configuration is left alone, one whose configuration changed is updated in place (the
server refuses changes it cannot apply, such as a new retention policy, with a clear error).

| name             | kind   | holds                                                    |
|------------------|--------|----------------------------------------------------------|
| ORDERS           | stream | ord.req.<venue> requests and ord.evt.<venue>.<strategy>  |
| BT_JOBS          | stream | bt.job.<study> backtest jobs, work-queue retention       |
| BT_RESULTS       | stream | bt.result.<study> results and bt.dead.<study> failures   |
| strategy_params  | KV     | per-strategy parameters (key: strategy name)             |
| router_state     | KV     | order router state (client -> exchange ids, positions)   |
| bt_studies       | KV     | backtest study specs by study id                         |
| bt_datasets      | object | backtest bar datasets by content hash                    |
| MD_RECORD (name  | stream | md.<venue>.> captured by market_data's JetStream         |
|  from settings)  |        | recorder (``md_record_stream``), max_age = retention     |
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import nats.errors
from nats.js import api
from nats.js.errors import APIError, BadRequestError, NotFoundError, ServiceUnavailableError

from tradebus.proto import subjects

__all__ = [
    "STREAMS",
    "KV_BUCKETS",
    "declare_all",
    "declare_stream",
    "declare_kv",
    "declare_object_store",
    "OBJECT_STORES",
    "declare_consumer",
    "work_queue_consumer",
    "md_record_stream",
    "replicated",
    "declared_streams",
    "wait_jetstream",
    "wait_replicated",
    "replication_lag",
]

DAY = 24 * 3600.0
C = TypeVar("C", api.StreamConfig, api.KeyValueConfig, api.ObjectStoreConfig)

# Storage settings per stream; names, subjects and retention come from tradebus.proto.subjects.
_LIMITS: dict[str, dict[str, Any]] = {
    subjects.ORDERS_STREAM: {"max_age": 7 * DAY, "duplicate_window": 120.0},
    subjects.BT_JOBS_STREAM: {"duplicate_window": 600.0},
    subjects.BT_RESULTS_STREAM: {"max_age": 30 * DAY, "duplicate_window": 3600.0},
}
_RETENTION = {"limits": api.RetentionPolicy.LIMITS, "workqueue": api.RetentionPolicy.WORK_QUEUE}

STREAMS: dict[str, api.StreamConfig] = {
    spec.name: api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=_RETENTION[spec.retention],
        storage=api.StorageType.FILE,
        **_LIMITS.get(spec.name, {}),
    )
    for spec in subjects.STREAMS
}

KV_BUCKETS: dict[str, api.KeyValueConfig] = {
    subjects.KV_STRATEGY_PARAMS: api.KeyValueConfig(
        bucket=subjects.KV_STRATEGY_PARAMS, description="Strategy parameters by strategy name", history=5
    ),
    subjects.KV_BT_STUDIES: api.KeyValueConfig(
        bucket=subjects.KV_BT_STUDIES, description="Backtest study specs by study id", history=1,
        storage=api.StorageType.FILE,
    ),
    subjects.KV_ROUTER_STATE: api.KeyValueConfig(
        bucket=subjects.KV_ROUTER_STATE, description="Order router state by venue account", history=1
    ),
}

OBJECT_STORES: dict[str, api.ObjectStoreConfig] = {
    subjects.OBJECT_BT_DATASETS: api.ObjectStoreConfig(
        bucket=subjects.OBJECT_BT_DATASETS, description="Backtest datasets by content id", storage=api.StorageType.FILE
    ),
}

_STREAM_NAME_IN_USE = 10058


def md_record_stream(name: str, venues: list[str], retention_hours: float) -> api.StreamConfig:
    """The stream market_data records ``md.<venue>.>`` into (every venue's md when ``venues`` is
    empty); its name and retention are deployment settings, so it is declared by the recorder
    with :func:`declare_stream` rather than by :func:`declare_all`."""
    return api.StreamConfig(
        name=name,
        description="market data recorded by market_data",
        subjects=[f"md.{v}.>" for v in sorted(set(venues))] or ["md.>"],
        max_age=retention_hours * 3600 if retention_hours > 0 else None,
        storage=api.StorageType.FILE,
    )


def _same(wanted: api.StreamConfig, have: api.StreamConfig) -> bool:
    keys = ("subjects", "retention", "storage", "max_age", "duplicate_window", "max_msgs", "max_bytes", "description")
    return all(getattr(wanted, k) in (None, getattr(have, k)) for k in keys)


async def declare_stream(js, config: api.StreamConfig) -> api.StreamInfo:
    """Create ``config.name`` or bring an existing stream to ``config``."""
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        try:
            return await js.add_stream(config)
        except BadRequestError as exc:  # another process created it between our two calls
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
            info = await js.stream_info(config.name)
    if _same(config, info.config):
        return info
    return await js.update_stream(config)


async def declare_kv(js, config: api.KeyValueConfig):
    """Create (or open) the KV bucket ``config.bucket`` and return its handle."""
    try:
        await js.stream_info(f"KV_{config.bucket}")
    except NotFoundError:
        try:
            return await js.create_key_value(config)
        except BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
    return await js.key_value(config.bucket)


async def declare_object_store(js, config: api.ObjectStoreConfig):
    """Create (or open) the object store ``config.bucket`` and return its handle."""
    try:
        await js.stream_info(f"OBJ_{config.bucket}")
    except NotFoundError:
        try:
            return await js.create_object_store(config.bucket, config=config)
        except BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
    return await js.object_store(config.bucket)


async def declare_consumer(js, stream: str, config: api.ConsumerConfig) -> api.ConsumerInfo:
    """Create or update the durable consumer ``config.durable_name`` on ``stream``."""
    return await js.add_consumer(stream, config)


def work_queue_consumer(durable: str, filter_subject: str, ack_wait: float, max_deliver: int, max_ack_pending: int = 1000):
    """Config of an explicit-ack pull consumer for a work queue."""
    return api.ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
    )


@dataclass
class Declared:
    streams: dict[str, api.StreamInfo]
    kv: dict[str, object]
    objects: dict[str, object]


def replicated(config: C, replicas: int | None) -> C:
    """``config`` (a stream, KV bucket or object store config) with ``replicas`` replicas (None: as is)."""
    if replicas is None:
        return config
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    changes: dict[str, Any] = {"num_replicas" if isinstance(config, api.StreamConfig) else "replicas": replicas}
    return replace(config, **changes)


# JetStream's answers while a cluster is still forming: no suitable peers for placement yet,
# JetStream temporarily unavailable (no meta leader), insufficient resources (peers joining).
_NOT_READY_CODES = frozenset({10005, 10008, 10023})
CLUSTER_READY_TIMEOUT = 60.0


def _not_ready(exc: Exception) -> bool:
    if isinstance(exc, (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError,
                        ServiceUnavailableError)):
        return True
    return isinstance(exc, APIError) and exc.err_code in _NOT_READY_CODES


async def declare_all(js, replicas: int | None = None, ready_timeout: float = 0.0) -> Declared:
    """Declare every stream and KV bucket tradebus uses; safe to call from every service at start.

    ``replicas`` (a clustered server: 3) applies to what this call creates; an existing stream
    keeps its replica count, so services that declare with the default leave a replicated one alone.
    With ``ready_timeout`` (a cluster that may be starting) it first waits that long for a meta
    leader and retries while the cluster answers "not ready"; any other refusal raises at once.
    """
    deadline = time.monotonic() + ready_timeout
    if ready_timeout:
        await wait_jetstream(js, ready_timeout)
    while True:
        try:
            streams = {name: await declare_stream(js, replicated(cfg, replicas)) for name, cfg in STREAMS.items()}
            kv = {name: await declare_kv(js, replicated(cfg, replicas)) for name, cfg in KV_BUCKETS.items()}
            objects = {name: await declare_object_store(js, replicated(cfg, replicas))
                       for name, cfg in OBJECT_STORES.items()}
            return Declared(streams, kv, objects)
        except (TimeoutError, nats.errors.Error) as exc:
            if not _not_ready(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.2)


def declared_streams() -> list[str]:
    """The JetStream streams behind what :func:`declare_all` declares (a KV bucket is the stream
    ``KV_<bucket>``, an object store ``OBJ_<bucket>``)."""
    return [*STREAMS, *(f"KV_{b}" for b in KV_BUCKETS), *(f"OBJ_{b}" for b in OBJECT_STORES)]


async def wait_jetstream(js, timeout: float = 30.0) -> api.AccountInfo:
    """JetStream's account info once it answers: on a cluster, once a meta leader is elected."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await js.account_info()
        except (TimeoutError, nats.errors.Error) as exc:  # no responders, 503 while no meta leader
            if time.monotonic() >= deadline:
                raise TimeoutError(f"JetStream did not answer within {timeout}s (no meta leader?): {exc}") from None
        await asyncio.sleep(0.1)


def replication_lag(info: api.StreamInfo) -> str | None:
    """What keeps a stream from being fully replicated (no leader, a replica offline or behind), or None."""
    wanted = info.config.num_replicas or 1
    cluster = info.cluster
    if wanted == 1:
        return None
    if cluster is None or not cluster.leader:
        return "no leader"
    replicas = cluster.replicas or []
    behind = [p.name for p in replicas if p.offline or not p.current]
    if behind:
        return f"replicas not current: {', '.join(str(name) for name in behind)}"
    if len(replicas) < wanted - 1:
        return f"{len(replicas) + 1} of {wanted} replicas placed"
    return None


async def wait_replicated(js, names: list[str] | None = None, timeout: float = 30.0) -> dict[str, api.StreamInfo]:
    """Stream info of each of ``names`` (default: :func:`declared_streams`) once every one has a
    leader and all its replicas are current; TimeoutError naming the laggards otherwise."""
    names = declared_streams() if names is None else names
    deadline = time.monotonic() + timeout
    while True:
        infos: dict[str, api.StreamInfo] = {}
        waiting: dict[str, str] = {}
        for name in names:
            try:
                info = await js.stream_info(name)
            except (TimeoutError, nats.errors.Error) as exc:  # no leader to answer yet
                waiting[name] = f"{type(exc).__name__}: {exc}"
                continue
            lag = replication_lag(info)
            if lag:
                waiting[name] = lag
            infos[name] = info
        if not waiting:
            return infos
        if time.monotonic() >= deadline:
            raise TimeoutError(f"streams not replicated within {timeout}s: "
                               + "; ".join(f"{k}: {v}" for k, v in waiting.items()))
        await asyncio.sleep(0.1)
