"""Control messages: strategy commands and parameters, service status."""
from __future__ import annotations

import enum

from .base import Event, Request

__all__ = [
    "ParamValue",
    "StrategyCommand",
    "CommandResult",
    "ParamsUpdate",
    "ServiceCommand",
    "ServiceState",
    "ServiceStatus",
    "ControlMessage",
]

ParamValue = str | int | float | bool


class StrategyCommand(Request, tag="ctl.command", kw_only=True, frozen=True):
    """Run a strategy's command hook (``start``, ``stop``, or any hook it registers).

    Sent as a core NATS request on ``ctl.<strategy>.<command>``; the answer is a CommandResult.
    """

    strategy: str
    command: str
    args: dict[str, str] = {}
    ts_init: int = 0


class CommandResult(Event, tag="ctl.result", kw_only=True, frozen=True):
    """Reply to a StrategyCommand."""

    strategy: str
    command: str
    ok: bool
    message: str = ""
    ts_init: int = 0


class ParamsUpdate(Event, tag="ctl.params", kw_only=True, frozen=True):
    """New parameter values for a strategy (only the keys listed change).

    Published on ``ctl.<strategy>.params`` and kept, merged, in the ``strategy_params`` KV
    bucket under the strategy's name so a restarted runner starts from the latest values.
    """

    strategy: str
    params: dict[str, ParamValue]
    ts_init: int = 0


class ServiceState(enum.StrEnum):
    """Lifecycle state of a service process."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    STOPPING = "stopping"
    STOPPED = "stopped"


class ServiceCommand(Request, tag="svc.command", kw_only=True, frozen=True):
    """Ask a service to do ``command`` (``status``, ...): a request on ``svc.<service>.<command>``.

    Each service answers ``svc.<service>.status`` with a ServiceStatus.
    """

    service: str
    command: str
    args: dict[str, str] = {}
    ts_init: int = 0


class ServiceStatus(Event, tag="svc.status", kw_only=True, frozen=True):
    """State of one service instance, with its counters (messages, bad input, errors...)."""

    service: str
    instance: str
    state: ServiceState
    message: str = ""
    counters: dict[str, int] = {}
    ts_init: int = 0


ControlMessage = StrategyCommand | CommandResult | ParamsUpdate | ServiceCommand | ServiceStatus
"""Everything published under ``ctl.>`` and ``svc.>``."""
