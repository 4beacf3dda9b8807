"""The container-facing commands: ``tradebus health`` (HEALTHCHECK and probes), ``tradebus declare``
(replicated streams), ``tradebus farm --docker`` (its container spec and its errors), and how
deploy-check turns the dev overlay into what ``podman kube play`` runs."""
from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tradebus.bus import Bus, EmbeddedNats, discover, find_nats_server, free_port
from tradebus.cli.farm import SECRET_PATH, WorkerSpec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "check"))
from run import podmanize  # noqa: E402


def health(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tradebus.cli.health", *args], capture_output=True, text=True)


async def test_health_answers_for_this_hosts_instance_only(nats_server, bus, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.backtest_worker", "--nats-url", nats_server.url,
                             "--instance", "boxa-4242"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if [r for r in await discover(bus.nc, "PING", "backtest_worker", timeout=0.2)
                    if r["metadata"]["instance"] == "boxa-4242"]:
                break
        else:
            raise AssertionError("backtest_worker did not register")
        url = ["--nats-url", nats_server.url]
        ok = await asyncio.to_thread(health, "backtest_worker", "--host", "boxa", *url)
        assert ok.returncode == 0 and "boxa-4242" in ok.stdout
        other = await asyncio.to_thread(health, "backtest_worker", "--host", "boxb", *url)
        assert other.returncode == 1 and "no backtest_worker instance of host boxb" in other.stderr
        assert (await asyncio.to_thread(health, "backtest_worker", "--any", *url)).returncode == 0
        assert (await asyncio.to_thread(health, "market_data", "--any", *url)).returncode == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_health_says_when_the_bus_is_unreachable():
    done = health("backtest_worker", "--nats-url", "nats://127.0.0.1:1", "--timeout", "0.5")
    assert done.returncode == 2 and "cannot reach NATS at nats://127.0.0.1:1" in done.stderr


def test_health_without_a_service_has_nothing_to_check(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRADEBUS_SERVICE"}
    done = subprocess.run([sys.executable, "-m", "tradebus.cli.health", "--nats-url", "nats://127.0.0.1:1"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "nothing to check" in done.stdout


async def test_declare_creates_streams_and_a_single_server_refuses_replicas(tmp_path):
    with EmbeddedNats(state_dir=tmp_path / "nats") as server:
        tradebus = [sys.executable, "-m", "tradebus.cli", "declare", "--nats-url", server.url]
        refused = await asyncio.to_thread(subprocess.run, [*tradebus, "--replicas", "3"], capture_output=True, text=True)
        assert refused.returncode == 1 and "replicas" in refused.stdout.lower()
        done = await asyncio.to_thread(subprocess.run, [*tradebus, "--replicas", "1"], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "BT_JOBS (1 replicas)" in done.stdout
        bus = await Bus.connect(server.url)
        try:
            names = {s.config.name async for s in _streams(bus)}
        finally:
            await bus.close()
        assert {"ORDERS", "BT_JOBS", "BT_RESULTS"} <= names


async def _streams(bus):
    for info in await bus.js.streams_info():
        yield info


def test_farm_workers_get_the_password_as_a_mounted_file_never_in_their_environment(tmp_path):
    secret = tmp_path / "backtest_worker.password"
    secret.write_text("s3cret-value\n")
    spec = WorkerSpec(image="tradebus:dev", nats_url="nats://nats:4222", network="stack_default",
                      user="backtest_worker", password_file=str(secret))
    kwargs = spec.run_kwargs("abc123", 0)
    assert kwargs["command"] == ["backtest_worker"] and kwargs["network"] == "stack_default"
    assert kwargs["volumes"] == {str(secret): {"bind": SECRET_PATH, "mode": "ro"}}
    assert kwargs["environment"] == {"TRADEBUS_NATS_URL": "nats://nats:4222", "TRADEBUS_NATS_USER": "backtest_worker",
                                     "TRADEBUS_NATS_PASSWORD_FILE": SECRET_PATH}
    assert "s3cret-value" not in repr(kwargs)
    assert kwargs["labels"] == {"io.tradebus.farm": "abc123"}


def test_farm_without_a_docker_api_says_so(tmp_path):
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/missing.sock")
    done = subprocess.run([sys.executable, "-m", "tradebus.cli", "farm", "--docker", "2", "sweep", "--grid", "fast=5"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "no Docker API at $DOCKER_HOST" in done.stdout and "Traceback" not in done.stderr


def test_kube_play_form_of_the_dev_overlay(tmp_path):
    from tests.deploy.test_manifests import kustomize

    docs = kustomize("dev")
    users = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].startswith("tradebus-nats-users"))
    played, skipped = podmanize(docs, tmp_path)
    kinds = {d["kind"] for d in played}
    assert kinds == {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Pod"}
    assert any(s.startswith("StatefulSet/nats") for s in skipped) and any(s.startswith("Service/") for s in skipped)
    text = yaml.safe_dump_all(played)
    assert "nats://nats:4222" not in text and "http://sim-exchange:8765" not in text
    assert "nats://nats-pod-0:4222" in text and "http://sim-exchange-pod-0:8765" in text
    router = next(d for d in played if d["metadata"]["name"] == "order-router-sim-paper")
    volume = next(v for v in router["spec"]["template"]["spec"]["volumes"] if v["name"] == "nats-password")
    password = Path(volume["hostPath"]["path"]) / "nats_password"
    assert password.read_text() == base64.b64decode(users["data"]["order_router.password"]).decode()
    nats = next(d for d in played if d["kind"] == "Deployment" and d["metadata"]["name"] == "nats")
    env = {e["name"] for e in nats["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"TRADEBUS_NATS_PW_ORDER_ROUTER", "NATS_SERVER_NAME"} <= env
    workers = next(d for d in played if d["metadata"]["name"] == "backtest-worker")
    assert workers["spec"]["replicas"] > 1  # so its metrics containerPort must not become a host port
    assert all("ports" not in c for c in workers["spec"]["template"]["spec"]["containers"])


def test_health_checks_a_nats_server_on_its_monitoring_port(tmp_path):
    port, monitor = free_port("127.0.0.1"), free_port("127.0.0.1")
    server = subprocess.Popen([find_nats_server(), "-js", "-sd", str(tmp_path), "-a", "127.0.0.1", "-p", str(port),
                               "-m", str(monitor)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            done = health("--nats-monitor", f"http://127.0.0.1:{monitor}")
            if done.returncode == 0:
                break
        assert done.returncode == 0 and "healthy: nats-server" in done.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
    dead = health("--nats-monitor", f"http://127.0.0.1:{monitor}", "--timeout", "0.5")
    assert dead.returncode == 1 and f"unhealthy: nats-server at http://127.0.0.1:{monitor}/healthz" in dead.stderr
