"""sim_exchange misbehaving mid-flow (its /admin/faults knobs): 5xx answers, orders executed whose
answer never comes, 429 and 418, dropped WebSockets, skipped depth sequence numbers, maintenance,
and a restart. Orders go on through the router; after each the ledger balances."""
from __future__ import annotations

import asyncio
import signal

import pytest
import pytest_asyncio

from .stack import Stack, window

FLOW = {"pulse_a": {"interval": 0.2}, "pulse_b": {"interval": 0.25}}
CLEAR = {"error_rate": 0, "error_after_accept_rate": 0, "answer_lost_rate": 0, "rate_limit_rate": 0,
         "ban_rate": 0, "maintenance": False, "depth_gap_every": 0, "ws_drop_after_messages": 0}


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory):
    async with Stack(tmp_path_factory.mktemp("venue"), FLOW) as running:
        yield running


async def counter(stack, name: str) -> int:
    return (await stack.sim_state())["counters"].get(name, 0)


@pytest.mark.parametrize("knobs, hit", [
    ({"error_rate": 0.3}, "wsapi_faults"),
    ({"error_after_accept_rate": 0.3}, "wsapi_faults"),
    ({"answer_lost_rate": 0.4}, "wsapi_faults"),
    ({"rate_limit_rate": 0.3}, "wsapi_faults"),
    ({"ban_rate": 0.3}, "wsapi_faults"),
], ids=["5xx", "5xx-after-accept", "timeout-after-accept", "429", "418"])
async def test_order_entry_faults(stack, knobs, hit):
    name = next(iter(knobs))
    async with window(stack, f"venue {name}={knobs[name]}"):
        await stack.until_trading(more=1)
        before = await counter(stack, hit)
        await stack.sim("faults", knobs)
        try:
            async def faulted():
                return await counter(stack, hit) >= before + 3
            await stack.until(faulted, f"{name} to hit a few order requests")
        finally:
            await stack.sim("faults", CLEAR)
        await stack.until_trading(more=3)


async def test_websockets_dropped(stack):
    async with window(stack, "venue drops every WebSocket"):
        await stack.until_trading(more=1)
        dropped = 0
        for _ in range(3):
            dropped += (await stack.sim("drop_ws", {}))["dropped"]
            await asyncio.sleep(0.7)
        assert dropped >= 3  # market streams, the user stream and the WS-API connection
        await stack.until_trading(more=3)


async def test_depth_sequence_gaps(stack):
    async with window(stack, "venue skips depth sequence numbers"):
        before = await counter(stack, "depth_gaps")
        await stack.sim("faults", {"depth_gap_every": 15})
        try:
            async def gapped():
                return await counter(stack, "depth_gaps") >= before + 2
            await stack.until(gapped, "depth gaps to be sent")
        finally:
            await stack.sim("faults", CLEAR)
        status = await stack.status("strategy_runner")
        seen = status.counters.get("md_events", 0)

        async def book_flows():
            now = await stack.status("strategy_runner")
            return now is not None and now.counters.get("md_events", 0) > seen + 5
        await stack.until(book_flows, "market data to flow after the resync")
        await stack.until_trading(more=2)


async def test_maintenance(stack):
    async with window(stack, "venue in maintenance"):
        await stack.until_trading(more=1)
        before = await counter(stack, "wsapi_faults")
        await stack.sim("faults", {"maintenance": True})
        await asyncio.sleep(2.0)
        await stack.sim("faults", CLEAR)
        assert await counter(stack, "wsapi_faults") > before  # orders did meet the maintenance
        await stack.until_trading(more=3)


async def test_venue_restart(stack):
    """A restarted sim forgets its orders and wallets: its records are kept just before, so the
    ledger covers both lives. (Trade ids start again at 1; the window is short enough that this
    scenario's fills do not reuse one.)"""
    async with window(stack, "venue restarted") as w:
        await stack.until_trading(more=2)
        await stack.sim("faults", {"maintenance": True})  # a scheduled restart: no order is mid-flight
        await asyncio.sleep(1.5)
        await w["ledger"].venue_restarting()
        await stack.kill("sim_exchange", signal.SIGKILL)
        await stack.until_trading(more=3, timeout=60)
