"""Pre-trade risk per strategy and venue: size, notional, position, open orders, price band,
order rate, kill switch.

``RiskEngine.pre_trade`` is the one gate every order passes before it is sent (order_router,
the in-process broker): the kill switch first, then the limits, then the strategy's order rate
(a token bucket per strategy and venue: one strategy's flood is refused with RATE_LIMITED
while the others' orders go through untouched).

Limits are looked up most specific first: ``"<strategy>@<venue>"``, ``"<strategy>"``,
``"*@<venue>"``, ``"*"``; a missing limit (None) is not checked::

    risk = RiskEngine({"*": RiskLimits(max_notional=50_000), "sma@sim": RiskLimits(max_position=1.0)})
    reason = risk.check(order, last_price=30_000, position=0.2, open_orders=3)   # None = pass
    risk.kill("sma")   # reject everything sma sends until risk.release("sma")
    refusal = risk.pre_trade(order, last_price=30_000)   # Refusal(KILL_SWITCH, ...) now
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

from tradebus.config import Settings
from tradebus.proto import NewOrder, OrderType, RejectCode, Side

__all__ = ["RiskLimits", "RiskEngine", "Refusal"]


class Refusal(NamedTuple):
    """Why an order may not be sent: the reject code and a reason for the strategy."""

    code: RejectCode
    reason: str


class RiskLimits(Settings, frozen=True):
    """None disables a check. ``price_band_bps``: a priced order must be within this many basis
    points of the last trade (market orders use the last trade as their price).
    ``max_orders_per_s``: new orders a strategy may send per second on the venue, with bursts of
    up to ``order_burst`` (default: one second's worth)."""

    max_order_qty: float | None = None
    max_notional: float | None = None
    max_position: float | None = None
    max_open_orders: int | None = None
    price_band_bps: float | None = None
    max_orders_per_s: float | None = None
    order_burst: int | None = None

    def __post_init__(self) -> None:
        if self.max_orders_per_s is not None and not self.max_orders_per_s > 0:
            raise ValueError(f"max_orders_per_s must be > 0, got {self.max_orders_per_s!r}")
        if self.order_burst is not None and self.order_burst < 1:
            raise ValueError(f"order_burst must be >= 1, got {self.order_burst!r}")


ALL = "*"


class RiskEngine:
    """Checks NewOrders against the limits and holds the kill switches."""

    def __init__(self, limits: dict[str, RiskLimits] | None = None, clock: Callable[[], float] = time.monotonic):
        self.limits = dict(limits or {})
        self._killed: set[str] = set()
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # (strategy, venue) -> (tokens, at)

    def limits_for(self, strategy: str, venue: str) -> RiskLimits:
        for key in (f"{strategy}@{venue}", strategy, f"{ALL}@{venue}", ALL):
            if key in self.limits:
                return self.limits[key]
        return RiskLimits()

    # --- kill switch -------------------------------------------------------------------------

    def kill(self, strategy: str | None = None) -> None:
        """Engage the kill switch for ``strategy`` (None: every strategy)."""
        self._killed.add(strategy or ALL)

    def release(self, strategy: str | None = None) -> None:
        """Release it (None: release every switch)."""
        if strategy is None:
            self._killed.clear()
        else:
            self._killed.discard(strategy)

    def killed(self, strategy: str) -> bool:
        return ALL in self._killed or strategy in self._killed

    @property
    def engaged(self) -> set[str]:
        return set(self._killed)

    # --- checks ------------------------------------------------------------------------------

    def pre_trade(self, order: NewOrder, *, last_price: float | None = None, position: float = 0.0,
                  open_orders: int = 0) -> Refusal | None:
        """The kill switch, then the limits (see ``check``): a Refusal, or None to send the order."""
        if self.killed(order.strategy):
            return Refusal(RejectCode.KILL_SWITCH, "kill switch engaged")
        reason = self.check(order, last_price=last_price, position=position, open_orders=open_orders)
        if reason:
            return Refusal(RejectCode.RISK_LIMIT, reason)
        return self.throttle(order)

    def throttle(self, order: NewOrder) -> Refusal | None:
        """Take one token of the strategy's order-rate bucket; RATE_LIMITED when it is empty."""
        lim = self.limits_for(order.strategy, order.venue)
        rate = lim.max_orders_per_s
        if rate is None or order.order_type is OrderType.CLOSE_POSITION:
            return None
        burst = float(lim.order_burst or max(1.0, rate))
        key = (order.strategy, order.venue)
        now = self._clock()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return Refusal(RejectCode.RATE_LIMITED, f"throttled: {order.strategy} sends more than {rate:g} "
                                                    f"orders/s on {order.venue} (burst {burst:g})")
        self._buckets[key] = (tokens - 1.0, now)
        return None

    def counts_open_orders(self, strategy: str, venue: str) -> bool:
        """Whether ``pre_trade`` needs the strategy's open-order count."""
        return self.limits_for(strategy, venue).max_open_orders is not None

    def needs_price(self, strategy: str, venue: str) -> bool:
        lim = self.limits_for(strategy, venue)
        return lim.price_band_bps is not None or lim.max_notional is not None

    def check(self, order: NewOrder, *, last_price: float | None = None, position: float = 0.0,
              open_orders: int = 0) -> str | None:
        """The reason ``order`` breaks a limit, or None. ``position`` is the strategy's net
        position in the symbol (signed), ``open_orders`` its open orders on the venue."""
        lim = self.limits_for(order.strategy, order.venue)
        qty = order.qty
        if order.order_type is OrderType.CLOSE_POSITION:
            return None  # reduces exposure; never blocked (except by the kill switch)
        if lim.max_order_qty is not None and qty > lim.max_order_qty:
            return f"qty {qty:g} > max_order_qty {lim.max_order_qty:g}"
        price = order.price or order.trigger_price or last_price
        if lim.max_notional is not None:
            if price is None:
                return "no price known to check max_notional"
            if qty * price > lim.max_notional:
                return f"notional {qty * price:g} > max_notional {lim.max_notional:g}"
        if lim.max_position is not None and not order.reduce_only:
            after = position + Side(order.side).sign * qty
            if abs(after) > lim.max_position + 1e-12 and abs(after) > abs(position):
                return f"position would be {after:g}, beyond max_position {lim.max_position:g}"
        if lim.max_open_orders is not None and open_orders >= lim.max_open_orders:
            return f"{open_orders} open orders, max_open_orders {lim.max_open_orders}"
        if lim.price_band_bps is not None and order.price is not None:
            if last_price is None or not math.isfinite(last_price) or last_price <= 0:
                return "no last trade price to check the price band"
            off = abs(order.price - last_price) / last_price * 1e4
            if off > lim.price_band_bps:
                return f"price {order.price:g} is {off:.1f} bps from last trade {last_price:g} (band {lim.price_band_bps:g})"
        return None
