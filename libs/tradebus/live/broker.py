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

Orders pass the execution layer like the order router's: the same Signal -> request mapping, the
same pre-trade risk checks (``risk=RiskEngine(limits)``) and kill switch (``await broker.kill()``,
``broker.release()``), and fills through the same ledger (quote-currency fees, spot positions net
of fees charged in the base asset).

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

from tradebus.exchanges import VenueAdapter, load_config
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.execution import RiskEngine
from tradebus.retry import Backoff, BackoffSettings
from tradebus.strategy import Runner, Strategy, Symbol, SymbolRegistry

from .orders import OrderFlow, UnsupportedOrderType
from .routing import book_limit, broker_adapter, default_adapter

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


class CcxtBroker(OrderFlow):
    """A ccxt.pro exchange wired to a Runner (FLOX's CcxtBroker, see the module docstring)."""

    def __init__(self, exchange_id: str, api_key: str | None = None, secret: str | None = None, sandbox: bool = True,
                 book_depth: int = 20, retry_initial_delay: float = 1.0, retry_max_delay: float = 60.0,
                 retry_multiplier: float = 2.0, exchange=None, *, dry_run: bool | None = None,
                 live: bool | None = None, password: str | None = None, options: dict[str, Any] | None = None,
                 adapters: tuple[str, ...] | None = None, client_id_prefix: str = "tb",
                 on_error: Callable[[str | None, BaseException], Any] | None = None,
                 risk: RiskEngine | None = None):
        self.backoff = BackoffSettings(initial=float(retry_initial_delay), multiplier=float(retry_multiplier),
                                       cap=float(retry_max_delay))   # ValueError on nonsense
        if int(book_depth) <= 0:
            raise ValueError(f"book_depth must be > 0, got {book_depth}")
        if adapters is None and (":" in exchange_id or "___" in exchange_id):  # a venue: binance:usdm / BINANCE___SWAP
            config = load_config(exchange_id)
            exchange_id, adapters = config.ccxt_id, (config.key,)
        if dry_run is not None and live is not None and dry_run == live:
            raise ValueError(f"dry_run={dry_run} contradicts live={live}: pass one of them")
        self.exchange_id = exchange_id
        self.sandbox = sandbox
        self.book_depth = int(book_depth)
        self._credentials = {k: v for k, v in (("apiKey", api_key), ("secret", secret), ("password", password)) if v}
        has_keys = bool(self._credentials) or bool(exchange is not None and getattr(exchange, "apiKey", None))
        if live is not None:  # tradebus's earlier spelling: live=True is dry_run=False
            dry_run = not live
        self._no_keys = not has_keys
        self.dry_run = self._no_keys or bool(dry_run)  # nothing to sign orders with: always a dry run
        self._options = dict(options or {})
        self._adapter_keys = adapters if adapters is not None else ADAPTERS_BY_EXCHANGE.get(exchange_id, ())
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
        self.errors: list[BaseException] = []
        self._init_orders(exchange_id, client_id_prefix, risk)

    @property
    def live(self) -> bool:
        """True when orders are sent to the venue (the opposite of ``dry_run``)."""
        return not self.dry_run

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> CcxtBroker:
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
            cls = getattr(ccxtpro, self.exchange_id, None)
            if cls is None:
                raise ValueError(f"unknown exchange {self.exchange_id!r}: not a ccxt.pro exchange id")
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
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._cancel_pending()

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
        """The ``limit`` asked of ``watch_order_book``: ``book_depth`` (FLOX's), or the venue's
        nearest book depth that covers it where its YAML lists them; book_depth levels reach the runner."""
        return book_limit(self.adapter_for(symbol), self.book_depth)

    async def _stream(self, kind: str, name: str, sym: Symbol) -> None:
        backoff = Backoff(self.backoff)
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
