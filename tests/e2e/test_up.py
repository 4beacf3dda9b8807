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

from tradebus.bus import discover
from tradebus.config import DEFAULT_CONFIG

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


async def pings(url: str) -> dict[str, dict]:
    nc = await nats.connect(url)
    try:
        return {p["name"]: p for p in await discover(nc, "PING", timeout=0.3)}
    finally:
        await nc.close()


async def test_up_supervises_the_whole_stack(tmp_path):
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    config["embedded_nats"]["port"] = 0
    config["supervisor"]["restart_initial_delay"] = 0.2
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
            seen = await pings(url)
        assert set(seen) == SERVICES

        victim_id = seen["order_router"]["id"]
        victim_pid = int(seen["order_router"]["metadata"]["pid"])
        os.kill(victim_pid, signal.SIGKILL)
        while time.monotonic() < deadline:
            now = await pings(url)
            if "order_router" in now and now["order_router"]["id"] != victim_id:
                break
        assert now["order_router"]["id"] != victim_id, "killed order_router was not restarted"

        family = descendants(proc.pid)
        assert len(family) >= len(SERVICES) + 1  # services + nats-server
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "stopped." in text
    time.sleep(0.2)
    assert not [p for p in family if alive(p)], "orphan processes left behind"
