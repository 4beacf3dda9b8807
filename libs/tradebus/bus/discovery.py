"""Find running services through the NATS service API (``$SRV.PING|INFO|STATS[.name]``)."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.client import Client

__all__ = ["discover"]


async def discover(nc: Client, verb: str = "PING", name: str | None = None, timeout: float = 0.5) -> list[dict[str, Any]]:
    """Every reply to ``$SRV.<verb>[.<name>]`` that arrives within ``timeout`` seconds."""
    subject = f"$SRV.{verb.upper()}" + (f".{name}" if name else "")
    inbox = nc.new_inbox()
    replies: list[dict[str, Any]] = []

    async def collect(msg) -> None:
        try:
            replies.append(json.loads(msg.data))
        except ValueError:
            pass

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(subject, b"", reply=inbox)
        await nc.flush()
        await asyncio.sleep(timeout)
    finally:
        await sub.unsubscribe()
    return replies
