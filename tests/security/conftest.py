"""A real nats-server secured by the authorization tradebus generates from a deployment file with
two strategies (alpha, beta) on the sim venue, and helpers that connect as one of its users."""
from __future__ import annotations

import asyncio

import msgspec
import nats
import nats.errors
import pytest

from tradebus.bus import EmbeddedNats, NatsConfig
from tradebus.bus.auth import authorization_block, inbox_prefix, nats_users, write_credentials
from tradebus.config import DeploymentConfig

DEPLOYMENT = {
    "services": {
        "sim_exchange": {"module": "tradebus.services.sim_exchange"},
        "market_data": {"module": "tradebus.services.market_data", "settings": {"venues": []}},
        "strategy_runner": {"module": "tradebus.services.strategy_runner", "settings": {"strategies": [
            {"name": "alpha", "class": "tradebus.strategy.examples:SmaCross", "venue": "sim"},
        ]}},
        "runner_beta": {"module": "tradebus.services.strategy_runner", "settings": {"strategies": [
            {"name": "beta", "class": "tradebus.strategy.examples:SmaCross", "venue": "sim"},
        ]}},
        "order_router": {"module": "tradebus.services.order_router", "settings": {"venue": "sim"}},
        "backtest_worker": {"module": "tradebus.services.backtest_worker", "replicas": 2},
    }
}


def deployment() -> DeploymentConfig:
    return msgspec.convert(DEPLOYMENT, DeploymentConfig)


class Secured:
    """The server plus every user's password."""

    def __init__(self, server: EmbeddedNats, passwords: dict[str, str], auth_dir):
        self.server, self.passwords, self.auth_dir = server, passwords, auth_dir

    def nats_config(self, user: str) -> NatsConfig:
        """How a tradebus Bus connects as ``user`` (its password from its file)."""
        return NatsConfig(url=self.url, user=user, password_file=str(self.auth_dir / f"{user}.password"),
                          max_reconnect_attempts=1)

    @property
    def url(self) -> str:
        return self.server.url

    async def connect(self, user: str | None, errors: list[str] | None = None, password: str | None = None):
        """A plain nats-py client as ``user`` (None: anonymous); async errors go to ``errors``."""
        async def on_error(exc):
            if errors is not None:
                errors.append(str(exc))

        options = {}
        if user:
            options = {"user": user, "password": password or self.passwords[user], "inbox_prefix": inbox_prefix(user)}
        return await asyncio.wait_for(nats.connect(self.url, error_cb=on_error, allow_reconnect=False,
                                                   max_reconnect_attempts=0, connect_timeout=2, **options), 10)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured")
    users = nats_users(deployment())
    passwords = write_credentials(folder / "auth", [u.name for u in users])
    with EmbeddedNats(state_dir=folder / "nats", extra_config=authorization_block(users, passwords)) as server:
        yield Secured(server, passwords, folder / "auth")


def violation(errors: list[str], subject: str) -> bool:
    """True when the server told the client it may not use ``subject``."""
    return any("permissions violation" in e.lower() and subject.lower() in e.lower() for e in errors)


async def settle(nc) -> None:
    """Round-trip to the server, then give its asynchronous -ERR time to arrive."""
    await nc.flush()
    await asyncio.sleep(0.2)


REFUSED = (nats.errors.Error, OSError, asyncio.TimeoutError)
