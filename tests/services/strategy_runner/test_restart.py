"""A restarted strategy_runner takes its positions from the strategy's past fills in ORDERS."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tradebus.bus.jetstream import declare_all
from tradebus.proto import Fill
from tradebus.proto.codec import encode
from tradebus.proto.subjects import order_event_subject

from .test_live_vs_backtest import wait_status

HERE = Path(__file__).parent


def fill(i: int, side: str, price: float, qty: float, session: str = "old") -> Fill:
    return Fill(venue="sim", strategy="restorer", symbol="BTC/USDT", client_order_id=f"restorer-{session}-{i}",
                exchange_order_id=f"x{i}", trade_id=f"{session}{i}", side=side, price=price, qty=qty,
                leaves_qty=0.0, cum_qty=qty, ts_event=i, ts_init=i)


async def test_positions_come_back_from_past_fills(bus, nats_server, tmp_path):
    await declare_all(bus.js)
    subject = order_event_subject("sim", "restorer")
    for i, (side, price, qty) in enumerate([("buy", 100.0, 0.03), ("buy", 110.0, 0.01), ("sell", 120.0, 0.02)]):
        await bus.js.publish(subject, encode(fill(i, side, price, qty)))
    config = {"services": {"strategy_runner": {"module": "tradebus.services.strategy_runner", "settings": {
        "status_interval": 0.2,
        "strategies": [{"name": "restorer", "class": f"{HERE / 'strategies.py'}:Flipper",
                        "symbols": ["BTC/USDT"]}]}}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradebus.services.strategy_runner", "--config", str(tmp_path / "cfg.yaml"),
         "--nats-url", nats_server.url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        # 0.03 @ 100 + 0.01 @ 110 - 0.02: 0.02 left at an average of 102.5
        await wait_status(bus, lambda st: "restorer: orders=0 fills=0" in st.message
                          and "BTC/USDT pos=0.02 " in st.message, "the restored position", proc)
        # A fill of an order sent before the restart still moves the position; a repeat does not.
        await bus.publish(subject, fill(7, "buy", 130.0, 0.01, session="older"))
        await bus.publish(subject, fill(0, "buy", 100.0, 0.03))
        await wait_status(bus, lambda st: st.counters.get("order_events_unknown", 0) >= 2
                          and "BTC/USDT pos=0.03 " in st.message, "the late fill", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        log = out.decode(errors="replace")
        print(log[-3000:])
    assert proc.returncode == 0
    assert "restorer: restored BTC/USDT position 0.02 @ 102.5 from 3 past fills" in log
