"""``tradebus declare [--replicas N]``: create every JetStream stream, KV bucket and object store.

Services declare what they use at start, with one replica; a deployment on a NATS cluster runs
this first (compose: the ``streams`` service; Kubernetes: the ``declare-streams`` Job) so the
streams get N replicas. Idempotent: existing streams are kept (see ``tradebus.bus.jetstream``).
"""
from __future__ import annotations

import asyncio

import nats.errors

from tradebus.cli.connect import BusUnreachable, bus_url, connect


async def declare(url: str | None, replicas: int | None) -> list[str]:
    """Declare with ``replicas`` replicas (None: the settings' ``stream_replicas``, $TRADEBUS_JS_REPLICAS)."""
    bus = await connect(url, "tradebus-declare")
    if replicas is not None:
        bus.stream_replicas = replicas
    try:
        declared = await bus.declare_all()
    finally:
        await bus.close()
    return [f"{name} ({info.config.num_replicas} replicas)" for name, info in declared.streams.items()]


def run(args) -> int:
    try:
        streams = asyncio.run(declare(bus_url(args), args.replicas))
    except BusUnreachable:
        raise  # tradebus says so in one line
    except (TimeoutError, OSError, nats.errors.Error, ValueError) as exc:  # ValueError: replicas below 1
        print(f"tradebus declare: {type(exc).__name__}: {exc}")
        return 1
    print("declared: " + ", ".join(streams) + " and the KV buckets and object stores")
    return 0


def register(sub) -> None:
    p = sub.add_parser("declare", help="create the JetStream streams and buckets (N replicas on a cluster)")
    p.add_argument("--replicas", type=int, help="replicas of what is created (3 on a 3-node cluster; "
                                                "default: $TRADEBUS_JS_REPLICAS, then 1)")
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url")
    p.add_argument("--state-dir", default=".state", help="where `tradebus up` wrote nats-url")
    p.set_defaults(func=run)
