"""``tradebus status``: running services, their health and message rates, and consumer lag.

Services are found through ``$SRV.INFO``; ``$SRV.STATS`` is read twice, ``--interval`` seconds
apart, so each instance gets message rates in and out (its ``received``/``published`` counters)
and a health: ``ok``, ``degraded`` (handlers failed or messages were rejected during the
interval), the service's own state while starting or stopping, or ``lost`` (it stopped answering).
Consumer lag is the JetStream state of every consumer of ORDERS (the routers) and BT_JOBS (the
farm): messages not yet delivered (``pending``) and delivered but not acked (``unacked``).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tradebus.bus import Bus
from tradebus.cli.connect import connect, default_url
from tradebus.proto.subjects import BT_JOBS_STREAM, ORDERS_STREAM

LAG_STREAMS = (ORDERS_STREAM, BT_JOBS_STREAM)


def _counters(stats: dict) -> dict:
    for ep in stats.get("endpoints") or []:
        if isinstance(ep.get("data"), dict):
            return ep["data"]
    return {}


def health(first: dict, second: dict | None) -> str:
    """An instance's health from its counters at the start and the end of the interval."""
    if second is None:
        return "lost"
    state = str(second.get("state", "running"))
    if state != "running":
        return state
    errors = second.get("handler_errors", 0) - first.get("handler_errors", 0)
    bad = second.get("bad_input", 0) - first.get("bad_input", 0)
    if errors > 0 or bad > 0:
        return f"degraded ({errors} handler errors, {bad} rejected)"
    return "ok"


def _rate(before: dict, after: dict | None, key: str, seconds: float) -> float:
    if after is None or seconds <= 0:
        return 0.0
    return round(max(0.0, (after.get(key, 0) - before.get(key, 0)) / seconds), 2)


def service_rows(infos: list[dict], first: dict[str, dict], second: dict[str, dict], seconds: float) -> list[dict]:
    """One row per service instance: identity, health, rates over ``seconds`` and the counters."""
    rows = []
    for info in sorted(infos, key=lambda i: (i["name"], i["id"])):
        st = second.get(info["id"]) or first.get(info["id"], {})
        before = _counters(first.get(info["id"], {}))
        after = _counters(second[info["id"]]) if info["id"] in second else None
        now = after if after is not None else before

        rows.append({
            "name": info["name"],
            "id": info["id"],
            "version": info["version"],
            "instance": (info.get("metadata") or {}).get("instance", ""),
            "endpoints": [e["subject"] for e in info.get("endpoints") or []],
            "started": st.get("started", ""),
            "health": health(before, after),
            "in_per_s": _rate(before, after, "received", seconds),
            "out_per_s": _rate(before, after, "published", seconds),
            "counters": now,
        })
    return rows


async def consumer_lag(bus: Bus, streams: tuple[str, ...] = LAG_STREAMS) -> list[dict]:
    """Every consumer of ``streams`` with its backlog (a stream not declared yet is left out)."""
    rows = []
    for stream in streams:
        try:
            infos = await bus.consumers(stream)
        except Exception:  # nats.js.errors.NotFoundError: nothing declared it yet
            continue
        for c in sorted(infos, key=lambda c: c.name):
            rows.append({"stream": stream, "consumer": c.name, "pending": c.num_pending or 0,
                         "unacked": c.num_ack_pending or 0, "redelivered": c.num_redelivered or 0})
    return rows


async def collect(url: str | None, timeout: float, interval: float = 1.0) -> dict[str, list[dict]]:
    """``services`` (see :func:`service_rows`) and ``consumers`` (see :func:`consumer_lag`)."""
    bus = await connect(url, "tradebus-status")
    try:
        infos = await bus.discover("INFO", timeout=timeout)
        started = time.monotonic()
        first = {s["id"]: s for s in await bus.discover("STATS", timeout=timeout)}
        if interval > 0:
            await asyncio.sleep(interval)
        second = {s["id"]: s for s in await bus.discover("STATS", timeout=timeout)}
        seconds = time.monotonic() - started
        lag = await consumer_lag(bus)
    finally:
        await bus.close()
    return {"services": service_rows(infos, first, second, seconds), "consumers": lag}


def render(report: dict[str, Any]) -> str:
    lines = [f"{'SERVICE':<16} {'INSTANCE':<22} {'VERSION':<8} {'IN/S':>8} {'OUT/S':>8} {'RECEIVED':>9} "
             f"{'BAD':>5} {'ERRORS':>6}  HEALTH"]
    for r in report["services"]:
        c = r["counters"]
        lines.append(f"{r['name']:<16} {r['instance']:<22} {r['version']:<8} {r['in_per_s']:>8.1f} "
                     f"{r['out_per_s']:>8.1f} {c.get('received', 0):>9} {c.get('bad_input', 0):>5} "
                     f"{c.get('handler_errors', 0):>6}  {r['health']}")
    if report["consumers"]:
        lines.append("")
        lines.append(f"{'STREAM':<10} {'CONSUMER':<24} {'PENDING':>8} {'UNACKED':>8} {'REDELIVERED':>12}")
        for c in report["consumers"]:
            lines.append(f"{c['stream']:<10} {c['consumer']:<24} {c['pending']:>8} {c['unacked']:>8} "
                         f"{c['redelivered']:>12}")
    return "\n".join(lines)


def run(args) -> int:
    report = asyncio.run(collect(args.nats_url or default_url(args.state_dir), args.timeout, args.interval))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if report["services"] else 1
    if not report["services"]:
        print("no tradebus services answered")
        return 1
    print(render(report))
    return 0


def register(sub) -> None:
    p = sub.add_parser("status", help="running services: health, message rates, consumer lag")
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url, then nats://127.0.0.1:4222")
    p.add_argument("--state-dir", default=".state", help="where `tradebus up` wrote nats-url")
    p.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for replies")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between the two STATS samples the rates "
                                                                "come from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
