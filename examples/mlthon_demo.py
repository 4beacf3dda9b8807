"""Run the MLThon demo strategy in the event-driven backtester over real Binance trades.

    .venv/bin/python examples/mlthon_demo.py [TRADES_CSV]
"""
import sys
from pathlib import Path

from tradebus.data import data_dir
from tradebus.mlthon import backtest
from tradebus.mlthon.demo import DemoStrategy


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz"
    out = backtest(DemoStrategy(), path, products=["BTC-USDT"],
                   params={"qty": "0.001", "far_price": "60000", "start_after": 20})
    for entry in out["log"]:
        if entry[0] != "on_framework_connected":
            print(*entry)
    summary = out["summary"]
    print(f"\nfills {len(summary['fills'])}  net_pnl {summary['net_pnl']:.4f}  "
          f"round trips {summary['total_trades']}")


if __name__ == "__main__":
    main()
