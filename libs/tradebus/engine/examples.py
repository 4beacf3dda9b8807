"""Example strategies in the batch engine's shape: bars in (BAR_DTYPE), signals out."""
from __future__ import annotations

import numpy as np

from tradebus.engine.fills import make_signals
from tradebus.engine.indicators import sma

__all__ = ["sma_cross"]


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
