"""Rate-limit rules under a simulated clock: each rule type, several rules at once, per-endpoint
weights and scopes, refusals, the venue's usage headers and the closest-rule reports."""
from __future__ import annotations

import asyncio

import pytest

from tradebus.exchanges import (
    RateLimiter,
    RateLimitRejected,
    RateLimitRule,
    RuleStatus,
    load_config,
    make_adapter,
    rate_limit_info,
)
from tradebus.proto import RejectCode


class SimClock:
    """Time that only moves when a limiter sleeps (or the test says so)."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(rules, clock, reports=None, share_key=""):
    on_report = None if reports is None else (lambda status, weight: reports.append(status))
    return RateLimiter([RateLimitRule(**r) for r in rules], on_report, clock=clock, sleep=clock.sleep,
                       share_key=share_key)


async def test_sliding_window_waits_for_the_oldest_request_to_leave():
    clock = SimClock()
    lim = limiter([dict(name="w", type="sliding_window", interval=10, limit=3)], clock)
    start = clock.now
    for dt in (0, 1, 2):
        clock.now = start + dt
        await lim.acquire()
    await lim.acquire()  # full: the request of t=0 leaves the window at t=10
    assert clock.now == pytest.approx(start + 10)
    assert lim.status("w").used == 3  # t=1, t=2 and this one
    await lim.acquire()  # the next leaves at t=11
    assert clock.now == pytest.approx(start + 11)


async def test_fixed_window_waits_for_the_next_window_and_starts_empty():
    clock = SimClock(start=1_000_005.0)  # half way through the window [1_000_000, 1_000_010)
    lim = limiter([dict(name="f", type="fixed_window", interval=10, limit=3)], clock)
    for _ in range(3):
        await lim.acquire()
    assert clock.slept == []
    await lim.acquire()
    assert clock.now == pytest.approx(1_000_010.0)  # the window boundary, not 10 s after the first request
    assert lim.status("f").used == 1
    await lim.acquire()
    await lim.acquire()
    assert clock.now == pytest.approx(1_000_010.0) and lim.status("f").pct == pytest.approx(100)


async def test_token_bucket_refills_continuously():
    clock = SimClock()
    lim = limiter([dict(name="t", type="token_bucket", interval=1, limit=10)], clock)
    start = clock.now
    for _ in range(10):
        await lim.acquire()
    await lim.acquire(weight=2)  # 2 units at 10 per second
    assert clock.now - start == pytest.approx(0.2)
    clock.now += 0.5
    assert lim.status("t").used == pytest.approx(5)


async def test_several_rules_at_once_the_tightest_decides():
    clock = SimClock(start=1_000_000.0)
    rules = [dict(name="request_weight", type="sliding_window", interval=60, limit=20, weight=1,
                  weight_map={"fetch_order": 4}),
             dict(name="orders_10s", type="fixed_window", interval=10, limit=2, weight=0,
                  weight_map={"create_order": 1})]
    lim = limiter(rules, clock)
    await lim.acquire(endpoint="create_order")
    await lim.acquire(endpoint="create_order")
    assert lim.status("request_weight").used == 2 and lim.status("orders_10s").used == 2
    # a cancel counts only against the weight rule: it goes at once while orders are at their limit
    await lim.acquire(endpoint="cancel_order")
    await lim.acquire(endpoint="fetch_order")
    assert clock.slept == [] and lim.status("request_weight").used == 7
    await lim.acquire(endpoint="create_order")  # the order rule makes it wait for its next window
    assert clock.now == pytest.approx(1_000_010.0)
    # now the weight rule binds: 8 of 20 used, three fetch_order (12) fit, a fourth waits 60 s
    for _ in range(3):
        await lim.acquire(endpoint="fetch_order")
    assert lim.status("request_weight").used == 20
    await lim.acquire(endpoint="fetch_order")
    assert clock.now == pytest.approx(1_000_060.0)  # the first request's weight left the window


async def test_per_endpoint_weights_and_endpoint_scope():
    clock = SimClock()
    lim = limiter([dict(name="per_endpoint", type="sliding_window", interval=2, limit=3, scope="endpoint",
                        weight=0, weight_map={"create_order": 1, "cancel_order": 1}),
                   dict(name="ip", type="sliding_window", interval=2, limit=100, weight=1,
                        weight_map={"fetch_open_orders": 40})], clock)
    for _ in range(3):
        await lim.acquire(endpoint="create_order")
        await lim.acquire(endpoint="cancel_order")  # its own budget: not blocked by create_order's
    await lim.acquire(endpoint="fetch_balance")  # weight 0 on the endpoint rule: not counted there
    assert clock.slept == []
    assert lim.status("per_endpoint", "create_order").used == 3
    assert lim.status("per_endpoint", "cancel_order").used == 3
    assert lim.status("ip").used == 7
    await lim.acquire(endpoint="fetch_open_orders")
    assert lim.status("ip").used == 47
    closest = lim.closest()
    assert closest.rule == "per_endpoint" and closest.pct == pytest.approx(100)
    await lim.acquire(endpoint="create_order")
    assert clock.slept == [pytest.approx(2.0)]


async def test_endpoint_glob_limits_a_rule_to_matching_endpoints():
    rule = RateLimitRule(name="o", interval=1, limit=5, endpoint="create_*", weight=2)
    assert rule.weight_for("create_order") == 2 and rule.weight_for("cancel_order") == 0
    assert rule.weight_for(None) == 0


async def test_reject_rule_refuses_with_its_reason_and_charges_nothing():
    clock = SimClock(start=1_000_000.0)
    lim = limiter([dict(name="weight", type="sliding_window", interval=60, limit=100),
                   dict(name="orders_1d", type="fixed_window", interval=86400, limit=2, weight=0,
                        weight_map={"create_order": 1}, on_limit="reject")], clock)
    await lim.acquire(endpoint="create_order")
    await lim.acquire(endpoint="create_order")
    with pytest.raises(RateLimitRejected) as raised:
        await lim.acquire(endpoint="create_order")
    assert raised.value.code is RejectCode.RATE_LIMITED
    assert "orders_1d" in raised.value.reason and "2 of 2" in raised.value.reason
    assert lim.status("weight").used == 2 and clock.slept == [] and lim.rejects == 1
    await lim.acquire(endpoint="cancel_order")  # other endpoints still go


async def test_max_wait_turns_a_long_wait_into_a_refusal():
    clock = SimClock(start=1_000_020.0)  # a minute boundary
    lim = limiter([dict(name="m", type="fixed_window", interval=60, limit=1, max_wait=5)], clock)
    await lim.acquire()
    with pytest.raises(RateLimitRejected, match="room again in 60.000s"):
        await lim.acquire()
    clock.now += 57  # 3 s left in the window: within max_wait, so it waits
    await lim.acquire()
    assert clock.slept == [pytest.approx(3.0)]


async def test_usage_headers_set_the_budget_with_requests_in_flight_added():
    clock = SimClock(start=1_000_000.0)
    lim = limiter([dict(name="request_weight", type="fixed_window", interval=60, limit=6000,
                        weight_map={"fetch_order": 4}, header="x-mbx-used-weight-1m"),
                   dict(name="orders_10s", type="fixed_window", interval=10, limit=100, weight=0,
                        weight_map={"create_order": 1}, header="X-MBX-ORDER-COUNT-10S")], clock)
    first = await lim.acquire(endpoint="create_order")
    second = await lim.acquire(endpoint="fetch_order")
    assert lim.status("request_weight").used == 5
    # the venue counts 900 (other clients of the IP too) once the order is answered; the fetch is in flight
    lim.settle(first, {"X-MBX-USED-WEIGHT-1M": "900", "x-mbx-order-count-10s": "7"})
    assert lim.status("request_weight").used == 904 and lim.status("orders_10s").used == 7
    # the same headers object again (no new response) changes nothing
    lim.settle(second, {"X-MBX-USED-WEIGHT-1M": "900", "x-mbx-order-count-10s": "7"})
    assert lim.status("request_weight").used == 900
    # a venue that counts less than we did (our weight table too high) brings the budget down
    lim.settle(None, {"X-MBX-USED-WEIGHT-1M": "12"})
    assert lim.status("request_weight").used == 12 and lim.venue_syncs == 3


async def test_remaining_header_on_an_endpoint_rule():
    clock = SimClock()
    lim = limiter([dict(name="order_endpoint", type="sliding_window", interval=1, limit=10, scope="endpoint",
                        weight=0, weight_map={"create_order": 1}, remaining_header="X-Bapi-Limit-Status")], clock)
    ticket = await lim.acquire(endpoint="create_order")
    lim.settle(ticket, {"X-Bapi-Limit-Status": "2"})  # the venue has 8 counted on this endpoint
    assert lim.status("order_endpoint", "create_order").used == 8


async def test_ip_scope_is_shared_by_limiters_of_the_same_venue():
    clock = SimClock()
    rule = dict(name="ip_weight", type="sliding_window", interval=60, limit=10, scope="ip")
    a, b = limiter([rule], clock, share_key="test:ipshare"), limiter([rule], clock, share_key="test:ipshare")
    other = limiter([rule], clock, share_key="test:other")
    await a.acquire(weight=6)
    await b.acquire(weight=3)
    assert a.status("ip_weight").used == 9 == b.status("ip_weight").used
    assert other.status("ip_weight").used == 0


async def test_reports_name_the_closest_rule_at_each_threshold():
    clock = SimClock(start=1_000_000.0)
    reports: list[RuleStatus] = []
    lim = limiter([dict(name="weight", type="sliding_window", interval=60, limit=100),
                   dict(name="orders", type="fixed_window", interval=10, limit=10, weight=0,
                        weight_map={"create_order": 1})], clock, reports)
    for _ in range(5):
        await lim.acquire(endpoint="create_order")
    assert [(r.rule, r.pct) for r in reports] == [("orders", 50.0)]
    for _ in range(4):
        await lim.acquire(endpoint="create_order")
    await lim.acquire(endpoint="create_order")
    assert [(r.rule, round(r.pct)) for r in reports] == [("orders", 50), ("orders", 90), ("orders", 100)]
    assert reports[-1].reset_s == pytest.approx(1_000_010.0)
    info = rate_limit_info(reports[-1], venue="binance", scope="binance:spot", weight=1)
    assert (info.rule, info.rule_type, info.window_ms, info.pct) == ("orders", "fixed_window", 10_000, 100.0)
    assert info.reset_ts == 1_000_010 * 10**9
    # the venue's 'too many requests' with Retry-After: every rule of the endpoint waits, and it is reported
    lim.penalise("cancel_order", headers={"Retry-After": "7"})
    assert len(reports) == 4
    await lim.acquire(endpoint="cancel_order")
    assert clock.now == pytest.approx(1_000_007.0)


def test_rule_validation():
    with pytest.raises(ValueError, match="interval and limit"):
        RateLimitRule(name="x", interval=0, limit=1)
    with pytest.raises(ValueError, match="on_limit"):
        RateLimitRule(name="x", interval=1, limit=1, on_limit="drop")
    with pytest.raises(ValueError, match="unique"):
        RateLimiter([RateLimitRule(name="x", interval=1, limit=1), RateLimitRule(name="x", interval=2, limit=1)])


async def test_configured_venues_build_limiters_from_their_rules():
    spot = load_config("binance:spot")
    assert [r.name for r in spot.rate_limits] == ["request_weight", "orders_10s", "orders_1d"]
    adapter = make_adapter("binance:spot", exchange=_NoNetwork())
    clock = SimClock(start=1_000_000.0)
    lim = adapter.rate_limiter(clock=clock, sleep=clock.sleep)
    tickets = [await lim.acquire(endpoint="create_order"), await lim.acquire(endpoint="fetch_open_orders")]
    assert lim.status("orders_10s").used == 1 and lim.status("orders_1d").used == 1
    assert lim.status("request_weight").used >= 81  # ip scope: shared with other limiters of binance:spot
    for ticket in tickets:  # answered: nothing left in flight in the shared budget
        lim.settle(ticket)


class _NoNetwork:
    """Just enough of an exchange for an adapter that never calls it."""

    has = {"createOrderWs": False, "cancelOrderWs": False}
    options: dict = {}
    markets: dict = {}


async def test_waiting_requests_do_not_block_other_endpoints():
    clock = SimClock(start=1_000_000.0)
    lim = RateLimiter([RateLimitRule(name="orders", type="fixed_window", interval=10, limit=1, weight=0,
                                     weight_map={"create_order": 1})], clock=clock)  # real sleep
    await lim.acquire(endpoint="create_order")
    waiting = asyncio.ensure_future(lim.acquire(endpoint="create_order"))
    await asyncio.sleep(0)
    await asyncio.wait_for(lim.acquire(endpoint="cancel_order"), 1)  # not queued behind the waiting order
    assert not waiting.done() and lim.waits == 1
    waiting.cancel()


async def test_penalise_without_retry_after_reports_full_but_holds_nothing():
    clock = SimClock()
    reports: list[RuleStatus] = []
    lim = limiter([dict(name="w", type="sliding_window", interval=60, limit=100)], clock, reports)
    ticket = await lim.acquire()
    seen = {"Retry-After": "30"}
    lim.settle(ticket, seen)
    lim.penalise(headers=seen)  # a WS answer: the REST headers are the last ones already seen, not its own
    assert [(r.rule, r.pct) for r in reports] == [("w", 100.0)]
    await lim.acquire()
    assert clock.slept == []  # the caller's backoff is the pause
