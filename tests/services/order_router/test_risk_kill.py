"""Pre-trade risk limits and the kill switch (a control command on svc.order_router.kill)."""
from __future__ import annotations

from tradebus.execution import RiskEngine, RiskLimits
from tradebus.proto import (
    CancelAll,
    CancelAllAck,
    CommandResult,
    Fill,
    OrderAck,
    OrderCancelled,
    OrderReject,
    RejectCode,
    ServiceCommand,
)
from tradebus.proto.subjects import service_subject

from .conftest import PERP, top, until


async def test_risk_limits_reject_before_the_venue(harness):
    h = harness
    h.risk = RiskEngine({"s1": RiskLimits(max_order_qty=0.05, max_notional=2_000.0, max_open_orders=2,
                                          price_band_bps=500, max_position=0.02)})
    await h.start()
    bid = float(top(h.sim)[0][0][0])
    sent = len(h.sim.account().orders)
    cases = {
        "q-big": dict(side="buy", order_type="limit", qty=0.06, price=round(bid * 0.99, 2)),
        "q-notional": dict(side="buy", order_type="limit", qty=0.04, price=round(bid * 0.99, 2)),
        "q-band": dict(side="buy", order_type="limit", qty=0.001, price=round(bid * 0.9, 2)),
    }
    for coid, fields in cases.items():
        await h.send(h.order(coid, **fields), coid)
        rej = (await h.wait(OrderReject, coid))[0]
        assert rej.reject_code is RejectCode.RISK_LIMIT, (coid, rej)
    assert "max_order_qty" in h.of(OrderReject, "q-big")[0].reason
    assert "max_notional" in h.of(OrderReject, "q-notional")[0].reason
    assert "bps" in h.of(OrderReject, "q-band")[0].reason
    assert len(h.sim.account().orders) == sent
    for coid in ("ok1", "ok2"):
        await h.send(h.order(coid, side="buy", order_type="limit", qty=0.001, price=round(bid * 0.99, 2)), coid)
        await h.wait(OrderAck, coid)
        assert not h.of(OrderReject, coid), h.of(OrderReject, coid)
    await h.send(h.order("ok3", side="buy", order_type="limit", qty=0.001, price=round(bid * 0.99, 2)), "ok3")
    assert "max_open_orders" in (await h.wait(OrderReject, "ok3"))[0].reason
    # position limit: fills count, a buy that would go beyond 0.02 is refused
    await h.send(CancelAll(strategy="s1", venue=h.venue, ts_init=1))
    await h.wait(CancelAllAck)
    await until(lambda: not h.router.open_orders("s1"))
    await h.send(h.order("pos1", PERP, side="buy", order_type="market", qty=0.015), "pos1")
    await h.wait(Fill, "pos1")
    await h.send(h.order("pos2", PERP, side="buy", order_type="market", qty=0.01, strategy="s1"), "pos2")
    assert "max_position" in (await h.wait(OrderReject, "pos2"))[0].reason
    # other strategies have no limits here
    await h.send(h.order("other", side="buy", order_type="limit", qty=0.06, price=round(bid * 0.99, 2),
                         strategy="s2"), "other")
    await h.wait(OrderAck, "other")


async def test_kill_switch_cancels_open_orders_and_blocks_until_released(harness):
    h = harness
    await h.start()
    bid = float(top(h.sim)[0][0][0])
    for coid in ("k1", "k2"):
        await h.send(h.order(coid, side="buy", order_type="limit", qty=0.001, price=round(bid * 0.98, 2)), coid)
        await h.wait(OrderAck, coid)
    await h.send(h.order("k3", side="buy", order_type="limit", qty=0.001, price=round(bid * 0.98, 2), strategy="s2"), "k3")
    await h.wait(OrderAck, "k3")
    result = await h.bus.request(service_subject("order_router", "kill"),
                                 ServiceCommand(service="order_router", command="kill",
                                                args={"venue": h.venue, "strategy": "s1"}), CommandResult)
    assert result.ok and "2 orders cancelled" in result.message
    for coid in ("k1", "k2"):
        cancelled = (await h.wait(OrderCancelled, coid))[0]
    assert h.router.orders["k3"].open  # s2 untouched
    await h.send(h.order("k4", side="buy", order_type="limit", qty=0.001, price=round(bid * 0.98, 2)), "k4")
    assert (await h.wait(OrderReject, "k4"))[0].reject_code is RejectCode.KILL_SWITCH
    open_at_venue = {o.client_id for o in h.sim.account().open["spot"].values()}
    assert open_at_venue == {"k3"}
    await h.bus.request(service_subject("order_router", "release"),
                        ServiceCommand(service="order_router", command="release",
                                       args={"venue": h.venue, "strategy": "s1"}), CommandResult)
    await h.send(h.order("k5", side="buy", order_type="limit", qty=0.001, price=round(bid * 0.98, 2)), "k5")
    await h.wait(OrderAck, "k5")
    assert cancelled.unsolicited is False
