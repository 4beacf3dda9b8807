"""The README strategy: an SMA(10)/SMA(30) cross on real Binance BTCUSDT trades.

    python examples/sma_cross.py                      # the spot trades in ../shared/data
    python examples/sma_cross.py path/to/trades.csv   # any trade or kline CSV (gzip accepted)

The same class runs live in strategy_runner (see docs/strategy.md): nothing here knows whether
it is a backtest.
"""
import sys

from tradebus.engine import SMA
from tradebus.strategy import BacktestRunner, Strategy, SymbolRegistry
from tradebus.strategy.data import default_data_dir


class SmaCross(Strategy):
    def __init__(self, symbols, fast=10, slow=30, qty=0.01):
        super().__init__(symbols)
        self.fast, self.slow, self.qty = SMA(fast), SMA(slow), qty

    def on_trade(self, ctx, trade):
        f = self.fast.update(trade.price)
        s = self.slow.update(trade.price)
        if f is None or s is None:
            return
        if f > s and ctx.is_flat() and not ctx.open_orders():
            self.market_buy(self.qty)
        elif f < s and ctx.is_long() and not ctx.open_orders():
            self.close_position()


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
