"""The strategy API lives in one module per concern (clock, order_book, events, strategy_api);
every public name stays importable, as the same object, from tradebus.engine.event and
tradebus.strategy."""
from __future__ import annotations

import importlib

import pytest

import tradebus.engine.event as event
import tradebus.strategy as strategy

HOMES = {
    "tradebus.engine.clock": ["Clock"],
    "tradebus.engine.order_book": ["OrderBook"],
    "tradebus.engine.events": ["TradeEvent", "BarEvent", "Fill", "Order", "Signal", "OrderError",
                               "ORDER_TYPES", "ORDER_STATES", "TIME_IN_FORCE", "SIDES", "POST_ONLY",
                               "REDUCE_ONLY"],
    "tradebus.engine.strategy_api": ["StrategyContext", "OrderSink", "SignalSink", "Strategy", "check_grid"],
}


@pytest.mark.parametrize("module", sorted(HOMES))
def test_each_name_has_one_home_and_is_reexported(module):
    home = importlib.import_module(module)
    for name in HOMES[module]:
        obj = getattr(home, name)
        assert getattr(event, name) is obj, name
        if name in strategy.__all__:
            assert getattr(strategy, name) is obj, name
        if isinstance(obj, type):
            assert obj.__module__ == module, name


def test_event_all_is_unchanged():
    assert sorted(event.__all__) == sorted([
        "Clock", "OrderBook", "TradeEvent", "BarEvent", "StrategyContext", "Fill", "Order", "Signal",
        "OrderSink", "SignalSink", "Strategy", "ORDER_TYPES", "ORDER_STATES", "TIME_IN_FORCE",
        "POST_ONLY", "REDUCE_ONLY", "OrderError", "check_grid"])
    for name in event.__all__:
        assert getattr(event, name) is not None
