"""Compiled indicators, streaming (``SMA(n).update(x)``, None until warm, O(1) per update) and
vectorised (``sma(values, n)``, NaN until warm). Both run the same code, so they agree exactly.

Definitions (n = period):

* SMA: mean of the last n values (a compensated running sum over a ring buffer, moved by
  new - oldest once full).
* EMA: seeded with the SMA of the first n values, then ema += alpha x (x - ema), alpha = 2 / (n + 1).
* RSI (Wilder): average gain and loss seeded with the mean of the first n changes, then
  avg = (avg x (n - 1) + change) / n; RSI = 100 x gain / (gain + loss), 50 when both are 0.
  First value after n + 1 prices.
* ATR (Wilder): true range max(high - low, |high - prev close|, |low - prev close|) (high - low
  for the first bar), seeded with the mean of the first n, then (atr x (n - 1) + tr) / n.
* RollingStd: standard deviation of the last n values with ``ddof`` (0: population). Kept as
  sums of deviations from a centre that is recomputed exactly every n updates: O(1) amortised.
* Bollinger: (middle, upper, lower) = (mean, mean + k x std, mean - k x std) of the last n values,
  population std.
* MACD: line = EMA(fast) - EMA(slow); signal = EMA(signal) of the line; histogram = line - signal.
  Values once the signal EMA is warm.
* VWAP: sum(price x volume) / sum(volume), cumulative (period=None) or over the last n updates;
  None while the volume summed is 0. Pass the typical price (h + l + c) / 3 for bar VWAP.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

import numpy as np

__all__ = ["SMA", "EMA", "RSI", "ATR", "RollingStd", "Bollinger", "MACD", "VWAP",
           "sma", "ema", "rsi", "atr", "rolling_std", "bollinger", "macd", "vwap"]


cdef inline bint finite(double x) noexcept nogil:
    return -INFINITY < x < INFINITY


cdef int _period(object n, str name) except -1:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


cdef double* _ring(int n) except NULL:
    cdef double* ring = <double*>malloc(n * sizeof(double))
    if ring == NULL:
        raise MemoryError()
    return ring


def _check(double x, str what="x"):
    if not finite(x):
        raise ValueError(f"{what} must be finite, got {x!r}")


cdef class SingleInput:
    """Base of the indicators that take one value and give one (SMA, EMA, RSI)."""

    cdef bint push(self, double x, double* out) noexcept nogil:
        return False


cdef class SMA(SingleInput):
    """Simple moving average over ``period`` values.

    >>> s = SMA(2)
    >>> s.update(1.0), s.update(3.0), s.update(5.0)
    (None, 2.0, 4.0)
    """

    def __cinit__(self, period):
        self.period = _period(period, "period")
        sma_init(&self.st, self.period, _ring(self.period))

    def __dealloc__(self):
        free(self.st.ring)

    cdef bint push(self, double x, double* out) noexcept nogil:
        return sma_push(&self.st, x, out)

    def update(self, double x):
        """Add a value; the average once ``period`` values were seen, else None."""
        cdef double out
        _check(x)
        return out if self.push(x, &out) else None


cdef class EMA(SingleInput):
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the first SMA.

    >>> e = EMA(3)
    >>> e.update(1.0), e.update(2.0), e.update(3.0), e.update(6.0)
    (None, None, 2.0, 4.0)
    """

    def __cinit__(self, period):
        self.period = _period(period, "period")
        ema_init(&self.st, self.period)
        self.alpha = self.st.alpha

    cdef bint push(self, double x, double* out) noexcept nogil:
        return ema_push(&self.st, x, out)

    def update(self, double x):
        """Add a value; the EMA once ``period`` values were seen, else None."""
        cdef double out
        _check(x)
        return out if self.push(x, &out) else None


cdef class RSI(SingleInput):
    """Wilder's relative strength index (0..100).

    >>> r = RSI(2)
    >>> r.update(1.0), r.update(2.0), r.update(1.5)
    (None, None, 66.66666666666667)
    """

    def __cinit__(self, period=14):
        self.period = _period(period, "period")
        rsi_init(&self.st, self.period)

    cdef bint push(self, double x, double* out) noexcept nogil:
        return rsi_push(&self.st, x, out)

    def update(self, double x):
        """Add a price; the RSI once ``period`` changes were seen, else None."""
        cdef double out
        _check(x)
        return out if self.push(x, &out) else None


cdef class ATR:
    """Wilder's average true range.

    >>> a = ATR(2)
    >>> a.update(11.0, 9.0, 10.0), a.update(12.0, 10.0, 11.0), a.update(11.0, 10.0, 10.5)
    (None, 2.0, 1.5)
    """

    def __cinit__(self, period=14):
        self.period = _period(period, "period")
        atr_init(&self.st, self.period)

    cdef bint push(self, double high, double low, double close, double* out) noexcept nogil:
        return atr_push(&self.st, high, low, close, out)

    def update(self, double high, double low, double close):
        """Add a bar; the ATR once ``period`` bars were seen, else None."""
        cdef double out
        _check(high, "high")
        _check(low, "low")
        _check(close, "close")
        if high < low:
            raise ValueError(f"high {high!r} is below low {low!r}")
        return out if self.push(high, low, close, &out) else None


cdef class RollingStd:
    """Standard deviation of the last ``period`` values (ddof=0: population).

    >>> s = RollingStd(2)
    >>> s.update(1.0), s.update(3.0), s.update(3.0)
    (None, 1.0, 0.0)
    """

    def __cinit__(self, period, ddof=0):
        self.period = _period(period, "period")
        if ddof not in (0, 1) or ddof >= self.period:
            raise ValueError(f"ddof must be 0 or 1 and below period, got {ddof!r}")
        self.ddof = ddof
        std_init(&self.st, self.period, self.ddof, _ring(self.period))

    def __dealloc__(self):
        free(self.st.ring)

    cdef bint push(self, double x, double* out) noexcept nogil:
        return std_push(&self.st, x, out)

    def update(self, double x):
        """Add a value; the standard deviation once ``period`` values were seen, else None."""
        cdef double out[2]
        _check(x)
        return out[0] if self.push(x, out) else None


cdef class Bollinger:
    """Bollinger bands: (middle, upper, lower) = mean +- k population std of ``period`` values.

    >>> b = Bollinger(2, k=2.0)
    >>> b.update(1.0), b.update(3.0)
    (None, (2.0, 4.0, 0.0))
    """

    def __cinit__(self, period=20, k=2.0):
        self._std = RollingStd(period)
        self.k = float(k)
        if not (self.k >= 0 and finite(self.k)):
            raise ValueError(f"k must be finite and >= 0, got {k!r}")

    @property
    def period(self):
        return self._std.period

    cdef bint push(self, double x, double* out) noexcept nogil:
        return bands_push(&self._std.st, self.k, x, out)

    def update(self, double x):
        """Add a value; (middle, upper, lower) once ``period`` values were seen, else None."""
        cdef double out[3]
        _check(x)
        return (out[0], out[1], out[2]) if self.push(x, out) else None


cdef class MACD:
    """MACD line, signal line and histogram.

    >>> m = MACD(2, 3, 2)
    >>> [m.update(x) for x in (1.0, 2.0, 3.0, 4.0)][-1]
    (0.5, 0.5, 0.0)
    """

    def __cinit__(self, fast=12, slow=26, signal=9):
        fast = _period(fast, "fast")
        slow = _period(slow, "slow")
        if fast >= slow:
            raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
        macd_init(&self.st, fast, slow, _period(signal, "signal"))

    @property
    def periods(self):
        return self.st.fast.period, self.st.slow.period, self.st.signal.period

    cdef bint push(self, double x, double* out) noexcept nogil:
        return macd_push(&self.st, x, out)

    def update(self, double x):
        """Add a value; (macd, signal, histogram) once the signal EMA is warm, else None."""
        cdef double out[3]
        _check(x)
        return (out[0], out[1], out[2]) if self.push(x, out) else None


cdef class VWAP:
    """Volume-weighted average price, cumulative (period=None) or over the last ``period`` updates.

    >>> v = VWAP()
    >>> v.update(10.0, 0.0), v.update(10.0, 1.0), v.update(20.0, 3.0)
    (None, 10.0, 17.5)
    """

    def __cinit__(self, period=None):
        self.period = 0 if period is None else _period(period, "period")
        vwap_init(&self.st, self.period, NULL, NULL)
        if self.period:
            self.st.prices = _ring(self.period)
            self.st.volumes = _ring(self.period)

    def __dealloc__(self):
        free(self.st.prices)
        free(self.st.volumes)

    cdef bint push(self, double price, double volume, double* out) noexcept nogil:
        return vwap_push(&self.st, price, volume, out)

    def update(self, double price, double volume):
        """Add a trade or bar; the VWAP once volume was seen (and ``period`` updates), else None."""
        cdef double out
        _check(price, "price")
        _check(volume, "volume")
        if volume < 0:
            raise ValueError(f"volume must be >= 0, got {volume!r}")
        return out if self.push(price, volume, &out) else None


# ---------------------------------------------------------------------------------------------
# Vectorised forms: the streaming state run over an array in C.

def _series(values, str what="values"):
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{what} row {row}: {arr[row].item()!r} is not finite")
    return arr


cdef object _over(SingleInput state, values):
    """Run a one-in, one-out indicator over an array; NaN where it is not warm."""
    cdef const double[::1] x = _series(values)
    out = np.full(x.shape[0], np.nan)
    cdef double[::1] o = out
    cdef Py_ssize_t i
    if type(state) is SMA and x.shape[0] > 0:
        with nogil:
            sma_over(&(<SMA>state).st, &x[0], &o[0], x.shape[0])
        return out
    with nogil:
        for i in range(x.shape[0]):
            state.push(x[i], &o[i])
    return out


def sma(values, period):
    """Simple moving average; NaN for the first period - 1 values.

    >>> sma([1.0, 3.0, 5.0], 2).tolist()
    [nan, 2.0, 4.0]
    """
    return _over(SMA(period), values)


def ema(values, period):
    """Exponential moving average seeded with the first SMA; NaN before.

    >>> ema([1.0, 2.0, 3.0, 6.0], 3).tolist()
    [nan, nan, 2.0, 4.0]
    """
    return _over(EMA(period), values)


def rsi(values, period=14):
    """Wilder's RSI; NaN for the first ``period`` values.

    >>> rsi([1.0, 2.0, 1.5], 2).tolist()
    [nan, nan, 66.66666666666667]
    """
    return _over(RSI(period), values)


def atr(highs, lows, closes, period=14):
    """Wilder's average true range; NaN for the first period - 1 bars.

    >>> atr([11.0, 12.0, 11.0], [9.0, 10.0, 10.0], [10.0, 11.0, 10.5], 2).tolist()
    [nan, 2.0, 1.5]
    """
    cdef ATR state = ATR(period)
    cdef const double[::1] h = _series(highs, "highs")
    cdef const double[::1] l = _series(lows, "lows")
    cdef const double[::1] c = _series(closes, "closes")
    if not (h.shape[0] == l.shape[0] == c.shape[0]):
        raise ValueError(f"highs, lows and closes differ in length ({h.shape[0]}, {l.shape[0]}, {c.shape[0]})")
    bad = np.asarray(h) < np.asarray(l)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"row {row}: high {h[row]} is below low {l[row]}")
    out = np.full(h.shape[0], np.nan)
    cdef double[::1] o = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(h.shape[0]):
            state.push(h[i], l[i], c[i], &o[i])
    return out


def rolling_std(values, period, ddof=0):
    """Rolling standard deviation over ``period`` values; NaN for the first period - 1.

    >>> rolling_std([1.0, 3.0, 3.0], 2).tolist()
    [nan, 1.0, 0.0]
    """
    cdef RollingStd state = RollingStd(period, ddof)
    cdef const double[::1] x = _series(values)
    out = np.full(x.shape[0], np.nan)
    cdef double[::1] o = out
    cdef double s[2]
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            if state.push(x[i], s):
                o[i] = s[0]
    return out


def bollinger(values, period=20, k=2.0):
    """Bollinger bands as three arrays (middle, upper, lower); NaN for the first period - 1.

    >>> [b.tolist() for b in bollinger([1.0, 3.0], 2)]
    [[nan, 2.0], [nan, 4.0], [nan, 0.0]]
    """
    cdef Bollinger state = Bollinger(period, k)
    cdef const double[::1] x = _series(values)
    out = np.full((3, x.shape[0]), np.nan)
    cdef double[:, ::1] o = out
    cdef double b[3]
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            if state.push(x[i], b):
                o[0, i] = b[0]
                o[1, i] = b[1]
                o[2, i] = b[2]
    return out[0], out[1], out[2]


def macd(values, fast=12, slow=26, signal=9):
    """MACD as three arrays (line, signal, histogram); NaN until the signal EMA is warm.

    >>> [m.tolist()[-1] for m in macd([1.0, 2.0, 3.0, 4.0], 2, 3, 2)]
    [0.5, 0.5, 0.0]
    """
    cdef MACD state = MACD(fast, slow, signal)
    cdef const double[::1] x = _series(values)
    out = np.full((3, x.shape[0]), np.nan)
    cdef double[:, ::1] o = out
    cdef double m[3]
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            if state.push(x[i], m):
                o[0, i] = m[0]
                o[1, i] = m[1]
                o[2, i] = m[2]
    return out[0], out[1], out[2]


def vwap(prices, volumes, period=None):
    """VWAP, cumulative (period=None) or rolling; NaN while no volume (or fewer than ``period``).

    >>> vwap([10.0, 10.0, 20.0], [0.0, 1.0, 3.0]).tolist()
    [nan, 10.0, 17.5]
    """
    cdef VWAP state = VWAP(period)
    cdef const double[::1] p = _series(prices, "prices")
    cdef const double[::1] v = _series(volumes, "volumes")
    if p.shape[0] != v.shape[0]:
        raise ValueError(f"prices and volumes differ in length ({p.shape[0]}, {v.shape[0]})")
    bad = np.asarray(v) < 0
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"volumes row {row}: {v[row]} is negative")
    out = np.full(p.shape[0], np.nan)
    cdef double[::1] o = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(p.shape[0]):
            state.push(p[i], v[i], &o[i])
    return out
