"""Processes killed mid-flow: the nats-server (SIGKILL, restarted on its JetStream files), and
order_router, strategy_runner, market_data and a backtest worker SIGKILLed and restarted by the
supervisor. After each, the ledger balances: nothing lost, nothing duplicated."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest_asyncio

from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit

from ..services.backtest_worker.farm import STRATEGIES, real_bars
from .stack import SERVICES, Stack, window

FLOW = {"pulse_a": {"interval": 0.25}, "pulse_b": {"interval": 0.3}}


@pytest_asyncio.fixture(scope="module")
async def stack(tmp_path_factory):
    async with Stack(tmp_path_factory.mktemp("kills"), FLOW) as running:
        yield running


async def test_nats_server_sigkill_and_restart_mid_flow(stack):
    async with window(stack, "nats-server SIGKILL"):
        await stack.until_trading(more=2)
        stack.kill_nats()
        await asyncio.sleep(1.0)  # orders keep coming while the bus is gone
        await asyncio.to_thread(stack.start_nats)
        await stack.until_answering(SERVICES)
        await stack.until_trading(more=3)


async def test_order_router_sigkill_mid_flow(stack):
    async with window(stack, "order_router SIGKILL"):
        await stack.until_trading(more=2)
        await stack.kill("order_router")
        await stack.until_trading(more=3)
    assert stack.sup.children["order_router"].restarts >= 1


async def test_strategy_runner_sigkill_mid_flow(stack):
    async with window(stack, "strategy_runner SIGKILL"):
        await stack.until_trading(more=2)
        await stack.kill("strategy_runner")
        await stack.until_trading(more=3)  # the restarted runner took its params (active) from KV


async def test_market_data_sigkill_mid_flow(stack):
    async def md_events() -> int:
        status = await stack.status("strategy_runner")
        return status.counters.get("md_events", 0) if status else 0

    async with window(stack, "market_data SIGKILL"):
        await stack.until_trading(more=2)
        await stack.kill("market_data")
        before = await md_events()

        async def flowing():
            return await md_events() > before + 5
        await stack.until(flowing, "market data to reach the strategies again")
        await stack.until_trading(more=2)


async def test_backtest_worker_sigkill_mid_study(stack, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "closed").touch()  # jobs wait at the gate, so the kill lands mid-job
    ident = await publish_dataset(stack.bus, real_bars(5_000))
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:gated_cross", dataset_id=ident,
                     grid=parse_grid(["fast=2:8:1", "slow=40:60:10"]), params={"gate_dir": str(gate)})
    jobs = [p.job.job_id for p in build_jobs(spec)]
    async with window(stack, "backtest_worker SIGKILL") as w:
        w["ledger"].expect_study(spec.study_id, jobs)
        collector = Collector(stack.bus, spec)
        assert await submit(stack.bus, spec) == len(jobs) == 21
        runner = asyncio.ensure_future(collector.run(timeout=120))
        victim = stack.pid("backtest_worker")
        await stack.until(lambda: (gate / f"started-{victim}").exists(), "the worker to start a job")
        await stack.kill("backtest_worker")
        (gate / "closed").unlink()
        await runner
        assert collector.dead == {} and set(collector.results) == set(jobs)
    stack.studies.append(spec.study_id)


async def test_tradebus_audit_balances_the_whole_run(stack):
    """After every kill above, ``tradebus audit`` over the stack's whole life balances; given the
    wrong journal for a strategy it does not, and says so with exit code 1."""
    await stack.pause()
    args = ["--nats-url", stack.nats.url, "--sim-url", stack.sim_url,
            *[a for s in stack.studies for a in ("--study", s)]]
    journals = [f"{name}={path}" for name, path in stack.journals.items()]
    ok = await tradebus("audit", *args, *(a for j in journals for a in ("--journal", j)))
    assert ok.returncode == 0, ok.stdout
    assert "lost=0 duplicated=0 mismatched=0" in ok.stdout and "study_results=21" in ok.stdout
    swapped = await tradebus("audit", *args, "--journal", f"pulse_a={stack.journals['pulse_b']}")
    assert swapped.returncode == 1 and "strategy pulse_a got fill" in swapped.stdout


async def tradebus(*argv: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "tradebus.cli", *argv],
                                   capture_output=True, text=True, timeout=120)
