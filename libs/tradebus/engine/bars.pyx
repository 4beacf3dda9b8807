"""Bar storage of the batch engine: bars checked, copied and summarised once per instrument.

Loading checks and copies the bars in one pass (C kernels in include/kernels.h) and summarises
every block of 64 bars, and superblock of 64 blocks, by the highest and lowest close, the largest
fall and rise of the close, the squared close-to-close moves split by sign and the highest high
and lowest low. ``range_extremes`` / ``range_moves`` read any stretch of bars from those
summaries plus at most two partial blocks; the fill search (fills.pyx) and the run (batch.pyx)
use them so that a run costs O(signals + fills x 64 + bars / 4096), not O(bars).
"""
from libc.math cimport INFINITY
from libc.stdint cimport INT64_MAX, int64_t, uint64_t

import numpy as np

__all__ = ["BAR_DTYPE", "PyBar", "Instrument", "normalize_timestamps", "load_columns",
           "record_columns", "frame_columns"]

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
    if h == NULL:                   # no ranges: nothing will look for a limit or stop fill
        out.hmax = INFINITY
        out.lmin = -INFINITY
        return
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
    cdef int64_t blk, a, e
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
            summarise_in_order(cc, hh, ll, n, blk, blocks)
    if not copied:
        bad = check_bars(n, ts_in, scale, o, h, l, c, v, ts, oo, hh, ll, cc, vv, reason,
                         min_gap, max_gap)
        if bad >= 0:
            return bad
        for blk in range(nblocks):      # not reached while the two checks agree
            a = blk * BLOCK
            e = a + BLOCK if a + BLOCK < n else n
            summarise_block(cc, hh, ll, a, e, &blocks[blk], True)
    summarise_supers(blocks, nblocks, supers, nsupers)
    return -1


cdef inline void summarise_in_order(const double* cc, const double* hh, const double* ll, int64_t n,
                                    int64_t blk, BlockStats* blocks) noexcept nogil:
    """Summarise block ``blk`` (blocks are summarised in order, right after their bars)."""
    cdef int64_t a = blk * BLOCK
    cdef int64_t e = a + BLOCK if a + BLOCK < n else n
    cdef double pair[4]
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


cdef inline void summarise_supers(const BlockStats* blocks, int64_t nblocks, BlockStats* supers,
                                  int64_t nsupers) noexcept nogil:
    cdef int64_t s, blk, last
    for s in range(nsupers):
        empty_stats(&supers[s])
        last = (s + 1) * SUPER if (s + 1) * SUPER < nblocks else nblocks
        for blk in range(s * SUPER, last):
            append_stats(&supers[s], &blocks[blk])


cdef void summarise_columns(Bars* bars, BlockStats* blocks, BlockStats* supers,
                            bint ranges) noexcept nogil:
    """Fill ``blocks`` and ``supers`` (bars.nblocks and bars.nsupers of them) from the bars'
    checked columns and point ``bars`` at them: what loading does, for bars made in place
    (the permuted paths of engine/fused.pyx). Without ``ranges`` the highs and lows are not
    read (nor summarised): only for runs with market orders alone, which never search them."""
    cdef int64_t blk
    for blk in range(bars.nblocks):
        summarise_in_order(bars.close, bars.high if ranges else NULL, bars.low, bars.n, blk, blocks)
    summarise_supers(blocks, bars.nblocks, supers, bars.nsupers)
    bars.blocks = blocks
    bars.supers = supers


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


cdef void range_extremes(const Bars* bars, int64_t a, int64_t b, BlockStats* out) noexcept nogil:
    """cmax, cmin, s2pos and s2neg of bars a..b (a >= 1)."""
    if b - a < 2 * BLOCK:
        scan_extremes(bars.close, a, b, out)
    else:
        range_stats(bars, a, b, out, False)


cdef void range_moves(const Bars* bars, int64_t a, int64_t b, BlockStats* out) noexcept nogil:
    """The full summary of bars a..b (a >= 1), drop and rise included."""
    if b - a < 2 * BLOCK:
        scan_moves(bars.close, a, b, out)
    else:
        range_stats(bars, a, b, out, True)


# ---------------------------------------------------------------------------------------------
# Python side: timestamps, columns and the Instrument.

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

    >>> inst = load_columns(None, [0, 60_000, 180_000], [1., 2., 3.], [1., 2., 3.], [1., 2., 3.], [1., 2., 3.], [5., 5., 5.])
    >>> len(inst), inst.bar_interval_ns, inst.uniform, inst.close.tolist()
    (3, 60000000000, False, [1.0, 2.0, 3.0])
    """
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


cdef Instrument load_instrument(object symbol, object ts, int64_t scale, object o, object h,
                                object l, object c, object v):
    """The Instrument of checked int64 timestamps (x ``scale`` to ns) and float64 columns."""
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


cpdef Instrument load_columns(object symbol, object timestamps, object opens, object highs,
                              object lows, object closes, object volumes):
    """Check, copy and summarise OHLCV columns. Timestamps: int ms, us or ns (told apart by
    magnitude, kept as ns) or datetime64; prices and volumes as float64. A bad row raises
    ValueError naming it."""
    ts, is_ns = _as_int64(timestamps, "timestamps")
    n = ts.shape[0]
    scale = 1
    if not is_ns and n:
        scale = _unit_scale(max(abs(int(ts[0])), abs(int(ts[n - 1]))))
    return load_instrument(symbol, ts, scale, _as_f8(opens, "opens", n), _as_f8(highs, "highs", n),
                           _as_f8(lows, "lows", n), _as_f8(closes, "closes", n),
                           _as_f8(volumes, "volumes", n))


def record_columns(bars):
    """The six OHLCV columns of a BAR_DTYPE array or of FLOX's PyBar (int64 fixed point,
    value x 1e8), prices as float64."""
    bars = np.asarray(bars)
    names = bars.dtype.names or ()
    if all(name in names for name in PyBar.names):
        columns = [bars[name] for name in PyBar.names[1:]]
        for name, col in zip(PyBar.names[1:], columns):
            if col.dtype.kind not in "iu":
                raise ValueError(f"PyBar field {name} must be int64 fixed point (value x 1e8), "
                                 f"got dtype {col.dtype}")
        return (bars["timestamp_ns"], *(col / FIXED_POINT for col in columns))
    missing = [name for name in BAR_DTYPE.names if name not in names]
    if missing:
        raise ValueError(f"bars lack the fields {missing}; expected BAR_DTYPE {BAR_DTYPE.names} "
                         f"or FLOX's PyBar {PyBar.names}")
    return tuple(bars[name] for name in BAR_DTYPE.names)


def frame_columns(frame):
    """The six OHLCV columns of a pandas or polars DataFrame or a mapping, found by name."""
    return tuple(_frame_column(frame, role) for role in _FRAME_COLUMNS)


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
