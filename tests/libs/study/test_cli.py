"""`tradebus study` as a user runs it: against `tradebus up --only backtest_worker --workers 2`."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pandas as pd
import pytest
import yaml

from tradebus.bus import NatsConfig, discover
from tradebus.bus.config import connect_options
from tradebus.config import DEFAULT_CONFIG
from tradebus.study.datasets import DEFAULT_BARS_FILE, data_dir


def tradebus(*args: str, state: Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tradebus.cli", "study", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "COLUMNS": "160", "TRADEBUS_CACHE_DIR": str(cwd / "cli-cache")})
    if check and proc.returncode != 0:
        raise AssertionError(f"tradebus study {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
async def stack(tmp_path):
    """`tradebus up` with two backtest workers on an embedded server; yields its state folder."""
    config = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    config["embedded_nats"]["port"] = 0
    config["services"]["backtest_worker"]["settings"] = {"cache_dir": str(tmp_path / "cache")}
    cfg = tmp_path / "stack.yaml"
    cfg.write_text(yaml.safe_dump(config))
    state = tmp_path / "state"
    up = subprocess.Popen([sys.executable, "-m", "tradebus.cli", "up", "--config", str(cfg), "--state-dir", str(state),
                           "--only", "backtest_worker", "--workers", "2"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        url_file = state / "nats-url"
        for _ in range(600):
            if url_file.exists() and url_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        # auth is on by default: the operator's credentials are in the state folder
        nc = await nats.connect(**connect_options(NatsConfig(url=url_file.read_text().strip()),
                                                  {"TRADEBUS_STATE_DIR": str(state)}))
        try:
            for _ in range(200):
                pings = await discover(nc, "PING", "backtest_worker", timeout=0.3)
                if len(pings) == 2:
                    break
            assert len(pings) == 2, "tradebus up did not bring up two workers"
        finally:
            await nc.close()
        yield state
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out.decode(errors="replace")[-2000:]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "btc_small.csv"
    pd.read_csv(data_dir() / DEFAULT_BARS_FILE, nrows=8_000).to_csv(path, index=False)
    return path


async def test_sweep_permutation_walkforward_status_results_and_list(stack, small_csv, tmp_path):
    state = stack
    run = await asyncio.to_thread(tradebus, "sweep", "--data", str(small_csv), "--grid", "fast=3:12:3", "slow=20,40",
                                  "--param", "quantity=0.2", "--id", "cli-sweep", "--out", str(tmp_path / "sweep"),
                                  state=state, cwd=tmp_path)
    frame = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert len(frame) == 8 and (frame["status"] == "ok").all() and set(frame["worker"]) <= {"backtest_worker-1",
                                                                                             "backtest_worker-2"}
    for name in ("report.html", "equity.png", "heatmap.png", "results.parquet"):
        assert (tmp_path / "sweep" / name).stat().st_size > 0, name
    assert "cli-sweep: 8 ok, 0 dead, 0 pending of 8" in run.stderr
    assert list((tmp_path / "cache").glob("bars-*.npy"))  # the workers took cache_dir from the deployment file
    assert "best 5 by sharpe" in run.stdout
    # nothing said about costs: the venue's taker fee and next-open fills, said at the top of the summary
    assert run.stdout.startswith("settings: fee 10 bps (binance:spot taker) | fill next_open | slippage 0 bps")
    assert "settings: fee 10 bps" in run.stderr  # and when the study is queued
    assert "10 bps (binance:spot taker)" in (tmp_path / "sweep" / "report.html").read_text()

    rule = tmp_path / "ema_trend.yaml"
    rule.write_text("entry_long: {cross_above: [{ema: [close, {param: fast}]}, {sma: [close, 40]}]}\n"
                    "exit_long: {cross_below: [{ema: [close, {param: fast}]}, {sma: [close, 40]}]}\n")
    ruled = await asyncio.to_thread(tradebus, "sweep", "--data", str(small_csv), "--rule", str(rule), "--grid",
                                    "fast=5,8", "--fee-bps", "2.5", "--out", str(tmp_path / "ruled"), state=state,
                                    cwd=tmp_path)
    ruled_frame = pd.read_csv(tmp_path / "ruled" / "results.csv")
    assert len(ruled_frame) == 2 and (ruled_frame["status"] == "ok").all()
    assert ruled.stdout.startswith("settings: fee 2.5 bps | fill next_open")
    bad_rule = tmp_path / "bad_rule.yaml"
    bad_rule.write_text("entry_long: {cross_above: [{sma: [close, 10]}, {wma: [close, 30]}]}\n")
    refused = await asyncio.to_thread(tradebus, "sweep", "--data", str(small_csv), "--rule", str(bad_rule), "--grid",
                                      "fast=5", state=state, cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "unknown function 'wma'" in refused.stderr

    queued = await asyncio.to_thread(tradebus, "permutation", "--data", str(small_csv), "--param", "fast=5", "slow=20",
                                     "--n", "30", "--seed", "3", "--no-wait", state=state, cwd=tmp_path)
    study_id = queued.stdout.strip().splitlines()[-1]
    assert study_id.startswith("permutation-")
    for _ in range(600):
        status = json.loads((await asyncio.to_thread(tradebus, "status", study_id, "--json", state=state,
                                                     cwd=tmp_path)).stdout)
        if status["results"] + status["dead"] == 31:
            break
    assert status["total"] == 31 and status["results"] == 31 and status["queued"] == 0
    await asyncio.to_thread(tradebus, "results", study_id, "--out", str(tmp_path / "perm"), state=state, cwd=tmp_path)
    perm = pd.read_parquet(tmp_path / "perm" / "results.parquet")
    assert len(perm) == 31 and (perm["status"] == "ok").all() and (perm["segment"] == "real").sum() == 1
    assert (tmp_path / "perm" / "distribution.png").exists()

    ident = re.search(r"bars-[0-9a-f]{32}", run.stderr).group(0)  # the sweep's dataset, already stored
    await asyncio.to_thread(tradebus, "walkforward", "--data", ident, "--grid", "fast=3,6", "slow=20,40",
                            "--folds", "2", "--objective", "net_pnl", "--out", str(tmp_path / "wf"), state=state,
                            cwd=tmp_path)
    assert (tmp_path / "wf" / "folds.png").exists() and len(pd.read_csv(tmp_path / "wf" / "results.csv")) == 16

    listed = await asyncio.to_thread(tradebus, "list", state=state, cwd=tmp_path)
    assert "cli-sweep" in listed.stdout and study_id in listed.stdout

    bad = await asyncio.to_thread(tradebus, "sweep", "--data", str(small_csv), "--grid", "fast=5:1", state=state,
                                  cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "stop 1 is below start 5" in bad.stderr
    missing = await asyncio.to_thread(tradebus, "status", "no-such-study", state=state, cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "no study 'no-such-study'" in missing.stderr
