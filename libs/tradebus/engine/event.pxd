# Declarations of the strategy API's compiled objects (event.pyx), for the simulated venue
# (event_sim.pyx) and any other module that drives strategies from C.
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef enum:
    EV_BUY = 0
    EV_SELL = 1

# Order types, in tradebus.proto.OrderType's order; the last three are requests on orders.
cdef enum:
    OT_MARKET = 0
    OT_LIMIT = 1
    OT_STOP_MARKET = 2
    OT_STOP_LIMIT = 3
    OT_TP_MARKET = 4
    OT_TP_LIMIT = 5
    OT_TRAILING = 6
    OT_TRAILING_PCT = 7
    OT_CLOSE = 8
    OT_CANCEL = 9
    OT_CANCEL_ALL = 10
    OT_MODIFY = 11

cdef enum:
    TIF_GTC = 0
    TIF_IOC = 1
    TIF_FOK = 2

cdef enum:
    FLAG_POST_ONLY = 1
    FLAG_REDUCE_ONLY = 2

# Order states, in tradebus.proto.OrderState's words (ORDER_STATES in event.pyx).
cdef enum:
    ST_NEW = 0
    ST_ACKED = 1
    ST_PARTIAL = 2
    ST_FILLED = 3
    ST_CANCELLED = 4
    ST_REJECTED = 5
    ST_EXPIRED = 6


cdef class Clock:
    cdef int64_t now            # event time (backtest); ignored when live
    cdef readonly bint live     # True: now_ns() reads the real clock
    cdef int64_t read(self) noexcept


cdef class OrderBook:
    # Bids ascending and asks descending, so the best level of each side is the last one and
    # the churn near the top of the book moves few bytes.
    cdef double* _bid_px
    cdef double* _bid_qty
    cdef double* _ask_px
    cdef double* _ask_qty
    cdef Py_ssize_t _nbid, _nask, _cap_bid, _cap_ask
    cdef readonly int64_t ts_ns
    cdef readonly object symbol
    cdef int _grow(self, bint bid) except -1
    cdef int set_level(self, bint bid, double price, double qty) except -1
    cdef void clear(self) noexcept
    cdef double bid(self) noexcept          # best bid price, NaN when empty
    cdef double ask(self) noexcept          # best ask price, NaN when empty
    cdef Py_ssize_t depth(self, bint bid) noexcept
    cdef double level_price(self, bint bid, Py_ssize_t i) noexcept   # i = 0 is the best
    cdef double level_qty(self, bint bid, Py_ssize_t i) noexcept
    cdef double qty_at(self, bint bid, double price) noexcept         # 0 when no such level


cdef class TradeEvent:
    cdef readonly object symbol
    cdef readonly double price
    cdef readonly double qty
    cdef readonly bint is_buy
    cdef readonly int64_t ts_ns
    cdef readonly object trade_id


cdef class BarEvent:
    cdef readonly object symbol
    cdef readonly int64_t ts_ns
    cdef readonly double open, high, low, close, volume


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
    cdef double trade_pnl         # cash moved by the current round trip (statistics)
    cdef double last_px
    cdef double last_q
    cdef int64_t last_ts
    cdef bint has_last
    cdef bint last_is_buy
    cdef TradeEvent _last_trade
    cdef void apply_fill(self, double signed_qty, double price, double fee) noexcept
    cdef double mark(self) noexcept


cdef class Fill:
    cdef readonly int64_t order_id
    cdef readonly object symbol
    cdef readonly str side
    cdef readonly double price
    cdef readonly double qty
    cdef readonly double fee
    cdef readonly int64_t ts_ns
    cdef readonly bint is_maker
    cdef readonly double position
    cdef readonly double leaves_qty
    cdef readonly str order_type
    cdef readonly object trade_id


cdef class Order:
    cdef readonly int64_t id
    cdef readonly object symbol
    cdef readonly str side
    cdef readonly str order_type
    cdef readonly double qty
    cdef readonly double price
    cdef readonly double trigger
    cdef readonly double offset
    cdef readonly double filled
    cdef readonly double avg_price
    cdef readonly str status
    cdef readonly str time_in_force
    cdef readonly int flags
    cdef readonly int64_t ts_ns
    cdef readonly str reason


cdef class Signal:
    cdef readonly str side
    cdef readonly str order_type
    cdef readonly double quantity
    cdef readonly double price
    cdef readonly double trigger
    cdef readonly double offset
    cdef readonly int64_t order_id
    cdef readonly object symbol
    cdef readonly int flags
    cdef readonly str time_in_force
    cdef readonly int64_t ts_ns
    cdef readonly object strategy
    cdef public object client_order_id


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
