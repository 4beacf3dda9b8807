"""The local stack's logs: JSON events of every service in <state>/logs, `tradebus logs` merging and
following them, order events carrying their ids, and the venue secret nowhere in them."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.e2e.test_up import SERVICES, fills, pings, strategy_status
from tests.libs.cli.test_logs_command import Lines
from tradebus.bus import free_port
from tradebus.config import DEFAULT_CONFIG

SIM_SECRET = "known-fake-sim-secret-5f3a9c"  # signs every order request the router sends the sim
FIELDS = {"time", "service", "instance", "level", "logger", "message"}
PRINTED = ("sim_exchange listening on ", "order_router: venue ")  # what services print to stdout on purpose


def stack_config(tmp_path: Path) -> Path:
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    config["embedded_nats"]["port"] = 0
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    venue = yaml.safe_load((Path(__file__).parents[2] / "services/sim_exchange/default.yaml").read_text())
    for account in venue["accounts"]:
        account["secret"] = SIM_SECRET
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump(venue))
    config["services"]["sim_exchange"]["args"] = ["--port", str(sim_port), "--speed", "5",
                                                  "--sim-config", str(tmp_path / "sim.yaml")]
    config["services"]["market_data"]["settings"]["venues"][0]["sim_url"] = sim_url
    config["services"]["order_router"]["settings"]["sim_url"] = sim_url
    config["services"]["order_router"]["settings"]["sim_secret"] = SIM_SECRET
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tradebus_logs(state: Path, *args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-m", "tradebus.cli", "logs", "--state-dir", str(state), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


async def test_the_stack_logs_json_events_that_tradebus_logs_merges_and_follows(tmp_path):
    state = tmp_path / "state"
    up = subprocess.Popen([sys.executable, "-m", "tradebus.cli", "up", "--config", str(stack_config(tmp_path)),
                           "--state-dir", str(state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    follow = None
    try:
        deadline = time.monotonic() + 90
        while not (state / "nats-url").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        url = (state / "nats-url").read_text().strip()
        while set(await pings(url, state)) != SERVICES and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        while fills(await strategy_status(url, state)) < 2 and time.monotonic() < deadline + 60:
            await asyncio.sleep(0.5)
        assert fills(await strategy_status(url, state)) >= 2, "the sample strategy did not trade on the sim"
        follow = subprocess.Popen([sys.executable, "-m", "tradebus.cli", "logs", "-f", "--json", "--state-dir",
                                   str(state)], stdout=subprocess.PIPE, text=True)
        lines = Lines(follow)

        async def read_until_worker_runs(times: int) -> list[dict]:
            seen: list[dict] = []
            while sum("running (instance backtest_worker" in e["message"] for e in seen) < times \
                    and time.monotonic() < deadline + 120:
                seen += [json.loads(line) for line in await asyncio.to_thread(lines.next, 1, 5.0)]
            return seen

        await read_until_worker_runs(1)  # printed from what the files held at its start
        worker = (await pings(url, state))["backtest_worker"]
        os.kill(int(worker["metadata"]["pid"]), signal.SIGKILL)  # the supervisor restarts it into the same file
        restarted = await read_until_worker_runs(1)  # so this one came by following
        assert restarted and restarted[-1]["service"] == "backtest_worker"
        assert "running (instance backtest_worker" in restarted[-1]["message"]
    finally:
        if follow is not None:
            follow.terminate()
            follow.wait(timeout=30)
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out.decode(errors="replace")[-3000:]

    files = sorted((state / "logs").glob("*.log"))
    assert {p.stem for p in files} == SERVICES
    events: dict[str, list[dict]] = {}
    for path in files:
        text = path.read_text()
        assert SIM_SECRET not in text, f"the venue secret is in {path.name}"
        for line in text.splitlines():
            if line.startswith(PRINTED):
                continue
            event = json.loads(line)  # every logged line is one JSON event
            assert FIELDS <= set(event), line
            assert event["service"] == path.stem and event["instance"] == path.stem
            events.setdefault(path.stem, []).append(event)
    assert set(events) == SERVICES

    def with_ids(service: str, *keys: str) -> list[dict]:
        return [e for e in events[service] if all(e.get(k) for k in keys)]

    assert with_ids("strategy_runner", "subject", "strategy", "client_order_id", "venue")  # requests sent
    router = with_ids("order_router", "subject", "strategy", "client_order_id", "exchange_order_id", "venue")
    assert {e["message"] for e in router} >= {"ord.ack", "ord.fill"}
    assert with_ids("sim_exchange", "client_order_id", "exchange_order_id", "venue")
    coid = router[0]["client_order_id"]  # one order, followed through the three services
    assert all(any(e.get("client_order_id") == coid for e in events[s])
               for s in ("strategy_runner", "order_router", "sim_exchange"))

    merged = [json.loads(line) for line in tradebus_logs(state, "--json")]
    assert len(merged) == sum(len(path.read_text().splitlines()) for path in files)
    times = [e["time"] for e in merged]
    assert times == sorted(times)
    assert {e.get("instance") for e in merged} == SERVICES
    human = tradebus_logs(state, "strategy_runner", "-n", "3")
    assert len(human) == 3 and all(" strategy_runner: " in line for line in human)
