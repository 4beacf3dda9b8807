"""Strategies the strategy_runner tests load by file path (``strategies.py:Flipper``)."""
from tradebus.engine import SMA
from tradebus.strategy import Strategy


class Flipper(Strategy):
    """Long or short on an SMA(fast)/SMA(slow) cross of trade prices: opens with a market order,
    leaves with close_position, so its orders depend on the fills it was told about."""

    def __init__(self, symbols, fast=5, slow=15, qty=0.01):
        super().__init__(symbols)
        self.fast, self.slow, self.qty = SMA(fast), SMA(slow), qty
        self.n = -1
        self.sent = []                     # (trade index, order type, side, position seen)

    def on_trade(self, ctx, trade):
        self.n += 1
        f, s = self.fast.update(trade.price), self.slow.update(trade.price)
        if f is None or s is None or ctx.open_orders():
            return
        if f > s and not ctx.is_long():
            if ctx.is_short():
                self.close_position()
                self.sent.append((self.n, "close_position", "buy", ctx.position))
            else:
                self.market_buy(self.qty)
                self.sent.append((self.n, "market", "buy", ctx.position))
        elif f < s and not ctx.is_short():
            if ctx.is_long():
                self.close_position()
                self.sent.append((self.n, "close_position", "sell", ctx.position))
            else:
                self.market_sell(self.qty)
                self.sent.append((self.n, "market", "sell", ctx.position))


class Exploding(Strategy):
    """Raises in on_trade every ``every`` trades; never trades."""

    def __init__(self, symbols, every=50):
        super().__init__(symbols)
        self.every = every
        self.n = 0
        self.errors = 0

    def on_trade(self, ctx, trade):
        self.n += 1
        if self.n % self.every == 0:
            raise RuntimeError(f"exploding on trade {self.n}")

    def on_error(self, symbol, error):
        self.errors += 1


class BuyThenClose(Strategy):
    """Buys ``qty`` at market on the first trade and closes the position once it is filled."""

    def __init__(self, symbols, qty=0.01):
        super().__init__(symbols)
        self.qty = qty
        self.bought = False
        self.closing = False

    def on_trade(self, ctx, trade):
        if not self.bought:
            self.bought = True
            self.market_buy(self.qty)

    def on_fill(self, fill):
        if fill.position > 0 and not self.closing:
            self.closing = True
            self.close_position()


class RoundTrips(Strategy):
    """Buys ``qty`` at market when flat, closes the position when long, one order at a time:
    a round trip per pair of fills, for as long as trades come (the local stack's SMA cross,
    without waiting for crosses)."""

    def __init__(self, symbols, qty=0.001):
        super().__init__(symbols)
        self.qty = qty
        self.buys = 0
        self.closes = 0

    def on_trade(self, ctx, trade):
        if ctx.open_orders():
            return
        if ctx.is_flat():
            self.market_buy(self.qty)
            self.buys += 1
        elif ctx.is_long():
            self.close_position()
            self.closes += 1
