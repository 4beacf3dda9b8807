"""A strategy driven by a script (trade index -> action) that records every callback."""
from __future__ import annotations

import numpy as np

from tradebus.strategy import BacktestRunner, Strategy, SymbolRegistry

T0 = 1_700_000_000_000_000_000  # ns
SEC = 1_000_000_000


class Scripted(Strategy):
    """Runs ``script[i](self, ctx)`` on the i-th trade (or bar / book update) and records what
    the venue reports: ("update", id, status, filled, avg), ("fill", id, price, qty, maker),
    ("error", message), ("timer", name, now)."""

    def __init__(self, symbols, script=None):
        super().__init__(symbols)
        self.script = script or {}
        self.events = []
        self.i = -1
        self.ids = []
        self.positions = []          # position seen at each callback

    def _step(self, ctx):
        self.i += 1
        self.positions.append(ctx.position)
        action = self.script.get(self.i)
        if action is not None:
            out = action(self, ctx)
            if out is not None:
                self.ids.append(out)

    def on_trade(self, ctx, trade):
        self._step(ctx)

    def on_bar(self, ctx, bar):
        self._step(ctx)

    def on_book_update(self, ctx):
        self._step(ctx)

    def on_order_update(self, symbol, status, filled, avg_price, order):
        self.events.append(("update", order.id, status, filled, avg_price))

    def on_fill(self, fill):
        self.events.append(("fill", fill.order_id, fill.price, fill.qty, fill.is_maker))

    def on_error(self, symbol, error):
        self.events.append(("error", str(error)))

    def on_timer(self, name):
        self.events.append(("timer", name, self.context().now_ns))

    def fills(self):
        return [e[1:] for e in self.events if e[0] == "fill"]

    def statuses(self, order_id):
        return [e[2] for e in self.events if e[0] == "update" and e[1] == order_id]


def registry(tick=0.01, lot=0.0):
    reg = SymbolRegistry()
    sym = reg.add_symbol("sim", "BTC/USDT", tick_size=tick, lot_size=lot)
    return reg, sym


def run_trades(prices, script, *, sides=None, qtys=None, step=SEC, **options):
    """Replay ``prices`` as trades one ``step`` apart through a Scripted strategy."""
    reg, sym = registry()
    strategy = Scripted([sym], script)
    options.setdefault("fee_rate", 0.0)
    bt = BacktestRunner(reg, **options)
    bt.set_strategy(strategy)
    n = len(prices)
    ts = T0 + np.arange(n, dtype=np.int64) * step
    stats = bt.run_arrays(ts, np.asarray(prices, float), np.ones(n) if qtys is None else qtys,
                          np.ones(n, bool) if sides is None else sides)
    return stats, strategy
