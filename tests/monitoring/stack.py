"""A real local stack (`tradebus up`) scraped by a real Prometheus (Debian's `prometheus` package)."""
from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tradebus.bus import NatsConfig, free_port
from tradebus.config import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "tradebus-services.json"
PROMETHEUS_LOCAL = MONITORING / "prometheus-local.yml"


def prometheus_binary() -> str:
    """The prometheus server binary; a clear failure (never a skip) when it is not installed."""
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None)
    if found is None:
        pytest.fail("the prometheus server is not installed: run `make monitoring-deps` "
                    "(apt-get install prometheus, as root); .ci/run does before `make test`", pytrace=False)
    return found


def stack_config(tmp_path: Path) -> Path:
    """The packaged local stack on free ports (NATS, the sim, each service's metrics port)."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["embedded_nats"]["port"] = 0
    sim_url = f"http://127.0.0.1:{(sim_port := free_port())}"
    services = config["services"]
    services["sim_exchange"]["args"] = ["--port", str(sim_port), "--speed", "5"]
    services["market_data"]["settings"]["venues"][0]["sim_url"] = sim_url
    services["order_router"]["settings"]["sim_url"] = sim_url
    for entry in services.values():
        entry["metrics_port"] = free_port()
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def prometheus_config(tmp_path: Path, targets: Path) -> Path:
    """deploy/monitoring/prometheus-local.yml pointed at ``targets``, scraping every second."""
    config = yaml.safe_load(PROMETHEUS_LOCAL.read_text())
    config["global"]["scrape_interval"] = "1s"
    job = config["scrape_configs"][0]
    job["file_sd_configs"][0]["files"] = [str(targets)]
    job["file_sd_configs"][0]["refresh_interval"] = "1s"
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Stack:
    """`tradebus up` in ``tmp_path`` plus a Prometheus scraping it; ``stop()`` ends both."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.procs: list[subprocess.Popen] = []
        self.prom_url = ""
        self.nats_url = ""

    def start(self, binary: str) -> None:
        logs = self.tmp / "logs"
        logs.mkdir()
        up = [sys.executable, "-m", "tradebus.cli", "up", "--config", str(stack_config(self.tmp)),
              "--state-dir", str(self.state), "--workers", "1"]
        self.procs.append(subprocess.Popen(up, stdout=open(logs / "up.log", "wb"), stderr=subprocess.STDOUT,
                                           cwd=self.tmp))
        targets = self.state / "prometheus-targets.json"
        deadline = time.monotonic() + 60
        while not (targets.exists() and (self.state / "nats-url").exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert targets.exists(), "tradebus up wrote no prometheus-targets.json: " + self.log("up")
        self.nats_url = (self.state / "nats-url").read_text().strip()
        port = free_port()
        prom = [binary, f"--config.file={prometheus_config(self.tmp, targets)}",
                f"--storage.tsdb.path={self.tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
        self.procs.append(subprocess.Popen(prom, stdout=open(logs / "prometheus.log", "wb"),
                                           stderr=subprocess.STDOUT, cwd=self.tmp))
        self.prom_url = f"http://127.0.0.1:{port}"

    def operator_config(self) -> NatsConfig:
        """How a test connects to the stack: as its operator (auth is on by default)."""
        return NatsConfig(url=self.nats_url, user="operator", password_file=str(self.state / "auth" / "operator.password"))

    def log(self, name: str) -> str:
        path = self.tmp / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:  # SIGTERM: tradebus up stops its children, Prometheus its TSDB
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # --- Prometheus HTTP API -------------------------------------------------------------------

    def api(self, path: str, **params) -> dict:
        url = f"{self.prom_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            body = json.loads(reply.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """The instant vector of ``expr`` now, without series whose value is NaN."""
        return [r for r in self.api("query", query=expr)["result"] if not math.isnan(float(r["value"][1]))]

    async def until(self, check, what: str, timeout: float = 120.0):
        """Poll ``check()`` (truthy when done) until ``timeout``; fail with ``what`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = check()
            except OSError:  # Prometheus still starting
                result = None
            if result or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        assert result, f"{what}\n--- up.log ---\n{self.log('up')}\n--- prometheus.log ---\n{self.log('prometheus')}"
        return result


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel of the services dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]
