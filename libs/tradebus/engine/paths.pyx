"""Permutation paths (tradebus.engine.permutation): one pass writing a BAR_DTYPE path."""
from libc.stdint cimport int64_t

cimport numpy as cnp

import numpy as np

from tradebus.engine.bars import BAR_DTYPE

cnp.import_array()

cdef extern from "kernels.h" nogil:
    void tb_prefetch(const void* p) noexcept


cdef packed struct BarRow:
    int64_t timestamp_ns
    double open
    double high
    double low
    double close
    double volume


def permuted_path(const int64_t[::1] ts, const double[::1] first, const double[::1] closes,
                  const int64_t[::1] order, const double[:, ::1] shape):
    """BAR_DTYPE path: bar 0 is ``first`` (open, high, low, close, volume); bar i >= 1 has the
    close closes[i - 1], open, high and low closes[i - 1] x shape[order[i - 1], 0..2] and the
    volume shape[order[i - 1], 3]. ``shape`` rows are bars 1..n-1's (open, high, low) / close
    and volume, side by side so each shuffled row is one cache line; timestamps are ``ts``."""
    cdef Py_ssize_t n = ts.shape[0], i, k
    if (closes.shape[0] != n - 1 or order.shape[0] != n - 1 or shape.shape[0] != n - 1
            or shape.shape[1] != 4 or first.shape[0] != 5):
        raise ValueError("permuted_path: inconsistent lengths")
    for i in range(n - 1):
        if order[i] < 0 or order[i] >= n - 1:
            raise ValueError("permuted_path: order out of range")
    out = np.empty(n, dtype=BAR_DTYPE)
    cdef BarRow* row = <BarRow*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef double x
    cdef const double* r
    with nogil:
        row[0].timestamp_ns = ts[0]
        row[0].open = first[0]
        row[0].high = first[1]
        row[0].low = first[2]
        row[0].close = first[3]
        row[0].volume = first[4]
        for i in range(1, n):
            k = order[i - 1]
            if i + 15 < n - 1:              # the shuffled rows are random reads: ask early
                tb_prefetch(&shape[order[i + 15], 0])
            x = closes[i - 1]
            r = &shape[k, 0]
            row[i].timestamp_ns = ts[i]
            row[i].open = x * r[0]
            row[i].high = x * r[1]
            row[i].low = x * r[2]
            row[i].close = x
            row[i].volume = r[3]
    return out
