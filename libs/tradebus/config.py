"""Deployment configuration: one YAML or TOML file, decoded into frozen Structs.

The file has a ``nats`` section (connection, see :class:`tradebus.bus.NatsConfig`), an
``embedded_nats`` section for the local server ``tradebus up`` starts, a ``supervisor`` section,
and a ``services`` mapping whose entries each service decodes into its own config Struct.
Unknown keys fail loudly. Secrets never go in the file: they come from the environment.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

from tradebus.bus.config import NatsConfig

__all__ = [
    "DeploymentConfig",
    "EmbeddedNatsConfig",
    "SupervisorConfig",
    "ServiceEntry",
    "load_deployment",
    "service_section",
    "ConfigError",
    "DEFAULT_CONFIG",
]

C = TypeVar("C")

DEFAULT_CONFIG = Path(__file__).with_name("local.yaml")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or does not match the expected shape."""


class EmbeddedNatsConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    state_dir: str = ".state"


class SupervisorConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    max_restarts: int = 5
    restart_initial_delay: float = 0.5
    restart_multiplier: float = 2.0
    restart_max_delay: float = 10.0
    stable_after: float = 30.0
    stop_timeout: float = 5.0


class ServiceEntry(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One supervised process: the service module plus its own settings (``settings``)."""

    module: str
    enabled: bool = True
    replicas: int = 1
    args: list[str] = []
    settings: dict[str, Any] = {}


class DeploymentConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    nats: NatsConfig = NatsConfig()
    embedded_nats: EmbeddedNatsConfig = EmbeddedNatsConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    services: dict[str, ServiceEntry] = {}


def _read(path: Path) -> dict[str, Any]:
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


def load_deployment(path: str | os.PathLike | None = None) -> DeploymentConfig:
    """Read a deployment file (the packaged local default when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        config = msgspec.convert(_read(path), DeploymentConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    url = os.environ.get("TRADEBUS_NATS_URL")
    if url:
        config = msgspec.structs.replace(config, nats=msgspec.structs.replace(config.nats, url=url))
    return config


def service_section(config: DeploymentConfig, name: str, type_: type[C]) -> C:
    """Decode the ``settings`` of service ``name`` into ``type_`` (defaults when absent)."""
    entry = config.services.get(name)
    settings = entry.settings if entry else {}
    try:
        return msgspec.convert(settings, type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"services.{name}.settings: {exc}") from exc
