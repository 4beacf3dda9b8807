# The strategy API's L2 order book (order_book.pyx), for the simulated venue and the strategy
# context that read it from C.
from libc.stdint cimport int64_t


cdef class OrderBook:
    # Bids ascending and asks descending, so the best level of each side is the last one and
    # the churn near the top of the book moves few bytes.
    cdef double* _bid_px
    cdef double* _bid_qty
    cdef double* _ask_px
    cdef double* _ask_qty
    cdef Py_ssize_t _nbid, _nask, _cap_bid, _cap_ask
    cdef readonly int64_t ts_ns
    cdef readonly object symbol
    cdef int _grow(self, bint bid) except -1
    cdef int set_level(self, bint bid, double price, double qty) except -1
    cdef void clear(self) noexcept
    cdef double bid(self) noexcept          # best bid price, NaN when empty
    cdef double ask(self) noexcept          # best ask price, NaN when empty
    cdef Py_ssize_t depth(self, bint bid) noexcept
    cdef double level_price(self, bint bid, Py_ssize_t i) noexcept   # i = 0 is the best
    cdef double level_qty(self, bint bid, Py_ssize_t i) noexcept
    cdef double qty_at(self, bint bid, double price) noexcept         # 0 when no such level
