"""Hostile input mid-flow: malformed, oversized and wrong-type messages on every subject each
service consumes; one strategy flooding the router with orders (throttled with rejects, the
others unaffected); a router that comes back to requests older than its maximum age (rejected,
not sent). This stack's router sends orders over REST (the venue-fault module's over the WS-API),
so the venue's lost answers and 5xx after accepting are tried here on that path too. The ledger
balances after each."""
from __future__ import annotations

import asyncio
import signal

import msgspec
import pytest_asyncio

from tradebus.bus.client import DEFAULT_MAX_MESSAGE_BYTES
from tradebus.proto import RejectCode

from .stack import SERVICES, Stack, window

FLOW = {"pulse_a": {"interval": 0.25}, "pulse_b": {"interval": 0.3},
        "flood": {"interval": 0.01, "active": False}}
RISK = {"*": {"max_order_qty": 1.0, "max_open_orders": 50},
        "flood": {"max_order_qty": 1.0, "max_orders_per_s": 4, "order_burst": 4}}
STALE_AFTER_S = 2.0

# what each service consumes besides its nats.micro endpoints (found through $SRV.INFO)
SUBSCRIBED = {
    "strategy_runner": ["md.sim.BTC-USDT.trade", "md.sim.BTC-USDT.book", "ord.evt.sim.pulse_a", "ctl.pulse_a.params"],
    "order_router": ["ord.req.sim.pulse_a"],
    "backtest_worker": ["bt.job"],
}
BAD = {
    "undecodable": b"\xc1\xc1 this is not msgpack",
    "invalid": msgspec.msgpack.encode({"type": "ord.new", "client_order_id": 7, "qty": "lots"}),
    "oversized": b"\x00" * (DEFAULT_MAX_MESSAGE_BYTES + 1),
}


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory):
    async with Stack(tmp_path_factory.mktemp("input"), FLOW, risk=RISK, order_entry="rest",
                     router={"stale_after_s": STALE_AFTER_S}) as running:
        yield running


async def bad_counts(stack, service: str) -> dict[str, int]:
    status = await stack.status(service)
    assert status is not None, f"{service} does not answer"
    return {kind: status.counters.get(f"bad_input.{kind}", 0) for kind in BAD}


async def test_malformed_oversized_and_wrong_type_input_on_every_subject(stack):
    infos = {info["name"]: info for info in await stack.bus.discover("INFO", timeout=0.5)}
    assert set(infos) == set(SERVICES)
    targets = {name: ([e["subject"] for e in info["endpoints"]], SUBSCRIBED.get(name, []))
               for name, info in infos.items()}
    pids = {name: stack.pid(name) for name in SERVICES}
    before = {name: await bad_counts(stack, name) for name in SERVICES}
    async with window(stack, "bad input on every subject", resume=True):
        for endpoints, subscribed in targets.values():
            for payload in BAD.values():
                for subject in endpoints:
                    reply = await stack.bus.nc.request(subject, payload, timeout=2.0)
                    assert reply.headers and reply.headers.get("Nats-Service-Error-Code") == "400", subject
                for subject in subscribed:
                    await stack.bus.publish_bytes(subject, payload)

        async def all_reported():
            for name, (endpoints, subscribed) in targets.items():
                now = await bad_counts(stack, name)
                if any(now[k] < before[name][k] + len(endpoints) + len(subscribed) for k in BAD):
                    return False
            return True
        await stack.until(all_reported, "every service to report every bad message")
        await stack.until_trading(more=3)
    assert {name: stack.pid(name) for name in SERVICES} == pids  # nothing crashed or restarted


async def test_one_strategy_flooding_is_throttled_the_others_trade_on(stack):
    async with window(stack, "flood from one strategy") as w:
        await stack.until_trading(more=1)
        await stack.resume("flood")
        await asyncio.sleep(2.0)
        await stack.pause("flood", quiet=0.0)
        await stack.until_trading(more=2)
    tally = w["tally"]
    flood = await flood_outcomes(w["ledger"])
    assert flood["sent"] >= 40  # about 100 orders/s asked for
    # the bucket lets through its burst plus 4 per second of the router's time, no more; the
    # rest are rejected
    assert flood["accepted"] <= 4 + 4 * flood["span_s"] + 1
    assert flood["rate_limited"] == flood["sent"] - flood["accepted"] > 0
    assert tally.rejected.get(RejectCode.RATE_LIMITED, 0) == flood["rate_limited"]
    others = await calm_outcomes(w["ledger"])
    assert others["sent"] > 0 and others["accepted"] == others["sent"]  # none of theirs refused
    print(f"flood: {flood}; others: {others}")


async def flood_outcomes(ledger) -> dict:
    return await _outcomes(ledger, lambda s: s == "flood")


async def calm_outcomes(ledger) -> dict:
    return await _outcomes(ledger, lambda s: s != "flood")


async def _outcomes(ledger, which) -> dict:
    """Per-group counts and the NewOrder -> OrderAck latencies (printed, not asserted)."""
    orders = await ledger.orders()
    out = {"sent": 0, "accepted": 0, "rate_limited": 0, "ack_ms": []}
    handled = []  # when the router decided each order (its events' ts_init)
    for coid, requests in orders.requests.items():
        if not which(requests[0].strategy):
            continue
        out["sent"] += 1
        events = orders.events.get(coid, [])
        handled += [e.ts_init for e in events if type(e).__name__ in ("OrderAck", "OrderReject")]
        acks = [e for e in events if type(e).__name__ == "OrderAck"]
        if acks:
            out["accepted"] += 1
            out["ack_ms"].append(round((acks[0].ts_init - requests[0].ts_init) / 1e6, 1))
        if any(getattr(e, "reject_code", None) == RejectCode.RATE_LIMITED for e in events):
            out["rate_limited"] += 1
    out["span_s"] = (max(handled) - min(handled)) / 1e9 if handled else 0.0
    lat = sorted(out.pop("ack_ms"))
    out["ack_ms_p50"] = lat[len(lat) // 2] if lat else None
    out["ack_ms_max"] = lat[-1] if lat else None
    return out


async def test_restarted_router_rejects_requests_older_than_its_max_age(stack):
    """The router is frozen (SIGSTOP) while orders pile up in the stream, then killed; its
    successor finds them older than stale_after_s and rejects them instead of trading late."""
    async with window(stack, "router back after max request age") as w:
        await stack.until_trading(more=1)
        await stack.kill("order_router", signal.SIGSTOP)
        await asyncio.sleep(STALE_AFTER_S + 1.5)  # pulse keeps asking: those requests wait in ORDERS
        await stack.kill("order_router")  # SIGKILL while frozen: the supervisor starts a fresh router
        await stack.pause()  # nothing new: what is left is the backlog
        await asyncio.sleep(1.0)
    tally = w["tally"]
    orders = await w["ledger"].orders()
    stale = [coid for coid, events in orders.events.items()
             if any("stale request" in getattr(e, "reason", "") for e in events)]
    assert len(stale) >= 4, tally.report()
    assert tally.rejected.get(RejectCode.INVALID_ORDER, 0) >= len(stale)


async def test_rest_order_entry_lost_answers_and_5xx_after_accept(stack):
    """Over REST, an order the venue executed but never answered (the router's request times
    out) or answered 503: each is found by client id, none is rejected or sent twice."""
    async with window(stack, "REST: venue answers lost / 5xx after accepting") as w:
        await stack.until_trading(more=1)
        before = (await stack.sim_state())["counters"]
        await stack.sim("faults", {"answer_lost_rate": 0.3, "error_after_accept_rate": 0.3})
        try:
            async def faulted():
                now = (await stack.sim_state())["counters"]
                return now["faults_lost_answers"] > before["faults_lost_answers"] and \
                    now["faults_5xx"] > before["faults_5xx"]
            await stack.until(faulted, "both faults to hit an order")
        finally:
            await stack.sim("faults", {"answer_lost_rate": 0, "error_after_accept_rate": 0})
        await stack.until_trading(more=2)
    assert not w["tally"].rejected, w["tally"].report()
