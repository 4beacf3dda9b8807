"""The L2 order book a strategy sees for one symbol (re-exported by :mod:`tradebus.engine.event`)."""
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int64_t
from libc.string cimport memmove

__all__ = ["OrderBook"]


cdef inline Py_ssize_t _find(const double* px, Py_ssize_t n, double price, bint ascending,
                             bint* found) noexcept:
    """Index of ``price`` in a sorted array, or where it would be inserted."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    cdef double x
    while lo < hi:
        mid = (lo + hi) >> 1
        x = px[mid]
        if x == price:
            found[0] = True
            return mid
        if (x < price) == ascending:
            lo = mid + 1
        else:
            hi = mid
    found[0] = False
    return lo


cdef class OrderBook:
    """Price levels of one symbol (L2): ``best_bid``, ``best_ask``, ``mid``, ``spread`` and the
    levels, best first (``bids(10)``). A quantity of 0 removes a level.

    >>> book = OrderBook()
    >>> book.set_snapshot([(100.0, 1.0), (99.5, 2.0)], [(100.5, 3.0)])
    >>> book.best_bid, book.best_ask, book.mid, book.spread
    (100.0, 100.5, 100.25, 0.5)
    >>> book.update("bid", 100.0, 0.0); book.bids()
    [(99.5, 2.0)]
    """

    def __cinit__(self, symbol=None):
        self.symbol = symbol
        self._cap_bid = self._cap_ask = 64
        self._bid_px = <double*>PyMem_Malloc(64 * sizeof(double))
        self._bid_qty = <double*>PyMem_Malloc(64 * sizeof(double))
        self._ask_px = <double*>PyMem_Malloc(64 * sizeof(double))
        self._ask_qty = <double*>PyMem_Malloc(64 * sizeof(double))
        if not (self._bid_px and self._bid_qty and self._ask_px and self._ask_qty):
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._bid_px)
        PyMem_Free(self._bid_qty)
        PyMem_Free(self._ask_px)
        PyMem_Free(self._ask_qty)

    cdef int _grow(self, bint bid) except -1:
        cdef Py_ssize_t cap = (self._cap_bid if bid else self._cap_ask) * 2
        cdef double* px
        cdef double* qty
        if bid:
            px = <double*>PyMem_Realloc(self._bid_px, cap * sizeof(double))
            if px == NULL:
                raise MemoryError()
            self._bid_px = px
            qty = <double*>PyMem_Realloc(self._bid_qty, cap * sizeof(double))
            if qty == NULL:
                raise MemoryError()
            self._bid_qty = qty
            self._cap_bid = cap
        else:
            px = <double*>PyMem_Realloc(self._ask_px, cap * sizeof(double))
            if px == NULL:
                raise MemoryError()
            self._ask_px = px
            qty = <double*>PyMem_Realloc(self._ask_qty, cap * sizeof(double))
            if qty == NULL:
                raise MemoryError()
            self._ask_qty = qty
            self._cap_ask = cap
        return 0

    cdef int set_level(self, bint bid, double price, double qty) except -1:
        cdef bint found
        cdef double* px = self._bid_px if bid else self._ask_px
        cdef double* qs = self._bid_qty if bid else self._ask_qty
        cdef Py_ssize_t n = self._nbid if bid else self._nask
        cdef Py_ssize_t i = _find(px, n, price, bid, &found)
        if found:
            if qty > 0.0:
                qs[i] = qty
                return 0
            memmove(&px[i], &px[i + 1], (n - i - 1) * sizeof(double))
            memmove(&qs[i], &qs[i + 1], (n - i - 1) * sizeof(double))
            if bid:
                self._nbid -= 1
            else:
                self._nask -= 1
            return 0
        if qty <= 0.0:
            return 0
        if n == (self._cap_bid if bid else self._cap_ask):
            self._grow(bid)
            px = self._bid_px if bid else self._ask_px
            qs = self._bid_qty if bid else self._ask_qty
        memmove(&px[i + 1], &px[i], (n - i) * sizeof(double))
        memmove(&qs[i + 1], &qs[i], (n - i) * sizeof(double))
        px[i] = price
        qs[i] = qty
        if bid:
            self._nbid += 1
        else:
            self._nask += 1
        return 0

    cdef void clear(self) noexcept:
        self._nbid = 0
        self._nask = 0

    cdef double bid(self) noexcept:
        return self._bid_px[self._nbid - 1] if self._nbid else NAN

    cdef double ask(self) noexcept:
        return self._ask_px[self._nask - 1] if self._nask else NAN

    cdef Py_ssize_t depth(self, bint bid) noexcept:
        return self._nbid if bid else self._nask

    cdef double level_price(self, bint bid, Py_ssize_t i) noexcept:
        if bid:
            return self._bid_px[self._nbid - 1 - i]
        return self._ask_px[self._nask - 1 - i]

    cdef double level_qty(self, bint bid, Py_ssize_t i) noexcept:
        if bid:
            return self._bid_qty[self._nbid - 1 - i]
        return self._ask_qty[self._nask - 1 - i]

    cdef double qty_at(self, bint bid, double price) noexcept:
        cdef bint found
        cdef Py_ssize_t i
        if bid:
            i = _find(self._bid_px, self._nbid, price, True, &found)
            return self._bid_qty[i] if found else 0.0
        i = _find(self._ask_px, self._nask, price, False, &found)
        return self._ask_qty[i] if found else 0.0

    # -- Python API --------------------------------------------------------------------------

    @property
    def best_bid(self):
        """Best bid price, None when the bid side is empty."""
        return self._bid_px[self._nbid - 1] if self._nbid else None

    @property
    def best_ask(self):
        """Best ask price, None when the ask side is empty."""
        return self._ask_px[self._nask - 1] if self._nask else None

    @property
    def best_bid_qty(self):
        return self._bid_qty[self._nbid - 1] if self._nbid else None

    @property
    def best_ask_qty(self):
        return self._ask_qty[self._nask - 1] if self._nask else None

    @property
    def mid(self):
        """(best bid + best ask) / 2, None unless both sides have a level."""
        if self._nbid and self._nask:
            return (self._bid_px[self._nbid - 1] + self._ask_px[self._nask - 1]) * 0.5
        return None

    @property
    def spread(self):
        """best ask - best bid, None unless both sides have a level."""
        if self._nbid and self._nask:
            return self._ask_px[self._nask - 1] - self._bid_px[self._nbid - 1]
        return None

    @property
    def bid_depth(self):
        return self._nbid

    @property
    def ask_depth(self):
        return self._nask

    def bids(self, depth=10):
        """The best ``depth`` bid levels as (price, qty), best first (None: all)."""
        cdef Py_ssize_t n = self._nbid if depth is None else min(<Py_ssize_t>depth, self._nbid)
        return [(self.level_price(True, i), self.level_qty(True, i)) for i in range(n)]

    def asks(self, depth=10):
        """The best ``depth`` ask levels as (price, qty), best first (None: all)."""
        cdef Py_ssize_t n = self._nask if depth is None else min(<Py_ssize_t>depth, self._nask)
        return [(self.level_price(False, i), self.level_qty(False, i)) for i in range(n)]

    def update(self, side, double price, double qty):
        """Set one level: side "bid"/"buy" or "ask"/"sell"; qty 0 removes the level."""
        if not (price > 0.0 and price < INFINITY) or not (qty >= 0.0 and qty < INFINITY):
            raise ValueError(f"book level needs a finite price > 0 and qty >= 0, got {price!r}, {qty!r}")
        self.set_level(_book_side(side), price, qty)

    def apply(self, bids=(), asks=(), ts_ns=None):
        """Apply level changes: iterables of (price, qty); qty 0 removes the level."""
        for price, qty in bids:
            self.update(True, price, qty)
        for price, qty in asks:
            self.update(False, price, qty)
        if ts_ns is not None:
            self.ts_ns = ts_ns

    def set_snapshot(self, bids, asks, ts_ns=None):
        """Replace the book with these levels (iterables of (price, qty), any order)."""
        self.clear()
        self.apply(bids, asks, ts_ns)

    def reset(self):
        """Remove every level."""
        self.clear()

    def __repr__(self):
        return (f"OrderBook({self.symbol!r}, bid={self.best_bid}, ask={self.best_ask}, "
                f"levels={self._nbid}/{self._nask})")


cdef bint _book_side(side) except -1:
    if side is True or side is False:
        return side
    if side in ("bid", "bids", "buy", "b"):
        return True
    if side in ("ask", "asks", "sell", "a"):
        return False
    raise ValueError(f"book side must be 'bid' or 'ask', got {side!r}")
