"""Event-driven backtester: a simulated venue that replays trades, bars or an L2 book through
one strategy, and returns the batch engine's statistics plus fills, orders and equity.

How orders execute (price matching, no market impact). Fees, latency and queue position are
the venue models of :mod:`tradebus.engine.models`; the defaults (``FeeModel(fee_rate,
fee_rate)``, ``ConstantLatency(latency_ns)``, ``NoQueue()``) are the rules below.

* Requests (new orders, cancels, modifies) reach the venue the latency model's entry latency
  after they were sent (``latency_ns`` by default), never overtaking an earlier request; with
  latency 0, right after the callback that sent them returns (never inside it), so a
  strategy's position changes only between callbacks, when a fill is reported.
* Reports (on_order_update, on_fill, on_error of a failed request) reach the strategy the
  latency model's response latency after the venue produced them (0 by default: at once).
  The context's position and PnL are the venue's: they change at the fill, not at its report.
  Requests and reports due after the last event of the data are never carried out.
* Market (and close_position, and triggered stop/take-profit/trailing) orders fill against the
  book, walking the levels, when the book has that side; otherwise at the next trade's price
  (adjusted by ``slippage_bps`` against the taker). What the book's levels cannot fill of a
  market order is cancelled (reason "no_liquidity"). The book is not changed by our fills.
* Limit orders that cross on arrival take liquidity (book levels up to the limit, or the next
  trade if it is at or better than the limit); post-only ones are cancelled instead. Resting
  limits fill completely, at their price, when a trade prints through it (below a buy, above a
  sell) or the opposite best price crosses it. A trade *at* their price goes through the queue
  model: with ``NoQueue()`` it fills nothing, with ``NoQueue(touch=True)`` everything; with
  ``RiskAverseQueue``/``ProbQueue`` the order joins behind the book's quantity at its price and
  fills with what trades past the queue ahead (each of our orders sees the whole trade). Book
  updates of that level move the queue (``depth``). IOC/FOK keep nothing resting.
* Stops trigger when a trade reaches the trigger (buy at or above, sell at or below); take
  profits the other way; trailing stops when the price comes back ``offset`` (or ``bps`` of it)
  from the best trade since activation. They then execute as market or limit orders.
* Reduce-only orders (close_position included) never increase or flip a position: they are
  clipped to it, and cancelled when there is nothing to reduce. close_position closes the whole
  position at fill time.
* On bars the batch engine's rules apply (see tradebus.engine): market orders fill at the close
  of the bar whose on_bar sent them (``bar_fill="close"``) or at the next bar's open
  (``"next_open"``); limits and stops rest from the next bar; limits fill at their price when
  the bar trades through, stops at the trigger or at the open when the bar gapped past it.
* Every fill pays the fee model's taker rate (maker rate for resting limit fills) x qty x
  price: ``fee_rate`` and ``maker_fee_rate`` by default. Bars ignore the queue model.

Positions, cash, round trips and statistics are tradebus.engine.ledger's, the batch engine's
own: equity is marked at the close of each bar, or for trades and books at the end of each
``mark_interval_ns`` bucket that had events.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Realloc
from libc.math cimport INFINITY, NAN, fabs, isnan
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint8_t
from libc.string cimport memcpy, memmove, memset

from tradebus.engine.models cimport FeeModel, LatencyModel, QueueModel, QueuePos
from tradebus.engine.event cimport (
    EV_BUY, EV_SELL, FLAG_POST_ONLY, FLAG_REDUCE_ONLY, OT_CANCEL, OT_CANCEL_ALL, OT_CLOSE, OT_LIMIT,
    OT_MARKET, OT_MODIFY, OT_STOP_LIMIT, OT_STOP_MARKET, OT_TP_LIMIT, OT_TP_MARKET, OT_TRAILING,
    OT_TRAILING_PCT, ST_ACKED, ST_CANCELLED, ST_FILLED, ST_NEW, ST_PARTIAL, ST_REJECTED, TIF_FOK,
    TIF_GTC, TIF_IOC, BarEvent, Clock, Fill, Order, OrderBook, OrderSink, Strategy,
    StrategyContext, TradeEvent, on_grid,
)
from tradebus.engine.ledger cimport (
    Account, Curve, Holding, Stats, ledger_fill, ledger_mark, ledger_open, ledger_stats,
    stats_dict,
)

from collections import deque

import numpy as np

from tradebus.engine.ledger import STAT_KEYS
from tradebus.engine.models import ConstantLatency, FeeModel, LatencyModel, NoQueue, QueueModel
from tradebus.engine.event import ORDER_STATES, ORDER_TYPES, SIDES, TIME_IN_FORCE, OrderError

__all__ = ["SimVenue", "ORDER_LOG_DTYPE", "FILL_LOG_DTYPE", "CANCEL_REASONS", "STAT_KEYS"]

cdef double FULL = 1.0 - 1e-12          # filled >= qty * FULL: the order is complete
cdef int64_t ORDER_LOOP_LIMIT = 100_000  # requests handled at one instant before we call it a loop

cdef enum:
    MODE_TRADES = 0
    MODE_BARS = 1
    MODE_BOOK = 2

cdef enum:
    W_TRIGGER = 1     # stop / take profit / trailing, waiting for its trigger
    W_MARKET = 2
    W_LIMIT = 3

cdef enum:
    R_NONE = 0
    R_USER = 1
    R_IOC = 2
    R_POST_ONLY = 3
    R_REDUCE_ONLY = 4
    R_NO_LIQUIDITY = 5
    R_INVALID = 6

CANCEL_REASONS = ("", "user", "ioc_fok_unfilled", "post_only_would_take", "reduce_only",
                  "no_liquidity", "invalid_order")


cdef struct SimOrder:
    int64_t id
    int64_t ts            # when the strategy sent it
    int64_t row           # its row in the order log
    int32_t sym
    uint8_t side
    uint8_t otype
    uint8_t work
    uint8_t tif
    uint8_t flags
    uint8_t armed         # trailing: activation price reached
    uint8_t await_trade   # taking liquidity at the next trade (no book side to take from)
    double qty
    double filled
    double notional
    double price          # limit price
    double trigger        # stop / take-profit trigger, trailing activation (0: none)
    double offset         # trailing offset (price units, or bps for OT_TRAILING_PCT)
    double extreme        # trailing: best trade price since activation
    QueuePos queue        # resting limit: its place in the level (queue model)


cdef struct Request:
    int64_t eff           # when the venue acts on it
    uint8_t kind          # OT_* of a new order, or OT_CANCEL / OT_CANCEL_ALL / OT_MODIFY
    SimOrder order        # the new order; for the others: id, sym (-1: all), price, qty


cdef struct OrderRow:
    int64_t ts_ns
    int64_t order_id
    int64_t done_ns
    double qty
    double price
    double trigger
    double offset
    double filled
    double avg_price
    int32_t symbol
    uint8_t side
    uint8_t order_type
    uint8_t time_in_force
    uint8_t flags
    uint8_t status
    uint8_t reason


cdef struct FillRow:
    int64_t ts_ns
    int64_t order_id
    double price
    double qty
    double fee
    double position
    int32_t symbol
    uint8_t side
    uint8_t order_type
    uint8_t is_maker


ORDER_LOG_DTYPE = np.dtype([
    ("ts_ns", "<i8"), ("order_id", "<i8"), ("done_ns", "<i8"), ("qty", "<f8"), ("price", "<f8"),
    ("trigger", "<f8"), ("offset", "<f8"), ("filled", "<f8"), ("avg_price", "<f8"),
    ("symbol", "<i4"), ("side", "u1"), ("order_type", "u1"), ("time_in_force", "u1"),
    ("flags", "u1"), ("status", "u1"), ("reason", "u1"),
], align=True)
FILL_LOG_DTYPE = np.dtype([
    ("ts_ns", "<i8"), ("order_id", "<i8"), ("price", "<f8"), ("qty", "<f8"), ("fee", "<f8"),
    ("position", "<f8"), ("symbol", "<i4"), ("side", "u1"), ("order_type", "u1"), ("is_maker", "u1"),
], align=True)

if ORDER_LOG_DTYPE.itemsize != sizeof(OrderRow) or FILL_LOG_DTYPE.itemsize != sizeof(FillRow):
    raise ImportError("ORDER_LOG_DTYPE/FILL_LOG_DTYPE do not match the compiled structs")


cdef void* _grow(void* buf, Py_ssize_t* cap, Py_ssize_t need, size_t item) except NULL:
    """Make room for ``need`` items (doubling); returns the (possibly moved) buffer."""
    cdef Py_ssize_t c = cap[0] if cap[0] > 0 else 16
    cdef void* out
    if need <= cap[0] and buf != NULL:
        return buf
    while c < need:
        c *= 2
    out = PyMem_Realloc(buf, c * item)
    if out == NULL:
        raise MemoryError()
    cap[0] = c
    return out


cdef class SimVenue(OrderSink):
    """The simulated venue of one backtest run; BacktestRunner builds and drives it."""

    # configuration
    cdef double capital, slippage
    cdef int64_t mark_interval
    # venue models (tradebus.engine.models)
    cdef readonly FeeModel fee_model
    cdef readonly LatencyModel latency_model
    cdef readonly QueueModel queue_model
    cdef bint queue_depth           # the queue model follows book updates
    cdef bint delay_reports         # the latency model delays reports
    cdef int64_t last_eff, last_due, next_due
    cdef object reports             # deque of (due, callback, args) when reports are delayed
    cdef bint fill_at_close
    cdef int mode
    # the strategy and its callbacks (None when not overridden)
    cdef Strategy strat
    cdef list ctxs
    cdef object cb_trade, cb_book, cb_bar, cb_update, cb_fill, cb_error, cb_timer
    cdef bint update_with_order
    # orders
    cdef SimOrder* open
    cdef Py_ssize_t nopen, cap_open
    cdef Request* req
    cdef Py_ssize_t req_head, req_tail, cap_req
    cdef int64_t next_id
    cdef int64_t loop_ts, loop_count
    # logs
    cdef OrderRow* orders
    cdef Py_ssize_t norders, cap_orders
    cdef FillRow* fills
    cdef Py_ssize_t nfills, cap_fills
    cdef int64_t* mark_ts
    cdef double* mark_eq
    cdef Py_ssize_t nmarks, cap_marks
    # accounting and statistics (tradebus.engine.ledger); held[ctx.index] is ctx's holding
    cdef Account acct
    cdef Curve curve
    cdef Holding* held
    cdef Py_ssize_t nheld
    cdef double prev_eq
    cdef int64_t min_gap
    cdef int64_t bucket_start, bucket_end
    cdef bint have_bucket
    # bars
    cdef bint close_phase
    cdef double bar_close
    # reused event objects
    cdef TradeEvent trade_ev
    cdef BarEvent bar_ev
    cdef bint started, finished
    cdef int64_t _events
    cdef list _initial            # (index, qty, avg_price) to report in on_initial_position

    def __cinit__(self):
        self.open = NULL
        self.req = NULL
        self.orders = NULL
        self.fills = NULL
        self.mark_ts = NULL
        self.mark_eq = NULL
        self.held = NULL

    def __dealloc__(self):
        PyMem_Free(self.held)
        PyMem_Free(self.open)
        PyMem_Free(self.req)
        PyMem_Free(self.orders)
        PyMem_Free(self.fills)
        PyMem_Free(self.mark_ts)
        PyMem_Free(self.mark_eq)

    def __init__(self, Strategy strategy, list contexts, Clock clock, *, double initial_capital,
                 double fee_rate=0.0, maker_fee_rate=None, double slippage_bps=0.0,
                 int64_t latency_ns=0, str bar_fill="next_open",
                 int64_t mark_interval_ns=1_000_000_000, bint update_with_order=False,
                 fee_model=None, latency_model=None, queue_model=None):
        """``fee_model`` replaces ``fee_rate``/``maker_fee_rate`` and ``latency_model``
        replaces ``latency_ns`` (passing both is an error); ``queue_model`` defaults to
        NoQueue()."""
        if not (initial_capital > 0.0 and initial_capital < INFINITY):
            raise ValueError(f"initial_capital must be finite and > 0, got {initial_capital!r}")
        if fee_model is None:
            if not (fee_rate >= 0.0 and fee_rate < 1.0):
                raise ValueError(f"fee_rate must be in [0, 1), got {fee_rate!r}")
            if maker_fee_rate is None:
                maker_fee_rate = fee_rate
            if not (-1.0 < maker_fee_rate < 1.0):
                raise ValueError(f"maker_fee_rate must be in (-1, 1), got {maker_fee_rate!r}")
            fee_model = FeeModel(maker_fee_rate, fee_rate)
        elif not isinstance(fee_model, FeeModel):
            raise TypeError(f"fee_model must be a tradebus.engine.models.FeeModel, got {type(fee_model).__name__}")
        elif fee_rate != 0.0 or maker_fee_rate is not None:
            raise ValueError("pass either fee_model or fee_rate/maker_fee_rate, not both")
        if not (slippage_bps >= 0.0 and slippage_bps < 10_000.0):
            raise ValueError(f"slippage_bps must be in [0, 10000), got {slippage_bps!r}")
        if latency_ns < 0:
            raise ValueError(f"latency_ns must be >= 0, got {latency_ns!r}")
        if latency_model is None:
            latency_model = ConstantLatency(latency_ns)
        elif not isinstance(latency_model, LatencyModel):
            raise TypeError(f"latency_model must be a tradebus.engine.models.LatencyModel, got "
                            f"{type(latency_model).__name__}")
        elif latency_ns != 0:
            raise ValueError("pass either latency_model or latency_ns, not both")
        if queue_model is None:
            queue_model = NoQueue()
        elif not isinstance(queue_model, QueueModel):
            raise TypeError(f"queue_model must be a tradebus.engine.models.QueueModel, got "
                            f"{type(queue_model).__name__}")
        if bar_fill not in ("close", "next_open"):
            raise ValueError(f'bar_fill must be "close" or "next_open", got {bar_fill!r}')
        if mark_interval_ns < 1:
            raise ValueError(f"mark interval must be >= 1 ns, got {mark_interval_ns!r}")
        self.strat = strategy
        self.ctxs = contexts
        self.clock = clock
        self.capital = initial_capital
        self.fee_model = fee_model.for_symbols([(<StrategyContext>c).symbol for c in contexts])
        self.latency_model = latency_model.fresh()
        self.queue_model = queue_model
        self.queue_depth = self.queue_model.tracks_depth
        self.delay_reports = self.latency_model.has_response()
        self.next_due = INT64_MAX
        self.reports = deque()
        self.slippage = slippage_bps / 10_000.0
        self.fill_at_close = bar_fill == "close"
        self.mark_interval = mark_interval_ns
        self.update_with_order = update_with_order
        ledger_open(&self.acct, &self.curve, initial_capital)
        self.nheld = max([(<StrategyContext>c).index for c in contexts], default=-1) + 1
        self.held = <Holding*>PyMem_Calloc(max(self.nheld, 1), sizeof(Holding))
        if self.held == NULL:
            raise MemoryError()
        self.prev_eq = initial_capital
        self.min_gap = INT64_MAX
        self.trade_ev = TradeEvent()
        self.bar_ev = BarEvent()
        base = Strategy
        kind = type(strategy)
        self.cb_trade = strategy.on_trade if kind.on_trade is not base.on_trade else None
        self.cb_book = strategy.on_book_update if kind.on_book_update is not base.on_book_update else None
        self.cb_bar = strategy.on_bar if kind.on_bar is not base.on_bar else None
        self.cb_update = strategy.on_order_update if kind.on_order_update is not base.on_order_update else None
        self.cb_fill = strategy.on_fill if kind.on_fill is not base.on_fill else None
        self.cb_error = strategy.on_error
        self.cb_timer = strategy.on_timer

    # -- OrderSink: what the strategy's order methods call ------------------------------------

    cdef Request* _push(self, uint8_t kind) except NULL:
        cdef Request* r
        self.req = <Request*>_grow(self.req, &self.cap_req, self.req_tail + 1, sizeof(Request))
        r = &self.req[self.req_tail]
        self.req_tail += 1
        memset(r, 0, sizeof(Request))
        r.kind = kind
        r.eff = self.clock.now + self.latency_model.entry(self.clock.now)
        if r.eff < self.last_eff:           # one connection: no request overtakes another
            r.eff = self.last_eff
        self.last_eff = r.eff
        return r

    cdef int64_t submit(self, Strategy strategy, StrategyContext ctx, int side, int otype, double qty,
                        double price, double trigger, double offset, int tif, int flags) except -1:
        cdef Request* r = self._push(<uint8_t>otype)
        cdef SimOrder* o = &r.order
        cdef OrderRow* row
        self.next_id += 1
        o.id = self.next_id
        o.ts = self.clock.now
        o.sym = ctx.index
        o.side = side
        o.otype = otype
        o.tif = tif
        o.flags = flags
        o.qty = qty
        o.price = price
        o.trigger = trigger
        o.offset = offset
        o.extreme = NAN
        self.orders = <OrderRow*>_grow(self.orders, &self.cap_orders, self.norders + 1, sizeof(OrderRow))
        o.row = self.norders
        row = &self.orders[self.norders]
        self.norders += 1
        memset(row, 0, sizeof(OrderRow))
        row.ts_ns = o.ts
        row.order_id = o.id
        row.done_ns = -1
        row.qty = qty
        row.price = price
        row.trigger = trigger
        row.offset = offset
        row.symbol = ctx.index
        row.side = side
        row.order_type = otype
        row.time_in_force = tif
        row.flags = flags
        row.status = ST_NEW
        return o.id

    cdef int _known(self, int64_t order_id) except -1:
        if order_id < 1 or order_id > self.next_id:
            raise ValueError(f"unknown order id {order_id}: not returned by an order method of this run")
        return 0

    cdef int cancel(self, Strategy strategy, int64_t order_id) except -1:
        self._known(order_id)
        self._push(OT_CANCEL).order.id = order_id
        return 0

    cdef int cancel_all(self, Strategy strategy, StrategyContext ctx) except -1:
        self._push(OT_CANCEL_ALL).order.sym = -1 if ctx is None else ctx.index
        return 0

    cdef int modify(self, Strategy strategy, int64_t order_id, double price, double qty) except -1:
        cdef Request* r
        cdef OrderRow* row
        self._known(order_id)
        row = &self.orders[order_id - 1]
        if not isnan(price):
            symbol = (<StrategyContext>self.ctxs[row.symbol]).symbol
            price = on_grid(price, getattr(symbol, "tick_size", 0.0) or 0.0, "price", symbol)
        if not isnan(qty):
            symbol = (<StrategyContext>self.ctxs[row.symbol]).symbol
            lot = getattr(symbol, "lot_size", 0.0) or 0.0
            if lot > 0.0:
                qty = on_grid(qty, lot, "quantity", symbol)
        r = self._push(OT_MODIFY)
        r.order.id = order_id
        r.order.price = price
        r.order.qty = qty
        return 0

    cdef list open_orders(self, Strategy strategy, StrategyContext ctx):
        cdef Py_ssize_t i
        out = []
        for i in range(self.nopen):
            if self.open[i].sym == ctx.index:
                out.append(self._snapshot(&self.open[i]))
        for i in range(self.req_head, self.req_tail):
            if self.req[i].kind <= OT_CLOSE and self.req[i].order.sym == ctx.index:
                out.append(self._snapshot(&self.req[i].order))
        return out

    # -- Python views of orders -----------------------------------------------------------------

    cdef Order _snapshot(self, const SimOrder* o):
        cdef OrderRow* row = &self.orders[o.row]
        return Order(o.id, (<StrategyContext>self.ctxs[o.sym]).symbol, SIDES[o.side],
                     ORDER_TYPES[o.otype], o.qty, o.price, o.trigger, o.offset, o.filled,
                     o.notional / o.filled if o.filled > 0.0 else 0.0, ORDER_STATES[row.status],
                     TIME_IN_FORCE[o.tif], o.flags, o.ts, CANCEL_REASONS[row.reason])

    cdef int _report(self, const SimOrder* o, int status) except -1:
        """on_order_update for an order whose log row was just updated."""
        cdef StrategyContext ctx
        if self.cb_update is None:
            return 0
        ctx = <StrategyContext>self.ctxs[o.sym]
        avg = o.notional / o.filled if o.filled > 0.0 else 0.0
        if self.delay_reports:
            if self.update_with_order:
                self._defer(self.cb_update, (ctx.symbol, ORDER_STATES[status], o.filled, avg, self._snapshot(o)))
            else:
                self._defer(self.cb_update, (ctx.symbol, ORDER_STATES[status], o.filled, avg))
        elif self.update_with_order:
            self.cb_update(ctx.symbol, ORDER_STATES[status], o.filled, avg, self._snapshot(o))
        else:
            self.cb_update(ctx.symbol, ORDER_STATES[status], o.filled, avg)
        return 0

    cdef int _defer(self, object callback, tuple args) except -1:
        """Deliver a report the response latency from now, after the reports before it."""
        cdef int64_t due = self.clock.now + self.latency_model.response(self.clock.now)
        if due < self.last_due:
            due = self.last_due
        self.last_due = due
        if not self.reports:
            self.next_due = due
        self.reports.append((due, callback, args))
        return 0

    cdef int _deliver_reports(self, int64_t now) except -1:
        """Hand the strategy every report due by ``now``."""
        while self.reports and self.next_due <= now:
            due, callback, args = self.reports.popleft()
            self.next_due = self.reports[0][0] if self.reports else INT64_MAX
            callback(*args)
        return 0

    cdef int _request_failed(self, int64_t order_id, int32_t sym, str message) except -1:
        symbol = (<StrategyContext>self.ctxs[sym]).symbol if sym >= 0 else None
        if self.delay_reports:
            self._defer(self.cb_error, (symbol, OrderError(message, "order_not_found", order_id, symbol)))
        else:
            self.cb_error(symbol, OrderError(message, "order_not_found", order_id, symbol))
        return 0

    # -- order life -----------------------------------------------------------------------------

    cdef Py_ssize_t _find_open(self, int64_t order_id) noexcept:
        """Index of an open order, -1 if none. Ids increase along the array: search from the
        end, where the newest orders (the ones looked up right after activation) are."""
        cdef Py_ssize_t i = self.nopen - 1
        while i >= 0:
            if self.open[i].id == order_id:
                return i
            if self.open[i].id < order_id:
                return -1
            i -= 1
        return -1

    cdef int _end(self, Py_ssize_t i, int status, int reason) except -1:
        """Take order i out of the book as cancelled/rejected/filled and report it."""
        cdef SimOrder o = self.open[i]
        cdef OrderRow* row = &self.orders[o.row]
        memmove(&self.open[i], &self.open[i + 1], (self.nopen - i - 1) * sizeof(SimOrder))
        self.nopen -= 1
        row.status = status
        row.reason = reason
        row.done_ns = self.clock.now
        if status != ST_FILLED:            # filled orders were reported with their last fill
            self._report(&o, status)
        return 0

    cdef int _activate(self, SimOrder* new) except -1:
        """The venue receives a new order: ack it, then let it take liquidity or rest."""
        cdef Py_ssize_t i
        cdef SimOrder* o
        cdef StrategyContext ctx = <StrategyContext>self.ctxs[new.sym]
        cdef bint buy = new.side == EV_BUY
        self.open = <SimOrder*>_grow(self.open, &self.cap_open, self.nopen + 1, sizeof(SimOrder))
        i = self.nopen
        self.open[i] = new[0]
        self.nopen += 1
        o = &self.open[i]
        if o.otype == OT_MARKET or o.otype == OT_CLOSE:
            o.work = W_MARKET
        elif o.otype == OT_LIMIT:
            o.work = W_LIMIT
            self.queue_model.join(&o.queue, ctx.book.qty_at(buy, o.price))
        else:
            o.work = W_TRIGGER
            if o.otype == OT_TRAILING or o.otype == OT_TRAILING_PCT:
                o.armed = o.trigger == 0.0 or (ctx.has_last and (
                    ctx.last_px >= o.trigger if not buy else ctx.last_px <= o.trigger))
                o.extreme = ctx.last_px if (o.armed and ctx.has_last) else NAN
        self.orders[o.row].status = ST_ACKED
        self._report(o, ST_ACKED)
        i = self._find_open(new.id)        # callbacks never move orders, but be exact
        if i < 0:
            return 0
        o = &self.open[i]
        if self.mode == MODE_BARS:
            if o.work == W_MARKET:
                if self.close_phase:
                    self._execute(i, ctx, self._slipped(self.bar_close, buy), o.qty, False)
                else:
                    o.await_trade = 1
            return 0
        if o.work == W_MARKET:
            self._take(i, ctx, NAN)
        elif o.work == W_LIMIT:
            self._limit_arrives(i, ctx)
        return 0

    cdef int _take(self, Py_ssize_t i, StrategyContext ctx, double limit) except -1:
        """Order i takes liquidity: from the book if it has the side, else at the next trade."""
        cdef SimOrder* o = &self.open[i]
        if ctx.book.depth(o.side != EV_BUY):
            self._walk(i, ctx, limit)
        else:
            o.await_trade = 1
        return 0

    cdef int _limit_arrives(self, Py_ssize_t i, StrategyContext ctx) except -1:
        cdef SimOrder* o = &self.open[i]
        cdef bint buy = o.side == EV_BUY
        cdef OrderBook book = ctx.book
        cdef double other
        cdef bint marketable
        if book.depth(not buy):
            other = book.ask() if buy else book.bid()
            marketable = o.price >= other if buy else o.price <= other
        elif ctx.has_last:
            marketable = o.price >= ctx.last_px if buy else o.price <= ctx.last_px
        else:
            marketable = False
        if not marketable:
            if o.tif != TIF_GTC:
                return self._end(i, ST_CANCELLED, R_IOC)
            return 0
        if o.flags & FLAG_POST_ONLY:
            return self._end(i, ST_CANCELLED, R_POST_ONLY)
        if book.depth(not buy):
            if o.tif == TIF_FOK and self._available(book, buy, o.price) < self._wanted(o, ctx) * FULL:
                return self._end(i, ST_CANCELLED, R_IOC)
            if self._walk(i, ctx, o.price):
                return 0
            i = self._find_open(o.id)
            if i >= 0 and self.open[i].tif != TIF_GTC:
                return self._end(i, ST_CANCELLED, R_IOC)
            return 0
        o.await_trade = 1
        return 0

    cdef double _available(self, OrderBook book, bint buy, double limit) noexcept:
        cdef Py_ssize_t k, n = book.depth(not buy)
        cdef double total = 0.0, px
        for k in range(n):
            px = book.level_price(not buy, k)
            if (buy and px > limit) or (not buy and px < limit):
                break
            total += book.level_qty(not buy, k)
        return total

    cdef double _wanted(self, const SimOrder* o, StrategyContext ctx) noexcept:
        cdef double rem = o.qty - o.filled
        if o.flags & FLAG_REDUCE_ONLY and fabs(ctx.pos) < rem:
            return fabs(ctx.pos)
        return rem

    cdef int _walk(self, Py_ssize_t i, StrategyContext ctx, double limit) except -1:
        """Fill order i level by level from the best price (up to ``limit`` unless NaN).
        Returns 1 when the order left the book. A market order the book cannot fill completely
        is cancelled for the rest."""
        cdef OrderBook book = ctx.book
        cdef bint buy = self.open[i].side == EV_BUY
        cdef int64_t oid = self.open[i].id
        cdef Py_ssize_t k = 0, n = book.depth(not buy)
        cdef double px, rem
        while k < n:
            px = book.level_price(not buy, k)
            if not isnan(limit) and ((buy and px > limit) or (not buy and px < limit)):
                break
            rem = self.open[i].qty - self.open[i].filled
            if self._execute(i, ctx, px, min(rem, book.level_qty(not buy, k)), False):
                return 1
            k += 1
        if isnan(limit):
            i = self._find_open(oid)
            if i >= 0:
                self._end(i, ST_CANCELLED, R_NO_LIQUIDITY)
                return 1
        return 0

    cdef inline double _slipped(self, double px, bint buy) noexcept:
        return px * (1.0 + self.slippage) if buy else px * (1.0 - self.slippage)

    cdef int _execute(self, Py_ssize_t i, StrategyContext ctx, double px, double q, bint maker) except -1:
        """Fill up to ``q`` of order i at ``px``; returns 1 when the order left the book."""
        cdef SimOrder* o = &self.open[i]
        cdef SimOrder done
        cdef double pos = ctx.pos, rem = o.qty - o.filled, signed, fee
        cdef bint buy = o.side == EV_BUY
        cdef OrderRow* row
        cdef FillRow* f
        cdef bint complete
        if o.flags & FLAG_REDUCE_ONLY:
            if (buy and pos >= 0.0) or (not buy and pos <= 0.0):
                self._end(i, ST_CANCELLED, R_REDUCE_ONLY)
                return 1
            if o.otype == OT_CLOSE:
                q = fabs(pos)
                o.qty = o.filled + q
                self.orders[o.row].qty = o.qty
            elif q > fabs(pos):
                q = fabs(pos)
        if q > rem:
            q = rem
        if not (q > 0.0):
            return 0
        signed = q if buy else -q
        fee = self._account(ctx, signed, px, maker)
        o.filled += q
        o.notional += q * px
        row = &self.orders[o.row]
        row.filled = o.filled
        row.avg_price = o.notional / o.filled
        self.fills = <FillRow*>_grow(self.fills, &self.cap_fills, self.nfills + 1, sizeof(FillRow))
        f = &self.fills[self.nfills]
        self.nfills += 1
        f.ts_ns = self.clock.now
        f.order_id = o.id
        f.price = px
        f.qty = q
        f.fee = fee
        f.position = ctx.pos
        f.symbol = o.sym
        f.side = o.side
        f.order_type = o.otype
        f.is_maker = maker
        done = o[0]
        complete = o.filled >= o.qty * FULL or ((o.flags & FLAG_REDUCE_ONLY) != 0 and ctx.pos == 0.0)
        if complete:
            memmove(&self.open[i], &self.open[i + 1], (self.nopen - i - 1) * sizeof(SimOrder))
            self.nopen -= 1
            row.status = ST_FILLED
            row.done_ns = self.clock.now
            if o.flags & FLAG_REDUCE_ONLY:
                row.qty = done.filled
                done.qty = done.filled
        else:
            row.status = ST_PARTIAL
        if self.cb_fill is not None:
            fill = Fill(done.id, ctx.symbol, SIDES[done.side], px, q, fee, self.clock.now, maker,
                        ctx.pos, 0.0 if complete else done.qty - done.filled,
                        ORDER_TYPES[done.otype], None)
            if self.delay_reports:
                self._defer(self.cb_fill, (fill,))
            else:
                self.cb_fill(fill)
        self._report(&done, ST_FILLED if complete else ST_PARTIAL)
        return 1 if complete else 0

    cdef double _account(self, StrategyContext ctx, double q, double px, bint maker) noexcept:
        """Book a fill in the ledger and in the strategy's view of its position; the fee."""
        cdef double fee = ledger_fill(&self.acct, &self.held[ctx.index], q, px,
                                      self.fee_model.rate_at(ctx.index, maker))
        ctx.apply_fill(q, px, fee)
        return fee

    # -- requests -------------------------------------------------------------------------------

    cdef int _drain(self, int64_t now) except -1:
        """Carry out every request the venue has received by ``now``, in order."""
        cdef Request r
        cdef Py_ssize_t i
        while self.req_head < self.req_tail and self.req[self.req_head].eff <= now:
            r = self.req[self.req_head]
            self.req_head += 1
            if self.req_head == self.req_tail:
                self.req_head = self.req_tail = 0
            if now == self.loop_ts:
                self.loop_count += 1
                if self.loop_count > ORDER_LOOP_LIMIT:
                    raise RuntimeError(f"{self.strat.name} sent over {ORDER_LOOP_LIMIT} requests at "
                                       f"one instant ({now} ns): is a callback re-sending orders?")
            else:
                self.loop_ts = now
                self.loop_count = 0
            if r.kind <= OT_CLOSE:
                self._activate(&r.order)
            elif r.kind == OT_CANCEL:
                i = self._find_open(r.order.id)
                if i < 0:
                    self._request_failed(r.order.id, self.orders[r.order.id - 1].symbol,
                                         f"cancel: order {r.order.id} is not open")
                else:
                    self._end(i, ST_CANCELLED, R_USER)
            elif r.kind == OT_CANCEL_ALL:
                i = 0
                while i < self.nopen:
                    if r.order.sym < 0 or self.open[i].sym == r.order.sym:
                        self._end(i, ST_CANCELLED, R_USER)
                    else:
                        i += 1
            elif r.kind == OT_MODIFY:
                self._modify(&r.order)
        return 0

    cdef int _modify(self, const SimOrder* m) except -1:
        cdef Py_ssize_t i = self._find_open(m.id)
        cdef SimOrder* o
        cdef OrderRow* row
        cdef StrategyContext ctx
        if i < 0:
            return self._request_failed(m.id, self.orders[m.id - 1].symbol,
                                        f"modify: order {m.id} is not open")
        o = &self.open[i]
        ctx = <StrategyContext>self.ctxs[o.sym]
        if not isnan(m.qty) and m.qty <= o.filled:
            return self._request_failed(m.id, o.sym, f"modify: new qty {m.qty} is not above the "
                                        f"{o.filled} already filled of order {m.id}")
        if not isnan(m.price):
            if o.otype in (OT_LIMIT, OT_STOP_LIMIT, OT_TP_LIMIT):
                if o.work == W_LIMIT and m.price != o.price:     # a new price: back of the queue
                    self.queue_model.join(&o.queue, ctx.book.qty_at(o.side == EV_BUY, m.price))
                o.price = m.price
            elif o.otype in (OT_STOP_MARKET, OT_TP_MARKET):
                o.trigger = m.price
            else:
                return self._request_failed(m.id, o.sym, f"modify: a {ORDER_TYPES[o.otype]} order "
                                            "has no price to change")
        if not isnan(m.qty):
            o.qty = m.qty
        row = &self.orders[o.row]
        row.price = o.price
        row.trigger = o.trigger
        row.qty = o.qty
        self._report(o, row.status)
        i = self._find_open(m.id)
        if i >= 0 and self.mode != MODE_BARS and self.open[i].work == W_LIMIT \
                and not self.open[i].await_trade:
            self._limit_arrives(i, ctx)
        return 0

    cdef int _wake(self, int64_t ts) except -1:
        """Advance the clock to ``ts``: fire due timers and carry out requests, in time order."""
        cdef int64_t t_timer, t_req, t_rep
        while True:
            t_timer = self.strat._next_timer
            t_req = self.req[self.req_head].eff if self.req_head < self.req_tail else INT64_MAX
            t_rep = self.next_due
            if t_req <= ts and t_req <= t_timer and t_req <= t_rep:
                if t_req > self.clock.now:
                    self.clock.now = t_req
                self._drain(self.clock.now)
            elif t_rep <= ts and t_rep <= t_timer:
                if t_rep > self.clock.now:
                    self.clock.now = t_rep
                self._deliver_reports(self.clock.now)
                self._drain(self.clock.now)
            elif t_timer <= ts:
                if t_timer > self.clock.now:
                    self.clock.now = t_timer
                fired = self.strat.pop_due_timer(t_timer)
                if fired is not None:
                    self.cb_timer(fired[0])
                self._drain(self.clock.now)
            else:
                break
        return 0

    # -- matching on market data -----------------------------------------------------------------

    cdef int _on_trade_price(self, StrategyContext ctx, double px, double qty) except -1:
        """A trade of ``qty`` printed at ``px``: fill waiting takers, trade-through limits (and
        what the queue model lets through at their price), triggers."""
        cdef Py_ssize_t i = 0
        cdef SimOrder* o
        cdef bint buy, has_side
        cdef int64_t oid
        cdef int32_t sym = ctx.index
        cdef double reached
        while i < self.nopen:
            o = &self.open[i]
            if o.sym != sym:
                i += 1
                continue
            oid = o.id
            buy = o.side == EV_BUY
            if o.work == W_TRIGGER and self._triggered(o, px):
                if o.otype == OT_STOP_LIMIT or o.otype == OT_TP_LIMIT:
                    o.work = W_LIMIT
                    self.queue_model.join(&o.queue, ctx.book.qty_at(buy, o.price))
                    if (buy and px <= o.price) or (not buy and px >= o.price):
                        if ctx.book.depth(not buy):
                            self._walk(i, ctx, o.price)
                        else:
                            self._execute(i, ctx, px, o.qty - o.filled, False)
                    elif o.tif != TIF_GTC:
                        self._end(i, ST_CANCELLED, R_IOC)
                else:
                    o.work = W_MARKET
                    if ctx.book.depth(not buy):
                        self._walk(i, ctx, NAN)
                    else:
                        self._execute(i, ctx, self._slipped(px, buy), o.qty - o.filled, False)
            elif o.work == W_MARKET and o.await_trade:
                self._execute(i, ctx, self._slipped(px, buy), o.qty - o.filled, False)
            elif o.work == W_LIMIT:
                if o.await_trade:
                    if (buy and px <= o.price) or (not buy and px >= o.price):
                        self._execute(i, ctx, px, o.qty - o.filled, False)
                    else:
                        o.await_trade = 0
                        if o.tif != TIF_GTC:
                            self._end(i, ST_CANCELLED, R_IOC)
                elif (buy and px < o.price) or (not buy and px > o.price):
                    self._execute(i, ctx, o.price, o.qty - o.filled, True)
                elif px == o.price:
                    reached = self.queue_model.trade(&o.queue, qty)
                    if reached > 0.0:
                        self._execute(i, ctx, o.price, reached, True)
            # the order at i either stayed (advance) or left (the next one moved into i)
            if i < self.nopen and self.open[i].id == oid:
                i += 1
        return 0

    cdef bint _triggered(self, SimOrder* o, double px) noexcept:
        cdef bint buy = o.side == EV_BUY
        cdef double off
        if o.otype == OT_STOP_MARKET or o.otype == OT_STOP_LIMIT:
            return px >= o.trigger if buy else px <= o.trigger
        if o.otype == OT_TP_MARKET or o.otype == OT_TP_LIMIT:
            return px <= o.trigger if buy else px >= o.trigger
        if not o.armed:
            if o.trigger == 0.0 or (px <= o.trigger if buy else px >= o.trigger):
                o.armed = 1
                o.extreme = px
            return False
        if isnan(o.extreme):
            o.extreme = px
        if buy:
            if px < o.extreme:
                o.extreme = px
        elif px > o.extreme:
            o.extreme = px
        off = o.offset if o.otype == OT_TRAILING else o.extreme * o.offset / 10_000.0
        return px >= o.extreme + off if buy else px <= o.extreme - off

    cdef int _on_book_change(self, StrategyContext ctx) except -1:
        """The book moved: waiting takers take from it, crossed resting limits fill."""
        cdef Py_ssize_t i = 0
        cdef SimOrder* o
        cdef bint buy
        cdef int64_t oid
        cdef OrderBook book = ctx.book
        cdef double other
        while i < self.nopen:
            o = &self.open[i]
            oid = o.id
            if o.sym == ctx.index and (o.work == W_MARKET or o.work == W_LIMIT):
                buy = o.side == EV_BUY
                if book.depth(not buy):
                    other = book.ask() if buy else book.bid()
                    if o.await_trade:
                        o.await_trade = 0
                        self._walk(i, ctx, o.price if o.work == W_LIMIT else NAN)
                    elif o.work == W_LIMIT and ((buy and other < o.price) or (not buy and other > o.price)):
                        self._execute(i, ctx, o.price, o.qty - o.filled, True)
            if i < self.nopen and self.open[i].id == oid:
                i += 1
        return 0

    cdef int _level_changes(self, StrategyContext ctx, bint bid, double px, double qty) except -1:
        """A book level is about to become ``qty``: the queue of our resting limits there moves."""
        cdef Py_ssize_t i
        cdef SimOrder* o
        cdef double prev = ctx.book.qty_at(bid, px)
        for i in range(self.nopen):
            o = &self.open[i]
            if o.sym == ctx.index and o.work == W_LIMIT and not o.await_trade and o.price == px \
                    and (o.side == EV_BUY) == bid:
                self.queue_model.depth(&o.queue, prev, qty)
        return 0

    cdef int _bar_open(self, StrategyContext ctx, double open_) except -1:
        """Bar mode, at the open: market orders waiting for it fill there."""
        cdef Py_ssize_t i = 0
        cdef SimOrder* o
        cdef int64_t oid
        while i < self.nopen:
            o = &self.open[i]
            oid = o.id
            if o.sym == ctx.index and o.work == W_MARKET and o.await_trade:
                self._execute(i, ctx, self._slipped(open_, o.side == EV_BUY), o.qty - o.filled, False)
            if i < self.nopen and self.open[i].id == oid:
                i += 1
        return 0

    cdef int _bar_range(self, StrategyContext ctx, double open_, double high, double low) except -1:
        """Bar mode, inside the bar: limits, stops, take profits and trailing stops."""
        cdef Py_ssize_t i = 0
        cdef SimOrder* o
        cdef int64_t oid
        cdef bint buy, hit
        cdef double px, off, stop
        while i < self.nopen:
            o = &self.open[i]
            oid = o.id
            if o.sym != ctx.index:
                i += 1
                continue
            buy = o.side == EV_BUY
            if o.work == W_TRIGGER:
                hit = False
                px = 0.0
                if o.otype == OT_STOP_MARKET or o.otype == OT_STOP_LIMIT:
                    if buy and high >= o.trigger:
                        hit, px = True, open_ if open_ > o.trigger else o.trigger
                    elif not buy and low <= o.trigger:
                        hit, px = True, open_ if open_ < o.trigger else o.trigger
                elif o.otype == OT_TP_MARKET or o.otype == OT_TP_LIMIT:
                    if buy and low <= o.trigger:
                        hit, px = True, open_ if open_ < o.trigger else o.trigger
                    elif not buy and high >= o.trigger:
                        hit, px = True, open_ if open_ > o.trigger else o.trigger
                else:
                    if not o.armed:
                        if o.trigger == 0.0 or (buy and low <= o.trigger) or (not buy and high >= o.trigger):
                            o.armed = 1
                            o.extreme = o.trigger if o.trigger != 0.0 else ctx.last_px
                    elif isnan(o.extreme):
                        o.extreme = ctx.last_px
                    if o.armed and not isnan(o.extreme):
                        off = o.offset if o.otype == OT_TRAILING else o.extreme * o.offset / 10_000.0
                        if buy:
                            stop = o.extreme + off
                            if high >= stop:
                                hit, px = True, open_ if open_ > stop else stop
                            elif low < o.extreme:
                                o.extreme = low
                        else:
                            stop = o.extreme - off
                            if low <= stop:
                                hit, px = True, open_ if open_ < stop else stop
                            elif high > o.extreme:
                                o.extreme = high
                if hit:
                    if o.otype == OT_STOP_LIMIT or o.otype == OT_TP_LIMIT:
                        o.work = W_LIMIT
                        if (buy and low < o.price) or (not buy and high > o.price):
                            self._execute(i, ctx, o.price, o.qty - o.filled, True)
                        elif o.tif != TIF_GTC:
                            self._end(i, ST_CANCELLED, R_IOC)
                    else:
                        o.work = W_MARKET
                        self._execute(i, ctx, self._slipped(px, buy), o.qty - o.filled, False)
            elif o.work == W_LIMIT:
                if (buy and low < o.price) or (not buy and high > o.price):
                    self._execute(i, ctx, o.price, o.qty - o.filled, True)
                elif o.tif != TIF_GTC:
                    self._end(i, ST_CANCELLED, R_IOC)
            if i < self.nopen and self.open[i].id == oid:
                i += 1
        return 0

    # -- equity marks and statistics --------------------------------------------------------------

    cdef double _equity(self) noexcept:
        cdef double eq = self.acct.cash
        cdef StrategyContext ctx
        for ctx in self.ctxs:
            if self.held[ctx.index].pos != 0.0:
                eq += self.held[ctx.index].pos * ctx.mark()
        return eq

    cdef int _mark(self, int64_t ts) except -1:
        cdef double eq = self._equity()
        cdef Py_ssize_t k
        ledger_mark(&self.curve, eq, eq - self.prev_eq)
        for k in range(self.nheld):
            if self.held[k].pos != 0.0:
                self.curve.exposure += 1
                break
        if self.nmarks and ts - self.mark_ts[self.nmarks - 1] < self.min_gap:
            self.min_gap = ts - self.mark_ts[self.nmarks - 1]
        if self.nmarks == self.cap_marks:
            self._grow_marks()
        self.mark_ts[self.nmarks] = ts
        self.mark_eq[self.nmarks] = eq
        self.nmarks += 1
        self.prev_eq = eq
        return 0

    cdef int _grow_marks(self) except -1:
        cdef Py_ssize_t cap = self.cap_marks * 2 if self.cap_marks else 1024
        cdef int64_t* ts = <int64_t*>PyMem_Realloc(self.mark_ts, cap * sizeof(int64_t))
        if ts == NULL:
            raise MemoryError()
        self.mark_ts = ts
        cdef double* eq = <double*>PyMem_Realloc(self.mark_eq, cap * sizeof(double))
        if eq == NULL:
            raise MemoryError()
        self.mark_eq = eq
        self.cap_marks = cap
        return 0

    cdef int _roll_bucket(self, int64_t ts) except -1:
        """Trades and books: close the equity bucket(s) before ``ts`` and open ts's bucket."""
        if self.have_bucket:
            self._wake(self.bucket_end - 1)
            self._mark(self.bucket_start)
        self.bucket_start = ts - ts % self.mark_interval
        self.bucket_end = self.bucket_start + self.mark_interval
        self.have_bucket = True
        return 0

    def statistics(self):
        """The ledger's statistics over the marks so far (see tradebus.engine)."""
        cdef Stats st
        ledger_stats(&self.acct, &self.curve, self.capital,
                     self.prev_eq if self.nmarks else self._equity(), self.nmarks, self.min_gap,
                     self.nfills, self._unfilled(), &st)
        return stats_dict(&st)

    cdef int64_t _unfilled(self) noexcept:
        cdef Py_ssize_t k
        cdef int64_t count = 0
        for k in range(self.norders):
            if self.orders[k].filled == 0.0 and self.orders[k].status != ST_REJECTED:
                count += 1
        return count

    def result(self):
        """Statistics plus "fills", "orders" (structured arrays), "equity" and "equity_ts"."""
        out = self.statistics()
        fills = np.empty(self.nfills, dtype=FILL_LOG_DTYPE)
        if self.nfills:
            memcpy(<void*><size_t>fills.ctypes.data, self.fills, self.nfills * sizeof(FillRow))
        orders = np.empty(self.norders, dtype=ORDER_LOG_DTYPE)
        if self.norders:
            memcpy(<void*><size_t>orders.ctypes.data, self.orders, self.norders * sizeof(OrderRow))
        equity = np.empty(self.nmarks, dtype=np.float64)
        equity_ts = np.empty(self.nmarks, dtype=np.int64)
        if self.nmarks:
            memcpy(<void*><size_t>equity.ctypes.data, self.mark_eq, self.nmarks * sizeof(double))
            memcpy(<void*><size_t>equity_ts.ctypes.data, self.mark_ts, self.nmarks * sizeof(int64_t))
        out["fills"] = fills
        out["orders"] = orders
        out["equity"] = equity
        out["equity_ts"] = equity_ts
        out["open_orders"] = self.nopen + (self.req_tail - self.req_head)
        out["cancelled_orders"] = int(np.count_nonzero(orders["status"] == ST_CANCELLED))
        out["rejected_orders"] = int(np.count_nonzero(orders["status"] == ST_REJECTED))
        out["positions"] = {(<StrategyContext>c).symbol: (<StrategyContext>c).pos for c in self.ctxs}
        out["realized_pnl"] = sum((<StrategyContext>c).realized for c in self.ctxs)
        out["unrealized_pnl"] = sum((<StrategyContext>c).unrealized_pnl for c in self.ctxs)
        out["events"] = self._events
        return out

    # -- runs -----------------------------------------------------------------------------------

    cdef int _start(self, int64_t first_ts) except -1:
        if self.started:
            raise RuntimeError("a SimVenue runs once; BacktestRunner builds one per run")
        self.started = True
        self.clock.now = first_ts
        self.strat._recompute_next()
        self.strat.on_start()
        for index, qty, avg_price in self._initial or ():
            self.strat.on_initial_position((<StrategyContext>self.ctxs[index]).symbol, qty, avg_price)
        self._drain(first_ts)
        return 0

    cdef int _stop(self) except -1:
        if self.mode != MODE_BARS and self.have_bucket:
            self._mark(self.bucket_start)
        self.strat.on_stop()
        self.finished = True
        return 0

    def set_initial_position(self, int32_t index, double qty, double avg_price):
        """Start with a position bought at ``avg_price`` (cash pays for it, no fee)."""
        cdef StrategyContext ctx = <StrategyContext>self.ctxs[index]
        if self.started:
            raise RuntimeError("set initial positions before the run starts")
        if qty == 0.0:
            return
        if not (avg_price > 0.0 and avg_price < INFINITY):
            raise ValueError(f"initial position needs a finite avg_price > 0, got {avg_price!r}")
        ledger_fill(&self.acct, &self.held[ctx.index], qty, avg_price, 0.0)
        ctx.apply_fill(qty, avg_price, 0.0)
        ctx.last_px = avg_price
        ctx.has_last = True
        if self._initial is None:
            self._initial = []
        self._initial.append((index, qty, avg_price))

    def run_trades(self, int32_t index, const int64_t[::1] ts, const double[::1] price,
                   const double[::1] qty, const uint8_t[::1] is_buy):
        """Replay trades of symbol ``index`` (columns of equal length, time-sorted)."""
        cdef Py_ssize_t i, n = ts.shape[0]
        cdef StrategyContext ctx = <StrategyContext>self.ctxs[index]
        cdef TradeEvent trade = self.trade_ev
        cdef int64_t t
        cdef object cb = self.cb_trade
        self.mode = MODE_TRADES
        trade.symbol = ctx.symbol
        ctx._last_trade = trade
        self._start(ts[0] if n else 0)
        for i in range(n):
            t = ts[i]
            if t >= self.bucket_end or not self.have_bucket:
                self._roll_bucket(t)
            if t >= self.strat._next_timer or self.req_head < self.req_tail or t >= self.next_due:
                self._wake(t)
            self.clock.now = t
            _trade(self, ctx, trade, cb, t, price[i], qty[i], is_buy[i])
        self._events = n
        self._stop()

    def run_bars(self, int32_t index, const int64_t[::1] ts, const double[::1] open_,
                 const double[::1] high, const double[::1] low, const double[::1] close,
                 const double[::1] volume):
        """Replay OHLCV bars of symbol ``index`` (stamped with their open time)."""
        cdef Py_ssize_t i, n = ts.shape[0]
        cdef StrategyContext ctx = <StrategyContext>self.ctxs[index]
        cdef BarEvent bar = self.bar_ev
        cdef int64_t t
        cdef object cb = self.cb_bar
        self.mode = MODE_BARS
        bar.symbol = ctx.symbol
        self._start(ts[0] if n else 0)
        for i in range(n):
            t = ts[i]
            if t >= self.strat._next_timer or self.req_head < self.req_tail or t >= self.next_due:
                self._wake(t)
            self.clock.now = t
            if self.nopen:
                self._bar_open(ctx, open_[i])
                self._bar_range(ctx, open_[i], high[i], low[i])
            ctx.last_px = close[i]
            ctx.last_q = volume[i]
            ctx.last_ts = t
            ctx.has_last = True
            bar.ts_ns = t
            bar.open = open_[i]
            bar.high = high[i]
            bar.low = low[i]
            bar.close = close[i]
            bar.volume = volume[i]
            if cb is not None:
                cb(ctx, bar)
            if self.req_head < self.req_tail:
                self.close_phase = self.fill_at_close
                self.bar_close = close[i]
                try:
                    self._drain(t)
                finally:
                    self.close_phase = False
            self._mark(t)
        self._events = n
        self._stop()

    def run_book(self, int32_t index, snapshot_bids, snapshot_asks, int64_t snapshot_ts,
                 const uint8_t[::1] kind, const int64_t[::1] ts, const double[::1] price,
                 const double[::1] qty, const uint8_t[::1] flag, const uint8_t[::1] last_of_event):
        """Replay an L2 book with trades: ``kind`` 0 = book level (flag 1: bid side; qty 0
        removes it; ``last_of_event`` 1 on the last level of each depth update), 1 = trade
        (flag 1: the aggressor bought). Rows are time-sorted; the snapshot comes first."""
        cdef Py_ssize_t i, n = ts.shape[0]
        cdef StrategyContext ctx = <StrategyContext>self.ctxs[index]
        cdef OrderBook book = ctx.book
        cdef TradeEvent trade = self.trade_ev
        cdef int64_t t
        cdef object cb_trade = self.cb_trade, cb_book = self.cb_book
        self.mode = MODE_BOOK
        trade.symbol = ctx.symbol
        ctx._last_trade = trade
        book.clear()
        for p, q in snapshot_bids:
            book.set_level(True, p, q)
        for p, q in snapshot_asks:
            book.set_level(False, p, q)
        book.ts_ns = snapshot_ts
        self._start(snapshot_ts)
        for i in range(n):
            t = ts[i]
            if t >= self.bucket_end or not self.have_bucket:
                self._roll_bucket(t)
            if t >= self.strat._next_timer or self.req_head < self.req_tail or t >= self.next_due:
                self._wake(t)
            self.clock.now = t
            if kind[i] == 0:
                if self.queue_depth and self.nopen:
                    self._level_changes(ctx, flag[i] == 1, price[i], qty[i])
                book.set_level(flag[i] == 1, price[i], qty[i])
                if last_of_event[i]:
                    book.ts_ns = t
                    if self.nopen:
                        self._on_book_change(ctx)
                    if cb_book is not None:
                        cb_book(ctx)
                        if self.req_head < self.req_tail:
                            self._drain(t)
                continue
            _trade(self, ctx, trade, cb_trade, t, price[i], qty[i], flag[i])
        self._events = n
        self._stop()


cdef inline int _trade(SimVenue self, StrategyContext ctx, TradeEvent trade, object cb, int64_t t, double px,
                   double q, bint is_buy) except -1:
    """One public trade: resting orders see its price first, then the context and the strategy."""
    if self.nopen:
        self._on_trade_price(ctx, px, q)
    ctx.last_px = px
    ctx.last_q = q
    ctx.last_ts = t
    ctx.last_is_buy = is_buy
    ctx.has_last = True
    trade.price = px
    trade.qty = q
    trade.is_buy = is_buy
    trade.ts_ns = t
    if cb is not None:
        cb(ctx, trade)
        if self.req_head < self.req_tail:
            self._drain(t)
    return 0
