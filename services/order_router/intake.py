"""Request intake: ``ord.req.<venue>.<strategy>`` from the ORDERS stream (durable pull consumer)
to the request handlers, and the acks back to JetStream.

The strategy token of the subject is the sender's identity (NATS permissions pin each strategy's
user to its own token): a request whose ``strategy`` field names another strategy, or whose venue
is not this router's, is refused with a reject event on the sender's own subject and never reaches
the venue.

A request is acked only after its handler stored the outcome event in ORDERS; a handler that
fails (outcome unknown, e.g. NATS down) naks it for redelivery. Requests about one client order
id run in arrival order, a CancelAll after everything before it; a redelivery that arrives while
the first copy of a NewOrder is still being handled waits on that copy's outcome. While the
venue is not ready, requests in hand are kept from redelivery with ``in_progress``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from nats.js import api

from tradebus import metrics
from tradebus.proto import (
    CancelAll,
    CancelAllReject,
    CancelOrder,
    CancelReject,
    ModifyOrder,
    ModifyReject,
    NewOrder,
    OrderReject,
    OrderRequest,
    RejectCode,
)
from tradebus.proto.subjects import ORDERS_STREAM, order_request_strategy, order_request_wildcard, router_consumer

__all__ = ["Intake"]

log = logging.getLogger("tradebus.order_router")


@dataclass
class _Work:
    """Messages waiting on one outcome: the first request plus any redeliveries of it."""

    msgs: list = field(default_factory=list)


class Intake:
    """Part of OrderRouter: the consumer of its venue's order requests."""

    async def _open_intake(self) -> None:
        await self.bus.declare_consumer(ORDERS_STREAM, api.ConsumerConfig(
            durable_name=router_consumer(self.venue),
            filter_subject=order_request_wildcard(self.venue),
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=self.options.ack_wait,
            max_deliver=self.options.max_deliver,
            max_ack_pending=self.options.max_ack_pending,
        ))
        self._sub = await self.bus.pull_subscribe(ORDERS_STREAM, router_consumer(self.venue))

    @staticmethod
    async def _nak_all(msgs: list) -> None:
        """At stop: requests still in hand go back to JetStream at once, for a successor."""
        for msg in msgs:
            try:
                await msg.nak()
            except Exception:
                pass

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
        mismatch = self._identity_mismatch(msg.subject, request)
        if mismatch is not None:
            self._spawn(self._refuse_identity(msg, request, *mismatch))
            return
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
        started = time.perf_counter()
        task.add_done_callback(lambda t: metrics.observe_handler(
            "ord.req", started, failed=not t.cancelled() and t.exception() is not None))
        self._chains[key] = task
        task.add_done_callback(lambda t, k=key: self._chains.get(k) is t and self._chains.pop(k, None))

    def _identity_mismatch(self, subject: str, request) -> tuple[str, str] | None:
        """(sender, reason) when ``request`` may not be carried out for the strategy that sent it."""
        sender = order_request_strategy(subject)
        if sender is None:
            return "_unknown", f"order request on {subject!r}, not ord.req.<venue>.<strategy>"
        if request.strategy != sender:
            return sender, (f"request names strategy {request.strategy!r} but was sent on {subject!r} "
                            f"by {sender!r}: a strategy may only send its own orders")
        if request.venue != self.venue:
            return sender, f"venue {request.venue!r} is not this router's ({self.venue})"
        return None

    async def _refuse_identity(self, msg, request, sender: str, reason: str) -> None:
        """Reject a request that failed the identity check: the event goes to the sender's own
        subject (nothing about it to the strategy it named), the venue is never called."""
        self.counters["identity_rejects"] += 1
        log.warning("refused %s: %s", type(request).__name__, reason)
        common = {"venue": self.venue, "strategy": sender, "reject_code": RejectCode.AUTH_FAILED,
                  "reason": reason[:500], "ts_init": time.time_ns()}
        match request:
            case NewOrder():
                event = OrderReject(symbol=request.symbol, client_order_id=request.client_order_id, **common)
            case CancelOrder():
                event = CancelReject(symbol=request.symbol, client_order_id=request.client_order_id, **common)
            case ModifyOrder():
                event = ModifyReject(symbol=request.symbol, client_order_id=request.client_order_id, **common)
            case _:
                event = CancelAllReject(symbol=request.symbol, **common)
        try:
            await self._emit(event, f"{self.venue}.identity.{sender}.{request.ts_init}.{type(request).__name__}")
        except Exception:
            self.bus.handler_errors += 1
            log.exception("could not publish the identity reject")
            await msg.nak(delay=self.options.backoff.initial)
            return
        await msg.ack()

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
                await msg.nak(delay=self.options.backoff.initial)
            return
        if isinstance(request, NewOrder):
            self._inflight.pop(request.client_order_id, None)
        for msg in work.msgs:
            self._unacked.pop(id(msg), None)
            await msg.ack()
