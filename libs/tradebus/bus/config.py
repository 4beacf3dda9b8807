"""NATS connection options: :class:`tradebus.config.NatsConfig` plus secrets from the environment.

Secrets never live in the config file itself, only their source: environment variables
(``TRADEBUS_NATS_USER``, ``TRADEBUS_NATS_PASSWORD``, ``TRADEBUS_NATS_TOKEN``) or mounted files
(``TRADEBUS_NATS_PASSWORD_FILE``, ``TRADEBUS_NATS_TOKEN_FILE``, ``TRADEBUS_NATS_CREDS`` for a
``.creds`` file, ``TRADEBUS_NATS_NKEY_SEED`` for an nkey seed file). ``repr`` masks them. With
none of these, a client of the local stack whose ``<state>/nats-url`` names the URL it connects
to uses the operator credentials ``tradebus up`` wrote there (``$TRADEBUS_STATE_DIR``, else
``.state``), so CLI commands need nothing extra.

TLS: ``TRADEBUS_NATS_TLS_CA`` / ``_CERT`` / ``_KEY`` (or the config's ``tls_*_file``) build the
client's SSL context; a user's replies arrive under its own inbox prefix (``_INBOX_<user>``),
the only inbox its NATS permissions let it read.
"""
from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradebus.config import BackoffSettings, NatsConfig
from tradebus.retry import backoff_delay

__all__ = ["NatsConfig", "Secrets", "connect_options", "reconnect_handler", "masked_url", "tls_context"]

_USERINFO = re.compile(r"(?<=://)[^/@,]*@")


def masked_url(url: str) -> str:
    """``url`` (one or several, comma separated) with any ``user:password@`` shown as ``***@``."""
    return _USERINFO.sub("***@", url)


def connect_options(config: NatsConfig, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` (servers, reconnect backoff, credentials)."""
    opts: dict[str, Any] = {
        "servers": [u.strip() for u in config.url.split(",") if u.strip()],
        "name": config.name,
        "connect_timeout": config.connect_timeout,
        "max_reconnect_attempts": config.max_reconnect_attempts,
        "ping_interval": config.ping_interval,
        "drain_timeout": config.drain_timeout,
        "reconnect_to_server_handler": reconnect_handler(config.backoff),
    }
    env = os.environ if env is None else env
    opts.update(Secrets.resolve(config, env).connect_options())
    if opts.get("user"):
        from tradebus.bus.auth import inbox_prefix  # not at import: `python -m tradebus.bus.auth` runs it

        opts["inbox_prefix"] = inbox_prefix(opts["user"])
    context = tls_context(config, env)
    if context is not None:
        opts["tls"] = context
    return opts


def tls_context(config: NatsConfig, env: Mapping[str, str]) -> ssl.SSLContext | None:
    """The client's SSL context when a CA or client certificate is configured, else None."""
    ca = env.get("TRADEBUS_NATS_TLS_CA") or config.tls_ca_file
    cert = env.get("TRADEBUS_NATS_TLS_CERT") or config.tls_cert_file
    key = env.get("TRADEBUS_NATS_TLS_KEY") or config.tls_key_file
    if not (ca or cert):
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if cert:
        context.load_cert_chain(cert, key)
    return context


def reconnect_handler(backoff: BackoffSettings):
    """A nats-py ``reconnect_to_server_handler``: the least-tried server, after ``backoff``'s delay
    for its number of reconnects.

    nats-py resets a server's ``reconnects`` count after a good connection, so the delay starts
    over from ``initial`` after every successful reconnect.
    """

    def handler(servers, _info):
        if not servers:
            return None, backoff.initial
        server = min(servers, key=lambda s: s.reconnects)
        return server, backoff_delay(backoff, server.reconnects)

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
    def resolve(cls, config: NatsConfig, env: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env
        password = env.get("TRADEBUS_NATS_PASSWORD") or _read_secret_file(
            env.get("TRADEBUS_NATS_PASSWORD_FILE") or config.password_file
        )
        token = env.get("TRADEBUS_NATS_TOKEN") or _read_secret_file(env.get("TRADEBUS_NATS_TOKEN_FILE") or config.token_file)
        found = cls(
            user=env.get("TRADEBUS_NATS_USER") or config.user,
            password=password,
            token=token,
            creds_file=env.get("TRADEBUS_NATS_CREDS") or config.creds_file,
            nkey_seed_file=env.get("TRADEBUS_NATS_NKEY_SEED") or config.nkey_seed_file,
        )
        if any(getattr(found, name) for name in cls.__slots__):
            return found
        from tradebus.bus.auth import operator_credentials

        local = operator_credentials(config.url, [p for p in (env.get("TRADEBUS_STATE_DIR"), ".state") if p])
        if local is None:
            return found
        return cls(user=local[0], password=_read_secret_file(local[1]))

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
