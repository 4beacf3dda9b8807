"""Unmodified ccxt.pro.binance / binanceusdm against the sim's market and user-data streams."""
from __future__ import annotations

import asyncio

import aiohttp
import ccxt
import ccxt.pro as ccxtpro
import pytest

from .conftest import D, balances, make, stepping, top, until


async def receive_stepping(sim, ws, timeout: float = 5.0) -> dict:
    """The next JSON frame, advancing the paused replay until one comes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            return await ws.receive_json(timeout=0.05)
        except TimeoutError:
            sim.step(20)
    raise AssertionError("no stream message")


def levels(pairs):
    return [[float(p), float(q)] for p, q in pairs]


async def test_watch_trades_are_the_venue_prints(sim, pro_spot):
    first = await stepping(sim, pro_spot.watch_trades("BTC/USDT"))
    seen = {t["id"]: t for t in first}
    while len(seen) < 30:
        for t in await stepping(sim, pro_spot.watch_trades("BTC/USDT")):
            seen[t["id"]] = t
    engine = {str(t.trade_id): t for t in sim.engine.trades[("spot", "BTCUSDT")]}
    for trade_id, trade in seen.items():
        printed = engine[trade_id]
        assert (trade["price"], trade["amount"]) == (float(printed.price), float(printed.qty))
        assert trade["side"] == ("sell" if printed.buyer_maker else "buy")


async def test_watch_order_book_tracks_the_engine_book(sim, pro_spot):
    book = await pro_spot.watch_order_book("BTC/USDT")
    engine_book = sim.engine.books[("spot", "BTCUSDT")]
    for _ in range(5):
        book = await stepping(sim, pro_spot.watch_order_book("BTC/USDT"), events=30)
    # stop the replay and let the last 100 ms diff arrive: then both books are the same
    await until(lambda: book["nonce"] == engine_book.update_id)
    bids, asks = top(sim, n=50)
    assert book["bids"][:50] == levels(bids) and book["asks"][:50] == levels(asks)


async def test_usdm_order_book_with_pu_chain_and_gap(sim, pro_usdm):
    book = await pro_usdm.watch_order_book("BTC/USDT:USDT")
    for _ in range(3):
        book = await stepping(sim, pro_usdm.watch_order_book("BTC/USDT:USDT"), events=20)
    engine_book = sim.engine.books[("usdm", "BTCUSDT")]
    await until(lambda: book["nonce"] == engine_book.update_id)
    bids, asks = top(sim, market="usdm", n=30)
    assert book["bids"][:30] == levels(bids) and book["asks"][:30] == levels(asks)
    sim.inject_depth_gap("BTCUSDT", "usdm")
    with pytest.raises(ccxt.ChecksumError):
        for _ in range(50):
            await stepping(sim, pro_usdm.watch_order_book("BTC/USDT:USDT"), events=20)
    book = await stepping(sim, pro_usdm.watch_order_book("BTC/USDT:USDT"), events=20)
    await until(lambda: book["nonce"] == engine_book.update_id)
    assert book["bids"][:30] == levels(top(sim, market="usdm", n=30)[0])


async def test_watch_orders_balance_and_my_trades_spot(sim, pro_spot, spot):
    orders = asyncio.ensure_future(pro_spot.watch_orders("BTC/USDT"))
    balance = asyncio.ensure_future(pro_spot.watch_balance())
    await until(lambda: sim.hub.user_conns.get(("sim-key", "spot")))
    price = float(top(sim)[0][3][0])
    placed = await spot.create_order("BTC/USDT", "limit", "buy", 0.01, price)
    seen = await asyncio.wait_for(orders, 5)
    assert [(o["id"], o["status"], o["price"]) for o in seen] == [(placed["id"], "open", price)]
    update = await asyncio.wait_for(balance, 5)
    free, locked = balances(sim)["USDT"]
    assert (update["USDT"]["free"], update["USDT"]["used"]) == (float(free), float(locked))
    mine = asyncio.ensure_future(pro_spot.watch_my_trades("BTC/USDT"))
    await asyncio.sleep(0)
    sold = await spot.create_order("BTC/USDT", "market", "sell", 0.01)
    trades = await asyncio.wait_for(mine, 5)
    fill = sim.account().orders[("spot", int(sold["id"]))].fills[0]
    assert trades[0]["id"] == str(fill.trade_id) and trades[0]["order"] == sold["id"]
    assert trades[0]["fee"]["cost"] == float(fill.commission)
    cancelled = asyncio.ensure_future(pro_spot.watch_orders("BTC/USDT"))
    await spot.cancel_order(placed["id"], "BTC/USDT")
    await until(lambda: cancelled.done() and cancelled.result()[-1]["status"] == "canceled"
                or cancelled.done() and any(o["status"] == "canceled" for o in cancelled.result()))


async def test_user_stream_rejects_a_bad_signature(sim):
    pro = make(ccxtpro.binance, sim, secret="wrong")
    try:
        # ccxt 4.5.90 raises the AuthenticationError, then trips over its own cleanup (KeyError)
        with pytest.raises((ccxt.AuthenticationError, KeyError)) as raised:
            await asyncio.wait_for(pro.watch_balance(), 5)
        error = raised.value if isinstance(raised.value, ccxt.AuthenticationError) else raised.value.__context__
        assert isinstance(error, ccxt.AuthenticationError) and "-1022" in str(error)
    finally:
        await pro.close()


def collect(watch, *args) -> tuple[list, asyncio.Task]:
    """Keep calling a ccxt.pro watch method in the background; results pile up in the list."""
    seen: list = []

    async def loop():
        while True:
            result = await watch(*args)
            seen.append(result)
    return seen, asyncio.ensure_future(loop())


async def test_watch_orders_positions_and_balance_usdm(sim, pro_usdm, usdm):
    orders, t1 = collect(pro_usdm.watch_orders, "BTC/USDT:USDT")
    positions, t2 = collect(pro_usdm.watch_positions, ["BTC/USDT:USDT"])
    balance, t3 = collect(pro_usdm.watch_balance)
    try:
        await until(lambda: sim.hub.user_conns.get(("sim-key", "usdm")))
        placed = await usdm.create_order("BTC/USDT:USDT", "market", "buy", 0.02)
        pos = sim.account().position("BTCUSDT")
        await until(lambda: any(o["id"] == placed["id"] and o["status"] == "closed" for batch in orders
                                for o in batch))
        await until(lambda: any(p["contracts"] == float(pos.amount) for batch in positions for p in batch))
        latest = [p for batch in positions for p in batch][-1]
        assert (latest["side"], latest["entryPrice"]) == ("long", float(pos.entry))
        await until(lambda: balance and balance[-1]["USDT"]["total"] == float(sim.account().futures["USDT"]))
        algo = await usdm.create_order("BTC/USDT:USDT", "market", "sell", 0.02, None,
                                       {"stopLossPrice": float(top(sim, market="usdm")[0][0][0]) - 500,
                                        "reduceOnly": True})
        await until(lambda: any(o["id"] == algo["id"] and o["triggerPrice"] == algo["triggerPrice"]
                                for batch in orders for o in batch))
    finally:
        for task in (t1, t2, t3):
            task.cancel()


async def test_watch_ohlcv_and_bids_asks(sim, pro_spot):
    candles = await stepping(sim, pro_spot.watch_ohlcv("BTC/USDT", "1m"), events=20)
    kline = sim.engine.klines[("spot", "BTCUSDT")][-1]
    assert candles[-1][0] == kline.open_time and candles[-1][2] <= float(kline.high)
    quotes = await stepping(sim, pro_spot.watch_bids_asks(["BTC/USDT"]), events=5)
    assert quotes["BTC/USDT"]["bid"] < quotes["BTC/USDT"]["ask"]


async def test_combined_streams_and_subscribe_messages(sim):
    base = sim.url.replace("http", "ws")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(base + "/stream/stream?streams=btcusdt@trade/ethusdt@depth@100ms") as ws:
            names = set()
            while len(names) < 2:
                msg = await receive_stepping(sim, ws)
                assert set(msg) == {"stream", "data"}
                names.add(msg["stream"])
            assert names == {"btcusdt@trade", "ethusdt@depth@100ms"}
        async with session.ws_connect(base + "/fstream/public/ws/0") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                                "id": 7})
            assert await ws.receive_json(timeout=5) == {"result": None, "id": 7}
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
            assert await ws.receive_json(timeout=5) == {"result": ["btcusdt@aggTrade", "btcusdt@bookTicker"],
                                                        "id": 8}
            await ws.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 9})
            assert await ws.receive_json(timeout=5) == {"result": None, "id": 9}
            await ws.send_json({"method": "SUBSCRIBE", "params": ["nosuchusdt@trade"], "id": 10})
            assert (await ws.receive_json(timeout=5))["error"]["code"] == 2
            await ws.send_str("not json")
            assert "error" in await ws.receive_json(timeout=5)
            while True:
                msg = await receive_stepping(sim, ws)
                if msg.get("e") == "aggTrade":
                    break
            assert msg["s"] == "BTCUSDT" and D(msg["p"]) > 0


def user_conns(sim, market: str) -> set:
    """The sim's connections that get sim-key's ``market`` user events, by listen key (not a WS-API subscription)."""
    return {conn for conn, sub in sim.hub.user_conns.get(("sim-key", market), []) if sub is None}


async def test_futures_listen_key_stream(sim, usdm):
    key = (await usdm.fapiPrivatePostListenKey())["listenKey"]
    url = sim.url.replace("http", "ws") + f"/fstream/private/ws?listenKey={key}"
    # an earlier test's user stream may still be registered while the sim closes it: wait for this one
    before = user_conns(sim, "usdm")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            await until(lambda: user_conns(sim, "usdm") - before)
            # one execution (NEW, then FILLED): no more than the best ask holds, which depends on how
            # far earlier tests stepped the replay
            qty = min(D("0.01"), top(sim, market="usdm", n=1)[1][0][1])
            await usdm.create_order("BTC/USDT:USDT", "market", "buy", float(qty))
            events = [await ws.receive_json(timeout=5) for _ in range(3)]
    kinds = [e["e"] for e in events]
    assert kinds == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
    assert (events[0]["o"]["X"], events[1]["o"]["X"]) == ("NEW", "FILLED")
    pos = sim.account().position("BTCUSDT")
    assert events[2]["a"]["P"][0]["pa"] == f"{pos.amount:.3f}"


async def test_spot_listen_key_stream(sim, spot):
    key = (await spot.publicPostUserDataStream())["listenKey"]
    before = user_conns(sim, "spot")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sim.url.replace("http", "ws") + f"/stream/ws/{key}") as ws:
            await until(lambda: user_conns(sim, "spot") - before)
            placed = await spot.create_order("BTC/USDT", "limit", "buy", 0.01, float(top(sim)[0][2][0]))
            events = [await ws.receive_json(timeout=5) for _ in range(2)]
            await spot.cancel_order(placed["id"], "BTC/USDT")
            events += [await ws.receive_json(timeout=5) for _ in range(2)]
    assert [e["e"] for e in events] == ["executionReport", "outboundAccountPosition", "executionReport",
                                        "outboundAccountPosition"]
    assert (events[0]["x"], events[0]["i"]) == ("NEW", int(placed["id"])) and events[2]["X"] == "CANCELED"
    free, locked = balances(sim)["USDT"]
    assert (events[3]["B"][0]["a"], events[3]["B"][0]["f"], events[3]["B"][0]["l"]) == (
        "USDT", f"{free:.8f}", f"{locked:.8f}")


def test_trade_stream_bytes_are_the_venue_payloads_encoded(sim):
    """The pre-formatted trade/aggTrade bytes equal the payload dicts encoded as JSON (spot and USD-M)."""
    import msgspec

    from tradebus.services.sim_exchange.engine import PublicTrade
    from tradebus.services.sim_exchange.ws import TradeStreams, agg_trade_payload, trade_payload

    for key in (("spot", "BTCUSDT"), ("usdm", "BTCUSDT"), ("spot", "ETHUSDT")):
        inst = sim.engine.instruments[key]
        streams = TradeStreams(inst)
        for i, (ticks, lots, maker) in enumerate([(6183763, 2000, True), (6183763, 2000, False), (1, 1, True),
                                                  (6183763, 123456789, False), (99999999, 7, True)]):
            t = PublicTrade(3735683259 + i, D(ticks) * inst.tick, D(lots) * inst.step, 1723161255342 + i, maker)
            for _ in range(2):  # the second time from the text cache
                assert streams.trade_bytes(t) == msgspec.json.encode(trade_payload(inst, t))
                assert streams.agg_bytes(t) == msgspec.json.encode(agg_trade_payload(inst, t))
        assert streams.trade == key[1].lower() + "@trade" and streams.agg == key[1].lower() + "@aggTrade"
