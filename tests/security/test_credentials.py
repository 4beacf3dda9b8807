"""Credentials on disk and how clients find them: owner-only password files kept across runs, the
operator's credentials used only for the stack whose URL they were written for, each user's own
inbox prefix, and TLS options from the configuration or the environment."""
from __future__ import annotations

import stat

import msgspec
import pytest

from tradebus.bus import NatsConfig
from tradebus.bus.auth import nats_users, operator_credentials, write_credentials
from tradebus.bus.config import Secrets, connect_options
from tradebus.cli.up import child_specs, secure_server_config
from tradebus.config import DeploymentConfig

from .conftest import deployment


def test_password_files_are_owner_only_and_kept_across_runs(tmp_path):
    first = write_credentials(tmp_path / "auth", ["a", "b"])
    assert stat.S_IMODE((tmp_path / "auth").stat().st_mode) == 0o700
    assert all(stat.S_IMODE((tmp_path / "auth" / f"{u}.password").stat().st_mode) == 0o600 for u in first)
    assert first["a"] != first["b"] and len(first["a"]) >= 24
    (tmp_path / "auth" / "b.password").write_text("1bad")          # not a valid password: replaced
    second = write_credentials(tmp_path / "auth", ["a", "b"])
    assert second["a"] == first["a"] and second["b"] not in (first["b"], "1bad")


def test_the_operator_credentials_serve_only_the_stack_they_were_written_for(tmp_path):
    state = tmp_path / "state"
    write_credentials(state / "auth", ["operator"])
    (state / "nats-url").write_text("nats://127.0.0.1:4999\n")
    assert operator_credentials("nats://127.0.0.1:4999", [state]) == ("operator", str(state / "auth" / "operator.password"))
    assert operator_credentials("nats://127.0.0.1:5000", [state]) is None
    env = {"TRADEBUS_STATE_DIR": str(state)}
    opts = connect_options(NatsConfig(url="nats://127.0.0.1:4999"), env)
    assert opts["user"] == "operator" and opts["password"] == (state / "auth" / "operator.password").read_text().strip()
    assert opts["inbox_prefix"] == "_INBOX_operator"
    assert "user" not in connect_options(NatsConfig(url="nats://127.0.0.1:5000"), env)
    # explicit credentials win over the state folder's
    explicit = Secrets.resolve(NatsConfig(url="nats://127.0.0.1:4999"), {**env, "TRADEBUS_NATS_USER": "market_data",
                                                                          "TRADEBUS_NATS_PASSWORD": "pw"})
    assert explicit.user == "market_data" and explicit.password == "pw"


def test_children_get_their_user_by_environment_never_on_the_command_line(tmp_path):
    config = deployment()
    extra, env = secure_server_config(config, tmp_path, workers=None)
    specs, _targets = child_specs(config, "deploy.yaml", "nats://127.0.0.1:1", None, None, env)
    assert {s.name for s in specs} == {"sim_exchange", "market_data", "strategy_runner", "runner_beta", "order_router",
                                       "backtest_worker-1", "backtest_worker-2"}
    passwords = {p.stem: p.read_text().strip() for p in (tmp_path / "auth").glob("*.password")}
    assert set(passwords) == {u.name for u in nats_users(config)}
    for spec in specs:
        assert spec.env["TRADEBUS_NATS_USER"] == spec.name
        assert spec.env["TRADEBUS_NATS_PASSWORD_FILE"].endswith(f"/auth/{spec.name}.password")
        assert not any(pw in " ".join(spec.argv) + str(spec.env) for pw in passwords.values())
    assert all(pw in extra for pw in passwords.values())            # the server's own (0600) config
    off = msgspec.convert({"embedded_nats": {"auth": False}}, DeploymentConfig)
    assert secure_server_config(off, tmp_path / "off", workers=None) == ("", {})


def test_tls_options_come_from_the_config_or_the_environment(tmp_path):
    assert "tls" not in connect_options(NatsConfig(url="nats://127.0.0.1:1"), {})
    with pytest.raises(FileNotFoundError):   # a configured CA that is missing is an error, not plain text
        connect_options(NatsConfig(url="nats://127.0.0.1:1", tls_ca_file=str(tmp_path / "missing.pem")), {})
