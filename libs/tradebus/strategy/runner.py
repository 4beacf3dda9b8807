"""Runner: strategies fed with live market data; every order method becomes a Signal.

    def on_signal(sig):                  # sig.side, sig.order_type, sig.quantity, sig.price, ...
        send_to_exchange(sig)

    runner = Runner(registry, on_signal)                 # callbacks run in the caller's thread
    runner = Runner(registry, on_signal, threaded=True)  # or on one background thread
    runner.add_strategy(SmaCross([btc]))
    runner.start()
    runner.on_trade(btc, price, qty, is_buy, ts_ns)
    runner.on_book_snapshot(btc, bid_px, bid_qty, ask_px, ask_qty, ts_ns)
    runner.on_fill(order_id, price, qty, fee)            # what the venue reports back
    runner.stop()

Positions follow the fills reported back (``on_fill``), never the orders sent. A strategy that
raises in a callback is logged with its traceback, told through its on_error, reported to the
runner's ``on_error`` hook, and the others carry on. Timers run on the real clock: call
``poll_timers()`` regularly (threaded runners do it themselves).
"""
from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tradebus.engine.event import (
    BarEvent,
    Clock,
    Fill,
    Order,
    OrderBook,
    OrderError,
    Signal,
    SignalSink,
    Strategy,
    StrategyContext,
    TradeEvent,
    check_grid,
)

from .backtest import accepts_order_arg
from .orders import KEEP_CLOSED, OrderRecord, OrderRecords
from .symbols import Symbol, SymbolRegistry

__all__ = ["Runner", "OrderRecord"]

log = logging.getLogger("tradebus.strategy.runner")

_STOP = object()


class _Hosted:
    """One strategy in a runner: its contexts and how to call it."""

    def __init__(self, strategy: Strategy, contexts: dict[Symbol, StrategyContext]) -> None:
        self.strategy = strategy
        self.contexts = contexts
        self.with_order = (type(strategy).on_order_update is not Strategy.on_order_update
                           and accepts_order_arg(strategy.on_order_update))
        self.errors = 0
        self.orders = 0
        self.fills = 0
        self.external_trades: set[str] = set()


class Runner:
    """Hosts strategies on live data (see the module docstring).

    on_signal(signal) receives every order, cancel and modify (tradebus.strategy.Signal) and may
    raise to refuse one (the strategy's order method then raises). on_error(strategy, where,
    exception) hears about failing callbacks. threaded=True runs every strategy callback on one
    background thread fed by a bounded queue (``queue_size`` events; the feeding thread waits
    when it is full), in the order the events were given. symbol_names=True passes the symbol's
    name (a str, e.g. the ccxt symbol) instead of the Symbol to on_order_update,
    on_initial_position and on_error, as FLOX's CcxtBroker does. ``orders`` holds the open orders
    and the ``keep_closed`` most recently closed ones (``tradebus.strategy.orders``).
    """

    def __init__(
        self,
        registry: SymbolRegistry,
        on_signal: Callable[[Signal], Any],
        threaded: bool = False,
        *,
        queue_size: int = 65_536,
        on_error: Callable[[Strategy, str, BaseException], Any] | None = None,
        clock: Clock | None = None,
        symbol_names: bool = False,
        keep_closed: int = KEEP_CLOSED,
    ) -> None:
        if not isinstance(registry, SymbolRegistry):
            raise TypeError(f"registry must be a SymbolRegistry, got {type(registry).__name__}")
        if not callable(on_signal):
            raise TypeError("on_signal must be callable")
        self.registry = registry
        self.threaded = threaded
        self._on_signal = on_signal
        self._on_error = on_error
        self._symbol_names = bool(symbol_names)
        self._clock = clock if clock is not None else Clock(live=True)
        self._sink = SignalSink(self._accept, self._open_orders, self._clock)
        self._hosted: list[_Hosted] = []
        self._by_strategy: dict[int, _Hosted] = {}
        self._by_symbol: dict[int, list[tuple[_Hosted, StrategyContext]]] = {}
        self._books: dict[int, OrderBook] = {}
        self.orders = OrderRecords(keep_closed)
        self._running = False
        self._queue: queue.Queue | None = queue.Queue(maxsize=queue_size) if threaded else None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None

    # -- strategies ----------------------------------------------------------------------------

    def add_strategy(self, strategy: Strategy) -> Strategy:
        """Host ``strategy`` (before or after start; on_start runs when the runner starts, or
        at once when it is already running)."""
        if not isinstance(strategy, Strategy):
            raise TypeError(f"expected a tradebus Strategy, got {type(strategy).__name__}")
        if not strategy.symbols:
            raise ValueError(f"{strategy.name} has no symbols: call super().__init__(symbols) in its __init__")
        if id(strategy) in self._by_strategy:
            raise ValueError(f"{strategy.name} is already in this runner")
        if any(h.strategy.name == strategy.name for h in self._hosted):
            raise ValueError(f"a strategy named {strategy.name!r} is already in this runner")
        contexts = {}
        for i, symbol in enumerate(strategy.symbols):
            if not isinstance(symbol, Symbol) or self.registry.get(int(symbol)) is not symbol:
                raise ValueError(f"{strategy.name} trades {symbol!r}, which is not in this runner's "
                                 f"registry {self.registry.names()}")
            book = self._books.setdefault(int(symbol), OrderBook(symbol))
            contexts[symbol] = StrategyContext(symbol, book, self._clock, i)
        hosted = _Hosted(strategy, contexts)
        strategy._attach(self._sink, contexts)
        self._hosted.append(hosted)
        self._by_strategy[id(strategy)] = hosted
        for symbol, ctx in contexts.items():
            self._by_symbol.setdefault(int(symbol), []).append((hosted, ctx))
        if self._running:
            self._dispatch(self._start_one, hosted)
        return strategy

    @property
    def strategies(self) -> list[Strategy]:
        return [h.strategy for h in self._hosted]

    def strategy(self, name: str) -> Strategy:
        for h in self._hosted:
            if h.strategy.name == name:
                return h.strategy
        raise KeyError(f"no strategy named {name!r}")

    def context(self, strategy: Strategy, symbol) -> StrategyContext:
        return self._by_strategy[id(strategy)].contexts[self.registry.get(symbol)]

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Call on_start on every strategy (on the runner's thread when threaded)."""
        if self._running:
            return
        self._running = True
        if self.threaded:
            self._thread = threading.Thread(target=self._worker, name="tradebus-runner", daemon=True)
            self._thread.start()
        for hosted in list(self._hosted):
            self._dispatch(self._start_one, hosted)

    def stop(self, timeout: float | None = None) -> None:
        """Deliver what is queued, then call on_stop on every strategy."""
        if not self._running:
            return
        for hosted in list(self._hosted):
            self._dispatch(self._call, hosted, None, "on_stop", hosted.strategy.on_stop)
        self._running = False
        if self.threaded and self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        if self._thread_error is not None:
            raise RuntimeError("the runner thread failed") from self._thread_error

    def join(self) -> None:
        """Wait until every queued event was delivered (threaded runners)."""
        if self.threaded and self._queue is not None:
            self._queue.join()

    def _start_one(self, hosted: _Hosted) -> None:
        self._call(hosted, None, "on_start", hosted.strategy.on_start)

    def _dispatch(self, fn, *args) -> None:
        if self.threaded:
            self._queue.put((fn, args))
        else:
            fn(*args)

    def _worker(self) -> None:
        q = self._queue
        while True:
            due = self.next_timer_due()
            timeout = None if due is None else max(0.0, (due - self._clock.now_ns()) / 1e9)
            try:
                item = q.get(timeout=timeout)
            except queue.Empty:
                self.poll_timers()
                continue
            try:
                if item is _STOP:
                    return
                fn, args = item
                fn(*args)
                if due is not None and self._clock.now_ns() >= due:
                    self.poll_timers()
            except BaseException as exc:          # a bug in the runner itself, not a strategy
                log.exception("runner thread failed")
                self._thread_error = exc
                return
            finally:
                q.task_done()

    def _call(self, hosted: _Hosted, symbol, where: str, fn, *args) -> None:
        """Call a strategy callback; a failure is logged, reported and survived."""
        try:
            fn(*args)
        except Exception as exc:
            self._failed(hosted, symbol, where, exc)

    def _failed(self, hosted: _Hosted, symbol, where: str, exc: BaseException) -> None:
        hosted.errors += 1
        strategy = hosted.strategy
        log.error("strategy %s raised in %s", strategy.name, where, exc_info=exc)
        if where != "on_error":
            try:
                strategy.on_error(self._named(symbol), exc)
            except Exception as inner:
                log.error("strategy %s raised in on_error", strategy.name, exc_info=inner)
        if self._on_error is not None:
            try:
                self._on_error(strategy, where, exc)
            except Exception:
                log.exception("the runner's on_error hook failed")

    # -- market data ---------------------------------------------------------------------------

    def _symbol(self, symbol) -> Symbol:
        try:
            return self.registry.get(symbol)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None

    def on_trade(self, symbol, price: float, qty: float, is_buy: bool, ts_ns: int | None = None) -> None:
        """A public trade of ``symbol`` (aggressor bought when is_buy)."""
        sym = self._symbol(symbol)
        price, qty = float(price), float(qty)
        if not (math.isfinite(price) and price > 0 and math.isfinite(qty) and qty >= 0):
            raise ValueError(f"trade needs a finite price > 0 and qty >= 0, got {price!r}, {qty!r}")
        self._dispatch(self._trade, sym, price, qty, bool(is_buy), time.time_ns() if ts_ns is None else int(ts_ns))

    def _trade(self, sym: Symbol, price: float, qty: float, is_buy: bool, ts_ns: int) -> None:
        subscribers = self._by_symbol.get(int(sym))
        if not subscribers:
            return
        trade = TradeEvent(sym, price, qty, is_buy, ts_ns)
        for hosted, ctx in subscribers:
            ctx._on_trade(price, qty, is_buy, ts_ns)
            ctx._set_last_trade(trade)
            self._call(hosted, sym, "on_trade", hosted.strategy.on_trade, ctx, trade)

    def on_book_snapshot(self, symbol, bid_px, bid_qty, ask_px, ask_qty, ts_ns: int | None = None) -> None:
        """Replace ``symbol``'s book: prices and quantities per side, best first (sequences), or
        one level per side (numbers, as a best bid/offer update)."""
        sym = self._symbol(symbol)
        bids = list(_levels(bid_px, bid_qty, "bid"))
        asks = list(_levels(ask_px, ask_qty, "ask"))
        self._dispatch(self._book, sym, bids, asks, True, time.time_ns() if ts_ns is None else int(ts_ns))

    def on_book_delta(self, symbol, bids: Iterable = (), asks: Iterable = (), ts_ns: int | None = None) -> None:
        """Change levels of ``symbol``'s book: (price, qty) pairs per side, qty 0 removes one."""
        sym = self._symbol(symbol)
        b = [(float(p), float(q)) for p, q in bids]
        a = [(float(p), float(q)) for p, q in asks]
        for p, q in b + a:
            if not (math.isfinite(p) and p > 0 and math.isfinite(q) and q >= 0):
                raise ValueError(f"book level needs a finite price > 0 and qty >= 0, got {p!r}, {q!r}")
        self._dispatch(self._book, sym, b, a, False, time.time_ns() if ts_ns is None else int(ts_ns))

    def _book(self, sym: Symbol, bids, asks, replace: bool, ts_ns: int) -> None:
        book = self._books.get(int(sym))
        if book is None:
            return
        if replace:
            book.set_snapshot(bids, asks, ts_ns)
        else:
            book.apply(bids, asks, ts_ns)
        for hosted, ctx in self._by_symbol.get(int(sym), ()):
            self._call(hosted, sym, "on_book_update", hosted.strategy.on_book_update, ctx)

    def on_bar(self, symbol, ts_ns: int, open: float, high: float, low: float, close: float,
               volume: float = 0.0) -> None:
        """A closed OHLCV bar of ``symbol`` (ts_ns: its open time)."""
        sym = self._symbol(symbol)
        self._dispatch(self._bar, sym, int(ts_ns), float(open), float(high), float(low), float(close), float(volume))

    def _bar(self, sym: Symbol, ts_ns, o, h, l, c, v) -> None:
        bar = BarEvent(sym, ts_ns, o, h, l, c, v)
        for hosted, ctx in self._by_symbol.get(int(sym), ()):
            ctx._on_trade(c, v, True, ts_ns)
            self._call(hosted, sym, "on_bar", hosted.strategy.on_bar, ctx, bar)

    # -- timers and parameters -------------------------------------------------------------------

    def next_timer_due(self) -> int | None:
        """Earliest due time (ns) of any strategy's timer."""
        dues = [h.strategy.next_timer_due for h in self._hosted]
        dues = [d for d in dues if d is not None]
        return min(dues) if dues else None

    def poll_timers(self, now_ns: int | None = None) -> int:
        """Fire every timer due by ``now_ns`` (default: the clock); returns how many fired.
        A repeating timer that fell behind fires once and resumes from now."""
        now = self._clock.now_ns() if now_ns is None else now_ns
        fired = 0
        for hosted in list(self._hosted):
            while True:
                due = hosted.strategy._pop_due_timer(now, True)
                if due is None:
                    break
                fired += 1
                self._call(hosted, None, "on_timer", hosted.strategy.on_timer, due[0])
        return fired

    def update_params(self, strategy_name: str, params: dict) -> None:
        """Deliver new parameter values to one strategy's on_params_update."""
        hosted = self._by_strategy[id(self.strategy(strategy_name))]
        self._dispatch(self._call, hosted, None, "on_params_update", hosted.strategy.on_params_update, dict(params))

    def set_initial_position(self, strategy: Strategy, symbol, qty: float, avg_price: float) -> None:
        """Tell a strategy the position it already holds (e.g. rebuilt from past fills)."""
        hosted = self._by_strategy[id(strategy)]
        sym = self._symbol(symbol)
        self._dispatch(self._initial_position, hosted, sym, float(qty), float(avg_price))

    def _initial_position(self, hosted: _Hosted, sym: Symbol, qty: float, avg: float) -> None:
        hosted.contexts[sym]._set_position(qty, avg)
        self._call(hosted, sym, "on_initial_position", hosted.strategy.on_initial_position, self._named(sym), qty, avg)

    # -- orders out ----------------------------------------------------------------------------

    def _accept(self, sig: Signal) -> None:
        """Called by the strategy's order methods (through the sink): register, then hand on."""
        hosted = self._by_strategy.get(id(sig.strategy))
        if hosted is None:
            raise RuntimeError(f"{sig.strategy!r} is not in this runner")
        kind = sig.order_type
        if kind in ("cancel", "modify"):
            record = self.orders.get(sig.order_id)
            if record is None or record.strategy is not sig.strategy:
                raise ValueError(f"unknown order id {sig.order_id}: not returned by an order method of "
                                 f"{sig.strategy.name}")
            if kind == "modify" and sig.price:
                check_grid(sig.price, record.symbol.tick_size, "price", record.symbol)
            if kind == "modify" and sig.quantity and record.symbol.lot_size:
                check_grid(sig.quantity, record.symbol.lot_size, "quantity", record.symbol)
            self._on_signal(sig)
            return
        if kind == "cancel_all":
            self._on_signal(sig)
            return
        record = OrderRecord(sig.order_id, sig.strategy, sig.symbol, sig.side, kind, sig.quantity,
                             sig.price, sig.trigger, sig.offset, sig.flags, sig.time_in_force, sig.ts_ns)
        self.orders.add(record)
        try:
            self._on_signal(sig)
        except BaseException:
            self.orders.discard(sig.order_id)
            raise
        hosted.orders += 1

    def _open_orders(self, strategy: Strategy, symbol) -> list[Order]:
        return [r.snapshot() for r in self.orders.open(strategy, symbol)]

    def open_orders(self, strategy: Strategy | None = None) -> list[OrderRecord]:
        return self.orders.open(strategy)

    # -- order events back ---------------------------------------------------------------------

    def _event(self, fn, order_id: int, *args) -> bool:
        record = self.orders.get(order_id)
        if record is None:
            return False
        self._dispatch(fn, record, *args)
        return True

    def on_order_acked(self, order_id: int, exchange_order_id: str | None = None) -> bool:
        """The venue accepted order ``order_id``; False when the id is unknown."""
        return self._event(self._acked, order_id, exchange_order_id)

    def _acked(self, record: OrderRecord, exchange_order_id) -> None:
        if exchange_order_id:
            record.exchange_order_id = exchange_order_id
        if record.status == "new":
            record.status = "acked"
            self._update(record)

    def on_order_rejected(self, order_id: int, reason: str = "", code: str = "unknown") -> bool:
        """The venue or router refused order ``order_id``."""
        return self._event(self._rejected, order_id, reason, code)

    def _rejected(self, record: OrderRecord, reason: str, code: str) -> None:
        record.status = "rejected"
        record.reason = reason or code
        self._update(record)
        hosted = self._by_strategy[id(record.strategy)]
        error = OrderError(f"order {record.order_id} rejected ({code}): {reason}", code, record.order_id, record.symbol)
        self._call(hosted, record.symbol, "on_error", record.strategy.on_error, self._named(record.symbol), error)

    def on_fill(self, order_id: int, price: float, qty: float, fee: float = 0.0, ts_ns: int | None = None,
                is_maker: bool = False, trade_id: str | None = None, position_change: float | None = None) -> bool:
        """An execution of order ``order_id``: the strategy's position moves here. A fill whose
        trade_id was already seen for the order is ignored (redelivery). ``fee`` is in the quote
        currency; ``position_change`` (signed) is what the position moves when it is not the
        executed quantity (a spot fee charged in the base asset: ``tradebus.execution``)."""
        return self._event(self._fill, order_id, float(price), float(qty), float(fee),
                           time.time_ns() if ts_ns is None else int(ts_ns), bool(is_maker), trade_id,
                           position_change)

    def _fill(self, record: OrderRecord, price, qty, fee, ts_ns, is_maker, trade_id, position_change) -> None:
        if trade_id:
            if trade_id in record.trade_ids:
                return
            record.trade_ids.add(trade_id)
        hosted = self._by_strategy[id(record.strategy)]
        ctx = hosted.contexts[record.symbol]
        signed = qty if record.side == "buy" else -qty
        ctx._apply_fill(signed if position_change is None else float(position_change), price, fee)
        record.filled += qty
        record.notional += qty * price
        # a reduce-only order is done once the position is flat (what is left is below a lot);
        # an order the venue already reported filled stays filled
        done = (record.filled >= record.qty * (1 - 1e-9) or (record.flags & 2 and ctx.is_flat())
                or record.status == "filled")
        record.status = "filled" if done else "partially_filled"
        hosted.fills += 1
        fill = Fill(record.order_id, record.symbol, record.side, price, qty, fee, ts_ns, is_maker,
                    ctx.position, 0.0 if done else record.qty - record.filled, record.order_type, trade_id)
        self._call(hosted, record.symbol, "on_fill", record.strategy.on_fill, fill)
        self._update(record)

    def on_order_filled(self, order_id: int) -> bool:
        """The venue reports order ``order_id`` filled (an order status): its record closes even
        when the fills it was told of add up to less than it asked (a venue rounds a quantity
        down to its lot). False when the id is unknown."""
        return self._event(self._filled_at_venue, order_id)

    def _filled_at_venue(self, record: OrderRecord) -> None:
        if record.is_open:
            record.status = "filled"
            self._update(record)

    def on_external_fill(self, strategy: Strategy, symbol, side: str, price: float, qty: float,
                         fee: float = 0.0, ts_ns: int | None = None, trade_id: str | None = None,
                         position_change: float | None = None) -> bool:
        """An execution of an order this runner did not send (one of a previous session): the
        position moves and on_fill gets order_id 0. A trade_id seen before is ignored.
        ``fee`` and ``position_change`` as in ``on_fill``."""
        hosted = self._by_strategy[id(strategy)]
        sym = self._symbol(symbol)
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        if trade_id:
            if trade_id in hosted.external_trades:
                return False
            hosted.external_trades.add(trade_id)
        self._dispatch(self._external_fill, hosted, sym, side, float(price), float(qty), float(fee),
                       time.time_ns() if ts_ns is None else int(ts_ns), trade_id, position_change)
        return True

    def _external_fill(self, hosted: _Hosted, sym: Symbol, side, price, qty, fee, ts_ns, trade_id,
                       position_change) -> None:
        ctx = hosted.contexts[sym]
        signed = qty if side == "buy" else -qty
        ctx._apply_fill(signed if position_change is None else float(position_change), price, fee)
        hosted.fills += 1
        fill = Fill(0, sym, side, price, qty, fee, ts_ns, False, ctx.position, 0.0, "market", trade_id)
        self._call(hosted, sym, "on_fill", hosted.strategy.on_fill, fill)

    def on_order_cancelled(self, order_id: int, reason: str = "", unsolicited: bool = False) -> bool:
        """Order ``order_id`` left the book without filling completely."""
        return self._event(self._cancelled, order_id, reason, unsolicited)

    def _cancelled(self, record: OrderRecord, reason: str, unsolicited: bool) -> None:
        if not record.is_open:
            return
        record.status = "cancelled"
        record.reason = reason
        self._update(record)

    def on_order_expired(self, order_id: int, reason: str = "") -> bool:
        return self._event(self._expired, order_id, reason)

    def _expired(self, record: OrderRecord, reason: str) -> None:
        if record.is_open:
            record.status = "expired"
            record.reason = reason
            self._update(record)

    def on_order_modified(self, order_id: int, price: float | None = None, qty: float | None = None) -> bool:
        """A modify of ``order_id`` was accepted; price and qty are its values now."""
        return self._event(self._modified, order_id, price, qty)

    def _modified(self, record: OrderRecord, price, qty) -> None:
        if price is not None:
            if record.order_type in ("stop_market", "take_profit_market"):
                record.trigger = float(price)
            else:
                record.price = float(price)
        if qty is not None:
            record.qty = float(qty)
        self._update(record)

    def on_request_failed(self, order_id: int | None, message: str, code: str = "unknown", symbol=None) -> bool:
        """A cancel, cancel-all or modify was refused: the strategy hears it in on_error."""
        record = self.orders.get(order_id) if order_id is not None else None
        if record is None and order_id is not None:
            return False
        hosted = self._by_strategy[id(record.strategy)] if record else None
        if hosted is None:
            return False
        error = OrderError(message, code, order_id, record.symbol)
        self._dispatch(self._call, hosted, record.symbol, "on_error", record.strategy.on_error,
                       self._named(record.symbol), error)
        return True

    def strategy_error(self, strategy: Strategy, symbol, error: BaseException) -> None:
        """Tell a strategy about an error concerning it (e.g. a cancel-all refused)."""
        hosted = self._by_strategy[id(strategy)]
        self._dispatch(self._call, hosted, symbol, "on_error", strategy.on_error, self._named(symbol), error)

    def _update(self, record: OrderRecord) -> None:
        self.orders.changed(record)
        hosted = self._by_strategy[id(record.strategy)]
        if type(hosted.strategy).on_order_update is Strategy.on_order_update:
            return
        args = (self._named(record.symbol), record.status, record.filled, record.avg_price)
        if hosted.with_order:
            args += (record.snapshot(),)
        self._call(hosted, record.symbol, "on_order_update", hosted.strategy.on_order_update, *args)

    def _named(self, symbol):
        """What callbacks get for a symbol: the Symbol, or its name with symbol_names."""
        return symbol.name if self._symbol_names and isinstance(symbol, Symbol) else symbol

    # -- reporting -----------------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """Per strategy: orders, fills, errors, and per symbol position, avg price and PnL."""
        out = []
        for h in self._hosted:
            symbols = {}
            for sym, ctx in h.contexts.items():
                symbols[sym.name] = {
                    "position": ctx.position, "avg_price": ctx.avg_price,
                    "realized_pnl": ctx.realized_pnl, "unrealized_pnl": ctx.unrealized_pnl,
                    "fees": ctx.fees, "last_price": ctx.last_price,
                }
            out.append({"strategy": h.strategy.name, "orders": h.orders, "fills": h.fills,
                        "errors": h.errors,
                        "open_orders": len(self.orders.open(h.strategy)),
                        "symbols": symbols})
        return out

    def errors(self, strategy: Strategy) -> int:
        return self._by_strategy[id(strategy)].errors


def _levels(prices, qtys, side: str):
    if isinstance(prices, (int, float)) and isinstance(qtys, (int, float)):
        prices, qtys = [prices], [qtys]
    prices, qtys = list(prices), list(qtys)
    if len(prices) != len(qtys):
        raise ValueError(f"{side} prices and quantities differ in length ({len(prices)} vs {len(qtys)})")
    for p, q in zip(prices, qtys):
        p, q = float(p), float(q)
        if not (math.isfinite(p) and p > 0 and math.isfinite(q) and q >= 0):
            raise ValueError(f"{side} level needs a finite price > 0 and qty >= 0, got {p!r}, {q!r}")
        yield p, q
