"""``make deploy-check``: every deployment path run for real on this host, then torn down.

Needs root, podman with runc and the local base image (deploy/host/setup.sh) and the wheels
(deploy/host/wheels.sh); ``make deploy-check`` does both first. Steps, each timed:

1. build the image (podman, BASE_IMAGE, offline from deploy/wheels) and check its size;
2. ``docker compose up`` (Compose v2 on ``podman system service``), wait for every health check,
   the paper flow (flow.py: orders reach sim_exchange, fills come back, a service user may not
   publish md.>), a study on the two scaled workers with one worker killed mid-study: every result
   stored once;
3. ``tradebus farm --docker 2``: a study on two worker containers started through the docker SDK;
4. the dev overlay rendered by kustomize, run with ``podman kube play`` (StatefulSet and Job
   turned into what podman runs, peers by pod name) and the same paper flow, from a container;
5. everything down, then a check that no container, pod, volume, network or bridge is left.

podman 4.3 runs no health check by itself without systemd, so a thread here runs each pending
container's check (``podman healthcheck run``) until it is healthy, as systemd's timer would.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import compose
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "deploy" / "compose"))
from make_secrets import write_secrets  # noqa: E402

BIN = Path(sys.executable).parent
COMPOSE = Path(compose.__file__).parent / "docker-compose"  # the binary: the wrapper script drops exit codes
PROJECT = "tradebus-check"
KUBE_NET = "tradebus-kube-check"
IMAGE_LIMIT_MB = 400
SERVICES = ["sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(*cmd, check=True, capture=True, env=None, timeout=None, cwd=ROOT) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=capture, text=True, env=env, timeout=timeout, cwd=cwd)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bridges() -> set[str]:
    out = sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


class Timer:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float, str]] = []

    @contextlib.contextmanager
    def step(self, name: str):
        log(f"== {name}")
        start = time.monotonic()
        status = "failed"
        try:
            yield
            status = "ok"
        finally:
            self.steps.append((name, time.monotonic() - start, status))
            log(f"== {name}: {status} in {time.monotonic() - start:.0f}s")


class HealthDriver(threading.Thread):
    """Runs ``podman healthcheck run`` for every running container matching ``filters`` that is not
    healthy yet, every ``interval`` seconds (what systemd's timers do where systemd runs)."""

    def __init__(self, filters: list[str], interval: float = 5.0) -> None:
        super().__init__(daemon=True, name="health-driver")
        self.filters, self.interval = filters, interval
        self.stopping = threading.Event()

    def pending(self) -> list[str]:
        args = ["podman", "ps", "--format", "{{.Names}} {{.Status}}"]
        for f in self.filters:
            args += ["--filter", f]
        names = []
        for line in sh(*args, check=False).stdout.splitlines():
            name, _, status = line.partition(" ")
            if "(starting)" in status or "(unhealthy)" in status:
                names.append(name)
        return names

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            for name in self.pending():
                sh("podman", "healthcheck", "run", name, check=False, timeout=60)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=70)


class Check:
    def __init__(self, args) -> None:
        self.args = args
        self.timer = Timer()
        self.tmp = Path(tempfile.mkdtemp(prefix="tradebus-deploy-check-"))
        self.secrets = self.tmp / "secrets"
        write_secrets(self.secrets)
        self.image = args.image
        self.nats_port = free_port()
        self.sock = self.tmp / "podman.sock"
        self.service: subprocess.Popen | None = None
        self.bridges_before = bridges()
        self.results: dict = {}
        data = Path(os.environ.get("TRADEBUS_DATA_DIR", ROOT.parent / "shared" / "data"))
        if not data.is_dir():
            data = self.tmp / "data"
            data.mkdir()
        self.data = data
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(self.tmp / "docker"),
                        COMPOSE_PROJECT_NAME=PROJECT, TRADEBUS_IMAGE=self.image, TRADEBUS_PULL_POLICY="never",
                        TRADEBUS_SECRETS_DIR=str(self.secrets), TRADEBUS_NATS_PORT=str(self.nats_port),
                        TRADEBUS_SIM_PORT=str(free_port()), TRADEBUS_HOST_DATA_DIR=str(self.data),
                        TRADEBUS_DATA_DIR=str(self.data))
        for key in ("TRADEBUS_NATS_URL", "COMPOSE_PROFILES", "COMPOSE_FILE"):
            self.env.pop(key, None)
        # The host-side CLI (study, farm) connects as the operator user.
        self.operator_env = dict(self.env, TRADEBUS_NATS_USER="operator",
                                 TRADEBUS_NATS_PASSWORD_FILE=str(self.secrets / "operator.password"))
        (self.tmp / "docker").mkdir()

    # -- 1. image --------------------------------------------------------------------------
    def build(self) -> None:
        with self.timer.step("build the image"):
            sh("podman", "build", "--format", "docker", "--build-arg", f"BASE_IMAGE={self.args.base_image}",
               "--build-arg", "PIP_NO_INDEX=1", "-t", self.image, ".", capture=not self.args.verbose)
            size = int(sh("podman", "image", "inspect", "--format", "{{.Size}}", self.image).stdout.strip())
            self.results["image_mb"] = round(size / 1e6)
            log(f"image {self.image}: {size / 1e6:.0f} MB")
            if size / 1e6 >= IMAGE_LIMIT_MB:
                raise RuntimeError(f"image is {size / 1e6:.0f} MB, over {IMAGE_LIMIT_MB} MB")
            user = sh("podman", "run", "--rm", "--entrypoint", "id", self.image, "-u").stdout.strip()
            compilers = sh("podman", "run", "--rm", "--entrypoint", "sh", self.image, "-c",
                           "command -v gcc cc c++ || true").stdout.strip()
            if user == "0" or compilers:
                raise RuntimeError(f"runtime image runs as uid {user} / has compilers {compilers!r}")

    # -- podman's Docker API ---------------------------------------------------------------
    def start_api(self) -> None:
        self.service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{self.sock}"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self.sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("podman system service did not open its socket")
            time.sleep(0.2)

    def compose(self, *args, check=True, capture=True, timeout=480) -> subprocess.CompletedProcess:
        return sh(COMPOSE, *args, env=self.env, check=check, capture=capture, timeout=timeout)

    def docker(self):
        import docker

        return docker.DockerClient(base_url=f"unix://{self.sock}")

    def flow(self, url: str) -> dict:
        done = sh(sys.executable, HERE / "flow.py", "--nats-url", url, "--timeout", str(self.args.flow_timeout),
                  "--deny-user", "strategy_runner", "--deny-password-file", self.secrets / "strategy_runner.password",
                  env=self.operator_env, check=False)
        result = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        if done.returncode != 0:
            raise RuntimeError(f"paper flow failed: {result or done.stderr[-2000:]}")
        return result

    # -- 2. compose --------------------------------------------------------------------------
    def compose_stack(self) -> None:
        driver = HealthDriver([f"label=com.docker.compose.project={PROJECT}"])
        driver.start()
        try:
            with self.timer.step("compose up, every health check healthy"):
                self.compose("up", "-d", capture=not self.args.verbose)
                self.wait_healthy()
        finally:
            driver.stop()
        url = f"nats://127.0.0.1:{self.nats_port}"
        with self.timer.step("compose: paper flow (orders to sim_exchange, fills back)"):
            self.results["compose_flow"] = self.flow(url)
            log(f"flow: {self.results['compose_flow']}")
        with self.timer.step("compose: study on 2 scaled workers, one killed mid-study"):
            self.results["compose_study"] = self.study_with_a_kill(url)

    def containers(self, **filters):
        return self.docker().containers.list(all=True, filters=filters)

    def wait_healthy(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for c in self.containers(label=f"com.docker.compose.project={PROJECT}"):
                service = c.labels.get("com.docker.compose.service")
                if service == "streams":
                    states[c.name] = "exited(0)" if c.attrs["State"].get("ExitCode") == 0 and c.status == "exited" else c.status
                    continue
                states[c.name] = (c.attrs["State"].get("Health") or {}).get("Status", c.status)
            bad = {n: s for n, s in states.items() if s not in ("healthy", "exited(0)")}
            if states and not bad:
                log(f"all healthy: {', '.join(sorted(states))}")
                self.results["compose_containers"] = sorted(states)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout}s: {bad}")
            time.sleep(3)

    def study_cli(self, *args, env=None) -> subprocess.CompletedProcess:
        return sh(BIN / "tradebus", *args, env=env or self.operator_env, check=False, cwd=self.tmp)

    def study_args(self, url: str) -> list[str]:
        return ["sweep", "--nats-url", url, "--strategy", "sma_cross", "--grid", *self.args.grid, "--no-report"]

    def study_with_a_kill(self, url: str) -> dict:
        done = self.study_cli("study", *self.study_args(url), "--no-wait")
        if done.returncode != 0:
            raise RuntimeError(f"study did not start: {done.stdout}{done.stderr}")
        study_id = done.stdout.strip().splitlines()[-1]
        workers = self.containers(label="com.docker.compose.service=backtest_worker", status="running")
        if len(workers) != 2:
            raise RuntimeError(f"expected 2 backtest_worker containers, found {len(workers)}")
        killed, status = None, {}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = json.loads(self.study_cli("study", "status", study_id, "--nats-url", url, "--json").stdout)
            if killed is None and status["results"] >= 1:
                if status["results"] + status["dead"] >= status["total"]:
                    raise RuntimeError(f"the study ended before a worker could be killed: make the grid larger ({status})")
                workers[0].kill()
                killed = {"container": workers[0].name, "after_results": status["results"], "total": status["total"]}
                log(f"killed {workers[0].name} with {status['results']} of {status['total']} results in")
            if status["results"] + status["dead"] >= status["total"]:
                break
            time.sleep(1)
        out = self.tmp / "study-compose"
        done = self.study_cli("study", "results", study_id, "--nats-url", url, "--out", str(out), "--no-report")
        rows = list(csv.DictReader(open(out / "results.csv")))
        job_ids = [r["job_id"] for r in rows]
        stored = self.stored_results(url, study_id)
        summary = {"study": study_id, "jobs": status["total"], "ok": sum(r["status"] == "ok" for r in rows),
                   "unique_jobs": len(set(job_ids)), "stored_results": stored, "killed": killed}
        log(f"study: {summary}")
        if not (killed and summary["ok"] == summary["jobs"] == summary["unique_jobs"] == len(rows) == stored):
            raise RuntimeError(f"study results incomplete or duplicated: {summary} (exit {done.returncode})")
        return summary

    def stored_results(self, url: str, study_id: str) -> int:
        """Messages BT_RESULTS holds for the study: a redelivered job stored twice would show here."""
        code = ("import asyncio, sys\nfrom tradebus.bus import Bus, NatsConfig\n"
                "async def main():\n    bus = await Bus.connect(NatsConfig.from_env(url=sys.argv[1]))\n"
                "    info = await bus.js.stream_info('BT_RESULTS', subjects_filter='bt.result.' + sys.argv[2])\n"
                "    print(sum((info.state.subjects or {}).values()))\n    await bus.close()\nasyncio.run(main())")
        return int(sh(sys.executable, "-c", code, url, study_id, env=self.operator_env).stdout.strip())

    # -- 3. tradebus farm --docker ---------------------------------------------------------------
    def farm_without_a_bus(self) -> None:
        """On a live Docker API but no bus: one line naming the URL, exit 3, no container started."""
        url = f"nats://127.0.0.1:{free_port()}"
        done = self.study_cli("farm", "--docker", "1", "--image", self.image, *self.study_args(url))
        lines = done.stderr.strip().splitlines()
        result = {"exit": done.returncode, "stderr_lines": len(lines),
                  "containers_left": len(self.containers(label="io.tradebus.farm"))}
        self.results["farm_without_a_bus"] = result
        log(f"farm without a bus: {result}")
        if (result != {"exit": 3, "stderr_lines": 1, "containers_left": 0} or f"cannot reach NATS at {url}" not in lines[0]
                or "Traceback" in done.stdout + done.stderr):
            raise RuntimeError(f"farm without a bus: {result}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def farm(self) -> None:
        url = f"nats://127.0.0.1:{self.nats_port}"
        self.farm_without_a_bus()
        with self.timer.step("tradebus farm --docker 2 (docker SDK)"):
            self.compose("stop", "backtest_worker")  # the farm's own workers do this study
            network = f"{PROJECT}_default"
            done = self.study_cli("farm", "--docker", "2", "--image", self.image, "--network", network,
                                  "--worker-nats-url", "nats://nats:4222", "--worker-user", "backtest_worker",
                                  "--worker-password-file", str(self.secrets / "backtest_worker.password"),
                                  *self.study_args(url), "--out", str(self.tmp / "study-farm"))
            left = self.containers(label="io.tradebus.farm")
            rows = list(csv.DictReader(open(self.tmp / "study-farm" / "results.csv"))) if done.returncode == 0 else []
            self.results["farm"] = {"exit": done.returncode, "jobs": len(rows),
                                    "ok": sum(r["status"] == "ok" for r in rows), "containers_left": len(left)}
            log(f"farm: {self.results['farm']}")
            if done.returncode != 0 or not rows or self.results["farm"]["ok"] != len(rows) or left:
                raise RuntimeError(f"farm failed: {self.results['farm']}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def compose_down(self) -> None:
        with self.timer.step("compose down"):
            self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)

    # -- 4. podman kube play -----------------------------------------------------------------------
    def kube(self) -> None:
        dev_secrets = ROOT / "deploy" / "k8s" / "overlays" / "dev" / "secrets"
        write_secrets(dev_secrets)
        with self.timer.step("kube play of the dev overlay"):
            rendered = sh(BIN / "kubectl", "kustomize", ROOT / "deploy" / "k8s" / "overlays" / "dev").stdout
            docs, skipped = podmanize([d for d in yaml.safe_load_all(rendered) if d], self.tmp / "kube-secrets", self.image)
            self.kube_volumes = [d["metadata"]["name"] for d in docs if d["kind"] in ("ConfigMap", "PersistentVolumeClaim")]
            self.results["kube_skipped"] = skipped
            self.kube_file = self.tmp / "dev-podman.yaml"
            self.kube_file.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            sh("podman", "network", "create", KUBE_NET)
            sh("podman", "kube", "play", "--network", KUBE_NET, self.kube_file)
            pods = sh("podman", "pod", "ps", "--format", "{{.Name}} {{.Status}}").stdout.split("\n")
            log(f"pods: {[p for p in pods if p]}")
        with self.timer.step("kube: paper flow (from a container on the pods' network)"):
            password = dev_secrets / "operator.password"
            deny = dev_secrets / "strategy_runner.password"
            done = sh("podman", "run", "--rm", "--network", KUBE_NET, "--entrypoint", "python",
                      "-v", f"{HERE / 'flow.py'}:/check/flow.py:ro,Z", "-v", f"{password}:/check/operator:ro",
                      "-v", f"{deny}:/check/deny:ro", "-e", "TRADEBUS_NATS_USER=operator",
                      "-e", "TRADEBUS_NATS_PASSWORD_FILE=/check/operator", self.image, "/check/flow.py",
                      "--nats-url", "nats://nats-pod-0:4222", "--timeout", str(self.args.flow_timeout),
                      "--deny-user", "strategy_runner", "--deny-password-file", "/check/deny", check=False)
            result = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
            self.results["kube_flow"] = result
            log(f"flow: {result}")
            if done.returncode != 0:
                raise RuntimeError(f"kube paper flow failed: {result or done.stderr[-3000:]}")

    def kube_down(self) -> None:
        with self.timer.step("kube down"):
            if getattr(self, "kube_file", None) and self.kube_file.exists():
                sh("podman", "kube", "down", self.kube_file, check=False)
            for volume in getattr(self, "kube_volumes", []):  # kube down keeps claims and ConfigMap volumes
                sh("podman", "volume", "rm", "-f", volume, check=False)
            sh("podman", "network", "rm", "-f", KUBE_NET, check=False)

    # -- 5. nothing left -----------------------------------------------------------------------
    def leftovers(self) -> dict:
        left = {
            "containers": sh("podman", "ps", "-a", "--format", "{{.Names}}").stdout.split(),
            "pods": sh("podman", "pod", "ps", "--format", "{{.Name}}").stdout.split(),
            "volumes": sh("podman", "volume", "ls", "--format", "{{.Name}}").stdout.split(),
            "networks": [n for n in sh("podman", "network", "ls", "--format", "{{.Name}}").stdout.split() if n != "podman"],
            "bridges": sorted(bridges() - self.bridges_before),
        }
        return {k: v for k, v in left.items() if v}

    def teardown(self) -> None:
        with self.timer.step("teardown"):
            if self.service and self.service.poll() is None:
                self.service.terminate()
                try:
                    self.service.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.service.kill()
            if not self.args.keep_image:
                sh("podman", "rmi", "-f", self.image, check=False)
                sh("podman", "image", "prune", "-f", check=False)
            shutil.rmtree(self.tmp, ignore_errors=True)
            left = self.leftovers()
            self.results["left_behind"] = left
            if left:
                raise RuntimeError(f"left behind: {left}")


def podmanize(docs: list[dict], secrets_dir: Path, image: str | None = None) -> tuple[list[dict], list[str]]:
    """The rendered dev overlay as ``podman kube play`` (4.3) runs it.

    podman plays Pods, Deployments, PersistentVolumeClaims and ConfigMaps. A StatefulSet becomes
    a Deployment with a claim per volumeClaimTemplate (podman makes a named volume), a Job a Pod.
    podman 4.3 cannot use a Secret (a secret volume crashes ``kube play`` in VolumeFromSecret, and
    ``envFrom`` fails because it stores the Secret as YAML then parses it as JSON), so each Secret
    volume becomes a folder of the same files under ``secrets_dir`` (a hostPath) and each
    ``envFrom: secretRef`` the same variables. Services, PodDisruptionBudgets (HPAs,
    ScaledObjects) have no podman counterpart and are dropped; without Services, peers are
    addressed by pod name (``<deployment>-pod-0``) instead of Service name. ``image``, when given,
    replaces the overlay's image (the one this check built).
    """
    secrets = {d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
               for d in docs if d["kind"] == "Secret"}
    out, skipped, renames = [], [], {}

    def pod_spec(spec: dict, owner: str) -> dict:
        for container in spec.get("containers", []):
            if image:
                container["image"] = image
            # podman publishes a containerPort on the host (Kubernetes does not without hostPort):
            # the replicas of one Deployment would all bind the same host port.
            ports = [p for p in container.pop("ports", []) if "hostPort" in p]
            if ports:
                container["ports"] = ports
            env = container.setdefault("env", [])
            for source in container.pop("envFrom", []):
                if "secretRef" not in source:
                    raise ValueError(f"{owner}: only envFrom secretRef is converted, not {source}")
                data = secrets[source["secretRef"]["name"]]
                env += [{"name": k, "value": v} for k, v in data.items() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        for volume in spec.get("volumes", []):
            if "secret" not in volume:
                continue
            source = volume.pop("secret")
            data = secrets[source["secretName"]]
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            folder = secrets_dir / f"{owner}-{volume['name']}"
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
            for item in items:
                (folder / item["path"]).write_text(data[item["key"]])
                (folder / item["path"]).chmod(0o644)
            volume["hostPath"] = {"path": str(folder), "type": "Directory"}
        return spec

    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "StatefulSet":
            spec = doc["spec"]
            template = spec["template"]
            for claim in spec.get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{name}-0"
                out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "metadata": {"name": claim_name}, "spec": claim["spec"]})
                template["spec"].setdefault("volumes", []).append(
                    {"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}})
            pod_spec(template["spec"], name)
            out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": doc["metadata"],
                        "spec": {"replicas": spec.get("replicas", 1), "selector": spec["selector"], "template": template}})
            skipped.append(f"StatefulSet/{name} (run as a Deployment)")
        elif kind == "Job":
            template = doc["spec"]["template"]
            out.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template.get("metadata", {})},
                        "spec": pod_spec(template["spec"], name)})
            skipped.append(f"Job/{name} (run as a Pod)")
        elif kind == "Deployment":
            pod_spec(doc["spec"]["template"]["spec"], name)
            out.append(doc)
        elif kind in ("ConfigMap", "PersistentVolumeClaim", "Pod"):
            out.append(doc)
        elif kind == "Secret":
            skipped.append(f"Secret/{name} (given as files and variables)")
        else:
            skipped.append(f"{kind}/{name} (dropped)")
        if kind == "Service":
            renames[name] = f"{name}-pod-0"
    pattern = re.compile(r"(?<=//)(" + "|".join(map(re.escape, sorted(renames, key=len, reverse=True))) + r")(?=:)")

    def rename(value):
        if isinstance(value, str):
            return pattern.sub(lambda m: renames[m.group(1)], value)
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        return value

    if renames:
        out = [rename(doc) if doc["kind"] in ("ConfigMap", "Deployment", "Pod") else doc for doc in out]
    return out, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description="run every deployment path for real, then tear it down")
    parser.add_argument("--image", default="localhost/tradebus:check")
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE", "localhost/debian-py:bookworm"))
    parser.add_argument("--grid", nargs="+", default=["fast=2:60:1", "slow=20:300:5"],
                        help="sweep grid of the farm studies (enough jobs to kill a worker mid-study)")
    parser.add_argument("--flow-timeout", type=float, default=240.0)
    parser.add_argument("--skip-build", action="store_true", help="use an image built before")
    parser.add_argument("--keep-image", action="store_true", help="do not remove the image at the end")
    parser.add_argument("--only", default="compose,farm,kube", help="steps to run (compose, farm, kube)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--record", help="write the timings and results as JSON to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("deploy-check: run as root (podman rootful with runc)", file=sys.stderr)
        return 2
    check = Check(args)
    steps = set(args.only.split(","))
    started = time.monotonic()
    error = None
    try:
        if not args.skip_build:
            check.build()
        check.start_api()
        try:
            if steps & {"compose", "farm"}:
                if "compose" in steps:
                    check.compose_stack()
                else:
                    check.compose("up", "-d")
                if "farm" in steps:
                    check.farm()
        finally:
            check.compose_down()
        if "kube" in steps:
            try:
                check.kube()
            finally:
                check.kube_down()
    except Exception as exc:  # reported below; teardown still runs
        error = exc
    finally:
        try:
            check.teardown()
        except Exception as exc:
            error = error or exc
    total = time.monotonic() - started
    print("\ndeploy-check summary")
    for name, seconds, status in check.timer.steps:
        print(f"  {status:<6} {seconds:6.0f}s  {name}")
    print(f"  total {total:.0f}s on {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if args.record:
        Path(args.record).write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                 "total_s": round(total), "ok": error is None,
                                                 "steps": check.timer.steps, "results": check.results}, indent=1))
    if error:
        print(f"deploy-check FAILED: {error}", file=sys.stderr)
        return 1
    print("deploy-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
