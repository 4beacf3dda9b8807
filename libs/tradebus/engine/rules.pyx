"""Signal-rule evaluator: a compiled rule program (tradebus.engine.rule_program.Program) run over
bars in nogil loops, producing the SIGNAL_DTYPE rows ``make_signals`` would.

A program runs in three steps, each a tight loop over bars:

1. number instructions, in dependency order, each fill a column of n doubles (indicators run
   the same inline kernels as tradebus.engine.indicators, so the numbers are the same; values
   before an indicator is warm are NaN; an indicator over another skips its NaN warm-up);
2. a point's condition instructions each fill a slot of n bytes (0/1); comparisons with NaN are
   false;
3. ``emit_signals`` walks the slots of the four sides with the rule's intended position and
   writes the signals (see the rule_language docstring for the semantics).

The fused study pipeline (fused.pyx) runs the same three steps per path or per parameter point
inside one ``prange``.
"""
from libc.math cimport NAN
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr

cimport numpy as cnp

from tradebus.engine.fills cimport ORDER_LIMIT, ORDER_MARKET, ORDER_STOP, SIDE_BUY, SIDE_SELL, Signal
from tradebus.engine.indicators cimport (
    AtrState, EmaState, MacdState, RsiState, SmaState, StdState, VwapState, atr_init, atr_push,
    bands_push, ema_init, ema_push, macd_init, macd_push, rsi_init, rsi_push, sma_init, sma_over, sma_over_pair,
    std_init, std_push, vwap_init, vwap_push,
)

import numpy as np

from tradebus.engine.fills import SIGNAL_DTYPE
from tradebus.engine.rule_program import OPCODES, PRICE_COLUMNS, Program

cnp.import_array()

__all__ = ["INSTR_DTYPE", "CompiledProgram", "compile_program", "evaluate", "rule_signals"]

cdef enum:
    OP_CONST = 1
    OP_ADD = 2
    OP_SUB = 3
    OP_MUL = 4
    OP_DIV = 5
    OP_SMA = 10
    OP_EMA = 11
    OP_RSI = 12
    OP_ATR = 13
    OP_STD = 14
    OP_BBANDS = 15
    OP_MACD = 16
    OP_VWAP = 17
    OP_LT = 30
    OP_LE = 31
    OP_GT = 32
    OP_GE = 33
    OP_CROSS_ABOVE = 34
    OP_CROSS_BELOW = 35
    OP_AND = 40
    OP_OR = 41
    OP_NOT = 42

_COMPILED_OPCODES = {
    "const": OP_CONST, "add": OP_ADD, "sub": OP_SUB, "mul": OP_MUL, "div": OP_DIV,
    "sma": OP_SMA, "ema": OP_EMA, "rsi": OP_RSI, "atr": OP_ATR, "rolling_std": OP_STD,
    "bbands": OP_BBANDS, "macd": OP_MACD, "vwap": OP_VWAP,
    "lt": OP_LT, "le": OP_LE, "gt": OP_GT, "ge": OP_GE, "cross_above": OP_CROSS_ABOVE,
    "cross_below": OP_CROSS_BELOW, "and": OP_AND, "or": OP_OR, "not": OP_NOT,
}
if _COMPILED_OPCODES != OPCODES or PRICE_COLUMNS != ("open", "high", "low", "close", "volume"):
    raise ImportError("rules.pyx opcodes do not match rule_program.OPCODES")

INSTR_DTYPE = np.dtype([
    ("op", "<i4"), ("dst", "<i4"), ("a", "<i4"), ("b", "<i4"), ("c", "<i4"), ("level", "<i4"),
    ("p0", "<f8"), ("p1", "<f8"), ("p2", "<f8"),
])
if INSTR_DTYPE.itemsize != sizeof(Instr):
    raise ImportError("INSTR_DTYPE does not match the compiled Instr struct")


# ---------------------------------------------------------------------------------------------
# Number columns.

cdef inline int64_t first_finite(const double* x, int64_t n) noexcept nogil:
    """Index of the first value that is not NaN (an input's warm-up), or n."""
    cdef int64_t i = 0
    while i < n and x[i] != x[i]:
        i += 1
    return i


cdef inline void fill(double* o, int64_t n, double value) noexcept nogil:
    cdef int64_t i
    for i in range(n):
        o[i] = value


cdef int eval_number(const Instr* ins, double** cols, int64_t n, double* ring) noexcept nogil:
    """Fill the column(s) of one number instruction; ``ring`` holds 2 x the program's
    max_period doubles."""
    cdef double* o = cols[ins.dst]
    cdef const double* x = cols[ins.a] if ins.a >= 0 else NULL
    cdef const double* y = cols[ins.b] if ins.b >= 0 else NULL
    cdef const double* z = cols[ins.c] if ins.c >= 0 else NULL
    cdef int64_t i, first
    cdef int period = <int>ins.p0
    cdef double v[3]
    cdef SmaState sma
    cdef EmaState ema
    cdef RsiState rsi
    cdef AtrState atr
    cdef StdState std
    cdef MacdState macd
    cdef VwapState vwap
    cdef double* o1
    cdef double* o2
    if ins.op == OP_CONST:
        fill(o, n, ins.p0)
        return 0
    if ins.op == OP_ADD:
        for i in range(n):
            o[i] = x[i] + y[i]
        return 0
    if ins.op == OP_SUB:
        for i in range(n):
            o[i] = x[i] - y[i]
        return 0
    if ins.op == OP_MUL:
        for i in range(n):
            o[i] = x[i] * y[i]
        return 0
    if ins.op == OP_DIV:
        for i in range(n):
            o[i] = x[i] / y[i]
        return 0
    first = first_finite(x, n)
    if y != NULL:
        i = first_finite(y, n)
        first = i if i > first else first
    if z != NULL:
        i = first_finite(z, n)
        first = i if i > first else first
    if ins.op == OP_SMA:                   # writes every bar once warm: NaN only before
        i = first + period - 1
        fill(o, i if i < n else n, NAN)
        sma_init(&sma, period, ring)
        if first < n:
            sma_over(&sma, x + first, o + first, n - first)
        return 0
    fill(o, n, NAN)
    if ins.op == OP_EMA:
        ema_init(&ema, period)
        for i in range(first, n):
            ema_push(&ema, x[i], &o[i])
    elif ins.op == OP_RSI:
        rsi_init(&rsi, period)
        for i in range(first, n):
            rsi_push(&rsi, x[i], &o[i])
    elif ins.op == OP_ATR:
        atr_init(&atr, period)
        for i in range(first, n):
            atr_push(&atr, x[i], y[i], z[i], &o[i])
    elif ins.op == OP_STD:
        std_init(&std, period, <int>ins.p1, ring)
        for i in range(first, n):
            if std_push(&std, x[i], v):
                o[i] = v[0]
    elif ins.op == OP_BBANDS:              # columns upper, mid, lower
        o1 = cols[ins.dst + 1]
        o2 = cols[ins.dst + 2]
        fill(o1, n, NAN)
        fill(o2, n, NAN)
        std_init(&std, period, 0, ring)
        for i in range(first, n):
            if bands_push(&std, ins.p1, x[i], v):
                o[i] = v[1]
                o1[i] = v[0]
                o2[i] = v[2]
    elif ins.op == OP_MACD:                # columns line, signal, hist
        o1 = cols[ins.dst + 1]
        o2 = cols[ins.dst + 2]
        fill(o1, n, NAN)
        fill(o2, n, NAN)
        macd_init(&macd, <int>ins.p0, <int>ins.p1, <int>ins.p2)
        for i in range(first, n):
            if macd_push(&macd, x[i], v):
                o[i] = v[0]
                o1[i] = v[1]
                o2[i] = v[2]
    elif ins.op == OP_VWAP:
        vwap_init(&vwap, period, ring, ring + period)
        for i in range(first, n):
            vwap_push(&vwap, x[i], y[i], &o[i])
    else:
        return -1
    return 0


cdef void eval_numbers(const Instr* ins, int64_t count, double** cols, int64_t n,
                       double* ring) noexcept nogil:
    """All number instructions in order; two SMAs of the same input in a row run as a pair."""
    cdef int64_t k = 0, first, i
    cdef const Instr* a
    cdef const Instr* b
    cdef SmaState sa, sb
    cdef int64_t warm
    cdef const double* x
    while k < count:
        a = &ins[k]
        b = &ins[k + 1] if k + 1 < count else NULL
        if a.op == OP_SMA and b != NULL and b.op == OP_SMA and a.a == b.a:     # rings fit: each <= max_period
            x = cols[a.a]
            first = first_finite(x, n)
            for i in range(2):
                warm = first + <int64_t>ins[k + i].p0 - 1
                fill(cols[ins[k + i].dst], warm if warm < n else n, NAN)
            sma_init(&sa, <int>a.p0, ring)
            sma_init(&sb, <int>b.p0, ring + <int64_t>a.p0)
            if first < n:
                sma_over_pair(&sa, &sb, x + first, cols[a.dst] + first, cols[b.dst] + first, n - first)
            k += 2
        else:
            eval_number(a, cols, n, ring)
            k += 1


# ---------------------------------------------------------------------------------------------
# Conditions and signals.

cdef void eval_point(const PointView* p, double** cols, uint8_t* slots, int64_t n) noexcept nogil:
    """Fill the condition slots of one point (slot k at slots + k x n)."""
    cdef int64_t k, t
    cdef const Instr* ins
    cdef const double* a
    cdef const double* b
    cdef uint8_t* o
    cdef const uint8_t* u
    cdef const uint8_t* w
    for k in range(p.n_conditions):
        ins = &p.conditions[k]
        o = slots + ins.dst * n
        if ins.op == OP_AND or ins.op == OP_OR or ins.op == OP_NOT:
            u = slots + ins.a * n
            if ins.op == OP_NOT:
                for t in range(n):
                    o[t] = u[t] ^ 1
            else:
                w = slots + ins.b * n
                if ins.op == OP_AND:
                    for t in range(n):
                        o[t] = u[t] & w[t]
                else:
                    for t in range(n):
                        o[t] = u[t] | w[t]
            continue
        a = cols[ins.a]
        b = cols[ins.b]
        if ins.op == OP_LT:
            for t in range(n):
                o[t] = a[t] < b[t]
        elif ins.op == OP_LE:
            for t in range(n):
                o[t] = a[t] <= b[t]
        elif ins.op == OP_GT:
            for t in range(n):
                o[t] = a[t] > b[t]
        elif ins.op == OP_GE:
            for t in range(n):
                o[t] = a[t] >= b[t]
        elif ins.op == OP_CROSS_ABOVE:
            if n > 0:
                o[0] = 0
            for t in range(1, n):
                o[t] = (a[t] > b[t]) & (a[t - 1] <= b[t - 1])
        elif ins.op == OP_CROSS_BELOW:
            if n > 0:
                o[0] = 0
            for t in range(1, n):
                o[t] = (a[t] < b[t]) & (a[t - 1] >= b[t - 1])


cdef inline void put(Signal* s, int64_t ts, double q, double close, uint8_t side, int32_t kind,
                     double offset) noexcept nogil:
    """One signal; a limit or stop is priced off the decision bar's close."""
    s.timestamp_ns = ts
    s.quantity = q
    s.side = side
    s.type = <uint8_t>kind
    if kind == ORDER_MARKET:
        s.price = NAN
    elif (kind == ORDER_LIMIT) == (side == SIDE_BUY):     # buy limit, sell stop: below the close
        s.price = close * (1.0 - offset)
    else:
        s.price = close * (1.0 + offset)


cdef inline int64_t next_set(const uint8_t* slot, int64_t t, int64_t n) noexcept nogil:
    """First bar >= t whose condition is true (n if none): a vectorised byte search."""
    cdef const void* hit
    if slot == NULL or t >= n:
        return n
    hit = memchr(slot + t, 1, <size_t>(n - t))
    return n if hit == NULL else <const uint8_t*>hit - slot


cdef int64_t emit_signals(const PointView* p, const uint8_t* slots, const int64_t* ts,
                          const double* close, int64_t n, Signal* out, int64_t* bars) noexcept nogil:
    """Write the point's signals (at most 2 per bar) to ``out`` (and, unless NULL, the bar of
    each to ``bars``); return how many.

    Only the bars where a side that matters in the current position is true are visited: the
    next true bar of each side is found by a byte search and kept until passed."""
    cdef const uint8_t* side[4]
    cdef int64_t nxt[4]
    cdef int64_t t = 0, m = 0, k, a, b
    cdef int pos = 0
    cdef bint long_in, short_in
    cdef double q = p.quantity, off = p.offset
    cdef int32_t kind = p.order_type
    for k in range(4):
        side[k] = slots + p.sides[k] * n if p.sides[k] >= 0 else NULL
        nxt[k] = -1
    while t < n:
        # the sides that can act now: flat: entries; long: exit_long, entry_short; short: the mirror
        if pos == 0:
            a = 0
            b = 2
        elif pos == 1:
            a = 1
            b = 2
        else:
            a = 3
            b = 0
        if nxt[a] < t:
            nxt[a] = next_set(side[a], t, n)
        if nxt[b] < t:
            nxt[b] = next_set(side[b], t, n)
        t = nxt[a] if nxt[a] < nxt[b] else nxt[b]
        if t >= n:
            break
        long_in = side[0] != NULL and side[0][t]
        short_in = side[2] != NULL and side[2][t]
        if bars != NULL:
            bars[m] = t
            bars[m + 1] = t
        if pos == 0:
            if long_in:
                put(&out[m], ts[t], q, close[t], SIDE_BUY, kind, off)
                m += 1
                pos = 1
            else:
                put(&out[m], ts[t], q, close[t], SIDE_SELL, kind, off)
                m += 1
                pos = -1
        elif pos == 1:
            put(&out[m], ts[t], q, close[t], SIDE_SELL, kind, off)
            m += 1
            pos = 0
            if short_in:
                put(&out[m], ts[t], q, close[t], SIDE_SELL, kind, off)
                m += 1
                pos = -1
        else:
            put(&out[m], ts[t], q, close[t], SIDE_BUY, kind, off)
            m += 1
            pos = 0
            if long_in:
                put(&out[m], ts[t], q, close[t], SIDE_BUY, kind, off)
                m += 1
                pos = 1
        t += 1
    return m


# ---------------------------------------------------------------------------------------------
# Python side.

def _instructions(rows) -> np.ndarray:
    arr = np.zeros(len(rows), dtype=INSTR_DTYPE)
    for i, (op, dst, a, b, c, p0, p1, p2) in enumerate(rows):
        arr[i] = (op, dst, a, b, c, 0, p0, p1, p2)
    return arr


cdef class CompiledProgram:
    """A Program's instructions as C arrays, ready for the nogil loops (one per Program)."""

    def __cinit__(self, program):
        if not isinstance(program, Program):
            raise TypeError(f"expected a rule_program.Program, got {type(program).__name__}")
        self.program = program
        self._numbers = _instructions(program.numbers)
        self.n_numbers = len(program.numbers)
        self.n_columns = program.n_columns
        self.max_period = program.max_period
        # Levels: an instruction reading only prices is level 0, others one above their inputs.
        level_of = {}
        cdef int32_t top = 0
        for i, row in enumerate(program.numbers):
            ins = [c for c in row[2:5] if c >= N_PRICES]
            level = 1 + max(level_of[c] for c in ins) if ins else 0
            width = 3 if row[0] in (OP_BBANDS, OP_MACD) else 1
            for c in range(row[1], row[1] + width):
                level_of[c] = level
            self._numbers[i]["level"] = level
            top = max(top, level + 1)
        self.n_levels = top
        self.numbers = <const Instr*>cnp.PyArray_DATA(<cnp.ndarray>self._numbers)
        self.n_points = len(program.points)
        rows = [row for point in program.points for row in point.conditions]
        self._conditions = _instructions(rows) if rows else np.zeros(1, dtype=INSTR_DTYPE)
        cdef const Instr* base = <const Instr*>cnp.PyArray_DATA(<cnp.ndarray>self._conditions)
        self.points = <PointView*>malloc(max(1, self.n_points) * sizeof(PointView))
        if self.points == NULL:
            raise MemoryError()
        cdef int64_t at = 0, k
        self.max_conditions = 1
        for k, point in enumerate(program.points):
            self.points[k].conditions = base + at
            self.points[k].n_conditions = len(point.conditions)
            for j in range(4):
                self.points[k].sides[j] = point.sides[j]
            self.points[k].order_type = point.order_type
            self.points[k].offset = point.offset_bps / 10_000.0
            self.points[k].quantity = point.quantity
            at += len(point.conditions)
            self.max_conditions = max(self.max_conditions, len(point.conditions))

    def __dealloc__(self):
        free(self.points)

    def reads(self, int column):
        """True when an instruction reads price ``column`` (1 high, 2 low, 4 volume: a path
        must then make it)."""
        return any(c == column for row in self.program.numbers for c in row[2:5])


def compile_program(program) -> CompiledProgram:
    """The C form of a rule_program.Program."""
    return program if isinstance(program, CompiledProgram) else CompiledProgram(program)


def rule_signals(bars, program, point=0):
    """The SIGNAL_DTYPE signals of ``program``'s point ``point`` on ``bars`` (a BAR_DTYPE
    array); Rule.signals compiles and runs a rule in one call."""
    return evaluate(bars, program, point)[2]


def evaluate(bars, program, point=0):
    """(number columns, condition slots, signals) of ``program``'s point ``point`` on ``bars``:
    columns[k] is column k (0..4 the prices), slots[k] condition slot k as 0/1 bytes."""
    cdef CompiledProgram prog = compile_program(program)
    if not 0 <= point < prog.n_points:
        raise ValueError(f"point {point} is not in the program's {prog.n_points} points")
    bars = np.asarray(bars)
    cdef int64_t n = bars.shape[0], k
    columns = np.empty((prog.n_columns, max(n, 1)))
    for k, name in enumerate(PRICE_COLUMNS):
        columns[k, :n] = bars[name]
    ts = np.ascontiguousarray(bars["timestamp_ns"], dtype=np.int64)
    slots = np.zeros((prog.max_conditions, max(n, 1)), dtype=np.uint8)
    out = np.empty(2 * n + 1, dtype=SIGNAL_DTYPE)
    if n == 0:
        return columns[:, :0], slots[:, :0], out[:0]
    cdef double[:, ::1] colv = columns
    cdef const int64_t[::1] tsv = ts
    cdef uint8_t[:, ::1] slotv = slots
    cdef Signal* sig = <Signal*>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef double** cols = <double**>malloc(prog.n_columns * sizeof(double*))
    cdef double* ring = <double*>malloc(2 * prog.max_period * sizeof(double))
    cdef int64_t m = 0
    cdef PointView* p = &prog.points[point]
    if cols == NULL or ring == NULL:
        free(cols)
        free(ring)
        raise MemoryError()
    try:
        with nogil:
            for k in range(prog.n_columns):
                cols[k] = &colv[k, 0]
            eval_numbers(prog.numbers, prog.n_numbers, cols, n, ring)
            eval_point(p, cols, &slotv[0, 0], n)
            m = emit_signals(p, &slotv[0, 0], &tsv[0], &colv[3, 0], n, sig, NULL)
    finally:
        free(cols)
        free(ring)
    return columns, slots, out[:m].copy()
