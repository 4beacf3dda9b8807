"""Fill search of the batch engine: signal arrays in, the bar and price each order fills at out.

A signal is stamped at the last bar that starts at or before it (``bar_of``: arithmetic on
evenly spaced bars, a galloping search otherwise). A market order's fill bar follows from the
fill rule; a resting limit or stop order finds the first bar that trades through its price by
descending the block summaries of bars.pyx (``first_low_below`` / ``first_high_above``). The
fills are then sorted into execution order (``plan_fills``). The rules are in the docstring of
:mod:`tradebus.engine`.
"""
from libc.math cimport INFINITY, nextafter
from libc.stdint cimport INT64_MAX, int16_t, int32_t, int64_t

cimport numpy as cnp

from tradebus.engine.bars cimport BLOCK, SUPER, Bars, bad_price, tb_divide

import numpy as np

from tradebus.engine.bars import normalize_timestamps

cnp.import_array()

__all__ = ["SIGNAL_DTYPE", "SIGNAL_ERRORS", "make_signals"]

cdef extern from "<stdlib.h>" nogil:
    void c_qsort "qsort"(void* base, size_t count, size_t size,
                         int (*compare)(const void*, const void*) noexcept nogil)

SIGNAL_DTYPE = np.dtype({
    "names": ["timestamp_ns", "quantity", "price", "side", "type"],
    "formats": ["<i8", "<f8", "<f8", "u1", "u1"],
    "offsets": [0, 8, 16, 24, 25],
    "itemsize": 26,
})

if SIGNAL_DTYPE.itemsize != sizeof(Signal):
    raise ImportError("SIGNAL_DTYPE does not match the compiled Signal struct")

SIGNAL_ERRORS = {
    SIG_UNSORTED: "timestamp is earlier than the row before; signals must be sorted (make_signals sorts them)",
    SIG_QUANTITY: "quantity must be finite and > 0",
    SIG_SIDE: "side must be 0 (buy) or 1 (sell)",
    SIG_TYPE: "type must be 0 (market), 1 (limit) or 2 (stop)",
    SIG_PRICE: "a limit or stop order needs a finite price > 0",
    SIG_NO_MEMORY: "out of memory",
}


# ---------------------------------------------------------------------------------------------
# Finding bars: the bar a signal is stamped at, and the bar a resting order fills at.

cdef inline int64_t bar_of(const Bars* bars, int64_t t, int64_t* hint) noexcept nogil:
    """Last bar starting at or before t; -1 before the data, n after the last bar's interval."""
    cdef int64_t n = bars.n, lo, hi, mid, step
    if t < bars.ts[0]:
        return -1
    if t >= bars.end_ts:
        return n
    if t >= bars.ts[n - 1]:
        return n - 1
    if bars.uniform:
        # A floating estimate of (t - ts[0]) // interval, corrected: cheaper than an integer divide.
        return (t - bars.ts[0]) // bars.interval
    # Signals are sorted: gallop forward from the previous answer, then bisect.
    lo = hint[0]
    if lo < 0 or lo >= n or bars.ts[lo] > t:
        lo = 0
    step = 1
    hi = lo + 1
    while hi < n and bars.ts[hi] <= t:
        lo = hi
        step <<= 1
        hi = lo + step
    if hi > n:
        hi = n
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if bars.ts[mid] <= t:
            lo = mid
        else:
            hi = mid
    hint[0] = lo
    return lo


cdef int64_t first_low_below(const Bars* bars, int64_t j, double x) noexcept nogil:
    """First bar >= j whose low is < x, or n."""
    cdef int64_t n = bars.n, end, blk, last, sup
    end = (j // BLOCK + 1) * BLOCK
    if end > n:
        end = n
    while j < end:
        if bars.low[j] < x:
            return j
        j += 1
    if j >= n:
        return n
    blk = j // BLOCK
    last = (blk // SUPER + 1) * SUPER
    if last > bars.nblocks:
        last = bars.nblocks
    while blk < last and not (bars.blocks[blk].lmin < x):
        blk += 1
    if blk >= bars.nblocks:
        return n
    if blk == last:
        sup = blk // SUPER
        while sup < bars.nsupers and not (bars.supers[sup].lmin < x):
            sup += 1
        if sup >= bars.nsupers:
            return n
        blk = sup * SUPER
        while not (bars.blocks[blk].lmin < x):
            blk += 1
    j = blk * BLOCK
    while not (bars.low[j] < x):
        j += 1
    return j


cdef int64_t first_high_above(const Bars* bars, int64_t j, double x) noexcept nogil:
    """First bar >= j whose high is > x, or n."""
    cdef int64_t n = bars.n, end, blk, last, sup
    end = (j // BLOCK + 1) * BLOCK
    if end > n:
        end = n
    while j < end:
        if bars.high[j] > x:
            return j
        j += 1
    if j >= n:
        return n
    blk = j // BLOCK
    last = (blk // SUPER + 1) * SUPER
    if last > bars.nblocks:
        last = bars.nblocks
    while blk < last and not (bars.blocks[blk].hmax > x):
        blk += 1
    if blk >= bars.nblocks:
        return n
    if blk == last:
        sup = blk // SUPER
        while sup < bars.nsupers and not (bars.supers[sup].hmax > x):
            sup += 1
        if sup >= bars.nsupers:
            return n
        blk = sup * SUPER
        while not (bars.blocks[blk].hmax > x):
            blk += 1
    j = blk * BLOCK
    while not (bars.high[j] > x):
        j += 1
    return j


cdef int compare_events(const void* x, const void* y) noexcept nogil:
    cdef const Event* a = <const Event*>x
    cdef const Event* b = <const Event*>y
    if a.bar != b.bar:
        return -1 if a.bar < b.bar else 1
    if a.phase != b.phase:
        return -1 if a.phase < b.phase else 1
    return -1 if a.signal < b.signal else (1 if a.signal > b.signal else 0)


cdef int64_t plan_fills(const Bars* bars, const Signal* signals, int64_t nsignals,
                        const Config* cfg, Event* events, int64_t* unfilled,
                        int* error_code, int64_t* error_row) noexcept nogil:
    """Check the signals and turn each into a fill event (bar, phase, pricing); return how many.

    Events come out sorted by (bar, phase, signal). Market orders touch no bar data here (their
    bar follows from the timestamp), so the run loop reads each bar once, in order."""
    cdef int64_t n = bars.n, i, k, f, nev = 0, hint = 0, prev_ts = -INT64_MAX - 1
    cdef int64_t last_bar = -1
    cdef int16_t phase, kind, last_phase = -1
    cdef bint in_order = True, buy
    cdef double q, px
    cdef const Signal* s
    unfilled[0] = 0
    for i in range(nsignals):
        s = &signals[i]
        if s.timestamp_ns < prev_ts:
            error_code[0] = SIG_UNSORTED
            error_row[0] = i
            return -1
        prev_ts = s.timestamp_ns
        q = s.quantity
        if not (q > 0.0 and q < INFINITY):
            error_code[0] = SIG_QUANTITY
            error_row[0] = i
            return -1
        if s.side > 1:
            error_code[0] = SIG_SIDE
            error_row[0] = i
            return -1
        if s.type > 2:
            error_code[0] = SIG_TYPE
            error_row[0] = i
            return -1
        if s.type != ORDER_MARKET and bad_price(s.price):
            error_code[0] = SIG_PRICE
            error_row[0] = i
            return -1
        buy = s.side == SIDE_BUY
        k = bar_of(bars, s.timestamp_ns, &hint)
        px = s.price
        if s.type == ORDER_MARKET:
            if cfg.fill_mode == FILL_CLOSE:
                f = k if k >= 0 else 0
                phase = 2
                kind = FILL_AT_CLOSE
            else:
                f = k + 1
                phase = 0
                kind = FILL_AT_OPEN
        elif k + 1 >= n:
            f = n
        else:
            phase = 1
            if s.type == ORDER_LIMIT:
                kind = FILL_AT_LIMIT
                f = first_low_below(bars, k + 1, px) if buy else first_high_above(bars, k + 1, px)
            else:
                # A stop triggers when the range reaches it: high >= trigger (buy), low <= trigger.
                kind = FILL_AT_STOP
                if buy:
                    f = first_high_above(bars, k + 1, nextafter(px, -INFINITY))
                else:
                    f = first_low_below(bars, k + 1, nextafter(px, INFINITY))
        if f >= n:
            unfilled[0] += 1
            continue
        events[nev].bar = f
        events[nev].phase = phase
        events[nev].kind = kind
        events[nev].signal = <int32_t>i
        events[nev].price = px
        events[nev].quantity = q if buy else -q
        if f < last_bar or (f == last_bar and phase < last_phase):
            in_order = False
        last_bar = f
        last_phase = phase
        nev += 1
    if not in_order:
        c_qsort(events, <size_t>nev, sizeof(Event), compare_events)
    return nev


# ---------------------------------------------------------------------------------------------
# Python side: signal arrays.

def make_signals(timestamps, sides, quantities, prices=None, types=None):
    """Pack signal columns into a SIGNAL_DTYPE array, checked and sorted by time.

    timestamps: int (ms, us or ns, told apart by magnitude) or datetime64; sides: 0 buy, 1 sell;
    quantities: > 0; prices: the limit price or stop trigger (ignored for market orders);
    types: 0 market (default), 1 limit, 2 stop. Rows are stably sorted by timestamp. A bad row
    raises ValueError naming it (its position in the arrays given).

    >>> sig = make_signals([1_700_000_000_000, 1_700_000_060_000], [0, 1], [0.5, 0.5])
    >>> sig["timestamp_ns"].tolist(), sig["side"].tolist()
    ([1700000000000000000, 1700000060000000000], [0, 1])
    """
    ts = normalize_timestamps(timestamps)
    n = ts.shape[0]
    side = np.asarray(sides)
    qty = np.asarray(quantities, dtype=np.float64)
    kind = np.zeros(n, dtype=np.int64) if types is None else np.asarray(types)
    price = np.full(n, np.nan) if prices is None else np.asarray(prices, dtype=np.float64)
    for name, arr in (("sides", side), ("quantities", qty), ("prices", price), ("types", kind)):
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"{name} has shape {arr.shape}; expected {n} values like the timestamps")
    bad = ~np.isin(side, (0, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"signal row {row}: side {side[row].item()!r} must be 0 (buy) or 1 (sell)")
    bad = ~(np.isfinite(qty) & (qty > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"signal row {row}: quantity {qty[row].item()!r} must be finite and > 0")
    bad = ~np.isin(kind, (0, 1, 2))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"signal row {row}: type {kind[row].item()!r} must be 0 (market), 1 (limit) or 2 (stop)")
    bad = (kind != 0) & ~(np.isfinite(price) & (price > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"signal row {row}: a limit or stop order needs a finite price > 0, got {price[row].item()!r}")
    out = np.empty(n, dtype=SIGNAL_DTYPE)
    order = None
    if n > 1 and (ts[1:] < ts[:n - 1]).any():
        order = np.argsort(ts, kind="stable")
    for name, arr in (("timestamp_ns", ts), ("side", side), ("quantity", qty), ("price", price),
                      ("type", kind)):
        out[name] = arr if order is None else arr[order]
    return out


cdef bint plain_signals(object arr):
    """A one-dimensional contiguous SIGNAL_DTYPE ndarray (make_signals' output): usable as is."""
    return (type(arr) is np.ndarray and (<cnp.ndarray>arr).descr is <cnp.dtype>SIGNAL_DTYPE
            and cnp.PyArray_NDIM(<cnp.ndarray>arr) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr))


cpdef object as_signals(object signals, str where):
    """``signals`` as a contiguous SIGNAL_DTYPE array, or TypeError/ValueError naming ``where``."""
    arr = signals
    if plain_signals(arr):
        return arr          # the common case, checked cheaply
    if not isinstance(arr, np.ndarray) or arr.dtype != SIGNAL_DTYPE:
        arr = np.asarray(arr)
        if arr.dtype.names is None or set(arr.dtype.names) != set(SIGNAL_DTYPE.names):
            raise TypeError(f"{where}: signals must be a SIGNAL_DTYPE array (use make_signals), "
                            f"got {type(signals).__name__} of dtype {arr.dtype}")
        arr = arr.astype(SIGNAL_DTYPE)
    if arr.ndim != 1:
        raise ValueError(f"{where}: signals must be one-dimensional")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr
