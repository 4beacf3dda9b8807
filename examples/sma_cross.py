"""The README strategy: an SMA(10)/SMA(30) cross on real Binance BTCUSDT trades.

    python examples/sma_cross.py                      # the spot trades in ../shared/data
    python examples/sma_cross.py path/to/trades.csv   # any trade or kline CSV (gzip accepted)

The strategy is ``tradebus.strategy.examples.SmaCross``, the class the README shows; the same
class runs live in strategy_runner (see docs/strategy.md): nothing in it knows whether it is a
backtest.
"""
import sys

from tradebus.strategy import BacktestRunner, SymbolRegistry
from tradebus.strategy.data import default_data_dir
from tradebus.strategy.examples import SmaCross  # the class the README shows


def main(path=None) -> dict:
    registry = SymbolRegistry()
    btc = registry.add_symbol("binance", "BTCUSDT", tick_size=0.01, lot_size=0.00001)
    bt = BacktestRunner(registry, fee_rate=0.0004, initial_capital=10_000)
    bt.set_strategy(SmaCross([btc]))
    path = path or default_data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz"
    stats = bt.run_csv(path)
    print(f"{stats['events']} events from {path}")
    for key in ("total_trades", "total_fills", "net_pnl", "total_fees", "return_pct", "win_rate",
                "sharpe", "max_drawdown_pct", "final_capital"):
        print(f"  {key:<18} {stats[key]:,.6g}")
    return stats


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
