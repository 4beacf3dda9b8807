"""Backoff settings for stream reconnects; the delays come from the shared ``tradebus.exchanges.Backoff``."""
from __future__ import annotations

import msgspec

from tradebus.exchanges.ratelimit import Backoff as _Backoff

__all__ = ["BackoffSettings", "Backoff"]


class BackoffSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Initial delay, multiplier per failure and cap, in seconds; reset after a good message."""

    initial: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.multiplier < 1 or self.cap < self.initial:
            raise ValueError("backoff needs initial > 0, multiplier >= 1, cap >= initial")


class Backoff(_Backoff):
    """``next()`` gives the delay before the next retry; ``reset()`` after a good message."""

    def __init__(self, settings: BackoffSettings = BackoffSettings()) -> None:
        super().__init__(settings.initial, settings.multiplier, settings.cap)
        self.settings = settings
