"""The paper stack the fault scenarios run: a real nats-server (JetStream on file storage, a fixed
port so it can be killed and restarted), and sim_exchange, market_data, strategy_runner,
order_router and backtest_worker as real processes under the Supervisor, configured as
``tradebus up`` would. Pulse strategies (pulse.py) keep a steady order flow and journal their
fills; an ``Audit`` over the stack's ORDERS stream, venue records and journals is the ledger."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import aiohttp
import yaml

from tradebus.audit import Audit
from tradebus.bus import Bus, EmbeddedNats, free_port
from tradebus.cli.up import child_specs
from tradebus.config import SupervisorConfig, load_deployment
from tradebus.proto import ParamsUpdate, ServiceCommand, ServiceStatus
from tradebus.proto.subjects import params_subject, service_subject
from tradebus.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[2]
PULSE = f"{Path(__file__).with_name('pulse.py')}:Pulse"
SERVICES = ("sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker")


def stack_config(sim_port: int, journal_dir: Path, strategies: dict[str, dict], risk: dict | None = None,
                 router: dict | None = None, order_entry: str = "ws") -> dict:
    """A deployment file: the local stack's services, Pulse strategies, fast restarts."""
    sim_url = f"http://127.0.0.1:{sim_port}"
    specs = [{"name": name, "class": PULSE, "venue": "sim",
              "symbols": [{"symbol": "BTC/USDT", "tick_size": 0.01, "lot_size": 0.00001}],
              "params": {"journal": str(journal_dir / f"{name}.jsonl"), **params}}
             for name, params in strategies.items()]
    return {
        "supervisor": {"max_restarts": 20, "backoff": {"initial": 0.2, "multiplier": 1.5, "cap": 1.0},
                       "stable_after": 2.0, "stop_timeout": 5.0},
        "services": {
            "sim_exchange": {"module": "tradebus.services.sim_exchange",
                             "args": ["--port", str(sim_port), "--speed", "1", "--restart-safe-ids"]},
            "market_data": {"module": "tradebus.services.market_data", "settings": {
                "venues": [{"name": "sim", "exchange": "binance", "sim_url": sim_url, "symbols": ["BTC/USDT"],
                            "streams": ["trades", "book"], "book_depth": 20}],
                "backoff": {"initial": 0.2, "multiplier": 2.0, "cap": 2.0}}},
            "strategy_runner": {"module": "tradebus.services.strategy_runner",
                                "settings": {"status_interval": 1.0, "strategies": specs}},
            "order_router": {"module": "tradebus.services.order_router", "settings": {
                "venue": "sim", "adapters": ["binance:spot"], "sim_url": sim_url, "order_entry": order_entry,
                "timeout_ms": 1500,
                "risk": risk if risk is not None else {"*": {"max_order_qty": 1.0, "max_open_orders": 50}},
                "router": {"ack_wait": 3.0, "backoff": {"initial": 0.1, "multiplier": 2.0, "cap": 1.0},
                           "ambiguous_retries": 3, "rate_limit_retries": 3, **(router or {})}}},
            "backtest_worker": {"module": "tradebus.services.backtest_worker",
                                "args": ["--ack-wait", "2", "--batch", "2"]},
        },
    }


class Stack:
    """``async with Stack(tmp, strategies) as stack``: everything up, strategies trading."""

    def __init__(self, tmp: Path, strategies: dict[str, dict], **config):
        self.tmp = tmp
        self.sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.journals = {name: tmp / "journals" / f"{name}.jsonl" for name in strategies}
        self.steady = [name for name, params in strategies.items() if params.get("active", True)]
        self.config_path = tmp / "stack.yaml"
        self.config_path.write_text(yaml.safe_dump(stack_config(self.sim_port, tmp / "journals", strategies,
                                                                **config)))
        self.nats = EmbeddedNats(port=free_port(), state_dir=tmp / "nats")
        self.sup: Supervisor | None = None
        self.bus: Bus | None = None
        self.studies: list[str] = []  # studies run on the stack, for a final audit

    async def __aenter__(self) -> Stack:
        self.nats.start()
        self.bus = await Bus.connect(self.nats.url, bad_log_interval=0.0)
        await self.bus.declare_all()
        config = load_deployment(self.config_path)
        specs, _ = child_specs(config, str(self.config_path), self.nats.url, None, None)
        for spec in specs:
            spec.env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
        self.sup = Supervisor(specs, config.supervisor or SupervisorConfig(), log_dir=str(self.tmp / "logs"))
        await self.sup.start()
        try:
            await self.until_answering(SERVICES, timeout=120)
            await self.until_trading(timeout=90)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        if self.sup is not None:
            await self.sup.stop()
        if self.bus is not None:
            await self.bus.close()
        self.nats.stop()

    def audit(self, **kw) -> Audit:
        return Audit(self.bus, self.sim_url, journals=self.journals, **kw)

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.tmp / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    # -- waiting -------------------------------------------------------------------------------

    async def until(self, predicate, what: str, timeout: float = 60.0, step: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}\n" + "\n".join(
                    f"--- {n}\n{self.log(n, 1500)}" for n in SERVICES))
            await asyncio.sleep(step)

    async def answering(self) -> dict[str, dict]:
        try:
            return {p["name"]: p for p in await self.bus.discover("PING", timeout=0.3)}
        except Exception:
            return {}

    async def until_answering(self, names, timeout: float = 60.0) -> None:
        async def check():
            return set(names) <= set(await self.answering())
        await self.until(check, f"{names} to answer $SRV.PING", timeout)

    def fills_seen(self, strategy: str) -> int:
        path = self.journals[strategy]
        return path.read_text().count('"kind": "fill"') if path.exists() else 0

    async def until_trading(self, strategies=None, more: int = 2, timeout: float = 60.0) -> None:
        """Until each strategy (default: those trading from the start) journaled ``more`` fills
        beyond what it had."""
        names = list(strategies or self.steady)
        start = {n: self.fills_seen(n) for n in names}
        await self.until(lambda: all(self.fills_seen(n) >= start[n] + more for n in names),
                         f"{names} to trade", timeout)

    # -- control -------------------------------------------------------------------------------

    async def params(self, strategy: str, **params) -> None:
        await self.bus.publish(params_subject(strategy), ParamsUpdate(strategy=strategy, params=params,
                                                                      ts_init=time.time_ns()))

    async def pause(self, *strategies: str, quiet: float = 0.7) -> None:
        """Stop the flow; with ``quiet``, wait until the ORDERS stream and the journals have been
        still that long (every order sent has its outcome and fills)."""
        for name in strategies or tuple(self.journals):
            await self.params(name, active=False)
        if not quiet:
            return

        async def still() -> tuple:
            seq = (await self.bus.stream_info("ORDERS")).state.last_seq
            return (seq, *(self.fills_seen(n) for n in self.journals))
        last = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = await still()
            if now == last:
                return
            last = now
            await asyncio.sleep(quiet)

    async def resume(self, *strategies: str) -> None:
        for name in strategies or self.steady:
            await self.params(name, active=True)

    async def status(self, service: str) -> ServiceStatus | None:
        try:
            return await self.bus.request(service_subject(service, "status"),
                                          ServiceCommand(service=service, command="status"), ServiceStatus,
                                          timeout=1.0)
        except Exception:
            return None

    async def sim(self, path: str, body: dict | None = None) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.sim_url}/admin/{path}", json=body or {}) as response:
                assert response.status == 200, await response.text()
                return await response.json()

    async def sim_state(self) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.sim_url}/admin/state") as response:
                return await response.json()

    # -- faults --------------------------------------------------------------------------------

    def pid(self, service: str) -> int:
        child = self.sup.children[service]
        assert child.process is not None and child.process.returncode is None, f"{service} is not running"
        return child.process.pid

    async def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        """Signal a supervised service; for SIGKILL, wait until the supervisor restarted it and
        the new process answers."""
        child = self.sup.children[service]
        old = self.pid(service)
        os.kill(old, sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            return

        async def back():
            if child.process is None or child.process.pid == old or child.process.returncode is not None:
                return False
            pings = await self.answering()
            return service in pings and int(pings[service]["metadata"].get("pid", 0)) == child.process.pid
        await self.until(back, f"{service} to be restarted", timeout=60)

    def kill_nats(self) -> None:
        self.nats.process.send_signal(signal.SIGKILL)
        self.nats.process.wait()
        self.nats.process = None

    def start_nats(self) -> None:
        self.nats.start()


@contextlib.asynccontextmanager
async def window(stack: Stack, scenario: str, *, resume: bool = True, **audit):
    """A scenario's ledger: flow paused and settled, the audit started, flow resumed; on exit
    the flow pauses again and the tally must balance (printed either way)."""
    from tradebus.audit import assert_balanced

    await stack.pause()
    ledger = stack.audit(**audit)
    await ledger.start()
    if resume:
        await stack.resume()
    box = {"ledger": ledger}
    yield box
    await stack.pause()
    tally = await ledger.settle(scenario, timeout=box.get("settle_timeout", 20.0))
    box["tally"] = tally
    assert_balanced(tally)
