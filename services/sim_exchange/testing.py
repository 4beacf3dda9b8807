"""Test fixture: a sim_exchange on a free loopback port for the duration of a ``with`` block."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from .server import SimExchange
from .settings import SimConfig, default_config


@contextlib.asynccontextmanager
async def running_sim(config: SimConfig | None = None, host: str = "127.0.0.1",
                      port: int = 0) -> AsyncIterator[SimExchange]:
    """Start a SimExchange (paused replay unless ``config`` says otherwise) and stop it after.

    The yielded object has ``.url``/``.port`` and admin access: ``.step(n)``, ``.set_speed()``,
    ``.set_faults(**knobs)``, ``.inject_depth_gap(symbol)``, ``await .drop_ws()``, ``.account()``,
    ``.records()`` (what /admin/records serves: the orders, fills and wallets of an account),
    ``.engine`` and ``.state()``.
    """
    sim = SimExchange(config or default_config(speed="0"), host=host, port=port)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def until(predicate: Callable[[], bool], timeout: float = 10.0, step: Callable[[], object] | None = None) -> None:
    """Wait for ``predicate()``; ``step()`` (e.g. advancing the paused replay) runs between checks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        if step is not None:
            step()
        await asyncio.sleep(0.01)
