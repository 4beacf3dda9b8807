"""The generated NATS users against a real nats-server: each role can do its job, and what it must
not do is refused by the server (a permissions violation the client sees)."""
from __future__ import annotations

import asyncio

import pytest

from tradebus.proto import NewOrder, ParamsUpdate, ServiceCommand
from tradebus.proto.codec import encode
from tradebus.proto.subjects import order_request_subject

from .conftest import REFUSED, settle, violation


async def attempt_publish(secured, user: str, subject: str, payload: bytes = b"x") -> bool:
    """True when the server refused ``user`` publishing on ``subject``."""
    errors: list[str] = []
    nc = await secured.connect(user, errors)
    try:
        await nc.publish(subject, payload)
        await settle(nc)
    finally:
        await nc.close()
    return violation(errors, subject)


async def attempt_subscribe(secured, user: str, subject: str) -> bool:
    """True when the server refused ``user`` subscribing to ``subject``."""
    errors: list[str] = []
    nc = await secured.connect(user, errors)
    try:
        await nc.subscribe(subject)
        await settle(nc)
    finally:
        await nc.close()
    return violation(errors, subject)


ORDER = encode(NewOrder(client_order_id="x-1", strategy="beta", venue="sim", symbol="BTC/USDT", side="buy",
                        order_type="market", qty=0.001, ts_init=1))


@pytest.mark.parametrize("user, subject", [
    ("strategy-alpha", "md.sim.BTC-USDT.trade"),           # fake market data from a strategy
    ("strategy_runner", "md.sim.BTC-USDT.trade"),
    ("strategy-alpha", order_request_subject("sim", "beta")),   # an order as another strategy
    ("strategy_runner", order_request_subject("sim", "beta")),  # the runner hosts alpha only
    ("strategy-alpha", "ord.evt.sim.alpha"),               # fake order events
    ("market_data", order_request_subject("sim", "alpha")),
    ("backtest_worker-1", "acct.sim.balance"),
    ("sim_exchange", "md.sim.BTC-USDT.trade"),
    ("strategy-alpha", "svc.order_router.kill"),           # kill switch: operator only
    ("strategy_runner", "svc.order_router.release"),
    ("order_router", "svc.order_router.kill"),
    ("strategy-alpha", "bt.job"),                          # study subjects: operator only
    ("backtest_worker-1", "bt.job.s1"),
    ("strategy-alpha", "ctl.beta.stop"),                   # commands: operator only
    ("strategy-alpha", "ctl.alpha.params"),
    ("strategy-alpha", "$KV.strategy_params.beta"),        # another strategy's stored params
    ("strategy-alpha", "$JS.API.CONSUMER.DELETE.ORDERS.router_sim"),   # the router's consumer
    ("strategy-alpha", "$JS.ACK.ORDERS.router_sim.1.1.1.1.1"),
    ("strategy-alpha", "$JS.API.STREAM.DELETE.ORDERS"),
    ("order_router", "$JS.API.STREAM.DELETE.ORDERS"),
    ("order_router", "$JS.API.STREAM.PURGE.ORDERS"),        # it purges only its own finished orders' KV keys
    ("strategy-alpha", "$JS.API.STREAM.PURGE.KV_router_state"),
    ("sim_exchange", "$SRV.PING.order_router"),             # a health probe pings its own service only
])
async def test_a_role_may_not_publish_outside_its_subjects(secured, user, subject):
    assert await attempt_publish(secured, user, subject, ORDER)


@pytest.mark.parametrize("user, subject", [
    ("strategy_runner", "ord.evt.sim.beta"),               # another strategy's events
    ("strategy_runner", "ord.evt.>"),
    ("runner_beta", "ord.evt.*.alpha"),
    ("strategy-alpha", "ord.evt.sim.beta"),
    ("strategy-alpha", "ctl.beta.>"),
    ("strategy-alpha", "_INBOX.>"),                        # anyone else's replies
    ("strategy-alpha", "_INBOX_strategy-beta.>"),
    ("market_data", "ord.req.>"),
    ("backtest_worker-1", "svc.order_router.>"),
])
async def test_a_role_may_not_read_outside_its_subjects(secured, user, subject):
    assert await attempt_subscribe(secured, user, subject)


@pytest.mark.parametrize("user, subject", [
    ("market_data", "md.sim.BTC-USDT.trade"),
    ("strategy-alpha", order_request_subject("sim", "alpha")),
    ("strategy_runner", order_request_subject("sim", "alpha")),
    ("runner_beta", order_request_subject("sim", "beta")),
    ("order_router", "ord.evt.sim.alpha"),
    ("order_router", "acct.sim.balance"),
    ("order_router", "$JS.API.STREAM.PURGE.KV_router_state"),  # the sweep of finished orders
    ("backtest_worker-2", "bt.result.s1"),
    ("sim_exchange", "$SRV.PING.sim_exchange"),            # its own health probe (HEALTHCHECK, k8s probes)
    ("backtest_worker-1", "$SRV.PING.backtest_worker"),
    ("operator", "svc.order_router.kill"),
    ("operator", "bt.job"),
    ("operator", "ctl.alpha.stop"),
])
async def test_each_role_may_publish_its_own_subjects(secured, user, subject):
    assert not await attempt_publish(secured, user, subject, ORDER)


@pytest.mark.parametrize("user, subject", [
    ("strategy_runner", "ord.evt.*.alpha"),
    ("strategy_runner", "ctl.alpha.*"),
    ("strategy_runner", "md.>"),
    ("strategy-alpha", "ord.evt.*.alpha"),
    ("order_router", "svc.order_router.>"),
    ("operator", ">"),
])
async def test_each_role_may_read_its_own_subjects(secured, user, subject):
    assert not await attempt_subscribe(secured, user, subject)


async def test_a_strategy_cannot_see_another_strategys_events_live(secured):
    """The server delivers beta's events to beta's reader and refuses alpha's subscription."""
    errors: list[str] = []
    alpha = await secured.connect("strategy-alpha", errors)
    beta = await secured.connect("strategy-beta")
    router = await secured.connect("order_router")
    try:
        peek = await alpha.subscribe("ord.evt.sim.beta")
        own = await beta.subscribe("ord.evt.sim.beta")
        await settle(alpha)
        await router.publish("ord.evt.sim.beta", b"event")
        await router.flush()
        assert (await own.next_msg(timeout=5)).data == b"event"
        with pytest.raises(TimeoutError):
            await peek.next_msg(timeout=0.3)
        assert violation(errors, "ord.evt.sim.beta")
    finally:
        for nc in (alpha, beta, router):
            await nc.close()


async def test_requests_and_replies_work_under_each_users_inbox(secured):
    """allow_responses and the per-user inbox: the operator asks a service, the service answers."""
    router = await secured.connect("order_router")
    operator = await secured.connect("operator")
    try:
        async def answer(msg):
            await msg.respond(b"pong")
        await router.subscribe("svc.order_router.status", cb=answer)
        await router.flush()
        reply = await operator.request("svc.order_router.status", encode(ServiceCommand(service="order_router",
                                                                                        command="status")), timeout=5)
        assert reply.data == b"pong" and reply.subject.startswith("_INBOX_operator.")
    finally:
        await router.close()
        await operator.close()


async def test_unauthenticated_and_wrong_password_clients_are_refused(secured):
    for user, password in ((None, None), ("order_router", secured.passwords["operator"]), ("nobody", "x" * 32)):
        with pytest.raises(REFUSED):
            await secured.connect(user, password=password)


async def test_params_update_for_another_strategy_is_refused(secured):
    """Only the operator sets params: a strategy publishing beta's params on its own ctl is refused."""
    update = encode(ParamsUpdate(strategy="beta", params={"qty": "9"}))
    assert await attempt_publish(secured, "strategy-alpha", "ctl.beta.params", update)
    assert not await attempt_publish(secured, "operator", "ctl.beta.params", update)


async def test_every_user_connects(secured):
    for user in secured.passwords:
        nc = await secured.connect(user)
        assert nc.is_connected
        await nc.close()
    await asyncio.sleep(0)
