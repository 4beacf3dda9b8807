"""Helpers of the cluster fault scenarios: waiting, stream leaders, replication, a gated study."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from tradebus.bus import Bus, NatsCluster
from tradebus.bus.jetstream import wait_replicated

REPLICAS = 3
HANG_GUARD = 90.0  # seconds: only stops a hung test, never a measure of speed


async def eventually(predicate, what: str, timeout: float = HANG_GUARD, step: float = 0.05) -> None:
    """Wait for ``predicate()`` (sync or async); AssertionError naming ``what`` past the hang guard."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(step)


async def stream_leader(bus: Bus, stream: str) -> str:
    """The server name of ``stream``'s leader, from ``$JS.API.STREAM.INFO``'s cluster info."""
    info = await bus.js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader"
    return info.cluster.leader


async def leader_changed(bus: Bus, stream: str, old: str) -> bool:
    """Whether ``stream`` has a leader again and it is not ``old``."""
    try:
        return await stream_leader(bus, stream) != old
    except Exception:  # no leader yet: the election is running
        return False


async def whole(bus: Bus, cluster: NatsCluster) -> None:
    """Every declared stream has its leader and three current replicas, one on each node."""
    infos = await wait_replicated(bus.js, timeout=HANG_GUARD)
    for name, info in infos.items():
        assert info.config.num_replicas == REPLICAS, name
        peers = {info.cluster.leader, *(p.name for p in info.cluster.replicas)}
        assert peers == {node.server_name for node in cluster.nodes}, name


@dataclass
class GatedStudy:
    """A study's jobs wait while ``gate/closed`` exists (tests/services/backtest_worker's
    ``gated_cross``): ``running()`` is true once a worker is inside a job, so a fault lands
    mid-study by construction, not by timing."""

    gate: Path

    def __post_init__(self) -> None:
        self.gate.mkdir(parents=True, exist_ok=True)
        (self.gate / "closed").touch()

    def running(self) -> bool:
        return any(self.gate.glob("started-*"))

    def open(self) -> None:
        (self.gate / "closed").unlink(missing_ok=True)
