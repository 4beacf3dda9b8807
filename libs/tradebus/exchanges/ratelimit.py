"""Weighted token bucket per venue account: requests wait for budget instead of getting banned."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tradebus.retry import Backoff as _Backoff
from tradebus.retry import BackoffSettings

__all__ = ["TokenBucket", "THRESHOLDS", "Backoff"]

THRESHOLDS = (50.0, 90.0, 100.0)


class TokenBucket:
    """``limit`` weight per ``window_ms``, refilled continuously.

    ``await acquire(weight)`` waits until the weight fits. ``on_threshold(used, limit, pct, weight)``
    is called each time use crosses 50%, 90% or 100% upwards.
    """

    def __init__(self, limit: float, window_ms: int, on_threshold: Callable[[float, float, float, float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if limit <= 0 or window_ms <= 0:
            raise ValueError("rate limit and window must be > 0")
        self.limit, self.window_ms = float(limit), int(window_ms)
        self.rate = self.limit / (self.window_ms / 1000.0)
        self.used = 0.0
        self._clock = clock
        self._stamp = clock()
        self._on_threshold = on_threshold
        self._lock = asyncio.Lock()
        self.waits = 0

    def _refill(self) -> None:
        now = self._clock()
        self.used = max(0.0, self.used - (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def pct(self) -> float:
        self._refill()
        return 100.0 * self.used / self.limit

    def _report(self, before: float, weight: float) -> None:
        after = 100.0 * self.used / self.limit
        if self._on_threshold is None:
            return
        for level in THRESHOLDS:
            if before < level <= after + 1e-9:
                self._on_threshold(self.used, self.limit, after, weight)
                return

    async def acquire(self, weight: float = 1.0) -> None:
        weight = min(float(weight), self.limit)
        async with self._lock:
            self._refill()
            while self.used + weight > self.limit:
                self.waits += 1
                await asyncio.sleep((self.used + weight - self.limit) / self.rate)
                self._refill()
            before = 100.0 * self.used / self.limit
            self.used += weight
            self._report(before, weight)

    def penalise(self) -> None:
        """The venue said 'too many requests': treat the window as spent."""
        self._refill()
        before = 100.0 * self.used / self.limit
        self.used = self.limit
        self._report(before, 0.0)


class Backoff(_Backoff):
    """``tradebus.retry.Backoff`` built from positional (initial, multiplier, cap), for the callers
    not yet on ``Backoff(BackoffSettings(...))`` (order_router, live); goes once they are."""

    def __init__(self, initial: float = 0.5, multiplier: float = 2.0, cap: float = 30.0):
        super().__init__(BackoffSettings(initial=float(initial), multiplier=float(multiplier), cap=float(cap)))
