"""The compose and Kubernetes NATS users come from the same generator as the embedded server's:
the checked-in auth.conf is exactly its output for the deployment files, and make_secrets.py
writes a password for each of its users under the variable auth.conf reads."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tradebus.bus.auth import deploy_config_text, nats_users, password_variable
from tradebus.config import load_deployment

ROOT = Path(__file__).resolve().parents[2]
AUTH_CONF = ROOT / "deploy" / "k8s" / "base" / "nats" / "auth.conf"
sys.path.insert(0, str(ROOT / "deploy" / "compose"))
from make_secrets import USERS, VARIABLES, write_secrets  # noqa: E402


def test_checked_in_auth_conf_is_the_generators_output():
    expected = deploy_config_text(load_deployment(ROOT / "deploy" / "compose" / "deployment.yaml"))
    assert AUTH_CONF.read_text() == expected, "regenerate: python -m tradebus.bus.auth --deploy deploy/compose/deployment.yaml"


def test_kubernetes_deployment_file_gives_the_same_users():
    compose = load_deployment(ROOT / "deploy" / "compose" / "deployment.yaml")
    k8s = load_deployment(ROOT / "deploy" / "k8s" / "base" / "deployment.yaml")
    assert nats_users(compose, per_instance=False) == nats_users(k8s, per_instance=False)


def test_the_generator_runs_from_the_command_line():
    compose = ROOT / "deploy" / "compose" / "deployment.yaml"
    out = subprocess.run([sys.executable, "-m", "tradebus.bus.auth", "--deploy", str(compose)],
                         capture_output=True, text=True, check=True).stdout
    assert out == AUTH_CONF.read_text()


def test_make_secrets_covers_every_generated_user(tmp_path):
    users = [u.name for u in nats_users(load_deployment(ROOT / "deploy" / "compose" / "deployment.yaml"), per_instance=False)]
    assert USERS == users
    assert VARIABLES == {u: password_variable(u) for u in users}
    passwords = write_secrets(tmp_path / "secrets")
    env = dict(line.split("=", 1) for line in (tmp_path / "secrets" / "nats.env").read_text().splitlines())
    assert env == {password_variable(u): passwords[u] for u in users}
