# Declarations of the batch engine's C core, for modules that cimport it (the event engine, the
# backtest worker). The Python API is in batch.pyx; tradebus.engine re-exports it.
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint64_t

from tradebus.engine.ledger cimport Stats

cdef enum:
    BLOCK = 64          # bars summarised by one BlockStats
    SUPER = 64          # blocks summarised by one superblock BlockStats

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

# Reasons a signal row is refused (SIGNAL_ERRORS in batch.pyx words them).
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

# One row of FILL_DTYPE (aligned, 64 bytes).
cdef struct Fill:
    int64_t timestamp_ns
    int64_t bar
    int64_t signal
    double quantity
    double price
    double fee
    double position
    uint8_t side
    uint8_t type

# Summary of the closes (and highs/lows) of a run of bars: extremes, the largest fall and rise
# inside it (i <= j), and the squared close-to-close moves split by sign. One cache line.
cdef struct BlockStats:
    double cmax
    double cmin
    double drop
    double rise
    double s2pos
    double s2neg
    double hmax
    double lmin

# Read-only view of one loaded instrument; shared by all threads of a batch.
cdef struct Bars:
    const int64_t* ts
    const double* open
    const double* high
    const double* low
    const double* close
    const BlockStats* blocks
    const BlockStats* supers
    int64_t n
    int64_t nblocks
    int64_t nsupers
    int64_t interval        # smallest gap between bars, ns (1 for a single bar)
    int64_t end_ts          # first timestamp after the last bar's interval
    bint uniform            # every gap equals interval: bar index is arithmetic
    uint64_t magic          # floor(t / interval) as a multiply and shift (0: divide)
    int shift

cdef struct Config:
    double capital
    double fee_rate
    double slippage         # fraction of the price, taken against the taker
    int fill_mode

cdef enum:
    FILL_AT_CLOSE = 0       # how an Event's price is found (see fill_price in batch.pyx)
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

# One run's statistics, or why its signals were refused (error_code SIG_*, error_row).
cdef struct Outcome:
    Stats stats
    int error_code
    int64_t error_row

cdef int run_bars(const Bars* bars, const Signal* signals, int64_t nsignals, const Config* cfg,
                  Event* scratch, Outcome* out, double* equity, Fill* fills) noexcept nogil
