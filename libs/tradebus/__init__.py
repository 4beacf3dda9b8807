"""tradebus: one strategy API for backtests, paper and live trading, over a NATS bus."""
__version__ = "0.1.0"
