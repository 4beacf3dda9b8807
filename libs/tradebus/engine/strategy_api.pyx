"""Strategy, the context it sees for each symbol, and the OrderSink its order methods submit
through (re-exported by :mod:`tradebus.engine.event`).

Runners drive a strategy: the simulated venue of :mod:`tradebus.engine.event_sim` in a
backtest, :class:`tradebus.strategy.Runner` live. Both implement :class:`OrderSink`, so one
strategy runs unchanged in both.
"""
from libc.math cimport INFINITY, NAN, fabs, floor, isnan, round as c_round
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t

from tradebus.engine.events cimport (
    EV_BUY, EV_SELL, FLAG_POST_ONLY, FLAG_REDUCE_ONLY, OT_CANCEL, OT_CANCEL_ALL, OT_CLOSE, OT_LIMIT,
    OT_MARKET, OT_MODIFY, OT_STOP_LIMIT, OT_STOP_MARKET, OT_TP_LIMIT, OT_TP_MARKET, OT_TRAILING,
    OT_TRAILING_PCT, TIF_FOK, TIF_GTC, TIF_IOC, make_signal,
)

import datetime as _dt
import logging

from tradebus.engine.events import SIDES

log = logging.getLogger("tradebus.strategy")

__all__ = ["StrategyContext", "OrderSink", "SignalSink", "Strategy", "check_grid"]

cdef dict _TIF_CODES = {"GTC": TIF_GTC, "IOC": TIF_IOC, "FOK": TIF_FOK}
cdef dict _SIDE_CODES = {"buy": EV_BUY, "sell": EV_SELL}
cdef int64_t DAY_NS = 86_400_000_000_000



# ---------------------------------------------------------------------------------------------
# The context a strategy sees for one symbol

cdef class StrategyContext:
    """What a strategy knows about one of its symbols: position, PnL, book, last trade, clock.

    Positions follow fills (never intentions): ``position`` changes when the venue reports an
    execution. ``avg_price`` is the average entry price of the open position, ``realized_pnl``
    the PnL of closed quantity before fees, ``fees`` the fees paid, ``unrealized_pnl`` the open
    position marked at the last trade (the mid when no trade was seen).
    """

    def __init__(self, symbol=None, OrderBook book=None, Clock clock=None, int index=0):
        self.symbol = symbol
        self.book = book if book is not None else OrderBook(symbol)
        self._clock = clock if clock is not None else Clock()
        self.index = index

    cdef void apply_fill(self, double q, double price, double fee) noexcept:
        cdef double pos0 = self.pos, pos1 = pos0 + q, a0, a1, closing
        self.fee_total += fee
        if pos0 == 0.0 or (pos0 > 0.0) == (q > 0.0):
            a0 = fabs(pos0)
            self.avg = (self.avg * a0 + price * fabs(q)) / (a0 + fabs(q))
            self.pos = pos1
            return
        a0 = fabs(pos0)
        closing = fabs(q) if fabs(q) < a0 else a0
        self.realized += closing * (price - self.avg) * (1.0 if pos0 > 0.0 else -1.0)
        a1 = fabs(pos1)
        if a1 <= 1e-9 * a0:
            self.pos = 0.0
            self.avg = 0.0
        else:
            if (pos1 > 0.0) != (pos0 > 0.0):
                self.avg = price
            self.pos = pos1

    cdef double mark(self) noexcept:
        if self.has_last:
            return self.last_px
        if self.book._nbid and self.book._nask:
            return (self.book.bid() + self.book.ask()) * 0.5
        return self.avg

    # -- position ------------------------------------------------------------------------------

    def is_flat(self):
        """True when the position holds less than one lot of the symbol (0 without a lot size):
        the dust a spot fee charged in the base asset leaves cannot be traded, so it is flat."""
        return self.closable() == 0.0

    def is_long(self):
        return self.pos > 0.0 and self.closable() > 0.0

    def is_short(self):
        return self.pos < 0.0 and self.closable() > 0.0

    def closable(self):
        """The size of the position a venue can trade: ``abs(position)`` rounded down to whole lots
        of the symbol (the whole of it when the symbol has no lot size)."""
        return whole_lots(fabs(self.pos), getattr(self.symbol, "lot_size", 0.0) or 0.0)

    @property
    def position(self):
        """Signed position (> 0 long, < 0 short), following fills."""
        return self.pos

    @property
    def avg_price(self):
        """Average entry price of the open position (0 when flat)."""
        return self.avg

    @property
    def realized_pnl(self):
        return self.realized

    @property
    def fees(self):
        return self.fee_total

    @property
    def unrealized_pnl(self):
        if self.pos == 0.0:
            return 0.0
        return self.pos * (self.mark() - self.avg)

    @property
    def pnl(self):
        """realized + unrealized - fees."""
        return self.realized + (self.pos * (self.mark() - self.avg) if self.pos != 0.0 else 0.0) - self.fee_total

    # -- market --------------------------------------------------------------------------------

    @property
    def best_bid(self):
        return self.book.best_bid

    @property
    def best_ask(self):
        return self.book.best_ask

    @property
    def mid(self):
        return self.book.mid

    @property
    def spread(self):
        return self.book.spread

    def bids(self, depth=10):
        """Best ``depth`` bid levels (price, qty), best first."""
        return self.book.bids(depth)

    def asks(self, depth=10):
        """Best ``depth`` ask levels (price, qty), best first."""
        return self.book.asks(depth)

    @property
    def last_price(self):
        """Price of the last trade (the last close on bars), None before any."""
        return self.last_px if self.has_last else None

    @property
    def last_qty(self):
        return self.last_q if self.has_last else None

    @property
    def last_trade(self):
        """The last TradeEvent (None before any trade, or on bars)."""
        return self._last_trade

    # -- clock and orders ----------------------------------------------------------------------

    @property
    def now_ns(self):
        """The clock: event time in a backtest, real time live (ns since the epoch, UTC)."""
        return self._clock.read()

    @property
    def now(self):
        """The clock as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self._clock.read() / 1e9, tz=_dt.timezone.utc)

    def open_orders(self):
        """Snapshots (Order) of this strategy's open orders on this symbol."""
        if self._sink is None:
            return []
        return self._sink.open_orders(self._strategy, self)

    def __repr__(self):
        return f"StrategyContext({self.symbol}, position={self.pos}, avg_price={self.avg})"

    # -- for runners written in Python ----------------------------------------------------------

    def _on_trade(self, double price, double qty, bint is_buy, int64_t ts_ns):
        self.last_px = price
        self.last_q = qty
        self.last_is_buy = is_buy
        self.last_ts = ts_ns
        self.has_last = True

    def _set_last_trade(self, TradeEvent trade):
        self._last_trade = trade

    def _apply_fill(self, double signed_qty, double price, double fee=0.0):
        self.apply_fill(signed_qty, price, fee)

    def _set_position(self, double qty, double avg_price):
        self.pos = qty
        self.avg = avg_price if qty != 0.0 else 0.0


# ---------------------------------------------------------------------------------------------
# Where orders go

cdef class OrderSink:
    """Interface between a strategy's order methods and whoever executes them."""

    cdef int64_t submit(self, Strategy strategy, StrategyContext ctx, int side, int otype, double qty,
                        double price, double trigger, double offset, int tif, int flags) except -1:
        raise NotImplementedError

    cdef int cancel(self, Strategy strategy, int64_t order_id) except -1:
        raise NotImplementedError

    cdef int cancel_all(self, Strategy strategy, StrategyContext ctx) except -1:
        raise NotImplementedError

    cdef int modify(self, Strategy strategy, int64_t order_id, double price, double qty) except -1:
        raise NotImplementedError

    cdef list open_orders(self, Strategy strategy, StrategyContext ctx):
        return []


cdef class SignalSink(OrderSink):
    """Turns order methods into Signals handed to ``accept(signal) -> None``, which may raise
    to refuse one (an unknown order id). Order ids count up from 1 per sink."""

    cdef object _accept
    cdef object _open_orders
    cdef int64_t _next_id

    def __init__(self, accept, open_orders=None, Clock clock=None):
        self._accept = accept
        self._open_orders = open_orders
        self.clock = clock if clock is not None else Clock(live=True)
        self._next_id = 0

    @property
    def last_order_id(self):
        return self._next_id

    cdef int64_t submit(self, Strategy strategy, StrategyContext ctx, int side, int otype, double qty,
                        double price, double trigger, double offset, int tif, int flags) except -1:
        cdef int64_t oid = self._next_id + 1
        self._accept(make_signal(SIDES[side], otype, qty, price, trigger, offset, oid, ctx.symbol,
                                 flags, tif, self.clock.read(), strategy))
        self._next_id = oid
        return oid

    cdef int cancel(self, Strategy strategy, int64_t order_id) except -1:
        self._accept(make_signal("", OT_CANCEL, 0.0, 0.0, 0.0, 0.0, order_id, None, 0, TIF_GTC,
                                 self.clock.read(), strategy))
        return 0

    cdef int cancel_all(self, Strategy strategy, StrategyContext ctx) except -1:
        self._accept(make_signal("", OT_CANCEL_ALL, 0.0, 0.0, 0.0, 0.0, 0,
                                 None if ctx is None else ctx.symbol, 0, TIF_GTC, self.clock.read(),
                                 strategy))
        return 0

    cdef int modify(self, Strategy strategy, int64_t order_id, double price, double qty) except -1:
        self._accept(make_signal("", OT_MODIFY, 0.0 if isnan(qty) else qty,
                                 0.0 if isnan(price) else price, 0.0, 0.0, order_id, None, 0, TIF_GTC,
                                 self.clock.read(), strategy))
        return 0

    cdef list open_orders(self, Strategy strategy, StrategyContext ctx):
        if self._open_orders is None:
            return []
        return list(self._open_orders(strategy, ctx.symbol))


# ---------------------------------------------------------------------------------------------
# Validation helpers

cdef int _side(object side) except -1:
    if isinstance(side, str):
        code = _SIDE_CODES.get(side.lower())
        if code is not None:
            return code
    elif isinstance(side, int) and not isinstance(side, bool) and (side == 0 or side == 1):
        return side
    raise ValueError(f"side must be 'buy' or 'sell' (or 0/1), got {side!r}")


cdef int _tif(object tif) except -1:
    if tif is None:
        return TIF_GTC
    if isinstance(tif, str):
        code = _TIF_CODES.get(tif.upper())
        if code is not None:
            return code
    raise ValueError(f"time_in_force must be one of GTC, IOC, FOK, got {tif!r}")


cdef double _number(object value, str what) except? -1.0:
    """A finite float > 0, or a clear error."""
    cdef double x
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        x = value
    except TypeError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not (x > 0.0 and x < INFINITY):
        raise ValueError(f"{what} must be a finite number > 0, got {value!r}")
    return x


cdef int _decimals(double step):
    """Decimals needed to write multiples of ``step`` exactly (0.01 -> 2, 0.5 -> 1)."""
    cdef int d = 0
    while d < 12 and fabs(step * 10.0 ** d - c_round(step * 10.0 ** d)) > 1e-9 * step * 10.0 ** d:
        d += 1
    return d


cdef double whole_lots(double qty, double lot) noexcept:
    """``qty`` (>= 0) rounded down to a multiple of ``lot`` (float noise forgiven); ``qty`` when lot is 0."""
    if lot <= 0.0:
        return qty
    return round(floor(qty / lot + 1e-9) * lot, _decimals(lot))


def check_grid(double x, double step, str what="price", symbol=None):
    """``x`` snapped to a multiple of ``step`` (0: no grid), or ValueError when off the grid."""
    return on_grid(x, step, what, symbol)


cdef double on_grid(double x, double step, str what, object symbol) except? -1.0:
    """``x`` snapped to a multiple of ``step`` (float noise removed), or ValueError if it is
    off the grid by more than a millionth of a step."""
    cdef double k, r
    if step <= 0.0:
        return x
    k = x / step
    r = c_round(k)
    if fabs(k - r) > 1e-6 or r < 1.0:
        raise ValueError(f"{what} {x!r} is not a multiple of {symbol}'s "
                         f"{'tick' if what != 'quantity' else 'lot'} size {step!r}")
    return round(r * step, _decimals(step))


# ---------------------------------------------------------------------------------------------
# Strategy

cdef class Strategy:
    """Base class of every strategy; subclass it and override the callbacks you need.

    ``__init__(self, symbols)`` takes the Symbols it trades (from a SymbolRegistry); order
    methods default to the first. Callbacks: on_start, on_stop, on_trade(ctx, trade),
    on_book_update(ctx), on_bar(ctx, bar), on_order_update(symbol, status, filled, avg_price[,
    order]), on_fill(fill), on_initial_position(symbol, qty, avg_price), on_error(symbol,
    error), on_timer(name), on_params_update(params).

    Order methods return the new order's id (an int, unique within its runner) and raise
    ValueError before anything is sent when the order is invalid (quantity <= 0, price or
    quantity off the symbol's tick/lot grid, unknown symbol or order id).
    """

    def __cinit__(self, *args, **kwargs):
        self.symbols = []
        self.name = type(self).__name__
        self._ctx_by_key = {}
        self._timers = {}
        self._next_timer = INT64_MAX

    def __init__(self, symbols=(), name=None):
        if hasattr(symbols, "tick_size"):            # one Symbol
            symbols = [symbols]
        self.symbols = list(symbols)
        if name is not None:
            self.name = name

    @property
    def symbol(self):
        """The first symbol: what order methods use when no ``symbol=`` is given."""
        return self.symbols[0] if self.symbols else None

    # -- callbacks (override) --------------------------------------------------------------

    def on_start(self):
        pass

    def on_stop(self):
        pass

    def on_trade(self, ctx, trade):
        pass

    def on_book_update(self, ctx):
        pass

    def on_bar(self, ctx, bar):
        pass

    def on_order_update(self, symbol, status, filled, avg_price, order=None):
        """status: "acked", "partially_filled", "filled", "cancelled", "rejected", "expired".
        Overrides with a fifth parameter receive the Order snapshot (id, side, type, reason...)."""
        pass

    def on_fill(self, fill):
        pass

    def on_initial_position(self, symbol, qty, avg_price):
        pass

    def on_error(self, symbol, error):
        log.warning("%s: %s: %s", self.name, symbol, error)

    def on_timer(self, name):
        pass

    def on_params_update(self, params):
        pass

    # -- attachment (runners) ------------------------------------------------------------------

    def _attach(self, OrderSink sink, contexts):
        """Bind to a runner: ``contexts`` maps each of self.symbols to its StrategyContext."""
        cdef StrategyContext ctx
        self._sink = sink
        self._ctx_by_key = {}
        self._ctx0 = None
        for symbol in self.symbols:
            ctx = contexts[symbol]
            ctx._sink = sink
            ctx._strategy = self
            self._ctx_by_key[int(symbol)] = ctx
            self._ctx_by_key[str(getattr(symbol, "name", symbol))] = ctx
            if self._ctx0 is None:
                self._ctx0 = ctx
        now = sink.clock.read()
        for timer in self._timers.values():      # timers count from the start of this run
            timer[1] = _first_due(timer, now)
        self._recompute_next()

    def _detach(self):
        self._sink = None

    def context(self, symbol=None):
        """The StrategyContext of ``symbol`` (default: the first symbol)."""
        return self.context_for(symbol)

    cdef StrategyContext context_for(self, object symbol):
        cdef StrategyContext ctx
        if symbol is None:
            if self._ctx0 is None:
                if not self.symbols:
                    raise ValueError(f"{self.name} has no symbols: pass them to Strategy.__init__ "
                                     "(super().__init__(symbols))")
                raise RuntimeError(f"{self.name} is not attached to a runner yet: orders can be sent "
                                   "from on_start on")
            return self._ctx0
        ctx = self._ctx_by_key.get(symbol)
        if ctx is None:
            if self._sink is None:
                raise RuntimeError(f"{self.name} is not attached to a runner yet")
            raise ValueError(f"unknown symbol {symbol!r}: {self.name} trades "
                             f"{[str(getattr(s, 'name', s)) for s in self.symbols]}")
        if hasattr(symbol, "tick_size") and ctx.symbol is not symbol:
            raise ValueError(f"symbol {symbol!r} belongs to another SymbolRegistry than {self.name}'s")
        return ctx

    def position(self, symbol=None):
        """Signed position of ``symbol`` (default: the first symbol)."""
        return self.context_for(symbol).pos

    # -- orders --------------------------------------------------------------------------------

    cdef object _order(self, object symbol, int side, int otype, object qty, object price,
                       object trigger, double offset, object tif, bint post_only, bint reduce_only):
        cdef StrategyContext ctx = self.context_for(symbol)
        cdef object sym = ctx.symbol
        cdef double q = _number(qty, "quantity")
        cdef double px = 0.0, trg = 0.0
        cdef int tif_code = _tif(tif)
        cdef int flags = 0
        cdef double tick = getattr(sym, "tick_size", 0.0) or 0.0
        cdef double lot = getattr(sym, "lot_size", 0.0) or 0.0
        if lot > 0.0:
            q = on_grid(q, lot, "quantity", sym)
        if price is not None:
            px = on_grid(_number(price, "price"), tick, "price", sym)
        if trigger is not None:
            trg = on_grid(_number(trigger, "trigger price"), tick, "trigger price", sym)
        if post_only:
            if otype != OT_LIMIT or tif_code != TIF_GTC:
                raise ValueError("post_only needs a GTC limit order")
            flags |= FLAG_POST_ONLY
        if reduce_only:
            flags |= FLAG_REDUCE_ONLY
        if self._sink is None:
            raise RuntimeError(f"{self.name} is not attached to a runner yet")
        return self._sink.submit(self, ctx, side, otype, q, px, trg, offset, tif_code, flags)

    def market_buy(self, qty, symbol=None, *, reduce_only=False):
        """Buy ``qty`` at market. Returns the order id."""
        return self._order(symbol, EV_BUY, OT_MARKET, qty, None, None, 0.0, None, False, reduce_only)

    def market_sell(self, qty, symbol=None, *, reduce_only=False):
        """Sell ``qty`` at market. Returns the order id."""
        return self._order(symbol, EV_SELL, OT_MARKET, qty, None, None, 0.0, None, False, reduce_only)

    def limit_buy(self, price, qty, symbol=None, *, time_in_force="GTC", post_only=False,
                  reduce_only=False):
        """Buy ``qty`` at ``price`` or better; GTC rests, IOC/FOK fill now or cancel."""
        return self._order(symbol, EV_BUY, OT_LIMIT, qty, price, None, 0.0, time_in_force,
                           post_only, reduce_only)

    def limit_sell(self, price, qty, symbol=None, *, time_in_force="GTC", post_only=False,
                   reduce_only=False):
        """Sell ``qty`` at ``price`` or better; GTC rests, IOC/FOK fill now or cancel."""
        return self._order(symbol, EV_SELL, OT_LIMIT, qty, price, None, 0.0, time_in_force,
                           post_only, reduce_only)

    def stop_market(self, side, trigger, qty, symbol=None, *, reduce_only=False):
        """Market order once a trade reaches ``trigger`` (buy: at or above, sell: at or below)."""
        return self._order(symbol, _side(side), OT_STOP_MARKET, qty, None, trigger, 0.0, None,
                           False, reduce_only)

    def stop_limit(self, side, trigger, limit, qty, symbol=None, *, time_in_force="GTC",
                   reduce_only=False):
        """Limit order at ``limit`` once a trade reaches ``trigger`` (as stop_market)."""
        return self._order(symbol, _side(side), OT_STOP_LIMIT, qty, limit, trigger, 0.0,
                           time_in_force, False, reduce_only)

    def take_profit_market(self, side, trigger, qty, symbol=None, *, reduce_only=False):
        """Market order once a trade reaches ``trigger`` (sell: at or above, buy: at or below)."""
        return self._order(symbol, _side(side), OT_TP_MARKET, qty, None, trigger, 0.0, None,
                           False, reduce_only)

    def take_profit_limit(self, side, trigger, limit, qty, symbol=None, *, time_in_force="GTC",
                          reduce_only=False):
        """Limit order at ``limit`` once a trade reaches ``trigger`` (as take_profit_market)."""
        return self._order(symbol, _side(side), OT_TP_LIMIT, qty, limit, trigger, 0.0,
                           time_in_force, False, reduce_only)

    def trailing_stop(self, side, offset, qty, symbol=None, *, activation=None, reduce_only=False):
        """Market order once the price moves ``offset`` (price units) against the best price
        seen since the order was placed (or since ``activation`` traded): a sell trails the
        highest trade, a buy the lowest."""
        cdef StrategyContext ctx = self.context_for(symbol)
        cdef double off = _number(offset, "trailing offset")
        cdef double tick = getattr(ctx.symbol, "tick_size", 0.0) or 0.0
        off = on_grid(off, tick, "trailing offset", ctx.symbol)
        return self._order(symbol, _side(side), OT_TRAILING, qty, None, activation, off, None,
                           False, reduce_only)

    def trailing_stop_percent(self, side, bps, qty, symbol=None, *, activation=None,
                              reduce_only=False):
        """As trailing_stop with the offset in basis points of the best price seen."""
        cdef double b = _number(bps, "trailing bps")
        if b >= 10_000.0:
            raise ValueError(f"trailing bps must be below 10000, got {bps!r}")
        return self._order(symbol, _side(side), OT_TRAILING_PCT, qty, None, activation, b, None,
                           False, reduce_only)

    def close_position(self, symbol=None):
        """Flatten the position with a reduce-only market order of the whole lots it holds
        (None when flat: less than one lot, see ``StrategyContext.is_flat``)."""
        cdef StrategyContext ctx = self.context_for(symbol)
        cdef double qty = ctx.closable()
        if qty == 0.0:
            return None
        if self._sink is None:
            raise RuntimeError(f"{self.name} is not attached to a runner yet")
        return self._sink.submit(self, ctx, EV_SELL if ctx.pos > 0.0 else EV_BUY, OT_CLOSE,
                                 qty, 0.0, 0.0, 0.0, TIF_GTC, FLAG_REDUCE_ONLY)

    def cancel(self, order_id):
        """Cancel an open order; returns its id. The outcome comes as on_order_update."""
        if self._sink is None:
            raise RuntimeError(f"{self.name} is not attached to a runner yet")
        if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id < 1:
            raise ValueError(f"order id must be an int returned by an order method, got {order_id!r}")
        self._sink.cancel(self, order_id)
        return order_id

    def cancel_all(self, symbol=None):
        """Cancel every open order of ``symbol``, or of every symbol when None."""
        if self._sink is None:
            raise RuntimeError(f"{self.name} is not attached to a runner yet")
        self._sink.cancel_all(self, None if symbol is None else self.context_for(symbol))

    def modify(self, order_id, price=None, qty=None):
        """Change an open order's price (limit price; trigger for stop/take-profit market
        orders) and/or quantity; returns its id."""
        cdef double px = NAN, q = NAN
        if self._sink is None:
            raise RuntimeError(f"{self.name} is not attached to a runner yet")
        if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id < 1:
            raise ValueError(f"order id must be an int returned by an order method, got {order_id!r}")
        if price is None and qty is None:
            raise ValueError("modify needs a new price and/or qty")
        if price is not None:
            px = _number(price, "price")
        if qty is not None:
            q = _number(qty, "quantity")
        self._sink.modify(self, order_id, px, q)
        return order_id

    # -- timers --------------------------------------------------------------------------------

    def set_timer(self, name, interval_s, *, repeat=True):
        """Call on_timer(name) every ``interval_s`` seconds of the runner's clock (the event
        clock in a backtest, real time live); once when repeat=False. Replaces a timer of the
        same name."""
        cdef double secs = _number(interval_s, "timer interval")
        cdef int64_t step = <int64_t>(secs * 1e9 + 0.5)
        if step < 1:
            raise ValueError(f"timer interval must be at least 1 ns, got {interval_s!r}")
        timer = [step, INT64_MIN, bool(repeat), None]
        if self._sink is not None:
            timer[1] = _first_due(timer, self._sink.clock.read())
        self._timers[str(name)] = timer
        self._recompute_next()

    def set_daily_timer(self, name, at):
        """Call on_timer(name) every day at wall-clock time ``at`` (UTC): "HH:MM[:SS]" or a
        datetime.time."""
        if isinstance(at, _dt.time):
            secs = at.hour * 3600 + at.minute * 60 + at.second + at.microsecond / 1e6
        else:
            try:
                parts = [float(p) for p in str(at).split(":")]
                if len(parts) not in (2, 3):
                    raise ValueError
                h, m, s = (parts + [0.0])[:3]
                if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
                    raise ValueError
            except ValueError:
                raise ValueError(f"daily timer time must be 'HH:MM[:SS]' (UTC), got {at!r}") from None
            secs = h * 3600 + m * 60 + s
        timer = [DAY_NS, INT64_MIN, True, <int64_t>(secs * 1e9)]
        if self._sink is not None:
            timer[1] = _first_due(timer, self._sink.clock.read())
        self._timers[str(name)] = timer
        self._recompute_next()

    def cancel_timer(self, name):
        """Stop a timer (no error if there is none)."""
        self._timers.pop(str(name), None)
        self._recompute_next()

    @property
    def timers(self):
        """{name: next due time in ns} of the active timers."""
        return {name: t[1] for name, t in self._timers.items()}

    def _recompute_next(self):
        cdef int64_t best = INT64_MAX
        for timer in self._timers.values():
            if timer[1] != INT64_MIN and timer[1] < best:
                best = timer[1]
        self._next_timer = best

    cdef int64_t next_timer_ns(self) noexcept:
        return self._next_timer

    cdef object pop_due_timer(self, int64_t now):
        """The (name, due time) of the earliest timer due at ``now``, rescheduled; else None."""
        cdef int64_t due
        if self._next_timer > now:
            return None
        found = None
        for name, timer in self._timers.items():
            if timer[1] == self._next_timer:
                found = name
                break
        if found is None:
            self._recompute_next()
            return None
        timer = self._timers[found]
        due = timer[1]
        if timer[2]:
            timer[1] = due + timer[0]
        else:
            del self._timers[found]
        self._recompute_next()
        return found, due

    def _pop_due_timer(self, int64_t now, bint skip_missed=False):
        """Python access for runners: (name, due) or None. skip_missed: a repeating timer whose
        next due time is already past is rescheduled from ``now`` (live catch-up)."""
        out = self.pop_due_timer(now)
        if out is not None and skip_missed:
            timer = self._timers.get(out[0])
            if timer is not None and timer[1] <= now:
                timer[1] = _first_due(timer, now)
                self._recompute_next()
        return out

    @property
    def next_timer_due(self):
        """Due time (ns) of the next timer, None without timers."""
        return None if self._next_timer == INT64_MAX else self._next_timer

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} on {[str(s) for s in self.symbols]}>"


cdef int64_t _first_due(list timer, int64_t now):
    cdef int64_t at, day_start, due
    if timer[3] is None:
        return now + <int64_t>timer[0]
    at = timer[3]
    day_start = now - now % DAY_NS
    due = day_start + at
    if due <= now:
        due += DAY_NS
    return due
