import logging

import msgspec
import nacl.utils
import nats.js.errors
import nkeys
import pytest
from nats.js import api

from tradebus.bus import Bus, EmbeddedNats, NatsConfig
from tradebus.bus.config import Secrets, connect_options, reconnect_handler
from tradebus.config import BackoffSettings, ConfigError, load_deployment


def test_secrets_come_from_the_environment_and_are_never_shown(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    env = {"TRADEBUS_NATS_USER": "alice", "TRADEBUS_NATS_PASSWORD": "s3cret-pw", "TRADEBUS_NATS_TOKEN_FILE": str(token_file)}
    cfg = NatsConfig(url="nats://127.0.0.1:1")
    opts = connect_options(cfg, env)
    assert opts["user"] == "alice" and opts["password"] == "s3cret-pw" and opts["token"] == "file-token"
    shown = repr(Secrets.resolve(cfg, env)) + str(cfg)
    assert "s3cret-pw" not in shown and "file-token" not in shown


def test_config_rejects_typos_and_nonsense():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"urll": "nats://x"}, NatsConfig)
    with pytest.raises(ValueError):
        msgspec.convert({"backoff": {"multiplier": 0.5}}, NatsConfig)


def test_backoff_grows_and_caps():
    class S:
        def __init__(self, n):
            self.reconnects = n

    handler = reconnect_handler(BackoffSettings(initial=0.1, multiplier=2.0, cap=1.0))
    delays = [handler([S(n)], {})[1] for n in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


@pytest.mark.parametrize("kind", ["userpass", "token", "nkey"])
async def test_credentials_authenticate_against_a_real_server(tmp_path, monkeypatch, caplog, kind):
    if kind == "userpass":
        auth = 'authorization { user: "svc", password: "pw-123" }'
        monkeypatch.setenv("TRADEBUS_NATS_USER", "svc")
        monkeypatch.setenv("TRADEBUS_NATS_PASSWORD", "pw-123")
    elif kind == "token":
        auth = 'authorization { token: "tok-456" }'
        monkeypatch.setenv("TRADEBUS_NATS_TOKEN", "tok-456")
    else:
        seed = nkeys.encode_seed(nacl.utils.random(32), nkeys.PREFIX_BYTE_USER)
        public = nkeys.from_seed(bytearray(seed)).public_key.decode()
        seed_file = tmp_path / "user.nk"
        seed_file.write_bytes(seed)
        auth = f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}'
        monkeypatch.setenv("TRADEBUS_NATS_NKEY_SEED", str(seed_file))
    with EmbeddedNats(state_dir=tmp_path / "srv", jetstream=False, extra_config=auth) as server:
        with caplog.at_level(logging.DEBUG):
            bus = await Bus.connect(NatsConfig(url=server.url, max_reconnect_attempts=1))
            await bus.nc.flush()
            assert bus.nc.is_connected
            await bus.close()
        assert "pw-123" not in caplog.text and "tok-456" not in caplog.text
        monkeypatch.delenv("TRADEBUS_NATS_TOKEN", raising=False)
        monkeypatch.delenv("TRADEBUS_NATS_PASSWORD", raising=False)
        monkeypatch.delenv("TRADEBUS_NATS_NKEY_SEED", raising=False)
        # refused however nats-py reports it (authorization error, closed connection, timeout)
        with pytest.raises(Exception):  # noqa: B017
            await Bus.connect(NatsConfig(url=server.url, max_reconnect_attempts=1, connect_timeout=1.0))


def test_stream_replicas_come_from_the_settings_or_the_environment(tmp_path, monkeypatch):
    assert NatsConfig().stream_replicas == 1
    assert NatsConfig.from_env({"TRADEBUS_JS_REPLICAS": "3"}).stream_replicas == 3
    assert NatsConfig.from_env({"TRADEBUS_JS_REPLICAS": "3"}, stream_replicas=5).stream_replicas == 5
    with pytest.raises(ConfigError, match="whole number"):
        NatsConfig.from_env({"TRADEBUS_JS_REPLICAS": "three"})
    with pytest.raises(msgspec.ValidationError, match="between 1 and 5"):
        msgspec.convert({"stream_replicas": 0}, NatsConfig)
    cfg = tmp_path / "deploy.yaml"
    cfg.write_text("nats: {stream_replicas: 3}\n")
    assert load_deployment(cfg).nats.stream_replicas == 3
    monkeypatch.setenv("TRADEBUS_JS_REPLICAS", "1")
    assert load_deployment(cfg).nats.stream_replicas == 1
    monkeypatch.setenv("TRADEBUS_JS_REPLICAS", "9")
    with pytest.raises(ConfigError, match="between 1 and 5"):
        load_deployment(cfg)


async def test_a_bus_declares_with_its_stream_replicas(nats_server):
    """One server cannot hold three replicas: the refusal shows the setting reached the declaration."""
    bus = await Bus.connect(NatsConfig(url=nats_server.url, stream_replicas=3))
    try:
        assert bus.stream_replicas == 3
        with pytest.raises(nats.js.errors.APIError, match="replicas"):
            await bus.declare_stream(api.StreamConfig(name="REPLICATED_PROBE", subjects=["probe.replicas"]))
    finally:
        await bus.close()
