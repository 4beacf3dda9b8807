"""The scenarios' order flow: a strategy that sends one market order every ``interval`` seconds,
buys and sells in turn, and journals every fill it sees (tradebus.audit.FillJournal).
``{"active": false}`` as a params update pauses it; ``{"burst": n}`` sends n orders at once."""
from __future__ import annotations

from tradebus.audit import FillJournal
from tradebus.engine.event import Strategy


def _name(symbol) -> str:
    return str(getattr(symbol, "name", symbol))


class Pulse(Strategy):
    def __init__(self, symbols, journal: str, qty: float = 0.001, interval: float = 0.2, active: bool = True):
        super().__init__(symbols)
        self.journal = FillJournal(journal)
        self.qty, self.interval, self.active = qty, interval, active
        self.sent = 0
        self.position: dict[str, float] = {}

    def on_start(self):
        self.journal.started()
        self.set_timer("pulse", self.interval)

    def on_initial_position(self, symbol, qty, avg_price):
        self.position[_name(symbol)] = qty
        self.journal.restored(_name(symbol), qty)

    def on_timer(self, name):
        if self.active:
            self._send()

    def _send(self):
        self.sent += 1
        if self.sent % 2:
            self.market_buy(self.qty)
        else:
            self.market_sell(self.qty)

    def on_params_update(self, params):
        if "active" in params:
            self.active = bool(params["active"])
        for _ in range(int(params.get("burst", 0))):
            self._send()

    def on_fill(self, fill):
        symbol = _name(fill.symbol)
        change = fill.position - self.position.get(symbol, 0.0)
        self.position[symbol] = fill.position
        self.journal.fill(symbol, fill.trade_id, change, fill.position)

    def on_error(self, symbol, error):
        pass  # rejects are expected under faults; the ledger counts them
