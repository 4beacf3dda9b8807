# Venue models of the simulators (models.pyx): fees, latency and queue position. The event
# backtester (event_sim.pyx) cimports them; the sim venue (services/sim_exchange) uses the same
# queue model through QueuePosition.
from libc.stdint cimport int32_t, int64_t, uint64_t


cdef struct QueuePos:
    double ahead          # quantity ahead of the order at its price level
    double traded         # traded at that price since the level last changed (ProbQueue)


cdef class FeeModel:
    cdef readonly double maker_rate
    cdef readonly double taker_rate
    cdef readonly dict overrides          # symbol name -> (maker, taker)
    cdef double* _maker                   # per symbol index, after for_symbols()
    cdef double* _taker
    cdef Py_ssize_t _n
    cdef double rate_at(self, int32_t sym, bint maker) noexcept
    cdef double fill_fee(self, int32_t sym, double qty, double price, bint maker) noexcept


cdef class LatencyModel:
    cdef int64_t entry(self, int64_t now) noexcept       # strategy -> venue
    cdef int64_t response(self, int64_t now) noexcept    # venue -> strategy
    cdef bint has_response(self) noexcept                # may response() return > 0?


cdef class ConstantLatency(LatencyModel):
    cdef readonly int64_t entry_ns
    cdef readonly int64_t response_ns


cdef class RecordedLatency(LatencyModel):
    cdef readonly object entry_samples       # int64 arrays, kept for copies
    cdef readonly object response_samples
    cdef readonly uint64_t seed
    cdef const int64_t[::1] _entry
    cdef const int64_t[::1] _response
    cdef uint64_t _state
    cdef uint64_t _next(self) noexcept


cdef class QueueModel:
    cdef readonly bint tracks_depth          # depth() matters: callers may skip it when False
    cdef void join(self, QueuePos* q, double level_qty) noexcept
    cdef double trade(self, QueuePos* q, double qty) noexcept
    cdef void depth(self, QueuePos* q, double prev_qty, double new_qty) noexcept
    cdef void consumed(self, QueuePos* q, double qty) noexcept


cdef class NoQueue(QueueModel):
    cdef readonly bint touch


cdef class RiskAverseQueue(QueueModel):
    pass


cdef class ProbQueue(RiskAverseQueue):
    cdef readonly double power
    cdef double prob(self, double front, double back) noexcept


cdef class QueuePosition:
    cdef readonly QueueModel model
    cdef QueuePos pos
