# Fill search (fills.pyx), cimported by batch.pyx.
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t

from tradebus.engine.bars cimport Bars

cdef enum:
    SIDE_BUY = 0
    SIDE_SELL = 1

cdef enum:
    ORDER_MARKET = 0
    ORDER_LIMIT = 1
    ORDER_STOP = 2

cdef enum:
    FILL_CLOSE = 0
    FILL_NEXT_OPEN = 1

# Reasons a signal row is refused (SIGNAL_ERRORS in fills.pyx words them).
cdef enum:
    SIG_OK = 0
    SIG_UNSORTED = 1
    SIG_QUANTITY = 2
    SIG_SIDE = 3
    SIG_TYPE = 4
    SIG_PRICE = 5
    SIG_NO_MEMORY = 6

# One row of SIGNAL_DTYPE (packed, 26 bytes).
cdef packed struct Signal:
    int64_t timestamp_ns
    double quantity
    double price
    uint8_t side
    uint8_t type

cdef struct Config:
    double capital
    double fee_rate
    double slippage         # fraction of the price, taken against the taker
    int fill_mode

cdef enum:
    FILL_AT_CLOSE = 0       # how an Event's price is found (see fill_price)
    FILL_AT_OPEN = 1
    FILL_AT_LIMIT = 2
    FILL_AT_STOP = 3

# A signal that will fill: at which bar, in which phase of the bar, how it is priced.
cdef struct Event:
    int64_t bar
    int16_t phase           # 0 at the open, 1 inside the bar (limit/stop), 2 at the close
    int16_t kind            # FILL_AT_*
    int32_t signal
    double price            # the limit price or stop trigger
    double quantity         # signed: > 0 buys


cdef int64_t plan_fills(const Bars* bars, const Signal* signals, int64_t nsignals,
                        const Config* cfg, Event* events, int64_t* unfilled,
                        int* error_code, int64_t* error_row) noexcept nogil
cdef bint plain_signals(object arr)
cpdef object as_signals(object signals, str where)


cdef inline double fill_price(const Bars* bars, const Event* ev, double slippage) noexcept nogil:
    """Execution price of an event at its bar: market and stop fills pay slippage."""
    cdef double px, side = 1.0 if ev.quantity > 0.0 else -1.0
    if ev.kind == FILL_AT_CLOSE:
        px = bars.close[ev.bar]
    elif ev.kind == FILL_AT_OPEN:
        px = bars.open[ev.bar]
    elif ev.kind == FILL_AT_LIMIT:
        return ev.price
    elif ev.quantity > 0.0:            # stop: at the trigger, or at the open if it gapped past
        px = bars.open[ev.bar] if bars.open[ev.bar] > ev.price else ev.price
    else:
        px = bars.open[ev.bar] if bars.open[ev.bar] < ev.price else ev.price
    return px * (1.0 + side * slippage)
