"""Batch backtest engine: bars loaded once, signal arrays in, statistics (and fills) out.

The rules and every statistic's formula are in the docstring of :mod:`tradebus.engine`, which
re-exports this module's public names.

How a run stays cheap. Between two fills the position is constant, so a run works stretch by
stretch, not bar by bar: a flat stretch costs nothing; a held one needs only the highest and
lowest close in it and the squared close-to-close moves split by sign (PnL is position x the
change in close). Loading checks and copies the bars and summarises every block of 64 bars (and
superblock of 64 blocks) that way, plus the largest fall and rise of the close and the highest
high and lowest low. A held stretch is read from those summaries plus at most two partial
blocks, which a vectorised kernel scans; limit and stop orders find their fill bar by descending
the same summaries. Drawdowns: the worst fall inside a stretch is looked for only when the
stretch's range could beat the worst so far, and the percentage drawdown, which does not
decompose, by branch and bound (a stretch that makes no new high is exact from its lowest bar;
otherwise blocks whose bound cannot beat the worst so far are stepped over). A run typically
costs O(signals + fills x 64 + bars / 4096): held bars inside partial blocks are read, bars in
whole blocks and flat stretches are not.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, nextafter
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cimport numpy as cnp
cimport openmp

from tradebus.engine.ledger cimport (
    TB_NEAR, Account, Curve, Holding, ledger_fill, ledger_mark, ledger_open, ledger_stats,
    stats_dict,
)

import numpy as np

from tradebus.engine.ledger import STAT_KEYS

cnp.import_array()

cdef extern from "kernels.h" nogil:
    int64_t tb_divide(uint64_t x, uint64_t magic, int shift) noexcept nogil
    bint tb_has_int128() noexcept nogil
    void tb_extremes(const double* c, int64_t a, int64_t b, double* out) noexcept nogil
    void tb_high_low(const double* h, const double* l, int64_t a, int64_t b, double* out) noexcept nogil
    void tb_moves_pair(const double* c, int64_t a0, int64_t a1, int64_t length, double* out) noexcept nogil
    bint tb_copy_bars(const double* o, const double* h, const double* l, const double* c,
                      const double* v, double* oo, double* hh, double* ll, double* cc, double* vv,
                      int64_t a, int64_t e) noexcept nogil
    bint tb_timestamps(const int64_t* ts_in, int64_t n, int64_t scale, int64_t lim, int64_t* out,
                       int64_t* min_gap, int64_t* max_gap) noexcept nogil


cdef extern from "<stdlib.h>" nogil:
    void c_qsort "qsort"(void* base, size_t count, size_t size,
                         int (*compare)(const void*, const void*) noexcept nogil)

__all__ = [
    "BAR_DTYPE", "PyBar", "SIGNAL_DTYPE", "FILL_DTYPE", "STAT_KEYS", "DEFAULT_FILL", "Engine", "Instrument",
    "make_signals", "normalize_timestamps",
]

BAR_DTYPE = np.dtype([
    ("timestamp_ns", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
    ("close", "<f8"), ("volume", "<f8"),
])
# FLOX's bar record: prices and volume in fixed point, value x 1e8 (load_bars accepts it).
PyBar = np.dtype([
    ("timestamp_ns", "<i8"), ("open_raw", "<i8"), ("high_raw", "<i8"), ("low_raw", "<i8"),
    ("close_raw", "<i8"), ("volume_raw", "<i8"),
])
FIXED_POINT = 1e8
# FLOX names an instrument loaded without a symbol 1: run(symbol=1) finds it.
FLOX_DEFAULT_SYMBOL = 1
SIGNAL_DTYPE = np.dtype({
    "names": ["timestamp_ns", "quantity", "price", "side", "type"],
    "formats": ["<i8", "<f8", "<f8", "u1", "u1"],
    "offsets": [0, 8, 16, 24, 25],
    "itemsize": 26,
})
FILL_DTYPE = np.dtype([
    ("timestamp_ns", "<i8"), ("bar", "<i8"), ("signal", "<i8"), ("quantity", "<f8"),
    ("price", "<f8"), ("fee", "<f8"), ("position", "<f8"), ("side", "u1"), ("type", "u1"),
], align=True)

if SIGNAL_DTYPE.itemsize != sizeof(Signal) or FILL_DTYPE.itemsize != sizeof(Fill):
    raise ImportError("SIGNAL_DTYPE/FILL_DTYPE do not match the compiled structs")


# Market orders fill at the next bar's open unless told otherwise: no look-ahead. The event
# backtester (BacktestRunner's bar_fill) and the farm's EngineSettings.fill default to the same.
DEFAULT_FILL = "next_open"

SIGNAL_ERRORS = {
    SIG_UNSORTED: "timestamp is earlier than the row before; signals must be sorted (make_signals sorts them)",
    SIG_QUANTITY: "quantity must be finite and > 0",
    SIG_SIDE: "side must be 0 (buy) or 1 (sell)",
    SIG_TYPE: "type must be 0 (market), 1 (limit) or 2 (stop)",
    SIG_PRICE: "a limit or stop order needs a finite price > 0",
    SIG_NO_MEMORY: "out of memory",
}

# Timestamps are kept within +-2**62 ns (years 1824..2116) so differences never overflow.
cdef int64_t TS_LIMIT = 4611686018427387904
cdef enum:
    BAR_OK = 0
    BAR_TS_RANGE = 1
    BAR_TS_ORDER = 2
    BAR_OPEN = 3
    BAR_HIGH = 4
    BAR_LOW = 5
    BAR_CLOSE = 6
    BAR_VOLUME = 7
    BAR_HIGH_LOW = 8
    BAR_OPEN_RANGE = 9
    BAR_CLOSE_RANGE = 10


# ---------------------------------------------------------------------------------------------
# Loading: validate and copy in one pass, then summarise blocks.

cdef inline bint bad_price(double x) noexcept nogil:
    return not (x > 0.0 and x < INFINITY)


cdef int64_t check_bars(int64_t n, const int64_t* ts_in, int64_t scale, const double* o,
                       const double* h, const double* l, const double* c, const double* v,
                       int64_t* ts, double* oo, double* hh, double* ll, double* cc, double* vv,
                       int* reason, int64_t* min_gap, int64_t* max_gap) noexcept nogil:
    """Copy and check the bars row by row; return -1, or the first bad row with ``reason`` set."""
    cdef int64_t i, t, prev = 0, gap, lo_gap = INT64_MAX, hi_gap = 0
    cdef int64_t lim = TS_LIMIT // scale
    cdef double oi, hi, li, ci, vi
    for i in range(n):
        t = ts_in[i]
        if t >= lim or t <= -lim:
            reason[0] = BAR_TS_RANGE
            return i
        t = t * scale
        if i > 0:
            if t <= prev:
                reason[0] = BAR_TS_ORDER
                return i
            gap = t - prev
            if gap < lo_gap:
                lo_gap = gap
            if gap > hi_gap:
                hi_gap = gap
        prev = t
        oi = o[i]
        hi = h[i]
        li = l[i]
        ci = c[i]
        vi = v[i]
        if bad_price(oi):
            reason[0] = BAR_OPEN
            return i
        if bad_price(hi):
            reason[0] = BAR_HIGH
            return i
        if bad_price(li):
            reason[0] = BAR_LOW
            return i
        if bad_price(ci):
            reason[0] = BAR_CLOSE
            return i
        if not (vi >= 0.0 and vi < INFINITY):
            reason[0] = BAR_VOLUME
            return i
        if hi < li:
            reason[0] = BAR_HIGH_LOW
            return i
        if oi > hi or oi < li:
            reason[0] = BAR_OPEN_RANGE
            return i
        if ci > hi or ci < li:
            reason[0] = BAR_CLOSE_RANGE
            return i
        ts[i] = t
        oo[i] = oi
        hh[i] = hi
        ll[i] = li
        cc[i] = ci
        vv[i] = vi
    min_gap[0] = lo_gap
    max_gap[0] = hi_gap
    return -1


cdef inline void empty_stats(BlockStats* s) noexcept nogil:
    s.cmax = -INFINITY
    s.cmin = INFINITY
    s.drop = 0.0
    s.rise = 0.0
    s.s2pos = 0.0
    s.s2neg = 0.0
    s.hmax = -INFINITY
    s.lmin = INFINITY


cdef inline void append_stats(BlockStats* acc, const BlockStats* y) noexcept nogil:
    """Extend ``acc`` by the bars summarised in ``y``, which come right after them."""
    cdef double fall = acc.cmax - y.cmin
    cdef double climb = y.cmax - acc.cmin
    if y.drop > acc.drop:
        acc.drop = y.drop
    if fall > acc.drop:
        acc.drop = fall
    if y.rise > acc.rise:
        acc.rise = y.rise
    if climb > acc.rise:
        acc.rise = climb
    if y.cmax > acc.cmax:
        acc.cmax = y.cmax
    if y.cmin < acc.cmin:
        acc.cmin = y.cmin
    if y.hmax > acc.hmax:
        acc.hmax = y.hmax
    if y.lmin < acc.lmin:
        acc.lmin = y.lmin
    acc.s2pos += y.s2pos
    acc.s2neg += y.s2neg


cdef inline void scan_moves(const double* c, int64_t a, int64_t b, BlockStats* out) noexcept nogil:
    """Extremes and the largest fall and rise of the close inside bars a..b (i <= j); the sums
    are left as they are."""
    cdef double x, mx = c[a], mn = c[a], drop = 0.0, rise = 0.0
    cdef int64_t t
    for t in range(a + 1, b + 1):
        x = c[t]
        mx = x if x > mx else mx
        mn = x if x < mn else mn
        drop = mx - x if mx - x > drop else drop
        rise = x - mn if x - mn > rise else rise
    out.cmax = mx
    out.cmin = mn
    out.drop = drop
    out.rise = rise


cdef void summarise_block(const double* c, const double* h, const double* l, int64_t a,
                          int64_t e, BlockStats* out, bint moves) noexcept nogil:
    """Summary of bars a..e-1 (drop and rise only with ``moves``)."""
    cdef double r[4]
    if a == 0:                      # bar 0 has no move into it
        if e > 1:
            tb_extremes(c, 1, e - 1, r)
        else:
            r[0] = -INFINITY
            r[1] = INFINITY
            r[2] = 0.0
            r[3] = 0.0
        r[0] = c[0] if c[0] > r[0] else r[0]
        r[1] = c[0] if c[0] < r[1] else r[1]
    else:
        tb_extremes(c, a, e - 1, r)
    out.cmax = r[0]
    out.cmin = r[1]
    out.s2pos = r[2]
    out.s2neg = r[3]
    if moves:
        scan_moves(c, a, e - 1, out)
    tb_high_low(h, l, a, e - 1, r)
    out.hmax = r[0]
    out.lmin = r[1]


cdef int64_t load_bars(int64_t n, const int64_t* ts_in, int64_t scale, const double* o,
                       const double* h, const double* l, const double* c, const double* v,
                       double* base, int64_t nblocks, int64_t nsupers, int* reason,
                       int64_t* min_gap, int64_t* max_gap) noexcept nogil:
    """Check and copy the bars into ``base`` (ts, open, high, low, close, volume, blocks,
    superblocks) and summarise them; return -1, or the first bad row with ``reason`` set.

    One pass, block by block while the block is in cache; the common case (all good) is checked
    with vectorised kernels and only a failure is replayed row by row to name the row."""
    cdef int64_t* ts = <int64_t*>base
    cdef double* oo = base + n
    cdef double* hh = base + 2 * n
    cdef double* ll = base + 3 * n
    cdef double* cc = base + 4 * n
    cdef double* vv = base + 5 * n
    cdef BlockStats* blocks = <BlockStats*>(base + 6 * n)
    cdef BlockStats* supers = <BlockStats*>(base + 6 * n + 8 * nblocks)
    cdef int64_t blk, a, e, s, last
    cdef double pair[4]
    cdef int64_t bad
    cdef bint copied = False
    if tb_timestamps(ts_in, n, scale, TS_LIMIT // scale, ts, min_gap, max_gap):
        copied = True
        for blk in range(nblocks):
            a = blk * BLOCK
            e = a + BLOCK if a + BLOCK < n else n
            if not tb_copy_bars(o, h, l, c, v, oo, hh, ll, cc, vv, a, e):
                copied = False
                break
            summarise_block(cc, hh, ll, a, e, &blocks[blk], False)
            # Falls and rises: a whole even block waits for the whole odd block after it, and
            # the pair is scanned together, one per vector lane; any other block alone.
            if blk % 2 == 0:
                if (blk + 2) * BLOCK > n:
                    scan_moves(cc, a, e - 1, &blocks[blk])
            elif e - a == BLOCK:
                tb_moves_pair(cc, a - BLOCK, a, BLOCK, pair)
                blocks[blk - 1].drop = pair[0]
                blocks[blk].drop = pair[1]
                blocks[blk - 1].rise = pair[2]
                blocks[blk].rise = pair[3]
            else:
                scan_moves(cc, a, e - 1, &blocks[blk])
    if not copied:
        bad = check_bars(n, ts_in, scale, o, h, l, c, v, ts, oo, hh, ll, cc, vv, reason,
                         min_gap, max_gap)
        if bad >= 0:
            return bad
        for blk in range(nblocks):      # not reached while the two checks agree
            a = blk * BLOCK
            e = a + BLOCK if a + BLOCK < n else n
            summarise_block(cc, hh, ll, a, e, &blocks[blk], True)
    for s in range(nsupers):
        empty_stats(&supers[s])
        last = (s + 1) * SUPER if (s + 1) * SUPER < nblocks else nblocks
        for blk in range(s * SUPER, last):
            append_stats(&supers[s], &blocks[blk])
    return -1


cdef inline void scan_extremes(const double* c, int64_t a, int64_t b, BlockStats* out) noexcept nogil:
    """cmax, cmin, s2pos, s2neg of bars a..b (a >= 1); drop and rise are left unset."""
    cdef double r[4]
    tb_extremes(c, a, b, r)
    out.cmax = r[0]
    out.cmin = r[1]
    out.s2pos = r[2]
    out.s2neg = r[3]


cdef void range_stats(const Bars* bars, int64_t a, int64_t b, BlockStats* out,
                      bint moves) noexcept nogil:
    """Summary of bars a..b (a >= 1): two partial blocks scanned, whole (super)blocks looked up.

    Without ``moves`` only the extremes and sums are exact (drop and rise are not)."""
    cdef BlockStats part
    cdef int64_t head_end, blk, last_full, tail
    empty_stats(out)
    empty_stats(&part)
    head_end = ((a + BLOCK - 1) // BLOCK) * BLOCK
    if head_end > a:
        if moves:
            scan_moves(bars.close, a, head_end - 1, &part)
        else:
            scan_extremes(bars.close, a, head_end - 1, &part)
        append_stats(out, &part)
    blk = head_end // BLOCK
    last_full = (b + 1) // BLOCK
    while blk < last_full:
        if blk % SUPER == 0 and blk + SUPER <= last_full:
            append_stats(out, &bars.supers[blk // SUPER])
            blk += SUPER
        else:
            append_stats(out, &bars.blocks[blk])
            blk += 1
    tail = last_full * BLOCK
    if tail <= b:
        if moves:
            scan_moves(bars.close, tail, b, &part)
        else:
            scan_extremes(bars.close, tail, b, &part)
        append_stats(out, &part)


cdef inline void range_extremes(const Bars* bars, int64_t a, int64_t b, BlockStats* out) noexcept nogil:
    """cmax, cmin, s2pos and s2neg of bars a..b (a >= 1)."""
    if b - a < 2 * BLOCK:
        scan_extremes(bars.close, a, b, out)
    else:
        range_stats(bars, a, b, out, False)


cdef inline void range_moves(const Bars* bars, int64_t a, int64_t b, BlockStats* out) noexcept nogil:
    """The full summary of bars a..b (a >= 1), drop and rise included."""
    if b - a < 2 * BLOCK:
        scan_moves(bars.close, a, b, out)
    else:
        range_stats(bars, a, b, out, True)


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


cdef inline double fill_price(const Bars* bars, const Event* ev, double slippage) noexcept nogil:
    """Execution price of an event at its bar: market and stop fills pay slippage."""
    cdef double px, side = 1.0 if ev.quantity > 0.0 else -1.0
    if ev.kind == FILL_AT_CLOSE:
        px = bars.close[ev.bar]
    elif ev.kind == FILL_AT_OPEN:
        px = bars.open[ev.bar]
    elif ev.kind == FILL_AT_LIMIT:
        return ev.price
    elif ev.quantity > 0.0:            # stop: at the trigger, or at the open if it gapped past
        px = bars.open[ev.bar] if bars.open[ev.bar] > ev.price else ev.price
    else:
        px = bars.open[ev.bar] if bars.open[ev.bar] < ev.price else ev.price
    return px * (1.0 + side * slippage)


# ---------------------------------------------------------------------------------------------
# The run: fills go through the ledger; stretches without fills are marked from block summaries.

cdef inline bint step_over(const BlockStats* st, double p, double cash, double peak, double best,
                           double* top) noexcept nogil:
    """True when no bar of ``st`` can have a drawdown fraction above ``best``; sets the peak after."""
    cdef double lo, hi
    if p > 0.0:
        lo = cash + p * st.cmin
        hi = cash + p * st.cmax
    else:
        lo = cash + p * st.cmax
        hi = cash + p * st.cmin
    top[0] = hi if hi > peak else peak
    return (top[0] - lo) / peak <= best


cdef double worst_fraction(const Bars* bars, int64_t a, int64_t b, double p, double cash,
                           double peak, double best) noexcept nogil:
    """Largest (peak - equity) / peak over bars a..b held at position p, or ``best`` if larger.

    Equity is cash + p * close, rounded exactly as the per-bar definition; (super)blocks whose
    bound cannot beat ``best`` are stepped over using their summary."""
    cdef int64_t t = a, end, width
    cdef double e, top = peak
    cdef const double* c = bars.close
    while t <= b:
        end = t + 1
        if t % BLOCK == 0 and t + BLOCK - 1 <= b:
            width = 0
            if (t % (BLOCK * SUPER) == 0 and t + BLOCK * SUPER - 1 <= b
                    and step_over(&bars.supers[t // (BLOCK * SUPER)], p, cash, peak, best, &top)):
                width = BLOCK * SUPER
            elif step_over(&bars.blocks[t // BLOCK], p, cash, peak, best, &top):
                width = BLOCK
            if width:
                peak = top
                t += width
                continue
            end = t + BLOCK
        while t < end:
            e = cash + p * c[t]
            if e > peak:
                peak = e
            elif (peak - e) / peak > best:
                best = (peak - e) / peak
            t += 1
    return best


cdef void hold(const Bars* bars, int64_t a, int64_t b, double p, double cash,
                      Curve* cv) noexcept nogil:
    """Account for bars a..b (a >= 1) with no fill and position p != 0."""
    cdef BlockStats r
    cdef double pp = p * p, ap = p if p > 0.0 else -p, lo, hi, dd, top
    range_extremes(bars, a, b, &r)
    cv.s2 += pp * (r.s2pos + r.s2neg)
    if p > 0.0:
        cv.s2neg += pp * r.s2neg
        lo = cash + p * r.cmin
        hi = cash + p * r.cmax
    else:
        cv.s2neg += pp * r.s2pos
        lo = cash + p * r.cmax
        hi = cash + p * r.cmin
    dd = cv.peak - lo
    if dd > cv.max_dd:
        cv.max_dd = dd
    if hi <= cv.peak:
        # No new peak inside: every bar's drawdown is measured from cv.peak, so the deepest bar
        # gives both figures exactly.
        if dd > cv.max_dd_frac * cv.peak * TB_NEAR and dd / cv.peak > cv.max_dd_frac:
            cv.max_dd_frac = dd / cv.peak
        cv.exposure += b - a + 1
        return
    # A fall inside the stretch is at most |p| x (cmax - cmin): only then is it worth finding.
    if ap * (r.cmax - r.cmin) > cv.max_dd:
        range_moves(bars, a, b, &r)
        dd = ap * (r.drop if p > 0.0 else r.rise)
        if dd > cv.max_dd:
            cv.max_dd = dd
    top = hi
    if top - lo > cv.max_dd_frac * cv.peak * TB_NEAR and (top - lo) / cv.peak > cv.max_dd_frac:
        cv.max_dd_frac = worst_fraction(bars, a, b, p, cash, cv.peak, cv.max_dd_frac)
    cv.peak = top
    cv.exposure += b - a + 1


cdef void trace(const Bars* bars, const Signal* signals, const Event* events, int64_t nev,
                const Config* cfg, double* equity, Fill* fills) noexcept nogil:
    """Per-bar equity and the fill records, replaying the same fills as the statistics."""
    cdef Account acct
    cdef Curve unused
    cdef Holding h = Holding(pos=0.0, trade_pnl=0.0)
    cdef int64_t t, e = 0
    cdef double px, fee
    cdef const Signal* s
    ledger_open(&acct, &unused, cfg.capital)
    for t in range(bars.n):
        while e < nev and events[e].bar == t:
            s = &signals[events[e].signal]
            px = fill_price(bars, &events[e], cfg.slippage)
            fee = ledger_fill(&acct, &h, events[e].quantity, px, cfg.fee_rate)
            if fills != NULL:
                fills[e].timestamp_ns = bars.ts[t]
                fills[e].bar = t
                fills[e].signal = events[e].signal
                fills[e].quantity = s.quantity
                fills[e].price = px
                fills[e].fee = fee
                fills[e].position = h.pos
                fills[e].side = s.side
                fills[e].type = s.type
            e += 1
        if equity != NULL:
            equity[t] = acct.cash + h.pos * bars.close[t]


cdef int run_bars(const Bars* bars, const Signal* signals, int64_t nsignals, const Config* cfg,
                  Event* scratch, Outcome* out, double* equity, Fill* fills) noexcept nogil:
    """One backtest. ``scratch`` holds nsignals events. Returns 0, or -1 with out.error_*."""
    cdef Account acct
    cdef Holding h = Holding(pos=0.0, trade_pnl=0.0)
    cdef Curve cv
    cdef int64_t nev, unfilled, e = 0, f, prev = -1
    cdef double before, eq
    cdef const double* c = bars.close
    memset(out, 0, sizeof(Outcome))
    nev = plan_fills(bars, signals, nsignals, cfg, scratch, &unfilled, &out.error_code,
                     &out.error_row)
    if nev < 0:
        return -1
    ledger_open(&acct, &cv, cfg.capital)
    while e < nev:
        f = scratch[e].bar
        if h.pos != 0.0 and f - 1 > prev:
            hold(bars, prev + 1, f - 1, h.pos, acct.cash, &cv)
        before = acct.cash + h.pos * c[f - 1] if f > 0 else acct.cash
        while e < nev and scratch[e].bar == f:
            ledger_fill(&acct, &h, scratch[e].quantity,
                        fill_price(bars, &scratch[e], cfg.slippage), cfg.fee_rate)
            e += 1
        eq = acct.cash + h.pos * c[f]
        ledger_mark(&cv, eq, eq - before)
        if h.pos != 0.0:
            cv.exposure += 1
        prev = f
    if h.pos != 0.0 and prev < bars.n - 1:
        hold(bars, prev + 1, bars.n - 1, h.pos, acct.cash, &cv)
    ledger_stats(&acct, &cv, cfg.capital, acct.cash + h.pos * c[bars.n - 1], bars.n,
                 bars.interval, nev, unfilled, &out.stats)
    out.error_code = SIG_OK
    out.error_row = -1
    if equity != NULL or fills != NULL:
        trace(bars, signals, scratch, nev, cfg, equity, fills)
    return 0


# ---------------------------------------------------------------------------------------------
# Python side.

def _unit_scale(int64_t magnitude):
    """ns multiplier for timestamps whose largest magnitude is ``magnitude`` (ms, us or ns)."""
    if magnitude < 10_000_000_000_000:          # below 1e13: milliseconds
        return 1_000_000
    if magnitude < 10_000_000_000_000_000:      # below 1e16: microseconds
        return 1_000
    return 1


def _as_int64(values, str what):
    """int64 array from integers, datetime64 or integral floats; the row of the first bad value."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "M":
        return np.ascontiguousarray(arr.astype("datetime64[ns]").view(np.int64)), True
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{what} row {int(np.argmax(arr))}: value does not fit in int64")
        return np.ascontiguousarray(arr, dtype=np.int64), False
    if arr.dtype.kind == "f":
        bad = ~(np.abs(arr) < 2.0 ** 63) | (arr != np.round(arr))     # NaN fails the first
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{what} row {row}: {arr[row].item()!r} is not an integer timestamp")
        return np.ascontiguousarray(arr, dtype=np.int64), False
    raise ValueError(f"{what} must be integers (ms, us or ns) or datetime64, got dtype {arr.dtype}")


def normalize_timestamps(timestamps):
    """Timestamps in ms, us or ns (told apart by magnitude) or datetime64, as int64 ns.

    >>> normalize_timestamps([1_700_000_000_000])  # ms
    array([1700000000000000000])
    """
    arr, is_ns = _as_int64(timestamps, "timestamps")
    if arr.size == 0:
        return arr
    magnitude = int(max(abs(int(arr.max())), abs(int(arr.min()))))
    scale = 1 if is_ns else _unit_scale(magnitude)
    limit = TS_LIMIT // scale
    if magnitude >= limit:
        bad = int(np.argmax((arr >= limit) | (arr <= -limit)))
        raise ValueError(f"timestamps row {bad}: {arr[bad].item()} is out of range "
                         "(|t| must stay below 2**62 ns, about 146 years from 1970)")
    return arr * scale if scale != 1 else arr


def _as_f8(values, str what, int64_t n):
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{what} has shape {arr.shape}; expected {n} values like the timestamps")
    return arr


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


cdef inline bint _plain_signals(object arr):
    """A one-dimensional contiguous SIGNAL_DTYPE ndarray (make_signals' output): usable as is."""
    return (type(arr) is np.ndarray and (<cnp.ndarray>arr).descr is <cnp.dtype>SIGNAL_DTYPE
            and cnp.PyArray_NDIM(<cnp.ndarray>arr) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr))


def _as_signals(signals, str where):
    arr = signals
    if _plain_signals(arr):
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


BAR_ERRORS = {
    BAR_TS_RANGE: "timestamp is out of range (|t| must stay below 2**62 ns, about 146 years from 1970)",
    BAR_TS_ORDER: "timestamp is not after the previous bar's; bars must be sorted with unique timestamps",
    BAR_OPEN: "open must be finite and > 0",
    BAR_HIGH: "high must be finite and > 0",
    BAR_LOW: "low must be finite and > 0",
    BAR_CLOSE: "close must be finite and > 0",
    BAR_VOLUME: "volume must be finite and >= 0",
    BAR_HIGH_LOW: "high is below low",
    BAR_OPEN_RANGE: "open is outside [low, high]",
    BAR_CLOSE_RANGE: "close is outside [low, high]",
}


cdef class Instrument:
    """One loaded instrument: its bars in contiguous read-only arrays plus the block summaries.

    >>> eng = Engine()
    >>> eng.load_bars_df([0, 60_000, 180_000], [1., 2., 3.], [1., 2., 3.], [1., 2., 3.], [1., 2., 3.], [5., 5., 5.])
    >>> inst = eng.instrument()
    >>> len(inst), inst.bar_interval_ns, inst.uniform, inst.close.tolist()
    (3, 60000000000, False, [1.0, 2.0, 3.0])
    """
    cdef Bars view
    cdef object _buffer
    cdef readonly object symbol
    cdef readonly object timestamps, open, high, low, close, volume

    def __len__(self):
        return self.view.n

    @property
    def bar_interval_ns(self):
        """Smallest gap between consecutive bars (the bar interval), in ns."""
        return self.view.interval

    @property
    def uniform(self):
        """True when every gap equals the bar interval."""
        return bool(self.view.uniform)

    @property
    def nbytes(self):
        return self._buffer.nbytes

    def bars(self):
        """A BAR_DTYPE copy of the loaded bars."""
        out = np.empty(self.view.n, dtype=BAR_DTYPE)
        for name in BAR_DTYPE.names:
            out[name] = getattr(self, "timestamps" if name == "timestamp_ns" else name)
        return out


cdef Instrument _load(object symbol, object ts, int64_t scale, object o, object h, object l,
                      object c, object v):
    cdef int64_t n = ts.shape[0]
    if n == 0:
        raise ValueError("no bars: at least one bar is needed")
    cdef int64_t nblocks = (n + BLOCK - 1) // BLOCK
    cdef int64_t nsupers = (nblocks + SUPER - 1) // SUPER
    cdef int64_t words = 6 * n + 8 * (nblocks + nsupers)
    buf = np.empty(words, dtype=np.float64)
    cdef double[::1] bv = buf
    cdef double* base = &bv[0]
    cdef const int64_t[::1] tsv = ts
    cdef const double[::1] ov = o, hv = h, lv = l, cv = c, vv = v
    cdef int reason = 0
    cdef int64_t bad, min_gap = 0, max_gap = 0
    cdef Instrument inst = Instrument.__new__(Instrument)
    cdef Bars* bars = &inst.view
    with nogil:
        bad = load_bars(n, &tsv[0], scale, &ov[0], &hv[0], &lv[0], &cv[0], &vv[0], base,
                        nblocks, nsupers, &reason, &min_gap, &max_gap)
    if bad >= 0:
        raise ValueError(f"bars row {bad}: {BAR_ERRORS[reason]}")
    bars.ts = <const int64_t*>base
    bars.open = base + n
    bars.high = base + 2 * n
    bars.low = base + 3 * n
    bars.close = base + 4 * n
    bars.blocks = <const BlockStats*>(base + 6 * n)
    bars.supers = <const BlockStats*>(base + 6 * n + 8 * nblocks)
    bars.n = n
    bars.nblocks = nblocks
    bars.nsupers = nsupers
    bars.interval = min_gap if n > 1 else 1
    bars.uniform = n == 1 or min_gap == max_gap
    bars.end_ts = (INT64_MAX if bars.interval > INT64_MAX - bars.ts[n - 1]
                   else bars.ts[n - 1] + bars.interval)
    if tb_has_int128():
        log2 = (bars.interval - 1).bit_length()          # ceil(log2 interval)
        bars.magic = (1 << (63 + log2)) // bars.interval + 1
        bars.shift = 63 + log2
    inst._buffer = buf
    inst.symbol = symbol
    views = [buf[i * n:(i + 1) * n] for i in range(6)]
    views[0] = views[0].view(np.int64)
    for arr in views:
        arr.flags.writeable = False
    inst.timestamps, inst.open, inst.high, inst.low, inst.close, inst.volume = views
    return inst


_FRAME_COLUMNS = {
    "timestamp": ("timestamp_ns", "timestamp", "timestamps", "ts", "time", "open_time", "datetime",
                  "date"),
    "open": ("open", "opens", "o"),
    "high": ("high", "highs", "h"),
    "low": ("low", "lows", "l"),
    "close": ("close", "closes", "c"),
    "volume": ("volume", "volumes", "v"),
}


def _frame_column(frame, str role):
    names = list(frame.keys()) if hasattr(frame, "keys") else list(frame.columns)
    lower = {str(name).lower(): name for name in names}
    for candidate in _FRAME_COLUMNS[role]:
        if candidate in lower:
            col = frame[lower[candidate]]
            tz = getattr(getattr(col, "dt", None), "tz", None)
            if tz is not None:                       # tz-aware pandas column: to naive UTC
                col = col.dt.tz_convert(None)
            to_numpy = getattr(col, "to_numpy", None)
            return to_numpy() if to_numpy is not None else np.asarray(col)
    if role == "timestamp":
        index = getattr(frame, "index", None)
        if getattr(index, "tz", None) is not None:
            index = index.tz_convert(None)
        if index is not None and np.asarray(index).dtype.kind == "M":
            return np.asarray(index)
    raise ValueError(f"frame has no {role} column (looked for {', '.join(_FRAME_COLUMNS[role])}); "
                     f"its columns are {names}")


cdef class Engine:
    """Batch backtest engine: load bars once, run many signal sets against them.

    initial_capital: starting cash; fee_rate: fee per fill as a fraction of notional;
    slippage_bps: basis points by which market and stop fills move against the taker;
    fill: "next_open" (the default, DEFAULT_FILL: a signal stamped at bar t fills at bar t+1's
    open, so nothing it could not have known is used) or "close" (at bar t's close, as FLOX does).

    >>> import numpy as np
    >>> eng = Engine(initial_capital=10_000, fee_rate=0.0, fill="close")
    >>> ts = np.array([0, 60_000, 120_000]) + 1_700_000_000_000          # ms
    >>> eng.load_bars_df(ts, [10., 11., 12.], [10., 11., 12.], [10., 11., 12.], [10., 11., 12.], [1., 1., 1.])
    >>> stats = eng.run(make_signals(ts[[0, 2]], [0, 1], [100.0, 100.0]))
    >>> stats["net_pnl"], stats["total_trades"]
    (200.0, 1)
    """
    cdef Config cfg
    cdef dict _instruments
    cdef double _slippage_bps

    def __init__(self, initial_capital=100_000.0, fee_rate=0.0001, slippage_bps=0.0, fill=DEFAULT_FILL):
        initial_capital = float(initial_capital)
        fee_rate = float(fee_rate)
        slippage_bps = float(slippage_bps)
        if not (initial_capital > 0 and initial_capital < INFINITY):
            raise ValueError(f"initial_capital must be finite and > 0, got {initial_capital!r}")
        if not (fee_rate >= 0 and fee_rate < 1):
            raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate!r}")
        if not (slippage_bps >= 0 and slippage_bps < 10_000):
            raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps!r}")
        if fill not in ("close", "next_open"):
            raise ValueError(f'fill must be "close" or "next_open", got {fill!r}')
        self.cfg.capital = initial_capital
        self.cfg.fee_rate = fee_rate
        self.cfg.slippage = slippage_bps / 10_000.0
        self._slippage_bps = slippage_bps
        self.cfg.fill_mode = FILL_CLOSE if fill == "close" else FILL_NEXT_OPEN
        self._instruments = {}

    @property
    def config(self):
        """The constructor arguments, to build an engine that runs the same way."""
        return {
            "initial_capital": self.cfg.capital,
            "fee_rate": self.cfg.fee_rate,
            "slippage_bps": self._slippage_bps,
            "fill": "close" if self.cfg.fill_mode == FILL_CLOSE else "next_open",
        }

    @property
    def symbols(self):
        """Symbols of the loaded instruments, in load order (None is the unnamed one)."""
        return list(self._instruments)

    def instrument(self, symbol=None):
        """The loaded Instrument for ``symbol`` (may be omitted when one is loaded). Bars loaded
        without a symbol also answer to FLOX's default symbol, 1."""
        if symbol is None and len(self._instruments) == 1:
            return next(iter(self._instruments.values()))
        try:
            return self._instruments[symbol]
        except (KeyError, TypeError):
            pass
        if type(symbol) is int and symbol == FLOX_DEFAULT_SYMBOL and None in self._instruments:
            return self._instruments[None]
        if symbol is None:
            if not self._instruments:
                raise ValueError("no bars loaded: call load_bars_df, load_bars or load_bars_frame first")
            raise ValueError(f"several instruments are loaded ({self.symbols}); pass symbol=")
        raise ValueError(f"unknown symbol {symbol!r}; loaded: {self.symbols}")

    def unload(self, symbol=None):
        """Forget an instrument and free its memory."""
        inst = self.instrument(symbol)
        del self._instruments[inst.symbol]

    def load_bars_df(self, timestamps, opens, highs, lows, closes, volumes, symbol=None):
        """Load OHLCV columns. Timestamps: int ms, us or ns (told apart by magnitude, kept as ns)
        or datetime64; prices float64. Loading a symbol again replaces it.

        >>> eng = Engine()
        >>> eng.load_bars_df([1_700_000_000_000, 1_700_000_060_000], [1., 2.], [1., 2.], [1., 2.], [1., 2.], [0., 0.], symbol="BTC/USDT")
        >>> eng.symbols
        ['BTC/USDT']
        """
        ts, is_ns = _as_int64(timestamps, "timestamps")
        n = ts.shape[0]
        scale = 1
        if not is_ns and n:
            scale = _unit_scale(max(abs(int(ts[0])), abs(int(ts[n - 1]))))
        inst = _load(symbol, ts, scale, _as_f8(opens, "opens", n), _as_f8(highs, "highs", n),
                     _as_f8(lows, "lows", n), _as_f8(closes, "closes", n),
                     _as_f8(volumes, "volumes", n))
        self._instruments.pop(symbol, None)
        self._instruments[symbol] = inst

    def load_bars(self, bars, symbol=None):
        """Load a structured array with BAR_DTYPE's fields (timestamp_ns, open, high, low, close,
        volume), or FLOX's PyBar (timestamp_ns and open_raw, ..., volume_raw: int64 fixed point,
        value x 1e8). A timestamp_ns column in ms or us is normalised like load_bars_df's.

        >>> bars = np.zeros(2, dtype=BAR_DTYPE)
        >>> bars["timestamp_ns"] = [1_700_000_000_000_000_000, 1_700_000_060_000_000_000]
        >>> for f in ("open", "high", "low", "close"): bars[f] = 100.0
        >>> Engine().load_bars(bars)
        >>> flox = np.zeros(2, dtype=PyBar)
        >>> flox["timestamp_ns"] = bars["timestamp_ns"]
        >>> for f in ("open_raw", "high_raw", "low_raw", "close_raw"): flox[f] = 100 * 10**8
        >>> eng = Engine(); eng.load_bars(flox); eng.instrument().close.tolist()
        [100.0, 100.0]
        """
        bars = np.asarray(bars)
        names = bars.dtype.names or ()
        if all(name in names for name in PyBar.names):
            columns = [bars[name] for name in PyBar.names[1:]]
            for name, col in zip(PyBar.names[1:], columns):
                if col.dtype.kind not in "iu":
                    raise ValueError(f"PyBar field {name} must be int64 fixed point (value x 1e8), "
                                     f"got dtype {col.dtype}")
            self.load_bars_df(bars["timestamp_ns"], *(col / FIXED_POINT for col in columns),
                              symbol=symbol)
            return
        missing = [name for name in BAR_DTYPE.names if name not in names]
        if missing:
            raise ValueError(f"bars lack the fields {missing}; expected BAR_DTYPE {BAR_DTYPE.names} "
                             f"or FLOX's PyBar {PyBar.names}")
        self.load_bars_df(bars["timestamp_ns"], bars["open"], bars["high"], bars["low"],
                          bars["close"], bars["volume"], symbol=symbol)

    def load_bars_frame(self, frame, symbol=None):
        """Load a pandas or polars DataFrame (or a mapping of columns). Columns are found by
        name, case-insensitively: timestamp (timestamp_ns, timestamp, ts, time, open_time,
        datetime, date, or a pandas DatetimeIndex), open, high, low, close, volume.

        >>> Engine().load_bars_frame({"open_time": [1_700_000_000_000], "open": [1.0], "high": [1.0],
        ...                           "low": [1.0], "close": [1.0], "volume": [0.0]})
        """
        self.load_bars_df(*(_frame_column(frame, role) for role in _FRAME_COLUMNS), symbol=symbol)

    def run(self, signals, symbol=None, equity=False):
        """Run one signal set (a SIGNAL_DTYPE array from make_signals); return the statistics.

        With equity=True the dict also holds "equity" (mark-to-market equity at each bar's close,
        float64) and "fills" (a FILL_DTYPE array, in execution order).

        >>> eng = Engine(fee_rate=0.0, fill="close")
        >>> eng.load_bars_df([0, 60_000, 120_000], [1., 2., 4.], [1., 2., 4.], [1., 2., 4.], [1., 2., 4.], [0., 0., 0.])
        >>> out = eng.run(make_signals([0], [0], [10.0]), equity=True)
        >>> out["equity"].tolist(), out["fills"]["price"].tolist()
        ([100000.0, 100010.0, 100030.0], [1.0])
        """
        cdef Instrument inst = self.instrument(symbol)
        arr = _as_signals(signals, "run")
        cdef int64_t nsig = arr.shape[0]
        cdef Outcome st
        cdef int rc
        cdef Event* scratch = <Event*>malloc((nsig + 1) * sizeof(Event))
        cdef const Signal* sig = <const Signal*>cnp.PyArray_DATA(<cnp.ndarray>arr)
        cdef double* eq_ptr = NULL
        cdef Fill* fill_ptr = NULL
        cdef double[::1] eq_view
        if scratch == NULL:
            raise MemoryError()
        if equity:
            eq_arr = np.empty(inst.view.n, dtype=np.float64)
            fills_arr = np.empty(nsig, dtype=FILL_DTYPE)
            eq_view = eq_arr
            eq_ptr = &eq_view[0]
            if nsig:
                fill_ptr = <Fill*>cnp.PyArray_DATA(<cnp.ndarray>fills_arr)
        try:
            with nogil:
                rc = run_bars(&inst.view, sig, nsig, &self.cfg, scratch, &st, eq_ptr, fill_ptr)
        finally:
            free(scratch)
        if rc != 0:
            raise ValueError(f"signal row {st.error_row}: {SIGNAL_ERRORS[st.error_code]}")
        out = stats_dict(&st.stats)
        if equity:
            out["equity"] = eq_arr
            out["fills"] = fills_arr[:st.stats.total_fills].copy()
        return out

    def run_batch(self, items, threads=0, symbol=None):
        """Run many signal sets in parallel (GIL released, OpenMP threads sharing the bars).

        items: signal arrays (run on ``symbol``) or (symbol, signals) pairs. threads=0 uses all
        cores. Returns one statistics dict per item, equal to what run() returns for it.

        >>> eng = Engine()
        >>> eng.load_bars_df([0, 60_000], [1., 2.], [1., 2.], [1., 2.], [1., 2.], [0., 0.])
        >>> [r["total_fills"] for r in eng.run_batch([make_signals([0], [0], [1.0])] * 3, threads=2)]
        [1, 1, 1]
        """
        items = list(items)
        cdef Py_ssize_t m = len(items), i
        cdef int nthreads = threads if threads > 0 else openmp.omp_get_max_threads()
        keep = []
        cdef const Bars** bars_of = NULL
        cdef const Signal** sig_of = NULL
        cdef int64_t* count_of = NULL
        cdef Outcome* results = NULL
        cdef Event* scratch = NULL
        cdef int64_t most = 0
        cdef Instrument inst, last_inst = None
        last_symbol = None
        if m == 0:
            return []
        if nthreads > m:
            nthreads = <int>m
        try:
            bars_of = <const Bars**>malloc(m * sizeof(Bars*))
            sig_of = <const Signal**>malloc(m * sizeof(Signal*))
            count_of = <int64_t*>malloc(m * sizeof(int64_t))
            results = <Outcome*>malloc(m * sizeof(Outcome))
            if bars_of == NULL or sig_of == NULL or count_of == NULL or results == NULL:
                raise MemoryError()
            for i in range(m):
                item = items[i]
                item_symbol = symbol
                if isinstance(item, tuple):
                    if len(item) != 2:
                        raise ValueError(f"batch item {i}: expected signals or a (symbol, signals) pair")
                    item_symbol, item = item
                if last_inst is None or item_symbol is not last_symbol:
                    try:
                        inst = self.instrument(item_symbol)
                    except ValueError as exc:
                        raise ValueError(f"batch item {i}: {exc}") from None
                    last_inst = inst
                    last_symbol = item_symbol
                if _plain_signals(item):
                    arr = item
                else:
                    arr = _as_signals(item, f"batch item {i}")
                keep.append((last_inst, arr))   # alive while the threads read them
                bars_of[i] = &last_inst.view
                sig_of[i] = <const Signal*>cnp.PyArray_DATA(<cnp.ndarray>arr)
                count_of[i] = cnp.PyArray_DIM(<cnp.ndarray>arr, 0)
                if count_of[i] > most:
                    most = count_of[i]
            with nogil, parallel(num_threads=nthreads):
                scratch = <Event*>malloc((most + 1) * sizeof(Event))
                for i in prange(m, schedule="dynamic", chunksize=1):
                    if scratch == NULL:
                        results[i].error_code = SIG_NO_MEMORY
                        results[i].error_row = -1
                    else:
                        run_bars(bars_of[i], sig_of[i], count_of[i], &self.cfg, scratch,
                                 &results[i], NULL, NULL)
                free(scratch)
            out = []
            for i in range(m):
                if results[i].error_code != SIG_OK:
                    if results[i].error_code == SIG_NO_MEMORY:
                        raise MemoryError()
                    raise ValueError(f"batch item {i}: signal row {results[i].error_row}: "
                                     f"{SIGNAL_ERRORS[results[i].error_code]}")
                out.append(stats_dict(&results[i].stats))
            return out
        finally:
            free(bars_of)
            free(sig_of)
            free(count_of)
            free(results)


# ---------------------------------------------------------------------------------------------
# Permutation paths (tradebus.engine.permutation): one pass writing a BAR_DTYPE path.

cdef extern from *:
    """
    #if defined(__GNUC__)
    #define tb_prefetch(p) __builtin_prefetch(p)
    #else
    #define tb_prefetch(p) ((void)0)
    #endif
    """
    void tb_prefetch(const void* p) noexcept nogil


cdef packed struct BarRow:
    int64_t timestamp_ns
    double open
    double high
    double low
    double close
    double volume


def _permuted_path(const int64_t[::1] ts, const double[::1] first, const double[::1] closes,
                   const int64_t[::1] order, const double[:, ::1] shape):
    """BAR_DTYPE path: bar 0 is ``first`` (open, high, low, close, volume); bar i >= 1 has the
    close closes[i - 1], open, high and low closes[i - 1] x shape[order[i - 1], 0..2] and the
    volume shape[order[i - 1], 3]. ``shape`` rows are bars 1..n-1's (open, high, low) / close
    and volume, side by side so each shuffled row is one cache line; timestamps are ``ts``."""
    cdef Py_ssize_t n = ts.shape[0], i, k
    if (closes.shape[0] != n - 1 or order.shape[0] != n - 1 or shape.shape[0] != n - 1
            or shape.shape[1] != 4 or first.shape[0] != 5):
        raise ValueError("_permuted_path: inconsistent lengths")
    for i in range(n - 1):
        if order[i] < 0 or order[i] >= n - 1:
            raise ValueError("_permuted_path: order out of range")
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
