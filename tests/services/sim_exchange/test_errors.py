"""Every venue error code the issue lists reaches ccxt as the exception class ccxt maps it to, and
the refused request leaves the account untouched."""
from __future__ import annotations

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tradebus.exchanges.sim import point_ccxt_at_sim

from .conftest import KEYS, balances, top


async def test_1021_timestamp_outside_recv_window(sim):
    for shift, message in ((120_000, "outside of the recvWindow"), (-5_000, "1000ms ahead")):
        ex = point_ccxt_at_sim(ccxt_async.binance({**KEYS, "options": {"timeDifference": shift}}), sim.url)
        try:
            with pytest.raises(ccxt.InvalidNonce, match=message):
                await ex.fetch_balance()
        finally:
            await ex.close()


async def test_1022_bad_signature(sim):
    before = balances(sim)
    ex = point_ccxt_at_sim(ccxt_async.binance({**KEYS, "secret": "not-the-secret"}), sim.url)
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await ex.create_order("BTC/USDT", "market", "buy", 0.01)
    finally:
        await ex.close()
    assert balances(sim) == before and not sim.account().open["spot"]


async def test_2015_unknown_api_key(sim):
    ex = point_ccxt_at_sim(ccxt_async.binance({**KEYS, "apiKey": "nobody"}), sim.url)
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await ex.fetch_balance()
    finally:
        await ex.close()


async def test_1013_filter_failures(spot, sim):
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    # ccxt rounds through precision itself, so the raw implicit endpoint sends what it is given
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await spot.private_post_order({**base, "quantity": "0.000001", "price": "60000"})
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await spot.private_post_order({**base, "quantity": "0.001", "price": "60000.001"})
    with pytest.raises(ccxt.BadRequest, match="MIN_NOTIONAL"):
        await spot.create_order("BTC/USDT", "limit", "buy", 0.00002, 60000)
    assert not sim.account().open["spot"]


async def test_2010_insufficient_balance(spot, sim):
    before = balances(sim)
    with pytest.raises(ccxt.InsufficientFunds):
        await spot.create_order("BTC/USDT", "limit", "buy", 10, 60000)
    with pytest.raises(ccxt.InsufficientFunds):
        await spot.create_order("BTC/USDT", "market", "sell", 5)
    assert balances(sim) == before


async def test_2011_and_2013_unknown_orders(spot):
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await spot.cancel_order("123456", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await spot.fetch_order("123456", "BTC/USDT")


async def test_1003_rate_limit_with_retry_after(spot, sim):
    sim.set_faults(rate_limit_rate=1.0, retry_after_s=7)
    try:
        with pytest.raises(ccxt.DDoSProtection, match="-1003"):
            await spot.fetch_order_book("BTC/USDT")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{sim.url}/api/v3/ping") as response:
                assert response.status == 429 and response.headers["Retry-After"] == "7"
                assert (await response.json())["code"] == -1003
    finally:
        sim.set_faults(rate_limit_rate=0.0, retry_after_s=1)
    assert await spot.fetch_order_book("BTC/USDT")


async def test_1121_invalid_symbol(spot):
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        await spot.public_get_depth({"symbol": "NOPEUSDT"})
    with pytest.raises(ccxt.BadSymbol, match="-1121"):
        await spot.private_get_openorders({"symbol": "NOPEUSDT"})


async def test_unserved_paths_answer_404_naming_the_path(spot):
    with pytest.raises(ccxt.BaseError, match="does not serve GET /sapi/v1/capital/config/getall"):
        await spot.sapi_get_capital_config_getall()


async def test_malformed_input_gets_a_clear_error_and_the_sim_keeps_serving(spot, sim):
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        await spot.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                       "quantity": "1e-3", "price": "60000"})
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        await spot.private_get_order({"symbol": "BTCUSDT"})
    async with aiohttp.ClientSession() as session:
        for path in ("/api/v3/depth?symbol=BTCUSDT&limit=abc", "/api/v3/klines?symbol=BTCUSDT&interval=7x",
                     "/api/v3/order?%zz=1", "/admin/faults"):
            async with session.get(sim.url + path) as response:
                assert 400 <= response.status < 500, path
        async with session.post(sim.url + "/admin/faults", json={"no_such_knob": 1}) as response:
            assert response.status == 400 and "no_such_knob" in (await response.json())["error"]
    assert (await spot.fetch_order_book("BTC/USDT", 5))["bids"][0][0] == float(top(sim)[0][0][0])
