"""Supervise service processes: start, restart with backoff, stop in order.

Each child runs in its own session so a terminal's Ctrl+C reaches only the supervisor, which then
stops the children in order (SIGTERM, a grace period, SIGKILL) before the NATS server. On Linux a
child also gets SIGTERM if the supervisor dies without stopping it, so no orphan is left behind.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field

from tradebus.bus.server import detach_and_die_with_parent
from tradebus.config import SupervisorConfig
from tradebus.retry import backoff_delay

__all__ = ["ChildSpec", "Child", "Supervisor"]

log = logging.getLogger("tradebus.supervisor")


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    state: str = "pending"  # pending | running | backoff | failed | stopped
    last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    """Keeps every child running; gives up on one after ``max_restarts`` quick failures."""

    def __init__(self, specs: list[ChildSpec], config: SupervisorConfig | None = None, log_dir: str | None = None):
        self.config = config if config is not None else SupervisorConfig()
        self.children = {spec.name: Child(spec) for spec in specs}
        self.log_dir = log_dir
        self._stopping = False
        self._watchers: list[asyncio.Task] = []
        self.changed = asyncio.Event()

    async def start(self) -> None:
        """Start every child. Each writes to ``<log_dir>/<name>.log`` (appended to across its
        restarts); the file of a previous supervisor's run is kept as ``<name>.log.1``."""
        if self.log_dir:
            for name in self.children:
                path = os.path.join(self.log_dir, f"{name}.log")
                if os.path.exists(path):
                    os.replace(path, path + ".1")
        for child in self.children.values():
            await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch-{child.spec.name}"))

    async def _spawn(self, child: Child) -> None:
        env = {**os.environ, **child.spec.env}
        out = None
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{child.spec.name}.log"), "ab")
        try:
            child.process = await asyncio.create_subprocess_exec(
                *child.spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out or None,
                stderr=asyncio.subprocess.STDOUT if out else None,
                env=env,
                preexec_fn=detach_and_die_with_parent,
            )
        finally:
            if out:
                out.close()
        child.started_at = time.monotonic()
        child.state = "running"
        self.changed.set()
        log.info("started %s (pid %d)", child.spec.name, child.process.pid)

    async def _watch(self, child: Child) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            child.last_exit = code
            if self._stopping:
                child.state = "stopped"
                self.changed.set()
                return
            if time.monotonic() - child.started_at >= self.config.stable_after:
                child.restarts = 0  # it ran long enough: a fresh crash starts the backoff over
            if child.restarts >= self.config.max_restarts:
                child.state = "failed"
                self.changed.set()
                log.error("%s exited with %s; gave up after %d restarts", child.spec.name, code, child.restarts)
                return
            child.restarts += 1
            child.state = "backoff"
            self.changed.set()
            delay = backoff_delay(self.config.backoff, child.restarts - 1)
            log.warning("%s exited with %s; restart %d in %.1fs", child.spec.name, code, child.restarts, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                child.state = "stopped"
                return
            await self._spawn(child)

    async def stop(self) -> None:
        """SIGTERM every child, wait ``stop_timeout``, SIGKILL the rest, reap all."""
        self._stopping = True
        running = [(c, c.process) for c in self.children.values() if c.process and c.process.returncode is None]
        for _, process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        if running:
            waits = [asyncio.create_task(process.wait()) for _, process in running]
            done, pending = await asyncio.wait(waits, timeout=self.config.stop_timeout)
            for child, process in running:
                if process.returncode is None:
                    log.warning("%s did not stop in %.1fs; killing it", child.spec.name, self.config.stop_timeout)
                    process.kill()
            if pending:
                await asyncio.wait(pending)
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for child in self.children.values():
            child.state = "stopped"

    def summary(self) -> list[tuple[str, str, int | None, int, int | None]]:
        return [(c.spec.name, c.state, c.pid, c.restarts, c.last_exit) for c in self.children.values()]
