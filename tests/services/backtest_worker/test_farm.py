"""The backtest farm end to end: real nats-server with JetStream, real worker processes, real engine.

Each test gets its own server (so consumer settings and leftover jobs never leak between tests).
Workers are paused inside a job with a gate file (see strategies.py) where a test needs to act
while a job is running; no test depends on how long anything takes.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from tradebus.bus import Bus, EmbeddedNats
from tradebus.engine.examples import sma_cross
from tradebus.proto import BacktestDead, EngineSettings, ServiceCommand, ServiceStatus
from tradebus.proto.codec import encode
from tradebus.proto.subjects import bt_dead_subject, bt_job_subject, service_subject
from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit

from .farm import STRATEGIES, Workers, direct_stats, real_bars, stored_records

COLLECT_TIMEOUT = 150.0  # a hang guard only


def workers(bus: Bus, server: EmbeddedNats, tmp_path: Path, count: int, **flags) -> Workers:
    return Workers(bus.nc, server.url, count, tmp_path / "cache", tmp_path / "logs", **flags)


async def worker_status(bus: Bus) -> ServiceStatus:
    return await bus.request(service_subject("backtest_worker", "status"),
                             ServiceCommand(service="backtest_worker", command="status"), ServiceStatus, timeout=5)


async def status_once(bus: Bus, **minimums: int) -> ServiceStatus:
    """The worker status once every counter named reached its minimum (counters are bumped just
    after an ack, which may land a moment after the collector saw the record)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = await worker_status(bus)
        if all(status.counters.get(k, 0) >= v for k, v in minimums.items()):
            return status
        if asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.05)


async def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


def assert_matches_direct(spec, collector, bars, **engine_options) -> None:
    for planned in build_jobs(spec):
        params = {k: v for k, v in planned.job.params.items() if k in ("fast", "slow", "quantity")}
        expected = direct_stats(bars, sma_cross, params, **engine_options)
        assert collector.results[planned.job.job_id].stats == expected, planned.job.job_id


async def test_sweep_over_two_workers_equals_direct_engine_loop(farm, tmp_path):
    server, bus = farm
    bars = real_bars(20_000)
    ident = await publish_dataset(bus, bars)
    settings = EngineSettings(initial_cash=100_000.0, taker_fee_bps=1.0, maker_fee_bps=1.0, slippage_bps=0.5)
    spec = make_spec("sweep", strategy="sma_cross", dataset_id=ident, settings=settings,
                     grid=parse_grid(["fast=2:31:1", "slow=40:130:10"]))
    assert spec.total_jobs == 300
    async with workers(bus, server, tmp_path, 2, batch=16):
        assert await submit(bus, spec) == 300
        assert await submit(bus, spec) == 0  # a second submit is deduplicated by job id
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
    assert collector.dead == {} and len(collector.results) == 300
    assert collector.workers == {"w1", "w2"}
    assert_matches_direct(spec, collector, bars, initial_capital=100_000.0, fee_rate=1e-4, slippage_bps=0.5)
    assert await stored_records(bus.js, spec.study_id) == (300, 0)


async def test_sigkill_mid_study_still_yields_every_result_exactly_once(farm, tmp_path):
    server, bus = farm
    bars = real_bars(10_000)
    ident = await publish_dataset(bus, bars)
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "closed").touch()
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=ident,
                     grid=parse_grid(["fast=2:21:1", "slow=40:80:10"]), params={"gate_dir": str(gate)})
    async with workers(bus, server, tmp_path, 2, batch=4, ack_wait=2) as farm_workers:
        await submit(bus, spec)
        victim = farm_workers.procs["w1"]
        await wait_for(lambda: (gate / f"started-{victim.pid}").exists(), "w1 to start a job")
        farm_workers.kill("w1")  # it holds a batch of jobs, none finished
        (gate / "closed").unlink()
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
        status = await worker_status(bus)  # only w2 is left to answer
    assert victim.returncode == -9
    assert status.instance == "w2" and status.counters["redeliveries"] >= 1
    assert collector.dead == {} and len(collector.results) == spec.total_jobs == 100
    assert_matches_direct(spec, collector, bars, initial_capital=spec.settings.initial_cash,
                          fee_rate=spec.settings.taker_fee_bps / 1e4)
    assert await stored_records(bus.js, spec.study_id) == (100, 0)


async def test_poisoned_job_ends_in_dead_letter_and_the_study_completes(farm, tmp_path):
    server, bus = farm
    bars = real_bars(5_000)
    ident = await publish_dataset(bus, bars)
    spec = make_spec("sweep", strategy="sma_cross", dataset_id=ident, grid=parse_grid(["fast=0:10:2", "slow=30,40"]))
    seen_dead: list[BacktestDead] = []

    async def on_dead(dead, _msg) -> None:
        seen_dead.append(dead)

    await bus.subscribe(bt_dead_subject(spec.study_id), BacktestDead, on_dead)
    async with workers(bus, server, tmp_path, 1, attempts=2, retry_delay=0.1):
        await bus.js.publish(bt_job_subject(spec.study_id), b"\xc1 not a job")
        await submit(bus, spec)
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
        status = await status_once(bus, jobs_dead=2, jobs_done=10)
    poisoned = {p.job.job_id for p in build_jobs(spec) if p.job.params["fast"] == 0}
    assert len(poisoned) == 2 and set(collector.dead) == poisoned
    for dead in collector.dead.values():
        assert dead.attempts == 2 and dead.worker == "w1"
        assert "period must be an integer >= 1, got 0" in dead.reason
    assert len(collector.results) == 10 and not set(collector.results) & poisoned
    assert collector.complete
    assert {d.job.job_id for d in seen_dead} == poisoned
    assert await stored_records(bus.js, spec.study_id) == (10, 2)
    assert status.counters["bad_input"] == 1 and status.counters["jobs_dead"] == 2
    assert status.counters["jobs_retried"] == 2 and status.counters["jobs_done"] == 10


async def test_job_that_kills_its_workers_is_dead_lettered_by_the_next_one(farm, tmp_path):
    server, bus = farm
    ident = await publish_dataset(bus, real_bars(2_000))
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:kill_own_worker", dataset_id=ident)
    farm_workers = workers(bus, server, tmp_path, 0, attempts=1, ack_wait=1)
    try:
        farm_workers.start("w1")
        await farm_workers.wait_ready(["w1"])
        await submit(bus, spec)
        assert await asyncio.to_thread(farm_workers.procs["w1"].wait, 60) == -9
        farm_workers.start("w2")
        await farm_workers.wait_ready(["w2"])
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
    finally:
        await farm_workers.stop()
    (dead,) = collector.dead.values()
    assert dead.worker == "w2" and dead.attempts == 2
    assert "no outcome after 1 deliveries" in dead.reason
    assert await stored_records(bus.js, spec.study_id) == (0, 1)


async def test_heartbeats_keep_a_job_longer_than_ack_wait_from_redelivery(farm, tmp_path):
    server, bus = farm
    ident = await publish_dataset(bus, real_bars(2_000))
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "closed").touch()
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=ident, params={"gate_dir": str(gate)})
    async with workers(bus, server, tmp_path, 1, ack_wait=1, batch=1) as farm_workers:
        await submit(bus, spec)
        await wait_for(lambda: (gate / f"started-{farm_workers.procs['w1'].pid}").exists(), "the job to start")
        await asyncio.sleep(3.5)  # hold the job for more than three ack_waits
        (gate / "closed").unlink()
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
        status = await status_once(bus, jobs_done=1)
    assert len(collector.results) == 1 and not collector.dead
    assert status.counters.get("redeliveries", 0) == 0 and status.counters.get("results_duplicate", 0) == 0
    assert await stored_records(bus.js, spec.study_id) == (1, 0)


async def test_study_survives_a_nats_server_restart(farm, tmp_path):
    server, bus = farm
    bars = real_bars(10_000)
    ident = await publish_dataset(bus, bars)
    gate = tmp_path / "gate"
    gate.mkdir()
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=ident,
                     grid=parse_grid(["fast=2:41:1", "slow=50:90:10"]), params={"gate_dir": str(gate), "delay": 0.01})
    async with workers(bus, server, tmp_path, 2, batch=8, ack_wait=3):
        await submit(bus, spec)
        collector = Collector(bus, spec)
        collecting = asyncio.create_task(collector.run(timeout=COLLECT_TIMEOUT))
        await wait_for(lambda: collector.done >= 20, "20 results before the restart")
        (gate / "closed").touch()  # hold the workers inside jobs while the server is away
        await asyncio.to_thread(server.stop)
        done_before = collector.done
        await asyncio.to_thread(server.start)  # same port, same JetStream folder
        (gate / "closed").unlink()
        await collecting
    assert done_before < spec.total_jobs == 200
    assert collector.dead == {} and len(collector.results) == 200
    assert_matches_direct(spec, collector, bars, initial_capital=spec.settings.initial_cash,
                          fee_rate=spec.settings.taker_fee_bps / 1e4)
    assert await stored_records(bus.js, spec.study_id) == (200, 0)


async def test_a_job_run_twice_stores_its_result_once(farm, tmp_path):
    server, bus = farm
    ident = await publish_dataset(bus, real_bars(3_000))
    spec = make_spec("sweep", strategy="sma_cross", dataset_id=ident, grid=parse_grid(["fast=3,5"]))
    (first, second) = [p.job for p in build_jobs(spec)]
    async with workers(bus, server, tmp_path, 1):
        await submit(bus, spec)
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
        # the same job again, as after a redelivery whose first result did get stored
        await bus.js.publish(bt_job_subject(spec.study_id), encode(first), headers={"Nats-Msg-Id": "again"})
        status = await status_once(bus, jobs_done=3)
    assert set(collector.results) == {first.job_id, second.job_id}
    assert status.counters["results_duplicate"] == 1 and status.counters["jobs_done"] == 3
    assert await stored_records(bus.js, spec.study_id) == (2, 0)
