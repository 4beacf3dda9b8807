"""Request handlers: NewOrder, CancelOrder, CancelAll and ModifyOrder -> venue calls -> events.

A NewOrder's status is written NEW to KV before the venue is called, so a redelivered or
duplicated request finds it: a known order is never sent twice, and one left NEW (crash or
timeout mid-send) is looked up at the venue by client id first. Before it is sent, an order
passes the execution layer's pre-trade gate (kill switch, then risk limits).
"""
from __future__ import annotations

import asyncio
import time

import ccxt
import msgspec

from tradebus.exchanges import LocalReject, VenueAdapter, is_ambiguous
from tradebus.execution import new_status
from tradebus.proto import (
    CancelAck,
    CancelAll,
    CancelAllAck,
    CancelOrder,
    CancelReject,
    ModifyAck,
    ModifyOrder,
    ModifyReject,
    NewOrder,
    OrderReject,
    OrderState,
    OrderType,
    RejectCode,
    UnsupportedOp,
)

from .reconcile import venue_position_qty
from .state import Tracked

__all__ = ["RequestHandlers"]


class RequestHandlers:
    """Part of OrderRouter: what each order request does at the venue."""

    # ------------------------------------------------------------------ new orders

    async def _reject(self, order: NewOrder, code: RejectCode, reason: str, rec: Tracked | None = None) -> None:
        if rec is None:
            rec = self.store.track(Tracked(status=new_status(order, OrderState.REJECTED),
                                           adapter=self.adapter_for(order.symbol) or self.adapters[0]))
        else:
            rec.status = msgspec.structs.replace(rec.status, status=OrderState.REJECTED, leaves_qty=0.0)
        self.counters["rejects"] += 1
        await self._emit(OrderReject(venue=self.venue, strategy=order.strategy, symbol=order.symbol,
                                     client_order_id=order.client_order_id, reject_code=code, reason=reason[:500],
                                     ts_init=time.time_ns()), self._mid(order.client_order_id, "done"))
        await self.store.save(rec)

    async def _unsupported(self, order: NewOrder, adapter: VenueAdapter, reason: str = "") -> None:
        rec = self.orders.get(order.client_order_id)
        if rec is None:
            rec = self.store.track(Tracked(status=new_status(order, OrderState.REJECTED), adapter=adapter))
        rec.status = msgspec.structs.replace(rec.status, status=OrderState.REJECTED, leaves_qty=0.0)
        self.counters["unsupported"] += 1
        await self._emit(UnsupportedOp(venue=self.venue, strategy=order.strategy, op=order.order_type.value,
                                       reason=reason or f"{adapter.config.key} does not support {order.order_type.value}",
                                       symbol=order.symbol, client_order_id=order.client_order_id,
                                       ts_init=time.time_ns()),
                         self._mid(order.client_order_id, "done"))
        await self.store.save(rec)

    async def new_order(self, order: NewOrder) -> None:
        coid = order.client_order_id
        rec = self.orders.get(coid)
        owner = rec.status.strategy if rec is not None else self.store.forgotten_strategy(coid)
        if owner is not None and owner != order.strategy:
            self.counters["foreign_client_order_ids"] += 1   # another strategy's id: never sent
            return
        if (rec is not None and rec.status.status is not OrderState.NEW) or (rec is None and owner is not None):
            # a duplicate of a request already handled: KV leaves NEW only after the outcome event
            # was stored, so that event is already in the ORDERS stream (a forgotten order was terminal)
            self.counters["duplicates"] += 1
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
            if await self._stale(order, rec):  # never reached the venue and too old to send now
                return
        else:
            if await self._stale(order):
                return
            if not adapter.supports(order.order_type) and not self.risk.killed(order.strategy):
                await self._unsupported(order, adapter)
                return
            refusal = await self._pre_trade(order, adapter)
            if refusal is not None:
                await self._reject(order, refusal.code, refusal.reason)
                return
            rec = self.store.track(Tracked(status=new_status(order), adapter=adapter, trigger_price=order.trigger_price))
            await self.store.save(rec)  # write-ahead: a redelivery now finds the order
        close_qty = None
        if order.order_type is OrderType.CLOSE_POSITION and not order.qty:
            if adapter.config.market_type == "spot":  # no venue position: what this strategy holds, net of fees
                close_qty = abs(self.fills.position(order.strategy, order.symbol))
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
                if adapter.is_ambiguous(exc):
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

    async def _stale(self, order: NewOrder, rec: Tracked | None = None) -> bool:
        """Reject a NewOrder created longer than ``stale_after_s`` ago; True when it was."""
        age = (time.time_ns() - order.ts_init) / 1e9
        if not (self.options.stale_after_s and order.ts_init > 0 and age > self.options.stale_after_s):
            return False
        self.counters["stale_rejects"] += 1
        await self._reject(order, RejectCode.INVALID_ORDER,
                           f"stale request: created {age:.0f}s ago (limit {self.options.stale_after_s:g}s)", rec)
        return True

    async def _pre_trade(self, order: NewOrder, adapter: VenueAdapter):
        """The execution layer's gate, given what it needs: the last price (only when a limit
        uses it), the strategy's position net of fees and its open orders."""
        risk = self.risk
        last = None
        if not risk.killed(order.strategy) and risk.needs_price(order.strategy, self.venue):
            last = await self._last_price(adapter, order.symbol)
        counting = risk.counts_open_orders(order.strategy, self.venue)
        return risk.pre_trade(order, last_price=last, position=self.fills.position(order.strategy, order.symbol),
                              open_orders=len(self.open_orders(order.strategy)) if counting else 0)

    async def _lookup(self, adapter: VenueAdapter, order: NewOrder) -> dict | None:
        """Find our order at the venue by client id after an ambiguous failure (retrying the lookup)."""
        backoff = self._backoff()
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
                return venue_position_qty(p)
        return 0.0

    # ------------------------------------------------------------------ cancel / modify

    async def _refuse(self, event_type, req: CancelOrder | ModifyOrder, code: RejectCode, reason: str,
                      mid: str) -> None:
        """A CancelReject / ModifyReject of ``req``."""
        await self._emit(event_type(venue=self.venue, strategy=req.strategy, symbol=req.symbol,
                                    client_order_id=req.client_order_id, reject_code=code, reason=reason[:500],
                                    ts_init=time.time_ns()), mid)

    async def cancel_order(self, req: CancelOrder) -> None:
        rec = self.orders.get(req.client_order_id)
        mid = self._mid(req.client_order_id, f"cancel.{req.ts_init}")

        async def refuse(code: RejectCode, reason: str) -> None:
            await self._refuse(CancelReject, req, code, reason, mid)

        if rec is None or rec.status.strategy != req.strategy:  # another strategy's order is not its to cancel
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
                                   ts_init=time.time_ns()), mid)
        await self._apply_result(rec, result)

    async def _apply_result(self, rec: Tracked, result) -> None:
        """A cancel's answer: the order view it carries, else the order fetched."""
        if isinstance(result, dict) and result.get("status"):
            await self.observe(result, rec.adapter)
        else:
            await self._refresh(rec)

    async def cancel_all(self, req: CancelAll) -> None:
        count = await self._cancel_many(self.open_orders(req.strategy, req.symbol))
        await self._emit(CancelAllAck(venue=self.venue, strategy=req.strategy, symbol=req.symbol, count=count,
                                      ts_init=time.time_ns()), f"{self.venue}.cancel_all.{req.strategy}.{req.ts_init}")

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
                await self._apply_result(rec, result)
            except Exception:
                rec.cancel_requested = False
                await self._refresh(rec)
        return count

    async def modify_order(self, req: ModifyOrder) -> None:
        rec = self.orders.get(req.client_order_id)
        mid = self._mid(req.client_order_id, f"modify.{req.ts_init}")

        async def refuse(code: RejectCode, reason: str) -> None:
            await self._refuse(ModifyReject, req, code, reason, mid)

        if rec is None or not rec.open or rec.status.strategy != req.strategy:
            await refuse(RejectCode.ORDER_NOT_FOUND, f"no open order {req.client_order_id}")
            return
        adapter = rec.adapter
        if not adapter.capabilities.modify or rec.status.order_type is not OrderType.LIMIT:
            await self._emit(UnsupportedOp(venue=self.venue, strategy=req.strategy, op="modify",
                                           reason=f"{adapter.config.key} cannot modify {rec.status.order_type.value} orders",
                                           symbol=req.symbol, client_order_id=req.client_order_id,
                                           ts_init=time.time_ns()), mid)
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
            await self.store.save(rec)
        await self._emit(ModifyAck(venue=self.venue, strategy=req.strategy, symbol=req.symbol,
                                   client_order_id=req.client_order_id, exchange_order_id=rec.status.exchange_order_id,
                                   price=rec.status.price, qty=rec.status.qty, ts_init=time.time_ns()), mid)
        await self.observe(result, adapter)
