"""order_entry: ws — the same routing rows sent through ccxt.pro's WS-API methods."""
from __future__ import annotations

import pytest

from tradebus.exchanges import make_adapter
from tradebus.proto import CancelAck, CancelOrder, Fill, OrderAck, OrderState

from .conftest import SPOT, until
from .test_resilience import far_bid, venue_orders
from .test_router_flow import test_every_routing_row_on_spot_and_usdm as every_routing_row


async def test_every_routing_row_over_the_wsapi(harness):
    harness.order_entry = "ws"
    posted, start = [], harness.start

    async def start_recording_rest_orders():
        router = await start()
        for adapter in router.adapters:
            async def fetch(url, method="GET", headers=None, body=None, real=adapter.exchange.fetch):
                if method == "POST" and url.split("?")[0].rsplit("/", 1)[-1] in ("order", "algoOrder"):
                    posted.append(url)
                return await real(url, method, headers, body)
            adapter.exchange.fetch = fetch
        return router
    harness.start = start_recording_rest_orders
    ws_before = harness.sim.venue.counters["wsapi_requests"]
    await every_routing_row(harness)
    placed = sum(1 for e in harness.events if isinstance(e, OrderAck))
    assert all(adapter.ws_orders for adapter in harness.router.adapters)
    assert placed >= 15 and harness.sim.venue.counters["wsapi_requests"] - ws_before >= placed
    assert posted == []  # no order went over REST


async def test_cancel_over_the_wsapi(harness):
    h = harness
    h.order_entry = "ws"
    await h.start()
    await h.send(h.order("wc1", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), "wc1")
    await h.wait(OrderAck, "wc1")
    before = h.sim.venue.counters["wsapi_requests"]
    await h.send(CancelOrder(client_order_id="wc1", strategy="s1", venue=h.venue, symbol=SPOT, ts_init=1))
    await h.wait(CancelAck, "wc1")
    await until(lambda: h.router.orders["wc1"].status.status is OrderState.CANCELLED)
    assert h.sim.venue.counters["wsapi_requests"] == before + 1
    assert not venue_orders(h.sim, "wc1")[0].is_open


async def test_lost_wsapi_answer_is_found_by_client_id_never_resent(harness):
    """The venue takes the order but its WS-API answer never arrives: after the exchange's timeout
    the router looks the order up by client id and does not send it again."""
    h = harness
    h.order_entry = "ws"
    h.ccxt_extra = {"timeout": 400}
    await h.start()
    spot = h.router.adapters[0].exchange
    (wsapi,) = [c for c in spot.clients.values() if "/ws-api/" in c.url]  # the user stream opened it
    handle, dropped = wsapi.on_message_callback, []

    def drop_order_answers(client, message):
        result = message.get("result") if isinstance(message, dict) else None
        if isinstance(result, dict) and result.get("clientOrderId") in ("wamb1", "wamb2") and len(dropped) < 2:
            dropped.append(result["clientOrderId"])
            return None
        return handle(client, message)
    wsapi.on_message_callback = drop_order_answers
    await h.send(h.order("wamb1", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), "wamb1")
    await h.wait(OrderAck, "wamb1")
    await h.send(h.order("wamb2", side="buy", order_type="market", qty=0.001), "wamb2")
    await h.wait(Fill, "wamb2")
    # the user stream may report the order first; the request itself ends only after the lookup
    await until(lambda: h.router.counters["ambiguous"] == 2 and not h.router._inflight)
    assert dropped == ["wamb1", "wamb2"]
    for coid in ("wamb1", "wamb2"):
        assert len(venue_orders(h.sim, coid)) == 1
        assert len(h.of(OrderAck, coid)) == 1
    assert h.router.orders["wamb2"].status.status is OrderState.FILLED


async def test_ws_order_entry_needs_a_venue_with_a_wsapi(sim):
    import ccxt.async_support as ccxt_async
    rest_only = ccxt_async.binance({"apiKey": "k", "secret": "s"})
    try:
        with pytest.raises(ValueError, match="order_entry ws needs"):
            make_adapter("binance:spot", rest_only, order_entry="ws")
        with pytest.raises(Exception, match="order_entry must be one of"):
            make_adapter("binance:spot", rest_only, order_entry="fix")
    finally:
        await rest_only.close()


async def test_wsapi_rate_limit_answers_back_off_and_nothing_is_lost(harness):
    h = harness
    h.order_entry = "ws"
    await h.start()
    before = h.sim.venue.counters["wsapi_faults"]
    h.sim.set_faults(rate_limit_rate=1.0)
    for i in range(3):
        await h.send(h.order(f"wrl{i}", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)), f"wrl{i}")
    await until(lambda: h.sim.venue.counters["wsapi_faults"] >= before + 3)
    h.sim.set_faults(rate_limit_rate=0)
    for i in range(3):
        await h.wait(OrderAck, f"wrl{i}")
        assert len(venue_orders(h.sim, f"wrl{i}")) == 1
    assert h.router.counters["rate_limited"] >= 3


async def test_balance_events_are_skipped_before_ccxt_parses_them(harness):
    """Binance pushes a balance event with every order; the router reads balances by reconciling."""
    h = harness
    await h.start()
    spot = h.router.adapters[0].exchange
    parsed = []
    real = spot.handle_balance
    spot.handle_balance = lambda client, message: parsed.append(message) or real(client, message)
    pushed = h.sim.hub.counters.get("ws_messages", 0)
    await h.send(h.order("skip1", side="buy", order_type="market", qty=0.001), "skip1")
    await h.wait(Fill, "skip1")
    assert h.sim.hub.counters.get("ws_messages", 0) > pushed
    assert parsed == []  # outboundAccountPosition arrived (the sim sends one per order) and was dropped
