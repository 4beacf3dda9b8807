"""``tradebus status``: list running services found through ``$SRV.INFO`` and ``$SRV.STATS``."""
from __future__ import annotations

import asyncio
import json

from tradebus.cli.connect import connect, default_url


async def collect(url: str | None, timeout: float) -> list[dict]:
    """One row per service instance: name, id, version, instance, endpoints and stats counters."""
    bus = await connect(url, "tradebus-status")
    try:
        infos = await bus.discover("INFO", timeout=timeout)
        stats = {s["id"]: s for s in await bus.discover("STATS", timeout=timeout)}
    finally:
        await bus.close()
    rows = []
    for info in sorted(infos, key=lambda i: (i["name"], i["id"])):
        st = stats.get(info["id"], {})
        counters = {}
        for ep in st.get("endpoints") or []:
            if isinstance(ep.get("data"), dict):
                counters = ep["data"]
                break
        rows.append(
            {
                "name": info["name"],
                "id": info["id"],
                "version": info["version"],
                "instance": (info.get("metadata") or {}).get("instance", ""),
                "endpoints": [e["subject"] for e in info.get("endpoints") or []],
                "started": st.get("started", ""),
                "counters": counters,
            }
        )
    return rows


def run(args) -> int:
    rows = asyncio.run(collect(args.nats_url or default_url(args.state_dir), args.timeout))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if rows else 1
    if not rows:
        print("no tradebus services answered")
        return 1
    print(f"{'SERVICE':<18} {'INSTANCE':<28} {'VERSION':<8} {'RECEIVED':>9} {'BAD':>5}  ID")
    for r in rows:
        c = r["counters"]
        print(f"{r['name']:<18} {r['instance']:<28} {r['version']:<8} {c.get('received', 0):>9} "
              f"{c.get('bad_input', 0):>5}  {r['id']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("status", help="list running services (NATS service API)")
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url, then nats://127.0.0.1:4222")
    p.add_argument("--state-dir", default=".state", help="where `tradebus up` wrote nats-url")
    p.add_argument("--timeout", type=float, default=0.5, help="seconds to wait for replies")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
