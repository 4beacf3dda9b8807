"""Deployment configuration: one YAML or TOML file, decoded into frozen Structs.

The file has a ``nats`` section (:class:`NatsConfig`), an ``embedded_nats`` section for the
local server ``tradebus up`` starts, a ``supervisor`` section, a ``metrics`` section (where the
Prometheus endpoints listen) and a ``services`` mapping whose entries each name a ``metrics_port``
and carry the settings each service decodes itself (``services/<name>/settings.py``).

Every configuration Struct derives from :class:`Settings` (frozen, keyword-only, unknown keys
rejected), so a typo such as ``ack_wiat: 5`` fails loudly instead of being ignored. Every section
that retries spells its backoff the same way: ``backoff: {initial, multiplier, cap, jitter}``
(:class:`BackoffSettings`, used by :class:`tradebus.retry.Backoff`). Secrets never go in the
file: they come from the environment.

This module imports nothing of tradebus except the wire contract, so reading a configuration
never pulls in the NATS client, ccxt or the engine.
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
import yaml

__all__ = [
    "Settings",
    "BackoffSettings",
    "NatsConfig",
    "DeploymentConfig",
    "EmbeddedNatsConfig",
    "SupervisorConfig",
    "ServiceEntry",
    "LoggingSettings",
    "MetricsConfig",
    "load_deployment",
    "nats_env_overrides",
    "read_config_file",
    "decode_settings",
    "service_section",
    "ConfigError",
    "DEFAULT_CONFIG",
]

C = TypeVar("C")

DEFAULT_CONFIG = Path(__file__).with_name("local.yaml")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or does not match the expected shape."""


class _SettingsMeta(msgspec.StructMeta):
    # msgspec applies kw_only only to the fields a class defines itself; this makes it the
    # default of every subclass too, so a settings class needs no options of its own.
    def __new__(mcls, name, bases, namespace, **options):
        options.setdefault("kw_only", True)
        return super().__new__(mcls, name, bases, namespace, **options)


class Settings(msgspec.Struct, metaclass=_SettingsMeta, frozen=True, forbid_unknown_fields=True):
    """Base of every configuration Struct: immutable, keyword-only, unknown keys are errors.

    At run time subclasses inherit all three. mypy reads msgspec's dataclass_transform, which
    does not inherit ``frozen``: modules mypy checks repeat ``frozen=True`` on each subclass.
    """


class BackoffSettings(Settings, frozen=True):
    """Exponential backoff (see :mod:`tradebus.retry`): ``initial`` seconds, times ``multiplier``
    per failure, at most ``cap`` seconds, each delay stretched by up to ``jitter`` (a fraction)."""

    initial: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.multiplier >= 1 and self.cap >= self.initial):
            raise ValueError(f"backoff needs initial > 0, multiplier >= 1 and cap >= initial (got initial="
                             f"{self.initial}, multiplier={self.multiplier}, cap={self.cap})")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be between 0 and 1 (got {self.jitter})")


class NatsConfig(Settings, frozen=True):
    """Where and how to connect to NATS; reconnects follow ``backoff``.

    Credentials are named here only by their source (``user``, ``*_file``); the values come from
    the environment (see :mod:`tradebus.bus.config`).
    """

    url: str = "nats://127.0.0.1:4222"
    name: str | None = None
    connect_timeout: float = 2.0
    initial_connect_timeout: float = 20.0
    max_reconnect_attempts: int = -1
    backoff: BackoffSettings = BackoffSettings(initial=0.1, multiplier=2.0, cap=5.0, jitter=0.1)
    ping_interval: float = 20.0
    drain_timeout: float = 5.0
    user: str | None = None
    password_file: str | None = None
    token_file: str | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    # TLS (a tls:// URL or a server that requires it): the CA that signed the server's certificate,
    # and the client certificate and key when the server verifies clients. Paths, not secrets;
    # TRADEBUS_NATS_TLS_CA / _CERT / _KEY override them.
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # JetStream replicas of the streams, KV buckets and object stores this deployment declares:
    # 3 on a three-node cluster (``tradebus up --cluster 3``, compose's cluster profile).
    stream_replicas: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.stream_replicas <= 5:
            raise ValueError(f"stream_replicas must be between 1 and 5, JetStream's limit (got {self.stream_replicas})")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> NatsConfig:
        """Defaults, then ``overrides`` that are not None, then the environment (:func:`nats_env_overrides`)."""
        fields = {k: v for k, v in overrides.items() if v is not None}
        fields.update({k: v for k, v in nats_env_overrides(env).items() if k not in fields})
        return msgspec.convert(fields, cls)


def nats_env_overrides(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """NatsConfig fields the environment sets: TRADEBUS_NATS_URL (comma-separated URLs) and
    TRADEBUS_JS_REPLICAS (``stream_replicas``)."""
    env = os.environ if env is None else env
    fields: dict[str, Any] = {}
    if env.get("TRADEBUS_NATS_URL"):
        fields["url"] = env["TRADEBUS_NATS_URL"]
    if env.get("TRADEBUS_JS_REPLICAS"):
        try:
            fields["stream_replicas"] = int(env["TRADEBUS_JS_REPLICAS"])
        except ValueError:
            raise ConfigError(f"TRADEBUS_JS_REPLICAS must be a whole number (got {env['TRADEBUS_JS_REPLICAS']!r})") from None
    return fields


class EmbeddedNatsConfig(Settings, frozen=True):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    state_dir: str = ".state"
    # authentication: one user per service instance, strategy and the operator, generated into
    # <state_dir>/auth (tradebus.bus.auth); false only for a throwaway local server
    auth: bool = True
    # TLS for clients when a certificate is given; with tls_ca_file clients must present a
    # certificate signed by it (verify)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    nodes: int = 1  # 3: a three-node cluster on loopback (`tradebus up --cluster 3`)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"embedded_nats.nodes must be at least 1 (got {self.nodes})")


class SupervisorConfig(Settings, frozen=True):
    """A child that exits is restarted after ``backoff``; ``max_restarts`` quick failures in a row
    (each within ``stable_after`` seconds of its start) and it is given up on."""

    max_restarts: int = 5
    backoff: BackoffSettings = BackoffSettings(initial=0.5, multiplier=2.0, cap=10.0)
    stable_after: float = 30.0
    stop_timeout: float = 5.0


class ServiceEntry(Settings, frozen=True):
    """One supervised process: the service module plus its own settings (``settings``)."""

    module: str
    enabled: bool = True
    replicas: int = 1
    args: list[str] = []
    settings: dict[str, Any] = {}
    metrics_port: int | None = None  # Prometheus /metrics; replica i (from 0) serves metrics_port + i

    def __post_init__(self) -> None:
        if self.metrics_port is not None and not 0 < self.metrics_port < 65536:
            raise ValueError(f"metrics_port must be a TCP port (1-65535), got {self.metrics_port}")


class MetricsConfig(Settings, frozen=True):
    """Where the services serve their Prometheus metrics: ``host`` (0.0.0.0 in containers)."""

    enabled: bool = True
    host: str = "127.0.0.1"


class LoggingSettings(Settings, frozen=True):
    """``format``: ``json`` (one event per line), ``text`` (human), or ``auto`` (JSON unless stderr
    is a terminal). ``TRADEBUS_LOG_FORMAT`` overrides it (see :mod:`tradebus.logs`)."""

    format: Literal["auto", "json", "text"] = "auto"


class DeploymentConfig(Settings, frozen=True):
    nats: NatsConfig = NatsConfig()
    embedded_nats: EmbeddedNatsConfig = EmbeddedNatsConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsConfig = MetricsConfig()
    services: dict[str, ServiceEntry] = {}


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


# Backoff keys of earlier releases, named in the error so an old file is easy to fix.
_RENAMED = {
    "restart_initial_delay": "backoff.initial", "restart_multiplier": "backoff.multiplier",
    "restart_max_delay": "backoff.cap", "reconnect_initial_delay": "backoff.initial",
    "reconnect_multiplier": "backoff.multiplier", "reconnect_max_delay": "backoff.cap",
    "reconnect_jitter": "backoff.jitter", "retry_initial_delay": "backoff.initial",
    "retry_multiplier": "backoff.multiplier", "retry_max_delay": "backoff.cap",
}
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def _explain(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = _UNKNOWN_FIELD.search(text)
    if match and match.group(1) in _RENAMED:
        text += f" (renamed: write {_RENAMED[match.group(1)]} instead)"
    return text


def decode_settings(data: Any, type_: type[C], where: str) -> C:
    """``data`` (a mapping from a file) as ``type_``; ConfigError naming ``where`` and the key on failure."""
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(exc)}") from exc


def load_deployment(path: str | os.PathLike | None = None) -> DeploymentConfig:
    """Read a deployment file (the packaged local default when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_CONFIG
    config = decode_settings(read_config_file(path), DeploymentConfig, str(path))
    from_env = nats_env_overrides()
    if from_env:
        try:
            config = msgspec.structs.replace(config, nats=msgspec.structs.replace(config.nats, **from_env))
        except ValueError as exc:
            raise ConfigError(f"{path}: nats: {exc}") from exc
    return config


def service_section(config: DeploymentConfig, name: str, type_: type[C]) -> C:
    """Decode the ``settings`` of service ``name`` into ``type_`` (defaults when absent)."""
    entry = config.services.get(name)
    return decode_settings(entry.settings if entry else {}, type_, f"services.{name}.settings")
