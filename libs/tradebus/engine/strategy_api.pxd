# Strategy, its per-symbol context and the OrderSink (strategy_api.pyx), for runners written
# in Cython (the simulated venue of event_sim.pyx).
from libc.stdint cimport int32_t, int64_t

from tradebus.engine.clock cimport Clock
from tradebus.engine.events cimport TradeEvent
from tradebus.engine.order_book cimport OrderBook


cdef class StrategyContext:
    cdef readonly object symbol
    cdef readonly OrderBook book
    cdef Clock _clock
    cdef OrderSink _sink
    cdef Strategy _strategy
    cdef int32_t index            # position of the symbol in its runner
    cdef double pos               # signed position
    cdef double avg               # average entry price of the open position
    cdef double realized          # closed PnL before fees
    cdef double fee_total
    cdef double last_px
    cdef double last_q
    cdef int64_t last_ts
    cdef bint has_last
    cdef bint last_is_buy
    cdef TradeEvent _last_trade
    cdef void apply_fill(self, double signed_qty, double price, double fee) noexcept
    cdef double mark(self) noexcept



cdef class OrderSink:
    cdef Clock clock
    cdef int64_t submit(self, Strategy strategy, StrategyContext ctx, int side, int otype, double qty,
                        double price, double trigger, double offset, int tif, int flags) except -1
    cdef int cancel(self, Strategy strategy, int64_t order_id) except -1
    cdef int cancel_all(self, Strategy strategy, StrategyContext ctx) except -1
    cdef int modify(self, Strategy strategy, int64_t order_id, double price, double qty) except -1
    cdef list open_orders(self, Strategy strategy, StrategyContext ctx)


cdef class Strategy:
    cdef readonly list symbols
    cdef public str name
    cdef dict _ctx_by_key
    cdef StrategyContext _ctx0
    cdef OrderSink _sink
    cdef dict _timers
    cdef int64_t _next_timer
    cdef StrategyContext context_for(self, object symbol)
    cdef object _order(self, object symbol, int side, int otype, object qty, object price,
                       object trigger, double offset, object tif, bint post_only, bint reduce_only)
    cdef object pop_due_timer(self, int64_t now)
    cdef int64_t next_timer_ns(self) noexcept


cdef double on_grid(double x, double step, str what, object symbol) except? -1.0
