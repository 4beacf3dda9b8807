"""CcxtBroker: one process, no bus. A ccxt.pro exchange feeds a Runner; the strategy's orders go
out through FLOX's routing table (see :mod:`tradebus.live.routing`).

    async with CcxtBroker("binance", api_key=key, secret=secret, sandbox=True) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        broker.add_strategy(SmaCross([btc]))
        await broker.run(streams=("trades", "book", "orders"))     # blocks until cancelled

Orders are sent when credentials are given (``api_key``/``secret``, or an ``exchange=`` built with
them); ``dry_run=True`` logs them instead, and a broker without credentials is always a dry run.
One log line says which mode the broker is in. ``async with`` is optional: without it the broker
gets ready on first use and ``await broker.close()`` releases it. An ``exchange=`` passed in stays
the caller's: the broker never closes it. With ``TRADEBUS_SANDBOX_URL`` set (a sim_exchange URL),
``sandbox=True`` means the local paper venue instead of the exchange's testnet.

Lifecycle (FLOX's): ``run`` starts the runner, reconciles (fetch_balance, fetch_positions; each
non-zero position reaches ``on_initial_position(ccxt_symbol, qty, avg)``), then runs one task per
(symbol x stream). Stream errors are retried with exponential backoff (reset after a good
message); stream, reconcile and routing errors reach the strategies' ``on_error(symbol, error)``
and the broker's ``on_error`` hook, and ``run`` goes on.

Subclasses customise a venue's parameters by overriding ``_place_market``, ``_place_limit``,
``_place_stop_market``, ``_place_stop_limit``, ``_place_take_profit_market``,
``_place_take_profit_limit``, ``_place_trailing`` or ``_place_close_position`` — each
``async (sym, side, sig)``, with ``self._qty(sig)``, ``self._trigger(sig)`` and
``self._limit_price(sig)`` giving the venue-rounded values. Return the ccxt order so the broker
tracks its fills.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import ccxt

from tradebus.engine.event import OrderError
from tradebus.exchanges import Backoff, LocalReject, VenueAdapter, reject_code
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.proto import NewOrder, OrderType, TimeInForce
from tradebus.strategy import Runner, Strategy, Symbol, SymbolRegistry

from .routing import broker_adapter, default_adapter

__all__ = ["CcxtBroker", "UnsupportedOrderType", "ADAPTERS_BY_EXCHANGE", "STREAMS", "SANDBOX_URL_ENV"]

log = logging.getLogger("tradebus.live")

STREAMS = ("trades", "book", "orders")
SANDBOX_URL_ENV = "TRADEBUS_SANDBOX_URL"
"""When set, a ``sandbox=True`` broker that builds its own exchange trades on this paper venue (a
sim_exchange URL, e.g. ``make run``'s) instead of the venue's testnet."""

ADAPTERS_BY_EXCHANGE: dict[str, tuple[str, ...]] = {
    "binance": ("binance:spot", "binance:usdm"),
    "binanceusdm": ("binance:usdm",),
    "okx": ("okx:swap",),
    "bybit": ("bybit:linear",),
}
"""ccxt exchange id -> the registry adapters (venue YAML) a broker on it uses, by market type."""

_HOOKS = {
    "market": "_place_market",
    "limit": "_place_limit",
    "stop_market": "_place_stop_market",
    "stop_limit": "_place_stop_limit",
    "take_profit_market": "_place_take_profit_market",
    "take_profit_limit": "_place_take_profit_limit",
    "trailing_stop": "_place_trailing",
    "trailing_stop_percent": "_place_trailing",
    "close_position": "_place_close_position",
}


class UnsupportedOrderType(OrderError):
    """The broker (or the venue) has no routing row for this order type; nothing was sent."""

    def __init__(self, message, order_id=None, symbol=None):
        super().__init__(message, "unsupported", order_id, symbol)


class CcxtBroker:
    """A ccxt.pro exchange wired to a Runner (FLOX's CcxtBroker, see the module docstring)."""

    def __init__(self, exchange_id: str, api_key: str | None = None, secret: str | None = None, sandbox: bool = True,
                 book_depth: int = 20, retry_initial_delay: float = 1.0, retry_max_delay: float = 60.0,
                 retry_multiplier: float = 2.0, exchange=None, *, dry_run: bool | None = None,
                 live: bool | None = None, password: str | None = None, options: dict[str, Any] | None = None,
                 adapters: tuple[str, ...] | None = None, client_id_prefix: str = "tb",
                 on_error: Callable[[str | None, BaseException], Any] | None = None):
        Backoff(retry_initial_delay, retry_multiplier, retry_max_delay)  # ValueError on nonsense
        if retry_max_delay < retry_initial_delay:
            raise ValueError(f"retry_max_delay {retry_max_delay} < retry_initial_delay {retry_initial_delay}")
        if int(book_depth) <= 0:
            raise ValueError(f"book_depth must be > 0, got {book_depth}")
        if dry_run is not None and live is not None and dry_run == live:
            raise ValueError(f"dry_run={dry_run} contradicts live={live}: pass one of them")
        self.exchange_id = exchange_id
        self.sandbox = sandbox
        self.book_depth = int(book_depth)
        self.retry = (float(retry_initial_delay), float(retry_multiplier), float(retry_max_delay))
        self._credentials = {k: v for k, v in (("apiKey", api_key), ("secret", secret), ("password", password)) if v}
        has_keys = bool(self._credentials) or bool(exchange is not None and getattr(exchange, "apiKey", None))
        if dry_run is None:
            dry_run = (not live) if live is not None else not has_keys
        self.dry_run = bool(dry_run) or not has_keys
        self._no_keys = not has_keys
        self._options = dict(options or {})
        self._adapter_keys = adapters if adapters is not None else ADAPTERS_BY_EXCHANGE.get(exchange_id, ())
        self._prefix = client_id_prefix
        self._on_error_hook = on_error
        self.exchange = exchange
        self._own_exchange = exchange is None
        self.adapters: list[VenueAdapter] = []
        self.registry = SymbolRegistry()
        self.runner = Runner(self.registry, self._handle_signal, on_error=self._on_strategy_error,
                             symbol_names=True)
        self.symbols: dict[str, Symbol] = {}
        self.balance: dict = {}
        self._markets_loaded = False
        self._tasks: list[asyncio.Task] = []
        self._pending: set[asyncio.Task] = set()
        self._by_client: dict[str, int] = {}  # client order id -> runner order id
        self._by_exchange_id: dict[str, int] = {}  # venue order id -> runner order id
        self._exchange_ids: dict[int, str] = {}
        self._filled: dict[int, tuple[float, float]] = {}  # order id -> (cum qty, cum cost)
        self._trade_ids: dict[int, set[str]] = {}  # order id -> venue trade ids already turned into fills
        self._closed: set[int] = set()
        self.dry_run_log: list[tuple[str, dict]] = []
        self.errors: list[BaseException] = []

    @property
    def live(self) -> bool:
        """True when orders are sent to the venue (the opposite of ``dry_run``)."""
        return not self.dry_run

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "CcxtBroker":
        self._ready()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _ready(self) -> None:
        """Build the exchange (unless given) and the venue adapters, once; log the mode."""
        if self.adapters:
            return
        if self.exchange is None:
            import ccxt.pro as ccxtpro
            cls = getattr(ccxtpro, self.exchange_id)
            self.exchange = cls({**self._credentials, "enableRateLimit": True, "options": self._options})
            paper = os.environ.get(SANDBOX_URL_ENV)
            if self.sandbox and paper:
                point_ccxt_at_sim(self.exchange, paper)
            elif self.sandbox:
                self.exchange.set_sandbox_mode(True)
        self.adapters = [broker_adapter(key, self.exchange) for key in self._adapter_keys]
        if not self.adapters:  # a ccxt venue with no YAML file: ccxt's unified rows
            self.adapters.append(default_adapter(self.exchange_id, self.exchange))
        if self.live:
            mode = "LIVE: orders are sent to the venue"
        elif self._no_keys:
            mode = "DRY RUN: no credentials, orders are logged, not sent"
        else:
            mode = "DRY RUN (dry_run=True): orders are logged, not sent"
        log.warning("CcxtBroker on %s%s: %s", self.exchange_id, " (sandbox)" if self.sandbox else "", mode)

    async def close(self) -> None:
        """Cancel the stream tasks, stop the runner and close the exchange if the broker made it."""
        await self._cancel_tasks()
        self.runner.stop()
        if self.exchange is not None and self._own_exchange:
            try:
                await self.exchange.close()
            except Exception:
                log.debug("closing %s failed", self.exchange_id, exc_info=True)

    async def _cancel_tasks(self) -> None:
        tasks = self._tasks + list(self._pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def _load_markets(self) -> None:
        self._ready()
        if not self._markets_loaded:
            await self.exchange.load_markets()
            self._markets_loaded = True

    async def add_symbol(self, symbol: str) -> Symbol:
        """Register a ccxt symbol; tick and lot size come from the market's precision.
        ValueError naming the symbol when the venue does not list it."""
        await self._load_markets()
        if symbol not in (self.exchange.markets or {}):
            raise ValueError(f"unknown symbol {symbol!r} on {self.exchange_id}: not in its markets "
                             f"(use the ccxt unified form, e.g. 'BTC/USDT' or 'BTC/USDT:USDT')")
        market = self.exchange.market(symbol)
        precision = market.get("precision") or {}
        tick = float(precision.get("price") or 0.0)
        lot = float(precision.get("amount") or 0.0)
        sym = self.registry.add_symbol(self.exchange_id, symbol, tick_size=tick, lot_size=lot)
        self.symbols[symbol] = sym
        return sym

    def add_strategy(self, strategy: Strategy) -> Strategy:
        """Attach ``strategy`` to the broker's Runner (its symbols must come from add_symbol)."""
        return self.runner.add_strategy(strategy)

    async def run(self, streams=STREAMS, reconcile: bool = True) -> None:
        """Start the runner, reconcile, then one task per (symbol x stream); block until cancelled."""
        unknown = set(streams) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; use trades, book, orders")
        await self._load_markets()
        self.runner.start()
        if reconcile:
            await self.reconcile()
        for name, sym in self.symbols.items():
            for kind in STREAMS:
                if kind in streams:
                    self._tasks.append(asyncio.ensure_future(self._stream(kind, name, sym)))
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self._cancel_tasks()

    async def reconcile(self) -> None:
        """fetch_balance and fetch_positions (NotSupported: none; another error reaches on_error
        and the broker goes on); non-zero positions on registered symbols go to the strategies'
        on_initial_position."""
        await self._load_markets()
        try:
            self.balance = await self.exchange.fetch_balance()
        except ccxt.NotSupported:
            self.balance = {}
        except Exception as exc:
            self._report(None, exc, "fetch_balance")
        try:
            positions = await self.exchange.fetch_positions(list(self.symbols) or None)
        except ccxt.NotSupported:
            positions = []
        except Exception as exc:
            self._report(None, exc, "fetch_positions")
            positions = []
        for p in positions:
            sym = self.symbols.get(p.get("symbol"))
            contracts = float(p.get("contracts") or 0.0)
            if sym is None or contracts == 0:
                continue
            qty = -contracts if p.get("side") == "short" else contracts
            avg = float(p.get("entryPrice") or 0.0)
            for strategy in self.runner.strategies:
                if sym in strategy.symbols:
                    self.runner.set_initial_position(strategy, sym, qty, avg)

    # ------------------------------------------------------------------ errors

    def on_error(self, symbol: str | None, error: BaseException) -> None:
        """The broker's error hook (stream, reconcile and routing errors): calls the ``on_error``
        given to the constructor; override in a subclass to handle them there."""
        if self._on_error_hook is not None:
            self._on_error_hook(symbol, error)

    def _report(self, sym: Symbol | None, exc: BaseException, where: str) -> None:
        """An error outside a strategy callback: the strategies concerned, then the broker hook."""
        self.errors.append(exc)
        for strategy in self.runner.strategies:
            if sym is None or sym in strategy.symbols:
                self.runner.strategy_error(strategy, sym, exc)
        try:
            self.on_error(None if sym is None else sym.name, exc)
        except Exception:
            log.exception("the broker's on_error hook failed on %s", where)

    def _on_strategy_error(self, strategy, where, exc) -> None:
        self.errors.append(exc)

    # ------------------------------------------------------------------ streams

    def book_limit(self, symbol: str) -> int:
        """Depth asked of ``watch_order_book``: the venue's ``book_depth`` override, else ours."""
        return self.adapter_for(symbol).config.book_depth or self.book_depth

    async def _stream(self, kind: str, name: str, sym: Symbol) -> None:
        backoff = Backoff(*self.retry)
        limit = self.book_limit(name)
        while True:
            try:
                if kind == "trades":
                    for t in await self.exchange.watch_trades(name):
                        self.runner.on_trade(sym, float(t["price"]), float(t["amount"]), t.get("side") == "buy",
                                             int(t.get("timestamp") or time.time() * 1000) * 1_000_000)
                elif kind == "book":
                    book = await self.exchange.watch_order_book(name, limit)
                    bids, asks = book["bids"][:self.book_depth], book["asks"][:self.book_depth]
                    self.runner.on_book_snapshot(sym, [b[0] for b in bids], [b[1] for b in bids],
                                                 [a[0] for a in asks], [a[1] for a in asks],
                                                 int(book.get("timestamp") or time.time() * 1000) * 1_000_000)
                else:
                    for order in await self.exchange.watch_orders(name):
                        self._apply(order)
                backoff.reset()
                self.runner.poll_timers()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning("%s stream of %s failed (%s: %s); retrying in %.3gs", kind, name,
                            type(exc).__name__, str(exc)[:200], delay)
                self._report(sym, exc, f"{kind} stream")
                await asyncio.sleep(delay)

    def _apply(self, order: dict) -> None:
        """A venue view of one of our orders -> runner events.

        The order's cumulative filled quantity decides how much is new. When the view carries
        venue trades (a create response's fills; ccxt attaches the user stream's executions to
        a watched order) that account for exactly that increase, each becomes a fill with its
        trade id, fee (valued in the quote currency) and maker flag; otherwise the increase is
        one fill with a synthetic trade id and no fee."""
        order_id = self._by_client.get(VenueAdapter.client_order_id(order) or "")
        if order_id is None:
            order_id = self._by_exchange_id.get(str(order.get("id")))
        if order_id is None:
            return
        if order.get("id") is not None and order_id not in self._exchange_ids:
            self._exchange_ids[order_id] = str(order["id"])
            self._by_exchange_id[str(order["id"])] = order_id
            self.runner.on_order_acked(order_id, str(order["id"]))
        filled = float(order.get("filled") or 0.0)
        cum_qty, cum_cost = self._filled.get(order_id, (0.0, 0.0))
        if filled > cum_qty + 1e-12:
            delta = filled - cum_qty
            cost = float(order.get("cost") or 0.0)
            price = (cost - cum_cost) / delta if cost else float(order.get("average") or order.get("price") or 0.0)
            self._filled[order_id] = (filled, cost if cost else cum_cost + price * delta)
            adapter = self.adapter_for(order.get("symbol") or "")
            used = self._trade_ids.setdefault(order_id, set())
            trades = [t for t in adapter.order_trades(order) if str(t["id"]) not in used]
            used.update(str(t["id"]) for t in trades)
            if trades and abs(sum(float(t.get("amount") or 0.0) for t in trades) - delta) <= 1e-9 * max(1.0, delta):
                for t in trades:
                    ts = int(t.get("timestamp") or time.time() * 1000) * 1_000_000
                    self.runner.on_fill(order_id, float(t["price"]), float(t["amount"]), self._quote_fee(order, t), ts,
                                        t.get("takerOrMaker") == "maker", trade_id=str(t["id"]))
            else:
                self.runner.on_fill(order_id, price, delta, trade_id=f"{order.get('id')}-{filled:.12g}")
        status = order.get("status")
        if order_id not in self._closed and status in ("canceled", "expired", "rejected"):
            self._closed.add(order_id)
            if status == "canceled":
                self.runner.on_order_cancelled(order_id, "cancelled")
            elif status == "expired":
                self.runner.on_order_expired(order_id, "expired")
            else:
                self.runner.on_order_rejected(order_id, "rejected by the venue", "unknown")

    def _quote_fee(self, order: dict, trade: dict) -> float:
        """A trade's fee in the market's quote currency (Binance charges spot buys in the base
        asset); 0 for a currency it cannot value (e.g. BNB)."""
        fee = trade.get("fee") or {}
        cost = float(fee.get("cost") or 0.0)
        market = (self.exchange.markets or {}).get(order.get("symbol") or "") or {}
        currency = fee.get("currency")
        if not cost or currency in (market.get("quote"), market.get("settle")):
            return cost
        if currency == market.get("base"):
            return cost * float(trade.get("price") or 0.0)
        return 0.0

    # ------------------------------------------------------------------ orders out

    def _handle_signal(self, sig) -> None:
        """The runner's signal callback: an order type outside the table reaches on_error and sends nothing."""
        kind = sig.order_type
        if kind not in _HOOKS and kind not in ("cancel", "cancel_all", "modify"):
            self.runner.strategy_error(sig.strategy, sig.symbol,
                                       UnsupportedOrderType(f"order type {kind!r} is not in the routing table",
                                                            sig.order_id, sig.symbol))
            return
        self._ready()
        task = asyncio.ensure_future(self._dispatch(sig))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def client_order_id(self, order_id: int) -> str:
        return f"{self._prefix}{os.getpid()}x{order_id}"

    def adapter_for(self, symbol: str) -> VenueAdapter:
        self._ready()
        for adapter in self.adapters:
            if adapter.handles(symbol):
                return adapter
        return self.adapters[0]

    def _new_order(self, sig) -> NewOrder:
        kind = OrderType(sig.order_type)
        fields: dict[str, Any] = {}
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            fields["price"] = sig.price
        if kind in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET,
                    OrderType.TAKE_PROFIT_LIMIT) or (kind in (OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_PERCENT)
                                                    and sig.trigger):
            fields["trigger_price"] = sig.trigger
        if kind is OrderType.TRAILING_STOP:
            fields["trailing_offset"] = sig.offset
        if kind is OrderType.TRAILING_STOP_PERCENT:
            fields["trailing_bps"] = sig.offset
        return NewOrder(client_order_id=self.client_order_id(sig.order_id), strategy=sig.strategy.name,
                        venue=self.exchange_id, symbol=sig.symbol.name, side=sig.side or "buy", order_type=kind,
                        qty=sig.quantity, time_in_force=TimeInForce(sig.time_in_force or "GTC"),
                        post_only=sig.post_only and kind is OrderType.LIMIT, reduce_only=sig.reduce_only,
                        ts_init=int(sig.ts_ns), **fields)

    async def _dispatch(self, sig) -> None:
        kind = sig.order_type
        try:
            if kind == "cancel":
                await self._cancel(sig)
            elif kind == "cancel_all":
                await self._cancel_all(sig)
            elif kind == "modify":
                await self._modify(sig)
            else:
                coid = self.client_order_id(sig.order_id)
                self._by_client[coid] = sig.order_id
                if self.dry_run:
                    self.dry_run_log.append((kind, {"symbol": sig.symbol.name, "side": sig.side,
                                                    "qty": sig.quantity, "price": sig.price or None}))
                    log.info("[dry run] %s %s %s %s", kind, sig.side, sig.quantity, sig.symbol.name)
                    return
                result = await getattr(self, _HOOKS[kind])(sig.symbol.name, sig.side, sig)
                if isinstance(result, dict):
                    if not VenueAdapter.client_order_id(result):
                        result = {**result, "clientOrderId": coid}
                    self._apply(result)
        except LocalReject as exc:
            self._refused(sig, exc.code.value, exc.reason)
        except Exception as exc:
            self._refused(sig, reject_code(exc).value, f"{type(exc).__name__}: {exc}")

    def _refused(self, sig, code: str, reason: str) -> None:
        if sig.order_type in _HOOKS:
            if code == "unsupported":
                self.runner.strategy_error(sig.strategy, sig.symbol,
                                           UnsupportedOrderType(reason, sig.order_id, sig.symbol))
            self.runner.on_order_rejected(sig.order_id, reason, code)
        else:
            self.runner.on_request_failed(sig.order_id or None, reason, code, sig.symbol)
        try:
            self.on_error(sig.symbol.name if sig.symbol is not None else None,
                          OrderError(reason, code, sig.order_id or None, sig.symbol))
        except Exception:
            log.exception("the broker's on_error hook failed on a refused %s", sig.order_type)

    # --- the routing table (override per exchange) --------------------------------------------

    def _qty(self, sig) -> float:
        """The signal's quantity rounded (down) to the venue's lot; LocalReject below its minimum."""
        return self.adapter_for(sig.symbol.name).amount(sig.symbol.name, sig.quantity)

    def _trigger(self, sig) -> float | None:
        """The signal's trigger price on the venue's tick grid (None when it has none)."""
        return self.adapter_for(sig.symbol.name).price(sig.symbol.name, sig.trigger or None)

    def _limit_price(self, sig) -> float | None:
        """The signal's limit price on the venue's tick grid (None for market types)."""
        return self.adapter_for(sig.symbol.name).price(sig.symbol.name, sig.price or None)

    async def _route(self, sym: str, side: str, sig) -> dict:
        """The default of every ``_place_*`` hook: the venue YAML's row, else ccxt's unified one."""
        return await self.adapter_for(sym).place(self._new_order(sig))

    _place_market = _place_limit = _place_stop_market = _place_stop_limit = _route
    _place_take_profit_market = _place_take_profit_limit = _place_trailing = _place_close_position = _route

    async def _cancel(self, sig) -> None:
        record = self.runner.orders.get(sig.order_id)
        symbol = record.symbol.name
        if self.dry_run:
            self.dry_run_log.append(("cancel", {"order_id": sig.order_id}))
            return
        result = await self.adapter_for(symbol).cancel(symbol, self._exchange_ids.get(sig.order_id),
                                                       self.client_order_id(sig.order_id), OrderType(record.order_type))
        if isinstance(result, dict):
            self._apply({**result, "clientOrderId": self.client_order_id(sig.order_id)})

    async def _cancel_all(self, sig) -> None:
        records = [r for r in self.runner.open_orders(sig.strategy) if sig.symbol is None or r.symbol is sig.symbol]
        if self.dry_run:
            self.dry_run_log.append(("cancel_all", {"count": len(records)}))
            return
        for record in records:  # one cancel per tracked order: other strategies' orders stay
            try:
                await self.adapter_for(record.symbol.name).cancel(
                    record.symbol.name, self._exchange_ids.get(record.order_id),
                    self.client_order_id(record.order_id), OrderType(record.order_type))
            except ccxt.OrderNotFound:
                pass

    async def _modify(self, sig) -> None:
        record = self.runner.orders.get(sig.order_id)
        symbol = record.symbol.name
        if self.dry_run:
            self.dry_run_log.append(("modify", {"order_id": sig.order_id}))
            return
        qty = sig.quantity or record.qty
        price = sig.price or record.price
        exchange_id = self._exchange_ids.get(sig.order_id)
        if exchange_id is None:
            raise LocalReject(reject_code(ccxt.OrderNotFound("")),
                              f"order {sig.order_id} has no venue id yet: cannot modify it")
        await self.adapter_for(symbol).modify(symbol, exchange_id, record.side, qty, price)
        self.runner.on_order_modified(sig.order_id, price, qty)
