"""The MLThon demo strategy live in the local stack and in the backtester: the same callbacks.

Live: `tradebus up` runs sim_exchange replaying the real Binance USD-M data of ../shared/data,
market_data streaming them, strategy_runner hosting the demo (``kind: mlthon``) and order_router
trading the sim's paper account. The demo's callback log (a JSON line per callback) is compared
with the log of the same strategy in the event-driven backtester over the same recorded trades.
Commands (``tradebus strategy cmd``) and params updates reach it over the bus.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest
import yaml

from tradebus.bus import NatsConfig, free_port
from tradebus.bus.config import connect_options
from tradebus.config import DEFAULT_CONFIG
from tradebus.data import find_data_dir
from tradebus.mlthon import backtest
from tradebus.mlthon.demo import DemoStrategy
from tradebus.proto import ParamsUpdate
from tradebus.proto.codec import encode
from tradebus.proto.subjects import KV_STRATEGY_PARAMS, params_key, params_subject

from .test_up import interrupt

DATA = find_data_dir()
PERP = "BTC/USDT:USDT"        # USD-M: the venue modifies orders and charges fees in USDT, as the backtest
TRADES = "binance_usdm_BTCUSDT_20240808T2354Z_trades.csv.gz"
PARAMS = {"qty": "0.002", "far_price": "60000", "start_after": 20}   # far_price: rests, within the risk band

# The order script's callbacks, compared field by field (execution prices, timestamps and
# exchange ids are the venue's and differ between a replay and the live sim).
ORDER_CALLBACKS = {
    "on_new_order_reject": (1, 2, 3), "on_cancel_order_reject": (1, 2, 3), "on_new_order_ack": (1, 2, 4, 5, 6, 9),
    "on_modify_order_ack": (1, 2, 3), "on_cancel_order_ack": (1, 2), "on_order_cancelled": (1, 2, 3, 6),
    "on_order_execution": (1, 2, 3), "on_cancel_all_ack": (1, 2), "on_orders_info": (1,),
    "on_order_status": (1, 2, 3, 5, 6), "on_unsupported_op": (1, 2),
}
FUNDING = (["on_unsupported_op", "Sim", "FetchFundingInfo"], "on_funding_info")   # the venue has it, a replay not


def order_view(log: list[list]) -> list[tuple]:
    return [(e[0], *(e[i] for i in ORDER_CALLBACKS[e[0]])) for e in log
            if e[0] in ORDER_CALLBACKS and e != FUNDING[0]]


def read_log(path: Path) -> list[list]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.skipif(DATA is None or not (DATA / TRADES).exists(), reason="needs the shared Binance data")
async def test_demo_live_matches_the_backtest(tmp_path):
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    config["embedded_nats"]["port"] = 0
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    config["services"]["sim_exchange"]["args"] = ["--port", str(sim_port), "--speed", "5"]
    config["services"]["market_data"]["settings"]["venues"][0]["sim_url"] = sim_url
    config["services"]["market_data"]["settings"]["venues"][0]["symbols"] = [PERP]
    config["services"]["order_router"]["settings"]["sim_url"] = sim_url
    callback_log = tmp_path / "demo.jsonl"
    config["services"]["strategy_runner"]["settings"]["strategies"] = [{
        "name": "demo", "kind": "mlthon", "class": "tradebus.mlthon.demo:DemoStrategy",
        "cfg": {"product": "BTC-USDT"}, "params": PARAMS, "venue": "sim", "callback_log": str(callback_log),
        "symbols": [{"symbol": PERP, "tick_size": 0.1, "lot_size": 0.001}],
    }]
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(yaml.safe_dump(config))
    state = tmp_path / "state"
    env = {**os.environ, "TRADEBUS_DATA_DIR": str(DATA)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradebus.cli", "up", "--config", str(cfg), "--state-dir", str(state),
         "--only", "sim_exchange,market_data,strategy_runner,order_router"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 180
        while not any(e[0] == "on_wallet_info" for e in read_log(callback_log)):
            assert proc.poll() is None, "the stack exited"
            assert time.monotonic() < deadline, f"the demo did not finish its script live: {read_log(callback_log)}"
            await asyncio.sleep(0.5)
        url = (state / "nats-url").read_text().strip()
        # the CLI finds the operator's credentials in the state folder (auth is on by default)
        env["TRADEBUS_STATE_DIR"] = str(state)
        cli = subprocess.run([sys.executable, "-m", "tradebus.cli", "strategy", "cmd", "demo", "BUMP", "1", "x",
                              "--nats-url", url], capture_output=True, text=True, env=env, timeout=60)
        assert cli.returncode == 0 and "demo BUMP: ok" in cli.stdout, cli.stdout + cli.stderr
        unknown = subprocess.run([sys.executable, "-m", "tradebus.cli", "strategy", "cmd", "demo", "nosuch",
                                  "--nats-url", url], capture_output=True, text=True, env=env, timeout=60)
        assert unknown.returncode == 1 and "no hook" in unknown.stdout
        nc = await nats.connect(**connect_options(NatsConfig(url=url), env))
        try:
            await nc.publish(params_subject("demo"), encode(ParamsUpdate(strategy="demo", params={"qty": "0.002"})))
            await nc.flush()
        finally:
            await nc.close()
        while not any(e[0] == "on_strat_params_update" and e[1].get("qty") == "0.002" for e in read_log(callback_log)):
            assert time.monotonic() < deadline, "the params update did not arrive"
            await asyncio.sleep(0.2)
        # A change written straight into the strategy_params KV bucket reaches it too, merged.
        nc = await nats.connect(**connect_options(NatsConfig(url=url), env))
        try:
            kv = await nc.jetstream().key_value(KV_STRATEGY_PARAMS)
            stored = ParamsUpdate(strategy="demo", params={**PARAMS, "qty": "0.002", "start_after": 99})
            await kv.put(params_key("demo"), encode(stored))
        finally:
            await nc.close()
        while not any(e[0] == "on_strat_params_update" and e[1].get("start_after") == 99 and e[1].get("qty") == "0.002"
                      for e in read_log(callback_log)):
            assert time.monotonic() < deadline, "the KV params change did not arrive"
            await asyncio.sleep(0.2)
        interrupt(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    live = read_log(callback_log)
    assert ["command", "bump", ["1", "x"]] in live

    replay = backtest(DemoStrategy({"product": "BTC-USDT"}), DATA / TRADES, exchange="Sim", params=PARAMS)
    replayed = [list(e) for e in replay["log"]]
    names = ["on_framework_connected", "on_start", "on_instruments", "on_strat_params_update"]
    assert [e[0] for e in live[:4]] == [e[0] for e in replayed[:4]] == names
    assert order_view(live) == order_view(json.loads(json.dumps(replayed, default=str)))
    assert live[-2:] == [["on_stop", ""], ["on_framework_disconnected"]]
    # Answers from the venue through the router (live) and from the backtest's own books.
    wallet = next(e for e in live if e[0] == "on_wallet_info")
    assert wallet[2] == "USDT" and float(wallet[3]) > 0
    assert ["on_account_info", "Sim", "sim"] in live
    assert any(e[0] == FUNDING[1] for e in live) and FUNDING[0] in replayed
