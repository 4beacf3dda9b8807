# FLOX "Connect FLOX to a CCXT exchange", Quick start, verbatim but for the two import lines
# (was: import flox_py as flox / from flox_py.ccxt import CcxtBroker).
import asyncio
import tradebus as flox
from tradebus.live import CcxtBroker
class SMA(flox.Strategy):
    def __init__(self, symbols):
        super().__init__(symbols)
        self.fast = flox.SMA(10)
        self.slow = flox.SMA(30)
    def on_trade(self, ctx, trade):
        f = self.fast.update(trade.price)
        s = self.slow.update(trade.price)
        if f is None or s is None:
            return
        if f > s and ctx.is_flat():
            self.market_buy(0.001)
        elif f < s and ctx.is_long():
            self.market_sell(0.001)
    def on_order_update(self, sym, status, filled, avg):
        print(f" {sym} {status} filled={filled} avg={avg}")
    def on_initial_position(self, sym, qty, avg):
        print(f" starting position on {sym}: qty={qty} avg={avg}")
async def main():
    async with CcxtBroker(
        "binance",
        api_key="...", # leave None for public market data only
        secret="...",
        sandbox=True,
    ) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        broker.add_strategy(SMA([btc]))
        await broker.run(streams=("trades", "book", "orders"))
asyncio.run(main())
