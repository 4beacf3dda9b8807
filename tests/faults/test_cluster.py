"""Faults on a three-node NATS cluster under the fault suite's supervised paper stack
(tests/faults/stack.py: every service a real process, Pulse strategies trading through
strategy_runner and order_router, a backtest worker), every stream and bucket with three replicas.

A node SIGKILLed mid-flow and restarted, and the ORDERS stream leader SIGKILLed, each while a study
runs: orders, fills and the study carry on while the node is down, the node comes back and catches
up, every order strategy_runner made is stored once, and the ledger balances.
"""
from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from tradebus.bus import NatsCluster
from tradebus.proto.subjects import ORDERS_STREAM
from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit

from ..services.backtest_worker.farm import STRATEGIES, real_bars
from .cluster_stack import HANG_GUARD, REPLICAS, GatedStudy, leader_changed, stream_leader, whole
from .stack import Stack, window

FLOW = {"pulse_a": {"interval": 0.25}, "pulse_b": {"interval": 0.3}}


class ClusterStack(Stack):
    """The fault suite's stack with its nats-server replaced by a three-node cluster."""

    def __init__(self, tmp, strategies, **config) -> None:
        super().__init__(tmp, strategies, **config)
        self.nats = NatsCluster(3, state_dir=tmp / "nats")


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRADEBUS_JS_REPLICAS", str(REPLICAS))  # the stack's Bus and every service declare three
        async with ClusterStack(tmp_path_factory.mktemp("cluster"), FLOW) as running:
            await whole(running.bus, running.nats)
            running.dataset = await publish_dataset(running.bus, real_bars(3_000))
            yield running


async def orders_made(stack: Stack) -> int:
    """NewOrders strategy_runner made for its strategies (its status counter)."""
    status = await stack.status("strategy_runner")
    assert status is not None, "strategy_runner does not answer"
    return status.counters.get("orders", 0)


async def fault_mid_flow(stack, tmp_path, scenario: str, fault) -> None:
    """``fault()`` kills a node (and returns it) while the strategies trade and a study runs; the
    flow and the study must carry on with the node down; it is restarted and catches up; then
    the ledger must balance and every order the runner made must be in ORDERS."""
    study = GatedStudy(tmp_path / "gate")
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=stack.dataset,
                     grid=parse_grid(["fast=2:6:1", "slow=40,50"]), params={"gate_dir": str(study.gate)})
    async with window(stack, scenario) as w:
        w["ledger"].expect_study(spec.study_id, [p.job.job_id for p in build_jobs(spec)])
        made_before = await orders_made(stack)
        await submit(stack.bus, spec)
        collecting = asyncio.ensure_future(Collector(stack.bus, spec).run(timeout=HANG_GUARD, publish_progress=False))
        await stack.until(study.running, "the worker to start a job of the study", timeout=HANG_GUARD)
        await stack.until_trading(more=2)

        victim = await fault()
        study.open()
        await stack.until_trading(more=3)  # fills carry on with the node down
        await collecting                   # and the study completes

        assert stack.nats.restart_exited() == [victim]
        await whole(stack.bus, stack.nats)
        await stack.until_trading(more=2)
    made = await orders_made(stack) - made_before
    tally = w["tally"]
    assert tally.sent == made > 0, f"strategy_runner made {made} orders, ORDERS stored {tally.sent}"
    assert tally.study_results == spec.total_jobs


async def test_a_node_killed_mid_flow_and_restarted_loses_and_duplicates_nothing(stack, tmp_path):
    async def kill_a_follower():
        leader = await stream_leader(stack.bus, ORDERS_STREAM)
        victim = next(node for node in stack.nats.nodes if node.server_name != leader)
        stack.nats.kill(victim)  # its clients fail over to the other two
        assert victim.process.returncode == -9
        return victim

    await fault_mid_flow(stack, tmp_path, "cluster: a node SIGKILLed and restarted", kill_a_follower)


async def test_the_orders_stream_leader_killed_loses_and_duplicates_nothing(stack, tmp_path):
    async def kill_the_leader():
        leader = await stream_leader(stack.bus, ORDERS_STREAM)
        victim = stack.nats.node(leader)
        stack.nats.kill(victim)
        await stack.until(lambda: leader_changed(stack.bus, ORDERS_STREAM, leader), "ORDERS to elect a new leader",
                          timeout=HANG_GUARD, step=0.05)
        return victim

    await fault_mid_flow(stack, tmp_path, "cluster: the ORDERS leader SIGKILLed", kill_the_leader)
