"""OrderRouter: ord.req.<venue> (JetStream, durable consumer) -> ccxt -> ord.evt.<venue>.<strategy>.

One router per venue account; its parts live beside it, one concern each:

- ``intake``: the ORDERS consumer; a request is acked only after its outcome event is stored.
- ``handlers``: NewOrder / CancelOrder / CancelAll / ModifyOrder -> venue calls -> events, after
  the execution layer's pre-trade gate (kill switch, risk limits).
- ``state``: the orders the router knows (open ones, recent finished ones, older ids until a
  duplicate would be stale anyway), in the ``router_state`` KV bucket (written NEW before the
  venue is called: a known order is never sent twice).
- ``streams``: watch_orders / watch_my_trades -> events; fills through the execution layer's
  ``FillLedger`` (exactly once, by trade id or by cumulative quantity; positions net of
  base-asset fees).
- ``reconcile``: balances, positions and open orders at start and after every reconnect.
- ``control``: the kill switch (``svc.order_router.kill`` / ``.release``) and account queries
  (``svc.order_router.query.<venue>``, answered by ``queries``) as service endpoints.

This module holds the lifecycle (start, connect, stop), the venue call path (rate limiter,
retries) and publishing.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from tradebus import __version__, metrics
from tradebus.exchanges import LocalReject, RateLimiter, RuleStatus, VenueAdapter, is_rate_limited, rate_limit_info
from tradebus.execution import FillLedger, RiskEngine
from tradebus.logs import order_fields
from tradebus.proto import GatewayState, GatewayStatus
from tradebus.proto.codec import encode
from tradebus.proto.subjects import ORDERS_STREAM, account_subject, order_event_subject, router_consumer
from tradebus.retry import Backoff

from .control import Control
from .handlers import RequestHandlers
from .intake import Intake
from .reconcile import Reconciliation
from .settings import RouterOptions
from .state import StateStore, Tracked
from .streams import VenueStreams

__all__ = ["OrderRouter", "RouterOptions", "Tracked", "DESCRIPTION"]

log = logging.getLogger("tradebus.order_router")

DESCRIPTION = "Order router: ord.req.<venue> -> venue; ord.evt.<venue>.<strategy> out"


class OrderRouter(Intake, RequestHandlers, VenueStreams, Reconciliation, Control):
    """One venue account: ``adapters`` are its market types (e.g. binance:spot + binance:usdm)."""

    def __init__(self, bus, venue: str, adapters: list[VenueAdapter], risk: RiskEngine | None = None,
                 options: RouterOptions | None = None, counters=None):
        self.bus = bus
        self.venue = venue
        self.adapters = adapters
        self.risk = risk or RiskEngine()
        self.options = options or RouterOptions()
        self.counters = counters if counters is not None else defaultdict(int)
        remember_s = self.options.stale_after_s + self.options.clock_skew_s if self.options.stale_after_s else None
        self.store = StateStore(bus, venue, keep_done=self.options.keep_done, remember_s=remember_s)
        self.fills = FillLedger(venue)
        self.last_price: dict[str, tuple[float, float]] = {}
        self.state = GatewayState.DISCONNECTED
        self.ready = asyncio.Event()
        self._sub = None
        self._service = None
        self._own_service = False
        self._tasks: list[asyncio.Task] = []
        self._chains: dict[str, asyncio.Future] = {}
        self._inflight: dict = {}
        self._work: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self._buckets = {id(a): self._bucket(a) for a in adapters}
        self._unacked: dict[int, Any] = {}

    @property
    def orders(self) -> dict[str, Tracked]:
        return self.store.orders

    @property
    def kv(self):
        return self.store.kv

    @property
    def positions(self):
        """(strategy, symbol) -> net position from this router's fills (base-asset fees netted out)."""
        return self.fills.positions

    def open_orders(self, strategy: str | None = None, symbol: str | None = None) -> list[Tracked]:
        return self.store.open_orders(strategy, symbol)

    # ------------------------------------------------------------------ lifecycle

    def _backoff(self) -> Backoff:
        return Backoff(self.options.backoff)

    def _bucket(self, adapter: VenueAdapter) -> RateLimiter:
        """The adapter's rate-limit rules; a report names the rule closest to its limit."""
        def report(status: RuleStatus, weight: float):
            info = rate_limit_info(status, venue=self.venue, scope=adapter.config.key, weight=weight)
            self._spawn(self._publish_core(account_subject(self.venue, "ratelimit"), info))
        return adapter.rate_limiter(report)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def start(self, service=None) -> None:
        """Declare streams, load KV state, register the control endpoints on ``service`` (the
        process's ``nats.micro`` service; None: one of the router's own), start consuming; the
        venue connects in the background."""
        await self.store.open()
        await self._load_state()
        await self._open_intake()
        if service is None:
            service = await self.bus.add_service(name="order_router", version=__version__,
                                                 description=DESCRIPTION, metadata={"venue": self.venue})
            self._own_service = True
        self._service = service
        await self._register_control(service)
        for adapter in self.adapters:
            adapter.skip_user_events()
        self._tasks.append(asyncio.ensure_future(self._connect_loop()))
        self._tasks.append(asyncio.ensure_future(self._consume_loop()))
        self._tasks.append(asyncio.ensure_future(self._sweep_loop()))
        consumer = router_consumer(self.venue)
        self._tasks.append(asyncio.ensure_future(metrics.watch_consumer(
            lambda: self.bus.consumer_info(ORDERS_STREAM, consumer), ORDERS_STREAM, consumer)))

    async def stop(self) -> None:
        """Stop consuming; requests still in hand are nak'ed so a successor gets them at once."""
        self._stopping.set()
        unacked = list(self._unacked.values())
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        pending = list(self._work)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._nak_all(unacked)
        if self._own_service and self._service is not None:
            try:
                await self._service.stop()
            except Exception:
                pass
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        for adapter in self.adapters:
            try:
                await adapter.exchange.close()
            except Exception:
                pass

    async def _load_state(self) -> None:
        kills, loaded = await self.store.load(self._adapter_for_key)
        for strategy in kills:
            self.risk.kill(strategy)
        for rec in loaded:
            self.fills.restore(rec.status)
        for key, qty in self.store.carried.items():
            self.fills.positions[key] += qty
        self.counters["orders_loaded"] = len(loaded)
        await self.store.sweep()

    async def _sweep_loop(self) -> None:
        """Purge the orders forgotten longer ago than the store remembers them (state.py)."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.options.sweep_every_s)
            try:
                self.counters["orders_purged"] += await self.store.sweep()
            except Exception as exc:  # NATS away: the next sweep takes them
                log.warning("router_state sweep failed: %s", exc)

    def _adapter_for_key(self, symbol: str) -> VenueAdapter:
        spot = ":" not in symbol
        for adapter in self.adapters:
            if (adapter.config.market_type == "spot") == spot:
                return adapter
        return self.adapters[0]

    def adapter_for(self, symbol: str) -> VenueAdapter | None:
        for adapter in self.adapters:
            if adapter.handles(symbol):
                return adapter
        return None

    async def _set_state(self, state: GatewayState, reason: str = "") -> None:
        if state is self.state:
            return
        self.state = state
        if state is GatewayState.READY_TO_TRADE:
            self.ready.set()
        else:
            self.ready.clear()
        await self._publish_core(account_subject(self.venue, "gateway"),
                                 GatewayStatus(venue=self.venue, state=state, reason=reason, ts_init=time.time_ns()))

    async def _connect_loop(self) -> None:
        """Load markets (retrying with backoff), open the order streams, reconcile, then trade."""
        backoff = self._backoff()
        await self._set_state(GatewayState.CONNECTING, "loading markets")
        watching = False
        while not self._stopping.is_set():
            try:
                for adapter in self.adapters:
                    await adapter.exchange.load_markets()
                if self.options.watch and not watching:
                    watching = True
                    for adapter in self.adapters:
                        if adapter.capabilities.watch_orders and hasattr(adapter.exchange, "watch_orders"):
                            self._tasks.append(asyncio.ensure_future(self._watch_loop(adapter)))
                    await asyncio.gather(*(self._connected(a) for a in self.adapters))
                if self.options.reconcile_on_start:
                    await self.reconcile()
                break
            except Exception as exc:
                delay = backoff.next()
                self.counters["connect_errors"] += 1
                await self._set_state(GatewayState.CONNECTING, f"{type(exc).__name__}: {exc}"[:200])
                log.warning("venue %s not reachable (%s: %s); retrying in %.2fs", self.venue, type(exc).__name__,
                            str(exc)[:200], delay)
                await asyncio.sleep(delay)
        await self._set_state(GatewayState.READY_TO_TRADE)

    async def _connected(self, adapter: VenueAdapter, pending: asyncio.Future | None = None,
                         timeout: float = 10.0) -> None:
        """Wait (bounded) until the adapter's ccxt.pro user stream is open, so a reconciliation that
        follows leaves no gap: what it misses the stream delivers."""
        if not hasattr(adapter.exchange, "clients"):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not (pending is not None and pending.done()):
            for client in list(adapter.exchange.clients.values()):
                fut = getattr(client, "connected", None)
                if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                    return
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ venue calls

    async def _call(self, adapter: VenueAdapter, method: str, fn, *args):
        """One venue call under the rate limiter; 'too many requests' answers wait and retry."""
        limiter = self._buckets[id(adapter)]
        backoff = self._backoff()
        for attempt in range(self.options.rate_limit_retries + 1):
            ticket = await limiter.acquire(endpoint=method)  # every rule of ``method``: waits, or RateLimitRejected
            started = time.perf_counter()
            try:
                return await fn(*args)
            except Exception as exc:
                if not isinstance(exc, LocalReject):  # refused before the venue was asked
                    metrics.VENUE_ERRORS.labels(self.venue, method, type(exc).__name__).inc()
                if not is_rate_limited(exc) or attempt == self.options.rate_limit_retries:
                    raise
                self.counters["rate_limited"] += 1
                limiter.penalise(method, headers=adapter.usage_headers())
                await asyncio.sleep(backoff.next())
            finally:
                metrics.VENUE_REQUEST_SECONDS.labels(self.venue, method).observe(time.perf_counter() - started)
                limiter.settle(ticket, adapter.usage_headers())  # the venue's usage headers correct the budgets
                self._rate_limit_used(adapter, limiter)

    def _rate_limit_used(self, adapter: VenueAdapter, limiter: RateLimiter) -> None:
        closest = limiter.closest()
        if closest is not None:
            metrics.RATE_LIMIT_USED.labels(self.venue, adapter.config.key).set(closest.pct / 100.0)

    async def _last_price(self, adapter: VenueAdapter, symbol: str) -> float | None:
        cached = self.last_price.get(symbol)
        if cached and time.monotonic() - cached[1] < 1.0:
            return cached[0]
        try:
            limiter = self._buckets[id(adapter)]
            ticket = await limiter.acquire(endpoint="fetch_ticker")
            started = time.perf_counter()
            try:
                ticker = await adapter.exchange.fetch_ticker(symbol)
            finally:
                metrics.VENUE_REQUEST_SECONDS.labels(self.venue, "fetch_ticker").observe(time.perf_counter() - started)
                limiter.settle(ticket, adapter.usage_headers())
        except Exception as exc:
            if not isinstance(exc, LocalReject):  # the limiter's own refusal never reached the venue
                metrics.VENUE_ERRORS.labels(self.venue, "fetch_ticker", type(exc).__name__).inc()
            return cached[0] if cached else None
        price = ticker.get("last") or ticker.get("close")
        if price:
            self.last_price[symbol] = (float(price), time.monotonic())
        return float(price) if price else None

    async def _refresh(self, rec: Tracked) -> None:
        """Fetch one order's venue state and apply it."""
        st = rec.status
        try:
            if st.exchange_order_id:
                order = await self._call(rec.adapter, "fetch_order", rec.adapter.fetch_order, st.symbol,
                                         st.exchange_order_id, st.order_type)
            else:
                order = await self._call(rec.adapter, "fetch_order", rec.adapter.fetch_by_client_id, st.symbol,
                                         st.client_order_id, st.order_type)
        except Exception as exc:
            log.warning("refresh of %s failed: %s", st.client_order_id, exc)
            return
        if order is not None:
            await self.observe(order, rec.adapter)

    # ------------------------------------------------------------------ publishing

    async def _publish_core(self, subject: str, message) -> None:
        try:
            await self.bus.publish(subject, message)
        except Exception as exc:
            log.warning("publish on %s failed: %s", subject, exc)

    async def _emit(self, event, msg_id: str) -> None:
        """Store an order event in ORDERS (deduplicated by ``msg_id``) before anything is acked."""
        subject = order_event_subject(self.venue, event.strategy)
        await self.bus.js_publish(subject, encode(event), headers={"Nats-Msg-Id": msg_id})
        self.counters["events"] += 1
        reason = getattr(event, "reason", "")
        log.info("%s%s", event.__struct_config__.tag, f": {reason}" if reason else "",
                 extra=order_fields(event, subject))
        code = getattr(event, "reject_code", None) or getattr(event, "cancel_code", None)
        metrics.ORDER_EVENTS.labels(self.venue, type(event).__name__, code.value if code else "").inc()

    def _mid(self, coid: str, what: str) -> str:
        return f"{self.venue}.{coid}.{what}"
