"""Order entry over the WS-API: unmodified ccxt.pro ``*_ws`` methods against the sim, checked
against the engine's own books and accounts."""
from __future__ import annotations

import asyncio

import ccxt
import ccxt.pro as ccxtpro
import pytest

from .conftest import D, balances, make, top


def resting_bid(sim, market: str = "spot", symbol: str = "BTCUSDT") -> float:
    bids, _ = top(sim, symbol, market)
    return round(float(bids[-1][0]) * 0.95, 1)


async def test_spot_place_query_cancel_over_wsapi(pro_spot, sim):
    price = resting_bid(sim)
    before = sim.venue.counters["wsapi_requests"]
    order = await pro_spot.create_order_ws("BTC/USDT", "limit", "buy", 0.002, price, {"clientOrderId": "wsapi-1"})
    assert order["status"] == "open" and order["clientOrderId"] == "wsapi-1" and order["price"] == price
    venue = sim.engine.find_order(sim.account(), sim.instrument("BTCUSDT", "spot"), int(order["id"]), None)
    assert venue is not None and venue.qty == D("0.002") and venue.price == D(str(price))
    assert balances(sim)["USDT"][1] >= D(str(price)) * D("0.002")  # the funds are locked

    fetched = await pro_spot.fetch_order_ws(order["id"], "BTC/USDT")
    assert fetched["id"] == order["id"] and fetched["status"] == "open"
    assert order["id"] in [o["id"] for o in await pro_spot.fetch_open_orders_ws("BTC/USDT")]

    cancelled = await pro_spot.cancel_order_ws(order["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    assert not venue.is_open
    assert sim.venue.counters["wsapi_requests"] - before == 4


async def test_spot_market_order_fills_like_rest(pro_spot, sim):
    _, asks = top(sim)
    order = await pro_spot.create_order_ws("BTC/USDT", "market", "buy", 0.001)
    assert order["status"] == "closed" and order["filled"] == 0.001
    assert order["average"] == float(asks[0][0])  # the best ask covers 0.001 in the seeded book


async def test_usdm_place_modify_and_conditional_over_wsapi(pro_usdm, sim):
    price = resting_bid(sim, "usdm")
    order = await pro_usdm.create_order_ws("BTC/USDT:USDT", "limit", "buy", 0.01, price)
    assert order["status"] == "open"
    edited = await pro_usdm.edit_order_ws(order["id"], "BTC/USDT:USDT", "limit", "buy", 0.02, price - 10)
    assert edited["amount"] == 0.02 and edited["price"] == price - 10
    stop = await pro_usdm.create_order_ws("BTC/USDT:USDT", "market", "sell", 0.01, None,
                                          {"stopLossPrice": round(price * 0.9, 1)})
    assert stop["id"] and sim.account().open_algo  # a conditional order is an algo order on USD-M
    await pro_usdm.cancel_order_ws(order["id"], "BTC/USDT:USDT")
    await pro_usdm.cancel_order_ws(stop["id"], "BTC/USDT:USDT", {"trigger": True})
    assert not sim.account().open["usdm"] and not sim.account().open_algo


async def test_wsapi_errors_map_to_ccxt_exceptions_and_change_nothing(pro_spot, sim):
    before = balances(sim)
    with pytest.raises(ccxt.InsufficientFunds):
        await pro_spot.create_order_ws("BTC/USDT", "limit", "buy", 1000, resting_bid(sim))
    with pytest.raises(ccxt.OrderNotFound):
        await pro_spot.cancel_order_ws("123456789", "BTC/USDT")
    bad = make(ccxtpro.binance, sim, secret="not-the-secret")
    try:
        await bad.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await bad.create_order_ws("BTC/USDT", "market", "buy", 0.001)
    finally:
        await bad.close()
    assert balances(sim) == before
    # the connection survived the refusals
    order = await pro_spot.create_order_ws("BTC/USDT", "limit", "buy", 0.001, resting_bid(sim))
    await pro_spot.cancel_order_ws(order["id"], "BTC/USDT")



async def test_wsapi_fault_knobs_reach_ccxt_as_its_exceptions(pro_spot, sim):
    try:
        sim.set_faults(rate_limit_rate=1.0)
        with pytest.raises(ccxt.RateLimitExceeded, match="-1003"):
            await pro_spot.create_order_ws("BTC/USDT", "market", "buy", 0.001)
        sim.set_faults(rate_limit_rate=0.0, maintenance=True)
        with pytest.raises(ccxt.OperationFailed, match="maintenance"):
            await pro_spot.create_order_ws("BTC/USDT", "market", "buy", 0.001)
        sim.set_faults(maintenance=False, timeout_rate=1.0)
        with pytest.raises(asyncio.TimeoutError):  # never answered
            await asyncio.wait_for(pro_spot.create_order_ws("BTC/USDT", "market", "buy", 0.001), 0.3)
    finally:
        sim.set_faults(rate_limit_rate=0.0, maintenance=False, timeout_rate=0.0)
    assert sim.venue.counters["wsapi_faults"] >= 3
    assert not [o for o in sim.account().orders.values() if o.is_open]
