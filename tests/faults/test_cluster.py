"""Faults on a three-node NATS cluster (streams and buckets with three replicas) under the paper
flow: a node SIGKILLed mid-flow and restarted, the ORDERS stream leader SIGKILLed. Orders, fills
and a running study carry on while the node is down; at the end nothing is lost or duplicated.

One cluster, sim_exchange, order router and backtest worker serve the module; each scenario has
its own strategy and study, and leaves the cluster whole again (every replica current).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from tradebus.audit import Audit, assert_balanced
from tradebus.bus import Bus, NatsCluster
from tradebus.bus.jetstream import wait_replicated
from tradebus.proto.subjects import ORDERS_STREAM
from tradebus.services.order_router.router import OrderRouter
from tradebus.services.sim_exchange.testing import running_sim
from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit

from ..services.backtest_worker.farm import STRATEGIES, Workers, real_bars
from .cluster_stack import (
    HANG_GUARD,
    REPLICAS,
    GatedStudy,
    OrderFlow,
    connect,
    eventually,
    leader_changed,
    node_of,
    ready,
    start_router,
    stream_leader,
)


@dataclass
class Stack:
    cluster: NatsCluster
    bus: Bus            # the strategy's and the test's connection
    router_bus: Bus
    router: OrderRouter
    sim: object
    dataset: str
    venue: str = "sim"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    cluster = NatsCluster(3, state_dir=tmp / "nats").start()  # main thread: the nodes die with this process
    try:
        bus = await connect(cluster, "strategy")
        await ready(bus)
        router_bus = await connect(cluster, "order_router")
        async with running_sim() as sim:
            router = start_router(router_bus, sim, "sim")
            await router.start()
            await eventually(router.ready.is_set, "the router to be ready")
            dataset = await publish_dataset(bus, real_bars(3_000))
            async with Workers(bus.nc, cluster.url, 1, tmp / "cache", tmp / "logs", batch=2, ack_wait=5):
                yield Stack(cluster, bus, router_bus, router, sim, dataset)
            await router.stop()
        await router_bus.close()
        await bus.close()
    finally:
        cluster.stop()


async def whole_again(s: Stack) -> None:
    """Every declared stream has its leader and three current replicas, the restarted node among them."""
    infos = await wait_replicated(s.bus.js, timeout=HANG_GUARD)
    for name, info in infos.items():
        assert info.config.num_replicas == REPLICAS, name
        peers = {info.cluster.leader, *(p.name for p in info.cluster.replicas)}
        assert peers == {node.server_name for node in s.cluster.nodes}, name


@dataclass
class Scenario:
    """One fault's window: the ledger started, a study running (a worker inside a gated job), a
    strategy's orders flowing and answered."""

    s: Stack
    audit: Audit
    study: GatedStudy
    spec: object
    flow: OrderFlow

    @classmethod
    async def begin(cls, s: Stack, gate_dir: Path) -> Scenario:
        audit = Audit(s.bus, s.sim.url)
        await audit.start()
        study = GatedStudy(gate_dir)
        spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=s.dataset,
                         grid=parse_grid(["fast=2:10:1", "slow=30,40"]), params={"gate_dir": str(gate_dir)})
        audit.expect_study(spec.study_id, [planned.job.job_id for planned in build_jobs(spec)])
        await submit(s.bus, spec)
        await eventually(study.running, "the worker to start a job of the study")
        flow = await OrderFlow(s.bus, s.venue).start()
        await flow.sent_more(10)
        await eventually(lambda: flow.outcomes >= 10, "the first outcomes")
        return cls(s, audit, study, spec, flow)

    async def carry_on(self) -> None:
        """With the node down: 20 more orders get their outcomes, the study completes."""
        self.study.open()
        before = self.flow.outcomes
        await self.flow.sent_more(20)
        await eventually(lambda: self.flow.outcomes >= before + 20, "orders to carry on with a node down")
        await Collector(self.s.bus, self.spec).run(timeout=HANG_GUARD, publish_progress=False)

    async def end(self, victim, name: str) -> None:
        """Restart the killed node, wait until it caught up, send more orders, stop the flow: the
        ledger must balance (every order accepted and filled once at the venue and on the bus,
        every job of the study one stored result)."""
        assert self.s.cluster.restart_exited() == [victim]
        await whole_again(self.s)
        await self.flow.sent_more(10)
        await self.flow.stop()
        tally = assert_balanced(await self.audit.settle(name, timeout=HANG_GUARD))
        assert tally.sent == len(self.flow.sent) and tally.accepted == tally.filled == tally.sent > 0
        assert tally.fills >= tally.filled and tally.study_results == self.spec.total_jobs


async def test_a_node_killed_mid_flow_and_restarted_loses_and_duplicates_nothing(stack, tmp_path):
    scenario = await Scenario.begin(stack, tmp_path / "gate")
    victim = node_of(stack.cluster, stack.router_bus)  # the router's own node: it has to fail over
    stack.cluster.kill(victim)
    assert victim.process.returncode == -9
    await scenario.carry_on()
    await scenario.end(victim, "node killed and restarted")


async def test_the_orders_stream_leader_killed_loses_and_duplicates_nothing(stack, tmp_path):
    scenario = await Scenario.begin(stack, tmp_path / "gate")
    leader = await stream_leader(stack.bus, ORDERS_STREAM)
    victim = stack.cluster.node(leader)
    stack.cluster.kill(victim)
    await eventually(lambda: leader_changed(stack.bus, ORDERS_STREAM, leader), "ORDERS to elect a new leader")
    await scenario.carry_on()
    await scenario.end(victim, "ORDERS leader killed")
