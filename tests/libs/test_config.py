"""The deployment file and the one settings base: typos fail loudly, backoff is spelled one way."""
import importlib
import inspect
import pkgutil

import msgspec
import pytest

import tradebus.config
import tradebus.services
from tradebus.config import (
    BackoffSettings,
    ConfigError,
    DeploymentConfig,
    NatsConfig,
    Settings,
    SupervisorConfig,
    load_deployment,
    service_section,
)
from tradebus.retry import Backoff, backoff_delay


def settings_modules():
    yield tradebus.config
    for info in pkgutil.iter_modules(tradebus.services.__path__):
        try:
            yield importlib.import_module(f"tradebus.services.{info.name}.settings")
        except ModuleNotFoundError:
            continue


def test_every_configuration_struct_derives_from_the_settings_base():
    structs = [
        obj for module in settings_modules() for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, msgspec.Struct) and obj.__module__ == module.__name__
    ]
    assert len(structs) > 10
    assert [s.__qualname__ for s in structs if not issubclass(s, Settings)] == []
    for struct in structs:
        config = struct.__struct_config__
        assert config.frozen and config.forbid_unknown_fields, struct
        kinds = {p.kind for p in inspect.signature(struct).parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, struct


def test_a_typo_in_a_service_section_fails_loudly_naming_the_key(tmp_path):
    path = tmp_path / "deploy.yaml"
    path.write_text("services:\n  backtest_worker:\n    module: tradebus.services.backtest_worker\n"
                    "    settings: {ack_wiat: 5}\n")
    from tradebus.services.backtest_worker.settings import WorkerSettings

    config = load_deployment(path)
    with pytest.raises(ConfigError, match="services.backtest_worker.settings.*ack_wiat"):
        service_section(config, "backtest_worker", WorkerSettings)


def test_a_typo_in_the_file_fails_loudly_naming_file_and_key(tmp_path):
    path = tmp_path / "deploy.yaml"
    path.write_text("supervisor:\n  max_restart: 3\n")
    with pytest.raises(ConfigError, match=f"{path}.*max_restart"):
        load_deployment(path)


def test_an_old_backoff_key_is_refused_with_its_new_spelling(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("supervisor:\n  restart_initial_delay: 0.5\n")
    with pytest.raises(ConfigError, match=r"restart_initial_delay.*backoff\.initial"):
        load_deployment(path)


def test_backoff_is_one_spelling_in_every_section(tmp_path):
    path = tmp_path / "deploy.yaml"
    path.write_text("nats: {backoff: {initial: 0.2, cap: 2.0, jitter: 0.0}}\n"
                    "supervisor: {backoff: {initial: 1.0, multiplier: 3.0, cap: 9.0}}\n")
    config = load_deployment(path)
    assert config.nats.backoff == BackoffSettings(initial=0.2, multiplier=2.0, cap=2.0)
    assert config.supervisor.backoff == BackoffSettings(initial=1.0, multiplier=3.0, cap=9.0)
    assert isinstance(DeploymentConfig().supervisor, SupervisorConfig) and isinstance(DeploymentConfig().nats, NatsConfig)


def test_backoff_grows_caps_jitters_and_resets():
    b = Backoff(BackoffSettings(initial=0.5, multiplier=2.0, cap=3.0))
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
    jittered = BackoffSettings(initial=1.0, multiplier=2.0, cap=4.0, jitter=0.5)
    for attempt, base in enumerate([1.0, 2.0, 4.0, 4.0]):
        assert all(base <= backoff_delay(jittered, attempt) <= base * 1.5 for _ in range(50))
    assert backoff_delay(BackoffSettings(cap=7.0), 10_000) == 7.0  # endless retries: no float overflow
    for bad in (dict(initial=0), dict(multiplier=0.5), dict(initial=5, cap=1), dict(jitter=2)):
        with pytest.raises(ValueError):
            BackoffSettings(**bad)


def test_the_packaged_deployment_file_loads():
    config = load_deployment()
    assert "market_data" in config.services
