"""strategy_runner settings: decoded strictly, with clear errors."""
from __future__ import annotations

import msgspec
import pytest

from tradebus.config import ConfigError, DeploymentConfig, service_section
from tradebus.services.strategy_runner.settings import StrategyRunnerSettings, load_class

GOOD = {"strategies": [{"name": "sma", "class": "tradebus.strategy.examples:SmaCross",
                        "symbols": ["BTC/USDT", {"symbol": "ETH/USDT", "tick_size": 0.01}],
                        "params": {"fast": 5}}]}


def settings(data):
    config = msgspec.convert({"services": {"strategy_runner": {"module": "m", "settings": data}}}, DeploymentConfig)
    return service_section(config, "strategy_runner", StrategyRunnerSettings)


def test_good_settings():
    s = settings(GOOD)
    spec = s.strategies[0]
    assert spec.venue == "sim" and spec.cls == "tradebus.strategy.examples:SmaCross"
    assert [x.symbol for x in spec.symbol_specs()] == ["BTC/USDT", "ETH/USDT"]
    assert settings({}).strategies == []


@pytest.mark.parametrize("change, message", [
    ({"strategies": [{**GOOD["strategies"][0], "colour": 1}]}, "colour"),
    ({"strategies": [{**GOOD["strategies"][0], "name": "a b"}]}, "strategy name must match"),
    ({"strategies": [{**GOOD["strategies"][0], "symbols": ["BTCUSDT"]}]}, "ccxt unified form"),
    ({"strategies": [{**GOOD["strategies"][0], "class": "no_colon"}]}, "module:Class"),
    ({"strategies": GOOD["strategies"] * 2}, "unique"),
    ({"status_interval": 0}, "status_interval"),
])
def test_bad_settings(change, message):
    with pytest.raises(ConfigError, match=message):
        settings({**GOOD, **change})


def test_load_class(tmp_path):
    from tradebus.strategy.examples import SmaCross

    assert load_class("tradebus.strategy.examples:SmaCross") is SmaCross
    (tmp_path / "mine.py").write_text("from tradebus.strategy import Strategy\nclass Mine(Strategy):\n    pass\n")
    assert load_class("mine.py:Mine", tmp_path).__name__ == "Mine"
    with pytest.raises(ValueError, match="not found"):
        load_class("missing.py:X", tmp_path)
    with pytest.raises(ValueError, match="has no 'Nope'"):
        load_class("tradebus.strategy.examples:Nope")
