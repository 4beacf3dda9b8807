"""tradebus.engine.permutation: shuffled paths and the permutation p-value."""
from __future__ import annotations

import numpy as np
import pytest

from tradebus.engine import STAT_KEYS, Engine, make_signals, permutation_paths, permutation_test
from tradebus.engine.examples import sma_cross

from .conftest import random_bars


def trending_bars(n=600, drift=0.002, seed=0) -> np.ndarray:
    return random_bars(n, seed=seed, drift=drift)


def test_paths_shuffle_returns_and_carry_each_bar_shape():
    bars = trending_bars(300)
    log_returns = np.diff(np.log(bars["close"]))
    paths = list(permutation_paths(bars, 5, seed=3))
    for path in paths:
        np.testing.assert_array_equal(path["timestamp_ns"], bars["timestamp_ns"])
        assert path[0] == bars[0]
        shuffled = np.diff(np.log(path["close"]))
        np.testing.assert_allclose(np.sort(shuffled), np.sort(log_returns), atol=1e-12)
        assert path["close"][-1] == pytest.approx(bars["close"][-1], rel=1e-9)
        # Each bar keeps its open/high/low relative to its close, and its volume, with its return.
        order = [int(np.argmin(np.abs(log_returns - r))) for r in shuffled]
        for f in ("open", "high", "low"):
            np.testing.assert_allclose(path[f][1:] / path["close"][1:],
                                       (bars[f][1:] / bars["close"][1:])[order], rtol=1e-12)
        np.testing.assert_array_equal(path["volume"][1:], bars["volume"][1:][order])
        Engine().load_bars(path)          # still valid bars: low <= open, close <= high
    assert not np.array_equal(paths[0]["close"], paths[1]["close"])


def test_same_seed_same_paths():
    bars = trending_bars(100)
    a = [p["close"] for p in permutation_paths(bars, 3, seed=42)]
    b = [p["close"] for p in permutation_paths(bars, 3, seed=42)]
    c = [p["close"] for p in permutation_paths(bars, 3, seed=43)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_paths_are_uniform_permutations_keyed_by_seed_and_index():
    bars = trending_bars(4)                                   # 3 moves: 6 orders
    ratios = bars["close"][1:] / bars["close"][:-1]
    counts: dict[tuple, int] = {}
    paths = list(permutation_paths(bars, 6_000, seed=9))
    for path in paths:
        moved = path["close"][1:] / path["close"][:-1]
        order = tuple(int(np.argmin(np.abs(ratios - r))) for r in moved)
        counts[order] = counts.get(order, 0) + 1
    assert len(counts) == 6 and all(880 < c < 1120 for c in counts.values()), counts
    # any path can be made alone: path k of a seed does not depend on the paths before it
    alone = next(permutation_paths(bars, 1, seed=9, start=4_321))
    np.testing.assert_array_equal(alone["close"], paths[4_321]["close"])


def test_seeds_must_be_unsigned_64_bit_integers():
    bars = trending_bars(10)
    for bad in (-1, 2**64, 1.5, "7", True):
        with pytest.raises(ValueError, match="seed must be an integer"):
            next(permutation_paths(bars, 1, seed=bad))
    assert len(list(permutation_paths(bars, 2, seed=2**64 - 1))) == 2


def test_paths_mode_runs_each_strategy_on_its_own_path():
    bars = trending_bars(400)
    def strategy(b):
        return sma_cross(b, 5, 20)
    result = permutation_test(bars, strategy, n=30, seed=1, fee_rate=0.0002)
    assert result.n == 30 and result.mode == "paths"
    assert set(result.distribution) == set(STAT_KEYS)
    # The k-th permuted result is the strategy run on the k-th path, on its own.
    for k, path in enumerate(permutation_paths(bars, 30, seed=1)):
        if k in (0, 17, 29):
            engine = Engine(fee_rate=0.0002)
            engine.load_bars(path)
            assert result.distribution["net_pnl"][k] == engine.run(strategy(path))["net_pnl"]
    real = Engine(fee_rate=0.0002)
    real.load_bars(bars)
    assert result.real == real.run(strategy(bars))
    pnl = result.distribution["net_pnl"]
    assert result.p_value == (1 + np.count_nonzero(pnl >= result.real["net_pnl"])) / 31
    assert result.p_values["net_pnl"] == result.p_value


def test_signals_mode_runs_path_signals_on_the_real_bars():
    bars = trending_bars(400)
    def strategy(b):
        return sma_cross(b, 5, 20)
    result = permutation_test(bars, strategy, n=10, seed=2, mode="signals", statistic="sharpe")
    engine = Engine()
    engine.load_bars(bars)
    want = [engine.run(strategy(p))["sharpe"] for p in permutation_paths(bars, 10, seed=2)]
    assert result.distribution["sharpe"].tolist() == want
    assert result.statistic == "sharpe" and result.p_value == result.p_values["sharpe"]


def test_a_strategy_that_exploits_the_trend_beats_its_permutations():
    # Buying after up-bars on a series whose returns are autocorrelated has an edge that
    # shuffling destroys; a p-value near its floor says so.
    rng = np.random.default_rng(7)
    n = 1_500
    r = np.zeros(n)
    for i in range(1, n):
        r[i] = 0.6 * r[i - 1] + rng.normal(0, 0.002)
    bars = trending_bars(n, drift=0.0)
    close = 100 * np.exp(np.cumsum(r))
    bars["close"] = close
    bars["open"] = np.concatenate(([close[0]], close[:-1]))
    bars["high"] = np.maximum(bars["open"], close)
    bars["low"] = np.minimum(bars["open"], close)

    def momentum(b):
        up = np.diff(np.log(b["close"]), prepend=0.0) > 0
        change = np.diff(up.astype(np.int8), prepend=np.int8(0))
        at = np.flatnonzero(change)
        return make_signals(b["timestamp_ns"][at], (change[at] < 0).astype(np.uint8), np.ones(len(at)))

    result = permutation_test(bars, momentum, n=99, seed=5, fee_rate=0.0)
    assert result.p_value <= 0.02
    assert result.real["net_pnl"] > np.percentile(result.distribution["net_pnl"], 98)


def test_large_studies_split_into_batches(monkeypatch):
    import tradebus.engine.permutation as perm
    bars = trending_bars(200)
    def strategy(b):
        return sma_cross(b, 3, 9)
    whole = perm.permutation_test(bars, strategy, n=8, seed=4)
    split = perm.permutation_test(bars, strategy, n=8, seed=4, batch_size=3)
    monkeypatch.setattr(perm, "PATH_MEMORY_BUDGET", 200 * perm.BYTES_PER_BAR * 2)  # 2 paths a batch
    by_memory = perm.permutation_test(bars, strategy, n=8, seed=4)
    for key in STAT_KEYS:
        np.testing.assert_array_equal(split.distribution[key], whole.distribution[key])
        np.testing.assert_array_equal(by_memory.distribution[key], whole.distribution[key])


@pytest.mark.parametrize("kwargs, error", [
    ({"mode": "bars"}, "mode must be one of"),
    ({"statistic": "alpha"}, "unknown statistic"),
    ({"n": 0}, "n must be >= 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        permutation_test(trending_bars(50), sma_cross, **kwargs)


def test_a_strategy_returning_something_else_is_named():
    with pytest.raises(TypeError, match="SIGNAL_DTYPE"):
        permutation_test(trending_bars(50), lambda b: [1, 2, 3], n=2)
