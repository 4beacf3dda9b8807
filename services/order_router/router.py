"""OrderRouter: ord.req.<venue> (JetStream, durable consumer) -> ccxt -> ord.evt.<venue>.<strategy>.

Guarantees:

- A request is acked on the bus only after its outcome event (ack / reject / cancel ack ...)
  was stored in the ORDERS stream; a crash before that means redelivery.
- The client order id is the venue's clientOrderId and the key of the order's OrderStatus in
  the ``router_state`` KV bucket. The status is written (NEW) before the venue is called, so a
  redelivered or duplicated request finds it: a known order is never sent twice, and an order
  left NEW (crash or timeout mid-send) is looked up at the venue by client id first.
- Fills: where the adapter has per-execution trade records (``fills_from_trades``: ccxt
  ``watch_my_trades``), each Fill is one venue execution with its trade id, fee, fee currency
  and maker/taker flag, taken from ccxt trade structures: the watch_my_trades stream, the trades
  a create response carries, ``fetch_order_trades`` in a catch-up. Order views (watch_orders,
  create/cancel responses, fetch_order) then change only the order's state, never its filled
  quantity. A trade counts once: its id goes into the order's ``OrderStatus.trade_ids`` (KV)
  together with the new ``filled_qty``, and its Nats-Msg-Id is ``<venue>.<coid>.fill.<trade id>``,
  so a replay after a restart finds it counted (or JetStream drops the repeat).
  The order views' cumulative filled quantity is the check: when a view counts more than the
  trades brought, the order is held open (an end state waits for its executions) and a catch-up
  runs after ``trade_grace_s`` (at once after reconciliation): it fetches the order's trades;
  if the venue still lists fewer than it counts, the order switches (persistently, a marker in
  ``trade_ids``) to the cumulative path below and is refreshed. The watch loop hands a trade
  update to the router before an order update woken by the same venue message.
- Cumulative path (adapters without trade records, orders filled before trade ids were kept, the
  fallback above): only the increase of the order's cumulative filled quantity over what KV
  holds becomes a Fill, with a deterministic trade id and Nats-Msg-Id; fee 0, liquidity unknown.
- Each order's updates are applied one at a time (``Tracked.lock``): events are stored, then KV.
- The kill switch is kept in KV (``router_kill_key``) and engaged again at start.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import ccxt
import msgspec
from nats.js import api
from nats.js.errors import KeyNotFoundError, NoKeysError

from tradebus.bus.jetstream import declare_all, declare_consumer
from tradebus.exchanges import (
    Backoff,
    LocalReject,
    RateLimiter,
    RuleStatus,
    VenueAdapter,
    is_ambiguous,
    is_rate_limited,
    rate_limit_info,
)
from tradebus.proto import (
    AssetBalance,
    Balance,
    CancelAck,
    CancelAll,
    CancelAllAck,
    CancelCode,
    CancelOrder,
    CancelReject,
    CommandResult,
    Fill,
    GatewayState,
    GatewayStatus,
    Liquidity,
    ModifyAck,
    ModifyOrder,
    ModifyReject,
    NewOrder,
    OrderAck,
    OrderCancelled,
    OrderReject,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    RejectCode,
    ServiceCommand,
    Side,
    UnsupportedOp,
)
from tradebus.proto.codec import decoder_for, encode
from tradebus.proto.subjects import (
    EXTERNAL_STRATEGY,
    KV_ROUTER_STATE,
    ORDERS_STREAM,
    account_subject,
    order_event_subject,
    order_request_subject,
    router_consumer,
    router_kill_key,
    router_order_key,
    router_position_key,
    service_subject,
)
from tradebus.risk import RiskEngine

__all__ = ["OrderRouter", "RouterOptions", "Backoff"]

log = logging.getLogger("tradebus.order_router")

OPEN = {OrderState.NEW, OrderState.ACKED, OrderState.PARTIALLY_FILLED}
EPS = 1e-12
CUMULATIVE = "~cumulative"  # in OrderStatus.trade_ids: this order's fills are counted by cumulative quantity
_STATUS_DECODER = decoder_for(OrderStatus)


def now_ns() -> int:
    return time.time_ns()


class RouterOptions(msgspec.Struct, frozen=True, kw_only=True):
    ack_wait: float = 60.0
    max_deliver: int = -1
    max_ack_pending: int = 2000
    fetch_batch: int = 256
    retry_initial_delay: float = 0.25
    retry_multiplier: float = 2.0
    retry_max_delay: float = 10.0
    rate_limit_retries: int = 8
    ambiguous_retries: int = 5
    watch: bool = True
    reconcile_on_start: bool = True
    stale_after_s: float = 300.0  # a NewOrder older than this (ts_init) when first seen is rejected, not sent
    trade_grace_s: float = 0.5  # how long a counted execution may wait for its trade record before a catch-up
    trade_fetch_retries: int = 3


@dataclass
class Tracked:
    """The router's view of one order (its KV value is ``status``)."""

    status: OrderStatus
    adapter: VenueAdapter
    trigger_price: float | None = None
    cancel_requested: bool = False
    ack_published: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    order_ids: set[str] = field(default_factory=set)  # every venue id it executes under
    venue_filled: float = 0.0  # the highest cumulative filled quantity a venue view showed
    held: OrderState | None = None  # an end state the venue reported before all its executions
    held_reason: str = ""
    catching_up: bool = False

    @property
    def open(self) -> bool:
        return self.status.status in OPEN


@dataclass
class _Work:
    """Messages waiting on one outcome: the first request plus any redeliveries of it."""

    msgs: list = field(default_factory=list)


class OrderRouter:
    """One venue account: ``adapters`` are its market types (e.g. binance:spot + binance:usdm)."""

    def __init__(self, bus, venue: str, adapters: list[VenueAdapter], risk: RiskEngine | None = None,
                 options: RouterOptions | None = None, counters=None):
        self.bus = bus
        self.venue = venue
        self.adapters = adapters
        self.risk = risk or RiskEngine()
        self.options = options or RouterOptions()
        self.counters = counters if counters is not None else defaultdict(int)
        self.orders: dict[str, Tracked] = {}
        self.by_exchange_id: dict[str, str] = {}
        self.positions: dict[tuple[str, str], float] = defaultdict(float)  # (strategy, symbol) -> net qty from fills
        self.last_price: dict[str, tuple[float, float]] = {}
        self.state = GatewayState.DISCONNECTED
        self.ready = asyncio.Event()
        self.kv = None
        self._sub = None
        self._tasks: list[asyncio.Task] = []
        self._chains: dict[str, asyncio.Future] = {}
        self._inflight: dict[str, _Work] = {}
        self._work: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self._buckets = {id(a): self._bucket(a) for a in adapters}
        self._ctl_sub = None
        self._unacked: dict[int, Any] = {}

    # ------------------------------------------------------------------ lifecycle

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

    async def start(self) -> None:
        """Declare streams, load KV state, start consuming; the venue connects in the background."""
        declared = await declare_all(self.bus.js)
        self.kv = declared.kv[KV_ROUTER_STATE]
        await self._load_state()
        await declare_consumer(self.bus.js, ORDERS_STREAM, api.ConsumerConfig(
            durable_name=router_consumer(self.venue),
            filter_subject=order_request_subject(self.venue),
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.options.ack_wait,
            max_deliver=self.options.max_deliver,
            max_ack_pending=self.options.max_ack_pending,
        ))
        self._sub = await self.bus.js.pull_subscribe_bind(
            durable=router_consumer(self.venue), stream=ORDERS_STREAM)
        self._ctl_sub = await self.bus.nc.subscribe(service_subject("order_router", "kill"), cb=self._on_control)
        self._ctl_sub2 = await self.bus.nc.subscribe(service_subject("order_router", "release"), cb=self._on_control)
        for adapter in self.adapters:
            adapter.skip_user_events()
        self._tasks.append(asyncio.ensure_future(self._connect_loop()))
        self._tasks.append(asyncio.ensure_future(self._consume_loop()))

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
        for msg in unacked:
            try:
                await msg.nak()
            except Exception:
                pass
        for sub in (self._sub, self._ctl_sub, getattr(self, "_ctl_sub2", None)):
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except Exception:
                    pass
        for adapter in self.adapters:
            try:
                await adapter.exchange.close()
            except Exception:
                pass

    async def _load_state(self) -> None:
        prefix = f"{router_order_key(self.venue, 'x')[:-1]}"
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            keys = []
        kill_all = router_kill_key(self.venue)
        for key in keys:
            if key == kill_all or key.startswith(kill_all + "."):
                self.risk.kill(None if key == kill_all else key[len(kill_all) + 1:])
                continue
            if not key.startswith(prefix):
                continue
            try:
                entry = await self.kv.get(key)
                status = _STATUS_DECODER.decode(entry.value)
            except (KeyNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            adapter = self._adapter_for_key(status.symbol)
            rec = Tracked(status=status, adapter=adapter, ack_published=status.status is not OrderState.NEW)
            self.orders[status.client_order_id] = rec
            if status.exchange_order_id:
                self.by_exchange_id[status.exchange_order_id] = status.client_order_id
                rec.order_ids.add(status.exchange_order_id)
            if status.filled_qty > 0 and status.strategy != EXTERNAL_STRATEGY:
                self.positions[(status.strategy, status.symbol)] += Side(status.side).sign * status.filled_qty
        self.counters["orders_loaded"] = len(self.orders)

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
                                 GatewayStatus(venue=self.venue, state=state, reason=reason, ts_init=now_ns()))

    async def _connect_loop(self) -> None:
        """Load markets (retrying with backoff), open the order streams, reconcile, then trade."""
        backoff = Backoff(self.options.retry_initial_delay, self.options.retry_multiplier, self.options.retry_max_delay)
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

    def _watch(self, adapter: VenueAdapter, kind: str) -> asyncio.Future:
        if kind == "trades":
            return asyncio.ensure_future(adapter.exchange.watch_my_trades(None, None, None, adapter.watch_params()))
        return asyncio.ensure_future(adapter.exchange.watch_orders(None, None, None, adapter.watch_params()))

    async def _watch_loop(self, adapter: VenueAdapter) -> None:
        """watch_orders (and watch_my_trades where fills come from trades) forever; after a stream
        error: back off, reconnect, reconcile the gap. Trades woken by the same venue message as an
        order update are applied first, so an end state rarely waits for its executions."""
        backoff = Backoff(self.options.retry_initial_delay, self.options.retry_multiplier, self.options.retry_max_delay)
        kinds = ("trades", "orders") if adapter.fills_from_trades() else ("orders",)
        pending: dict[str, asyncio.Future] = {}
        gap = False
        try:
            while not self._stopping.is_set():
                for kind in kinds:
                    if kind not in pending:
                        pending[kind] = self._watch(adapter, kind)
                if gap:
                    await self._connected(adapter, pending["orders"])
                    if not pending["orders"].done():
                        try:
                            await self.reconcile()
                        except Exception as exc:
                            self.counters["reconcile_errors"] += 1
                            log.warning("reconcile after reconnect failed: %s", exc)
                            await asyncio.sleep(backoff.next())
                            continue
                        gap = False
                        await self._set_state(GatewayState.READY_TO_TRADE)
                await asyncio.wait(list(pending.values()), return_when=asyncio.FIRST_COMPLETED)
                error = None
                for kind in kinds:  # trades first
                    fut = pending.get(kind)
                    if fut is None or not fut.done():
                        continue
                    del pending[kind]
                    try:
                        updates = fut.result()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        error = exc
                        continue
                    for update in updates:
                        try:
                            if kind == "trades":
                                await self.on_trade(update, adapter)
                            else:
                                await self.observe(update, adapter)
                        except Exception:
                            self.counters["observe_errors"] += 1
                            log.exception("%s update failed", kind)
                if error is not None:
                    for fut in pending.values():
                        fut.cancel()
                    pending.clear()
                    gap = True
                    self.counters["stream_errors"] += 1
                    await self._set_state(GatewayState.DISCONNECTED, f"{adapter.config.key} stream: {type(error).__name__}")
                    await asyncio.sleep(backoff.next())
                    continue
                backoff.reset()
        finally:
            for fut in pending.values():
                fut.cancel()

    # ------------------------------------------------------------------ publishing

    async def _publish_core(self, subject: str, message) -> None:
        try:
            await self.bus.nc.publish(subject, encode(message))
        except Exception as exc:
            log.warning("publish on %s failed: %s", subject, exc)

    async def _emit(self, event, msg_id: str) -> None:
        """Store an order event in ORDERS (deduplicated by ``msg_id``) before anything is acked."""
        subject = order_event_subject(self.venue, event.strategy)
        await self.bus.js_publish(subject, encode(event), headers={"Nats-Msg-Id": msg_id})
        self.counters["events"] += 1

    async def _save(self, rec: Tracked) -> None:
        await self.bus.kv_put(KV_ROUTER_STATE, router_order_key(self.venue, rec.status.client_order_id), encode(rec.status))

    def _mid(self, coid: str, what: str) -> str:
        return f"{self.venue}.{coid}.{what}"

    # ------------------------------------------------------------------ request intake

    async def _consume_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                msgs = await self._sub.fetch(self.options.fetch_batch, timeout=1.0)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                self._intake(msg)

    def _intake(self, msg) -> None:
        self.bus.received += 1
        request = self.bus.decode(msg.subject, msg.data, OrderRequest)
        if request is None:
            self._spawn(msg.term() if hasattr(msg, "term") else msg.ack())
            return
        self.counters["order_requests"] += 1
        if isinstance(request, CancelAll):
            key = f"*all*{request.strategy}"
            depends = [f for k, f in self._chains.items() if not f.done()]
        else:
            key = request.client_order_id
            depends = [self._chains[key]] if key in self._chains and not self._chains[key].done() else []
            if isinstance(request, NewOrder):
                work = self._inflight.get(key)
                if work is not None:  # a redelivery while the first copy is still being handled
                    work.msgs.append(msg)
                    self._unacked[id(msg)] = msg
                    self.counters["duplicates"] += 1
                    return
        work = _Work([msg])
        self._unacked[id(msg)] = msg
        if isinstance(request, NewOrder):
            self._inflight[request.client_order_id] = work
        task = self._spawn(self._handle(request, work, depends))
        self._chains[key] = task
        task.add_done_callback(lambda t, k=key: self._chains.get(k) is t and self._chains.pop(k, None))

    async def _handle(self, request, work: _Work, depends) -> None:
        for dep in depends:
            try:
                await asyncio.shield(dep)
            except Exception:
                pass
        while not self.ready.is_set():  # venue down: keep JetStream from redelivering meanwhile
            try:
                await asyncio.wait_for(self.ready.wait(), self.options.ack_wait / 3)
            except TimeoutError:
                for msg in work.msgs:
                    try:
                        await msg.in_progress()
                    except Exception:
                        pass
        try:
            match request:
                case NewOrder():
                    await self.new_order(request)
                case CancelOrder():
                    await self.cancel_order(request)
                case CancelAll():
                    await self.cancel_all(request)
                case ModifyOrder():
                    await self.modify_order(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            # outcome unknown (e.g. NATS down): no ack, JetStream redelivers after ack_wait
            self.bus.handler_errors += 1
            log.exception("request %s failed", type(request).__name__)
            if isinstance(request, NewOrder):
                self._inflight.pop(request.client_order_id, None)
            for msg in work.msgs:
                self._unacked.pop(id(msg), None)
                await msg.nak(delay=self.options.retry_initial_delay)
            return
        if isinstance(request, NewOrder):
            self._inflight.pop(request.client_order_id, None)
        for msg in work.msgs:
            self._unacked.pop(id(msg), None)
            await msg.ack()

    # ------------------------------------------------------------------ new orders

    async def _reject(self, order: NewOrder, code: RejectCode, reason: str, rec: Tracked | None = None) -> None:
        if rec is None:
            status = self._status(order, OrderState.REJECTED, None)
            rec = Tracked(status=status, adapter=self.adapter_for(order.symbol) or self.adapters[0])
            self.orders[order.client_order_id] = rec
        else:
            rec.status = msgspec.structs.replace(rec.status, status=OrderState.REJECTED, leaves_qty=0.0)
        self.counters["rejects"] += 1
        await self._emit(OrderReject(venue=self.venue, strategy=order.strategy, symbol=order.symbol,
                                     client_order_id=order.client_order_id, reject_code=code, reason=reason[:500],
                                     ts_init=now_ns()), self._mid(order.client_order_id, "done"))
        await self._save(rec)

    def _status(self, order: NewOrder, state: OrderState, exchange_id: str | None) -> OrderStatus:
        return OrderStatus(venue=self.venue, strategy=order.strategy, symbol=order.symbol,
                           client_order_id=order.client_order_id, exchange_order_id=exchange_id,
                           side=order.side, order_type=order.order_type, status=state, qty=order.qty,
                           price=order.price, leaves_qty=order.qty, ts_init=now_ns())

    async def _last_price(self, adapter: VenueAdapter, symbol: str) -> float | None:
        cached = self.last_price.get(symbol)
        if cached and time.monotonic() - cached[1] < 1.0:
            return cached[0]
        try:
            limiter = self._buckets[id(adapter)]
            ticket = await limiter.acquire(endpoint="fetch_ticker")
            try:
                ticker = await adapter.exchange.fetch_ticker(symbol)
            finally:
                limiter.settle(ticket, adapter.usage_headers())
        except Exception:
            return cached[0] if cached else None
        price = ticker.get("last") or ticker.get("close")
        if price:
            self.last_price[symbol] = (float(price), time.monotonic())
        return float(price) if price else None

    def open_orders(self, strategy: str | None = None, symbol: str | None = None) -> list[Tracked]:
        return [r for r in self.orders.values() if r.open and (strategy is None or r.status.strategy == strategy)
                and (symbol is None or r.status.symbol == symbol)]

    async def _call(self, adapter: VenueAdapter, method: str, fn, *args):
        """One venue call under the rate limiter; 'too many requests' answers wait and retry."""
        limiter = self._buckets[id(adapter)]
        backoff = Backoff(self.options.retry_initial_delay, self.options.retry_multiplier, self.options.retry_max_delay)
        for attempt in range(self.options.rate_limit_retries + 1):
            ticket = await limiter.acquire(endpoint=method)  # every rule of ``method``: waits, or RateLimitRejected
            try:
                return await fn(*args)
            except Exception as exc:
                if not is_rate_limited(exc) or attempt == self.options.rate_limit_retries:
                    raise
                self.counters["rate_limited"] += 1
                limiter.penalise(method, headers=adapter.usage_headers())
                await asyncio.sleep(backoff.next())
            finally:
                limiter.settle(ticket, adapter.usage_headers())  # the venue's usage headers correct the budgets

    async def new_order(self, order: NewOrder) -> None:
        coid = order.client_order_id
        rec = self.orders.get(coid)
        if rec is not None and rec.status.status is not OrderState.NEW:
            await self._republish(order, rec)
            return
        if order.venue != self.venue:
            await self._reject(order, RejectCode.INVALID_ORDER, f"venue {order.venue!r} is not this router's ({self.venue})")
            return
        adapter = self.adapter_for(order.symbol)
        if adapter is None:
            await self._reject(order, RejectCode.INVALID_ORDER, f"unknown symbol {order.symbol!r} on {self.venue}")
            return
        if rec is not None:  # NEW in KV: an earlier attempt may have reached the venue
            self.counters["ambiguous_recovered"] += 1
            found = await self._lookup(adapter, order)
            if found is not None:
                await self.observe(found, adapter)
                return
        else:
            age = (now_ns() - order.ts_init) / 1e9
            if self.options.stale_after_s and order.ts_init > 0 and age > self.options.stale_after_s:
                await self._reject(order, RejectCode.INVALID_ORDER,
                                   f"stale request: created {age:.0f}s ago (limit {self.options.stale_after_s:g}s)")
                return
            if self.risk.killed(order.strategy):
                await self._reject(order, RejectCode.KILL_SWITCH, "kill switch engaged")
                return
            if not adapter.supports(order.order_type):
                await self._unsupported(order, adapter)
                return
            last = await self._last_price(adapter, order.symbol) if self.risk.needs_price(order.strategy, self.venue) else None
            counting = self.risk.limits_for(order.strategy, self.venue).max_open_orders is not None
            reason = self.risk.check(order, last_price=last, position=self.positions[(order.strategy, order.symbol)],
                                     open_orders=len(self.open_orders(order.strategy)) if counting else 0)
            if reason:
                await self._reject(order, RejectCode.RISK_LIMIT, reason)
                return
            rec = Tracked(status=self._status(order, OrderState.NEW, None), adapter=adapter,
                          trigger_price=order.trigger_price)
            self.orders[coid] = rec
            await self._save(rec)  # write-ahead: a redelivery now finds the order
        close_qty = None
        if order.order_type is OrderType.CLOSE_POSITION and not order.qty:
            if adapter.config.market_type == "spot":  # no venue position: what this strategy holds
                close_qty = abs(self.positions[(order.strategy, order.symbol)])
            else:
                close_qty = abs(await self._venue_position(adapter, order.symbol))
        for attempt in range(self.options.ambiguous_retries + 1):
            try:
                result = await self._call(adapter, "create_order", adapter.place, order, close_qty)
            except LocalReject as exc:
                if exc.code is RejectCode.UNSUPPORTED:
                    await self._unsupported(order, adapter, exc.reason)
                else:
                    await self._reject(order, exc.code, exc.reason, rec)
                return
            except Exception as exc:
                if is_ambiguous(exc):
                    self.counters["ambiguous"] += 1
                    found = await self._lookup(adapter, order)
                    if found is not None:
                        await self.observe(found, adapter)
                        return
                    if attempt < self.options.ambiguous_retries:
                        continue
                await self._reject(order, adapter.reject_code(exc), f"{type(exc).__name__}: {exc}", rec)
                return
            self.counters["orders_sent"] += 1
            if not result.get("clientOrderId"):
                result = {**result, "clientOrderId": coid}
            await self.observe(result, adapter)
            return

    async def _lookup(self, adapter: VenueAdapter, order: NewOrder) -> dict | None:
        """Find our order at the venue by client id after an ambiguous failure (retrying the lookup)."""
        backoff = Backoff(self.options.retry_initial_delay, self.options.retry_multiplier, self.options.retry_max_delay)
        for _ in range(self.options.ambiguous_retries + 1):
            try:
                return await self._call(adapter, "fetch_order", adapter.fetch_by_client_id, order.symbol,
                                        order.client_order_id, order.order_type)
            except Exception as exc:
                if not is_ambiguous(exc):
                    raise
                await asyncio.sleep(backoff.next())
        raise ccxt.RequestTimeout(f"order {order.client_order_id}: venue unreachable for lookup")

    async def _venue_position(self, adapter: VenueAdapter, symbol: str) -> float:
        for p in await adapter.fetch_positions():
            if p.get("symbol") == symbol:
                contracts = float(p.get("contracts") or 0.0)
                return contracts if p.get("side") != "short" else -contracts
        return 0.0

    async def _unsupported(self, order: NewOrder, adapter: VenueAdapter, reason: str = "") -> None:
        rec = self.orders.get(order.client_order_id)
        if rec is None:
            rec = Tracked(status=self._status(order, OrderState.REJECTED, None), adapter=adapter)
            self.orders[order.client_order_id] = rec
        rec.status = msgspec.structs.replace(rec.status, status=OrderState.REJECTED, leaves_qty=0.0)
        self.counters["unsupported"] += 1
        await self._emit(UnsupportedOp(venue=self.venue, strategy=order.strategy, op=order.order_type.value,
                                       reason=reason or f"{adapter.config.key} does not support {order.order_type.value}",
                                       symbol=order.symbol, client_order_id=order.client_order_id, ts_init=now_ns()),
                         self._mid(order.client_order_id, "done"))
        await self._save(rec)

    async def _republish(self, order: NewOrder, rec: Tracked) -> None:
        """A duplicate of a request already handled: send nothing. KV leaves NEW only after the
        outcome event was stored, so that event is already in the ORDERS stream."""
        self.counters["duplicates"] += 1

    def _ack_event(self, rec: Tracked) -> OrderAck:
        st = rec.status
        return OrderAck(venue=self.venue, strategy=st.strategy, symbol=st.symbol, client_order_id=st.client_order_id,
                        exchange_order_id=st.exchange_order_id or "", side=st.side, order_type=st.order_type,
                        qty=st.qty, price=st.price, trigger_price=rec.trigger_price, ts_init=now_ns())

    # ------------------------------------------------------------------ venue -> events

    async def observe(self, order: dict, adapter: VenueAdapter, reconciled: bool = False) -> Tracked | None:
        """Apply one venue view of an order: ack, fills, end state. Idempotent.

        Fills come from the trades the view carries when the adapter takes fills from trades
        (the view's cumulative quantity only checks them), else from the cumulative quantity."""
        exchange_id = str(order.get("id")) if order.get("id") is not None else None
        coid = adapter.client_order_id(order)
        if coid is None or coid not in self.orders:
            coid = self.by_exchange_id.get(exchange_id or "", coid)
        rec = self.orders.get(coid) if coid else None
        events: list[tuple[Any, str]] = []
        if rec is None:
            rec = self._adopt(order, adapter, coid, exchange_id)
            if rec is None:
                return None
            events.append((rec.status, self._mid(rec.status.client_order_id, "adopt")))
        async with rec.lock:
            await self._observe(rec, order, adapter, exchange_id, events, reconciled)
        return rec

    async def _observe(self, rec: Tracked, order: dict, adapter: VenueAdapter, exchange_id: str | None,
                       events: list, reconciled: bool) -> None:
        st = rec.status
        coid = st.client_order_id
        if exchange_id:
            if not st.exchange_order_id:  # the first id stays the order's; later ones (a placed order) alias it
                st = msgspec.structs.replace(st, exchange_order_id=exchange_id)
            self.by_exchange_id[exchange_id] = coid
            rec.order_ids.add(exchange_id)
        for other in adapter.related_order_ids(order):
            self.by_exchange_id[other] = coid
            rec.order_ids.add(other)
        state = adapter.state(order)
        if not rec.ack_published and st.strategy != EXTERNAL_STRATEGY:
            rec.ack_published = True
            rec.status = st
            events.append((self._ack_event(rec), self._mid(coid, "done")))
        rec.ack_published = True
        filled = float(order.get("filled") or 0.0)
        if self._by_trades(rec):
            for trade in adapter.order_trades(order):
                st = self._apply_trade(rec, st, trade, events)
            rec.venue_filled = max(rec.venue_filled, filled)
            if filled > st.filled_qty + EPS:  # counted at the venue, no trade record yet
                self._catch_up(rec, immediate=reconciled)
                if state not in OPEN:
                    rec.held, rec.held_reason = state, str(order.get("status") or "")
                    state = OrderState.ACKED
        elif filled > st.filled_qty + EPS:
            delta = filled - st.filled_qty
            cost = order.get("cost")
            old_cost = st.avg_price * st.filled_qty
            if cost:
                price = (float(cost) - old_cost) / delta
            else:
                price = float(order.get("average") or order.get("price") or 0.0)
            if price <= 0:
                price = float(order.get("average") or order.get("price") or 0.0)
            avg = (old_cost + price * delta) / filled
            fee = order.get("fee") or {}
            st = msgspec.structs.replace(st, filled_qty=filled, avg_price=avg, leaves_qty=max(0.0, st.qty - filled))
            fill = Fill(venue=self.venue, strategy=st.strategy, symbol=st.symbol, client_order_id=coid,
                        exchange_order_id=st.exchange_order_id or "", trade_id=f"{st.exchange_order_id}-{filled:.12g}",
                        side=st.side, price=price, qty=delta, leaves_qty=st.leaves_qty, cum_qty=filled,
                        fee=0.0, fee_currency=str(fee.get("currency") or ""), liquidity=Liquidity.UNKNOWN,
                        ts_event=int(order.get("lastUpdateTimestamp") or order.get("timestamp") or 0) * 1_000_000,
                        ts_init=now_ns())
            events.append((fill, self._mid(coid, f"fill.cum-{filled:.12g}")))
            if st.strategy != EXTERNAL_STRATEGY:
                self.positions[(st.strategy, st.symbol)] += Side(st.side).sign * delta
            self.last_price[st.symbol] = (price, time.monotonic())
            self.counters["fills"] += 1
        st = self._transition(rec, st, state, str(order.get("status") or ""), events)
        changed = st != rec.status or events
        rec.status = msgspec.structs.replace(st, ts_init=now_ns()) if changed else st
        if reconciled:
            events.append((rec.status, self._mid(coid, f"status.{now_ns()}")))
        for event, mid in events:  # events first: a KV state past NEW proves they were stored
            await self._emit(event, mid)
        if changed:
            await self._save(rec)

    def _transition(self, rec: Tracked, st: OrderStatus, state: OrderState, reason: str, events: list) -> OrderStatus:
        """``st`` moved to the venue's ``state`` (an end state once only), with its end event."""
        before = st.status
        if state in (OrderState.ACKED, OrderState.PARTIALLY_FILLED) and before in OPEN:
            return msgspec.structs.replace(st, status=OrderState.PARTIALLY_FILLED if st.filled_qty > 0 else OrderState.ACKED)
        if state in OPEN or before not in OPEN:
            return st
        rec.held = None
        coid = st.client_order_id
        st = msgspec.structs.replace(st, status=state, leaves_qty=0.0)
        if state in (OrderState.CANCELLED, OrderState.EXPIRED):
            code = CancelCode.EXPIRED if state is OrderState.EXPIRED else (
                CancelCode.USER if rec.cancel_requested else CancelCode.VENUE)
            events.append((OrderCancelled(venue=self.venue, strategy=st.strategy, symbol=st.symbol,
                                          client_order_id=coid, exchange_order_id=st.exchange_order_id,
                                          unsolicited=not rec.cancel_requested, cancel_code=code,
                                          reason=reason, cum_qty=st.filled_qty, ts_init=now_ns()), self._mid(coid, "end")))
        elif state is OrderState.REJECTED:
            events.append((OrderReject(venue=self.venue, strategy=st.strategy, symbol=st.symbol,
                                       client_order_id=coid, reject_code=RejectCode.UNKNOWN,
                                       reason="rejected by the venue", ts_init=now_ns()), self._mid(coid, "end")))
        return st

    # ------------------------------------------------------------------ venue trades -> fills

    def _by_trades(self, rec: Tracked) -> bool:
        """True when this order's fills come from venue trade records (see the module docstring)."""
        st = rec.status
        if CUMULATIVE in st.trade_ids or (st.filled_qty > EPS and not st.trade_ids):
            return False
        return rec.adapter.fills_from_trades()

    def _apply_trade(self, rec: Tracked, st: OrderStatus, trade: dict, events: list) -> OrderStatus:
        """One venue execution -> a Fill in ``events``, unless its trade id is already counted."""
        tid = trade.get("id")
        qty = float(trade.get("amount") or 0.0)
        if tid is None or str(tid) in st.trade_ids or qty <= 0:
            return st
        tid = str(tid)
        price = float(trade.get("price") or 0.0)
        filled = st.filled_qty + qty
        avg = (st.avg_price * st.filled_qty + price * qty) / filled
        st = msgspec.structs.replace(st, filled_qty=filled, avg_price=avg, leaves_qty=max(0.0, st.qty - filled),
                                     trade_ids=(*st.trade_ids, tid))
        fee = trade.get("fee") or next(iter(trade.get("fees") or ()), None) or {}
        liquidity = {"maker": Liquidity.MAKER, "taker": Liquidity.TAKER}.get(trade.get("takerOrMaker"), Liquidity.UNKNOWN)
        coid = st.client_order_id
        events.append((Fill(venue=self.venue, strategy=st.strategy, symbol=st.symbol, client_order_id=coid,
                            exchange_order_id=str(trade.get("order") or st.exchange_order_id or ""), trade_id=tid,
                            side=st.side, price=price, qty=qty, leaves_qty=st.leaves_qty, cum_qty=filled,
                            fee=float(fee.get("cost") or 0.0), fee_currency=str(fee.get("currency") or ""),
                            liquidity=liquidity, ts_event=int(trade.get("timestamp") or 0) * 1_000_000,
                            ts_init=now_ns()), self._mid(coid, f"fill.{tid}")))
        if st.strategy != EXTERNAL_STRATEGY:
            self.positions[(st.strategy, st.symbol)] += Side(st.side).sign * qty
        self.last_price[st.symbol] = (price, time.monotonic())
        self.counters["fills"] += 1
        return st

    async def on_trade(self, trade: dict, adapter: VenueAdapter) -> Tracked | None:
        """One execution from watch_my_trades (a ccxt trade structure)."""
        oid = str(trade["order"]) if trade.get("order") is not None else ""
        coid = self.by_exchange_id.get(oid) or adapter.trade_client_order_id(trade)
        rec = self.orders.get(coid or "")
        if rec is None:  # not known yet: its order update adopts it, the catch-up brings this trade
            self.counters["trades_unmatched"] += 1
            return None
        await self._take_trades(rec, [trade])
        return rec

    async def _take_trades(self, rec: Tracked, trades: list[dict]) -> None:
        async with rec.lock:
            if not self._by_trades(rec):
                return
            st = rec.status
            coid = st.client_order_id
            for trade in trades:
                oid = str(trade["order"]) if trade.get("order") is not None else ""
                if oid:
                    self.by_exchange_id[oid] = coid
                    rec.order_ids.add(oid)
                    if not st.exchange_order_id:
                        st = msgspec.structs.replace(st, exchange_order_id=oid)
            events: list[tuple[Any, str]] = []
            if not rec.ack_published and st.strategy != EXTERNAL_STRATEGY:  # it traded: the venue has it
                rec.status = st
                events.append((self._ack_event(rec), self._mid(coid, "done")))
            rec.ack_published = True
            for trade in trades:
                st = self._apply_trade(rec, st, trade, events)
            if st.status is OrderState.NEW:
                st = msgspec.structs.replace(st, status=OrderState.ACKED)
            st = self._transition(rec, st, OrderState.ACKED, "", events)
            if st.qty > 0 and st.filled_qty >= st.qty - EPS:  # every unit executed: filled, whatever view comes next
                st = self._transition(rec, st, OrderState.FILLED, "closed", events)
            elif rec.held is not None and rec.venue_filled <= st.filled_qty + EPS:
                st = self._transition(rec, st, rec.held, rec.held_reason, events)
            if st == rec.status and not events:
                return
            rec.status = msgspec.structs.replace(st, ts_init=now_ns())
            for event, mid in events:
                await self._emit(event, mid)
            await self._save(rec)

    def _missing(self, rec: Tracked) -> bool:
        return self._by_trades(rec) and rec.venue_filled > rec.status.filled_qty + EPS

    def _catch_up(self, rec: Tracked, immediate: bool = False) -> None:
        if not rec.catching_up and not self._stopping.is_set():
            rec.catching_up = True
            self._spawn(self._catch_up_task(rec, immediate))

    async def _catch_up_task(self, rec: Tracked, immediate: bool) -> None:
        """Executions a venue view counts that no trade record brought: after a grace period for
        the trade stream, fetch the order's trades; when the venue still lists fewer than it
        counts, this order counts fills by cumulative quantity from then on."""
        backoff = Backoff(self.options.retry_initial_delay, self.options.retry_multiplier, self.options.retry_max_delay)
        try:
            if not immediate:
                await asyncio.sleep(self.options.trade_grace_s)
            for attempt in range(self.options.trade_fetch_retries + 1):
                if not self._missing(rec):
                    return
                if attempt:
                    await asyncio.sleep(backoff.next())
                try:
                    trades = await self._order_trades(rec)
                except Exception as exc:
                    self.counters["trade_fetch_errors"] += 1
                    log.warning("trades of %s not fetched: %s", rec.status.client_order_id, exc)
                    continue
                if trades is None:
                    break
                self.counters["trade_catch_ups"] += 1
                await self._take_trades(rec, trades)
            if not self._missing(rec):
                return
            async with rec.lock:
                if self._by_trades(rec):
                    rec.status = msgspec.structs.replace(rec.status, trade_ids=(*rec.status.trade_ids, CUMULATIVE))
                    await self._save(rec)
            self.counters["trade_fallbacks"] += 1
            log.warning("order %s: the venue lists fewer executions than it counts; counting its fills by "
                        "cumulative quantity", rec.status.client_order_id)
        finally:
            rec.catching_up = False
        await self._refresh(rec)

    async def _order_trades(self, rec: Tracked) -> list[dict] | None:
        ids = sorted(rec.order_ids) or ([rec.status.exchange_order_id] if rec.status.exchange_order_id else [])
        out: list[dict] = []
        for oid in ids:
            got = await self._call(rec.adapter, "fetch_my_trades", rec.adapter.fetch_order_trades, rec.status.symbol, oid)
            if got is None:
                return None
            out += [t if t.get("order") is not None else {**t, "order": oid} for t in got]
        return out

    def _adopt(self, order: dict, adapter: VenueAdapter, coid: str | None, exchange_id: str | None) -> Tracked | None:
        """An order the router never placed (manual trade, other tool): track it as external."""
        if exchange_id is None:
            return None
        if not coid or not _token_ok(coid):
            coid = f"ext-{exchange_id}"
        side = order.get("side") or "buy"
        kind = _order_type(order)
        qty = float(order.get("amount") or 0.0)
        status = OrderStatus(venue=self.venue, strategy=EXTERNAL_STRATEGY, symbol=order.get("symbol") or "",
                             client_order_id=coid, exchange_order_id=exchange_id, side=Side(side), order_type=kind,
                             status=OrderState.ACKED, qty=qty, price=order.get("price"), leaves_qty=qty,
                             ts_init=now_ns())
        rec = Tracked(status=status, adapter=adapter, ack_published=True)
        self.orders[coid] = rec
        self.by_exchange_id[exchange_id] = coid
        self.counters["adopted"] += 1
        return rec

    # ------------------------------------------------------------------ cancel / modify

    async def cancel_order(self, req: CancelOrder) -> None:
        rec = self.orders.get(req.client_order_id)
        mid = self._mid(req.client_order_id, f"cancel.{req.ts_init}")

        async def refuse(code: RejectCode, reason: str) -> None:
            await self._emit(CancelReject(venue=self.venue, strategy=req.strategy, symbol=req.symbol,
                                          client_order_id=req.client_order_id, reject_code=code, reason=reason[:500],
                                          ts_init=now_ns()), mid)

        if rec is None:
            await refuse(RejectCode.ORDER_NOT_FOUND, f"unknown order {req.client_order_id}")
            return
        if not rec.open:
            await refuse(RejectCode.ORDER_NOT_FOUND, f"order {req.client_order_id} is {rec.status.status.value}")
            return
        adapter = rec.adapter
        rec.cancel_requested = True
        target_id, target_type = self._cancel_target(rec)
        try:
            result = await self._call(adapter, "cancel_order", adapter.cancel, rec.status.symbol,
                                      target_id or req.exchange_order_id, req.client_order_id, target_type)
        except Exception as exc:
            rec.cancel_requested = False
            if isinstance(exc, ccxt.OrderNotFound) or is_ambiguous(exc):
                await self._refresh(rec)
            await refuse(adapter.reject_code(exc), f"{type(exc).__name__}: {exc}")
            return
        await self._emit(CancelAck(venue=self.venue, strategy=req.strategy, symbol=req.symbol,
                                   client_order_id=req.client_order_id, exchange_order_id=rec.status.exchange_order_id,
                                   ts_init=now_ns()), mid)
        if isinstance(result, dict) and result.get("status"):
            await self.observe(result, adapter)
        else:
            await self._refresh(rec)

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

    async def cancel_all(self, req: CancelAll) -> None:
        targets = self.open_orders(req.strategy, req.symbol)
        count = await self._cancel_many(targets)
        await self._emit(CancelAllAck(venue=self.venue, strategy=req.strategy, symbol=req.symbol, count=count,
                                      ts_init=now_ns()), f"{self.venue}.cancel_all.{req.strategy}.{req.ts_init}")

    @staticmethod
    def _cancel_target(rec: Tracked) -> tuple[str | None, OrderType | None]:
        """The venue order a cancel must reach: once a conditional order has triggered, the order it
        placed (the conditional one is finished at the venue); else the order itself."""
        st = rec.status
        placed = sorted(i for i in rec.order_ids if i != st.exchange_order_id)
        if placed and rec.adapter.conditional(st.order_type):
            return placed[-1], None
        return st.exchange_order_id, st.order_type

    async def _cancel_many(self, targets: list[Tracked]) -> int:
        count = 0
        for rec in targets:
            rec.cancel_requested = True
            target_id, target_type = self._cancel_target(rec)
            try:
                result = await self._call(rec.adapter, "cancel_order", rec.adapter.cancel, rec.status.symbol,
                                          target_id, rec.status.client_order_id, target_type)
                count += 1
                if isinstance(result, dict) and result.get("status"):
                    await self.observe(result, rec.adapter)
                else:
                    await self._refresh(rec)
            except Exception:
                rec.cancel_requested = False
                await self._refresh(rec)
        return count

    async def modify_order(self, req: ModifyOrder) -> None:
        rec = self.orders.get(req.client_order_id)
        mid = self._mid(req.client_order_id, f"modify.{req.ts_init}")

        async def refuse(code: RejectCode, reason: str) -> None:
            await self._emit(ModifyReject(venue=self.venue, strategy=req.strategy, symbol=req.symbol,
                                          client_order_id=req.client_order_id, reject_code=code, reason=reason[:500],
                                          ts_init=now_ns()), mid)

        if rec is None or not rec.open:
            await refuse(RejectCode.ORDER_NOT_FOUND, f"no open order {req.client_order_id}")
            return
        adapter = rec.adapter
        if not adapter.capabilities.modify or rec.status.order_type is not OrderType.LIMIT:
            await self._emit(UnsupportedOp(venue=self.venue, strategy=req.strategy, op="modify",
                                           reason=f"{adapter.config.key} cannot modify {rec.status.order_type.value} orders",
                                           symbol=req.symbol, client_order_id=req.client_order_id, ts_init=now_ns()), mid)
            return
        st = rec.status
        qty = req.new_qty if req.new_qty is not None else st.qty
        price = req.new_price if req.new_price is not None else st.price
        try:
            result = await self._call(adapter, "edit_order", adapter.modify, st.symbol, st.exchange_order_id, st.side,
                                      qty, price)
        except Exception as exc:
            await refuse(adapter.reject_code(exc), f"{type(exc).__name__}: {exc}")
            return
        async with rec.lock:  # fills applied during the edit call stay in
            rec.status = msgspec.structs.replace(rec.status, qty=float(result.get("amount") or qty),
                                                 price=float(result.get("price") or price))
            await self._save(rec)
        await self._emit(ModifyAck(venue=self.venue, strategy=req.strategy, symbol=req.symbol,
                                   client_order_id=req.client_order_id, exchange_order_id=rec.status.exchange_order_id,
                                   price=rec.status.price, qty=rec.status.qty, ts_init=now_ns()), mid)
        await self.observe(result, adapter)

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> None:
        """Balances, positions and open orders from the venue; orders KV thinks open are refreshed."""
        async with self._reconcile_lock:
            self.counters["reconciles"] += 1
            for adapter in self.adapters:
                await self._reconcile_adapter(adapter)

    async def _reconcile_adapter(self, adapter: VenueAdapter) -> None:
        ts = now_ns()
        balance = await self._call(adapter, "fetch_balance", adapter.exchange.fetch_balance)
        assets = [AssetBalance(currency=c, free=float(v.get("free") or 0.0), used=float(v.get("used") or 0.0),
                               total=float(v.get("total") or 0.0))
                  for c, v in balance.items() if isinstance(v, dict) and c not in ("info", "free", "used", "total")
                  and v.get("total")]
        await self._publish_core(account_subject(self.venue, "balance"), Balance(venue=self.venue, balances=assets, ts_init=ts))
        for p in await self._call(adapter, "fetch_positions", adapter.fetch_positions):
            contracts = float(p.get("contracts") or 0.0)
            qty = -contracts if p.get("side") == "short" else contracts
            if not p.get("symbol"):
                continue
            pos = Position(venue=self.venue, symbol=p["symbol"], qty=qty, avg_price=float(p.get("entryPrice") or 0.0),
                           unrealized_pnl=float(p.get("unrealizedPnl") or 0.0),
                           leverage=float(p["leverage"]) if p.get("leverage") else None, ts_init=ts)
            await self.kv.put(router_position_key(self.venue, p["symbol"]), encode(pos))
            await self._publish_core(account_subject(self.venue, "position"), pos)
        seen = set()
        for order in await self._call(adapter, "fetch_open_orders", adapter.fetch_open_orders):
            rec = await self.observe(order, adapter, reconciled=True)
            if rec is not None:
                seen.add(rec.status.client_order_id)
        for rec in list(self.orders.values()):
            if rec.adapter is adapter and rec.open and rec.status.client_order_id not in seen \
                    and rec.status.status is not OrderState.NEW:
                await self._refresh(rec)

    # ------------------------------------------------------------------ kill switch

    async def kill(self, strategy: str | None = None) -> int:
        """Engage the kill switch (kept in KV for a restart) and cancel the open orders it covers;
        returns how many."""
        self.risk.kill(strategy)
        args = {"venue": self.venue, **({"strategy": strategy} if strategy else {})}
        await self.kv.put(router_kill_key(self.venue, strategy),
                          encode(ServiceCommand(service="order_router", command="kill", args=args, ts_init=now_ns())))
        targets = [r for r in self.open_orders(strategy) if r.status.strategy != EXTERNAL_STRATEGY or strategy is None]
        for rec in targets:
            rec.cancel_requested = True
        return await self._cancel_many(targets)

    async def release(self, strategy: str | None = None) -> None:
        """Release the kill switch of ``strategy`` (None: every switch on this venue), KV first."""
        if strategy is None:
            base = router_kill_key(self.venue)
            try:
                keys = [k for k in await self.kv.keys() if k == base or k.startswith(base + ".")]
            except NoKeysError:
                keys = []
        else:
            keys = [router_kill_key(self.venue, strategy)]
        for key in keys:
            await self.kv.delete(key)
        self.risk.release(strategy)

    async def _on_control(self, msg) -> None:
        cmd = self.bus.decode(msg.subject, msg.data, ServiceCommand)
        if cmd is None:
            return
        venue = cmd.args.get("venue")
        if venue and venue != self.venue:
            return
        strategy = cmd.args.get("strategy") or None
        command = msg.subject.rsplit(".", 1)[-1]
        if command == "kill":
            count = await self.kill(strategy)
            text = f"kill switch on for {strategy or 'all strategies'} on {self.venue}; {count} orders cancelled"
        else:
            await self.release(strategy)
            text = f"kill switch released for {strategy or 'all strategies'} on {self.venue}"
        log.warning("%s", text)
        if msg.reply:
            await self.bus.nc.publish(msg.reply, encode(CommandResult(strategy=strategy or "*", command=command,
                                                                      ok=True, message=text, ts_init=now_ns())))


def _token_ok(value: str) -> bool:
    import re
    return bool(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value))


def _order_type(order: dict) -> OrderType:
    kind = str(order.get("type") or "limit").lower()
    if order.get("triggerPrice") or order.get("stopPrice"):
        return OrderType.STOP_LIMIT if "limit" in kind or kind == "stop" else OrderType.STOP_MARKET
    return OrderType.MARKET if kind == "market" else OrderType.LIMIT
