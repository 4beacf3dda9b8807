"""Venue models (tradebus.engine.models) against hand-computed expectations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.engine.models import (
    ConstantLatency,
    FeeModel,
    NoQueue,
    ProbQueue,
    QueuePosition,
    RecordedLatency,
    RiskAverseQueue,
)
from tradebus.strategy import SymbolRegistry

MASK = (1 << 64) - 1


def splitmix64(seed: int):
    """Reference SplitMix64 (Steele, Lea, Flood 2014), in plain Python integers."""
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


# -- fees ----------------------------------------------------------------------------------------

def test_fees_are_rate_times_notional_with_per_symbol_overrides():
    reg = SymbolRegistry()
    btc = reg.add_symbol("binance", "BTC/USDT")
    eth = reg.add_symbol("binance", "ETHUSDT")
    fees = FeeModel(maker_rate=0.0002, taker_rate=0.0004, overrides={"eth-usdt": (-0.0001, 0.001)})
    assert fees.fee(btc, 2.0, 100.0, maker=False) == pytest.approx(0.08)      # 0.0004 x 200
    assert fees.fee(btc, 2.0, 100.0, maker=True) == pytest.approx(0.04)       # 0.0002 x 200
    assert fees.fee(eth, 2.0, 100.0, maker=False) == pytest.approx(0.2)       # 0.001 x 200
    assert fees.fee(eth, 2.0, 100.0, maker=True) == pytest.approx(-0.02)      # a rebate
    assert fees.rates_of("BTCUSDT") == (0.0002, 0.0004)
    assert fees.rates_of(eth) == (-0.0001, 0.001)
    fees.check_symbols([btc, eth])
    with pytest.raises(ValueError, match="ETHUSDC"):
        FeeModel(0.0, 0.001, overrides={"ETHUSDC": (0.0, 0.0)}).check_symbols([btc, eth])


@pytest.mark.parametrize("kwargs", [
    {"taker_rate": -0.001}, {"taker_rate": 1.0}, {"maker_rate": -1.0}, {"maker_rate": "x"},
    {"taker_rate": True}, {"overrides": {"BTCUSDT": 0.001}}, {"overrides": {"BTCUSDT": (0.0, 2.0)}},
])
def test_bad_fee_rates_are_refused(kwargs):
    with pytest.raises(ValueError):
        FeeModel(**kwargs)


# -- latency -------------------------------------------------------------------------------------

def test_constant_latency():
    lat = ConstantLatency(entry_ns=1_500, response_ns=700)
    assert [lat.sample_entry() for _ in range(3)] == [1_500] * 3
    assert lat.sample_response() == 700
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError):
            ConstantLatency(entry_ns=bad)


def test_recorded_latency_draws_the_samples_a_seeded_splitmix64_picks():
    entry = [1_000, 5_000, 9_000, 13_000]
    response = [200, 400, 800]
    lat = RecordedLatency(entry, response, seed=42)
    got = [lat.sample_entry() if k % 2 == 0 else lat.sample_response() for k in range(20)]
    draws = splitmix64(42)
    expected = [entry[next(draws) % 4] if k % 2 == 0 else response[next(draws) % 3] for k in range(20)]
    assert got == expected
    assert set(got[::2]) <= set(entry) and len(set(got)) > 2
    again = lat.fresh()                              # a new run starts from the seed again
    assert [again.sample_entry() if k % 2 == 0 else again.sample_response() for k in range(20)] == expected
    other = RecordedLatency(entry, response, seed=43)
    assert [other.sample_entry() for _ in range(20)] != expected[::2] + expected[1::2]


def test_recorded_latency_without_responses_and_bad_samples():
    lat = RecordedLatency(np.array([3, 3, 3]), seed=1)
    assert lat.sample_response() == 0 and lat.sample_entry() == 3
    for bad in ([], [1, -2], [[1, 2]], [1.5], "abc"):
        with pytest.raises(ValueError):
            RecordedLatency(bad)
    with pytest.raises(ValueError):
        RecordedLatency([1], seed=-1)


# -- queue position ------------------------------------------------------------------------------

def test_no_queue_fills_only_through_the_price_or_on_touch():
    assert QueuePosition(NoQueue(), 5.0).trade(100.0) == 0.0
    assert QueuePosition(NoQueue(touch=True), 5.0).trade(0.001) == math.inf


def test_risk_averse_queue_fills_after_the_volume_ahead_traded():
    pos = QueuePosition(RiskAverseQueue(), level_qty=5.0)
    assert pos.ahead == 5.0
    assert pos.trade(3.0) == 0.0 and pos.ahead == 2.0     # 3 of the 5 ahead traded
    pos.depth(7.0, 6.0)                                    # a cancel: assumed behind us
    assert pos.ahead == 2.0
    pos.depth(6.0, 1.5)                                    # the level fell below our queue
    assert pos.ahead == 1.5
    assert pos.trade(4.0) == 2.5 and pos.ahead == 0.0      # 1.5 ahead, then 2.5 reach us
    assert pos.trade(1.0) == 1.0
    pos.join(10.0)                                         # a new price: back of the queue
    assert pos.ahead == 10.0 and pos.trade(1.0) == 0.0
    pos.consumed(4.0)                                      # our venue's taker took 4 ahead
    assert pos.ahead == 5.0
    pos.consumed(9.0)
    assert pos.ahead == 0.0


def test_prob_queue_power_function_by_hand():
    model = ProbQueue(power=3.0)
    # front 1, back 2: p = 8 / (8 + 1); the level drops 3 -> 0.5 with no trade: chg 2.5;
    # front - (1 - p) chg + (back - p chg) = 1 - 2.5/9 + (2 - 20/9) = 0.5, capped by the level 0.5
    assert model.probability(1.0, 2.0) == pytest.approx(8 / 9)
    pos = QueuePosition(model, 1.0)
    pos.depth(3.0, 0.5)
    assert pos.ahead == pytest.approx(0.5)
    # front 3, back 1, power 2: p = 1/10; the level drops 4 -> 2: front - 0.9 x 2 = 1.2
    pos = QueuePosition(ProbQueue(power=2.0), 3.0)
    pos.depth(4.0, 2.0)
    assert pos.ahead == pytest.approx(1.2)
    # traded volume is not counted twice: a trade of 1 then the level dropping by that 1
    pos = QueuePosition(ProbQueue(power=2.0), 3.0)
    assert pos.trade(1.0) == 0.0 and pos.ahead == 2.0
    pos.depth(4.0, 3.0)
    assert pos.ahead == pytest.approx(2.0)
    # growth goes behind us
    pos.depth(3.0, 9.0)
    assert pos.ahead == pytest.approx(2.0)
    with pytest.raises(ValueError):
        ProbQueue(power=0.0)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 100.0), st.floats(0.0, 100.0), st.floats(0.0, 200.0), st.floats(0.5, 4.0))
def test_prob_queue_never_leaves_more_ahead_than_before_or_than_the_level(front, back, new, power):
    prev = front + back
    new = min(new, prev)
    pos = QueuePosition(ProbQueue(power=power), front)
    pos.depth(prev, new)
    assert 0.0 <= pos.ahead <= front + 1e-9
    assert pos.ahead <= new + 1e-9
    # never ahead of where the risk-averse model would put us
    averse = QueuePosition(RiskAverseQueue(), front)
    averse.depth(prev, new)
    assert pos.ahead <= averse.ahead + 1e-9


def test_docstring_examples():
    import doctest

    import tradebus.engine.models

    result = doctest.testmod(tradebus.engine.models, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
