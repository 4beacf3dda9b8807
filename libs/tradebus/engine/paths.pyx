"""Permutation paths (tradebus.engine.permutation): the real bars' moves in a shuffled order.

A path keeps bar 0 and the timestamps; bar i >= 1 takes the move of real bar k + 1 for
k = order[i - 1]: its close is the previous close times close[k + 1] / close[k], and its open,
high and low keep their ratio to the close (its volume stays), so a shuffled bar moves with its
return. ``order`` is path ``index`` of ``seed``: an unbiased Fisher-Yates shuffle drawn from
its own xoshiro256** stream keyed by (seed, index) (include/shuffle.h), so any path can be made
alone, on any thread, and the Python paths equal the fused pipeline's (fused.pyx).
"""
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from tradebus.engine.bars cimport Instrument

import numpy as np

from tradebus.engine.bars import BAR_DTYPE

cnp.import_array()

__all__ = ["PathSource", "check_seed"]

cdef extern from "kernels.h" nogil:
    void tb_prefetch(const void* p) noexcept

SEED_LIMIT = 1 << 64


def check_seed(seed):
    """``seed`` as an int in [0, 2**64), or ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


cdef void make_path(const PathView* src, const uint32_t* order, double* o, double* h, double* l,
                    double* c, double* v) noexcept nogil:
    """Write the path of ``order`` (n - 1 indices) into the columns; ``v`` may be NULL, and
    ``h`` and ``l`` too (together) when nothing will read the highs and lows."""
    cdef int64_t n = src.n, i
    cdef const Move* m
    cdef double x = src.first[3]
    o[0] = src.first[0]
    c[0] = x
    if h != NULL:
        h[0] = src.first[1]
        l[0] = src.first[2]
    if v != NULL:
        v[0] = src.first[4]
    for i in range(1, n):
        if i + 48 < n:                  # the shuffled moves are random reads: ask early
            tb_prefetch(&src.moves[order[i + 47]])
        m = &src.moves[order[i - 1]]
        x = x * m.ratio
        c[i] = x
        o[i] = x * m.open
        if h != NULL:
            h[i] = x * m.high
            l[i] = x * m.low
        if v != NULL:
            v[i] = m.volume


cdef void make_closes(const PathView* src, const uint32_t* order, double* c) noexcept nogil:
    """Only the closes of the path of ``order`` (equal to make_path's): the opens of the bars
    that need one are ``c[i] * src.moves[order[i - 1]].open``."""
    cdef int64_t n = src.n, i
    cdef double x = src.first[3]
    c[0] = x
    for i in range(1, n):
        x = x * src.ratios[order[i - 1]]
        c[i] = x


cdef class PathSource:
    """The moves of one loaded instrument, from which its permuted paths are made."""

    def __cinit__(self, Instrument instrument):
        self.instrument = instrument
        self.view.n = len(instrument)
        close, opens, highs, lows = instrument.close, instrument.open, instrument.high, instrument.low
        cdef int64_t n = self.view.n
        moves = np.empty((max(n - 1, 1), 5))
        moves[:n - 1, 0] = close[1:] / close[:n - 1]
        moves[:n - 1, 1] = opens[1:] / close[1:]
        moves[:n - 1, 2] = highs[1:] / close[1:]
        moves[:n - 1, 3] = lows[1:] / close[1:]
        moves[:n - 1, 4] = instrument.volume[1:]
        ratios = np.ascontiguousarray(moves[:, 0])
        self._moves = (moves, ratios)
        self.view.moves = <const Move*>cnp.PyArray_DATA(<cnp.ndarray>moves)
        self.view.ratios = <const double*>cnp.PyArray_DATA(<cnp.ndarray>ratios)
        for k, column in enumerate((opens, highs, lows, close, instrument.volume)):
            self.view.first[k] = column[0]

    def path(self, seed, index):
        """Path ``index`` of ``seed`` as a BAR_DTYPE array."""
        cdef uint64_t s = check_seed(seed), stream = check_seed(index)
        cdef int64_t n = self.view.n
        columns = np.empty((5, n))
        cdef double[:, ::1] cv = columns
        cdef uint32_t* order = <uint32_t*>malloc(max(n - 1, 1) * sizeof(uint32_t))
        if order == NULL:
            raise MemoryError()
        try:
            with nogil:
                tb_permutation(order, n - 1, s, stream)
                make_path(&self.view, order, &cv[0, 0], &cv[1, 0], &cv[2, 0], &cv[3, 0], &cv[4, 0])
        finally:
            free(order)
        out = np.empty(n, dtype=BAR_DTYPE)
        out["timestamp_ns"] = self.instrument.timestamps
        for k, name in enumerate(("open", "high", "low", "close", "volume")):
            out[name] = columns[k]
        return out
