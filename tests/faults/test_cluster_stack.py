"""The fault suite's supervised paper stack (tests/faults/stack.py: every service a real process,
Pulse strategies trading through strategy_runner and order_router, a backtest worker) on a
three-node NATS cluster, every stream and bucket with three replicas. The ORDERS stream leader is
SIGKILLed mid-flow while a study runs: orders, fills and the study carry on under the new leader,
the node comes back and catches up, and the ledger balances."""
from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from tradebus.bus import NatsCluster
from tradebus.bus.jetstream import wait_replicated
from tradebus.proto.subjects import ORDERS_STREAM
from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit

from ..services.backtest_worker.farm import STRATEGIES, real_bars
from .cluster_stack import HANG_GUARD, REPLICAS, GatedStudy, eventually, leader_changed, stream_leader
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
        async with ClusterStack(tmp_path_factory.mktemp("cluster-stack"), FLOW) as running:
            yield running


async def orders_made(stack: Stack) -> int:
    """NewOrders strategy_runner made for its strategies (its status counter)."""
    status = await stack.status("strategy_runner")
    assert status is not None, "strategy_runner does not answer"
    return status.counters.get("orders", 0)


async def test_the_orders_leader_killed_under_the_running_stack_loses_and_duplicates_nothing(stack, tmp_path):
    infos = await wait_replicated(stack.bus.js, timeout=HANG_GUARD)
    assert {info.config.num_replicas for info in infos.values()} == {REPLICAS}
    study = GatedStudy(tmp_path / "gate")
    ident = await publish_dataset(stack.bus, real_bars(3_000))
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=ident,
                     grid=parse_grid(["fast=2:6:1", "slow=40,50"]), params={"gate_dir": str(study.gate)})
    async with window(stack, "cluster: ORDERS leader SIGKILL, real stack") as w:
        w["ledger"].expect_study(spec.study_id, [p.job.job_id for p in build_jobs(spec)])
        made_before = await orders_made(stack)
        await submit(stack.bus, spec)
        collecting = asyncio.ensure_future(Collector(stack.bus, spec).run(timeout=HANG_GUARD, publish_progress=False))
        await eventually(study.running, "the worker to start a job of the study")
        await stack.until_trading(more=2)

        leader = await stream_leader(stack.bus, ORDERS_STREAM)
        victim = stack.nats.node(leader)
        stack.nats.kill(victim)
        await eventually(lambda: leader_changed(stack.bus, ORDERS_STREAM, leader), "ORDERS to elect a new leader")
        study.open()
        await stack.until_trading(more=3)  # fills carry on under the new leader
        await collecting

        assert stack.nats.restart_exited() == [victim]
        await wait_replicated(stack.bus.js, timeout=HANG_GUARD)
        await stack.until_trading(more=2)
    made = await orders_made(stack) - made_before
    tally = w["tally"]
    assert tally.sent == made > 0, f"strategy_runner made {made} orders, ORDERS stored {tally.sent}"
    assert tally.study_results == spec.total_jobs
