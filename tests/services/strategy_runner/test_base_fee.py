"""A spot buy whose fee the venue took in the base asset: the strategy holds what the account got,
so its close_position sells that, not the gross quantity (issue 12)."""
from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import msgspec
import pytest

from tradebus.bus.jetstream import declare_all
from tradebus.bus.service import ServiceContext
from tradebus.config import DeploymentConfig
from tradebus.proto import Fill, NewOrder, OrderAck, OrderRequest, Side, Trade
from tradebus.proto.codec import encode
from tradebus.proto.subjects import order_event_subject, order_request_wildcard
from tradebus.services.strategy_runner.host import StrategyHost
from tradebus.services.strategy_runner.settings import StrategyRunnerSettings

HERE = Path(__file__).parent
FEE = 0.00001  # BTC: 0.1% of 0.01


def host_for(bus, name: str) -> StrategyHost:
    settings = msgspec.convert({"strategies": [{"name": name, "class": f"{HERE / 'strategies.py'}:BuyThenClose",
                                                "venue": "sim", "symbols": ["BTC/USDT"]}]}, StrategyRunnerSettings)
    svc = ServiceContext("strategy_runner", argparse.Namespace(instance="t"), DeploymentConfig(), bus,
                         logging.getLogger("test"))
    return StrategyHost(svc, settings)


def fill(name: str, coid: str, trade_id: str, side: str = "buy", qty: float = 0.01, fee: float = FEE,
         currency: str = "BTC") -> Fill:
    return Fill(venue="sim", strategy=name, symbol="BTC/USDT", client_order_id=coid, exchange_order_id="x1",
                trade_id=trade_id, side=side, price=60_000.0, qty=qty, leaves_qty=0.0, cum_qty=qty, fee=fee,
                fee_currency=currency, ts_event=1, ts_init=1)


async def test_close_position_sells_the_buy_net_of_its_base_asset_fee(bus):
    await declare_all(bus.js)
    requests: list = []
    sub = await bus.subscribe(order_request_wildcard("sim"), OrderRequest, lambda req, _msg: _append(requests, req))
    host = host_for(bus, "netbuyer")
    await host.start()
    await host.on_market_data(Trade(venue="sim", symbol="BTC/USDT", price=60_000.0, qty=1.0, side="sell",
                                    trade_id="1", ts_event=1, ts_recv=1))
    await _until(lambda: len(requests) == 1)
    buy = requests[0]
    assert isinstance(buy, NewOrder) and buy.qty == 0.01
    await host.on_order_event(OrderAck(venue="sim", strategy="netbuyer", symbol="BTC/USDT",
                                       client_order_id=buy.client_order_id, exchange_order_id="x1", side="buy",
                                       order_type="market", qty=0.01, ts_init=1))
    await host.on_order_event(fill("netbuyer", buy.client_order_id, "t1"))
    await _until(lambda: len(requests) == 2)
    close = requests[1]
    assert close.order_type == "close_position" and close.side is Side.SELL
    assert close.qty == pytest.approx(0.01 - FEE)
    summary = host.runner.summary()[0]["symbols"]["BTC/USDT"]
    assert summary["position"] == pytest.approx(0.01 - FEE) and summary["fees"] == pytest.approx(FEE * 60_000.0)
    await sub.unsubscribe()


async def test_restored_positions_are_net_of_base_asset_fees(bus):
    await declare_all(bus.js)
    subject = order_event_subject("sim", "netrestorer")
    await bus.js.publish(subject, encode(fill("netrestorer", "netrestorer-old-1", "r1")))
    await bus.js.publish(subject, encode(fill("netrestorer", "netrestorer-old-2", "r2", side="sell", qty=0.004,
                                              fee=0.24, currency="USDT")))
    host = host_for(bus, "netrestorer")
    await host.start()
    summary = host.runner.summary()[0]["symbols"]["BTC/USDT"]
    assert summary["position"] == pytest.approx(0.01 - FEE - 0.004)
    # a late fill of an order of the previous session moves it the same way
    await host.on_order_event(fill("netrestorer", "netrestorer-old-3", "r3"))
    summary = host.runner.summary()[0]["symbols"]["BTC/USDT"]
    assert summary["position"] == pytest.approx(2 * (0.01 - FEE) - 0.004)


async def _append(out: list, item) -> None:
    out.append(item)


async def _until(check, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)
