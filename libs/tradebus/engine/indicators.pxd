# Indicators (indicators.pyx): the state of each indicator is a C struct and one step of it an
# inline nogil function here, so the streaming classes, the vectorised functions and the signal
# rules (rules.pyx) all run the same code. ``*_push`` stores the value(s) in out and returns True
# once warm. Rings (SMA, RollingStd, VWAP) are owned by whoever fills the struct.
from libc.math cimport fabs, sqrt
from libc.stdint cimport int64_t


cdef inline void add_compensated(double* total, double* comp, double x) noexcept nogil:
    """Neumaier summation: total + comp carries the sum with its rounding error."""
    cdef double t = total[0] + x
    if fabs(total[0]) >= fabs(x):
        comp[0] += (total[0] - t) + x
    else:
        comp[0] += (x - t) + total[0]
    total[0] = t


cdef inline void add_compensated_nb(double* total, double* comp, double x) noexcept nogil:
    """add_compensated with both branches computed and one selected (same result, no
    unpredictable branch)."""
    cdef double s = total[0], t = s + x
    cdef double big = (s - t) + x, small = (x - t) + s
    comp[0] += big if fabs(s) >= fabs(x) else small
    total[0] = t


cdef struct SmaState:
    int period
    int at
    int64_t count
    double total
    double comp
    double* ring            # period values

cdef struct EmaState:
    int period
    double alpha
    int64_t count
    double value

cdef struct RsiState:
    int period
    int64_t count
    double prev
    double gain
    double loss

cdef struct AtrState:
    int period
    int64_t count
    double prev_close
    double value

cdef struct StdState:
    int period
    int ddof
    int at
    int64_t count
    double center
    double s1
    double s2
    double* ring            # period values

cdef struct MacdState:
    EmaState fast
    EmaState slow
    EmaState signal

cdef struct VwapState:
    int period              # 0: cumulative
    int at
    int64_t count
    double pv
    double pv_comp
    double v
    double v_comp
    double* prices          # period values each (when period > 0)
    double* volumes


cdef inline void sma_init(SmaState* s, int period, double* ring) noexcept nogil:
    s.period = period
    s.at = 0
    s.count = 0
    s.total = 0.0
    s.comp = 0.0
    s.ring = ring


cdef inline bint sma_push(SmaState* s, double x, double* out) noexcept nogil:
    # Once full, the window's sum moves by one compensated addition of (new - oldest).
    add_compensated(&s.total, &s.comp, x - s.ring[s.at] if s.count >= s.period else x)
    s.ring[s.at] = x
    s.at = s.at + 1 if s.at + 1 < s.period else 0
    s.count += 1
    if s.count < s.period:
        return False
    out[0] = (s.total + s.comp) / s.period
    return True


cdef inline void sma_over(SmaState* s, const double* x, double* o, Py_ssize_t n) noexcept nogil:
    """sma_push over x[0..n-1] into o (left as is while not warm), inlined and branch-free."""
    cdef int period = s.period, at = s.at
    cdef int64_t count = s.count
    cdef double total = s.total, comp = s.comp, v
    cdef double* ring = s.ring
    cdef Py_ssize_t i
    for i in range(n):
        v = x[i]
        add_compensated_nb(&total, &comp, v - ring[at] if count >= period else v)
        ring[at] = v
        at = at + 1 if at + 1 < period else 0
        count += 1
        if count >= period:
            o[i] = (total + comp) / period
    s.at = at
    s.count = count
    s.total = total
    s.comp = comp


cdef inline void sma_over_pair(SmaState* s, SmaState* r, const double* x, double* o, double* p,
                               Py_ssize_t n) noexcept nogil:
    """sma_over of two windows over the same x at once (into o and p): the same steps, each
    SMA's chain of dependent additions overlapping the other's."""
    cdef int ps = s.period, pr = r.period, ats = s.at, atr = r.at
    cdef int64_t cs = s.count, cr = r.count
    cdef double ts = s.total, qs = s.comp, tr = r.total, qr = r.comp, v
    cdef double* rs = s.ring
    cdef double* rr = r.ring
    cdef Py_ssize_t i
    for i in range(n):
        v = x[i]
        add_compensated_nb(&ts, &qs, v - rs[ats] if cs >= ps else v)
        add_compensated_nb(&tr, &qr, v - rr[atr] if cr >= pr else v)
        rs[ats] = v
        rr[atr] = v
        ats = ats + 1 if ats + 1 < ps else 0
        atr = atr + 1 if atr + 1 < pr else 0
        cs += 1
        cr += 1
        if cs >= ps:
            o[i] = (ts + qs) / ps
        if cr >= pr:
            p[i] = (tr + qr) / pr
    s.at = ats
    s.count = cs
    s.total = ts
    s.comp = qs
    r.at = atr
    r.count = cr
    r.total = tr
    r.comp = qr


cdef inline void ema_init(EmaState* s, int period) noexcept nogil:
    s.period = period
    s.alpha = 2.0 / (period + 1.0)
    s.count = 0
    s.value = 0.0


cdef inline bint ema_push(EmaState* s, double x, double* out) noexcept nogil:
    s.count += 1
    if s.count <= s.period:
        s.value += x
        if s.count < s.period:
            return False
        s.value /= s.period
    else:
        s.value += s.alpha * (x - s.value)
    out[0] = s.value
    return True


cdef inline void rsi_init(RsiState* s, int period) noexcept nogil:
    s.period = period
    s.count = 0
    s.prev = 0.0
    s.gain = 0.0
    s.loss = 0.0


cdef inline bint rsi_push(RsiState* s, double x, double* out) noexcept nogil:
    cdef double change, up, down
    s.count += 1
    if s.count == 1:
        s.prev = x
        return False
    change = x - s.prev
    s.prev = x
    up = change if change > 0.0 else 0.0
    down = -change if change < 0.0 else 0.0
    if s.count <= s.period + 1:
        s.gain += up
        s.loss += down
        if s.count <= s.period:
            return False
        s.gain /= s.period
        s.loss /= s.period
    else:
        s.gain = (s.gain * (s.period - 1) + up) / s.period
        s.loss = (s.loss * (s.period - 1) + down) / s.period
    out[0] = 100.0 * s.gain / (s.gain + s.loss) if s.gain + s.loss > 0.0 else 50.0
    return True


cdef inline void atr_init(AtrState* s, int period) noexcept nogil:
    s.period = period
    s.count = 0
    s.prev_close = 0.0
    s.value = 0.0


cdef inline bint atr_push(AtrState* s, double high, double low, double close, double* out) noexcept nogil:
    cdef double tr = high - low, gap
    if s.count > 0:
        gap = fabs(high - s.prev_close)
        tr = gap if gap > tr else tr
        gap = fabs(low - s.prev_close)
        tr = gap if gap > tr else tr
    s.prev_close = close
    s.count += 1
    if s.count <= s.period:
        s.value += tr
        if s.count < s.period:
            return False
        s.value /= s.period
    else:
        s.value = (s.value * (s.period - 1) + tr) / s.period
    out[0] = s.value
    return True


cdef inline void std_init(StdState* s, int period, int ddof, double* ring) noexcept nogil:
    s.period = period
    s.ddof = ddof
    s.at = 0
    s.count = 0
    s.center = 0.0
    s.s1 = 0.0
    s.s2 = 0.0
    s.ring = ring


cdef inline bint std_push(StdState* s, double x, double* out) noexcept nogil:
    """out[0] the standard deviation, out[1] the mean of the window."""
    # Sums of deviations from a centre near the window's mean; re-centred exactly each time
    # the ring wraps, so rounding cannot build up and a flat window gives exactly 0.
    cdef double t, old, var
    cdef int i
    if s.count == 0:
        s.center = x
    t = x - s.center
    if s.count >= s.period:
        old = s.ring[s.at] - s.center
        s.s1 += t - old
        s.s2 += t * t - old * old
    else:
        s.s1 += t
        s.s2 += t * t
        s.count += 1
    s.ring[s.at] = x
    s.at = s.at + 1 if s.at + 1 < s.period else 0
    if s.count < s.period:
        return False
    if s.at == 0:
        t = 0.0
        for i in range(s.period):
            t += s.ring[i]
        s.center = t / s.period
        s.s1 = 0.0
        s.s2 = 0.0
        for i in range(s.period):
            t = s.ring[i] - s.center
            s.s1 += t
            s.s2 += t * t
    var = (s.s2 - s.s1 * s.s1 / s.period) / (s.period - s.ddof)
    out[0] = sqrt(var) if var > 0.0 else 0.0
    out[1] = s.center + s.s1 / s.period
    return True


cdef inline bint bands_push(StdState* s, double k, double x, double* out) noexcept nogil:
    """Bollinger (middle, upper, lower) into out[0..2]."""
    cdef double m[2]
    if not std_push(s, x, m):
        return False
    out[0] = m[1]
    out[1] = m[1] + k * m[0]
    out[2] = m[1] - k * m[0]
    return True


cdef inline void macd_init(MacdState* s, int fast, int slow, int signal) noexcept nogil:
    ema_init(&s.fast, fast)
    ema_init(&s.slow, slow)
    ema_init(&s.signal, signal)


cdef inline bint macd_push(MacdState* s, double x, double* out) noexcept nogil:
    """(line, signal, histogram) into out[0..2]."""
    cdef double f, sl, line, sig
    ema_push(&s.fast, x, &f)
    if not ema_push(&s.slow, x, &sl):
        return False
    line = f - sl
    if not ema_push(&s.signal, line, &sig):
        return False
    out[0] = line
    out[1] = sig
    out[2] = line - sig
    return True


cdef inline void vwap_init(VwapState* s, int period, double* prices, double* volumes) noexcept nogil:
    s.period = period
    s.at = 0
    s.count = 0
    s.pv = 0.0
    s.pv_comp = 0.0
    s.v = 0.0
    s.v_comp = 0.0
    s.prices = prices
    s.volumes = volumes


cdef inline bint vwap_push(VwapState* s, double price, double volume, double* out) noexcept nogil:
    cdef double v
    if s.period:
        if s.count >= s.period:
            add_compensated(&s.pv, &s.pv_comp, -s.prices[s.at] * s.volumes[s.at])
            add_compensated(&s.v, &s.v_comp, -s.volumes[s.at])
        s.prices[s.at] = price
        s.volumes[s.at] = volume
        s.at = s.at + 1 if s.at + 1 < s.period else 0
    s.count += 1
    add_compensated(&s.pv, &s.pv_comp, price * volume)
    add_compensated(&s.v, &s.v_comp, volume)
    v = s.v + s.v_comp
    if s.count < s.period or not (v > 0.0):
        return False
    out[0] = (s.pv + s.pv_comp) / v
    return True


# The streaming classes: each holds its state struct.
cdef class SingleInput:
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class SMA(SingleInput):
    cdef readonly int period
    cdef SmaState st

cdef class EMA(SingleInput):
    cdef readonly int period
    cdef readonly double alpha
    cdef EmaState st

cdef class RSI(SingleInput):
    cdef readonly int period
    cdef RsiState st

cdef class ATR:
    cdef readonly int period
    cdef AtrState st
    cdef bint push(self, double high, double low, double close, double* out) noexcept nogil

cdef class RollingStd:
    cdef readonly int period
    cdef readonly int ddof
    cdef StdState st
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class Bollinger:
    cdef readonly double k
    cdef RollingStd _std
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class MACD:
    cdef MacdState st
    cdef bint push(self, double x, double* out) noexcept nogil

cdef class VWAP:
    cdef readonly int period            # 0: cumulative since the first update
    cdef VwapState st
    cdef bint push(self, double price, double volume, double* out) noexcept nogil
