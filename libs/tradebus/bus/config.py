"""NATS connection settings: a frozen config Struct plus secrets from the environment or files.

Secrets never live in the config file itself, only their source: environment variables
(``TRADEBUS_NATS_USER``, ``TRADEBUS_NATS_PASSWORD``, ``TRADEBUS_NATS_TOKEN``) or mounted files
(``TRADEBUS_NATS_PASSWORD_FILE``, ``TRADEBUS_NATS_TOKEN_FILE``, ``TRADEBUS_NATS_CREDS`` for a
``.creds`` file, ``TRADEBUS_NATS_NKEY_SEED`` for an nkey seed file). ``repr`` masks them.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping

import msgspec

__all__ = ["NatsConfig", "Secrets", "exponential_backoff"]


class NatsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Where and how to connect. Reconnects back off exponentially: ``initial * multiplier**n``
    capped at ``reconnect_max_delay``, with up to ``reconnect_jitter`` (a fraction) added."""

    url: str = "nats://127.0.0.1:4222"
    name: str | None = None
    connect_timeout: float = 2.0
    initial_connect_timeout: float = 20.0
    max_reconnect_attempts: int = -1
    reconnect_initial_delay: float = 0.1
    reconnect_multiplier: float = 2.0
    reconnect_max_delay: float = 5.0
    reconnect_jitter: float = 0.1
    ping_interval: float = 20.0
    drain_timeout: float = 5.0
    user: str | None = None
    password_file: str | None = None
    token_file: str | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None

    def __post_init__(self) -> None:
        if self.reconnect_initial_delay <= 0 or self.reconnect_max_delay <= 0:
            raise ValueError("reconnect delays must be positive")
        if self.reconnect_multiplier < 1:
            raise ValueError("reconnect_multiplier must be >= 1")
        if not 0 <= self.reconnect_jitter <= 1:
            raise ValueError("reconnect_jitter must be between 0 and 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "NatsConfig":
        """Defaults, then ``overrides`` that are not None, then TRADEBUS_NATS_URL from ``env``."""
        env = os.environ if env is None else env
        fields = {k: v for k, v in overrides.items() if v is not None}
        if "url" not in fields and env.get("TRADEBUS_NATS_URL"):
            fields["url"] = env["TRADEBUS_NATS_URL"]
        return msgspec.convert(fields, cls)

    def secrets(self, env: Mapping[str, str] | None = None) -> "Secrets":
        return Secrets.resolve(self, os.environ if env is None else env)

    def connect_options(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (servers, backoff, credentials)."""
        opts: dict[str, Any] = {
            "servers": [u.strip() for u in self.url.split(",") if u.strip()],
            "name": self.name,
            "connect_timeout": self.connect_timeout,
            "max_reconnect_attempts": self.max_reconnect_attempts,
            "ping_interval": self.ping_interval,
            "drain_timeout": self.drain_timeout,
            "reconnect_to_server_handler": exponential_backoff(
                self.reconnect_initial_delay, self.reconnect_multiplier, self.reconnect_max_delay, self.reconnect_jitter
            ),
        }
        opts.update(self.secrets(env).connect_options())
        return opts


def exponential_backoff(initial: float, multiplier: float, cap: float, jitter: float = 0.0):
    """A nats-py ``reconnect_to_server_handler``: first server in the pool, delay growing per attempt.

    nats-py resets a server's ``reconnects`` count after a good connection, so the delay starts
    over from ``initial`` after every successful reconnect.
    """

    def handler(servers, _info):
        if not servers:
            return None, initial
        server = min(servers, key=lambda s: s.reconnects)
        delay = min(cap, initial * multiplier ** max(server.reconnects, 0))
        return server, delay * (1.0 + random.uniform(0.0, jitter))

    return handler


def _read_secret_file(path: str | None) -> str | None:
    if not path:
        return None
    return Path(path).expanduser().read_text().strip()


class Secrets:
    """Resolved credentials. Never printed: ``repr`` shows which kinds are set, not their values."""

    __slots__ = ("user", "password", "token", "creds_file", "nkey_seed_file")

    def __init__(self, user=None, password=None, token=None, creds_file=None, nkey_seed_file=None) -> None:
        self.user = user
        self.password = password
        self.token = token
        self.creds_file = creds_file
        self.nkey_seed_file = nkey_seed_file

    @classmethod
    def resolve(cls, config: NatsConfig, env: Mapping[str, str]) -> "Secrets":
        password = env.get("TRADEBUS_NATS_PASSWORD") or _read_secret_file(
            env.get("TRADEBUS_NATS_PASSWORD_FILE") or config.password_file
        )
        token = env.get("TRADEBUS_NATS_TOKEN") or _read_secret_file(env.get("TRADEBUS_NATS_TOKEN_FILE") or config.token_file)
        return cls(
            user=env.get("TRADEBUS_NATS_USER") or config.user,
            password=password,
            token=token,
            creds_file=env.get("TRADEBUS_NATS_CREDS") or config.creds_file,
            nkey_seed_file=env.get("TRADEBUS_NATS_NKEY_SEED") or config.nkey_seed_file,
        )

    def connect_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.user:
            opts["user"] = self.user
            if self.password:
                opts["password"] = self.password
        if self.token:
            opts["token"] = self.token
        if self.creds_file:
            opts["user_credentials"] = self.creds_file
        if self.nkey_seed_file:
            opts["nkeys_seed"] = self.nkey_seed_file
        return opts

    def __repr__(self) -> str:
        kinds = [name for name in self.__slots__ if getattr(self, name)]
        return f"Secrets(set={kinds})"

    __str__ = __repr__
