"""The router's rate-limit rules against a sim that enforces Binance's limits: the router's view
of each budget is the sim's, and a burst above the order-count rules is paced (10 s rule) and
refused locally (daily rule) without a single 429 from the venue."""
from __future__ import annotations

import msgspec
import pytest
import pytest_asyncio

from tradebus.proto import ORDER_EVENT_DECODER, CancelAck, CancelOrder, OrderAck, OrderReject, RateLimitInfo, RejectCode
from tradebus.proto.codec import decoder_for
from tradebus.proto.subjects import account_subject, order_event_wildcard
from tradebus.services.order_router.router import OrderRouter
from tradebus.services.sim_exchange.settings import MarketLimits, UsageLimits

from .conftest import SPOT, Harness, adapters_for, running_sim, sim_config, top, until

ORDERS_10S, ORDERS_1D = 4, 6


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    """A sim enforcing scaled-down Binance spot order limits (and its real weight limit)."""
    limits = UsageLimits(spot=MarketLimits(request_weight_1m=6000, orders_10s=ORDERS_10S, orders_1d=ORDERS_1D))
    async with running_sim(msgspec.structs.replace(sim_config(), limits=limits)) as venue:
        yield venue


def with_limits(adapter, **limits):
    """The adapter with its YAML rules, ``limits`` (rule name -> limit) changed to the sim's."""
    rules = tuple(msgspec.structs.replace(r, limit=limits.get(r.name, r.limit)) for r in adapter.config.rate_limits)
    adapter.config = msgspec.structs.replace(adapter.config, rate_limits=rules)
    return adapter


class LimitedHarness(Harness):
    """The shared harness, its spot adapter's order-count rules scaled to the sim's."""

    async def start(self):
        async def on_evt(msg):
            self.events.append(ORDER_EVENT_DECODER.decode(msg.data))
        self._sub = await self.bus.nc.subscribe(order_event_wildcard(self.venue), cb=on_evt)
        spot, usdm = adapters_for(self.sim, order_entry="rest")
        with_limits(spot, orders_10s=ORDERS_10S, orders_1d=ORDERS_1D)
        self.router = OrderRouter(self.bus, self.venue, [spot, usdm], self.risk, self.options)
        await self.router.start()
        await until(self.router.ready.is_set)
        return self.router


@pytest.fixture
def harness(harness):
    harness.__class__ = LimitedHarness
    return harness


async def test_burst_is_paced_and_refused_without_a_429_and_budgets_agree(harness, bus):
    h = harness
    info_decoder = decoder_for(RateLimitInfo)
    reports: list[RateLimitInfo] = []

    async def on_report(msg):
        reports.append(info_decoder.decode(msg.data))
    sub = await bus.nc.subscribe(account_subject(h.venue, "ratelimit"), cb=on_report)
    await h.start()
    spot = h.router.adapters[0]
    limiter = h.router._buckets[id(spot)]
    usage = h.sim.venue.usage
    assert usage.order_count("spot", "sim-key", "orders_1d") == 0
    price = float(top(h.sim)[0][-1][0]) * 0.97  # rests well below the book
    coids = [f"burst{i}" for i in range(ORDERS_1D + 2)]
    for coid in coids:
        await h.send(h.order(coid, side="buy", order_type="limit", qty=0.001, price=price), coid)
    await h.wait(OrderAck, n=ORDERS_1D, timeout=30)
    rejects = await h.wait(OrderReject, n=2, timeout=30)
    assert {r.reject_code for r in rejects} == {RejectCode.RATE_LIMITED}
    assert all("orders_1d" in r.reason for r in rejects)
    # paced: the 10 s rule made orders wait for the next window; not one answer from the sim was 429
    assert limiter.waits >= 1
    assert usage.counters["limit_429"] == 0 and h.router.counters["rate_limited"] == 0
    assert usage.order_count("spot", "sim-key", "orders_1d") == ORDERS_1D
    # the last REST call is the router's: its view of every budget is the sim's
    await h.send(CancelOrder(client_order_id=h.of(OrderAck)[0].client_order_id, strategy="s1", venue=h.venue,
                             symbol=SPOT, ts_init=1))
    await h.wait(CancelAck)
    sim_view = {"request_weight": lambda: usage.used_weight("spot", "127.0.0.1"),
                "orders_10s": lambda: usage.order_count("spot", "sim-key", "orders_10s"),
                "orders_1d": lambda: usage.order_count("spot", "sim-key", "orders_1d")}
    await until(lambda: all(limiter.status(rule).used == view() for rule, view in sim_view.items()))
    assert limiter.venue_syncs > 0
    # reports name the rule closest to its limit: the daily order count reached 100%
    await until(lambda: any(r.rule == "orders_1d" and r.pct == pytest.approx(100) for r in reports))
    last = [r for r in reports if r.rule == "orders_1d"][-1]
    assert last.rule_type == "fixed_window" and last.window_ms == 86_400_000 and last.scope == "binance:spot"
    await sub.unsubscribe()
