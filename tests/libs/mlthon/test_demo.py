"""The demo strategy, which uses every environment call, in the backtester over real trades."""
import pytest

from tradebus.data import data_dir
from tradebus.mlthon import backtest
from tradebus.mlthon.demo import DemoStrategy

TRADES = data_dir() / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz"

ORDER_SCRIPT = [
    "on_account_info", "on_unsupported_op", "on_new_order_reject", "on_new_order_reject", "on_new_order_reject",
    "on_cancel_order_reject",
    "on_new_order_ack", "on_modify_order_ack", "on_order_status", "on_orders_info", "on_cancel_order_ack",
    "on_order_cancelled", "on_new_order_ack", "on_order_execution", "on_new_order_ack", "on_order_execution",
    "on_cancel_all_ack", "on_position_info", "on_wallet_info",
]


@pytest.mark.skipif(not TRADES.exists(), reason="needs the shared Binance trades file")
def test_demo_runs_every_call_in_the_backtester():
    demo = DemoStrategy()
    out = backtest(demo, TRADES, params={"qty": "0.001", "far_price": "60000", "start_after": 20})
    names = [e[0] for e in out["log"]]
    assert names[:4] == ["on_framework_connected", "on_start", "on_instruments", "on_strat_params_update"]
    assert [n for n in names if n in set(ORDER_SCRIPT)][1:] == ORDER_SCRIPT   # after LevelBook's unsupported
    assert demo.step == "disconnected" and demo.timer_calls == 3
    assert ("on_unsupported_op", "Binance", "LevelBook") in out["log"]
    assert ("on_unsupported_op", "Binance", "FetchFundingInfo") in out["log"]
    ack = next(e for e in out["log"] if e[0] == "on_new_order_ack")
    assert ack[5:8] == ("Buy", "60000", "0.001")
    assert next(e for e in out["log"] if e[0] == "on_modify_order_ack")[3] == "59999"
    position = next(e for e in out["log"] if e[0] == "on_position_info")
    assert float(position[3]) == pytest.approx(0.0, abs=1e-12)
    summary = out["summary"]
    assert len(summary["fills"]) == 2 and summary["total_trades"] == 1
    assert out["strategy"].guard.errors == []
    assert out["strategy"].notifier.sent == ["mlthon demo: round trip done"]
