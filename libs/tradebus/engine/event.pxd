# The strategy API's compiled objects, gathered for modules that cimport them from one place
# (the simulated venue of event_sim.pyx). Each lives in its own module: clock, order_book,
# events (codes and the event objects) and strategy_api (Strategy, its context, OrderSink).
from tradebus.engine.clock cimport Clock
from tradebus.engine.events cimport (
    EV_BUY, EV_SELL, FLAG_POST_ONLY, FLAG_REDUCE_ONLY, OT_CANCEL, OT_CANCEL_ALL, OT_CLOSE, OT_LIMIT,
    OT_MARKET, OT_MODIFY, OT_STOP_LIMIT, OT_STOP_MARKET, OT_TP_LIMIT, OT_TP_MARKET, OT_TRAILING,
    OT_TRAILING_PCT, ST_ACKED, ST_CANCELLED, ST_EXPIRED, ST_FILLED, ST_NEW, ST_PARTIAL, ST_REJECTED,
    TIF_FOK, TIF_GTC, TIF_IOC, BarEvent, Fill, Order, Signal, TradeEvent, make_signal,
)
from tradebus.engine.order_book cimport OrderBook
from tradebus.engine.strategy_api cimport OrderSink, Strategy, StrategyContext, on_grid
