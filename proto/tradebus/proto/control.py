"""Control messages: strategy commands and parameters, service status."""
from __future__ import annotations

import enum

from .account import AssetBalance, Position
from .base import Event, Request
from .order_events import OrderStatus

__all__ = [
    "QueryKind",
    "AccountQuery",
    "AccountSnapshot",
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
    params: list[str] = []
    """Positional parameters, as MLThon's command hooks take them (a list of strings)."""


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


class QueryKind(enum.StrEnum):
    """What an AccountQuery asks the order router for."""

    ACCOUNT = "account"
    WALLET = "wallet"
    POSITION = "position"
    FUNDING = "funding"
    ORDER = "order"
    OPEN_ORDERS = "open_orders"


class AccountQuery(Request, tag="svc.acct_query", frozen=True, kw_only=True):
    """Ask a venue's order router about its account: a core NATS request on
    ``svc.order_router.query``, answered with an AccountSnapshot.

    ``symbol`` (position, funding, order, open_orders), ``coin`` (wallet) and
    ``client_order_id`` (order) narrow it; ``strategy`` limits orders to that strategy's.
    """

    venue: str
    kind: QueryKind
    strategy: str = ""
    symbol: str = ""
    coin: str = ""
    client_order_id: str = ""
    ts_init: int = 0


class AccountSnapshot(Event, tag="svc.acct_snapshot", frozen=True, kw_only=True):
    """The answer to an AccountQuery, from the venue. ``ok`` False: ``error`` says why;
    ``unsupported`` True: the venue or market has no such thing (funding on spot, say)."""

    venue: str
    kind: QueryKind
    ok: bool = True
    error: str = ""
    unsupported: bool = False
    account: str = ""
    balances: list[AssetBalance] = []
    positions: list[Position] = []
    funding_rate: float | None = None
    next_funding_ts: int = 0
    orders: list[OrderStatus] = []
    ts_init: int = 0


ControlMessage = (
    StrategyCommand | CommandResult | ParamsUpdate | ServiceCommand | ServiceStatus | AccountQuery | AccountSnapshot
)
"""Everything published under ``ctl.>`` and ``svc.>``."""
