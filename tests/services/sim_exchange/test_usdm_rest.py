"""Unmodified ccxt.binanceusdm against the sim: positions, leverage, margin, reduce-only and the
conditional (algo) orders, checked against the engine's account."""
from __future__ import annotations

import ccxt
import pytest

from .conftest import D, last_price, sweep, top

SYMBOL = "BTC/USDT:USDT"
KEY = ("usdm", "BTCUSDT")


def position(sim, key: str = "sim-key"):
    return sim.account(key).position("BTCUSDT")


def wallet(sim, key: str = "sim-key"):
    return sim.account(key).futures["USDT"]


async def test_load_markets_and_recorded_book(usdm, sim):
    assert list(usdm.markets) == ["BTC/USDT:USDT"]
    market = usdm.market(SYMBOL)
    assert (market["swap"], market["linear"], market["contractSize"]) == (True, True, 1.0)
    assert (market["precision"]["price"], market["precision"]["amount"]) == (0.1, 0.001)
    book = await usdm.fetch_order_book(SYMBOL, 10)
    assert book["bids"][0] == [61800.2, 2.909]  # level 0 of the recorded USD-M snapshot
    bids, asks = top(sim, market="usdm", n=10)
    assert book["asks"] == [[float(p), float(q)] for p, q in asks]
    assert book["nonce"] == sim.engine.books[KEY].update_id


async def test_leverage_and_a_market_buy_open_a_position(usdm, sim):
    await usdm.set_leverage(10, SYMBOL)
    assert sim.account().leverage_of("BTCUSDT") == 10
    expected = sweep(top(sim, market="usdm")[1], D("0.05"))
    order = await usdm.create_order(SYMBOL, "market", "buy", 0.05)
    assert (order["status"], order["filled"]) == ("closed", 0.05)
    avg = sum(p * q for p, q in expected) / D("0.05")
    pos = position(sim)
    assert pos.amount == D("0.05") and pos.entry == avg
    fee = sum((p * q * D("0.0005")).quantize(D("1e-8")) for p, q in expected)
    assert wallet(sim) == D(100000) - fee
    [ccxt_pos] = await usdm.fetch_positions([SYMBOL])
    assert (ccxt_pos["side"], ccxt_pos["contracts"], ccxt_pos["entryPrice"]) == ("long", 0.05, float(avg))
    mark = sim.engine.mark_price(sim.instrument("BTCUSDT", "usdm"))
    assert ccxt_pos["initialMargin"] == pytest.approx(float(D("0.05") * mark / 10))
    balance = await usdm.fetch_balance()
    state = sim.engine.futures_state(sim.account())
    assert balance["USDT"]["total"] == float(state["margin_balance"])
    assert balance["USDT"]["free"] == float(state["available"].quantize(D("1e-8")))


async def test_limit_order_modify_and_cancel(usdm, sim):
    price = float(top(sim, market="usdm")[0][5][0])
    order = await usdm.create_order(SYMBOL, "limit", "buy", 0.01, price)
    assert order["status"] == "open" and order["price"] == price
    edited = await usdm.edit_order(order["id"], SYMBOL, "limit", "buy", 0.02, price - 10)
    assert edited["id"] == order["id"] and (edited["amount"], edited["price"]) == (0.02, price - 10)
    engine_order = sim.account().orders[("usdm", int(order["id"]))]
    assert (engine_order.qty, engine_order.price) == (D("0.02"), D(str(price - 10)))
    assert [o["id"] for o in await usdm.fetch_open_orders(SYMBOL)] == [order["id"]]
    assert (await usdm.fetch_order(order["id"], SYMBOL))["status"] == "open"
    assert (await usdm.cancel_order(order["id"], SYMBOL))["status"] == "canceled"
    assert not sim.account().open["usdm"]


async def test_reduce_only_and_margin_errors(usdm, sim):
    with pytest.raises(ccxt.InvalidOrder, match="ReduceOnly Order is rejected"):
        await usdm.create_order(SYMBOL, "market", "buy", 0.01, None, {"reduceOnly": True})
    with pytest.raises(ccxt.InsufficientFunds, match="Margin is insufficient"):
        await usdm.create_order(SYMBOL, "limit", "buy", 100, 60000)
    with pytest.raises(ccxt.InvalidOrder, match="notional must be no smaller than 100"):
        await usdm.create_order(SYMBOL, "limit", "buy", 0.001, 60000)
    assert position(sim).amount == D("0.05") and not sim.account().open["usdm"]


async def test_conditional_orders_trigger_and_close_the_position(usdm, mover_usdm, sim):
    last = last_price(sim, market="usdm")
    stop = await usdm.create_order(SYMBOL, "market", "sell", 0.01, None,
                                   {"stopLossPrice": float(last - 3), "reduceOnly": True})
    take = await usdm.create_order(SYMBOL, "market", "sell", 0.01, None,
                                   {"takeProfitPrice": float(last + 3), "reduceOnly": True})
    trail = await usdm.create_order(SYMBOL, "market", "sell", 0.01, None,
                                    {"trailingPercent": 0.1, "reduceOnly": True})
    close = await usdm.create_order(SYMBOL, "market", "sell", None, None,
                                    {"triggerPrice": float(last - 4), "closePosition": True})
    infos = [o["info"] for o in (stop, take, trail, close)]
    assert [i["orderType"] for i in infos] == ["STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET",
                                               "STOP_MARKET"]
    assert infos[2]["callbackRate"] == "0.1" and infos[3]["closePosition"] is True
    listed = await usdm.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert sorted(o["id"] for o in listed) == sorted(o["id"] for o in (stop, take, trail, close))
    assert not await usdm.fetch_open_orders(SYMBOL)  # regular orders: none
    # another account buys up through the asks: the take-profit fires, the trailing stop arms higher
    await mover_usdm.create_order(SYMBOL, "market", "buy", 20)
    fetched = await usdm.fetch_order(take["id"], SYMBOL, {"trigger": True})
    assert fetched["status"] == "closed" and fetched["info"]["actualOrderId"]
    assert position(sim).amount == D("0.04")
    high = sim.account().algo_orders[int(trail["id"])].trail_extreme
    assert high > last
    # then sells down through the bids: trailing stop, stop loss and close-position all fire
    printed = len(sim.engine.trades[KEY])
    await mover_usdm.create_order(SYMBOL, "market", "sell", 250)
    lowest = min(t.price for t in list(sim.engine.trades[KEY])[printed:])
    assert lowest <= min(high * D("0.999"), last - 4)
    statuses = [(await usdm.fetch_order(o["id"], SYMBOL, {"trigger": True}))["status"]
                for o in (stop, trail, close)]
    assert statuses == ["closed", "closed", "closed"]
    assert position(sim).amount == 0 and not sim.account().open_algo
    assert all(p["contracts"] == 0 for p in await usdm.fetch_positions([SYMBOL]))
    trades = await usdm.fetch_my_trades(SYMBOL)
    assert len(trades) == len(sim.account().fills["usdm"])
    assert sum(t["info"]["realizedPnl"] != "0.00000000" for t in trades) >= 4


async def test_cancel_algo_and_cancel_all(usdm, sim):
    await usdm.create_order(SYMBOL, "market", "buy", 0.01)
    last = last_price(sim, market="usdm")
    algo = await usdm.create_order(SYMBOL, "market", "sell", 0.01, None,
                                   {"stopLossPrice": float(last - 50), "reduceOnly": True})
    await usdm.create_order(SYMBOL, "market", "sell", 0.01, None,
                            {"stopLossPrice": float(last - 60), "reduceOnly": True})
    await usdm.create_order(SYMBOL, "limit", "buy", 0.01, float(last - 100))
    await usdm.cancel_order(algo["id"], SYMBOL, {"trigger": True})
    assert sim.account().algo_orders[int(algo["id"])].status == "CANCELED"
    with pytest.raises(ccxt.OrderNotFound):
        await usdm.cancel_order(algo["id"], SYMBOL, {"trigger": True})
    await usdm.cancel_all_orders(SYMBOL)
    assert not sim.account().open["usdm"] and len(sim.account().open_algo) == 1
    await usdm.cancel_all_orders(SYMBOL, {"trigger": True})
    assert not sim.account().open_algo
    assert (await usdm.fetch_order(algo["id"], SYMBOL, {"trigger": True}))["status"] == "canceled"
