"""StrategyHost: the configured strategies in one Runner, wired to the bus.

Market data (``md.>``) goes to the Runner; each Signal becomes an order request on
``ord.req.<venue>.<strategy>`` (JetStream ORDERS when it exists, with ``Nats-Msg-Id`` = client order id);
order events (``ord.evt.<venue>.<strategy>``) come back as acks, rejects, fills and cancels, so
positions follow fills. MLThon strategies (``kind: mlthon``) run in the same Runner through
:class:`tradebus.mlthon.MLThonStrategy`; they also get gateway and rate-limit events
(``acct.<venue>.*``), feed status and funding, commands (``ctl.<strategy>.<command>``) and their
``fetch_*`` answers from the venue's order router. A strategy that raises is logged with its traceback, told through
on_error, and reported as a ServiceStatus on ``svc.strategy_runner.event``; the others go on.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from nats.js.errors import NoStreamResponseError, NotFoundError

from tradebus import metrics
from tradebus.bus.service import ServiceContext
from tradebus.execution import fill_position_change, fill_quote_fee, orders, runner_external_fill, runner_fill
from tradebus.logs import order_fields
from tradebus.mlthon import IStrategy, MLThonStrategy, notifier_from_env
from tradebus.mlthon.basics.defs import Exchange
from tradebus.mlthon.live import BusGateway, on_live_event
from tradebus.proto import (
    BBO,
    AccountQuery,
    AccountSnapshot,
    Bar,
    BookDelta,
    BookSide,
    BookSnapshot,
    CancelAck,
    CancelAllAck,
    CancelAllReject,
    CancelReject,
    CommandResult,
    FeedState,
    FeedStatus,
    Fill,
    FundingRate,
    Instrument,
    ModifyAck,
    ModifyReject,
    NewOrder,
    OrderAck,
    OrderCancelled,
    OrderEvent,
    OrderReject,
    OrderStatus,
    ParamsUpdate,
    ServiceState,
    ServiceStatus,
    Side,
    StrategyCommand,
    Trade,
    TradeBatch,
    UnsupportedOp,
)
from tradebus.proto.codec import encode
from tradebus.proto.subjects import (
    KV_STRATEGY_PARAMS,
    ORDERS_STREAM,
    account_query_subject,
    control_strategy,
    order_event_subject,
    order_request_subject,
    params_key,
    service_subject,
)
from tradebus.retry import Backoff, BackoffSettings
from tradebus.strategy import OrderError, Runner, Signal, Strategy, StrategyContext, SymbolRegistry

from .settings import StrategyRunnerSettings, StrategySpec, load_class

__all__ = ["StrategyHost", "EVENT_SUBJECT"]

EVENT_SUBJECT = service_subject("strategy_runner", "event")
# Retrying an order request while ORDERS elects a leader: short first waits, a leader takes seconds.
ORDER_STORE_BACKOFF = BackoffSettings(initial=0.05, multiplier=2.0, cap=1.0)
"""Where the runner publishes ServiceStatus events (a strategy failed, it started, it stopped)."""


def _session_tag() -> str:
    """A short token that differs between runs, so client order ids never repeat."""
    n = time.time_ns() // 1_000_000
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


_MISSING = object()


class StrategyHost:
    """Builds the strategies of the settings and connects their Runner to the bus."""

    def __init__(self, svc: ServiceContext, settings: StrategyRunnerSettings, config_dir: Path | None = None):
        self.svc = svc
        self.settings = settings
        self.log = svc.log
        self.registry = SymbolRegistry()
        self.runner = Runner(self.registry, self._on_signal, on_error=self._on_strategy_error)
        self.specs: dict[str, StrategySpec] = {}
        self.symbols: dict[tuple[str, str], Any] = {}      # (venue, unified symbol) -> Symbol
        self.session = _session_tag()
        self._client_ids: dict[str, tuple[str, int]] = {}  # client order id -> (strategy, order id)
        self._order_client: dict[int, str] = {}
        self._outbox: list[Any] = []
        self._events: list[ServiceStatus] = []
        self._stream_ok = True
        self.last_error = ""
        self.mlthon: dict[str, list[MLThonStrategy]] = {}     # venue -> its MLThon strategies
        self._stored_params: dict[str, tuple[int, dict]] = {}  # strategy -> (KV revision, params)
        self._kv_params = True
        self._queries: set[asyncio.Task] = set()
        self._unlist_metrics: Any = lambda: None
        enabled = [spec for spec in settings.strategies if spec.enabled]
        self._register_symbols(enabled)
        for spec in enabled:
            self._add(spec, config_dir)

    # -- building ------------------------------------------------------------------------------

    def _register_symbols(self, specs: list[StrategySpec]) -> None:
        """One Symbol per (venue, symbol) for all strategies; sizes given by any of them (a
        strategy may leave them at 0), but two different non-zero sizes are an error."""
        sizes: dict[tuple[str, str], list[float]] = {}
        for spec in specs:
            for s in spec.symbol_specs():
                have = sizes.setdefault((spec.venue, s.symbol), [0.0, 0.0])
                for i, value in enumerate((s.tick_size, s.lot_size)):
                    if value and have[i] and value != have[i]:
                        what = "tick_size" if i == 0 else "lot_size"
                        raise ValueError(f"{spec.venue} {s.symbol}: strategies disagree on {what} "
                                         f"({have[i]} vs {value})")
                    have[i] = value or have[i]
        for (venue, name), (tick, lot) in sizes.items():
            self.symbols[(venue, name)] = self.registry.add_symbol(venue, name, tick_size=tick, lot_size=lot)

    def _add(self, spec: StrategySpec, config_dir: Path | None) -> None:
        cls = load_class(spec.cls, config_dir)
        symbols = [self.symbols[(spec.venue, s.symbol)] for s in spec.symbol_specs()]
        if spec.kind == "mlthon":
            strategy = self._mlthon(spec, cls, symbols)
        else:
            if not (isinstance(cls, type) and issubclass(cls, Strategy)):
                raise ValueError(f"strategy {spec.name}: {spec.cls} is not a tradebus Strategy")
            strategy = cls(symbols, **spec.params)
        strategy.name = spec.name
        self.runner.add_strategy(strategy)
        self.specs[spec.name] = spec

    def _mlthon(self, spec: StrategySpec, cls: type, symbols: list) -> MLThonStrategy:
        if not (isinstance(cls, type) and issubclass(cls, IStrategy)):
            raise ValueError(f"strategy {spec.name}: {spec.cls} is not an MLThon IStrategy")
        try:
            exchange = Exchange.from_venue(spec.venue)
        except ValueError:
            exchange = Exchange.Sim
        inner = cls(dict(spec.cfg)) if spec.cfg else cls()
        host = MLThonStrategy(inner, symbols, exchange=exchange, name=spec.name, params=spec.params,
                              gateway=BusGateway(self._query, spec.venue, spec.name, self._order_client.get,
                                                 lambda coid: (self._client_ids.get(coid) or (None, None))[1]),
                              notifier=notifier_from_env(spec.name), log_path=spec.callback_log or None)
        self.mlthon.setdefault(spec.venue, []).append(host)
        return host

    def _query(self, query: AccountQuery, reply) -> None:
        """An MLThon fetch_*: ask the venue's router, answer through ``reply`` when it does."""
        task = asyncio.get_running_loop().create_task(self._ask(query, reply))
        self._queries.add(task)                    # the loop keeps only a weak reference
        task.add_done_callback(self._queries.discard)

    async def _ask(self, query: AccountQuery, reply) -> None:
        try:
            snapshot = await self.svc.bus.request(account_query_subject(query.venue), query, AccountSnapshot,
                                                  timeout=self.settings.query_timeout)
        except Exception as exc:
            reply(None, f"no answer from the order router of {query.venue}: {type(exc).__name__} {exc}".strip())
        else:
            reply(snapshot, "")
        await self.flush()

    async def on_account_event(self, event, _msg=None) -> None:
        """acct.<venue>.*: gateway status and rate-limit use, for the MLThon strategies."""
        for host in self.mlthon.get(event.venue, ()):
            on_live_event(host, event)
        await self.flush()

    async def on_control(self, message, msg=None) -> None:
        """ctl.<strategy>.*: params updates, and commands answered with a CommandResult.

        The strategy is the one the subject names (the server lets only operators publish there);
        a message whose ``strategy`` field names another one is refused."""
        named = control_strategy(msg.subject) if msg is not None else message.strategy
        if named != message.strategy:
            self.svc.counters["control_refused"] += 1
            self.log.warning("refused %s on %s: it names strategy %r", type(message).__name__, msg.subject,
                             message.strategy)
            if msg.reply and isinstance(message, StrategyCommand):
                await self.svc.bus.respond(msg, CommandResult(
                    strategy=named or "", command=message.command, ok=False, ts_init=time.time_ns(),
                    message=f"refused: sent on {msg.subject} but names strategy {message.strategy!r}"))
            return
        if isinstance(message, ParamsUpdate):
            await self.on_params(message)
            return
        if not isinstance(message, StrategyCommand):
            return
        strategy = self.runner.strategy(message.strategy) if message.strategy in self.specs else None
        if isinstance(strategy, MLThonStrategy):
            params = list(message.params) or [f"{k}={v}" for k, v in message.args.items()]
            ok = strategy.command(message.command, params)
            text = "done" if ok else f"{message.strategy} has no hook for {message.command!r}"
        else:
            ok, text = False, f"{message.strategy} takes no commands (only MLThon strategies have command hooks)"
        await self.flush()
        if msg is not None and msg.reply:
            await self.svc.bus.respond(msg, CommandResult(strategy=message.strategy, command=message.command, ok=ok,
                                                          message=text, ts_init=time.time_ns()))

    async def start(self) -> None:
        """Load stored params, start the strategies, then give them the positions their past
        fills in the ORDERS stream add up to (a restarted runner carries on where it stopped)."""
        await self._load_stored_params()
        self._unlist_metrics = metrics.STRATEGIES.add(self.runner.summary)
        self.runner.start()
        await self._restore_positions()
        await self.flush()

    async def _restore_positions(self) -> None:
        bus = self.svc.bus
        for name, spec in self.specs.items():
            subject = order_event_subject(spec.venue, name)
            try:
                info = await bus.stream_info(ORDERS_STREAM, subjects_filter=subject)
            except Exception as exc:                      # no ORDERS stream: nothing to restore
                self.log.info("%s: no past fills restored (%s)", name, exc)
                return
            remaining = (info.state.subjects or {}).get(subject, 0)
            fills = []
            if remaining:
                sub = await bus.read_stream(ORDERS_STREAM, subject)
                try:
                    for _ in range(remaining):
                        m = await sub.next_msg(timeout=5.0)
                        event = bus.decode(m.subject, m.data, OrderEvent)
                        if isinstance(event, Fill):
                            fills.append(event)
                finally:
                    await sub.unsubscribe()
            strategy = self.runner.strategy(name)
            books: dict[str, StrategyContext] = {}
            for f in fills:
                ctx = books.setdefault(f.symbol, StrategyContext())
                ctx._apply_fill(fill_position_change(f), f.price, fill_quote_fee(f))
                if f.trade_id:
                    self.runner._by_strategy[id(strategy)].external_trades.add(f.trade_id)
            for symbol, ctx in books.items():
                sym = self.symbols.get((spec.venue, symbol))
                if sym is not None and ctx.position != 0.0:
                    self.runner.set_initial_position(strategy, sym, ctx.position, ctx.avg_price)
                    self.log.info("%s: restored %s position %g @ %g from %d past fills",
                                  name, symbol, ctx.position, ctx.avg_price, len(fills))

    async def _load_stored_params(self) -> None:
        if not self.specs:
            return
        try:
            kv = await self.svc.bus.key_value(KV_STRATEGY_PARAMS)
        except Exception:
            return                                        # no bucket: nothing stored
        for name in self.specs:
            try:
                entry = await kv.get(params_key(name))
            except Exception:
                continue
            update = self.svc.bus.decode(f"kv.{KV_STRATEGY_PARAMS}.{name}", entry.value, ParamsUpdate)
            if update is not None:
                self._stored_params[name] = (entry.revision, dict(update.params))
                self.runner.update_params(name, update.params)

    async def watch_params(self) -> None:
        """Deliver each change of a hosted strategy's entry in the strategy_params KV bucket
        (the keys whose values changed) until cancelled."""
        try:
            kv = await self.svc.bus.key_value(KV_STRATEGY_PARAMS)
            watcher = await kv.watchall()
        except Exception as exc:
            self.log.warning("strategy params: no KV watch (%s); updates come from ctl.<strategy>.params only", exc)
            self._kv_params = False
            return
        try:
            async for entry in watcher:
                if entry is None or entry.value is None:
                    continue
                name = next((n for n in self.specs if params_key(n) == entry.key), None)
                if name is None or entry.revision <= self._stored_params.get(name, (0, {}))[0]:
                    continue
                update = self.svc.bus.decode(f"kv.{KV_STRATEGY_PARAMS}.{name}", entry.value, ParamsUpdate)
                if update is None:
                    continue
                before = self._stored_params.get(name, (0, {}))[1]
                self._stored_params[name] = (entry.revision, dict(update.params))
                changed = {k: v for k, v in update.params.items() if before.get(k, _MISSING) != v}
                if changed:
                    self.runner.update_params(name, changed)
                    await self.flush()
        finally:
            await watcher.stop()

    async def stop(self) -> None:
        """on_stop for every strategy, send what it still asked for, log the summary."""
        self._unlist_metrics()
        self.runner.stop()
        await self.flush()
        for line in self.summary_lines():
            self.log.info("summary: %s", line)

    # -- market data in ------------------------------------------------------------------------

    async def on_market_data(self, event, _msg=None) -> None:
        sym = self.symbols.get((event.venue, getattr(event, "symbol", None)))
        if sym is None:
            self.svc.counters["md_ignored"] += 1
            return
        self.svc.counters["md_events"] += 1
        runner = self.runner
        match event:
            case Trade():
                runner.on_trade(sym, event.price, event.qty, event.side is Side.BUY, event.ts_event or event.ts_recv)
            case TradeBatch():
                cols = event.columns()
                for i in range(len(event)):
                    ts = cols.ts_event[i] or cols.ts_recv[i]
                    runner.on_trade(sym, cols.prices[i], cols.qtys[i], cols.sides[i] == 0, ts)
            case BookSnapshot():
                runner.on_book_snapshot(sym, [p for p, _ in event.bids], [q for _, q in event.bids],
                                        [p for p, _ in event.asks], [q for _, q in event.asks],
                                        event.ts_event or event.ts_recv)
            case BookDelta():
                bids = [(c.price, c.qty) for c in event.changes if c.side is BookSide.BID]
                asks = [(c.price, c.qty) for c in event.changes if c.side is BookSide.ASK]
                runner.on_book_delta(sym, bids, asks, event.ts_event or event.ts_recv)
            case BBO():
                runner.on_book_snapshot(sym, event.bid_price, event.bid_qty, event.ask_price, event.ask_qty,
                                        event.ts_event or event.ts_recv)
            case Bar():
                if event.closed:
                    runner.on_bar(sym, event.ts_open, event.open, event.high, event.low, event.close, event.volume)
            case FeedStatus():
                if event.state is FeedState.DISCONNECTED:
                    runner.on_book_snapshot(sym, [], [], [], [], event.ts_init)
            case _:
                pass
        if isinstance(event, (FeedStatus, FundingRate, Instrument)):
            for host in self.mlthon.get(event.venue, ()):
                on_live_event(host, event)
        await self.flush()

    # -- orders out ----------------------------------------------------------------------------

    def client_order_id(self, strategy: str, order_id: int) -> str:
        return f"{strategy[:40]}-{self.session}-{order_id}"

    def _on_signal(self, sig: Signal) -> None:
        """Runner callback (synchronous): turn the signal into a request, sent by flush()."""
        strategy = sig.strategy.name
        venue = self.specs[strategy].venue
        now = time.time_ns()
        kind = sig.order_type
        if kind == "cancel":
            req = orders.cancel_order(client_order_id=self._order_client[sig.order_id], strategy=strategy, venue=venue,
                                      symbol=self.runner.orders[sig.order_id].symbol.name, ts_init=now)
        elif kind == "cancel_all":
            req = orders.cancel_all(sig, strategy=strategy, venue=venue, ts_init=now)
        elif kind == "modify":
            req = orders.modify_order(sig, client_order_id=self._order_client[sig.order_id], strategy=strategy,
                                      venue=venue, symbol=self.runner.orders[sig.order_id].symbol.name, ts_init=now)
        else:
            coid = self.client_order_id(strategy, sig.order_id)
            sig.client_order_id = coid
            req = orders.new_order(sig, client_order_id=coid, strategy=strategy, venue=venue, ts_init=now)
            self._client_ids[coid] = (strategy, sig.order_id)
            self._order_client[sig.order_id] = coid
            self.svc.counters["orders"] += 1
            if len(self._order_client) > len(self.runner.orders) + 1000:
                self._forget_closed()
        self._outbox.append(req)

    def _forget_closed(self) -> None:
        """Drop the client ids of orders the runner no longer remembers (closed long ago)."""
        known = self.runner.orders
        for order_id in [o for o in self._order_client if o not in known]:
            self._client_ids.pop(self._order_client.pop(order_id), None)

    async def flush(self) -> None:
        """Send the requests and status events the last callbacks produced, in order."""
        while self._outbox:
            req = self._outbox.pop(0)
            await self._send(req)
        while self._events:
            await self.svc.bus.publish(EVENT_SUBJECT, self._events.pop(0))

    async def _send(self, req) -> None:
        """Store ``req`` in ORDERS, retrying until JetStream acks it: a NATS cluster electing the
        stream's leader answers "no responders" or not at all for a few seconds, and a request sent
        on core NATS meanwhile is lost. The retries carry the same ``Nats-Msg-Id``, so a request
        whose ack was lost is stored once. Only without an ORDERS stream do requests go out on
        core NATS (not persisted)."""
        subject = order_request_subject(req.venue, req.strategy)
        data = encode(req)
        self.svc.counters["order_requests"] += 1
        self.log.info("%s sent", req.__struct_config__.tag, extra=order_fields(req, subject))
        headers = {"Nats-Msg-Id": req.client_order_id} if isinstance(req, NewOrder) else None
        backoff = Backoff(ORDER_STORE_BACKOFF)
        while self._stream_ok and not self.svc.stopping.is_set():
            try:
                await self.svc.bus.js_publish(subject, data, headers=headers, timeout=2.0)
                return
            except NoStreamResponseError:
                if not await self._orders_stream_exists():
                    self._stream_ok = False
                    self.log.warning("no ORDERS stream on %s: order requests go out on core NATS (not persisted)",
                                     subject)
                    break
                error = "no stream leader"
            except Exception as exc:                  # timeout, server error, reconnecting
                error = str(exc) or type(exc).__name__
            if self.svc.counters["order_publish_retries"] % 20 == 0:
                self.log.warning("JetStream publish on %s failed (%s); retrying", subject, error)
            self.svc.counters["order_publish_retries"] += 1
            await asyncio.sleep(backoff.next())
        await self.svc.bus.publish_bytes(subject, data, headers=headers)

    async def _orders_stream_exists(self) -> bool:
        try:
            await self.svc.bus.stream_info(ORDERS_STREAM)
        except NotFoundError:
            return False
        except Exception:  # no answer (no leader yet): it may well exist
            return True
        return True

    # -- order events in -----------------------------------------------------------------------

    async def on_order_event(self, event, _msg=None) -> None:
        if event.strategy not in self.specs:
            self.svc.counters["order_events_ignored"] += 1
            return
        self.svc.counters["order_events"] += 1
        runner = self.runner
        coid = getattr(event, "client_order_id", None)
        order_id = None
        if coid is not None:
            owner = self._client_ids.get(coid)
            if owner is None or owner[0] != event.strategy:
                self.svc.counters["order_events_unknown"] += 1
                if coid.startswith(self.client_order_id(event.strategy, 0)[:-1]):
                    return          # an order of this session, closed and forgotten: nothing left to count
                sym = self.symbols.get((event.venue, getattr(event, "symbol", None)))
                if isinstance(event, Fill) and sym is not None:   # an order of a previous session
                    if runner_external_fill(runner, runner.strategy(event.strategy), sym, event):
                        self.svc.counters["fills"] += 1
                    await self.flush()
                return
            order_id = owner[1]
        match event:
            case OrderAck():
                runner.on_order_acked(order_id, event.exchange_order_id)
            case OrderReject():
                runner.on_order_rejected(order_id, event.reason, str(event.reject_code))
            case Fill():
                if runner_fill(runner, order_id, event):
                    self.svc.counters["fills"] += 1
            case OrderCancelled():
                runner.on_order_cancelled(order_id, event.reason or str(event.cancel_code), event.unsolicited)
            case ModifyAck():
                runner.on_order_modified(order_id, event.price, event.qty)
            case CancelReject() | ModifyReject():
                what = "cancel" if isinstance(event, CancelReject) else "modify"
                runner.on_request_failed(order_id, f"{what} of order {order_id} refused ({event.reject_code}): "
                                         f"{event.reason}", str(event.reject_code))
            case CancelAllReject():
                strategy = runner.strategy(event.strategy)
                runner.strategy_error(strategy, None, OrderError(
                    f"cancel_all refused ({event.reject_code}): {event.reason}", str(event.reject_code)))
            case UnsupportedOp():
                strategy = runner.strategy(event.strategy)
                if order_id is not None:
                    runner.on_order_rejected(order_id, event.reason or f"{event.op} unsupported", "unsupported")
                else:
                    runner.strategy_error(strategy, None, OrderError(
                        f"{event.op} is not supported by {event.venue}: {event.reason}", "unsupported"))
            case OrderStatus():
                record = runner.orders.get(order_id) if order_id is not None else None
                if record is not None and record.is_open:
                    if event.status in ("cancelled", "expired", "rejected"):
                        runner.on_order_cancelled(order_id, f"status {event.status}", True)
                    elif event.status == "filled":   # the fills before it may add up to less than asked
                        runner.on_order_filled(order_id)
            case CancelAck() | CancelAllAck():
                pass
        await self.flush()

    async def on_params(self, update: ParamsUpdate, _msg=None) -> None:
        """ctl.<strategy>.params: merged into the strategy's KV entry, whose watch delivers it
        (so a restarted runner starts from it); straight to the strategy when there is no KV."""
        if update.strategy not in self.specs:
            return
        if self._kv_params:
            merged = {**self._stored_params.get(update.strategy, (0, {}))[1], **update.params}
            stored = ParamsUpdate(strategy=update.strategy, params=merged, ts_init=time.time_ns())
            try:
                await self.svc.bus.kv_put(KV_STRATEGY_PARAMS, params_key(update.strategy), encode(stored))
                return
            except Exception as exc:
                self.log.warning("strategy params: KV put failed (%s); delivering directly", exc)
        self.runner.update_params(update.strategy, update.params)
        await self.flush()

    # -- timers, errors, status ----------------------------------------------------------------

    async def run_timers(self) -> None:
        """Fire strategy timers on the real clock until cancelled."""
        while True:
            due = self.runner.next_timer_due()
            delay = 0.25 if due is None else min(0.25, max(0.0, (due - time.time_ns()) / 1e9))
            await asyncio.sleep(delay)
            if self.runner.poll_timers():
                await self.flush()

    def _on_strategy_error(self, strategy: Strategy, where: str, exc: BaseException) -> None:
        self.svc.counters["strategy_errors"] += 1
        self.svc.state = ServiceState.DEGRADED
        self.last_error = f"strategy {strategy.name} raised in {where}: {type(exc).__name__}: {exc}"
        self.svc.message = f"{self.status_line()} | last error: {self.last_error}"
        self._events.append(self.svc.status())

    def status_line(self) -> str:
        parts = []
        for item in self.runner.summary():
            pos = " ".join(
                f"{name} pos={s['position']:g} pnl={s['realized_pnl'] + s['unrealized_pnl'] - s['fees']:+.2f}"
                for name, s in item["symbols"].items()
            )
            parts.append(f"{item['strategy']}: orders={item['orders']} fills={item['fills']} "
                         f"open={item['open_orders']} errors={item['errors']} {pos}")
        return "; ".join(parts) if parts else "no strategies configured"

    def summary_lines(self) -> list[str]:
        lines = []
        for item in self.runner.summary():
            for name, s in item["symbols"].items():
                lines.append(
                    f"{item['strategy']} {name}: orders={item['orders']} fills={item['fills']} "
                    f"errors={item['errors']} position={s['position']:g} avg_price={s['avg_price']:g} "
                    f"realized={s['realized_pnl']:+.4f} unrealized={s['unrealized_pnl']:+.4f} fees={s['fees']:.4f}"
                )
        return lines

    async def report_status(self, interval: float) -> None:
        """Log the status line and keep it as the service message, every ``interval`` seconds."""
        last = None
        while True:
            await asyncio.sleep(interval)
            line = self.status_line()
            self.svc.message = f"{line} | last error: {self.last_error}" if self.last_error else line
            if line != last:
                self.log.info("status: %s", line)
                last = line
