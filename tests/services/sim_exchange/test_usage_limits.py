"""Binance's usage headers and limits on the sim: X-MBX-USED-WEIGHT-1M on every answer, the
account's order counts on order answers, and (when configured) 429 -1003 / 429 -1015 / 418 bans,
seen through unmodified ccxt."""
from __future__ import annotations

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tradebus.services.sim_exchange.limits import Usage, request_weight
from tradebus.services.sim_exchange.settings import MarketLimits, UsageLimits

from .conftest import make


class FrozenClock:
    """Mid-window wall time that moves only when told (no window boundary during a test)."""

    def __init__(self):
        self.now = 1_764_000_005.0  # 5 s into a 10 s window and a minute

    def __call__(self):
        return self.now


def headers(ex) -> dict[str, str]:
    return {k.lower(): v for k, v in ex.last_response_headers.items()}


@pytest.fixture
def clock(sim):
    """The sim's usage counted on a frozen clock, with limits set per test; restored after."""
    original = sim.venue.usage
    frozen = FrozenClock()

    def limit(**limits):
        sim.venue.usage = Usage(UsageLimits(**limits), clock=frozen)
        return frozen
    limit()
    yield limit
    sim.venue.usage = original


async def test_weight_and_order_count_headers_as_binance_sends_them(sim, clock):
    spot, usdm = make(ccxt_async.binance, sim), make(ccxt_async.binanceusdm, sim)
    spot.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    usdm.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    try:
        await spot.load_markets()  # also asks the USD-M host: the headers of the last answer are its budget
        await spot.fetch_time()
        base = int(headers(spot)["x-mbx-used-weight-1m"])
        assert base == sim.venue.usage.used_weight("spot", "127.0.0.1")
        await spot.fetch_open_orders("BTC/USDT")
        assert int(headers(spot)["x-mbx-used-weight-1m"]) == base + 6
        await spot.fetch_open_orders()  # every symbol: 80
        assert int(headers(spot)["x-mbx-used-weight-1m"]) == base + 86
        await spot.create_order("BTC/USDT", "market", "buy", 0.001)
        h = headers(spot)
        assert (h["x-mbx-used-weight-1m"], h["x-mbx-order-count-10s"], h["x-mbx-order-count-1d"]) == \
            (str(base + 87), "1", "1")
        assert sim.venue.usage.order_count("spot", "sim-key", "orders_1d") == 1
        # USD-M: its own weight budget; a new order weighs 0 there and counts per 10 s and per minute
        await usdm.load_markets()
        await usdm.fetch_time()
        weight = int(headers(usdm)["x-mbx-used-weight-1m"])
        await usdm.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
        h = headers(usdm)
        assert (int(h["x-mbx-used-weight-1m"]), h["x-mbx-order-count-10s"], h["x-mbx-order-count-1m"]) == \
            (weight, "1", "1")
        await usdm.create_order("BTC/USDT:USDT", "market", "sell", 0.01, params={"reduceOnly": True})
        assert headers(usdm)["x-mbx-order-count-10s"] == "2"
    finally:
        await spot.close()
        await usdm.close()


async def test_weight_limit_answers_429_then_418(sim, clock):
    spot = make(ccxt_async.binance, sim)
    try:
        await spot.load_markets()
        frozen = clock(spot=MarketLimits(request_weight_1m=30), ban_after=2, ban_s=90)  # counts start at 0
        for _ in range(5):
            await spot.fetch_open_orders("BTC/USDT")  # 6 each: 30
        with pytest.raises(ccxt.DDoSProtection, match="429.*-1003"):
            await spot.fetch_open_orders("BTC/USDT")
        assert headers(spot)["retry-after"] == "55"  # to the end of the minute
        assert headers(spot)["x-mbx-used-weight-1m"] == "30"
        with pytest.raises(ccxt.DDoSProtection, match="429.*-1003"):
            await spot.fetch_time()  # weight 1 no longer fits either: the second refusal bans the IP
        with pytest.raises(ccxt.DDoSProtection, match="418.*-1003.*banned until"):
            await spot.fetch_time()
        assert sim.venue.usage.counters == {"limit_429": 2, "limit_418": 1}
        frozen.now += 60  # a new minute, the ban still on
        with pytest.raises(ccxt.DDoSProtection, match="418.*-1003.*banned until"):
            await spot.fetch_time()
        frozen.now += 30
        await spot.fetch_time()
    finally:
        await spot.close()


async def test_order_count_limits_answer_1015(sim, clock):
    spot = make(ccxt_async.binance, sim)
    try:
        await spot.load_markets()
        frozen = clock(spot=MarketLimits(orders_10s=2, orders_1d=3))
        for _ in range(2):
            await spot.create_order("BTC/USDT", "market", "buy", 0.001)
        with pytest.raises(ccxt.DDoSProtection, match="429.*-1015.*2 orders per 10 SECOND"):
            await spot.create_order("BTC/USDT", "market", "buy", 0.001)
        await spot.fetch_open_orders("BTC/USDT")  # other requests still go
        frozen.now += 10
        await spot.create_order("BTC/USDT", "market", "sell", 0.001)
        assert headers(spot)["x-mbx-order-count-1d"] == "3"
        frozen.now += 10
        with pytest.raises(ccxt.DDoSProtection, match="-1015.*3 orders per 1 DAY"):
            await spot.create_order("BTC/USDT", "market", "sell", 0.001)
        assert sim.venue.usage.order_count("spot", "sim-key", "orders_1d") == 3
    finally:
        await spot.close()


def test_documented_weights():
    assert request_weight("spot", "GET", "/api/v3/openOrders", {}) == 80
    assert request_weight("spot", "GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}) == 6
    assert request_weight("spot", "GET", "/api/v3/order", {}) == 4
    assert request_weight("spot", "POST", "/api/v3/order", {}) == 1
    assert request_weight("spot", "GET", "/api/v3/depth", {"limit": "1000"}) == 50
    assert request_weight("usdm", "POST", "/fapi/v1/order", {}) == 0
    assert request_weight("usdm", "GET", "/fapi/v1/openOrders", {}) == 40
    assert request_weight("usdm", "GET", "/fapi/v2/account", {}) == 5
