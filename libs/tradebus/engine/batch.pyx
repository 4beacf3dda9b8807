"""Batch backtest engine, the run API: bars loaded once, signal arrays in, statistics (and
fills) out. Bar storage is bars.pyx, the fill search fills.pyx, accounting and statistics
ledger.pyx, permutation paths paths.pyx; this module holds the run and the ``Engine`` class.

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
from libc.math cimport INFINITY
from libc.stdint cimport INT64_MAX, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cimport numpy as cnp
cimport openmp

from tradebus.engine.bars cimport (
    BLOCK, SUPER, Bars, BlockStats, Instrument, load_columns, range_extremes, range_moves,
)
from tradebus.engine.fills cimport (
    FILL_CLOSE, FILL_NEXT_OPEN, SIG_NO_MEMORY, SIG_OK, Config, Event, Signal, as_signals,
    fill_price, plain_signals, plan_fills,
)
from tradebus.engine.ledger cimport (
    TB_NEAR, Account, Curve, Holding, Stats, ledger_fill, ledger_mark, ledger_open,
    ledger_stats, stats_dict,
)

import numpy as np

from tradebus.engine.bars import BAR_DTYPE, PyBar, frame_columns, normalize_timestamps, record_columns
from tradebus.engine.fills import SIGNAL_DTYPE, SIGNAL_ERRORS, make_signals
from tradebus.engine.ledger import STAT_KEYS

cnp.import_array()

__all__ = [
    "BAR_DTYPE", "PyBar", "SIGNAL_DTYPE", "FILL_DTYPE", "STAT_KEYS", "DEFAULT_FILL", "Engine",
    "make_signals", "normalize_timestamps",
]

FILL_DTYPE = np.dtype([
    ("timestamp_ns", "<i8"), ("bar", "<i8"), ("signal", "<i8"), ("quantity", "<f8"),
    ("price", "<f8"), ("fee", "<f8"), ("position", "<f8"), ("side", "u1"), ("type", "u1"),
], align=True)

if FILL_DTYPE.itemsize != sizeof(Fill):
    raise ImportError("FILL_DTYPE does not match the compiled Fill struct")

# Market orders fill at the next bar's open unless told otherwise: no look-ahead. The event
# backtester (BacktestRunner's bar_fill) and the farm's EngineSettings.fill default to the same.
from tradebus.proto.backtest import DEFAULT_FILL  # the one definition (the wire contract names it too)
# FLOX names an instrument loaded without a symbol 1: run(symbol=1) finds it.
FLOX_DEFAULT_SYMBOL = 1


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


cdef list outcome_dicts(const Outcome* results, int64_t count, str what):
    """The statistics dict of each run; MemoryError, or ValueError naming the first refused
    ``what`` and its signal row."""
    out = []
    for i in range(count):
        if results[i].error_code != SIG_OK:
            if results[i].error_code == SIG_NO_MEMORY:
                raise MemoryError()
            raise ValueError(f"{what} {i}: signal row {results[i].error_row}: "
                             f"{SIGNAL_ERRORS[results[i].error_code]}")
        out.append(stats_dict(&results[i].stats))
    return out


# ---------------------------------------------------------------------------------------------
# Python side.

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
        inst = load_columns(symbol, timestamps, opens, highs, lows, closes, volumes)
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
        self.load_bars_df(*record_columns(bars), symbol=symbol)

    def load_bars_frame(self, frame, symbol=None):
        """Load a pandas or polars DataFrame (or a mapping of columns). Columns are found by
        name, case-insensitively: timestamp (timestamp_ns, timestamp, ts, time, open_time,
        datetime, date, or a pandas DatetimeIndex), open, high, low, close, volume.

        >>> Engine().load_bars_frame({"open_time": [1_700_000_000_000], "open": [1.0], "high": [1.0],
        ...                           "low": [1.0], "close": [1.0], "volume": [0.0]})
        """
        self.load_bars_df(*frame_columns(frame), symbol=symbol)

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
        arr = as_signals(signals, "run")
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
                if plain_signals(item):
                    arr = item
                else:
                    arr = as_signals(item, f"batch item {i}")
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
            return outcome_dicts(results, m, "batch item")
        finally:
            free(bars_of)
            free(sig_of)
            free(count_of)
            free(results)
