"""Fixtures of the engine tests: bar generators and the real BTCUSDT klines."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from tradebus.engine import BAR_DTYPE, Engine

DATA_DIR = Path(os.environ.get("TRADEBUS_DATA_DIR", Path(__file__).resolve().parents[3].parent / "shared" / "data"))
KLINES = DATA_DIR / "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz"
MINUTE_NS = 60_000_000_000


def random_bars(n: int, seed: int = 0, drift: float = 0.0, vol: float = 0.004) -> np.ndarray:
    """A random walk of n one-minute bars (valid OHLCV)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(drift + rng.normal(0, vol, n)))
    bars = np.zeros(n, dtype=BAR_DTYPE)
    bars["timestamp_ns"] = 1_700_000_000_000_000_000 + MINUTE_NS * np.arange(n)
    bars["open"] = np.concatenate(([close[0]], close[:-1]))
    bars["high"] = np.maximum(bars["open"], close) * (1 + rng.uniform(0, 0.002, n))
    bars["low"] = np.minimum(bars["open"], close) * (1 - rng.uniform(0, 0.002, n))
    bars["close"] = close
    bars["volume"] = rng.uniform(1, 10, n)
    return bars


@pytest.fixture(scope="session")
def btc_bars():
    if not KLINES.exists():
        pytest.skip(f"real data not found at {KLINES}")
    with gzip.open(KLINES, "rt") as fh:
        raw = np.loadtxt(fh, delimiter=",", skiprows=1)
    engine = Engine()
    engine.load_bars_df(raw[:, 0].astype(np.int64), *raw[:, 1:6].T)
    return engine.instrument().bars()
