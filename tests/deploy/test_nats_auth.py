"""The NATS server configuration shipped for compose and Kubernetes (deploy/k8s/base/nats), run
with the real nats-server and passwords from make_secrets.py: every service user connects, the
permissions refuse what a role must not do, an anonymous client is refused."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats
import nats.errors
import pytest

from tradebus.bus import find_nats_server, free_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "k8s" / "base" / "nats"
sys.path.insert(0, str(ROOT / "deploy" / "compose"))
from make_secrets import USERS, VARIABLES, write_secrets  # noqa: E402


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    passwords = write_secrets(folder / "secrets")
    port, monitor = free_port("127.0.0.1"), free_port("127.0.0.1")
    # the shipped files, with JetStream in this test's folder instead of /var/lib/nats
    (folder / "auth.conf").write_text((CONF / "auth.conf").read_text())
    conf = (CONF / "nats.conf").read_text().replace("/var/lib/nats", str(folder / "js"))
    assert str(folder / "js") in conf
    (folder / "nats.conf").write_text(conf)
    env = dict(os.environ, NATS_SERVER_NAME="auth-test",
               **{VARIABLES[user]: pw for user, pw in passwords.items()})
    proc = subprocess.Popen([find_nats_server(), "-c", str(folder / "nats.conf"), "-a", "127.0.0.1", "-p", str(port),
                             "-m", str(monitor)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"nats://127.0.0.1:{port}"
    for _ in range(100):  # until it listens
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield url, passwords, proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def connect(url: str, user: str | None, password: str | None, errors: list[str]):
    async def on_error(exc):
        errors.append(str(exc))

    options = {"user": user, "password": password} if user else {}
    return await asyncio.wait_for(nats.connect(url, error_cb=on_error, max_reconnect_attempts=0, connect_timeout=2,
                                               allow_reconnect=False, **options), 10)


async def publish_refused(url: str, user: str, password: str, subject: str) -> bool:
    errors: list[str] = []
    nc = await connect(url, user, password, errors)
    try:
        await nc.publish(subject, b"x")
        await nc.flush()
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
    return any("permissions violation" in e.lower() and subject.lower() in e.lower() for e in errors)


async def test_every_user_of_auth_conf_connects(secured_server):
    url, passwords, _ = secured_server
    assert set(USERS) == {"market_data", "strategy_runner", "order_router", "backtest_worker", "sim_exchange", "operator",
                          "strategy-sma_cross"}
    for user in USERS:
        nc = await connect(url, user, passwords[user], [])
        assert nc.is_connected
        await nc.close()


@pytest.mark.parametrize("user, subject, refused", [
    ("strategy_runner", "md.sim.BTC-USDT.trade", True),     # fake market data
    ("strategy_runner", "ord.evt.sim.sma_cross", True),     # fake order events
    ("market_data", "ord.req.sim.sma_cross", True),         # orders from a feed
    ("strategy_runner", "ord.req.sim.other", True),         # orders as a strategy it does not host
    ("backtest_worker", "acct.sim.balance", True),
    ("sim_exchange", "md.sim.BTC-USDT.trade", True),
    ("market_data", "md.sim.BTC-USDT.trade", False),        # each role's own subjects
    ("strategy_runner", "ord.req.sim.sma_cross", False),
    ("order_router", "ord.evt.sim.sma_cross", False),
    ("operator", "svc.order_router.kill", False),
])
async def test_permissions(secured_server, user, subject, refused):
    url, passwords, _ = secured_server
    assert await publish_refused(url, user, passwords[user], subject) is refused


async def test_anonymous_and_wrong_password_are_refused(secured_server):
    url, passwords, _ = secured_server
    for user, password in ((None, None), ("order_router", passwords["operator"])):
        with pytest.raises((nats.errors.Error, OSError, asyncio.TimeoutError)):
            await connect(url, user, password, [])
