# The strategy API's clock (clock.pyx).
from libc.stdint cimport int64_t


cdef class Clock:
    cdef int64_t now            # event time (backtest); ignored when live
    cdef readonly bint live     # True: now_ns() reads the real clock
    cdef int64_t read(self) noexcept
