"""Helpers for farm tests: real backtest_worker processes, a small real dataset, direct reference runs."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from tradebus.bus import discover
from tradebus.engine import STAT_KEYS, Engine
from tradebus.proto.subjects import BT_RESULTS_STREAM, bt_dead_subject, bt_result_subject
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir, read_bars

REPO = Path(__file__).resolve().parents[3]
STRATEGIES = "tests.services.backtest_worker.strategies"

_BARS: np.ndarray | None = None


def real_bars(n: int = 20_000) -> np.ndarray:
    """The first ``n`` real BTCUSDT 1m bars."""
    global _BARS
    if _BARS is None:
        _BARS = read_bars(data_dir() / DEFAULT_BARS_FILE)
    return _BARS[:n].copy()


def direct_stats(bars: np.ndarray, signal_fn, params: dict, **engine_options) -> dict[str, float]:
    """The reference: the engine run directly on the bars, no farm code in between."""
    engine = Engine(**engine_options)
    engine.load_bars(bars)
    out = engine.run(signal_fn(bars, **params))
    return {key: float(out[key]) for key in STAT_KEYS}


class Workers:
    """backtest_worker processes on ``url``; ``async with`` waits until each answers $SRV.PING."""

    def __init__(self, nc, url: str, count: int, cache_dir: Path, log_dir: Path, **flags) -> None:
        self.nc = nc
        self.url = url
        self.cache_dir = cache_dir
        self.log_dir = log_dir
        self.flags = flags
        self.procs: dict[str, subprocess.Popen] = {}
        self._names = [f"w{i + 1}" for i in range(count)]

    def start(self, name: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "tradebus.services.backtest_worker", "--nats-url", self.url, "--instance", name,
                "--cache-dir", str(self.cache_dir)]
        for flag, value in self.flags.items():
            argv += [f"--{flag.replace('_', '-')}", str(value)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        self.procs[name] = proc
        return proc

    async def wait_ready(self, names: list[str] | None = None, timeout: float = 30.0) -> None:
        names = names or list(self.procs)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            pings = await discover(self.nc, "PING", "backtest_worker", timeout=0.3)
            seen = {p["metadata"]["instance"] for p in pings}
            if set(names) <= seen:
                return
            for name in names:
                if self.procs[name].poll() is not None:
                    raise AssertionError(f"worker {name} exited with {self.procs[name].returncode}: {self.log(name)}")
        raise AssertionError(f"workers {names} did not all answer $SRV.PING within {timeout}s")

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    async def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes

    async def __aenter__(self) -> Workers:
        for name in self._names:
            self.start(name)
        await self.wait_ready()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def stored_records(js, study_id: str) -> tuple[int, int]:
    """(results, dead letters) the BT_RESULTS stream holds for the study."""
    out = []
    for subject in (bt_result_subject(study_id), bt_dead_subject(study_id)):
        info = await js.stream_info(BT_RESULTS_STREAM, subjects_filter=subject)
        out.append(sum((info.state.subjects or {}).values()))
    return out[0], out[1]
