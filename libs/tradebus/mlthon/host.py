"""MLThonStrategy: hosts one IStrategy as a tradebus Strategy.

The adapter turns tradebus's strategy callbacks (trades, book updates, order updates, fills,
timers, params) into MLThon's, and MLThon's requests (through :class:`StratEnv`) into tradebus
orders. Because it *is* a tradebus Strategy, the event-driven backtester and strategy_runner run
it exactly as they run any other strategy: one order path, one fill ledger.

Live-only inputs reach it through methods the host calls: :meth:`gateway_update`,
:meth:`feed_update`, :meth:`rate_limit_update`, :meth:`funding_update` and :meth:`command`.
Timestamps are nanoseconds since the epoch (tradebus's convention).
"""
from __future__ import annotations

import logging
from typing import Any

from tradebus.engine.event import OrderError, Strategy
from tradebus.mlthon.api.istrat_env import MDSub
from tradebus.mlthon.api.istrategy import IStrategy
from tradebus.mlthon.basics.defs import (
    CancelCode,
    Exchange,
    FeedHandlerStatus,
    GtwRejectCode,
    GtwStatus,
    OrderStatus,
    Side,
)
from tradebus.mlthon.basics.instrument import Instrument
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty
from tradebus.mlthon.env import CONNECTED, RUNNING, STOPPED, STOPPING, StratEnv
from tradebus.mlthon.gateway import LocalGateway
from tradebus.mlthon.notify import Notifier, notifier_from_env
from tradebus.mlthon.orders import Order
from tradebus.mlthon.watchdog import CallbackGuard

log = logging.getLogger("tradebus.mlthon")

_CANCEL_CODES = {
    "user": CancelCode.CanceledByUser, "ioc_fok_unfilled": CancelCode.IocUnfilled,
    "post_only_would_take": CancelCode.PostOnlyWouldTake, "reduce_only": CancelCode.ReduceOnly,
    "no_liquidity": CancelCode.NoLiquidity, "expired": CancelCode.Expired,
}
_RATE_THRESHOLDS = (0.5, 0.9, 1.0)


def _modified(order: Order, snapshot) -> bool:
    """Whether an order update shows the pending modify applied (another update of the order,
    a repeated ack say, is not its answer)."""
    if order.pending_price is not None and abs(snapshot.price - order.pending_price.to_float()) > 1e-9 * max(
            1.0, abs(snapshot.price)):
        return False
    return order.pending_qty is None or abs(snapshot.qty - order.pending_qty.to_float()) <= 1e-12 * max(
        1.0, abs(snapshot.qty))


def instrument_name(unified: str) -> str:
    """MLThon's product name of a ccxt unified symbol: "BTC/USDT" -> "BTC-USDT"."""
    return unified.split(":")[0].replace("/", "-")


class MLThonStrategy(Strategy):
    """A tradebus Strategy running one MLThon IStrategy (see the module docstring).

    strategy: the IStrategy instance; symbols: tradebus Symbols (from a SymbolRegistry) it may
    trade; exchange: the MLThon Exchange they are on; params: the strat params handed to
    on_strat_params_update; callback_bound_s: the watchdog's bound (None: no watchdog);
    book_depth: levels of each side diffed into price-level callbacks; log_market_data: keep
    market-data callbacks in :attr:`log` too (off by default: a long replay makes millions);
    log_path: a file that also gets each logged callback as a JSON line, as it happens.
    """

    def __init__(self, strategy: IStrategy, symbols, *, exchange=Exchange.Binance, name: str | None = None,
                 params: dict | None = None, notifier: Notifier | None = None, gateway=None,
                 callback_bound_s: float | None = 1.0, book_depth: int = 20, log_market_data: bool = False,
                 min_qty: dict | None = None, log_path: str | None = None) -> None:
        if not isinstance(strategy, IStrategy):
            raise TypeError(f"expected an MLThon IStrategy, got {type(strategy).__name__}")
        super().__init__(symbols, name=name or type(strategy).__name__)
        self.strategy = strategy
        self.exchange = Exchange.parse(exchange)
        self.params = dict(params or {})
        self.book_depth = int(book_depth)
        self.log_market_data = bool(log_market_data)
        self.notifier = notifier if notifier is not None else notifier_from_env(self.name)
        self.gateway = gateway if gateway is not None else LocalGateway()
        self.guard = CallbackGuard(self.name, callback_bound_s, on_report=self._report)
        self.instruments: dict[int, Instrument] = {}
        self._symbols: dict[int, Any] = {}
        for sym in self.symbols:
            unified = getattr(sym, "unified", None) or str(sym.name)
            base, _, quote = unified.split(":")[0].partition("/")
            self.instruments[int(sym)] = Instrument(
                self.exchange, int(sym), instrument_name(unified), unified,
                tick_size=repr(float(sym.tick_size or 0.0)), lot_size=repr(float(sym.lot_size or 0.0)),
                min_qty=repr(float((min_qty or {}).get(unified, sym.lot_size or 0.0))), base=base, quote=quote)
            self._symbols[int(sym)] = sym
        self.log_file = open(log_path, "a", buffering=1) if log_path else None
        self.env = StratEnv(self)
        self.connecting = False
        self.feed_status: dict[int, FeedHandlerStatus] = {}
        self.funding: dict[int, tuple[float, int]] = {}
        self._bbo: dict[int, list] = {}
        self._levels: dict[int, tuple[dict, dict]] = {}
        self._rate_armed = 0
        self.reports: list[tuple[str, str, Any]] = []

    # -- lookups --------------------------------------------------------------------------------

    @property
    def log(self) -> list[tuple]:
        """Every callback delivered so far: (name, *arguments in plain form)."""
        return self.env.log

    def instrument_by_symbol(self, symbol: str) -> Instrument | None:
        """The instrument of a ccxt unified symbol, exactly (what bus events carry)."""
        return next((inst for inst in self.instruments.values() if inst.get_symbol() == symbol), None)

    def instrument_by_name(self, name: str) -> Instrument | None:
        """The instrument of a ccxt symbol (matched exactly first) or of an MLThon product name
        ("BTC-USDT")."""
        found = self.instrument_by_symbol(name)
        if found is not None:
            return found
        key = str(name).upper().replace("/", "-").split(":")[0]
        for inst in self.instruments.values():
            if inst.get_instrument_name().upper() == key:
                return inst
        return None

    def symbol_of(self, inst: Instrument):
        return self._symbols[inst.get_instrument_id()]

    def _report(self, kind: str, name: str, detail: Any) -> None:
        self.reports.append((kind, name, detail))

    def _wants(self, iid: int, kind: MDSub) -> bool:
        subs = self.env.subscriptions.get(iid)
        return subs is not None and kind in subs

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self):
        """The runner started: connect the framework; login() triggers the start-up callbacks."""
        self.env.state = CONNECTED
        self.connecting = True
        try:
            self.env.emit("on_framework_connected", self.env)
        finally:
            self.connecting = False
        if self.env.strat_name is None:
            log.error("strategy %s did not call env.login() in on_framework_connected: it gets no "
                      "start until it does", self.name)
        else:
            self.begin("")
        self.env.drain()

    def begin(self, params: str) -> None:
        """on_start, then (the first time) on_instruments and on_strat_params_update."""
        if self.env.strat_name is None or self.env.state == RUNNING:
            return
        first = self.env.state == CONNECTED
        self.env.state = RUNNING
        self.env.emit("on_start", params)
        if first:
            self.env.emit("on_instruments", list(self.instruments.values()))
            self.env.emit("on_strat_params_update", dict(self.params))

    def end(self, params: str) -> None:
        """on_stop; requests are refused from here until the next start."""
        if self.env.state == RUNNING:
            self.env.state = STOPPING
            self.env.emit("on_stop", params)

    def on_stop(self):
        self.end("")
        self.env.drain()
        self.env.emit("on_framework_disconnected")
        self.env.state = STOPPED if self.env.state == STOPPING else self.env.state
        self.guard.close()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def command(self, name: str, params: list[str]) -> bool:
        """A command for this strategy (from ``ctl.<strategy>.<name>`` live)."""
        known = self.env.command(name, [str(p) for p in params])
        self.env.drain()
        return known

    def on_params_update(self, params):
        """New values of some params: the strategy gets the whole, updated set."""
        self.params.update(params)
        if self.env.state == RUNNING:
            self.env.emit("on_strat_params_update", dict(self.params))
        self.env.drain()

    def on_timer(self, name):
        self.env.timer_due(name)
        self.env.drain()

    # -- market data ----------------------------------------------------------------------------

    def on_trade(self, ctx, trade):
        iid = int(ctx.symbol)
        if self._wants(iid, MDSub.PublicTrades):
            self.env.emit("on_public_trade", self.exchange, iid, Side.Buy if trade.is_buy else Side.Sell,
                          Price(trade.price), Qty(trade.qty), trade.ts_ns, ctx.now_ns)
        self.env.drain()

    def on_book_update(self, ctx):
        iid = int(ctx.symbol)
        now = ctx.now_ns
        if self._wants(iid, MDSub.BBO):
            self._bbo_update(iid, ctx, now)
        if self._wants(iid, MDSub.PriceLevelBook):
            self._level_update(iid, ctx, now)
        self.env.drain()

    def _bbo_update(self, iid: int, ctx, now: int) -> None:
        last = self._bbo.setdefault(iid, [None, None])
        for i, (levels, name) in enumerate(((ctx.bids(1), "on_best_bid_level_update"),
                                            (ctx.asks(1), "on_best_ask_level_update"))):
            top = tuple(levels[0]) if levels else None
            if top is not None and top != last[i]:
                last[i] = top
                self.env.emit(name, self.exchange, iid, Price(top[0]), Qty(top[1]), now)

    def _level_update(self, iid: int, ctx, now: int) -> None:
        before = self._levels.setdefault(iid, ({}, {}))
        for book_side, levels, side in ((0, ctx.bids(self.book_depth), Side.Buy),
                                        (1, ctx.asks(self.book_depth), Side.Sell)):
            old, new = before[book_side], {px: qty for px, qty in levels}
            for px in [p for p in old if p not in new]:
                self.env.emit("on_delete_price_level", self.exchange, iid, side, Price(px), now)
            for px, qty in new.items():
                prev = old.get(px)
                if prev is None:
                    self.env.emit("on_add_price_level", self.exchange, iid, side, Price(px), Qty(qty), now)
                elif prev != qty:
                    self.env.emit("on_modify_price_level", self.exchange, iid, side, Price(px), Qty(qty), now)
            before[book_side].clear()
            before[book_side].update(new)

    # -- orders ---------------------------------------------------------------------------------

    def _ack(self, order: Order, exchange_id: str) -> None:
        order.status = OrderStatus.New
        order.exchange_id = exchange_id
        self.env.emit("on_new_order_ack", self.exchange, order.client_id, exchange_id, order.instrument_id,
                      order.side, order.price, order.qty, order.leaves_qty, order.order_type, order.tif,
                      order.exec_instr)

    def on_order_update(self, symbol, status, filled, avg_price, snapshot=None):
        order = self.env.order_for(snapshot.id) if snapshot is not None else None
        if order is None:
            return
        exchange_id = str(getattr(snapshot, "exchange_order_id", "") or snapshot.id)
        if status == "rejected" and order.status == OrderStatus.Unset:
            order.status = OrderStatus.Rejected
            code = GtwRejectCode.RiskLimit if "risk" in (snapshot.reason or "") else GtwRejectCode.ExchangeReject
            self.env.emit("on_new_order_reject", self.exchange, order.client_id, code, snapshot.reason or "rejected")
        elif status in ("acked", "partially_filled", "filled", "new"):
            if order.status == OrderStatus.Unset and status != "new":
                self._ack(order, exchange_id)
            if order.pending == "modify" and status in ("acked", "partially_filled") and _modified(order, snapshot):
                order.price = order.pending_price if order.pending_price is not None else order.price
                order.qty = order.pending_qty if order.pending_qty is not None else order.qty
                new_price, new_qty = order.pending_price, order.pending_qty
                order.pending, order.pending_price, order.pending_qty = "", None, None
                self.env.emit("on_modify_order_ack", self.exchange, order.client_id, new_price, new_qty,
                              order.leaves_qty)
        elif status in ("cancelled", "expired"):
            if order.status == OrderStatus.Unset:
                self._ack(order, exchange_id)
            solicited = order.pending == "cancel"
            if solicited and not order.cancel_all:
                self.env.emit("on_cancel_order_ack", self.exchange, order.client_id)
            if order.pending == "modify":
                self.env.emit("on_modify_order_reject", self.exchange, order.client_id, GtwRejectCode.UnknownOrder,
                              f"order {order.client_id} ended ({status}) before the modify")
            order.status = OrderStatus.Cancelled if status == "cancelled" else OrderStatus.Expired
            order.pending = ""
            code = CancelCode.CanceledByUser if solicited else _CANCEL_CODES.get(
                snapshot.reason or ("expired" if status == "expired" else ""), CancelCode.Other)
            self.env.emit("on_order_cancelled", self.exchange, order.client_id, not solicited,
                          snapshot.ts_ns if status == "expired" else 0, self.now_ns(),
                          code, snapshot.reason or status)
        self.env.drain()

    def on_fill(self, fill):
        order = self.env.order_for(fill.order_id)
        if order is None:
            return
        if order.status == OrderStatus.Unset:
            self._ack(order, str(fill.order_id))
        order.filled = order.filled + Qty(fill.qty)
        order.status = OrderStatus.Filled if order.filled >= order.qty else OrderStatus.PartiallyFilled
        if not order.is_open and order.pending == "modify":
            order.pending = ""
            self.env.emit("on_modify_order_reject", self.exchange, order.client_id, GtwRejectCode.UnknownOrder,
                          f"order {order.client_id} filled before the modify")
        self.env.emit("on_order_execution", self.exchange, order.client_id, order.side, Price(fill.price),
                      Qty(fill.qty), order.leaves_qty, fill.ts_ns, self.now_ns())
        self.env.drain()

    def on_error(self, symbol, error):
        order = self.env.order_for(error.order_id) if isinstance(error, OrderError) and error.order_id else None
        if order is not None and order.pending == "cancel":
            order.pending = ""
            self.env.emit("on_cancel_order_reject", self.exchange, order.client_id, GtwRejectCode.UnknownOrder,
                          str(error))
        elif order is not None and order.pending == "modify":
            order.pending, order.pending_price, order.pending_qty = "", None, None
            self.env.emit("on_modify_order_reject", self.exchange, order.client_id, GtwRejectCode.ExchangeReject,
                          str(error))
        else:
            log.warning("strategy %s: %s", self.name, error)
            self.reports.append(("error", "venue", error))
        self.env.drain()

    def now_ns(self) -> int:
        return self.context().now_ns

    # -- live-only inputs -----------------------------------------------------------------------

    def gateway_update(self, status: GtwStatus, detail: str = "") -> None:
        """The venue gateway's status; on_gateway_status on a change only."""
        status = GtwStatus.parse(status)
        if status != self.env.gateway_status:
            self.env.gateway_status = status
            self.env.emit("on_gateway_status", self.exchange, status, detail)
        self.env.drain()

    def feed_update(self, instrument_id: int, status: FeedHandlerStatus, detail: str = "") -> None:
        """A market-data feed's status; on_feed_handler_status on a change only (ready, i.e.
        SnapshotEnd, is assumed at start)."""
        status = FeedHandlerStatus.parse(status)
        if status != self.feed_status.get(instrument_id, FeedHandlerStatus.SnapshotEnd):
            self.feed_status[instrument_id] = status
            if status == FeedHandlerStatus.Disconnected:
                self._bbo.pop(instrument_id, None)
                self._levels.pop(instrument_id, None)
            self.env.emit("on_feed_handler_status", self.exchange, status, detail)
        self.env.drain()

    def rate_limit_update(self, used: float, reset_ts: int) -> None:
        """The venue budget's use (0..1 of its limit, the rule closest to it): on_rate_limit_info
        when it crosses 50%, 90% and 100%, in MLThon's terms (``rate_limit`` 100, i.e. percent,
        and ``rate_remaining`` the percent left); re-armed when use falls back under 50%."""
        level = sum(1 for t in _RATE_THRESHOLDS if used >= t)
        if level > self._rate_armed:
            remaining = max(int(round(100.0 * (1.0 - min(used, 1.0)))), 0)
            self.env.emit("on_rate_limit_info", self.exchange, 100, remaining, int(reset_ts))
        if level > self._rate_armed or level == 0:
            self._rate_armed = level
        self.env.drain()

    def funding_update(self, instrument_id: int, rate: float, next_funding_ts: int) -> None:
        self.funding[instrument_id] = (float(rate), int(next_funding_ts))

