"""Fixtures of the farm tests."""
from __future__ import annotations

import asyncio

import pytest

from tradebus.bus import Bus, EmbeddedNats
from tradebus.bus.jetstream import declare_all


@pytest.fixture
async def farm(tmp_path):
    """A fresh nats-server (file storage in tmp_path) and a connected Bus with the streams declared."""
    server = EmbeddedNats(state_dir=tmp_path / "nats")
    await asyncio.to_thread(server.start)
    bus = await Bus.connect(server.url)
    await declare_all(bus.js)
    try:
        yield server, bus
    finally:
        await bus.close()
        await asyncio.to_thread(server.stop)
