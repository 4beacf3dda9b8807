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
    """The venue account's rate-limit rule closest to its limit.

    ``used`` of ``limit`` weight is spent in the current ``window_ms`` window (``pct`` = 100 *
    used / limit); ``weight`` is the cost of the request that triggered this report. ``rule``
    names the rule (``request_weight``, ``orders_10s`` ...), ``rule_type`` is sliding_window,
    fixed_window or token_bucket, ``rule_scope`` global, endpoint or ip (``endpoint`` set for
    endpoint scope), and ``reset_ts`` (ns) is when its use is back to zero if nothing more is
    sent: MLThon's ``on_rate_limit_info(exchange, rate_limit=100, rate_remaining=100 - pct, reset_ts)``.
    """

    used: float
    limit: float
    pct: float
    window_ms: int
    weight: float = 1.0
    scope: str = ""
    rule: str = ""
    rule_type: str = ""
    rule_scope: str = ""
    endpoint: str = ""
    reset_ts: int = 0


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
