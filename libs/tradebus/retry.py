"""The one exponential backoff of tradebus: NATS reconnects, supervisor restarts, venue retries,
market-data stream reconnects and the in-process broker all use it.

Every deployment section that retries spells it the same way::

    backoff: {initial: 0.5, multiplier: 2.0, cap: 30.0, jitter: 0.0}

The n-th delay (n from 0) is ``min(cap, initial * multiplier**n)``, stretched by a random
fraction of up to ``jitter``; :meth:`Backoff.reset` starts over after a success.
"""
from __future__ import annotations

import random

# The settings Struct lives beside the settings base in tradebus.config (which must not import
# this module: NatsConfig and SupervisorConfig embed it); this module is its home for users.
from tradebus.config import BackoffSettings

__all__ = ["Backoff", "BackoffSettings", "backoff_delay"]


def backoff_delay(settings: BackoffSettings, attempt: int) -> float:
    """The delay before retry number ``attempt`` (0 for the first retry)."""
    try:
        delay = min(settings.cap, settings.initial * settings.multiplier ** max(attempt, 0))
    except OverflowError:  # endless reconnects: the exponent outgrew a float long after the cap
        delay = settings.cap
    if settings.jitter:
        delay *= 1.0 + random.uniform(0.0, settings.jitter)
    return delay


class Backoff:
    """``next()`` gives the delay before the next retry; ``reset()`` after a success."""

    __slots__ = ("settings", "attempts")

    def __init__(self, settings: BackoffSettings | None = None) -> None:
        self.settings = settings if settings is not None else BackoffSettings()
        self.attempts = 0

    def next(self) -> float:
        delay = backoff_delay(self.settings, self.attempts)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
