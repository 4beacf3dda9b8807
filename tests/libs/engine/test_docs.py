"""The examples in the engine's docstrings run and print what they say."""
from __future__ import annotations

import doctest

import pytest

import tradebus.engine.bars
import tradebus.engine.batch
import tradebus.engine.examples
import tradebus.engine.fills
import tradebus.engine.indicators
import tradebus.engine.permutation
import tradebus.engine.rule_language
import tradebus.engine.sweeps


@pytest.mark.parametrize("module", [tradebus.engine.bars, tradebus.engine.fills,
                                    tradebus.engine.batch, tradebus.engine.indicators,
                                    tradebus.engine.permutation, tradebus.engine.examples,
                                    tradebus.engine.rule_language, tradebus.engine.sweeps])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_api_is_documented():
    import tradebus.engine as engine

    for name in engine.__all__:
        obj = getattr(engine, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), name
    for name in ("load_bars_df", "load_bars", "load_bars_frame", "run", "run_batch"):
        assert ">>>" in getattr(engine.Engine, name).__doc__, name


def test_readme_example_runs():
    from pathlib import Path

    import numpy as np

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Backtest engine", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    rng = np.random.default_rng(0)
    n = 400
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    opens = np.concatenate(([closes[0]], closes[:-1]))
    namespace = {
        "ts": 1_700_000_000_000 + 60_000 * np.arange(n),
        "opens": opens,
        "highs": np.maximum(opens, closes) * 1.001,
        "lows": np.minimum(opens, closes) * 0.999,
        "closes": closes,
        "volumes": np.ones(n),
    }
    exec(code.replace("n=1000", "n=40"), namespace)
    assert namespace["stats"]["total_trades"] == 1
    assert len(namespace["results"]) == 1000 and namespace["results"][0] == namespace["stats"]
    assert 0 < namespace["p_value"] <= 1


def test_readme_rule_example_runs():
    from pathlib import Path

    from .conftest import random_bars

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Backtest engine", 1)[1]
    code = section.split("```python", 2)[2].split("```", 1)[0]
    namespace = {"bars": random_bars(2_000, seed=1)}
    exec(code.replace("n=1000", "n=20"), namespace)
    assert namespace["result"].n == 20 and 0 < namespace["result"].p_value <= 1
    assert namespace["best"]["fast"] in (5, 10, 20)
