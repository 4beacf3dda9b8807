"""Every CLI command that needs the bus says in one line that it cannot reach it, and exits non-zero."""
import subprocess
import sys

import pytest

from tradebus.bus import BusUnreachable, free_port
from tradebus.cli.connect import connect

# Each command with the arguments it needs to get as far as connecting. (`tradebus farm` checks the
# Docker API first, then the bus: deploy/check/run.py runs it against a real Docker API.)
COMMANDS = {
    "status": ["status"],
    "study list": ["study", "list"],
    "study status": ["study", "status", "sweep-1"],
    "study results": ["study", "results", "sweep-1"],
    "study sweep": ["study", "sweep", "--grid", "fast=5", "--data", "bars-" + "0" * 32],
    "replay": ["replay", "--jetstream", "MD_RECORD"],
    "strategy cmd": ["strategy", "cmd", "sma", "start"],
    "health": ["health", "backtest_worker", "--any"],
    "declare": ["declare"],
    "audit": ["audit"],
    "up --nats-url": ["up", "--only", "market_data"],
}


def tradebus(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tradebus.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_without_a_bus_says_so_in_one_line(name, tmp_path):
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    done = tradebus(*COMMANDS[name], "--nats-url", url, cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"cannot reach NATS at {url}" in lines[0]
    if name != "health":  # the probe prints "unhealthy: ..." for its orchestrator, not for a person
        assert lines[0].startswith(f"tradebus {COMMANDS[name][0]}: ") and "`make run` starts a local stack" in lines[0]


def test_without_a_url_the_command_tries_the_one_tradebus_up_wrote(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    url = f"nats://127.0.0.1:{free_port()}"
    (state / "nats-url").write_text(url + "\n")
    done = tradebus("status", "--state-dir", str(state), cwd=tmp_path)
    (line,) = done.stderr.strip().splitlines()
    assert done.returncode == 3
    assert line.startswith(f"tradebus status: cannot reach NATS at {url}: ")
    assert line.endswith(" (`make run` starts a local stack)")


async def test_the_cli_connection_fails_once_and_then_reconnects_as_configured(nats_server):
    with pytest.raises(BusUnreachable) as failed:
        await connect(f"nats://127.0.0.1:{free_port()}", "test")
    assert "cannot reach NATS at nats://127.0.0.1:" in str(failed.value)
    bus = await connect(nats_server.url, "test")
    try:
        assert bus.nc.is_connected
        assert bus.nc.options["max_reconnect_attempts"] == -1  # the config's, not the first attempt's
    finally:
        await bus.close()


def test_a_password_in_the_url_is_not_printed(tmp_path):
    port = free_port()
    done = tradebus("status", "--nats-url", f"nats://alice:pw-in-the-url-9@127.0.0.1:{port}", cwd=tmp_path)
    assert done.returncode == 3 and "pw-in-the-url-9" not in done.stderr + done.stdout
    assert f"cannot reach NATS at nats://***@127.0.0.1:{port}: " in done.stderr


async def test_the_connected_url_a_service_logs_has_no_credentials(nats_server):
    host_port = nats_server.url.split("://", 1)[1]
    bus = await connect(f"nats://alice:pw-in-the-url-9@{host_port}", "test")  # this server ignores credentials
    try:
        assert bus.connected_url == host_port
    finally:
        await bus.close()
