"""Venue streams: what the venue reports about orders -> order events, through the fill ledger.

- ``watch_orders`` (and ``watch_my_trades`` where the adapter takes fills from trade records)
  run forever per adapter, each watched again before its updates are applied; after a stream
  error the loop backs off, reconnects and reconciles the gap. Trades woken by the same venue
  message as an order update are applied first.
- ``observe`` applies one venue view of an order (a stream update, a create/cancel response, a
  fetch): ack, fills, end state; ``on_trade`` one execution. Each order's updates are applied one
  at a time (``Tracked.lock``): events are stored in ORDERS, then the status in KV.
- Fills are the execution layer's (``tradebus.execution.FillLedger``): by trade id where the
  venue lists executions, else by the increase of the cumulative quantity. When a view counts
  more than the trades brought, the order is held open (an end state waits for its executions)
  and a catch-up fetches the order's trades after ``trade_grace_s`` (at once after
  reconciliation); if the venue still lists fewer than it counts, the order switches for good to
  the cumulative path and is refreshed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec

from tradebus.exchanges import VenueAdapter
from tradebus.execution import EPS, by_trades
from tradebus.proto import (
    CancelCode,
    Fill,
    GatewayState,
    OrderAck,
    OrderCancelled,
    OrderReject,
    OrderState,
    OrderStatus,
    OrderType,
    RejectCode,
    Side,
)
from tradebus.proto.orders import is_client_order_id
from tradebus.proto.subjects import EXTERNAL_STRATEGY

from .state import OPEN, Tracked

__all__ = ["VenueStreams"]

log = logging.getLogger("tradebus.order_router")


class VenueStreams:
    """Part of OrderRouter: venue order views and executions -> events, KV and positions."""

    # ------------------------------------------------------------------ the watch loop

    def _watch(self, adapter: VenueAdapter, kind: str) -> asyncio.Future:
        if kind == "trades":
            return asyncio.ensure_future(adapter.exchange.watch_my_trades(None, None, None, adapter.watch_params()))
        return asyncio.ensure_future(adapter.exchange.watch_orders(None, None, None, adapter.watch_params()))

    async def _watch_loop(self, adapter: VenueAdapter) -> None:
        """watch_orders (and watch_my_trades where fills come from trades) forever; after a stream
        error: back off, reconnect, reconcile the gap. Trades woken by the same venue message as an
        order update are applied first, so an end state rarely waits for its executions."""
        backoff = self._backoff()
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
                    # watch again before applying: ccxt.pro resolves only a pending watch, so what the
                    # venue sends while these are published would otherwise wait for its next message
                    pending[kind] = self._watch(adapter, kind)
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

    # ------------------------------------------------------------------ order views

    def _ack_event(self, rec: Tracked) -> OrderAck:
        st = rec.status
        return OrderAck(venue=self.venue, strategy=st.strategy, symbol=st.symbol, client_order_id=st.client_order_id,
                        exchange_order_id=st.exchange_order_id or "", side=st.side, order_type=st.order_type,
                        qty=st.qty, price=st.price, trigger_price=rec.trigger_price, ts_init=time.time_ns())

    async def observe(self, order: dict, adapter: VenueAdapter, reconciled: bool = False) -> Tracked | None:
        """Apply one venue view of an order: ack, fills, end state. Idempotent.

        Fills come from the trades the view carries when the adapter takes fills from trades
        (the view's cumulative quantity only checks them), else from the cumulative quantity."""
        exchange_id = str(order.get("id")) if order.get("id") is not None else None
        coid = adapter.client_order_id(order)
        rec = self.store.find(coid, exchange_id)
        events: list[tuple[Any, str]] = []
        if rec is None and self.store.is_forgotten(coid, exchange_id):  # a late view of a finished order
            self.counters["late_views"] += 1
            return None
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
            self.store.alias(rec, exchange_id)
        for other in adapter.related_order_ids(order):
            self.store.alias(rec, other)
        state = adapter.state(order)
        if not rec.ack_published and st.strategy != EXTERNAL_STRATEGY:
            rec.ack_published = True
            rec.status = st
            events.append((self._ack_event(rec), self._mid(coid, "done")))
        rec.ack_published = True
        filled = float(order.get("filled") or 0.0)
        if self._by_trades(rec):
            for trade in adapter.order_trades(order):
                st = self._apply_trade(st, trade, events)
            rec.venue_filled = max(rec.venue_filled, filled)
            if filled > st.filled_qty + EPS:  # counted at the venue, no trade record yet
                self._catch_up(rec, immediate=reconciled)
                if state not in OPEN:
                    rec.held, rec.held_reason = state, str(order.get("status") or "")
                    state = OrderState.ACKED
        else:
            st, fill = self.fills.cumulative(st, order)
            if fill is not None:
                events.append((fill, self._mid(coid, f"fill.cum-{fill.cum_qty:.12g}")))
                self._filled(fill)
        st = self._transition(rec, st, state, str(order.get("status") or ""), events)
        changed = st != rec.status or events
        rec.status = msgspec.structs.replace(st, ts_init=time.time_ns()) if changed else st
        if reconciled:
            events.append((rec.status, self._mid(coid, f"status.{time.time_ns()}")))
        for event, mid in events:  # events first: a KV state past NEW proves they were stored
            await self._emit(event, mid)
        if changed:
            await self.store.save(rec)

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
                                          reason=reason, cum_qty=st.filled_qty, ts_init=time.time_ns()),
                           self._mid(coid, "end")))
        elif state is OrderState.REJECTED:
            events.append((OrderReject(venue=self.venue, strategy=st.strategy, symbol=st.symbol,
                                       client_order_id=coid, reject_code=RejectCode.UNKNOWN,
                                       reason="rejected by the venue", ts_init=time.time_ns()), self._mid(coid, "end")))
        return st

    def _adopt(self, order: dict, adapter: VenueAdapter, coid: str | None, exchange_id: str | None) -> Tracked | None:
        """An order the router never placed (manual trade, other tool): track it as external."""
        if exchange_id is None:
            return None
        if not coid or not is_client_order_id(coid):
            coid = f"ext-{exchange_id}"
        qty = float(order.get("amount") or 0.0)
        status = OrderStatus(venue=self.venue, strategy=EXTERNAL_STRATEGY, symbol=order.get("symbol") or "",
                             client_order_id=coid, exchange_order_id=exchange_id, side=Side(order.get("side") or "buy"),
                             order_type=_order_type(order), status=OrderState.ACKED, qty=qty, price=order.get("price"),
                             leaves_qty=qty, ts_init=time.time_ns())
        rec = self.store.track(Tracked(status=status, adapter=adapter, ack_published=True))
        self.store.alias(rec, exchange_id)
        self.counters["adopted"] += 1
        return rec

    # ------------------------------------------------------------------ executions -> fills

    def _by_trades(self, rec: Tracked) -> bool:
        """True when this order's fills come from venue trade records (see the module docstring)."""
        return by_trades(rec.status, rec.adapter.fills_from_trades())

    def _filled(self, fill: Fill) -> None:
        self.last_price[fill.symbol] = (fill.price, time.monotonic())
        self.counters["fills"] += 1

    def _apply_trade(self, st: OrderStatus, trade: dict, events: list) -> OrderStatus:
        """One venue execution -> a Fill in ``events``, unless its trade id is already counted."""
        st, fill = self.fills.trade(st, trade)
        if fill is not None:
            events.append((fill, self._mid(st.client_order_id, f"fill.{fill.trade_id}")))
            self._filled(fill)
        return st

    async def on_trade(self, trade: dict, adapter: VenueAdapter) -> Tracked | None:
        """One execution from watch_my_trades (a ccxt trade structure)."""
        oid = str(trade["order"]) if trade.get("order") is not None else ""
        rec = self.orders.get(self.store.by_exchange_id.get(oid) or adapter.trade_client_order_id(trade) or "")
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
                    self.store.alias(rec, oid)
                    if not st.exchange_order_id:
                        st = msgspec.structs.replace(st, exchange_order_id=oid)
            events: list[tuple[Any, str]] = []
            if not rec.ack_published and st.strategy != EXTERNAL_STRATEGY:  # it traded: the venue has it
                rec.status = st
                events.append((self._ack_event(rec), self._mid(coid, "done")))
            rec.ack_published = True
            for trade in trades:
                st = self._apply_trade(st, trade, events)
            if st.status is OrderState.NEW:
                st = msgspec.structs.replace(st, status=OrderState.ACKED)
            st = self._transition(rec, st, OrderState.ACKED, "", events)
            if st.qty > 0 and st.filled_qty >= st.qty - EPS:  # every unit executed: filled, whatever view comes next
                st = self._transition(rec, st, OrderState.FILLED, "closed", events)
            elif rec.held is not None and rec.venue_filled <= st.filled_qty + EPS:
                st = self._transition(rec, st, rec.held, rec.held_reason, events)
            if st == rec.status and not events:
                return
            rec.status = msgspec.structs.replace(st, ts_init=time.time_ns())
            for event, mid in events:
                await self._emit(event, mid)
            await self.store.save(rec)

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
        backoff = self._backoff()
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
                    rec.status = self.fills.to_cumulative(rec.status)
                    await self.store.save(rec)
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


def _order_type(order: dict) -> OrderType:
    kind = str(order.get("type") or "limit").lower()
    if order.get("triggerPrice") or order.get("stopPrice"):
        return OrderType.STOP_LIMIT if "limit" in kind or kind == "stop" else OrderType.STOP_MARKET
    return OrderType.MARKET if kind == "market" else OrderType.LIMIT
