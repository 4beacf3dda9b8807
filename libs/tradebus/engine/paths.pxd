# Permuted paths (paths.pyx), cimported by fused.pyx.
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from "shuffle.h" nogil:
    void tb_permutation(uint32_t* order, int64_t n, uint64_t seed, uint64_t stream) noexcept

# How real bar k + 1 moves from bar k: its close over bar k's close, its open, high and low over
# its own close, and its volume. A path is bar 0 followed by these moves in a shuffled order.
cdef struct Move:
    double ratio
    double open
    double high
    double low
    double volume

# What a path is made from; read-only, shared by all threads.
cdef struct PathView:
    const Move* moves               # n - 1 moves
    const double* ratios            # their close ratios alone (a small table for close-only paths)
    double first[5]                 # bar 0: open, high, low, close, volume
    int64_t n

cdef class PathSource:
    cdef readonly object instrument
    cdef object _moves
    cdef PathView view


cdef void make_closes(const PathView* src, const uint32_t* order, double* c) noexcept nogil
cdef void make_path(const PathView* src, const uint32_t* order, double* o, double* h, double* l,
                    double* c, double* v) noexcept nogil
