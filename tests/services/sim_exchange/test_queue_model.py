"""The sim venue places resting orders with the event backtester's compiled queue model."""
from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import msgspec
import pytest

from tradebus.engine.models import NoQueue, ProbQueue, QueuePosition, RiskAverseQueue
from tradebus.services.sim_exchange.engine import Engine
from tradebus.services.sim_exchange.server import SimExchange
from tradebus.services.sim_exchange.settings import Queue, default_config

from .test_engine import D, make


def with_model(model) -> tuple:
    engine, inst, a, b = make()
    engine = Engine(list(engine.instruments.values()), [a, b], clock=engine.clock, queue_model=model)
    engine.seed_book(inst, bids=[(D("100.00"), D("2")), (D("99.99"), D("3"))],
                     asks=[(D("100.01"), D("1")), (D("100.02"), D("4"))])
    return engine, inst, a


def test_resting_orders_hold_a_queue_position_of_the_engines_model():
    engine, inst, a, _ = make()
    assert isinstance(engine.queue_model, RiskAverseQueue)
    order = engine.place(a, inst, side="BUY", type="LIMIT", qty=D("0.5"), price=D("100.00"), tif="GTC")
    assert isinstance(order.queue, QueuePosition) and order.queue.model is engine.queue_model
    assert order.queue.ahead == 2.0


def test_prob_queue_moves_up_on_cancels_the_risk_averse_queue_ignores():
    # 2 ahead of our 0.5; 3 more join behind (level 5); then the level drops to 3 with no trade:
    # a cancel of 2, behind us with p = 3^2 / (3^2 + 2^2) = 9/13, so 2 - (4/13) x 2 stay ahead.
    # A trade of 1.5 at 100 then reaches our order with what passes them (in lots, rounded down).
    ahead = 2 - (4 / 13) * 2
    expected = Decimal(repr(1.5 - ahead)).quantize(D("0.00001"), ROUND_DOWN)
    for model, filled in ((ProbQueue(power=2.0), expected), (RiskAverseQueue(), D(0))):
        engine, inst, a = with_model(model)
        order = engine.place(a, inst, side="BUY", type="LIMIT", qty=D("0.5"), price=D("100.00"), tif="GTC")
        engine.apply_depth(inst, [(True, D("100.00"), D("5"))])
        engine.apply_depth(inst, [(True, D("100.00"), D("3"))])
        engine.apply_trade(inst, D("100.00"), D("1.5"), buyer_maker=True)
        assert order.executed == filled, model
    assert D("0.1") < expected < D("0.2")


def test_no_queue_touch_fills_on_any_trade_at_the_price():
    engine, inst, a = with_model(NoQueue(touch=True))
    order = engine.place(a, inst, side="BUY", type="LIMIT", qty=D("0.5"), price=D("100.00"), tif="GTC")
    engine.apply_trade(inst, D("100.00"), D("0.2"), buyer_maker=True)
    assert order.executed == D("0.2")                 # the whole trade, not more than it printed
    engine, inst, a = with_model(NoQueue())
    order = engine.place(a, inst, side="BUY", type="LIMIT", qty=D("0.5"), price=D("100.00"), tif="GTC")
    engine.apply_trade(inst, D("100.00"), D("9"), buyer_maker=True)
    assert order.executed == 0


def test_the_settings_choose_the_queue_model():
    sim = SimExchange(default_config(speed="0", queue=Queue(model="prob", power=2.0)))
    assert isinstance(sim.engine.queue_model, ProbQueue) and sim.engine.queue_model.power == 2.0
    assert isinstance(SimExchange(default_config(speed="0")).engine.queue_model, RiskAverseQueue)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"model": "fifo"}, Queue)
