"""How a CLI command reaches the bus: which URL, one bounded connection attempt, one line if none.

    bus = await connect(bus_url(args), "tradebus-status")

The URL is ``--nats-url``, else ``$TRADEBUS_NATS_URL``, else the one ``tradebus up`` wrote to
``<state-dir>/nats-url``, else the default of :class:`NatsConfig`. A server that does not answer
raises :class:`BusUnreachable` within ``CONNECT_TIMEOUT`` seconds or so (no retry loop, no warning
per attempt); ``tradebus`` prints :func:`unreachable_line` for it and exits ``NO_BUS_EXIT``.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tradebus.bus import Bus, BusUnreachable, NatsConfig

__all__ = ["connect", "require_bus", "bus_url", "default_url", "unreachable_line", "BusUnreachable", "NO_BUS_EXIT",
           "CONNECT_TIMEOUT"]

CONNECT_TIMEOUT = 2.0  # seconds per TCP attempt; a server that is up answers in milliseconds
NO_BUS_EXIT = 3  # as a service that cannot connect
HINT = "`make run` starts a local stack"


def default_url(state_dir: str = ".state") -> str | None:
    """$TRADEBUS_NATS_URL, else the URL `tradebus up` wrote to <state_dir>/nats-url."""
    if os.environ.get("TRADEBUS_NATS_URL"):
        return os.environ["TRADEBUS_NATS_URL"]
    path = Path(state_dir) / "nats-url"
    return path.read_text().strip() if path.is_file() else None


def bus_url(args: Any) -> str | None:
    """The URL a command's ``--nats-url`` / ``--state-dir`` arguments point at (None: the default)."""
    return getattr(args, "nats_url", None) or default_url(getattr(args, "state_dir", None) or ".state")


def cli_config(url: str | None, name: str, timeout: float = CONNECT_TIMEOUT) -> NatsConfig:
    # Two tries per server (see Bus.connect) of at most ``timeout`` each, and a little slack.
    return NatsConfig.from_env(url=url, name=name, connect_timeout=timeout, initial_connect_timeout=2 * timeout + 1)


async def connect(url: str | None, name: str, timeout: float = CONNECT_TIMEOUT, **bus_options: Any) -> Bus:
    """A connection for a CLI command, or :class:`BusUnreachable` within about ``2 * timeout`` seconds."""
    return await Bus.connect(cli_config(url, name, timeout), retry_first_connect=False, **bus_options)


async def _probe(url: str | None, name: str) -> None:
    bus = await connect(url, name)
    await bus.close()


def require_bus(url: str | None, name: str) -> None:
    """Raise :class:`BusUnreachable` unless the bus answers (before starting anything that needs it)."""
    asyncio.run(_probe(url, name))


def unreachable_line(command: str, exc: BusUnreachable) -> str:
    """The one line a command prints when the bus is not there."""
    return f"tradebus {command}: {exc} ({HINT})"
