"""`tradebus up --cluster 3`: three nats-servers with replicated streams before any service starts;
a node SIGKILLed under it is started again and catches up; Ctrl+C stops everything."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tradebus.bus import Bus, discover
from tradebus.bus.jetstream import declared_streams, wait_replicated
from tradebus.config import DEFAULT_CONFIG

from ..e2e.test_up import alive, descendants, interrupt
from .cluster_stack import HANG_GUARD, REPLICAS, eventually


def node_pids(root: int) -> dict[str, int]:
    """node-<i> -> pid of each nats-server under ``root`` (its config lives in <state>/nats/node-<i>/)."""
    found = {}
    for pid in descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in argv:
            path = Path(arg.decode(errors="replace"))
            if path.name == "nats-server.conf" and path.parent.name.startswith("node-"):
                found[path.parent.name] = pid
    return found


def write_config(tmp_path: Path) -> Path:
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    config["embedded_nats"]["port"] = 0
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return cfg


def up(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tradebus.cli", "up", "--config", str(write_config(tmp_path)),
                             "--state-dir", str(tmp_path / "state"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env={**os.environ, **(env or {})})


async def test_up_cluster_replicates_every_stream_and_restarts_a_killed_node(tmp_path, monkeypatch):
    # Authentication stays on (the default): the test connects as the operator of this state folder,
    # and the worker must be able to wait for the meta leader and declare under its own user.
    monkeypatch.setenv("TRADEBUS_STATE_DIR", str(tmp_path / "state"))
    proc = up(tmp_path, "--cluster", "3", "--only", "backtest_worker")
    try:
        url_file = tmp_path / "state" / "nats-url"
        await eventually(url_file.exists, "up to write the cluster's URLs")
        url = url_file.read_text().strip()
        assert url.count("nats://") == 3
        bus = await Bus.connect(url)
        try:
            await eventually(lambda: discover(bus.nc, "PING", "backtest_worker", timeout=0.3), "the worker to answer")
            worker = (await discover(bus.nc, "PING", "backtest_worker", timeout=0.5))[0]
            environ = Path(f"/proc/{worker['metadata']['pid']}/environ").read_bytes().split(b"\0")
            assert f"TRADEBUS_JS_REPLICAS={REPLICAS}".encode() in environ  # what services declare gets 3 too
            infos = await wait_replicated(bus.js, timeout=HANG_GUARD)  # declared before any service started
            assert set(infos) == set(declared_streams())
            assert {name: info.config.num_replicas for name, info in infos.items()} == dict.fromkeys(infos, REPLICAS)

            before = node_pids(proc.pid)
            assert set(before) == {"node-1", "node-2", "node-3"}
            os.kill(before["node-2"], signal.SIGKILL)
            await eventually(lambda: node_pids(proc.pid).get("node-2") not in (None, before["node-2"]),
                             "up to start node-2 again")
            infos = await wait_replicated(bus.js, timeout=HANG_GUARD)
            for name, info in infos.items():
                peers = {info.cluster.leader, *(p.name for p in info.cluster.replicas)}
                assert peers == {"tradebus-1", "tradebus-2", "tradebus-3"}, name
        finally:
            await bus.close()
        family = descendants(proc.pid)
        text = await asyncio.to_thread(interrupt, proc, HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "JetStream ready" in text and "3 replicas" in text
    assert "nats node tradebus-2 exited (-9); restarted" in text
    assert "stopped." in text
    assert "permissions violation" not in (tmp_path / "state" / "logs" / "backtest_worker.log").read_text().lower()
    time.sleep(0.2)
    assert not [p for p in family if alive(p)], "orphan processes left behind"


def test_up_refuses_a_cluster_that_cannot_lose_a_node_is_not_embedded_or_is_missing(tmp_path):
    two = up(tmp_path, "--cluster", "2")
    out, _ = two.communicate(timeout=HANG_GUARD)
    assert two.returncode == 2 and b"at least 3 nodes" in out
    external = up(tmp_path, "--cluster", "3", "--nats-url", "nats://127.0.0.1:1")
    out, _ = external.communicate(timeout=HANG_GUARD)
    assert external.returncode == 2 and b"leave out --nats-url" in out
    replicated_single = up(tmp_path, env={"TRADEBUS_JS_REPLICAS": "3"})
    out, _ = replicated_single.communicate(timeout=HANG_GUARD)
    assert replicated_single.returncode == 2 and b"use --cluster 3" in out
