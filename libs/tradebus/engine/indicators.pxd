# Streaming indicators with a C-level push for other compiled modules: push(...) stores the
# value(s) in out and returns True once warm. The Python API is update(...), None until warm.
from libc.stdint cimport int64_t

# Indicators of one value in, one value out, so one vectorised loop serves them all.
cdef class SingleInput:
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class SMA(SingleInput):
    cdef readonly int period
    cdef double* _ring
    cdef int _at
    cdef int64_t _count
    cdef double _sum, _comp
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class EMA(SingleInput):
    cdef readonly int period
    cdef readonly double alpha
    cdef int64_t _count
    cdef double _value
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class RSI(SingleInput):
    cdef readonly int period
    cdef int64_t _count
    cdef double _prev, _gain, _loss
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class ATR:
    cdef readonly int period
    cdef int64_t _count
    cdef double _prev_close, _value
    cdef bint push(self, double high, double low, double close, double* out) noexcept nogil

cdef class RollingStd:
    cdef readonly int period
    cdef readonly int ddof
    cdef double* _ring
    cdef int _at
    cdef int64_t _count
    cdef double _center, _s1, _s2
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class Bollinger:
    cdef readonly double k
    cdef RollingStd _std
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class MACD:
    cdef EMA _fast, _slow, _signal
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class VWAP:
    cdef readonly int period            # 0: cumulative since the first update
    cdef double* _prices
    cdef double* _volumes
    cdef int _at
    cdef int64_t _count
    cdef double _pv, _pv_comp, _v, _v_comp
    cdef bint push(self, double price, double volume, double* out) noexcept nogil
