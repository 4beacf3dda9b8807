"""Venue models of the simulators: what a fill costs, how long messages travel, where an order
waits in the queue. Small objects passed in, not constants in the matching loop (hftbacktest's
``backtest/models/{fee,latency,queue}``, NautilusTrader's ``backtest/models``).

* :class:`FeeModel`: maker and taker rates (fraction of notional; a negative maker rate is a
  rebate), with per-symbol overrides.
* :class:`ConstantLatency` / :class:`RecordedLatency`: order entry latency (strategy -> venue)
  and response latency (venue -> strategy), constant or drawn from recorded samples with a seed.
* :class:`NoQueue` / :class:`RiskAverseQueue` / :class:`ProbQueue`: how much of a trade at a
  resting order's own price reaches it. A trade *through* the price (below a buy, above a sell)
  always fills the order; the queue model decides only about trades *at* the price.

The event backtester (:mod:`tradebus.engine.event_sim`) takes one of each; the sim venue
(``tradebus.services.sim_exchange``) tracks its resting orders with :class:`QueuePosition`,
the same queue code.
"""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, isnan, pow
from libc.stdint cimport int64_t, uint64_t

import numpy as np

__all__ = [
    "FeeModel", "LatencyModel", "ConstantLatency", "RecordedLatency", "QueueModel", "NoQueue",
    "RiskAverseQueue", "ProbQueue", "QueuePosition",
]


def _key(name):
    """A symbol name without case or separators: BTC/USDT, btc-usdt and BTCUSDT are one."""
    return "".join(ch for ch in str(name).upper() if ch.isalnum())


def _symbol_keys(symbol):
    """Keys an override may match ``symbol`` by: its name, unified form and str()."""
    keys = {_key(symbol)}
    for attr in ("name", "unified"):
        value = getattr(symbol, attr, None)
        if value:
            keys.add(_key(value))
    return keys


def _check_rate(value, what, bint maker):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not ((-1.0 < x < 1.0) if maker else (0.0 <= x < 1.0)):
        raise ValueError(f"{what} must be in {'(-1, 1)' if maker else '[0, 1)'}, got {value!r}")
    return x


# ---------------------------------------------------------------------------------------------
# Fees

cdef class FeeModel:
    """Fee of a fill = rate x qty x price, the rate being ``maker_rate`` for fills of resting
    orders and ``taker_rate`` otherwise. ``overrides`` maps a symbol (its name, e.g.
    ``"BTCUSDT"``, or unified ``"BTC/USDT"``; case and separators do not matter) to
    ``(maker_rate, taker_rate)``.

    >>> fees = FeeModel(maker_rate=0.0002, taker_rate=0.0004, overrides={"ETHUSDT": (0.0, 0.001)})
    >>> fees.fee("BTCUSDT", 2.0, 100.0, maker=False), fees.fee("ETHUSDT", 2.0, 100.0, maker=False)
    (0.08, 0.2)
    """

    def __cinit__(self, *args, **kwargs):
        self._maker = NULL
        self._taker = NULL
        self._n = 0

    def __dealloc__(self):
        PyMem_Free(self._maker)
        PyMem_Free(self._taker)

    def __init__(self, maker_rate=0.0, taker_rate=0.0, overrides=None):
        self.taker_rate = _check_rate(taker_rate, "taker_rate", False)
        self.maker_rate = _check_rate(maker_rate, "maker_rate", True)
        self.overrides = {}
        for symbol, rates in (overrides or {}).items():
            try:
                maker, taker = rates
            except (TypeError, ValueError):
                raise ValueError(f"fee override of {symbol!r} must be (maker_rate, taker_rate), "
                                 f"got {rates!r}") from None
            self.overrides[str(symbol)] = (_check_rate(maker, f"maker_rate of {symbol}", True),
                                           _check_rate(taker, f"taker_rate of {symbol}", False))

    def rates_of(self, symbol):
        """(maker_rate, taker_rate) that apply to ``symbol``."""
        keys = _symbol_keys(symbol)
        for name, rates in self.overrides.items():
            if _key(name) in keys:
                return rates
        return self.maker_rate, self.taker_rate

    def check_symbols(self, symbols):
        """Raise ValueError when an override names none of ``symbols`` (a typo)."""
        known = set()
        for symbol in symbols:
            known |= _symbol_keys(symbol)
        unknown = sorted(name for name in self.overrides if _key(name) not in known)
        if unknown:
            raise ValueError(f"fee overrides for {unknown}, which are not among the symbols "
                             f"{sorted(str(s) for s in symbols)}")

    def for_symbols(self, symbols):
        """A copy whose compiled ``rate_at(i, ...)`` knows the rates of ``symbols[i]`` (a run's
        symbol indexes)."""
        cdef FeeModel out = FeeModel(self.maker_rate, self.taker_rate, self.overrides)
        cdef Py_ssize_t i, n = len(symbols)
        out._maker = <double*>PyMem_Malloc(max(n, 1) * sizeof(double))
        out._taker = <double*>PyMem_Malloc(max(n, 1) * sizeof(double))
        if out._maker == NULL or out._taker == NULL:
            raise MemoryError()
        for i in range(n):
            out._maker[i], out._taker[i] = self.rates_of(symbols[i])
        out._n = n
        return out

    cdef double rate_at(self, int32_t sym, bint maker) noexcept:
        if 0 <= sym < self._n:
            return self._maker[sym] if maker else self._taker[sym]
        return self.maker_rate if maker else self.taker_rate

    cdef double fill_fee(self, int32_t sym, double qty, double price, bint maker) noexcept:
        return self.rate_at(sym, maker) * qty * price

    def fee(self, symbol, double qty, double price, bint maker=False):
        """Fee of a fill of ``qty`` at ``price`` on ``symbol`` (quote currency)."""
        maker_rate, taker_rate = self.rates_of(symbol)
        return (maker_rate if maker else taker_rate) * qty * price

    def __repr__(self):
        return (f"FeeModel(maker_rate={self.maker_rate}, taker_rate={self.taker_rate}"
                f"{', overrides=' + repr(self.overrides) if self.overrides else ''})")


# ---------------------------------------------------------------------------------------------
# Latency

cdef class LatencyModel:
    """Base of the latency models: ``entry`` is how long a request (new order, cancel, modify)
    takes to reach the venue, ``response`` how long the venue's report (ack, fill, cancel) takes
    to reach the strategy, both in ns. Requests never overtake each other, nor do reports (one
    connection each way). ``fresh()`` gives the model a run starts with (random ones restart
    from their seed, so two runs of one backtest agree)."""

    cdef int64_t entry(self, int64_t now) noexcept:
        return 0

    cdef int64_t response(self, int64_t now) noexcept:
        return 0

    cdef bint has_response(self) noexcept:
        return False

    def fresh(self):
        return self

    def sample_entry(self, int64_t now=0):
        """The next order entry latency (ns)."""
        return self.entry(now)

    def sample_response(self, int64_t now=0):
        """The next response latency (ns)."""
        return self.response(now)


cdef class ConstantLatency(LatencyModel):
    """The same ``entry_ns`` for every request and ``response_ns`` for every report."""

    def __init__(self, entry_ns=0, response_ns=0):
        for name, value in (("entry_ns", entry_ns), ("response_ns", response_ns)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.entry_ns = entry_ns
        self.response_ns = response_ns

    cdef int64_t entry(self, int64_t now) noexcept:
        return self.entry_ns

    cdef int64_t response(self, int64_t now) noexcept:
        return self.response_ns

    cdef bint has_response(self) noexcept:
        return self.response_ns > 0

    def __repr__(self):
        return f"ConstantLatency(entry_ns={self.entry_ns}, response_ns={self.response_ns})"


def _samples(values, what):
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError(f"{what} must be a non-empty 1-d sequence of ns, got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise ValueError(f"{what} must be whole nanoseconds, got dtype {arr.dtype}")
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if (out < 0).any():
        raise ValueError(f"{what} must be >= 0, got {int(out.min())}")
    return out


cdef class RecordedLatency(LatencyModel):
    """Latencies drawn, uniformly and with replacement, from recorded samples (ns): each
    request takes one of ``entry_ns``, each report one of ``response_ns`` (no response delay
    when None). Draws come from a SplitMix64 stream seeded with ``seed``, one draw per latency
    in the order they are asked for: sample index = draw mod len(samples). The same samples
    and seed give the same latencies; ``fresh()`` restarts the stream.
    """

    def __init__(self, entry_ns, response_ns=None, seed=0):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.entry_samples = _samples(entry_ns, "entry_ns")
        self.response_samples = None if response_ns is None else _samples(response_ns, "response_ns")
        self.seed = seed
        self._entry = self.entry_samples
        if self.response_samples is not None:
            self._response = self.response_samples
        self._state = self.seed

    cdef uint64_t _next(self) noexcept:
        cdef uint64_t z
        self._state += 0x9E3779B97F4A7C15ULL
        z = self._state
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
        return z ^ (z >> 31)

    cdef int64_t entry(self, int64_t now) noexcept:
        return self._entry[<Py_ssize_t>(self._next() % <uint64_t>self._entry.shape[0])]

    cdef int64_t response(self, int64_t now) noexcept:
        if self.response_samples is None:
            return 0
        return self._response[<Py_ssize_t>(self._next() % <uint64_t>self._response.shape[0])]

    cdef bint has_response(self) noexcept:
        return self.response_samples is not None

    def fresh(self):
        return RecordedLatency(self.entry_samples, self.response_samples, self.seed)

    def __repr__(self):
        return (f"RecordedLatency({len(self.entry_samples)} entry samples, "
                f"{0 if self.response_samples is None else len(self.response_samples)} response "
                f"samples, seed={self.seed})")


# ---------------------------------------------------------------------------------------------
# Queue position

cdef class QueueModel:
    """Base of the queue models. An order that starts resting ``join``s its level with the
    quantity already there ahead of it; each trade at its price goes through ``trade``, which
    returns how much of our order it executes (0 if the queue ahead absorbed it; callers cap it
    at what the order has left); ``depth`` sees the level's quantity change (cancels and
    additions by others); ``consumed`` takes out quantity ahead that the venue's own takers
    traded and the level already shows gone. The state lives in the caller's QueuePos, so one
    model serves every order."""

    cdef void join(self, QueuePos* q, double level_qty) noexcept:
        q.ahead = level_qty if level_qty > 0.0 else 0.0
        q.traded = 0.0

    cdef double trade(self, QueuePos* q, double qty) noexcept:
        return 0.0

    cdef void depth(self, QueuePos* q, double prev_qty, double new_qty) noexcept:
        pass

    cdef void consumed(self, QueuePos* q, double qty) noexcept:
        q.ahead = q.ahead - qty if q.ahead > qty else 0.0


cdef class NoQueue(QueueModel):
    """No queue position. ``touch=False`` (the default): a trade at the order's price never
    fills it, only one through it does; ``touch=True``: a trade at the price fills it
    completely, whatever its size."""

    def __init__(self, bint touch=False):
        self.touch = touch
        self.tracks_depth = False

    cdef double trade(self, QueuePos* q, double qty) noexcept:
        return INFINITY if self.touch else 0.0

    def __repr__(self):
        return f"NoQueue(touch={bool(self.touch)})"


cdef class RiskAverseQueue(QueueModel):
    """hftbacktest's risk-averse queue: the order joins behind the level's whole quantity;
    trades at its price eat the queue ahead first, and what is left of them fills the order;
    a level that shrinks (cancels) only moves the order up when it falls below the quantity
    ahead (everyone who cancelled was behind us)."""

    def __init__(self):
        self.tracks_depth = True

    cdef double trade(self, QueuePos* q, double qty) noexcept:
        q.ahead -= qty
        q.traded += qty
        if q.ahead < 0.0:
            qty = -q.ahead
            q.ahead = 0.0
            return qty
        return 0.0

    cdef void depth(self, QueuePos* q, double prev_qty, double new_qty) noexcept:
        if new_qty < q.ahead:
            q.ahead = new_qty if new_qty > 0.0 else 0.0
        q.traded = 0.0

    def __repr__(self):
        return "RiskAverseQueue()"


cdef class ProbQueue(RiskAverseQueue):
    """hftbacktest's ``ProbQueueModel`` with its power function: a decrease of the level not
    explained by trades since the last change (``chg = prev - new - traded``) is a cancel
    behind the order with probability p = back^n / (back^n + front^n) (front: quantity ahead,
    back: quantity behind, n = ``power``), so the front shrinks by (1 - p) x chg, and by what
    the back cannot absorb. Growth of the level is added behind. Trades as RiskAverseQueue."""

    def __init__(self, double power=3.0):
        if not (power > 0.0 and power < INFINITY):
            raise ValueError(f"power must be a finite number > 0, got {power!r}")
        self.power = power
        self.tracks_depth = True

    cdef double prob(self, double front, double back) noexcept:
        cdef double f = pow(front, self.power), b = pow(back, self.power)
        if f + b == 0.0 or isnan(f + b):
            return 1.0
        return b / (f + b)

    cdef void depth(self, QueuePos* q, double prev_qty, double new_qty) noexcept:
        cdef double chg = prev_qty - new_qty - q.traded, front, back, p, est
        q.traded = 0.0
        if chg < 0.0:
            if new_qty < q.ahead:
                q.ahead = new_qty if new_qty > 0.0 else 0.0
            return
        front = q.ahead
        back = prev_qty - front
        if back < 0.0:
            back = 0.0
        p = self.prob(front, back)
        est = front - (1.0 - p) * chg
        if back - p * chg < 0.0:
            est += back - p * chg
        if est > new_qty:
            est = new_qty
        q.ahead = est if est > 0.0 else 0.0

    def probability(self, double front, double back):
        """Probability that a cancel came from behind an order with ``front`` ahead of it and
        ``back`` behind it."""
        return self.prob(front, back)

    def __repr__(self):
        return f"ProbQueue(power={self.power})"


cdef class QueuePosition:
    """One resting order's place in a level, under ``model`` (Python access to the compiled
    queue code, for venues written in Python and for tests).

    >>> pos = QueuePosition(RiskAverseQueue(), level_qty=5.0)
    >>> pos.trade(3.0), pos.ahead        # 3 of the 5 ahead traded
    (0.0, 2.0)
    >>> pos.trade(4.0)                   # 2 more ahead, then 2 reach our order
    2.0
    """

    def __init__(self, QueueModel model not None, double level_qty=0.0):
        self.model = model
        model.join(&self.pos, level_qty)

    def join(self, double level_qty):
        """Start again at the back of a level holding ``level_qty`` (a new price)."""
        self.model.join(&self.pos, level_qty)

    def trade(self, double qty):
        """A trade of ``qty`` at the order's price; returns how much of the order it executes
        (inf: all of it)."""
        return self.model.trade(&self.pos, qty)

    def depth(self, double prev_qty, double new_qty):
        """The level's quantity (others' orders) went from ``prev_qty`` to ``new_qty``."""
        self.model.depth(&self.pos, prev_qty, new_qty)

    def consumed(self, double qty):
        """``qty`` of the quantity ahead traded with the venue's own taker (already taken out
        of the level, so no later depth() sees it)."""
        self.model.consumed(&self.pos, qty)

    @property
    def ahead(self):
        """Quantity ahead of the order."""
        return self.pos.ahead

    def __repr__(self):
        return f"QueuePosition({self.model!r}, ahead={self.pos.ahead})"
