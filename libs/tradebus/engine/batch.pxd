# The batch run (batch.pyx), cimported by fused.pyx.
from libc.stdint cimport int64_t, uint8_t

from tradebus.engine.bars cimport Bars
from tradebus.engine.fills cimport Config, Event, Signal
from tradebus.engine.ledger cimport Stats

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

# One run's statistics, or why its signals were refused (error_code SIG_*, error_row).
cdef struct Outcome:
    Stats stats
    int error_code
    int64_t error_row


cdef class Engine:
    cdef Config cfg
    cdef dict _instruments
    cdef double _slippage_bps


cdef int run_bars(const Bars* bars, const Signal* signals, int64_t nsignals, const Config* cfg,
                  Event* scratch, Outcome* out, double* equity, Fill* fills) noexcept nogil
cdef list outcome_dicts(const Outcome* results, int64_t count, str what)
