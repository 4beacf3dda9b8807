"""Signal functions for farm tests, run by real worker processes as
``tests.services.backtest_worker.strategies:<name>`` (the workers get the repo on PYTHONPATH).

``gated_cross`` is sma_cross that first announces itself (a ``started-<pid>`` file in ``gate_dir``)
and then waits while ``gate_dir/closed`` exists, so a test knows a worker is inside a job and can
hold it there for as long as it likes, without guessing at timings.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tradebus.engine.examples import sma_cross
from tradebus.strategy import Strategy

GATE = "closed"


def gated_cross(bars, gate_dir: str, fast: int = 10, slow: int = 30, delay: float = 0.0, **_):
    gate = Path(gate_dir)
    (gate / f"started-{os.getpid()}").touch()
    while (gate / GATE).exists():
        time.sleep(0.01)
    if delay:
        time.sleep(delay)
    return sma_cross(bars, fast=fast, slow=slow)


def kill_own_worker(bars, **_):
    """A job that takes its worker down with it, every time."""
    os.kill(os.getpid(), signal.SIGKILL)


def not_signals(bars, **_):
    """Returns something the engine refuses (it fails inside run_batch, not in the strategy)."""
    return [1, 2, 3]


class Quoter(Strategy):
    """An event-mode strategy: every ``every`` bars a limit buy below and a limit sell above the
    close (maker fills), and a market order back when the position passes ``cap`` (taker fills)."""

    def __init__(self, symbols, every: int = 5, offset_bps: float = 5.0, qty: float = 0.1, cap: float = 0.3):
        super().__init__(symbols)
        self.every, self.offset, self.qty, self.cap, self.n = every, offset_bps / 1e4, qty, cap, 0

    def on_bar(self, ctx, bar):
        self.n += 1
        if self.n % self.every:
            return
        self.limit_buy(round(bar.close * (1 - self.offset), 2), self.qty)
        self.limit_sell(round(bar.close * (1 + self.offset), 2), self.qty)
        if ctx.position > self.cap:
            self.market_sell(self.qty)
        elif ctx.position < -self.cap:
            self.market_buy(self.qty)
