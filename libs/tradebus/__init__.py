"""tradebus: one strategy API for backtests, paper and live trading, over a NATS bus.

Both halves of FLOX's Python API are served from the top level, so FLOX code runs with only its
import line changed::

    import tradebus as flox                      # was: import flox_py as flox
    from tradebus.live import CcxtBroker          # was: from flox_py.ccxt import CcxtBroker

    flox.Strategy, flox.SymbolRegistry, flox.Runner, flox.BacktestRunner   # strategy API
    flox.SMA(10), flox.EMA(20), flox.RSI(14), ...                          # indicators
    flox.Engine, flox.make_signals, flox.PyBar, flox.permutation_test       # batch engine

The names are imported on first use, so ``import tradebus`` stays light for services that never
touch the engine.
"""
__version__ = "0.1.0"

_STRATEGY_API = ("Strategy", "StrategyContext", "SymbolRegistry", "Symbol", "Signal", "Runner", "BacktestRunner",
                 "OrderBook", "TradeEvent", "BarEvent", "Fill", "Order", "OrderError")
_ENGINE_API = ("Engine", "make_signals", "PyBar", "BAR_DTYPE", "SIGNAL_DTYPE", "STAT_KEYS", "BUY", "SELL",
               "MARKET", "LIMIT", "STOP", "permutation_test", "permutation_paths",
               "SMA", "EMA", "RSI", "ATR", "Bollinger", "MACD", "RollingStd", "VWAP",
               "sma", "ema", "rsi", "atr", "bollinger", "macd", "rolling_std", "vwap")


def __getattr__(name: str):
    if name in _STRATEGY_API:
        from tradebus import strategy

        return getattr(strategy, name)
    if name in _ENGINE_API:
        from tradebus import engine

        try:
            return getattr(engine, name)
        except AttributeError:
            pass
    raise AttributeError(f"module 'tradebus' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_STRATEGY_API) + list(_ENGINE_API))
