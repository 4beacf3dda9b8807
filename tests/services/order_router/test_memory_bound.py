"""The router's memory stays bounded: terminal orders are forgotten after ``keep_done``, their ids
remembered for the max request age (duplicates still never reach the venue, across a restart
too), then purged from KV with their fills carried over into the restored positions."""
from __future__ import annotations

import time

import msgspec
import pytest

from tradebus.proto import CancelAck, CancelOrder, Fill, OrderAck, OrderReject, OrderState, OrderType
from tradebus.proto.subjects import KV_ROUTER_STATE, router_carried_key, router_order_key
from tradebus.retry import BackoffSettings
from tradebus.services.order_router.router import RouterOptions
from tradebus.services.order_router.state import Carried

from .conftest import SPOT, until
from .test_resilience import far_bid, venue_orders

LATER = int(1e12)  # ns: well past any remember window


def options(keep_done: int) -> RouterOptions:
    return RouterOptions(backoff=BackoffSettings(initial=0.05, cap=0.5), keep_done=keep_done)


async def stored_order_messages(h) -> int:
    """Messages (values or delete markers) the bucket's stream holds for this venue's orders."""
    subjects = f"$KV.{KV_ROUTER_STATE}.{router_order_key(h.venue, 'x')[:-1]}>"
    info = await h.bus.js.stream_info(f"KV_{KV_ROUTER_STATE}", subjects_filter=subjects)
    return sum((info.state.subjects or {}).values())


async def buy(h, coid: str):
    order = h.order(coid, side="buy", order_type="market", qty=0.001)
    await h.send(order)
    await h.wait(Fill, coid)
    await until(lambda: coid not in h.router.orders or not h.router.orders[coid].open)
    return order


async def test_terminal_orders_are_forgotten_purged_and_positions_survive_a_restart(harness):
    h = harness
    h.options = options(keep_done=3)
    router = await h.start()
    await h.send(h.order("mb-open", side="buy", order_type="limit", qty=0.001, price=far_bid(h.sim)))
    await h.wait(OrderAck, "mb-open")
    for i in range(12):
        await buy(h, f"mb{i}")
    store = router.store
    assert len(router.orders) == 3 + 1 and len(store._open) == 1 and len(store.forgotten) == 9
    assert len(store.by_exchange_id) <= 2 * len(router.orders)
    assert [r.status.client_order_id for r in router.open_orders()] == ["mb-open"]
    position = router.positions[("s1", SPOT)]
    assert position == pytest.approx(12 * 0.001, rel=0.01)  # net of the base-asset fee
    assert await stored_order_messages(h) == 13

    assert await store.sweep() == 0  # nothing past the window yet
    assert await store.sweep(now=time.time_ns() + LATER) == 9
    assert not store.forgotten and not store._forgotten_exchange_ids
    assert await stored_order_messages(h) == 4  # purged: no value, no delete marker
    assert router.positions[("s1", SPOT)] == position

    await h.stop()
    router = await h.start()
    assert router.positions[("s1", SPOT)] == pytest.approx(position)  # 4 orders in KV + 9 carried
    assert router.orders["mb-open"].open
    await h.send(CancelOrder(client_order_id="mb-open", strategy="s1", venue=h.venue, symbol=SPOT, ts_init=time.time_ns()))
    await h.wait(CancelAck, "mb-open")
    await until(lambda: router.orders["mb-open"].status.status is OrderState.CANCELLED)


async def test_duplicate_of_a_forgotten_order_never_reaches_the_venue_across_a_restart(harness):
    h = harness
    h.options = options(keep_done=1)
    router = await h.start()
    first = await buy(h, "fg1")
    await buy(h, "fg2")
    assert "fg1" not in router.orders and router.store.is_forgotten("fg1")
    await h.send(first)  # a re-sent request (no Nats-Msg-Id: the stream keeps the copy)
    await until(lambda: router.counters["duplicates"] >= 1)
    adapter = router.adapters[0]
    view = await adapter.fetch_by_client_id(SPOT, "fg1", OrderType.MARKET)
    late = router.counters["late_views"]
    assert await router.observe(view, adapter) is None  # a late view is not adopted as a new order
    assert router.counters["late_views"] >= late + 1 and "fg1" not in router.orders

    await h.stop()
    router = await h.start()  # fg1 is in KV: reloaded, and forgotten again at once (keep_done=1)
    assert router.store.is_forgotten("fg1") and not router.store.is_forgotten("fg2")
    await h.send(first)
    await until(lambda: router.counters["duplicates"] >= 1)
    assert len(venue_orders(h.sim, "fg1")) == 1
    assert len(await h.stored(Fill, "fg1")) == 1 and not h.of(OrderReject, "fg1")


async def test_a_sweep_cut_off_before_its_purges_counts_no_fill_twice(harness):
    """A crash between the carried positions' write and the purges: the restarted router finds
    those orders still in KV but named as counted, and purges them without counting them again."""
    h = harness
    h.options = options(keep_done=0)
    router = await h.start()
    await buy(h, "cut1")
    position = router.positions[("s1", SPOT)]
    await h.stop()
    carried = Carried(positions=[("s1", SPOT, position)], purged=["cut1"])  # what the sweep wrote first
    await h.bus.kv_put(KV_ROUTER_STATE, router_carried_key(h.venue), msgspec.json.encode(carried))
    router = await h.start()
    assert router.positions[("s1", SPOT)] == pytest.approx(position)
    assert await stored_order_messages(h) == 0  # and its KV entry is gone


async def test_an_unreadable_carried_entry_stops_the_start_with_a_clear_error(harness):
    h = harness
    await h.bus.declare_all()
    await h.bus.kv_put(KV_ROUTER_STATE, router_carried_key(h.venue), b"{not json")
    with pytest.raises(ValueError, match="carried is unreadable"):
        await h.start()
    await h.bus.kv_put(KV_ROUTER_STATE, router_carried_key(h.venue), msgspec.json.encode(Carried()))
