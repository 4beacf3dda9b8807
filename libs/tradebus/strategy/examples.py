"""Sample strategies: the README's SMA cross, also the strategy of the local stack.

    strategies:
      - name: sma_cross
        class: tradebus.strategy.examples:SmaCross
        symbols: [{symbol: BTC/USDT, tick_size: 0.01}]
        params: {fast: 10, slow: 30, qty: 0.001}
"""
from __future__ import annotations

from tradebus.engine import SMA
from tradebus.engine.event import Strategy

__all__ = ["SmaCross", "SmaFlip"]


class SmaCross(Strategy):
    """Long-only moving-average cross on trade prices: buy ``qty`` when SMA(fast) crosses above
    SMA(slow) while flat, close the position when it crosses back below."""

    def __init__(self, symbols, fast: int = 10, slow: int = 30, qty: float = 0.01):
        super().__init__(symbols)
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast}, slow={slow}")
        self.fast, self.slow, self.qty = SMA(fast), SMA(slow), qty

    def on_trade(self, ctx, trade):
        f = self.fast.update(trade.price)
        s = self.slow.update(trade.price)
        if f is None or s is None:
            return
        # open_orders(): live, an order may still be on its way; wait for its fill.
        if f > s and ctx.is_flat() and not ctx.open_orders():
            self.market_buy(self.qty)
        elif f < s and ctx.is_long() and not ctx.open_orders():
            self.close_position()


class SmaFlip(Strategy):
    """Always in the market: long ``qty`` while SMA(fast) > SMA(slow), short ``qty`` while below
    (one market order flips the position)."""

    def __init__(self, symbols, fast: int = 10, slow: int = 30, qty: float = 0.01):
        super().__init__(symbols)
        self.fast, self.slow, self.qty = SMA(fast), SMA(slow), qty

    def on_trade(self, ctx, trade):
        f = self.fast.update(trade.price)
        s = self.slow.update(trade.price)
        if f is None or s is None:
            return
        if f > s:
            if not ctx.is_long() and not ctx.open_orders():
                self.market_buy(self.qty - ctx.position)
        elif f < s and not ctx.is_short() and not ctx.open_orders():
            self.market_sell(self.qty + ctx.position)
