"""Exponential backoff for stream reconnects: initial delay, multiplier, cap, reset after a good message."""
from __future__ import annotations

import msgspec

__all__ = ["BackoffSettings", "Backoff"]


class BackoffSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    initial: float = 0.5
    multiplier: float = 2.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.multiplier < 1 or self.cap < self.initial:
            raise ValueError("backoff needs initial >= 0, multiplier >= 1, cap >= initial")


class Backoff:
    """``next()`` gives the delay before the next retry; ``reset()`` after a good message."""

    def __init__(self, settings: BackoffSettings = BackoffSettings()) -> None:
        self.settings = settings
        self.failures = 0

    def next(self) -> float:
        s = self.settings
        delay = min(s.cap, s.initial * s.multiplier ** self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
