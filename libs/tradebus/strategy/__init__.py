"""The strategy API: write a strategy once, run it in a backtest and live, unchanged.

Names follow FLOX's Python strategy API::

    from tradebus.strategy import BacktestRunner, Strategy, SymbolRegistry
    from tradebus.engine import SMA

    class SmaCross(Strategy):
        def __init__(self, symbols):
            super().__init__(symbols)
            self.fast, self.slow = SMA(10), SMA(30)

        def on_trade(self, ctx, trade):
            f, s = self.fast.update(trade.price), self.slow.update(trade.price)
            if f is None or s is None:
                return
            if f > s and ctx.is_flat():
                self.market_buy(0.01)
            elif f < s and ctx.is_long():
                self.close_position()

    registry = SymbolRegistry()
    btc = registry.add_symbol("binance", "BTCUSDT", tick_size=0.01)
    bt = BacktestRunner(registry, fee_rate=0.0004, initial_capital=10_000)
    bt.set_strategy(SmaCross([btc]))
    stats = bt.run_csv("binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz")

Live, the same class runs in a :class:`Runner` (strategy_runner hosts one on the bus).
"""
from tradebus.engine.event import (
    ORDER_STATES,
    ORDER_TYPES,
    POST_ONLY,
    REDUCE_ONLY,
    TIME_IN_FORCE,
    BarEvent,
    Clock,
    Fill,
    Order,
    OrderBook,
    OrderError,
    Signal,
    Strategy,
    StrategyContext,
    TradeEvent,
)

from .backtest import CANCEL_REASONS, FILL_LOG_DTYPE, ORDER_LOG_DTYPE, BacktestRunner
from .orders import OrderRecord
from .runner import Runner
from .symbols import Symbol, SymbolRegistry, unified_symbol

__all__ = [
    "Strategy", "StrategyContext", "SymbolRegistry", "Symbol", "Signal", "Runner", "BacktestRunner",
    "OrderBook", "TradeEvent", "BarEvent", "Fill", "Order", "OrderError", "OrderRecord", "Clock",
    "ORDER_TYPES", "ORDER_STATES", "TIME_IN_FORCE", "POST_ONLY", "REDUCE_ONLY",
    "FILL_LOG_DTYPE", "ORDER_LOG_DTYPE", "CANCEL_REASONS", "unified_symbol",
]
