"""The soak's order flow (bench/soak.py), loaded by strategy_runner from this file.

On the trades of its first symbol it trades every symbol at its own pace: buy ``qty`` at market
when flat, ``close_position`` when long, one order at a time per symbol (so on spot every round
trip pays its fee in BTC and closes whole lots, the path of the local stack's sample strategy).
For each order it writes the time of the trade that triggered it to ``ticks`` (the tick-to-order
latency) and journals every fill (``tradebus.audit.FillJournal``) for the ledger.
``{"active": false}`` as a params update stops it sending.
"""
from __future__ import annotations

import time

from tradebus.audit import FillJournal
from tradebus.engine.event import Strategy


class SoakPacer(Strategy):
    def __init__(self, symbols, journal: str, ticks: str, per_s: list[float], qty: list[float]):
        super().__init__(symbols)
        if not (len(per_s) == len(qty) == len(symbols)):
            raise ValueError(f"per_s and qty need one value per symbol ({len(symbols)})")
        self.journal = FillJournal(journal)
        self.ticks = open(ticks, "a", buffering=1)
        self.every_ns = [int(1e9 / rate) for rate in per_s]
        self.qty = list(qty)
        self.next_ns = [0] * len(symbols)
        self.position: dict[str, float] = {}
        self.active = True
        self.errors = 0

    def on_start(self):
        self.journal.started()

    def on_params_update(self, params):
        self.active = bool(params.get("active", self.active))

    def on_trade(self, ctx, trade):
        if not self.active:
            return
        now = time.time_ns()
        for i, symbol in enumerate(self.symbols):
            if now < self.next_ns[i]:
                continue
            leg = self.context(symbol)
            if leg.open_orders():
                continue
            # the pace holds on average; after a slow order it resumes from now, without a burst
            self.next_ns[i] = max(self.next_ns[i] + self.every_ns[i], now)
            if leg.is_long():
                order_id = self.close_position(symbol)
            else:
                order_id = self.market_buy(self.qty[i], symbol)
            if order_id is not None:
                self.ticks.write(f"{order_id} {trade.ts_ns} {time.time_ns()}\n")

    def on_fill(self, fill):
        symbol = str(getattr(fill.symbol, "name", fill.symbol))
        change = fill.position - self.position.get(symbol, 0.0)
        self.position[symbol] = fill.position
        self.journal.fill(symbol, fill.trade_id, change, fill.position)

    def on_error(self, symbol, error):
        self.errors += 1          # a reject is counted by the ledger; the pace goes on

    def on_stop(self):
        self.ticks.close()
        self.journal.close()
