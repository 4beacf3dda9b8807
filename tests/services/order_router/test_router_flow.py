"""End to end: bus -> OrderRouter -> genuine ccxt -> sim_exchange -> events back on the bus."""
from __future__ import annotations

import msgspec
import pytest

from tradebus.execution import new_status
from tradebus.proto import (
    CancelAck,
    CancelAll,
    CancelAllAck,
    CancelOrder,
    CancelReject,
    Fill,
    ModifyAck,
    ModifyOrder,
    OrderAck,
    OrderCancelled,
    OrderReject,
    OrderState,
    RejectCode,
    UnsupportedOp,
)
from tradebus.proto.codec import encode
from tradebus.proto.subjects import KV_ROUTER_STATE, router_order_key

from .conftest import PERP, SPOT, resting_bid, sell_into, top, until


async def test_market_order_acked_and_filled(harness):
    h = harness
    await h.start()
    await h.send(h.order("m1", side="buy", order_type="market", qty=0.01), "m1")
    fills = await h.wait(Fill, "m1")
    acks = h.of(OrderAck, "m1")
    assert len(acks) == 1 and acks[0].exchange_order_id
    assert sum(f.qty for f in fills) == pytest.approx(0.01)
    assert fills[-1].leaves_qty == pytest.approx(0.0)
    venue_order = h.sim.account().orders[("spot", int(acks[0].exchange_order_id))]
    assert venue_order.client_id == "m1"
    # ack precedes fill on the event subject
    assert h.events.index(acks[0]) < h.events.index(fills[0])
    # KV is written just after the Fill is stored (never before: see OrderRouter's state module)
    st = await h.kv_status("m1", lambda st: st.status is OrderState.FILLED)
    assert st.status is OrderState.FILLED and st.filled_qty == pytest.approx(0.01)


async def test_limit_rests_then_cancel(harness):
    h = harness
    await h.start()
    bids, _ = top(h.sim)
    price = float(bids[-1][0]) * 0.98
    await h.send(h.order("l1", side="buy", order_type="limit", qty=0.01, price=price), "l1")
    ack = (await h.wait(OrderAck, "l1"))[0]
    assert ack.price == pytest.approx(price, rel=1e-6)
    assert (await h.kv_status("l1", lambda st: st.status is OrderState.ACKED)).status is OrderState.ACKED
    await h.send(CancelOrder(client_order_id="l1", strategy="s1", venue=h.venue, symbol=SPOT, ts_init=1))
    await h.wait(CancelAck, "l1")
    cancelled = (await h.wait(OrderCancelled, "l1"))[0]
    assert cancelled.unsolicited is False
    assert (await h.kv_status("l1", lambda st: st.status is OrderState.CANCELLED)).status is OrderState.CANCELLED
    assert not h.sim.account().open["spot"]


async def test_cancel_of_unknown_id_is_rejected(harness):
    h = harness
    await h.start()
    await h.send(CancelOrder(client_order_id="nope", strategy="s1", venue=h.venue, symbol=SPOT, ts_init=1))
    rej = (await h.wait(CancelReject, "nope"))[0]
    assert rej.reject_code is RejectCode.ORDER_NOT_FOUND


async def test_partial_fills_then_fill(harness, mover_spot):
    h = harness
    await h.start()
    bids, asks = top(h.sim)
    price = resting_bid(h.sim, h.router.adapters[0])
    await h.send(h.order("p1", side="buy", order_type="limit", qty=0.01, price=price), "p1")
    await h.wait(OrderAck, "p1")
    await mover_spot.create_order(SPOT, "market", "sell", 0.004)
    first = (await h.wait(Fill, "p1"))[0]
    assert 0 < first.qty <= 0.004 + 1e-12 and first.leaves_qty == pytest.approx(0.01 - first.qty)
    await until(lambda: h.router.orders["p1"].status.status in (OrderState.PARTIALLY_FILLED, OrderState.FILLED))
    # the rest: everything bid at p1's price or better is sold, so p1 fills whatever bids the
    # replayed market put above it or ahead of it in the queue meanwhile
    sell_into(h.sim, price)
    await until(lambda: h.of(Fill, "p1") and h.of(Fill, "p1")[-1].cum_qty >= 0.01 - 1e-12, step=lambda: h.sim.step(2))
    fills = h.of(Fill, "p1")
    assert len(fills) >= 2 and sum(f.qty for f in fills) == pytest.approx(0.01)
    assert [f.cum_qty for f in fills] == sorted(f.cum_qty for f in fills)
    assert all(f.price == pytest.approx(price) for f in fills)
    assert len({f.trade_id for f in fills}) == len(fills)
    venue = h.sim.account().orders[("spot", int(fills[0].exchange_order_id))]
    assert float(venue.executed) == pytest.approx(0.01)
    await until(lambda: h.router.orders["p1"].status.status is OrderState.FILLED)


async def test_every_routing_row_on_spot_and_usdm(harness):
    h = harness
    await h.start()
    bids, asks = top(h.sim)
    bid, ask = float(bids[0][0]), float(asks[0][0])
    fb, fa = top(h.sim, market="usdm")
    fbid, fask = float(fb[0][0]), float(fa[0][0])
    rows = [
        ("r-spot-mkt", SPOT, dict(side="buy", order_type="market", qty=0.001)),
        ("r-spot-lim", SPOT, dict(side="buy", order_type="limit", qty=0.001, price=round(bid * 0.95, 2))),
        ("r-spot-stp", SPOT, dict(side="sell", order_type="stop_market", qty=0.001, trigger_price=round(bid * 0.9, 2))),
        ("r-spot-stl", SPOT, dict(side="sell", order_type="stop_limit", qty=0.001, trigger_price=round(bid * 0.9, 2),
                                  price=round(bid * 0.89, 2))),
        ("r-spot-tpm", SPOT, dict(side="sell", order_type="take_profit_market", qty=0.001, trigger_price=round(ask * 1.1, 2))),
        ("r-spot-tpl", SPOT, dict(side="sell", order_type="take_profit_limit", qty=0.001, trigger_price=round(ask * 1.1, 2),
                                  price=round(ask * 1.11, 2))),
        ("r-spot-cls", SPOT, dict(side="sell", order_type="close_position", qty=0.0)),  # whole holding
        ("r-perp-mkt", PERP, dict(side="buy", order_type="market", qty=0.01)),
        ("r-perp-lim", PERP, dict(side="buy", order_type="limit", qty=0.01, price=round(fbid * 0.95, 1))),
        ("r-perp-stp", PERP, dict(side="sell", order_type="stop_market", qty=0.01, trigger_price=round(fbid * 0.9, 1))),
        ("r-perp-stl", PERP, dict(side="sell", order_type="stop_limit", qty=0.01, trigger_price=round(fbid * 0.9, 1),
                                  price=round(fbid * 0.89, 1))),
        ("r-perp-tpm", PERP, dict(side="sell", order_type="take_profit_market", qty=0.01, trigger_price=round(fask * 1.1, 1))),
        ("r-perp-tpl", PERP, dict(side="sell", order_type="take_profit_limit", qty=0.01, trigger_price=round(fask * 1.1, 1),
                                  price=round(fask * 1.11, 1))),
        ("r-perp-trp", PERP, dict(side="sell", order_type="trailing_stop_percent", qty=0.01, trailing_bps=100)),
        ("r-perp-cls", PERP, dict(side="sell", order_type="close_position", qty=0.01)),
    ]
    for coid, symbol, fields in rows:
        await h.send(h.order(coid, symbol, **fields), coid)
        await h.wait(OrderAck, coid)
        assert not h.of(OrderReject, coid), h.of(OrderReject, coid)
    for coid in ("r-spot-mkt", "r-spot-cls", "r-perp-mkt", "r-perp-cls"):
        await h.wait(Fill, coid)
    # the whole holding: what was bought less the fee the venue took in BTC, down to the lot step
    held = 0.001 - sum(f.fee for f in h.of(Fill, "r-spot-mkt") if f.fee_currency == "BTC")
    assert held < 0.001 and held - 0.00001 < h.of(Fill, "r-spot-cls")[-1].cum_qty <= held + 1e-12
    acct = h.sim.account()
    by_client = {o.client_id: o for o in [*acct.orders.values(), *acct.algo_orders.values()]}
    assert by_client["r-spot-stp"].type == "STOP_LOSS" and by_client["r-spot-tpl"].type == "TAKE_PROFIT_LIMIT"
    assert by_client["r-perp-stp"].type == "STOP_MARKET" and by_client["r-perp-trp"].type == "TRAILING_STOP_MARKET"
    assert abs(float(acct.position("BTCUSDT").amount)) < 1e-12  # bought 0.01, closed 0.01
    # unsupported on this venue: an UnsupportedOp event, nothing sent
    sent = len(acct.orders)
    await h.send(h.order("r-spot-trl", SPOT, side="sell", order_type="trailing_stop", qty=0.001, trailing_offset=50.0))
    op = (await h.wait(UnsupportedOp, "r-spot-trl"))[0]
    assert op.op == "trailing_stop" and len(h.sim.account().orders) == sent
    # modify (USD-M) and cancel-all
    await h.send(ModifyOrder(client_order_id="r-perp-lim", strategy="s1", venue=h.venue, symbol=PERP,
                             new_price=round(fbid * 0.94, 1), ts_init=2))
    mod = (await h.wait(ModifyAck, "r-perp-lim"))[0]
    assert mod.price == pytest.approx(round(fbid * 0.94, 1))
    await h.send(CancelAll(strategy="s1", venue=h.venue, ts_init=3))
    ack = (await h.wait(CancelAllAck))[0]
    assert ack.count == 11  # 5 resting spot orders + 6 USD-M (limit + 5 conditional)
    await until(lambda: not h.router.open_orders("s1"))
    acct = h.sim.account()
    assert not acct.open["spot"] and not acct.open["usdm"] and not acct.open_algo


async def test_amount_below_minimum_rejected_locally(harness):
    h = harness
    await h.start()
    sent = len(h.sim.account().orders)
    await h.send(h.order("tiny", side="buy", order_type="market", qty=0.0000001), "tiny")
    rej = (await h.wait(OrderReject, "tiny"))[0]
    assert rej.reject_code is RejectCode.INVALID_ORDER and "precision" in rej.reason or "minimum" in rej.reason
    assert len(h.sim.account().orders) == sent


async def test_venue_error_translated(harness):
    h = harness
    await h.start()
    await h.send(h.order("big", side="buy", order_type="market", qty=500.0), "big")
    rej = (await h.wait(OrderReject, "big"))[0]
    assert rej.reject_code is RejectCode.INSUFFICIENT_FUNDS, rej


async def test_stale_request_is_rejected_not_sent(harness):
    h = harness
    await h.start()
    sent = len(h.sim.account().orders)
    stale = h.order("old1", side="buy", order_type="market", qty=0.001)
    import msgspec
    stale = msgspec.structs.replace(stale, ts_init=stale.ts_init - 3600 * 10**9)
    await h.send(stale, "old1")
    rej = (await h.wait(OrderReject, "old1"))[0]
    assert "stale" in rej.reason and len(h.sim.account().orders) == sent


async def test_stale_request_left_new_by_a_dead_router_is_rejected_not_sent(harness):
    """The predecessor stored the order NEW (write-ahead) and died before sending it; long after,
    its successor finds no such order at the venue and must not send it that late."""
    h = harness
    stale = h.order("old2", side="buy", order_type="market", qty=0.001)
    stale = msgspec.structs.replace(stale, ts_init=stale.ts_init - 3600 * 10**9)
    await h.bus.kv_put(KV_ROUTER_STATE, router_order_key(h.venue, "old2"), encode(new_status(stale)))
    await h.start()
    sent = len(h.sim.account().orders)
    await h.send(stale, "old2")
    rej = (await h.wait(OrderReject, "old2"))[0]
    assert "stale" in rej.reason and len(h.sim.account().orders) == sent
    assert h.router.counters["ambiguous_recovered"] == 1  # it did look for the order first
