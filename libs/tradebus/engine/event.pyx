"""The strategy API's compiled core: Strategy, its context, the order book and event objects.

A strategy talks only to these objects. Runners drive it: the simulated venue of
:mod:`tradebus.engine.event_sim` in a backtest, :class:`tradebus.strategy.Runner` live. Both
implement :class:`OrderSink`, the narrow interface the order methods submit through, so one
strategy runs unchanged in both. Users import these names from :mod:`tradebus.strategy`.

Each concern has its own module (with a ``.pxd``): :mod:`tradebus.engine.clock`,
:mod:`tradebus.engine.order_book`, :mod:`tradebus.engine.events` (TradeEvent, BarEvent, Fill,
Order, Signal, OrderError and the order vocabulary) and :mod:`tradebus.engine.strategy_api`
(Strategy, StrategyContext, OrderSink, SignalSink). This module gathers them under the names
they have always had.

Objects handed to callbacks are reused between events where that saves an allocation per event
(the trade and bar objects of a backtest): read their fields in the callback, copy what you keep.
"""
import tradebus.engine.clock as _clock
import tradebus.engine.events as _events
import tradebus.engine.order_book as _order_book
import tradebus.engine.strategy_api as _strategy_api

__all__ = [
    "Clock", "OrderBook", "TradeEvent", "BarEvent", "StrategyContext", "Fill", "Order", "Signal",
    "OrderSink", "SignalSink", "Strategy", "ORDER_TYPES", "ORDER_STATES", "TIME_IN_FORCE",
    "POST_ONLY", "REDUCE_ONLY", "OrderError", "check_grid",
]

# The names are bound through globals(): event.pxd cimports the same classes (for modules that
# cimport them from here), and Cython does not rebind a cimported name on a Python import.
for _module in (_clock, _order_book, _events, _strategy_api):
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
log = _strategy_api.log
del _module, _name
