"""The clock a strategy reads: event time in a backtest, the real clock live (ns since the
epoch, UTC). Part of the strategy API (re-exported by :mod:`tradebus.engine.event`)."""
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

__all__ = ["Clock"]


cdef class Clock:
    """The time a strategy sees: the event time in a backtest, the real clock live (ns, UTC)."""

    def __init__(self, bint live=False, int64_t now=0):
        self.live = live
        self.now = now

    cdef int64_t read(self) noexcept:
        cdef timespec ts
        if self.live:
            clock_gettime(CLOCK_REALTIME, &ts)
            return <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        return self.now

    def now_ns(self):
        """Nanoseconds since the Unix epoch."""
        return self.read()

    def set(self, int64_t now):
        """Set the event time (backtests and replays)."""
        self.now = now
