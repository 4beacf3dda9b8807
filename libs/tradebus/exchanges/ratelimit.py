"""Rate-limit rules of a venue account, enforced before a request leaves.

A venue enforces several limits at once (Binance spot: request weight per minute per IP, orders
per 10 seconds and per day per account). Each is a :class:`RateLimitRule` (bt_api_py's fields:
``type``, ``interval``, ``limit``, ``scope``, ``weight``, ``weight_map``) in the venue YAML; a
:class:`RateLimiter` holds the budgets of every rule and, for each request, charges every rule
that applies to the request's endpoint (a ccxt method name such as ``create_order``) or waits or
refuses (:class:`RateLimitRejected`, a ``RATE_LIMITED`` local reject naming the rule) first.

Budgets follow the venue's own usage headers (``header``: the used count, e.g.
``x-mbx-used-weight-1m``; ``remaining_header``: what is left) when the response carries them:
the venue counts every client of the account or IP, we only count ours.
"""
from __future__ import annotations

import asyncio
import enum
import fnmatch
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping

import msgspec

from tradebus.config import Settings
from tradebus.proto import RateLimitInfo, RejectCode
from tradebus.retry import Backoff as _Backoff
from tradebus.retry import BackoffSettings

from .errors import LocalReject

__all__ = ["RateLimitType", "RateLimitScope", "RateLimitRule", "RuleStatus", "RateLimiter", "RateLimitRejected",
           "Ticket", "TokenBucket", "THRESHOLDS", "Backoff", "rate_limit_info"]

THRESHOLDS = (50.0, 90.0, 100.0)


class RateLimitType(enum.StrEnum):
    SLIDING_WINDOW = "sliding_window"  # the weight of the last ``interval`` seconds
    FIXED_WINDOW = "fixed_window"  # the weight since the last multiple of ``interval`` (UTC epoch)
    TOKEN_BUCKET = "token_bucket"  # refilled continuously at ``limit`` per ``interval``


class RateLimitScope(enum.StrEnum):
    GLOBAL = "global"  # one budget per limiter (venue account and market type)
    ENDPOINT = "endpoint"  # one budget per endpoint the rule applies to
    IP = "ip"  # one budget per process for the venue, shared by every limiter of it


class RateLimitRule(Settings, frozen=True):
    """One venue limit. ``weight_map`` (endpoint -> weight) overrides ``weight``; a weight of 0
    leaves the endpoint out, and so does ``endpoint`` (a glob over endpoint names) when set."""

    name: str
    interval: float  # seconds
    limit: float
    type: RateLimitType = RateLimitType.SLIDING_WINDOW
    scope: RateLimitScope = RateLimitScope.GLOBAL
    weight: float = 1.0
    weight_map: dict[str, float] = {}
    endpoint: str | None = None
    header: str | None = None  # response header with the venue's used count of this rule
    remaining_header: str | None = None  # response header with what is left of ``limit``
    on_limit: str = "wait"  # wait | reject
    max_wait: float | None = None  # seconds: a longer wait is refused instead

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.limit <= 0:
            raise ValueError(f"rate-limit rule {self.name!r}: interval and limit must be > 0")
        if self.on_limit not in ("wait", "reject"):
            raise ValueError(f"rate-limit rule {self.name!r}: on_limit must be wait or reject, not {self.on_limit!r}")

    def weight_for(self, endpoint: str | None) -> float:
        """The cost of one ``endpoint`` request under this rule (0: the rule does not apply)."""
        if self.endpoint is not None and (endpoint is None or not fnmatch.fnmatchcase(endpoint, self.endpoint)):
            return 0.0
        if endpoint is not None and endpoint in self.weight_map:
            return float(self.weight_map[endpoint])
        return float(self.weight)


class RuleStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one rule's budget stands: ``used`` of ``limit`` (``pct``), empty again at ``reset_s``
    (clock seconds) if nothing more is sent."""

    rule: str
    type: RateLimitType
    scope: RateLimitScope
    endpoint: str | None
    used: float
    limit: float
    pct: float
    interval: float
    reset_s: float


# --- budgets: one per rule (per endpoint for endpoint scope) -----------------------------------

class _Budget:
    def __init__(self, rule: RateLimitRule):
        self.rule = rule
        self.limit = float(rule.limit)
        self.pending = 0.0  # charged, response not seen yet
        self.blocked_until = 0.0

    def used(self, now: float) -> float:
        raise NotImplementedError

    def wait(self, now: float, weight: float) -> float:
        """Seconds until ``weight`` fits (0: now)."""
        raise NotImplementedError

    def add(self, now: float, weight: float) -> None:
        raise NotImplementedError

    def set_used(self, now: float, value: float) -> None:
        """The venue says ``value`` is used now."""
        raise NotImplementedError

    def reset_s(self, now: float) -> float:
        raise NotImplementedError


class _SlidingWindow(_Budget):
    def __init__(self, rule):
        super().__init__(rule)
        self.entries: deque[list[float]] = deque()  # [time, weight]
        self.total = 0.0

    def _expire(self, now: float) -> None:
        horizon = now - self.rule.interval
        while self.entries and self.entries[0][0] <= horizon:
            self.total -= self.entries.popleft()[1]
        if not self.entries:
            self.total = 0.0

    def used(self, now):
        self._expire(now)
        return self.total

    def wait(self, now, weight):
        self._expire(now)
        excess = self.total + weight - self.limit
        if excess <= 1e-9:
            return 0.0
        for stamp, w in self.entries:  # the oldest entries leave first
            excess -= w
            if excess <= 1e-9:
                return stamp + self.rule.interval - now
        return self.rule.interval

    def add(self, now, weight):
        self._expire(now)
        self.entries.append([now, weight])
        self.total += weight

    def set_used(self, now, value):
        # entries cannot be un-sent: follow the venue upwards only
        used = self.used(now)
        if value > used:
            self.add(now, value - used)

    def reset_s(self, now):
        self._expire(now)
        return self.entries[-1][0] + self.rule.interval if self.entries else now


class _FixedWindow(_Budget):
    def __init__(self, rule):
        super().__init__(rule)
        self.start = -math.inf
        self.count = 0.0

    def _roll(self, now: float) -> None:
        start = math.floor(now / self.rule.interval) * self.rule.interval
        if start != self.start:
            self.start, self.count = start, 0.0

    def used(self, now):
        self._roll(now)
        return self.count

    def wait(self, now, weight):
        self._roll(now)
        if self.count + weight <= self.limit + 1e-9:
            return 0.0
        return self.start + self.rule.interval - now

    def add(self, now, weight):
        self._roll(now)
        self.count += weight

    def set_used(self, now, value):
        self._roll(now)
        self.count = value

    def reset_s(self, now):
        self._roll(now)
        return self.start + self.rule.interval if self.count else now


class _TokenBucket(_Budget):
    def __init__(self, rule):
        super().__init__(rule)
        self.rate = self.limit / rule.interval
        self.level = 0.0
        self.stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now

    def used(self, now):
        self._refill(now)
        return self.level

    def wait(self, now, weight):
        self._refill(now)
        excess = self.level + weight - self.limit
        return excess / self.rate if excess > 1e-9 else 0.0

    def add(self, now, weight):
        self._refill(now)
        self.level += weight

    def set_used(self, now, value):
        self._refill(now)
        self.level = value

    def reset_s(self, now):
        self._refill(now)
        return now + self.level / self.rate


_BUDGETS = {RateLimitType.SLIDING_WINDOW: _SlidingWindow, RateLimitType.FIXED_WINDOW: _FixedWindow,
            RateLimitType.TOKEN_BUCKET: _TokenBucket}
_SHARED: dict[tuple[str, str], _Budget] = {}  # ip-scope budgets: (share key, rule name) -> budget


class RateLimitRejected(LocalReject):
    """A rule configured to refuse (or whose wait exceeds ``max_wait``) is at its limit."""

    def __init__(self, status: RuleStatus, wait_s: float):
        super().__init__(RejectCode.RATE_LIMITED,
                         f"rate limit {status.rule!r} ({status.type.value}, {status.scope.value}): "
                         f"{status.used:g} of {status.limit:g} per {status.interval:g}s used; "
                         f"room again in {wait_s:.3f}s")
        self.status, self.wait_s = status, wait_s


class Ticket:
    """What one request charged: handed back to :meth:`RateLimiter.settle` with the response."""

    __slots__ = ("charges", "endpoint")

    def __init__(self, charges: list[tuple[_Budget, float]], endpoint: str | None):
        self.charges, self.endpoint = charges, endpoint


class RateLimiter:
    """Every rule of one venue account's market type.

    ``on_report(status, weight)`` gets the rule closest to its limit each time that closeness
    crosses 50%, 90% or 100% upwards (and on a refusal or a venue's 'too many requests').
    ``clock`` and ``sleep`` are injectable: a simulated clock runs every rule type without waiting.
    ``share_key`` names the venue for ip-scope rules (budgets shared by every limiter of it).
    """

    def __init__(self, rules: Iterable[RateLimitRule], on_report: Callable[[RuleStatus, float], None] | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], Awaitable] = asyncio.sleep,
                 share_key: str = ""):
        self.rules = tuple(rules)
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rate-limit rule names must be unique: {names}")
        self._clock, self._sleep, self._on_report = clock, sleep, on_report
        self._share_key = share_key
        self._budgets: dict[tuple[str, str | None], _Budget] = {}
        self._last_headers: object = None
        self.waits = 0
        self.rejects = 0
        self.venue_syncs = 0

    # --- budgets ------------------------------------------------------------------------------

    def _budget(self, rule: RateLimitRule, endpoint: str | None) -> _Budget:
        if rule.scope == RateLimitScope.IP:
            key = (self._share_key, rule.name)
            budget = _SHARED.get(key)
            if budget is None or budget.rule != rule:
                budget = _SHARED[key] = _BUDGETS[rule.type](rule)
            self._budgets.setdefault((rule.name, None), budget)
            return budget
        slot = (rule.name, endpoint if rule.scope == RateLimitScope.ENDPOINT else None)
        budget = self._budgets.get(slot)
        if budget is None:
            budget = self._budgets[slot] = _BUDGETS[rule.type](rule)
        return budget

    def _status(self, budget: _Budget, now: float, endpoint: str | None = None) -> RuleStatus:
        used = budget.used(now)
        rule = budget.rule
        pct = 100.0 * used / budget.limit
        if budget.blocked_until > now:  # the venue said 'too many': full until then
            pct = max(pct, 100.0)
        return RuleStatus(rule=rule.name, type=RateLimitType(rule.type), scope=RateLimitScope(rule.scope),
                          endpoint=endpoint, used=used, limit=budget.limit, pct=pct, interval=rule.interval,
                          reset_s=max(budget.reset_s(now), budget.blocked_until))

    def statuses(self) -> list[RuleStatus]:
        """Every budget in use (one per rule, per endpoint for endpoint scope), closest first."""
        now = self._clock()
        out = [self._status(b, now, slot[1]) for slot, b in self._budgets.items()]
        return sorted(out, key=lambda s: -s.pct)

    def closest(self) -> RuleStatus | None:
        """The rule closest to its limit (None before any request)."""
        statuses = self.statuses()
        return statuses[0] if statuses else None

    def status(self, rule: str, endpoint: str | None = None) -> RuleStatus:
        """One rule's budget (``endpoint`` for endpoint scope)."""
        for r in self.rules:
            if r.name == rule:
                return self._status(self._budget(r, endpoint), self._clock(), endpoint)
        raise KeyError(f"no rate-limit rule {rule!r}; rules: {', '.join(x.name for x in self.rules)}")

    def _level(self) -> float:
        """The highest use of any budget, in percent."""
        now = self._clock()
        return max((100.0 if b.blocked_until > now else 100.0 * b.used(now) / b.limit
                    for b in self._budgets.values()), default=0.0)

    def _report(self, before: float, weight: float, force: bool = False) -> None:
        """Report the closest rule when the highest use crossed a threshold since ``before``."""
        if self._on_report is None:
            return
        level = self._level()
        if force or any(before < mark <= level + 1e-9 for mark in THRESHOLDS):
            closest = self.closest()
            if closest is not None:
                self._on_report(closest, weight)

    # --- requests ------------------------------------------------------------------------------

    def charges(self, endpoint: str | None, weight: float | None = None) -> list[tuple[_Budget, float]]:
        """(budget, weight) of every rule ``endpoint`` counts against; ``weight`` overrides the
        rules' own weights (the old single-bucket call ``acquire(weight)``)."""
        out = []
        for rule in self.rules:
            w = rule.weight_for(endpoint)
            if w <= 0:
                continue
            budget = self._budget(rule, endpoint)
            out.append((budget, min(float(weight) if weight is not None else w, budget.limit)))
        return out

    async def acquire(self, weight: float | None = None, endpoint: str | None = None) -> Ticket:
        """Wait until every rule has room for one ``endpoint`` request, then charge it.

        Raises :class:`RateLimitRejected` when a rule at its limit says ``reject`` (or its wait
        would exceed ``max_wait``); nothing is charged then.
        """
        charges = self.charges(endpoint, weight)
        while True:
            now = self._clock()
            wait, worst = 0.0, None
            for budget, w in charges:
                need = max(budget.wait(now, w), budget.blocked_until - now)
                if need > wait:
                    wait, worst = need, budget
            if worst is None:
                break
            rule = worst.rule
            if rule.on_limit == "reject" or (rule.max_wait is not None and wait > rule.max_wait):
                self.rejects += 1
                status = self._status(worst, now, endpoint if rule.scope == RateLimitScope.ENDPOINT else None)
                self._report(0.0, 0.0, force=True)
                raise RateLimitRejected(status, wait)
            self.waits += 1
            await self._sleep(wait)
        before = self._level()
        now = self._clock()
        for budget, w in charges:
            budget.add(now, w)
            budget.pending += w
        self._report(before, max((w for _, w in charges), default=0.0))
        return Ticket(charges, endpoint)

    def settle(self, ticket: Ticket | None, headers: Mapping[str, str] | None = None) -> None:
        """The request of ``ticket`` was answered (or failed); ``headers`` are the venue's latest
        response headers (ccxt's ``last_response_headers``): rules with a usage header take the
        venue's count, plus what is still in flight."""
        if ticket is not None:
            for budget, w in ticket.charges:
                budget.pending = max(0.0, budget.pending - w)
        if not headers or headers is self._last_headers:
            return
        self._last_headers = headers
        lower = {str(k).lower(): v for k, v in headers.items()}
        before, now = self._level(), self._clock()
        synced = False
        for rule in self.rules:
            if rule.scope == RateLimitScope.ENDPOINT and (ticket is None or ticket.endpoint is None):
                continue
            value = _number(lower.get(rule.header.lower())) if rule.header else None
            if value is None and rule.remaining_header:
                remaining = _number(lower.get(rule.remaining_header.lower()))
                value = None if remaining is None else rule.limit - remaining
            if value is None:
                continue
            budget = self._budget(rule, ticket.endpoint if ticket is not None else None)
            budget.set_used(now, value + budget.pending)
            synced = True
        if synced:
            self.venue_syncs += 1
            self._report(before, 0.0)

    def penalise(self, endpoint: str | None = None, retry_after: float | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        """The venue said 'too many requests' for ``endpoint``: with ``retry_after`` seconds (or the
        ``Retry-After`` of ``headers``, when they are a response not yet seen) every rule of the
        endpoint is held full that long; without, nothing is held (the caller backs off). Either
        way the closest rule of the endpoint is reported at 100%."""
        if retry_after is None and headers and headers is not self._last_headers:
            retry_after = _number({str(k).lower(): v for k, v in headers.items()}.get("retry-after"))
        charges = self.charges(endpoint)
        if not charges:
            return
        now = self._clock()
        if retry_after is not None and retry_after > 0:
            for budget, _ in charges:
                budget.blocked_until = max(budget.blocked_until, now + retry_after)
        if self._on_report is not None:
            slots = {id(b): slot for slot, b in self._budgets.items()}
            closest = max((self._status(b, now, slots[id(b)][1]) for b, _ in charges if id(b) in slots),
                          key=lambda s: s.pct)
            self._on_report(msgspec.structs.replace(closest, pct=max(closest.pct, 100.0)), 0.0)


def _number(value) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).split(",")[0])
    except ValueError:
        return None


def rate_limit_info(status: RuleStatus, *, venue: str, scope: str, weight: float = 0.0,
                    wall_offset_s: float = 0.0) -> RateLimitInfo:
    """The bus event for ``status`` (``wall_offset_s`` turns a non-wall clock into UTC seconds)."""
    return RateLimitInfo(venue=venue, used=status.used, limit=status.limit, pct=status.pct,
                         window_ms=int(round(status.interval * 1000)), weight=weight, scope=scope, rule=status.rule,
                         rule_type=status.type.value, rule_scope=status.scope.value, endpoint=status.endpoint or "",
                         reset_ts=int((status.reset_s + wall_offset_s) * 1e9), ts_init=time.time_ns())


class TokenBucket(RateLimiter):
    """One weighted token bucket: ``limit`` weight per ``window_ms``, refilled continuously (the
    single-rule limiter of earlier configurations). ``on_threshold(used, limit, pct, weight)``."""

    def __init__(self, limit: float, window_ms: int,
                 on_threshold: Callable[[float, float, float, float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if limit <= 0 or window_ms <= 0:
            raise ValueError("rate limit and window must be > 0")
        self.limit, self.window_ms = float(limit), int(window_ms)
        rule = RateLimitRule(name="weight", type=RateLimitType.TOKEN_BUCKET, interval=window_ms / 1000.0, limit=limit)
        report = None if on_threshold is None else (lambda s, w: on_threshold(s.used, s.limit, s.pct, w))
        super().__init__([rule], report, clock=clock)

    @property
    def used(self) -> float:
        return self.status("weight").used

    @property
    def pct(self) -> float:
        return self.status("weight").pct

    async def acquire(self, weight: float | None = 1.0, endpoint: str | None = None) -> Ticket:
        return await super().acquire(weight, endpoint)


class Backoff(_Backoff):
    """``tradebus.retry.Backoff`` built from positional (initial, multiplier, cap), for the callers
    not yet on ``Backoff(BackoffSettings(...))`` (order_router, live); goes once they are."""

    def __init__(self, initial: float = 0.5, multiplier: float = 2.0, cap: float = 30.0):
        super().__init__(BackoffSettings(initial=float(initial), multiplier=float(multiplier), cap=float(cap)))
