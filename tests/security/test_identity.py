"""Strategy identity end to end: a real order router (connected as its generated NATS user) in
front of sim_exchange. A strategy's requests travel on its own subject; a request whose payload
names another strategy is rejected by the router with a reason on the sender's own subject, and
nothing of it reaches the venue (the sim's order records)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from nats.js.errors import KeyNotFoundError

from tradebus.bus import Bus
from tradebus.bus.jetstream import declare_all
from tradebus.bus.service import ServiceContext
from tradebus.config import DeploymentConfig
from tradebus.proto import (
    ORDER_EVENT_DECODER,
    CancelOrder,
    CommandResult,
    ControlMessage,
    NewOrder,
    OrderAck,
    OrderReject,
    ParamsUpdate,
    RejectCode,
    StrategyCommand,
)
from tradebus.proto.codec import encode
from tradebus.proto.subjects import (
    KV_STRATEGY_PARAMS,
    control_subject,
    control_wildcard,
    order_event_wildcard,
    order_request_subject,
    params_key,
    params_subject,
)
from tradebus.retry import BackoffSettings
from tradebus.services.order_router.router import OrderRouter, RouterOptions
from tradebus.services.sim_exchange.testing import running_sim, until
from tradebus.services.strategy_runner.host import StrategyHost
from tradebus.services.strategy_runner.settings import StrategyRunnerSettings

from ..services.order_router.conftest import adapters_for, sim_config
from .conftest import settle, violation


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def venue():
    async with running_sim(sim_config()) as sim:
        yield sim


@pytest_asyncio.fixture(loop_scope="session")
async def router(secured, venue):
    bus = await Bus.connect(secured.nats_config("order_router"))
    router = OrderRouter(bus, "sim", adapters_for(venue), options=RouterOptions(backoff=BackoffSettings(initial=0.05, cap=0.5)))
    await router.start()
    await until(router.ready.is_set)
    yield router
    await router.stop()
    await bus.close()


def at_venue(sim, client_order_id: str) -> bool:
    """Whether sim_exchange ever saw an order with this client id (any account, any market)."""
    return any(cid == client_order_id for account in sim.engine.accounts.values() for (_m, cid) in account.by_client)


async def events_of(secured, user: str, strategy: str, errors: list[str] | None = None):
    nc = await secured.connect(user, errors)
    got: list = []

    async def on_msg(msg):
        got.append(ORDER_EVENT_DECODER.decode(msg.data))
    await nc.subscribe(order_event_wildcard(strategy=strategy), cb=on_msg)
    await nc.flush()
    return nc, got


def order(coid: str, strategy: str, **fields) -> NewOrder:
    return NewOrder(client_order_id=coid, strategy=strategy, venue=fields.pop("venue", "sim"), symbol="BTC/USDT",
                    side="buy", order_type="limit", qty=0.001, price=10000.0, ts_init=time.time_ns(), **fields)


async def test_a_request_naming_another_strategy_is_rejected_and_never_reaches_the_venue(secured, venue, router):
    errors: list[str] = []
    alpha, alpha_events = await events_of(secured, "strategy-alpha", "alpha", errors)
    beta, beta_events = await events_of(secured, "strategy-beta", "beta")
    try:
        # alpha on beta's subject: the server refuses it, so the router never sees it
        await alpha.publish(order_request_subject("sim", "beta"), encode(order("spoofed-1", "beta")))
        await settle(alpha)
        assert violation(errors, order_request_subject("sim", "beta"))
        # alpha, on its own subject (all the server lets it use), claims to be beta
        forged = order("forged-1", "beta")
        await alpha.publish(order_request_subject("sim", "alpha"), encode(forged))
        # and its own honest order, which must go through (the check is not a blanket refusal)
        honest = order("alpha-honest-1", "alpha")
        await alpha.publish(order_request_subject("sim", "alpha"), encode(honest))
        await until(lambda: any(isinstance(e, OrderAck) for e in alpha_events), 15)
        await until(lambda: any(isinstance(e, OrderReject) for e in alpha_events), 15)
        reject = next(e for e in alpha_events if isinstance(e, OrderReject))
        assert reject.client_order_id == "forged-1" and reject.strategy == "alpha"
        assert reject.reject_code is RejectCode.AUTH_FAILED
        assert "'beta'" in reject.reason and "alpha" in reject.reason
        assert at_venue(venue, "alpha-honest-1") and not at_venue(venue, "forged-1") and not at_venue(venue, "spoofed-1")
        assert beta_events == []                 # beta hears nothing of it
        assert router.counters["identity_rejects"] == 1

        # a venue that is not the router's, on the right strategy subject: rejected the same way
        await alpha.publish(order_request_subject("sim", "alpha"), encode(order("alpha-wrongvenue", "alpha", venue="other")))
        await until(lambda: sum(isinstance(e, OrderReject) for e in alpha_events) == 2, 15)
        assert not at_venue(venue, "alpha-wrongvenue")
    finally:
        await alpha.close()
        await beta.close()


async def test_a_strategy_cannot_cancel_another_strategys_order(secured, venue, router):
    alpha, alpha_events = await events_of(secured, "strategy-alpha", "alpha")
    beta, beta_events = await events_of(secured, "strategy-beta", "beta")
    try:
        await beta.publish(order_request_subject("sim", "beta"), encode(order("beta-resting-1", "beta")))
        await until(lambda: any(isinstance(e, OrderAck) for e in beta_events), 15)
        cancel = CancelOrder(client_order_id="beta-resting-1", strategy="alpha", venue="sim", symbol="BTC/USDT",
                             ts_init=time.time_ns())
        await alpha.publish(order_request_subject("sim", "alpha"), encode(cancel))
        await until(lambda: any(type(e).__name__ == "CancelReject" for e in alpha_events), 15)
        assert router.orders["beta-resting-1"].open          # still resting at the venue
        assert not any(type(e).__name__ in ("CancelAck", "OrderCancelled") for e in beta_events)
    finally:
        await alpha.close()
        await beta.close()


async def test_a_command_or_params_update_naming_another_strategy_is_refused_by_the_runner(bus):
    """A runner hosting alpha and beta: on alpha's subject, a message naming beta changes nothing of
    beta's and a command is answered with a refusal (the subject, not the payload, says who)."""
    await declare_all(bus.js)
    here = Path(__file__).resolve().parents[1] / "services" / "strategy_runner" / "strategies.py"
    settings = msgspec.convert({"strategies": [
        {"name": name, "class": f"{here}:BuyThenClose", "venue": "sim", "symbols": ["BTC/USDT"]}
        for name in ("id_alpha", "id_beta")]}, StrategyRunnerSettings)
    svc = ServiceContext("strategy_runner", argparse.Namespace(instance="t"), DeploymentConfig(), bus,
                         logging.getLogger("test"))
    host = StrategyHost(svc, settings)
    for name in host.specs:
        await bus.subscribe(control_wildcard(name), ControlMessage, host.on_control)
    kv = await bus.key_value(KV_STRATEGY_PARAMS)
    await bus.publish(params_subject("id_alpha"), ParamsUpdate(strategy="id_beta", params={"qty": "9"}))
    await bus.publish(params_subject("id_alpha"), ParamsUpdate(strategy="id_alpha", params={"qty": "2"}))
    await until(lambda: svc.counters["control_refused"] == 1, 10)
    for _ in range(100):                                 # the honest update lands in KV
        try:
            await kv.get(params_key("id_alpha"))
            break
        except Exception:
            await asyncio.sleep(0.05)
    with pytest.raises(KeyNotFoundError):
        await kv.get(params_key("id_beta"))
    result = await bus.request(control_subject("id_alpha", "stop"),
                               StrategyCommand(strategy="id_beta", command="stop"), CommandResult, timeout=5)
    assert not result.ok and "refused" in result.message and "id_beta" in result.message
    assert svc.counters["control_refused"] == 2
