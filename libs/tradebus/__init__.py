"""tradebus: one strategy API for backtests, paper and live trading, over a NATS bus."""
__version__ = "0.1.0"

# The strategy API at the top level (``tradebus.Strategy``), imported on first use so that
# ``import tradebus`` stays light for services that never touch the engine.
_STRATEGY_API = ("Strategy", "SymbolRegistry", "Runner", "BacktestRunner")


def __getattr__(name: str):
    if name in _STRATEGY_API:
        from tradebus import strategy

        return getattr(strategy, name)
    raise AttributeError(f"module 'tradebus' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_STRATEGY_API))
