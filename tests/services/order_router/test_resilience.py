"""No order lost or duplicated: duplicates, timeouts after acceptance, 429s, WS drops, restarts."""
from __future__ import annotations

import asyncio

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.proto import ACCOUNT_DECODER, Fill, GatewayState, GatewayStatus, OrderAck, OrderState, OrderStatus, RateLimitInfo
from tradebus.proto.subjects import EXTERNAL_STRATEGY, account_wildcard
from tradebus.retry import BackoffSettings
from tradebus.services.order_router.router import RouterOptions

from .conftest import KEYS, SPOT, resting_bid, sell_into, top, until

FAULTS_OFF = dict(latency_ms=0, rate_limit_rate=0, timeout_rate=0, error_rate=0, maintenance=False)


@pytest.fixture(autouse=True)
def clear_faults(sim):
    yield
    sim.set_faults(**FAULTS_OFF)


def venue_orders(sim, coid):
    acct = sim.account()
    return [o for o in [*acct.orders.values(), *acct.algo_orders.values()] if o.client_id == coid]


def far_bid(sim) -> float:
    return round(float(top(sim)[0][-1][0]) * 0.97, 2)


async def account_events(h):
    seen = []

    async def on_msg(msg):
        seen.append(ACCOUNT_DECODER.decode(msg.data))
    sub = await h.bus.nc.subscribe(account_wildcard(h.venue), cb=on_msg)
    return seen, sub


async def test_duplicate_request_sends_one_venue_order(harness):
    h = harness
    await h.start()
    order = h.order("dup1", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim))
    await h.send(order)           # no Nats-Msg-Id: the stream keeps both copies
    await h.send(order)
    await h.wait(OrderAck, "dup1")
    await until(lambda: h.router.counters["duplicates"] >= 1)
    assert len(venue_orders(h.sim, "dup1")) == 1
    assert len(h.of(OrderAck, "dup1")) == 1  # the repeated outcome has the same Nats-Msg-Id


async def test_timeout_after_venue_accepted_is_found_by_client_id(harness):
    """The venue takes the order but its answer is lost (the transport raises RequestTimeout after
    the real round trip): the router finds the order by client id and never sends it again."""
    h = harness
    await h.start()
    spot = h.router.adapters[0].exchange
    real_fetch = spot.fetch
    lost = []

    async def lose_order_answers(url, method="GET", headers=None, body=None):
        response = await real_fetch(url, method, headers, body)
        if method == "POST" and url.split("?")[0].endswith("/api/v3/order") and len(lost) < 2:
            lost.append(url)
            raise ccxt.RequestTimeout(f"binance POST {url} (answer lost)")
        return response
    spot.fetch = lose_order_answers
    await h.send(h.order("amb1", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), "amb1")
    await h.wait(OrderAck, "amb1")
    await h.send(h.order("amb2", side="buy", order_type="market", qty=0.001), "amb2")
    await h.wait(Fill, "amb2")
    assert len(lost) == 2 and h.router.counters["ambiguous"] == 2
    for coid in ("amb1", "amb2"):
        assert len(venue_orders(h.sim, coid)) == 1
        assert len(h.of(OrderAck, coid)) == 1
    assert h.router.orders["amb1"].status.status is OrderState.ACKED
    assert h.router.orders["amb2"].status.status is OrderState.FILLED


async def test_rate_limit_answers_back_off_and_nothing_is_lost(harness):
    h = harness
    await h.start()
    acct_events, sub = await account_events(h)
    try:
        before = h.sim.counters["faults_429"]
        h.sim.set_faults(rate_limit_rate=1.0)
        for i in range(3):
            await h.send(h.order(f"rl{i}", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), f"rl{i}")
        await until(lambda: h.sim.counters["faults_429"] >= before + 3)
        h.sim.set_faults(rate_limit_rate=0)
        for i in range(3):
            await h.wait(OrderAck, f"rl{i}")
            assert len(venue_orders(h.sim, f"rl{i}")) == 1
        assert h.router.counters["rate_limited"] >= 3
        await until(lambda: any(isinstance(e, RateLimitInfo) and e.pct >= 100 for e in acct_events))
    finally:
        await sub.unsubscribe()


async def test_fills_during_a_ws_gap_are_recovered_by_reconciliation(harness):
    h = harness
    await h.start()
    acct_events, sub = await account_events(h)
    try:
        bids, asks = top(h.sim)
        price = resting_bid(h.sim, h.router.adapters[0])
        await h.send(h.order("gap1", side="buy", order_type="limit", qty=0.01, price=price), "gap1")
        await h.wait(OrderAck, "gap1")
        h.sim.set_faults(maintenance=True)        # no reconnect until we say so
        assert await h.sim.drop_ws() >= 1
        await until(lambda: any(isinstance(e, GatewayStatus) and e.state is GatewayState.DISCONNECTED
                                for e in acct_events))
        # another account sells into our bid while the router is blind
        sell_into(h.sim, price)
        assert h.sim.account().orders[("spot", int(h.of(OrderAck, "gap1")[0].exchange_order_id))].status == "FILLED"
        assert not h.of(Fill, "gap1")
        h.sim.set_faults(maintenance=False)
        fills = await h.wait(Fill, "gap1")
        await until(lambda: h.router.orders["gap1"].status.status is OrderState.FILLED)
        assert sum(f.qty for f in h.of(Fill, "gap1")) == pytest.approx(0.01)
        assert h.router.counters["stream_errors"] >= 1 and h.router.counters["reconciles"] >= 2
        await until(lambda: any(isinstance(e, GatewayStatus) and e.state is GatewayState.READY_TO_TRADE
                                for e in acct_events[1:]))
        assert fills[0].price == pytest.approx(price)
    finally:
        await sub.unsubscribe()


async def test_router_restart_recovers_state_adopts_orders_no_duplicates(harness, mover_spot):
    h = harness
    h.options = RouterOptions(backoff=BackoffSettings(initial=0.05, cap=0.5), ack_wait=30)
    await h.start()
    bids, asks = top(h.sim)
    mid = resting_bid(h.sim, h.router.adapters[0])
    await h.send(h.order("rs-rest", side="buy", order_type="limit", qty=0.01, price=mid), "rs-rest")
    await h.send(h.order("rs-far", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), "rs-far")
    await h.wait(OrderAck, "rs-rest")
    await h.wait(OrderAck, "rs-far")
    # a create in flight when the router dies: the venue takes it, the bus never hears back
    spot = h.router.adapters[0].exchange
    real_fetch = spot.fetch

    async def die_after_sending(url, method="GET", headers=None, body=None):
        response = await real_fetch(url, method, headers, body)
        if method == "POST" and url.split("?")[0].endswith("/api/v3/order"):
            await asyncio.Event().wait()  # the router "dies" before it hears the answer
        return response
    spot.fetch = die_after_sending
    await h.send(h.order("rs-flight", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), "rs-flight")
    await until(lambda: venue_orders(h.sim, "rs-flight"))
    await h.stop()
    # while the router is down: a fill, an order placed by hand, and more requests
    sell_into(h.sim, mid)
    manual = point_ccxt_at_sim(ccxt_async.binance(KEYS), h.sim.url)
    try:
        await manual.load_markets()
        hand = await manual.create_order(SPOT, "limit", "buy", 0.001, far_bid(h.sim), {"clientOrderId": "byhand1"})
    finally:
        await manual.close()
    await h.send(h.order("rs-new", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), "rs-new")
    await h.send(h.order("rs-far", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)))  # dup
    await h.start()
    await h.wait(OrderAck, "rs-new")
    await h.wait(OrderAck, "rs-flight")
    await until(lambda: h.router.orders["rs-rest"].status.status is OrderState.FILLED, step=lambda: h.sim.step(2))
    await until(lambda: sum(f.qty for f in h.of(Fill, "rs-rest")) >= 0.01 - 1e-9)  # events arrive after the state
    assert sum(f.qty for f in h.of(Fill, "rs-rest")) == pytest.approx(0.01)
    for coid in ("rs-rest", "rs-far", "rs-flight", "rs-new"):
        assert len(venue_orders(h.sim, coid)) == 1, coid
        # one ack as consumers get it (ORDERS); a plain subscriber may see one resent after the restart
        assert len(await h.stored(OrderAck, coid)) == 1, coid
        assert len({a.exchange_order_id for a in h.of(OrderAck, coid)}) == 1, coid
    adopted = h.router.orders["byhand1"]
    assert adopted.status.strategy == EXTERNAL_STRATEGY and adopted.status.exchange_order_id == str(hand["id"])
    assert any(isinstance(e, OrderStatus) and e.client_order_id == "byhand1" for e in h.events)
    assert h.router.counters["orders_loaded"] >= 3


async def test_start_publishes_gateway_balance_positions_and_kv_position(harness):
    h = harness
    h.options = RouterOptions(backoff=BackoffSettings(initial=0.05, cap=0.5))
    seen, sub = [], None

    async def on_msg(msg):
        seen.append(ACCOUNT_DECODER.decode(msg.data))
    sub = await h.bus.nc.subscribe(account_wildcard(h.venue), cb=on_msg)
    try:
        # a USD-M position the router did not open
        rest = point_ccxt_at_sim(ccxt_async.binanceusdm(KEYS), h.sim.url)
        try:
            await rest.load_markets()
            await rest.create_order("BTC/USDT:USDT", "market", "buy", 0.002)
            await h.start()
        finally:
            await rest.create_order("BTC/USDT:USDT", "market", "sell", 0.002, None, {"reduceOnly": True})
            await rest.close()
        await until(lambda: any(isinstance(e, GatewayStatus) and e.state is GatewayState.READY_TO_TRADE for e in seen))
        states = [e.state for e in seen if isinstance(e, GatewayStatus)]
        assert states[0] is GatewayState.CONNECTING and states[-1] is GatewayState.READY_TO_TRADE
        from tradebus.proto import Balance, Position
        balances = [e for e in seen if isinstance(e, Balance)]
        assert balances and any(b.currency == "USDT" and b.total > 0 for b in balances[0].balances)
        pos = [e for e in seen if isinstance(e, Position) and e.symbol == "BTC/USDT:USDT"]
        assert pos and pos[0].qty == pytest.approx(0.002)
        from tradebus.proto.codec import decode
        from tradebus.proto.subjects import router_position_key
        stored = decode((await h.router.kv.get(router_position_key(h.venue, "BTC/USDT:USDT"))).value, Position)
        assert stored.qty == pytest.approx(0.002)
    finally:
        await sub.unsubscribe()
