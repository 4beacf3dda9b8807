# The strategy API's vocabulary (codes shared by every module that cimports this) and the event
# objects handed to callbacks (events.pyx).
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



cdef Signal make_signal(str side, int otype, double qty, double price, double trigger, double offset,
                        int64_t order_id, object symbol, int flags, int tif, int64_t ts_ns,
                        object strategy)
