"""Data files for backtests: the real Binance files, Binance's archive layouts, our own format."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from tradebus.strategy import BacktestRunner, Strategy, SymbolRegistry
from tradebus.strategy.data import (
    default_data_dir,
    load_csv,
    load_depth,
    load_klines,
    load_trades,
    symbol_from_filename,
    write_bars_csv,
    write_trades_csv,
)

DATA = default_data_dir()
SPOT_TRADES = DATA / "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz"


def test_real_spot_trades():
    t = load_trades(SPOT_TRADES)
    assert len(t) == 19904 and t.symbol == "BTCUSDT"
    # first row: ...,1723161255342,3735683259,61837.63000000,0.02000000,true,true
    assert (t.ts_ns[0], t.price[0], t.qty[0], t.is_buy[0], t.trade_id[0]) == \
        (1723161255342 * 10**6, 61837.63, 0.02, 0, 3735683259)
    assert t.recv_ts[0] == 1723161254087896568
    assert np.all(np.diff(t.trade_id) == 1) and t.price.min() == 61556.04 and t.price.max() == 61860.80


def test_real_klines():
    bars = load_klines(DATA / "binance_spot_ETHUSDT_1m_20250520_20250818.csv.gz")
    assert len(bars) == 130_708 and bars.symbol == "ETHUSDT"
    assert (bars.ts_ns[0], bars.open[0], bars.close[0], bars.volume[0]) == (1747699200000 * 10**6, 2528.14, 2528.28, 562.6879)
    assert np.all(np.diff(bars.ts_ns) == 60 * 10**9)


def test_real_depth_files_join_by_binance_rules():
    spot = load_depth(DATA / "binance_spot_BTCUSDT_20240808T2354Z_depth_snapshot.csv",
                      DATA / "binance_spot_BTCUSDT_20240808T2354Z_depth_updates.csv.gz")
    assert (spot.events, spot.dropped_events, spot.last_update_id) == (6493, 2, 50093239218)
    assert len(spot.bids) == len(spot.asks) == 1000 and spot.bids[0] == (61837.63, 3.78826)
    assert spot.last_of_event.sum() == 6493 and np.all(np.diff(spot.ts_ns) >= 0)
    usdm = load_depth(DATA / "binance_usdm_BTCUSDT_20240808T2354Z_depth_snapshot.csv",
                      DATA / "binance_usdm_BTCUSDT_20240808T2354Z_depth_updates_first45s.csv.gz")
    assert (usdm.events, usdm.dropped_events) == (857, 4)        # the data README's count
    assert usdm.ts_ns.min() >= usdm.snapshot_ts                   # buffered events follow the snapshot


def _write(path, text):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as fh:
        fh.write(text)
    return path


def test_binance_archive_layouts(tmp_path):
    trades = _write(tmp_path / "BTCUSDT-trades-2024-08-09.csv",
                    "100,61000.5,0.25,15250.125,1723161600000,true,true\n"
                    "101,61001.0,0.5,30500.5,1723161600001,false,true\n")
    t = load_trades(trades)
    assert t.ts_ns.tolist() == [1723161600000 * 10**6, 1723161600001 * 10**6]
    assert t.is_buy.tolist() == [0, 1] and t.trade_id.tolist() == [100, 101] and t.symbol == "BTCUSDT"
    agg = _write(tmp_path / "ETHUSDT-aggTrades.csv.gz",
                 "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match\n7,3000.1,1.5,10,12,1723161600000123,false,true\n")
    a = load_trades(agg)                                      # microsecond timestamps
    assert (a.ts_ns[0], a.price[0], a.is_buy[0], a.trade_id[0]) == (1723161600000123000, 3000.1, 1, 7)
    klines = _write(tmp_path / "BTCUSDT-1m.csv",
                    "1723161600000,1,2,0.5,1.5,10,1723161659999,15,3,5,7,0\n"
                    "1723161660000,1.5,2.5,1,2,11,1723161719999,16,4,6,8,0\n")
    k = load_klines(klines)
    assert k.close.tolist() == [1.5, 2.0] and k.ts_ns[1] - k.ts_ns[0] == 60 * 10**9


def test_own_format_round_trip(tmp_path):
    ts = 1_700_000_000_000_000_000 + np.array([1, 2, 3], dtype=np.int64) * 10**9
    write_trades_csv(tmp_path / "x.csv.gz", ts, [1.5, 2.25, 3.0], [0.1, 0.2, 0.3], [True, False, True])
    t = load_trades(tmp_path / "x.csv.gz")
    assert t.ts_ns.tolist() == ts.tolist() and t.price.tolist() == [1.5, 2.25, 3.0] and t.is_buy.tolist() == [1, 0, 1]
    write_bars_csv(tmp_path / "b.csv", ts, [1, 2, 3], [2, 3, 4], [0.5, 1, 2], [1.5, 2.5, 3.5], [9, 9, 9])
    b = load_csv(tmp_path / "b.csv")
    assert b.close.tolist() == [1.5, 2.5, 3.5] and b.ts_ns.tolist() == ts.tolist()


@pytest.mark.parametrize("text, message", [
    ("ts_ns,price,qty,side\n1700000000000000000,1.0,1.0,up\n", "side must be buy/sell"),
    ("ts_ns,price,qty,side\n1700000000000000000,abc,1.0,buy\n", "column 'price'"),
    ("ts_ns,price,qty\n1700000000000000000,1.0,1.0\n", "needs is_buyer_maker or side"),
    ("1,2,3\n", "7 (trades) or 8 (aggTrades)"),
    ("foo,bar\n1,2\n", "not a trade or kline file"),
])
def test_bad_files_get_clear_errors(tmp_path, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_csv(_write(tmp_path / "bad.csv", text))


def test_depth_gaps_are_refused(tmp_path):
    snap = _write(tmp_path / "s.csv", "local_ts_ns,last_update_id,side,level,price,qty\n"
                                      "1,100,bid,0,10.0,1\n1,100,ask,0,11.0,1\n")
    ok = "local_ts_ns,event_time_ms,first_update_id,last_update_id,side,price,qty\n" \
         "2,2,95,101,bid,10.0,2\n3,3,102,105,ask,11.0,0\n3,3,102,105,ask,11.5,1\n"
    book = load_depth(snap, _write(tmp_path / "u.csv", ok))
    assert book.events == 2 and book.last_of_event.tolist() == [1, 0, 1]
    gap = ok.replace("102,105", "103,105")
    with pytest.raises(ValueError, match="sequence gap after update id 101"):
        load_depth(snap, _write(tmp_path / "g.csv", gap))
    late = ok.replace("95,101", "102,104").replace("102,105", "105,106")
    with pytest.raises(ValueError, match="does not cover lastUpdateId"):
        load_depth(snap, _write(tmp_path / "l.csv", late))


def test_symbol_from_file_names():
    assert symbol_from_filename("binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz") == "BTCUSDT"
    assert symbol_from_filename("ETHUSDT-trades-2024.csv") == "ETHUSDT"
    assert symbol_from_filename("trades.csv") is None
    assert symbol_from_filename("btcusdt_trades.csv") == "BTCUSDT"          # FLOX's example name
    assert symbol_from_filename("BtcUsdt_trades.csv") is None               # mixed case: not a symbol


def test_run_csv_reads_a_lower_case_file_name_and_names_a_malformed_row(tmp_path):
    reg = SymbolRegistry()
    btc = reg.add_symbol("binance", "BTCUSDT", tick_size=0.01)
    bt = BacktestRunner(reg)
    s = Count([btc])
    bt.set_strategy(s)
    rows = [f"{i},{60000 + i}.5,0.01,600.0,{1723161255000 + i},true,true" for i in range(5)]
    (tmp_path / "btcusdt_trades.csv").write_text("\n".join(rows) + "\n")
    assert bt.run_csv(tmp_path / "btcusdt_trades.csv")["symbol"] is btc and s.trades == 5
    rows[3] = "3,60003.5,oops,600.0,1723161255003,true,true"
    (tmp_path / "ethusdt_trades.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"ethusdt_trades.csv: line 4\b.*oops"):
        bt.run_csv(tmp_path / "ethusdt_trades.csv", symbol=btc)


class Count(Strategy):
    def __init__(self, symbols):
        super().__init__(symbols)
        self.trades = self.bars = 0

    def on_trade(self, ctx, trade):
        self.trades += 1

    def on_bar(self, ctx, bar):
        self.bars += 1


def test_run_csv_finds_the_symbol_and_the_kind(tmp_path):
    reg = SymbolRegistry()
    btc = reg.add_symbol("binance", "BTCUSDT", tick_size=0.01)
    eth = reg.add_symbol("binance", "ETHUSDT", tick_size=0.01)
    bt = BacktestRunner(reg)
    s = Count([btc, eth])
    bt.set_strategy(s)
    stats = bt.run_csv(SPOT_TRADES)
    assert stats["symbol"] is btc and s.trades == 19904
    ts = 1_700_000_000_000 + 60_000 * np.arange(3)
    write_bars_csv(tmp_path / "ETHUSDT_1m.csv", ts * 10**6, [1, 2, 3], [2, 3, 4], [0.5, 1, 2], [1.5, 2.5, 3.5], [9, 9, 9])
    assert bt.run_csv(tmp_path / "ETHUSDT_1m.csv")["symbol"] is eth and s.bars == 3
    with pytest.raises(ValueError, match="cannot tell the symbol"):
        bt.run_csv(tmp_path / "XRPUSDT_trades.csv")


def test_run_parquet_matches_run_arrays(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    t = load_trades(SPOT_TRADES)
    pq.write_table(pa.table({"ts_ns": t.ts_ns, "price": t.price, "qty": t.qty,
                             "is_buyer_maker": t.is_buy == 0}), tmp_path / "BTCUSDT.parquet")
    reg = SymbolRegistry()
    btc = reg.add_symbol("binance", "BTCUSDT", tick_size=0.01)
    from tradebus.strategy.examples import SmaCross

    bt = BacktestRunner(reg, fee_rate=0.0004)
    bt.set_strategy(SmaCross([btc]))
    a = bt.run_parquet(tmp_path / "BTCUSDT.parquet")
    bt.set_strategy(SmaCross([btc]))
    b = bt.run_arrays(t.ts_ns, t.price, t.qty, t.is_buy)
    assert a["total_fills"] == b["total_fills"] > 0 and a["net_pnl"] == b["net_pnl"]


@pytest.mark.parametrize("bad, message", [
    (dict(timestamps=[2, 1], prices=[1.0, 1.0], quantities=[1.0, 1.0]), "must not decrease: row 1"),
    (dict(timestamps=[1, 2], prices=[1.0, -1.0], quantities=[1.0, 1.0]), "prices row 1"),
    (dict(timestamps=[1, 2], prices=[1.0, np.nan], quantities=[1.0, 1.0]), "prices row 1"),
    (dict(timestamps=[1, 2], prices=[1.0, 1.0], quantities=[1.0]), "quantities has 1 values"),
])
def test_run_arrays_refuses_bad_input(bad, message):
    reg = SymbolRegistry()
    btc = reg.add_symbol("binance", "BTCUSDT")
    bt = BacktestRunner(reg)
    bt.set_strategy(Count([btc]))
    with pytest.raises(ValueError, match=message):
        bt.run_arrays(**bad)


def test_runner_options_are_checked():
    reg = SymbolRegistry()
    for kwargs, message in ((dict(fee_rate=-0.1), "fee_rate"), (dict(latency_ns=-1), "latency_ns"),
                            (dict(bar_fill="open"), "bar_fill"), (dict(initial_capital=0), "initial_capital"),
                            (dict(mark_interval=0), "mark_interval")):
        with pytest.raises(ValueError, match=message):
            BacktestRunner(reg, **kwargs)
    with pytest.raises(RuntimeError, match="set_strategy"):
        BacktestRunner(reg).run_arrays([1], [1.0], [1.0])
