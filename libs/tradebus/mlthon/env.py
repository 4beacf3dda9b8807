"""StratEnv: tradebus's IStratEnv, the requests an MLThon strategy sends.

Requests become orders of tradebus's Strategy API (the same order path as every other
strategy, in the backtester and in strategy_runner), so nothing here knows whether it runs in a
backtest or live. Every answer is a callback delivered after the current callback returns, never
inside the request. Bad input (a non-numeric price, an unknown instrument, a negative quantity,
an unknown client id) is answered with a reject callback naming the reason, and nothing is sent.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tradebus.engine.event import OrderError
from tradebus.mlthon.api.istrat_env import IStratEnv, MDSub
from tradebus.mlthon.basics.defs import (
    TIF,
    Exchange,
    ExecInstructions,
    GtwRejectCode,
    GtwStatus,
    OrderType,
    Side,
)
from tradebus.mlthon.basics.instrument import Instrument
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty
from tradebus.mlthon.orders import Order

if TYPE_CHECKING:
    from tradebus.mlthon.host import MLThonStrategy

log = logging.getLogger("tradebus.mlthon")

MARKET_DATA_CALLBACKS = frozenset({
    "on_public_trade", "on_best_bid_level_update", "on_best_ask_level_update", "on_add_price_level",
    "on_modify_price_level", "on_delete_price_level",
})

# Environment states: requests are taken only while RUNNING.
CONNECTED, RUNNING, STOPPING, STOPPED = "connected", "running", "stopping", "stopped"


class Rejected(Exception):
    """A request refused before anything was sent."""

    def __init__(self, code: GtwRejectCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class StratEnv(IStratEnv):
    """The trading environment one MLThon strategy talks to (see the module docstring)."""

    def __init__(self, host: MLThonStrategy) -> None:
        self._host = host
        self.exchange: Exchange = host.exchange
        self.strat_name: str | None = None
        self.state = CONNECTED
        self.gateway_status = GtwStatus.ReadyToTrade
        self.subscriptions: dict[int, set[MDSub]] = {}
        self.execution_instruments: set[int] | None = None
        self.orders: dict[int, Order] = {}
        self._by_order_id: dict[int, Order] = {}
        self._client_ids = itertools.count(1)
        self._timers: dict[str, Callable[[], Any]] = {}
        self._timer_ids = itertools.count(1)
        self._hooks: dict[str, Callable[[list[str]], Any]] = {}
        self._deferred: deque[tuple[str, tuple]] = deque()
        self.log: list[tuple] = []

    # -- callbacks out -------------------------------------------------------------------------

    def emit(self, name: str, *args: Any) -> Any:
        """Invoke the strategy's callback ``name`` now (logged and guarded)."""
        if self._host.log_market_data or name not in MARKET_DATA_CALLBACKS:
            self._record((name, *(_plain(a) for a in args)))
        return self._host.guard.call(name, getattr(self._host.strategy, name), *args)

    def _record(self, entry: tuple) -> None:
        self.log.append(entry)
        if self._host.log_file is not None:
            self._host.log_file.write(json.dumps(entry, default=str) + "\n")

    def defer(self, name: str, *args: Any) -> None:
        """Invoke callback ``name`` after the current callback returns."""
        self._deferred.append((name, args))

    def drain(self) -> None:
        """Deliver every deferred callback (and those they cause)."""
        while self._deferred:
            name, args = self._deferred.popleft()
            if name == "__call__":
                args[0](*args[1:])
            else:
                self.emit(name, *args)

    def _reject(self, kind: str, code: GtwRejectCode, reason: str) -> None:
        self.defer("on_request_reject", self.exchange, code, reason, kind)

    # -- session -------------------------------------------------------------------------------

    def login(self, strat_name):
        """Log into the framework; the start-up callbacks follow once the current one returns."""
        first = self.strat_name is None
        self.strat_name = str(strat_name)
        if first and not self._host.connecting:
            self._deferred.append(("__call__", (self._host.begin, "")))

    def send_stop_ack(self):
        """The strategy is done stopping: requests stay refused until the next on_start."""
        if self.state != STOPPING:
            self._reject("StopAck", GtwRejectCode.Unset, "send_stop_ack without an on_stop to answer")
            return
        self.state = STOPPED

    def _gate(self, kind: str, gateway: bool = True) -> bool:
        """Whether a request may go out now; if not, on_request_reject says why."""
        try:
            self._check_session(kind)
            if gateway:
                self._check_gateway(kind)
        except Rejected as exc:
            self._reject(kind, exc.code, exc.reason)
            return False
        return True

    def _check_session(self, kind: str) -> None:
        if self.strat_name is None:
            raise Rejected(GtwRejectCode.NotLoggedIn, f"{kind} before login()")
        if self.state in (STOPPING, STOPPED):
            raise Rejected(GtwRejectCode.StrategyStopped, f"{kind} after on_stop (until the next on_start)")
        if self.state != RUNNING:
            raise Rejected(GtwRejectCode.NotLoggedIn, f"{kind} before on_start")

    def _check_gateway(self, kind: str) -> None:
        if self.gateway_status != GtwStatus.ReadyToTrade:
            raise Rejected(GtwRejectCode.GtwNotReady, f"{kind} while the gateway is {self.gateway_status.name}")

    # -- instruments ----------------------------------------------------------------------------

    def _instrument(self, exchange, instrument_id=None, symbol=None) -> Instrument:
        self._check_exchange(exchange)
        if symbol is not None:
            found = self._host.instrument_by_name(symbol)
            if found is None:
                raise Rejected(GtwRejectCode.UnknownInstrument, f"unknown product {symbol!r}")
            if instrument_id not in (None, 0) and instrument_id != found.get_instrument_id():
                raise Rejected(GtwRejectCode.UnknownInstrument,
                               f"symbol {symbol!r} is instrument {found.get_instrument_id()}, not {instrument_id!r}")
            return found
        found = self._host.instruments.get(instrument_id) if isinstance(instrument_id, int) else None
        if found is None:
            raise Rejected(GtwRejectCode.UnknownInstrument, f"unknown instrument id {instrument_id!r}")
        return found

    def _products(self, exchange, products, kind: str) -> list[Instrument] | None:
        try:
            if isinstance(products, str):
                products = [products]
            return [self._instrument(exchange, symbol=p) for p in products]
        except Rejected as exc:
            self._reject(kind, exc.code, exc.reason)
            return None

    def subscribe_to_market_data(self, exchange, products, subscriptions):
        """Deliver the listed kinds of market data for these products (names like "BTC-USDT").
        LevelBook and OrderBook need venue level ids, which crypto venues do not publish:
        they are answered with on_unsupported_op."""
        instruments = self._products(exchange, products, "SubscribeMarketData")
        if instruments is None:
            return
        kinds = set()
        for sub in subscriptions if isinstance(subscriptions, (list, tuple, set)) else [subscriptions]:
            try:
                kind = MDSub.parse(sub)
            except ValueError as exc:
                self._reject("SubscribeMarketData", GtwRejectCode.Unset, str(exc))
                continue
            if kind in (MDSub.LevelBook, MDSub.OrderBook):
                self.defer("on_unsupported_op", self.exchange, kind.name)
            else:
                kinds.add(kind)
        for inst in instruments:
            self.subscriptions.setdefault(inst.get_instrument_id(), set()).update(kinds)

    def request_execution_connection(self, exchange, products):
        """Allow orders on these products (all of the strategy's instruments when never called)."""
        instruments = self._products(exchange, products, "ExecutionConnection")
        if instruments is not None:
            self.execution_instruments = (self.execution_instruments or set()) | {
                i.get_instrument_id() for i in instruments}

    # -- orders --------------------------------------------------------------------------------

    def send_new_order(self, client_id=None, exchange=None, instrument_id=None, side=None, price=None, qty=None,
                       exec_instr=ExecInstructions.Unset, ord_type=OrderType.Limit, time_in_force=TIF.GTC,
                       close_position=False, symbol=None):
        """Send a new order; returns its client order id (an int). Price and qty are decimal
        strings. The outcome arrives as on_new_order_ack / on_new_order_reject. With
        ``close_position`` the order is reduce-only; with it and no qty, a market order closes
        the whole position."""
        if client_id in (None, 0):
            client_id = next(self._client_ids)
            while client_id in self.orders:
                client_id = next(self._client_ids)
        if not self._gate("NewOrder"):
            return client_id
        try:
            if isinstance(client_id, bool) or not isinstance(client_id, int) or client_id < 0:
                raise Rejected(GtwRejectCode.Unset, f"client id must be a positive int, got {client_id!r}")
            existing = self.orders.get(client_id)
            if existing is not None and existing.is_open:
                raise Rejected(GtwRejectCode.Unset, f"client id {client_id} is already an open order")
            inst = self._instrument(exchange, instrument_id, symbol)
            iid = inst.get_instrument_id()
            if self.execution_instruments is not None and iid not in self.execution_instruments:
                raise Rejected(GtwRejectCode.UnknownInstrument,
                               f"no execution connection for {inst.get_instrument_name()}")
            if close_position and qty in (None, "", "0", 0):
                qty = repr(abs(self._host.context(self._host.symbol_of(inst)).position))
                if float(qty) == 0.0:
                    raise Rejected(GtwRejectCode.InvalidQty, "close_position: there is no position to close")
                order = self._new_order(client_id, inst, side, price, qty, exec_instr, OrderType.Market, time_in_force)
                self._place(order, inst, True, whole=True)
            else:
                order = self._new_order(client_id, inst, side, price, qty, exec_instr, ord_type, time_in_force)
                self._place(order, inst, bool(close_position))
        except Rejected as exc:
            self.defer("on_new_order_reject", self.exchange, client_id, exc.code, exc.reason)
        return client_id

    def _new_order(self, client_id, inst, side, price, qty, exec_instr, ord_type, tif) -> Order:
        try:
            side = Side.parse(side)
            ord_type = OrderType.parse(ord_type)
            tif = TIF.parse(tif) if tif not in (None, TIF.Unset) else TIF.GTC
            exec_instr = ExecInstructions.parse(exec_instr or ExecInstructions.Unset)
        except ValueError as exc:
            raise Rejected(GtwRejectCode.Unset, str(exc)) from None
        if side == Side.Unset:
            raise Rejected(GtwRejectCode.Unset, "side must be Buy or Sell")
        if ord_type == OrderType.Unset:
            ord_type = OrderType.Limit
        q = _decimal(Qty, qty, "qty", GtwRejectCode.InvalidQty)
        if q <= 0:
            raise Rejected(GtwRejectCode.InvalidQty, f"qty must be > 0, got {qty!r}")
        if ord_type == OrderType.Limit:
            px = _decimal(Price, price, "price", GtwRejectCode.InvalidPrice)
            if px <= 0:
                raise Rejected(GtwRejectCode.InvalidPrice, f"price must be > 0, got {price!r}")
        else:
            px = Price(0) if price in (None, "") else _decimal(Price, price, "price", GtwRejectCode.InvalidPrice)
        return Order(client_id, inst.get_instrument_id(), side, px, q, ord_type, tif, exec_instr)

    def _place(self, order: Order, inst: Instrument, reduce_only: bool, whole: bool = False) -> None:
        strategy, sym = self._host, self._host.symbol_of(inst)
        buy = order.side == Side.Buy
        try:
            if whole:
                if buy != (strategy.context(sym).position < 0):
                    raise Rejected(GtwRejectCode.Unset, f"close_position: a {order.side.name} does not close "
                                   f"the position of {strategy.context(sym).position}")
                oid = strategy.close_position(sym)
            elif order.order_type == OrderType.Market:
                place = strategy.market_buy if buy else strategy.market_sell
                oid = place(order.qty.to_float(), sym, reduce_only=reduce_only)
            else:
                place = strategy.limit_buy if buy else strategy.limit_sell
                oid = place(order.price.to_float(), order.qty.to_float(), sym, time_in_force=order.tif.name,
                            post_only=order.exec_instr == ExecInstructions.PostOnly, reduce_only=reduce_only)
        except (OrderError, ValueError) as exc:
            raise Rejected(GtwRejectCode.ExchangeReject if isinstance(exc, OrderError) else GtwRejectCode.Unset,
                           str(exc)) from None
        order.order_id = int(oid)
        self.orders[order.client_id] = order
        self._by_order_id[order.order_id] = order

    def order_for(self, order_id: int) -> Order | None:
        return self._by_order_id.get(order_id)

    def _open_order(self, client_ord_id, kind: str) -> Order:
        order = self.orders.get(client_ord_id) if isinstance(client_ord_id, int) else None
        if order is None:
            raise Rejected(GtwRejectCode.UnknownOrder, f"{kind}: unknown client order id {client_ord_id!r}")
        if not order.is_open:
            raise Rejected(GtwRejectCode.UnknownOrder,
                           f"{kind}: order {client_ord_id} is {order.status.name}, not open")
        return order

    def send_cancel_order(self, exchange, instrument_id, client_ord_id):
        """Cancel one order; on_cancel_order_ack then on_order_cancelled, or on_cancel_order_reject."""
        if not self._gate("CancelOrder"):
            return
        try:
            self._instrument(exchange, instrument_id)
            order = self._open_order(client_ord_id, "cancel")
            if order.pending == "cancel":
                raise Rejected(GtwRejectCode.Unset, f"cancel: order {client_ord_id} already has a cancel in flight")
            self._host.cancel(order.order_id)
            order.pending = "cancel"
        except Rejected as exc:
            self.defer("on_cancel_order_reject", self.exchange, client_ord_id, exc.code, exc.reason)

    def send_cancel_all(self, exchange, instrument_id):
        """Cancel every open order of the instrument; on_cancel_all_ack once the request is
        accepted, then on_order_cancelled for each order."""
        if not self._gate("CancelAll"):
            return
        try:
            inst = self._instrument(exchange, instrument_id)
            self._host.cancel_all(self._host.symbol_of(inst))
            for order in self.orders.values():
                if order.is_open and order.instrument_id == inst.get_instrument_id():
                    order.pending, order.cancel_all = "cancel", True
            self.defer("on_cancel_all_ack", self.exchange, inst.get_instrument_id())
        except Rejected as exc:
            self.defer("on_cancel_all_reject", self.exchange, instrument_id, exc.code, exc.reason)

    def send_modify_order(self, exchange, client_ord_id, new_price=None, new_qty=None):
        """Change an order's price, quantity or both; on_modify_order_ack / _reject."""
        if not self._gate("ModifyOrder"):
            return
        try:
            self._check_exchange(exchange)
            order = self._open_order(client_ord_id, "modify")
            if order.pending:
                raise Rejected(GtwRejectCode.Unset, f"modify: order {client_ord_id} has a {order.pending} in flight")
            px = None if new_price in (None, "") else _decimal(Price, new_price, "price", GtwRejectCode.InvalidPrice)
            q = None if new_qty in (None, "") else _decimal(Qty, new_qty, "qty", GtwRejectCode.InvalidQty)
            if px is None and q is None:
                raise Rejected(GtwRejectCode.Unset, "modify needs a new price, a new qty or both")
            if px is not None and (px <= 0 or order.order_type != OrderType.Limit):
                raise Rejected(GtwRejectCode.InvalidPrice, f"modify: price {new_price!r} for a "
                               f"{order.order_type.name} order")
            if q is not None and q <= order.filled:
                raise Rejected(GtwRejectCode.InvalidQty,
                               f"modify: qty {new_qty!r} is not above the {order.filled} already filled")
            try:
                self._host.modify(order.order_id, None if px is None else px.to_float(),
                                  None if q is None else q.to_float())
            except (OrderError, ValueError) as exc:
                raise Rejected(GtwRejectCode.ExchangeReject, str(exc)) from None
            order.pending, order.pending_price, order.pending_qty = "modify", px, q
        except Rejected as exc:
            self.defer("on_modify_order_reject", self.exchange, client_ord_id, exc.code, exc.reason)

    # -- information requests ------------------------------------------------------------------

    def _info(self, kind: str, exchange, instrument_id=None, need_instrument=True) -> Instrument | None:
        """The instrument of an information request (None when it names none); Rejected, with
        on_request_reject sent, when the request cannot be answered."""
        if not self._gate(kind, gateway=False):
            raise Rejected(GtwRejectCode.Unset, "refused")
        try:
            if need_instrument:
                return self._instrument(exchange, instrument_id)
            self._check_exchange(exchange)
            return None
        except Rejected as exc:
            self._reject(kind, exc.code, exc.reason)
            raise

    def _check_exchange(self, exchange) -> None:
        try:
            exch = Exchange.parse(exchange)
        except ValueError as exc:
            raise Rejected(GtwRejectCode.UnknownInstrument, str(exc)) from None
        if exch != self.exchange:
            raise Rejected(GtwRejectCode.UnknownInstrument,
                           f"exchange {exch.name} is not this strategy's ({self.exchange.name})")

    def fetch_account_info(self, exchange):
        try:
            self._info("FetchAccountInfo", exchange, need_instrument=False)
        except Rejected:
            return
        self._host.gateway.account_info(self)

    def fetch_wallet_info(self, exchange, coin):
        try:
            self._info("FetchWalletInfo", exchange, need_instrument=False)
        except Rejected:
            return
        self._host.gateway.wallet_info(self, str(coin).upper())

    def fetch_position_info(self, exchange, instrument_id):
        try:
            inst = self._info("FetchPositionInfo", exchange, instrument_id)
        except Rejected:
            return
        self._host.gateway.position_info(self, inst)

    def fetch_funding_info(self, exchange, instrument_id):
        try:
            inst = self._info("FetchFundingInfo", exchange, instrument_id)
        except Rejected:
            return
        self._host.gateway.funding_info(self, inst)

    def fetch_order_status(self, exchange, instrument_id, client_ord_id):
        try:
            inst = self._info("FetchOrderStatus", exchange, instrument_id)
        except Rejected:
            return
        order = self.orders.get(client_ord_id) if isinstance(client_ord_id, int) else None
        if order is None or order.instrument_id != inst.get_instrument_id():
            self._reject("FetchOrderStatus", GtwRejectCode.UnknownOrder, f"unknown client order id {client_ord_id!r}")
            return
        self._host.gateway.order_status(self, inst, order)

    def fetch_orders_info(self, exchange, instrument_id=None):
        try:
            inst = self._info("FetchOrdersInfo", exchange, instrument_id, need_instrument=instrument_id is not None)
        except Rejected:
            return
        self._host.gateway.orders_info(self, inst)

    # -- timers, commands, telegram ------------------------------------------------------------

    def setup_timer(self, duration_ms, callback_func):
        """Call ``callback_func()`` every ``duration_ms`` ms of the run's clock while it returns True."""
        if isinstance(duration_ms, bool) or not isinstance(duration_ms, (int, float)) or not duration_ms > 0:
            raise ValueError(f"duration_ms must be a number > 0, got {duration_ms!r}")
        name = f"mlthon.timer.{next(self._timer_ids)}"
        self._timers[name] = callback_func
        self._host.set_timer(name, duration_ms / 1000.0, repeat=True)
        return name

    def setup_daily_callback(self, hh_mm_ss, callback_func):
        """Call ``callback_func()`` every day at ``"HH:MM:SS"`` in the system time zone while it
        returns True."""
        try:
            h, m, s = (int(x) for x in str(hh_mm_ss).split(":"))
            if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
                raise ValueError
        except ValueError:
            raise ValueError(f"daily callback time must be 'HH:MM:SS', got {hh_mm_ss!r}") from None
        offset = dt.datetime.now().astimezone().utcoffset() or dt.timedelta(0)
        at = (h * 3600 + m * 60 + s - int(offset.total_seconds())) % 86_400
        name = f"mlthon.daily.{next(self._timer_ids)}"
        self._timers[name] = callback_func
        self._host.set_daily_timer(name, f"{at // 3600:02d}:{at % 3600 // 60:02d}:{at % 60:02d}")
        return name

    def timer_due(self, name: str) -> None:
        callback = self._timers.get(name)
        if callback is None:
            return
        self._record(("timer", name))
        if self._host.guard.call(getattr(callback, "__name__", name), callback) is not True:
            self._timers.pop(name, None)
            self._host.cancel_timer(name)

    def add_cmd_hook(self, cmd_name_str, callback_func):
        """Call ``callback_func(params)`` (a list of strings) for each command of this name
        (case-insensitive; live, commands arrive on ``ctl.<strategy>.<name>``)."""
        self._hooks[str(cmd_name_str).lower()] = callback_func

    def command(self, name: str, params: list[str]) -> bool:
        """Run a command: start and stop drive the session, others their hook. False if unknown."""
        key = name.lower()
        if key == "start":
            self._host.begin(" ".join(params))
        elif key == "stop":
            self._host.end(" ".join(params))
        elif key in self._hooks:
            hook = self._hooks[key]
            self._record(("command", key, list(params)))
            self._host.guard.call(getattr(hook, "__name__", key), hook, list(params))
        else:
            log.warning("strategy %s: no hook for command %r", self.strat_name, name)
            return False
        return True

    def publish_telegram(self, msg):
        self._host.notifier.send(str(msg))


def _decimal(kind, value, what: str, code: GtwRejectCode):
    if isinstance(value, float):
        return kind(value)
    if not isinstance(value, (str, int, Price, Qty)) or isinstance(value, bool):
        raise Rejected(code, f"{what} must be a decimal string, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise Rejected(code, f"{what} {value!r} is not a decimal number") from None


def _plain(value):
    """A log-friendly form of a callback argument (enums by name, decimals as strings)."""
    if isinstance(value, (Price, Qty)):
        return value.to_str()
    if hasattr(value, "name") and hasattr(value, "value") and type(value).__module__.startswith("tradebus.mlthon"):
        return value.name
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Order):
        return (value.client_id, value.side.name, value.price.to_str(), value.qty.to_str(),
                value.leaves_qty.to_str(), value.status.name)
    if isinstance(value, Instrument):
        return value.get_instrument_name()
    if isinstance(value, IStratEnv):
        return "env"
    return value
