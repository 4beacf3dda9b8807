"""Every quick start and example of FLOX's two Python documents runs on tradebus with only its
import line changed (the scripts are in tests/resources/flox/, copied from the documents).

The broker quick start runs as its own process against sim_exchange (``TRADEBUS_SANDBOX_URL``
makes ``sandbox=True`` mean the local paper venue), and its orders reach the venue."""
from __future__ import annotations

import asyncio
import os
import runpy
import signal
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

import tradebus
from tradebus.live import SANDBOX_URL_ENV
from tradebus.retry import BackoffSettings
from tradebus.services.sim_exchange.settings import Account, default_config
from tradebus.services.sim_exchange.testing import running_sim
from tradebus.strategy import Signal

FLOX = Path(__file__).parents[1] / "resources" / "flox"


def test_the_scripts_differ_from_flox_only_in_their_import_lines():
    for script in FLOX.glob("*.py"):
        code = [line for line in script.read_text().splitlines() if not line.startswith("#")]
        assert not any("flox_py" in line for line in code)
        imports = [line for line in code if "tradebus" in line]
        assert imports and all(line.startswith(("import tradebus as flox", "from tradebus.live import CcxtBroker"))
                               for line in imports), script.name


def test_top_level_namespace_serves_both_halves_of_the_api():
    import tradebus.engine as engine
    import tradebus.strategy as strategy
    for name in ("Strategy", "SymbolRegistry", "Runner", "BacktestRunner", "Signal"):
        assert getattr(tradebus, name) is getattr(strategy, name)
    for name in ("Engine", "make_signals", "PyBar", "SMA", "EMA", "RSI", "ATR", "Bollinger", "MACD", "VWAP", "RollingStd",
                 "permutation_test"):
        assert getattr(tradebus, name) is getattr(engine, name)
    assert tradebus.SMA(10).update(1.0) is None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        tradebus.Nope  # noqa: B018


def write_binance_trades(path: Path, n: int = 3000, seed: int = 3) -> np.ndarray:
    """Binance's public trade archive layout (no header): id, price, qty, quote_qty, time, is_buyer_maker, best."""
    rng = np.random.default_rng(seed)
    price = np.round(60_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, n))), 2)
    qty = np.round(rng.uniform(0.001, 0.1, n), 5)
    ts = 1_723_161_255_000 + np.arange(n) * 50
    maker = rng.integers(0, 2, n).astype(bool)
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(f"{1000 + i},{price[i]:.2f},{qty[i]:.5f},{price[i] * qty[i]:.6f},{ts[i]},"
                     f"{'true' if maker[i] else 'false'},true\n")
    return price


def test_strategy_api_symbols_strategy_live_runner_and_backtest(tmp_path, monkeypatch, capsys):
    write_binance_trades(tmp_path / "btcusdt_trades.csv")
    monkeypatch.chdir(tmp_path)
    sent = []
    names = dict(send_to_exchange=sent.append, price=60_000.0, qty=0.01, is_buy=True, ts_ns=1_723_161_255_000_000_000,
                 bid_prices=[59_999.99, 59_999.5], bid_qtys=[1.0, 2.0], ask_prices=[60_000.01, 60_000.5],
                 ask_qtys=[1.5, 0.5])
    out = runpy.run_path(str(FLOX / "strategy_api.py"), init_globals=names)
    btc, runner, stats = out["btc"], out["runner"], out["stats"]
    assert (btc.id, btc.name, btc.exchange, btc.tick_size, int(btc)) == (1, "BTCUSDT", "binance", 0.01, 1)
    assert runner.threaded and not sent                      # one trade: the SMAs are not warm yet
    assert stats["symbol"] is btc and stats["total_fills"] > 0 and stats["events"] == 3000
    printed = capsys.readouterr().out.split()
    assert [float(x) for x in printed] == pytest.approx([stats["return_pct"], stats["sharpe"],
                                                         stats["max_drawdown_pct"]])


def test_live_runner_signal_carries_flox_field_names(tmp_path, monkeypatch):
    write_binance_trades(tmp_path / "btcusdt_trades.csv", n=100)
    monkeypatch.chdir(tmp_path)
    sent = []
    names = dict(send_to_exchange=sent.append, price=1.0, qty=1.0, is_buy=True, ts_ns=1, bid_prices=[1.0],
                 bid_qtys=[1.0], ask_prices=[1.1], ask_qtys=[1.0])
    out = runpy.run_path(str(FLOX / "strategy_api.py"), init_globals=names, run_name="flox_doc")
    runner = tradebus.Runner(out["registry"], out["on_signal"])
    strategy = runner.add_strategy(out["SMAcross"]([out["btc"]]))
    runner.start()
    for i in range(40):
        runner.on_trade(out["btc"], 100.0 + i, 1.0, True, i)     # rising: the fast SMA crosses above
    sig = sent[0]              # its first buy (no fills come back here, so it stays flat and buys on)
    assert isinstance(sig, Signal) and strategy is sig.strategy
    assert (sig.side, sig.order_type, sig.quantity, sig.price, sig.order_id) == ("buy", "market", 0.01, 0.0, 1)


def bars(n=500, seed=5):
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate(([100.0], closes[:-1]))
    highs = np.maximum(opens, closes) * 1.002
    lows = np.minimum(opens, closes) * 0.998
    timestamps = 1704067200000 + np.arange(n, dtype=np.int64) * 600_000   # 10-minute bars from 2024-01-01
    return dict(timestamps=timestamps, opens=opens, highs=highs, lows=lows, closes=closes, volumes=np.ones(n))


def test_batch_engine_quick_start(capsys):
    out = runpy.run_path(str(FLOX / "batch_quick_start.py"), init_globals=bars())
    stats = out["stats"]
    assert stats["total_fills"] == 2 and stats["total_trades"] == 1
    assert capsys.readouterr().out.strip() == f"PnL: {stats['net_pnl']:.2f}, Sharpe: {stats['sharpe']:.4f}"


def test_batch_engine_pybar_signals_single_and_batch_runs():
    data = bars(200)
    rng = np.random.default_rng(9)
    n = len(data["timestamps"])
    types = (rng.random(n) < 0.3).astype(np.uint8)
    names = {**data, "n": n, "sides": (np.arange(n) % 2).astype(np.uint8), "quantities": np.full(n, 0.5),
             "prices": np.round(data["closes"] * np.where(np.arange(n) % 2, 1.003, 0.997), 2), "types": types}
    out = runpy.run_path(str(FLOX / "batch_bars_signals_runs.py"), init_globals=names)
    reference = tradebus.Engine(initial_capital=100_000, fee_rate=0.0001)
    reference.load_bars_df(data["timestamps"], data["opens"], data["highs"], data["lows"], data["closes"],
                           data["volumes"])
    expected = reference.run(out["signals"])
    assert out["stats"]["total_fills"] == expected["total_fills"] > 0
    assert out["stats"]["net_pnl"] == pytest.approx(expected["net_pnl"], abs=1e-6)   # fixed point: 1e-8 steps
    assert [r["net_pnl"] for r in out["all_stats"]] == [out["stats"]["net_pnl"]] * 3


def sma_cross(prices, timestamps, fast=10, slow=30):
    """The reader's my_strategy: long 1 when SMA(fast) > SMA(slow), flat otherwise (numpy only)."""
    f = np.convolve(prices, np.ones(fast) / fast, "valid")[slow - fast:]
    s = np.convolve(prices, np.ones(slow) / slow, "valid")
    want = (f > s).astype(int)
    change = np.flatnonzero(np.diff(np.concatenate(([0], want))))
    sides = np.where(want[change] == 1, 0, 1).astype(np.uint8)
    return tradebus.make_signals(timestamps=timestamps[slow - 1:][change], sides=sides,
                                 quantities=np.ones(len(change)))


def test_batch_engine_permutation_example():
    out = runpy.run_path(str(FLOX / "batch_permutation.py"), init_globals={**bars(300), "my_strategy": sma_cross})
    assert len(out["results"]) == 1000 and 0.0 < out["p_value"] <= 1.0
    assert out["results"][0]["total_fills"] == len(out["signal_sets"][0])


def test_broker_backoff_and_subclass_examples():
    out = runpy.run_path(str(FLOX / "ccxt_backoff_and_subclass.py"))
    assert out["broker"].backoff == BackoffSettings(initial=1.0, cap=60.0, multiplier=2.0)
    assert issubclass(out["BybitBroker"], out["CcxtBroker"])   # run against a venue in tests/libs/live


async def test_broker_quick_start_against_sim_exchange():
    config = default_config(speed="0")
    doc_account = Account(api_key="...", secret="...", spot={"USDT": "100000", "BTC": "1"})
    async with running_sim(msgspec.structs.replace(config, accounts=[*config.accounts, doc_account])) as sim:
        env = {**os.environ, SANDBOX_URL_ENV: sim.url, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(sys.executable, str(FLOX / "ccxt_quick_start.py"), env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        lines: list[str] = []

        async def read():
            async for raw in proc.stdout:
                lines.append(raw.decode().strip())
        reader = asyncio.ensure_future(read())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not any(line.startswith("BTC/USDT filled") for line in lines):
                assert loop.time() < deadline and proc.returncode is None, (lines, proc.returncode)
                sim.step(5)
                await asyncio.sleep(0.02)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 30)
            await reader
        errors = (await proc.stderr.read()).decode()
        account = sim.account("...")
        assert account.orders and all(o.type == "MARKET" for o in account.orders.values())
        assert account.fills["spot"]
        assert "LIVE: orders are sent" in errors


def test_signal_and_trade_events_answer_to_flox_field_names():
    registry = tradebus.SymbolRegistry()
    btc = registry.add_symbol("binance", "BTCUSDT", tick_size=0.01)
    sent, seen = [], []

    class Orders(tradebus.Strategy):
        def on_trade(self, ctx, trade):
            seen.append((trade.quantity, trade.qty))
            self.stop_market("sell", 59_000.0, 0.01)
            self.trailing_stop("sell", 25.5, 0.01, activation=60_100.0)
            self.trailing_stop_percent("sell", 40.0, 0.01)

    runner = tradebus.Runner(registry, sent.append)
    runner.add_strategy(Orders([btc]))
    runner.start()
    runner.on_trade(btc, 60_000.0, 0.25, True, 1)
    assert seen == [(0.25, 0.25)]
    stop, trailing, percent = sent
    assert (stop.trigger_price, stop.trailing_offset, stop.trailing_bps) == (59_000.0, 0.0, 0.0)
    assert (trailing.trigger_price, trailing.trailing_offset, trailing.trailing_bps) == (60_100.0, 25.5, 0.0)
    assert (percent.trigger_price, percent.trailing_offset, percent.trailing_bps) == (0.0, 0.0, 40.0)
    assert all(s.quantity == 0.01 for s in sent)
