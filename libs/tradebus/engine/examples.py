"""Example strategies in the batch engine's shape: bars in (BAR_DTYPE), signals out; each also
as a signal rule (``RULE_FORMS``), which the fused study pipeline runs without Python per path."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tradebus.engine import rule_language as rl
from tradebus.engine.fills import make_signals
from tradebus.engine.indicators import sma

__all__ = ["sma_cross", "SMA_CROSS_RULE", "RULE_FORMS", "builtin_rule"]


def sma_cross(bars: np.ndarray, fast: int = 10, slow: int = 30, quantity: float = 1.0) -> np.ndarray:
    """Long-only moving-average cross: buy when SMA(fast) closes above SMA(slow), sell when it
    closes back below. Signals are stamped at the bar whose close decided them.

    >>> from tradebus.engine import BAR_DTYPE
    >>> bars = np.zeros(6, dtype=BAR_DTYPE)
    >>> bars["timestamp_ns"] = np.arange(6) * 60_000_000_000
    >>> bars["close"] = [5.0, 4.0, 3.0, 4.0, 5.0, 3.0]
    >>> sma_cross(bars, fast=1, slow=2)["side"].tolist()
    [0, 1]
    """
    close = bars["close"]
    above = sma(close, fast) > sma(close, slow)          # False while either is warming up
    change = np.diff(above.astype(np.int8), prepend=np.int8(0))
    at = np.flatnonzero(change)
    return make_signals(bars["timestamp_ns"][at], (change[at] < 0).astype(np.uint8),
                        np.full(at.shape[0], float(quantity)))


_above = rl.sma(rl.close, rl.param("fast", 10)) > rl.sma(rl.close, rl.param("slow", 30))
SMA_CROSS_RULE = rl.Rule(entry_long=_above, exit_long=~_above, quantity=rl.param("quantity", 1.0))
"""``sma_cross`` as a rule: long while SMA(fast) is above SMA(slow), same signals."""

RULE_FORMS: dict[Callable[..., np.ndarray], rl.Rule] = {sma_cross: SMA_CROSS_RULE}
"""The rule form of each built-in signal function (the same signals for the same parameters)."""


def builtin_rule(name: str) -> rl.Rule | None:
    """The rule form of the built-in signal function called ``name``, or None."""
    for fn, rule in RULE_FORMS.items():
        if fn.__name__ == name:
            return rule
    return None
