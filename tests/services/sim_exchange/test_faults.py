"""Each fault knob, set in config or at run time, and how unmodified ccxt / ccxt.pro react."""
from __future__ import annotations

import asyncio
import random
import time

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.services.sim_exchange.settings import replace_faults
from tradebus.services.sim_exchange.testing import running_sim

from .conftest import KEYS, make, sim_config, stepping, top, until


@pytest.fixture(autouse=True)
def clear_faults(sim):
    yield
    sim.set_faults(**{name: 0 for name in ("latency_ms", "latency_jitter_ms", "error_rate", "timeout_rate",
                                           "rate_limit_rate", "request_limit_per_minute", "ban_rate", "answer_lost_rate",
                                           "error_after_accept_rate",
                                           "ws_drop_after_messages", "depth_gap_every")}, maintenance=False)


async def test_added_latency_delays_answers_and_trips_ccxt_timeouts(sim):
    sim.set_faults(latency_ms=400)
    ex = make(ccxt_async.binance, sim, timeout=150)
    slow = make(ccxt_async.binance, sim)
    try:
        with pytest.raises(ccxt.RequestTimeout):
            await ex.fetch_time()
        started = time.monotonic()
        assert await slow.fetch_time() > 0
        assert time.monotonic() - started >= 0.4  # the delay is a floor the sim imposes, not a speed claim
    finally:
        await ex.close()
        await slow.close()


async def test_share_of_5xx_is_seeded(sim, spot):
    sim.set_faults(error_rate=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable, match="503"):
        await spot.fetch_order_book("BTC/USDT")
    sim.set_faults(error_rate=0.5)
    sim.faults.rng.seed(1234)
    outcomes = []
    for _ in range(20):
        try:
            await spot.fetch_time()
            outcomes.append(True)
        except ccxt.ExchangeNotAvailable:
            outcomes.append(False)
    reference = random.Random(1234)
    assert outcomes == [not reference.random() < 0.5 for _ in range(20)]
    assert 0 < outcomes.count(False) < 20


async def test_timeouts_are_never_answered(sim):
    sim.set_faults(timeout_rate=1.0)
    ex = make(ccxt_async.binance, sim, timeout=200)
    try:
        before = sim.counters["faults_timeouts"]
        with pytest.raises(ccxt.RequestTimeout):
            await ex.fetch_time()
        assert sim.counters["faults_timeouts"] == before + 1
    finally:
        await ex.close()


async def test_ban_answers_418(sim, spot):
    sim.set_faults(ban_rate=1.0)
    with pytest.raises(ccxt.DDoSProtection, match="banned"):
        await spot.fetch_time()
    assert sim.counters["faults_418"] >= 1


async def test_lost_answer_leaves_an_order_the_client_never_heard_of(sim):
    """The venue takes the order, the answer never arrives: ccxt times out, yet the order
    exists (and is found by its client id), which is what the router must cope with."""
    ex = make(ccxt_async.binance, sim, timeout=300)
    try:
        await ex.load_markets()
        sim.set_faults(answer_lost_rate=1.0)
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order("BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "lost-1"})
        sim.set_faults(answer_lost_rate=0)
        assert sim.counters["faults_lost_answers"] == 1
        found = await ex.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "lost-1"})
        assert found["clientOrderId"] == "lost-1" and found["status"] == "closed"
        records = sim.records()
        assert [o["client_id"] for o in records["orders"]].count("lost-1") == 1
        assert [f["client_id"] for f in records["fills"]].count("lost-1") >= 1
    finally:
        await ex.close()


async def test_5xx_after_accept_leaves_an_order_behind_the_error(sim, spot):
    sim.set_faults(error_after_accept_rate=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable, match="503"):
        await spot.create_order("BTC/USDT", "market", "buy", 0.001, params={"newClientOrderId": "err-1"})
    sim.set_faults(error_after_accept_rate=0)
    found = await spot.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "err-1"})
    assert found["clientOrderId"] == "err-1" and found["status"] == "closed"


async def test_rate_limit_budget_per_minute(sim, spot):
    sim.set_faults(request_limit_per_minute=3)
    sim.faults.window.clear()
    for _ in range(3):
        await spot.fetch_time()
    with pytest.raises(ccxt.DDoSProtection):
        await spot.fetch_time()


async def test_maintenance_mode(sim, spot):
    sim.set_faults(maintenance=True)
    with pytest.raises(ccxt.OnMaintenance):
        await spot.fetch_balance()
    pro = make(ccxtpro.binance, sim)
    try:
        with pytest.raises(ccxt.NetworkError):
            await pro.watch_trades("BTC/USDT")
    finally:
        await pro.close()
    sim.set_faults(maintenance=False)
    assert (await spot.fetch_balance())["USDT"]["total"] > 0


async def test_dropped_websocket_connections(sim, pro_spot):
    watcher = asyncio.ensure_future(pro_spot.watch_trades("BTC/USDT"))
    await until(lambda: sim.hub.subs.get(("spot", "btcusdt@trade")))
    assert await sim.drop_ws("/stream") == 1
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(watcher, 5)
    # ccxt.pro reconnects on the next call and the stream flows again
    printed = sim.engine.trades[("spot", "BTCUSDT")]
    last_id = printed[-1].trade_id if printed else 0
    again = asyncio.ensure_future(pro_spot.watch_trades("BTC/USDT"))
    await until(again.done, step=lambda: sim.step(20))
    assert int(again.result()[-1]["id"]) > last_id


async def test_drop_after_n_messages(sim, pro_spot):
    sim.set_faults(ws_drop_after_messages=4)
    url = sim.url.replace("http", "ws") + "/stream/ws"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1})
            frames = []
            while True:
                try:
                    msg = await ws.receive(timeout=0.05)
                except TimeoutError:
                    assert len(frames) <= 4
                    sim.step(10)
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frames.append(msg.json())
    assert len(frames) == 4 and frames[0] == {"result": None, "id": 1}
    assert ws.close_code == 1011
    # ccxt.pro: only the subscription answer gets through, the pending watch fails
    sim.set_faults(ws_drop_after_messages=1)
    watcher = asyncio.ensure_future(pro_spot.watch_trades("BTC/USDT"))
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(watcher, 5)


async def test_depth_gap_forces_a_resync(sim, pro_spot):
    book = await pro_spot.watch_order_book("BTC/USDT")
    book = await stepping(sim, pro_spot.watch_order_book("BTC/USDT"))
    sim.inject_depth_gap("BTCUSDT")
    with pytest.raises(ccxt.ChecksumError):
        for _ in range(50):
            await stepping(sim, pro_spot.watch_order_book("BTC/USDT"))
    assert sim.hub.counters["depth_gaps"] >= 1
    # watching again resubscribes, refetches the snapshot and applies diffs from there
    book = await stepping(sim, pro_spot.watch_order_book("BTC/USDT"))
    engine_book = sim.engine.books[("spot", "BTCUSDT")]
    await until(lambda: book["nonce"] == engine_book.update_id, step=lambda: None)
    bids, asks = top(sim, n=20)
    assert book["bids"][:20] == [[float(p), float(q)] for p, q in bids]
    assert book["asks"][:20] == [[float(p), float(q)] for p, q in asks]


async def test_knobs_from_config_and_admin_endpoint():
    config = replace_faults(sim_config(), error_rate=1.0)
    async with running_sim(config) as venue:
        ex = point_ccxt_at_sim(ccxt_async.binance(KEYS), venue.url)
        try:
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.fetch_time()
            async with aiohttp.ClientSession() as session:
                async with session.post(venue.url + "/admin/faults", json={"error_rate": 0}) as response:
                    assert (await response.json())["error_rate"] == 0
                async with session.post(venue.url + "/admin/depth_gap", json={"symbol": "BTCUSDT"}) as response:
                    assert response.status == 200 and ("spot", "BTCUSDT") in venue.hub.gap_pending
                async with session.post(venue.url + "/admin/replay", json={"step": 10}) as response:
                    assert (await response.json())["applied"] == 10
                async with session.get(venue.url + "/admin/state") as response:
                    state = await response.json()
            assert state["counters"]["faults_5xx"] == 1 and state["replay_events"] >= 10
            assert await ex.fetch_time() > 0
        finally:
            await ex.close()


async def test_a_restarted_venue_reuses_no_order_or_trade_id():
    """With restart_safe_ids (``--restart-safe-ids``) a second life's ids start above the first's,
    as a real exchange's do; without it a seeded market keeps its ids (they start at 1)."""
    lives = []
    for _ in range(2):
        async with running_sim(sim_config(restart_safe_ids=True)) as venue:
            ex = make(ccxt_async.binance, venue)
            try:
                await ex.load_markets()
                venue.step(50)
                order = await ex.create_order("BTC/USDT", "market", "buy", 0.001)
                lives.append((int(order["id"]), int(venue.records()["fills"][0]["trade_id"])))
            finally:
                await ex.close()
        await asyncio.sleep(0.01)
    (order1, trade1), (order2, trade2) = lives
    assert order2 > order1 and trade2 > trade1
    async with running_sim(sim_config()) as venue:
        venue.step(50)
        assert venue.engine.trades[("spot", "BTCUSDT")][0].trade_id == 1
