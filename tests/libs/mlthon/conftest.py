"""A recording IStrategy and a small synthetic market for the MLThon environment tests."""
from __future__ import annotations

import numpy as np
import pytest

from tradebus.mlthon import LocalGateway, MLThonStrategy
from tradebus.mlthon.api.istrategy import CALLBACKS, IStrategy
from tradebus.mlthon.basics.defs import Exchange
from tradebus.strategy import BacktestRunner, SymbolRegistry


def _recorder(name):
    def method(self, *args):
        self.calls.append((name, *args))
        hook = self.hooks.get(name)
        if hook is not None:
            return hook(self, *args)
        return None
    method.__name__ = name
    return method


class Recorder(IStrategy):
    """Records every callback; ``hooks[name](self, *args)`` adds behaviour to one."""

    def __init__(self, hooks=None, login=True):
        self.calls: list[tuple] = []
        self.hooks = dict(hooks or {})
        self.env = None
        self.login = login

    def names(self):
        return [c[0] for c in self.calls]

    def on_framework_connected(self, env):
        self.env = env
        self.calls.append(("on_framework_connected",))
        if self.login:
            env.login("recorder")


for _name in CALLBACKS:
    if _name != "on_framework_connected":
        setattr(Recorder, _name, _recorder(_name))
Recorder.__abstractmethods__ = frozenset()


def market(n=200, start_ns=1_700_000_000_000_000_000, step_ns=100_000_000, price=100.0, seed=3):
    """n trades every step_ns around ``price`` (seeded)."""
    rng = np.random.default_rng(seed)
    ts = start_ns + np.arange(n, dtype=np.int64) * step_ns
    px = np.round(price + np.cumsum(rng.normal(0, 0.05, n)), 2)
    qty = np.round(rng.uniform(0.01, 1.0, n), 3)
    is_buy = rng.random(n) < 0.5
    return ts, px, qty, is_buy


def run(strategy, trades=None, *, params=None, bound=None, **kw):
    """Run ``strategy`` over ``trades`` (default: market()) in the backtester; the host. The
    strategy can reach the host as ``strategy.host`` during the run."""
    registry = SymbolRegistry()
    btc = registry.add_symbol("binance", "BTCUSDT", tick_size=0.01, lot_size=0.001)
    kw.setdefault("gateway", LocalGateway({"USDT": 10_000}))
    host = MLThonStrategy(strategy, [btc], exchange=Exchange.Binance, params=params, callback_bound_s=bound, **kw)
    strategy.host = host
    runner = BacktestRunner(registry, fee_rate=0.001, initial_capital=10_000)
    runner.set_strategy(host)
    ts, px, qty, is_buy = trades if trades is not None else market()
    host.result = runner.run_arrays(ts, px, qty, is_buy, symbol=btc)
    return host


@pytest.fixture
def recorder():
    return Recorder()
