# Bar storage (bars.pyx), cimported by fills.pyx and batch.pyx.
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint64_t


cdef extern from "kernels.h" nogil:
    int64_t tb_divide(uint64_t x, uint64_t magic, int shift) noexcept
    bint tb_has_int128() noexcept
    void tb_extremes(const double* c, int64_t a, int64_t b, double* out) noexcept
    void tb_high_low(const double* h, const double* l, int64_t a, int64_t b, double* out) noexcept
    void tb_moves_pair(const double* c, int64_t a0, int64_t a1, int64_t length, double* out) noexcept
    bint tb_copy_bars(const double* o, const double* h, const double* l, const double* c,
                      const double* v, double* oo, double* hh, double* ll, double* cc, double* vv,
                      int64_t a, int64_t e) noexcept
    bint tb_timestamps(const int64_t* ts_in, int64_t n, int64_t scale, int64_t lim, int64_t* out,
                       int64_t* min_gap, int64_t* max_gap) noexcept

cdef enum:
    BLOCK = 64          # bars summarised by one BlockStats
    SUPER = 64          # blocks summarised by one superblock BlockStats

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


cdef class Instrument:
    cdef Bars view
    cdef object _buffer
    cdef readonly object symbol
    cdef readonly object timestamps, open, high, low, close, volume


cpdef Instrument load_columns(object symbol, object timestamps, object opens, object highs,
                              object lows, object closes, object volumes)
cdef void range_extremes(const Bars* bars, int64_t a, int64_t b, BlockStats* out) noexcept nogil
cdef void range_moves(const Bars* bars, int64_t a, int64_t b, BlockStats* out) noexcept nogil
cdef void summarise_columns(Bars* bars, BlockStats* blocks, BlockStats* supers,
                            bint ranges) noexcept nogil


cdef inline bint bad_price(double x) noexcept nogil:
    """Not a usable price: NaN, infinite or <= 0."""
    return not (x > 0.0 and x < INFINITY)
