"""The kill switch is kept in the router's KV bucket: a restarted router still refuses a killed
strategy's orders until the switch is released."""
from __future__ import annotations

from tradebus.proto import CommandResult, OrderAck, OrderReject, RejectCode, ServiceCommand
from tradebus.proto.subjects import router_kill_key, service_subject

from .conftest import top


async def command(h, name: str, strategy: str | None) -> CommandResult:
    args = {"venue": h.venue, **({"strategy": strategy} if strategy else {})}
    return await h.bus.request(service_subject("order_router", name),
                               ServiceCommand(service="order_router", command=name, args=args), CommandResult)


async def test_kill_switch_survives_a_restart_until_released(harness):
    h = harness
    await h.start()
    price = round(float(top(h.sim)[0][0][0]) * 0.98, 2)
    assert (await command(h, "kill", "s1")).ok
    assert await h.router.kv.get(router_kill_key(h.venue, "s1"))
    await h.stop()
    await h.start()  # a new OrderRouter on the same bus and KV
    assert h.router.risk.killed("s1") and not h.router.risk.killed("s2")
    await h.send(h.order("kp1", side="buy", order_type="limit", qty=0.001, price=price), "kp1")
    assert (await h.wait(OrderReject, "kp1"))[0].reject_code is RejectCode.KILL_SWITCH
    await h.send(h.order("kp2", side="buy", order_type="limit", qty=0.001, price=price, strategy="s2"), "kp2")
    await h.wait(OrderAck, "kp2")
    assert (await command(h, "release", "s1")).ok
    await h.send(h.order("kp3", side="buy", order_type="limit", qty=0.001, price=price), "kp3")
    await h.wait(OrderAck, "kp3")
    await h.stop()
    await h.start()  # released is released after a restart too
    await h.send(h.order("kp4", side="buy", order_type="limit", qty=0.001, price=price), "kp4")
    await h.wait(OrderAck, "kp4")
    assert not h.of(OrderReject, "kp3") and not h.of(OrderReject, "kp4")


async def test_venue_wide_kill_survives_a_restart_and_release_all_clears_it(harness):
    h = harness
    await h.start()
    price = round(float(top(h.sim)[0][0][0]) * 0.98, 2)
    await command(h, "kill", None)
    await command(h, "kill", "s3")
    await h.stop()
    await h.start()
    assert h.router.risk.killed("anyone") and h.router.risk.engaged == {"*", "s3"}
    await h.send(h.order("kv1", side="buy", order_type="limit", qty=0.001, price=price, strategy="s2"), "kv1")
    assert (await h.wait(OrderReject, "kv1"))[0].reject_code is RejectCode.KILL_SWITCH
    await command(h, "release", None)  # every switch on this venue
    await h.stop()
    await h.start()
    assert not h.router.risk.engaged
    await h.send(h.order("kv2", side="buy", order_type="limit", qty=0.001, price=price, strategy="s3"), "kv2")
    await h.wait(OrderAck, "kv2")
