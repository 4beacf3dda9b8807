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


async def start_study(s: Stack, audit: Audit, gate_dir: Path):
    study = GatedStudy(gate_dir)
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=s.dataset,
                     grid=parse_grid(["fast=2:10:1", "slow=30,40"]), params={"gate_dir": str(gate_dir)})
    audit.expect_study(spec.study_id, [planned.job.job_id for planned in build_jobs(spec)])
    await submit(s.bus, spec)
    await eventually(study.running, "the worker to start a job of the study")
    return study, spec


async def finish(s: Stack, audit: Audit, flow: OrderFlow, spec, scenario: str) -> None:
    """Stop the flow; the ledger of the scenario must balance: every order sent is accepted and
    filled once at the venue and on the bus, every job of the study has one stored result."""
    await flow.stop()
    tally = assert_balanced(await audit.settle(scenario, timeout=HANG_GUARD))
    assert tally.sent == len(flow.sent) and tally.accepted == tally.filled == tally.sent > 0
    assert tally.fills >= tally.filled and tally.study_results == spec.total_jobs


async def whole_again(s: Stack) -> None:
    """Every declared stream has its leader and three current replicas, the restarted node among them."""
    infos = await wait_replicated(s.bus.js, timeout=HANG_GUARD)
    for name, info in infos.items():
        assert info.config.num_replicas == REPLICAS, name
        peers = {info.cluster.leader, *(p.name for p in info.cluster.replicas)}
        assert peers == {node.server_name for node in s.cluster.nodes}, name


async def test_a_node_killed_mid_flow_and_restarted_loses_and_duplicates_nothing(stack, tmp_path):
    s = stack
    audit = Audit(s.bus, s.sim.url)
    await audit.start()
    study, spec = await start_study(s, audit, tmp_path / "gate")
    flow = await OrderFlow(s.bus, s.venue).start()
    await flow.sent_more(10)
    await eventually(lambda: flow.outcomes >= 10, "the first outcomes")

    victim = node_of(s.cluster, s.router_bus)  # the router's own node: it has to fail over
    s.cluster.kill(victim)
    assert victim.process.returncode == -9
    study.open()
    before = flow.outcomes
    await flow.sent_more(20)
    await eventually(lambda: flow.outcomes >= before + 20, "orders to carry on with a node down")
    await Collector(s.bus, spec).run(timeout=HANG_GUARD, publish_progress=False)  # the study completes too

    assert s.cluster.restart_exited() == [victim]
    await whole_again(s)
    await flow.sent_more(10)
    await finish(s, audit, flow, spec, "node killed and restarted")


async def test_the_orders_stream_leader_killed_loses_and_duplicates_nothing(stack, tmp_path):
    s = stack
    audit = Audit(s.bus, s.sim.url)
    await audit.start()
    study, spec = await start_study(s, audit, tmp_path / "gate")
    flow = await OrderFlow(s.bus, s.venue).start()
    await flow.sent_more(10)
    await eventually(lambda: flow.outcomes >= 10, "the first outcomes")

    leader = await stream_leader(s.bus, ORDERS_STREAM)
    victim = s.cluster.node(leader)
    s.cluster.kill(victim)
    study.open()

    async def new_leader() -> bool:
        try:
            return await stream_leader(s.bus, ORDERS_STREAM) != leader
        except Exception:  # no leader yet: the election is running
            return False

    await eventually(new_leader, "ORDERS to elect a new leader")
    before = flow.outcomes
    await flow.sent_more(20)
    await eventually(lambda: flow.outcomes >= before + 20, "orders to carry on under the new leader")
    await Collector(s.bus, spec).run(timeout=HANG_GUARD, publish_progress=False)

    assert s.cluster.restart_exited() == [victim]
    await whole_again(s)
    await flow.sent_more(10)
    await finish(s, audit, flow, spec, "ORDERS leader killed")
