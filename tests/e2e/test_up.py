"""`tradebus up` brings up every service on the embedded server, restarts a killed one, stops on Ctrl+C."""
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

from tradebus.bus import NatsConfig, discover, free_port
from tradebus.bus.config import connect_options
from tradebus.config import DEFAULT_CONFIG
from tradebus.proto import ServiceCommand, ServiceStatus
from tradebus.proto.codec import decoder_for, encode

SERVICES = {"sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


async def operator(url: str, state: Path):
    """A client of the stack as its operator: the credentials `tradebus up` wrote into ``state``
    (auth is on by default), found the way every tradebus client finds them."""
    return await nats.connect(**connect_options(NatsConfig(url=url, max_reconnect_attempts=0),
                                                {"TRADEBUS_STATE_DIR": str(state)}))


async def pings(url: str, state: Path) -> dict[str, dict]:
    nc = await operator(url, state)
    try:
        return {p["name"]: p for p in await discover(nc, "PING", timeout=0.3)}
    finally:
        await nc.close()


async def strategy_status(url: str, state: Path) -> ServiceStatus | None:
    nc = await operator(url, state)
    try:
        cmd = encode(ServiceCommand(service="strategy_runner", command="status"))
        msg = await nc.request("svc.strategy_runner.status", cmd, timeout=1)
        return decoder_for(ServiceStatus).decode(msg.data)
    except Exception:
        return None
    finally:
        await nc.close()


def interrupt(proc: subprocess.Popen, timeout: float) -> str:
    """Ctrl+C a running `tradebus up`: everything it printed, once it exited with 0 (SIGKILL if it
    outlives ``timeout``)."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def fills(status: ServiceStatus | None) -> int:
    return status.counters.get("fills", 0) if status else 0


async def test_up_trades_on_the_sim_and_supervises_the_whole_stack(tmp_path):
    """The packaged local stack: market data from the sim, the sample strategy trading through the router."""
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    config["embedded_nats"]["port"] = 0
    config["supervisor"]["backoff"]["initial"] = 0.2
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    config["services"]["sim_exchange"]["args"] = ["--port", str(sim_port), "--speed", "5"]
    config["services"]["market_data"]["settings"]["venues"][0]["sim_url"] = sim_url
    config["services"]["order_router"]["settings"]["sim_url"] = sim_url
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(yaml.safe_dump(config))
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradebus.cli", "up", "--config", str(cfg), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not (state / "nats-url").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        url = (state / "nats-url").read_text().strip()
        seen: dict[str, dict] = {}
        while set(seen) != SERVICES and time.monotonic() < deadline:
            seen = await pings(url, state)
        assert set(seen) == SERVICES

        while fills(await strategy_status(url, state)) < 2 and time.monotonic() < deadline + 60:
            await asyncio.sleep(0.5)
        assert fills(await strategy_status(url, state)) >= 2, "the sample strategy did not trade on the sim"

        victim_id = seen["order_router"]["id"]
        victim_pid = int(seen["order_router"]["metadata"]["pid"])
        os.kill(victim_pid, signal.SIGKILL)
        while time.monotonic() < deadline:
            now = await pings(url, state)
            if "order_router" in now and now["order_router"]["id"] != victim_id:
                break
        assert now["order_router"]["id"] != victim_id, "killed order_router was not restarted"

        family = descendants(proc.pid)
        assert len(family) >= len(SERVICES) + 1  # services + nats-server
        text = interrupt(proc, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped." in text
    assert "summary:" in text and "sma_cross BTC/USDT: orders=" in text
    time.sleep(0.2)
    assert not [p for p in family if alive(p)], "orphan processes left behind"
