"""Account events, published by the order router on ``acct.<venue>.<kind>``."""
from __future__ import annotations

import enum

import msgspec

from .base import Event

__all__ = [
    "AssetBalance",
    "Balance",
    "Position",
    "RateLimitInfo",
    "GatewayState",
    "GatewayStatus",
    "AccountEvent",
]


class _AccountEvent(Event, kw_only=True, frozen=True):
    venue: str
    ts_event: int = 0
    ts_init: int


class AssetBalance(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Balance of one currency: ``total = free + used`` (used = locked in orders or margin)."""

    currency: str
    free: float
    used: float
    total: float


class Balance(_AccountEvent, tag="acct.balance", kw_only=True, frozen=True):
    """Balances of the venue account; ``complete`` is False when only changed currencies are listed."""

    balances: list[AssetBalance]
    complete: bool = True


class Position(_AccountEvent, tag="acct.position", kw_only=True, frozen=True):
    """Net position of the venue account in one derivative: ``qty`` > 0 long, < 0 short."""

    symbol: str
    qty: float
    avg_price: float = 0.0
    unrealized_pnl: float = 0.0
    leverage: float | None = None


class RateLimitInfo(_AccountEvent, tag="acct.ratelimit", kw_only=True, frozen=True):
    """Request-weight budget of the venue account.

    ``used`` of ``limit`` weight is spent in the current ``window_ms`` window (``pct`` = 100 *
    used / limit); ``weight`` is the cost of the request that triggered this report.
    """

    used: float
    limit: float
    pct: float
    window_ms: int
    weight: float = 1.0
    scope: str = ""


class GatewayState(enum.StrEnum):
    """Order gateway state, as MLThon's GtwStatus; only send orders when READY_TO_TRADE."""

    READY_TO_TRADE = "ready_to_trade"
    CONNECTING = "connecting"
    MAINTENANCE = "maintenance"
    DISCONNECTED = "disconnected"


class GatewayStatus(_AccountEvent, tag="acct.gateway", kw_only=True, frozen=True):
    """The order gateway of a venue changed state."""

    state: GatewayState
    reason: str = ""


AccountEvent = Balance | Position | RateLimitInfo | GatewayStatus
"""Everything published under ``acct.>``."""
