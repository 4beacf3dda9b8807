"""`tradebus up` secures its embedded server by default: every child connects as its own generated
user (credentials by file, never on a command line), an anonymous client is refused, the CLI finds
the operator's credentials in the state folder by itself, the generated permissions let every
service do its job (no permissions violation in any log), and no secret shows in a log line, a bus
message, an error text or a command line."""
from __future__ import annotations

import asyncio
import http.server
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import pytest_asyncio

from .conftest import REFUSED
from .stack import Stack, deployment_file

# Known fake secrets: none may appear in any output.
EXCHANGE_KEY = "FAKEexchangeKEY7f3a9c1e5b"
EXCHANGE_SECRET = "FAKEexchangeSECRET2d8b6e4f0a"
TELEGRAM_TOKEN = "123456789:FAKEtelegramTOKENq9w8e7r6t5"
SECRET_ENV = {
    "TRADEBUS_SIM_API_KEY": EXCHANGE_KEY, "TRADEBUS_SIM_SECRET": EXCHANGE_SECRET,
    "TRADEBUS_BINANCE_API_KEY": EXCHANGE_KEY, "TRADEBUS_BINANCE_SECRET": EXCHANGE_SECRET,
    "TRADEBUS_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "TRADEBUS_TELEGRAM_CHAT_ID": "42",
}
NOTIFIER = {"name": "notifier", "kind": "mlthon",
            "class": f"{Path(__file__).with_name('notifier_strategy.py')}:TelegramOnCommand",
            "venue": "sim", "cfg": {"product": "BTC-USDT"}, "params": {"start_after": 10**9},
            "symbols": [{"symbol": "BTC/USDT", "tick_size": 0.01, "lot_size": 0.00001}]}


class TelegramStandIn(http.server.BaseHTTPRequestHandler):
    """Telegram's Bot API on loopback: records each request path, answers 500 (an error to log)."""

    paths: list[str] = []

    def do_POST(self):
        self.paths.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def telegram():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TelegramStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, telegram):
    folder = tmp_path_factory.mktemp("stack")
    config = deployment_file(folder, sim_key=EXCHANGE_KEY, sim_secret=EXCHANGE_SECRET, strategies=[NOTIFIER])
    running = Stack(folder, config, {**SECRET_ENV, "TRADEBUS_TELEGRAM_API_URL": telegram})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def wiretap(stack):
    """Everything published on the bus while the tests run, seen by the operator on ``>``."""
    nc = await stack.connect("operator")
    seen: list[tuple[str, bytes]] = []

    async def on_msg(msg):
        seen.append((msg.subject, msg.data + b"".join(f"{k}:{v}".encode() for k, v in (msg.headers or {}).items())))
    await nc.subscribe(">", cb=on_msg)
    await stack.wait_services(nc)
    yield seen
    await nc.close()


def secrets_of(stack) -> dict[str, str]:
    users = [p.stem for p in (stack.state / "auth").glob("*.password")]
    return {**{f"nats password of {u}": stack.password(u) for u in users},
            "exchange key": EXCHANGE_KEY, "exchange secret": EXCHANGE_SECRET, "telegram token": TELEGRAM_TOKEN}


def cli(stack, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A tradebus CLI command run elsewhere, with no NATS credentials in its environment."""
    environ = {**stack.env, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tradebus.cli", *args, "--state-dir", str(stack.state)],
                          cwd=stack.folder, env=environ, capture_output=True, text=True, timeout=120)


def service_processes() -> list[tuple[str, dict[str, str]]]:
    """(instance, environment) of every running tradebus service process (from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--instance" in argv and any(a.startswith(b"tradebus.services.") for a in argv):
            instance = argv[argv.index(b"--instance") + 1].decode()
            found.append((instance, dict(e.decode(errors="replace").split("=", 1) for e in environ if b"=" in e)))
    return found


async def test_every_service_runs_as_its_own_user(stack, wiretap):
    children = {name: env for name, env in service_processes()
                if env.get("TRADEBUS_NATS_PASSWORD_FILE", "").startswith(str(stack.state.resolve()))}
    assert set(children) == {"sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker"}
    for name, env in children.items():
        assert env["TRADEBUS_NATS_USER"] == name
        assert env["TRADEBUS_NATS_PASSWORD_FILE"] == str((stack.state / "auth" / f"{name}.password").resolve())
        assert "TRADEBUS_NATS_PASSWORD" not in env


async def test_credentials_are_owner_only_and_never_on_a_command_line(stack, wiretap):
    auth = stack.state / "auth"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o700
    for path in list(auth.glob("*.password")) + [stack.state / "nats" / "nats-server.conf"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert {p.stem for p in auth.glob("*.password")} >= {"operator", "strategy_runner", "strategy-sma_cross",
                                                          "strategy-notifier"}
    passwords = [stack.password(p.stem) for p in auth.glob("*.password")]
    checked = 0
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(stack.state) in cmdline or "tradebus.services." in cmdline:
            checked += 1
            assert not any(pw in cmdline for pw in passwords), cmdline
    assert checked >= 5


async def test_anonymous_and_wrong_password_clients_are_refused(stack, wiretap):
    with pytest.raises(REFUSED):
        await stack.connect(None)
    with pytest.raises(REFUSED):
        await stack.connect(None, options={"user": "order_router", "password": stack.password("operator")})


async def test_cli_finds_the_operator_credentials_by_itself(stack, wiretap):
    status = await asyncio.to_thread(cli, stack, "status")
    assert status.returncode == 0, status.stderr
    for name in ("order_router", "strategy_runner", "market_data"):
        assert name in status.stdout
    declare = await asyncio.to_thread(cli, stack, "declare")
    assert declare.returncode == 0 and "ORDERS" in declare.stdout, declare.stdout + declare.stderr


async def test_only_the_operator_engages_the_kill_switch(stack, wiretap):
    """The order router's kill switch over the bus: a strategy's user is refused by the server."""
    errors: list[str] = []

    async def on_error(exc):
        errors.append(str(exc))
    nc = await stack.connect("strategy-sma_cross", error_cb=on_error)
    try:
        await nc.publish("svc.order_router.kill", b"")
        await nc.flush()
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
    assert any("permissions violation" in e.lower() and "svc.order_router.kill" in e for e in errors)


async def test_no_permissions_violation_in_normal_operation_and_no_secret_anywhere(stack, wiretap):
    # the bot token travels for real: a command makes the MLThon strategy send a telegram message,
    # which the stand-in refuses (an error the notifier logs)
    notify = await asyncio.to_thread(cli, stack, "strategy", "cmd", "notifier", "Notify", "hello")
    assert notify.returncode == 0, notify.stdout + notify.stderr
    for _ in range(100):
        if TelegramStandIn.paths:
            break
        await asyncio.sleep(0.1)
    assert TelegramStandIn.paths == [f"/bot{TELEGRAM_TOKEN}/sendMessage"]
    # error texts: a command that fails (not an MLThon strategy) and a client with a wrong password
    failing = await asyncio.to_thread(cli, stack, "strategy", "cmd", "sma_cross", "start")
    wrong = await asyncio.to_thread(cli, stack, "status", env={"TRADEBUS_NATS_USER": "operator",
                                                               "TRADEBUS_NATS_PASSWORD": "wrong-" + EXCHANGE_SECRET[:4]})
    assert wrong.returncode != 0 or "no services" in wrong.stdout.lower() or wrong.stdout.strip() == ""
    await asyncio.sleep(3)               # a few more status rounds on the bus
    stack.stop()
    logs = stack.logs()
    assert {"order_router.log", "strategy_runner.log", "nats-server.log"} <= set(logs)
    violations = [line for text in logs.values() for line in text.splitlines() if "permissions violation" in line.lower()]
    assert violations == []
    texts = {**{f"log {name}": text for name, text in logs.items()},
             "tradebus up output": stack.output(),
             "strategy cmd error": failing.stdout + failing.stderr,
             "wrong password error": wrong.stdout + wrong.stderr,
             **{f"bus {subject}": data.decode("latin-1") for subject, data in wiretap}}
    assert len(wiretap) > 50                 # the scan saw real traffic
    leaks = [(what, where) for what, secret in secrets_of(stack).items() for where, text in texts.items()
             if secret in text]
    assert leaks == []
    assert "telegram message not delivered: HTTP 500" in logs["strategy_runner.log"]
    assert os.environ.get("TRADEBUS_TELEGRAM_BOT_TOKEN") != TELEGRAM_TOKEN
