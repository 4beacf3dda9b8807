"""`tradebus up` as a subprocess on free ports, with helpers to reach it as its operator."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import yaml

from tradebus.bus import free_port
from tradebus.bus.auth import inbox_prefix
from tradebus.config import DEFAULT_CONFIG

SIM_DEFAULT = Path(__file__).resolve().parents[2] / "services" / "sim_exchange" / "default.yaml"
SERVICES = ("sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker")


def deployment_file(folder: Path, sim_key: str = "sim-key", sim_secret: str = "sim-secret",
                    nats: dict | None = None, embedded: dict | None = None, strategies: list[dict] = ()) -> Path:
    """The packaged local.yaml on free ports; the sim account's keys as given (sim YAML of its own);
    ``strategies`` hosted by the strategy_runner besides the sample one."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    sim_port = free_port()
    sim = yaml.safe_load(SIM_DEFAULT.read_text())
    sim["accounts"][0].update(api_key=sim_key, secret=sim_secret)
    (folder / "sim.yaml").write_text(yaml.safe_dump(sim))
    services = config["services"]
    services["sim_exchange"]["args"] = ["--port", str(sim_port), "--speed", "20", "--sim-config", str(folder / "sim.yaml")]
    services["market_data"]["settings"]["venues"][0]["sim_url"] = f"http://127.0.0.1:{sim_port}"
    router = services["order_router"]["settings"]
    router.update(sim_url=f"http://127.0.0.1:{sim_port}", sim_api_key=sim_key, sim_secret=sim_secret)
    services["strategy_runner"]["settings"]["strategies"] += list(strategies)
    config["embedded_nats"]["port"] = 0
    config["nats"].update(nats or {})
    config["embedded_nats"].update(embedded or {})
    path = folder / "deployment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Stack:
    """A running ``tradebus up``: its state folder, URL and operator password once written."""

    def __init__(self, folder: Path, config: Path, env: dict[str, str] | None = None):
        self.folder, self.state = folder, folder / "state"
        self.env = {**os.environ, **(env or {})}
        for name in ("TRADEBUS_NATS_URL", "TRADEBUS_NATS_USER", "TRADEBUS_NATS_PASSWORD", "TRADEBUS_NATS_PASSWORD_FILE",
                     "TRADEBUS_STATE_DIR"):
            self.env.pop(name, None)
        self.out = open(folder / "up.out", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tradebus.cli", "up", "--config", str(config),
                                      "--state-dir", str(self.state), "--status-interval", "2"],
                                     cwd=folder, env=self.env, stdout=self.out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.state / "nats-url").is_file() or not (self.state / "auth" / "operator.password").is_file():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tradebus up did not start: {self.output()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return (self.state / "nats-url").read_text().strip()

    def password(self, user: str) -> str:
        return (self.state / "auth" / f"{user}.password").read_text().strip()

    async def connect(self, user: str | None = "operator", options: dict | None = None, **more):
        """A nats-py client as ``user`` (its generated password; None: as ``options`` say)."""
        options = {**(options or {}), **more}
        if user:
            options.update(user=user, password=self.password(user), inbox_prefix=inbox_prefix(user))
        return await asyncio.wait_for(nats.connect(self.url, allow_reconnect=False, max_reconnect_attempts=0,
                                                   connect_timeout=3, **options), 15)

    async def wait_services(self, nc, timeout: float = 90.0) -> set[str]:
        """Until every service answers $SRV.PING; returns their names."""
        from tradebus.bus import discover

        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            seen |= {p["name"] for p in await discover(nc, "PING", timeout=0.5)}
            if seen >= set(SERVICES):
                return seen
            await asyncio.sleep(0.5)
        raise AssertionError(f"only {sorted(seen)} answered; {self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()

    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return (self.folder / "up.out").read_text(errors="replace")

    def logs(self) -> dict[str, str]:
        """Every log file of the run: each service's and the nats-server's."""
        files = sorted((self.state / "logs").glob("*.log")) + [self.state / "nats" / "nats-server.log"]
        return {p.name: p.read_text(errors="replace") for p in files if p.is_file()}
