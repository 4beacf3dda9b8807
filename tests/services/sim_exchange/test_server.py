"""The command line entry point, the ccxt URL helper and the admin endpoints."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import ccxt
import ccxt.pro as ccxtpro

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.services.sim_exchange.server import build_parser, config_from_args


def test_module_entry_point_serves_and_stops_on_sigterm(tmp_path, nats_server):
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.sim_exchange", "--host", "127.0.0.1",
                             "--port", "0", "--speed", "0", "--seed", "5", "--nats-url", nats_server.url],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("sim_exchange listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        with urllib.request.urlopen(url + "/api/v3/ping") as response:
            assert json.load(response) == {}
        with urllib.request.urlopen(url + "/admin/state") as response:
            state = json.load(response)
        assert state["speed"] == 0 and "sim-key" in state["accounts"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_bad_command_line_input_is_reported(tmp_path, nats_server):
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments: [{symbol: BTC/USDT, market: moon, tick_size: '1', step_size: '1', min_qty: '1'}]\n")
    result = subprocess.run([sys.executable, "-m", "tradebus.services.sim_exchange", "--port", "0",
                             "--sim-config", str(bad), "--nats-url", nats_server.url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "market" in result.stderr


def test_standalone_mode_serves_without_nats(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.sim_exchange", "--standalone", "--port", "0",
                             "--speed", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("sim_exchange listening on http://127.0.0.1:"), line
        with urllib.request.urlopen(line.split()[-1] + "/api/v3/ping") as response:
            assert json.load(response) == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_arguments_override_the_config():
    args = build_parser().parse_args(["--speed", "max", "--seed", "9"])
    config = config_from_args(args)
    assert (config.speed, config.seed) == ("max", 9)


def test_point_ccxt_at_sim_rewrites_every_api_url():
    base = "http://127.0.0.1:9999"
    rest = point_ccxt_at_sim(ccxt.binance(), base)
    assert rest.urls["api"]["public"] == base + "/api/v3"
    assert rest.urls["api"]["fapiPrivateV2"] == base + "/fapi/v2"
    assert rest.urls["api"]["sapi"] == base + "/sapi/v1"
    assert rest.options["fetchMarkets"]["types"] == ["spot", "linear"] and rest.options["fetchCurrencies"] is False
    usdm = point_ccxt_at_sim(ccxt.binanceusdm(), base)
    assert usdm.options["fetchMarkets"]["types"] == ["linear"]
    assert usdm.exceptions["exact"]["-2019"] is ccxt.InsufficientFunds
    pro = point_ccxt_at_sim(ccxtpro.binance(), base)
    ws = pro.urls["api"]["ws"]
    assert ws["spot"] == "ws://127.0.0.1:9999/stream/ws"
    assert ws["linear"] == "ws://127.0.0.1:9999/fstream/ws"
    assert ws["ws-api"] == {"spot": "ws://127.0.0.1:9999/ws-api/v3", "linear": "ws://127.0.0.1:9999/ws-fapi/v1",
                            "inverse": "ws://127.0.0.1:9999/ws-dapi/v1"}
    flat = []

    def walk(node):
        for value in node.values():
            walk(value) if isinstance(value, dict) else flat.append(value)
    walk(pro.urls["api"])
    assert flat and all(u.startswith(("http://127.0.0.1:9999/", "ws://127.0.0.1:9999/")) for u in flat)
