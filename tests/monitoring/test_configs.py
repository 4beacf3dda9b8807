"""The monitoring configuration agrees with the deployment files: Prometheus (checked by Debian's
promtool) scrapes each compose service on its metrics port, each pod advertises its own."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tradebus.config import load_deployment

from .stack import MONITORING, REPO


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool (Debian's prometheus package) is not installed: run `make monitoring-deps`", pytrace=False)
    return found


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-local.yml"])
def test_promtool_accepts_the_prometheus_configs(name):
    out = subprocess.run([promtool(), "check", "config", str(MONITORING / name)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_prometheus_scrapes_every_service_on_its_deployment_port():
    ports = {name: entry.metrics_port for name, entry in
             load_deployment(REPO / "deploy/compose/deployment.yaml").services.items()}
    assert all(ports.values()), ports
    job = next(j for j in yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"]
               if j["job_name"] == "tradebus")
    scraped = {group["labels"]["service"]: group["targets"] for group in job["static_configs"]}
    for sd in job["dns_sd_configs"]:
        for name in sd["names"]:
            scraped[name] = [f"{name}:{sd['port']}"]
    assert scraped == {name: [f"{name}:{port}"] for name, port in ports.items()}


def test_each_pod_advertises_the_metrics_port_of_its_service():
    ports = {name: entry.metrics_port for name, entry in
             load_deployment(REPO / "deploy/k8s/base/deployment.yaml").services.items()}
    seen = {}
    for path in sorted(Path(REPO / "deploy/k8s/base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            template = doc["spec"]["template"]
            container = template["spec"]["containers"][0]
            service = container["args"][0]
            annotations = template["metadata"].get("annotations", {})
            declared = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            assert annotations.get("prometheus.io/scrape") == "true", path
            assert int(annotations["prometheus.io/port"]) == declared["metrics"] == ports[service], path
            seen[service] = declared["metrics"]
    assert set(seen) == set(ports)
