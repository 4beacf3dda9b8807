"""Orders out and venue reports back for the in-process broker, on the execution layer.

A strategy Signal becomes a request through ``tradebus.execution.orders``, passes the same
pre-trade risk checks and kill switch as the order router (``RiskEngine.pre_trade``), and goes
out through its ``_place_*`` hook (FLOX's routing table, :mod:`tradebus.live.routing`). Venue
views of our orders come back through ``FillLedger.view``: exactly-once fills, fees valued in
the quote currency, spot positions net of fees charged in the base asset.
"""
from __future__ import annotations

import asyncio
import logging
import os

import ccxt
import msgspec

from tradebus.engine.event import OrderError
from tradebus.exchanges import LocalReject, VenueAdapter, reject_code
from tradebus.execution import FillLedger, RiskEngine, fill_position_change, fill_quote_fee, new_status, orders
from tradebus.proto import Liquidity, NewOrder, OrderStatus, OrderType, RejectCode

__all__ = ["OrderFlow", "UnsupportedOrderType", "HOOKS"]

log = logging.getLogger("tradebus.live")

HOOKS = {
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
"""Signal order type -> the broker method that places it (override one to refine a venue)."""


class UnsupportedOrderType(OrderError):
    """The broker (or the venue) has no routing row for this order type; nothing was sent."""

    def __init__(self, message, order_id=None, symbol=None):
        super().__init__(message, "unsupported", order_id, symbol)


class OrderFlow:
    """The order half of CcxtBroker (which provides exchange, runner, adapters, dry_run, ...)."""

    def _init_orders(self, exchange_id: str, client_id_prefix: str, risk: RiskEngine | None) -> None:
        self.risk = risk if risk is not None else RiskEngine()
        self.ledger = FillLedger(exchange_id)
        self._prefix = client_id_prefix
        self._pending: set[asyncio.Task] = set()
        self._by_client: dict[str, int] = {}  # client order id -> runner order id
        self._by_exchange_id: dict[str, int] = {}  # venue order id -> runner order id
        self._status: dict[int, OrderStatus] = {}  # runner order id -> what the venue reported
        self._closed: set[int] = set()
        self.dry_run_log: list[tuple[str, dict]] = []

    # --- kill switch ------------------------------------------------------------------------

    async def kill(self, strategy: str | None = None) -> int:
        """Engage the kill switch for ``strategy`` (its name; None: every strategy): new orders are
        refused with ``kill_switch`` until ``release``, and its open orders are cancelled.
        Returns how many cancels were sent."""
        self.risk.kill(strategy)
        records = [r for r in self.runner.open_orders() if strategy is None or r.strategy.name == strategy]
        sent = 0
        for record in records:
            if await self._cancel_record(record):
                sent += 1
        log.warning("CcxtBroker on %s: kill switch on for %s; %d orders cancelled", self.exchange_id,
                    strategy or "all strategies", sent)
        return sent

    def release(self, strategy: str | None = None) -> None:
        """Release the kill switch of ``strategy`` (None: every switch)."""
        self.risk.release(strategy)

    # --- signals in -------------------------------------------------------------------------

    def _handle_signal(self, sig) -> None:
        """The runner's signal callback: an order type outside the table reaches on_error and sends nothing."""
        kind = sig.order_type
        if kind not in HOOKS and kind not in orders.REQUEST_KINDS:
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
        return orders.new_order(sig, client_order_id=self.client_order_id(sig.order_id), strategy=sig.strategy.name,
                                venue=self.exchange_id, ts_init=int(sig.ts_ns))

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
                await self._send(sig)
        except LocalReject as exc:
            self._refused(sig, exc.code.value, exc.reason)
        except Exception as exc:
            self._refused(sig, reject_code(exc).value, f"{type(exc).__name__}: {exc}")

    async def _send(self, sig) -> None:
        order = self._new_order(sig)
        refusal = self._pre_trade(sig, order)
        if refusal is not None:
            raise LocalReject(refusal.code, refusal.reason)
        self._by_client[order.client_order_id] = sig.order_id
        self._status[sig.order_id] = new_status(order)
        if self.dry_run:
            self.dry_run_log.append((sig.order_type, {"symbol": order.symbol, "side": order.side.value,
                                                      "qty": order.qty, "price": order.price}))
            log.info("[dry run] %s %s %s %s", sig.order_type, order.side.value, order.qty, order.symbol)
            return
        result = await getattr(self, HOOKS[sig.order_type])(order.symbol, order.side.value, sig)
        if isinstance(result, dict):
            if not VenueAdapter.client_order_id(result):
                result = {**result, "clientOrderId": order.client_order_id}
            self._apply(result)

    def _pre_trade(self, sig, order: NewOrder):
        ctx = self.runner.context(sig.strategy, sig.symbol)
        open_orders = 0
        if self.risk.counts_open_orders(order.strategy, self.exchange_id):
            open_orders = sum(1 for r in self.runner.open_orders(sig.strategy) if r.order_id != sig.order_id)
        return self.risk.pre_trade(order, last_price=ctx.last_price or None, position=ctx.position,
                                   open_orders=open_orders)

    def _refused(self, sig, code: str, reason: str) -> None:
        if sig.order_type in HOOKS:
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

    # --- the routing table (override per exchange) ------------------------------------------

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

    # --- cancel, cancel-all, modify ---------------------------------------------------------

    async def _cancel_record(self, record) -> bool:
        """Cancel one tracked order at the venue (False in dry run or when the venue no longer has it)."""
        if self.dry_run:
            self.dry_run_log.append(("cancel", {"order_id": record.order_id}))
            return False
        coid = self.client_order_id(record.order_id)
        try:
            result = await self.adapter_for(record.symbol.name).cancel(
                record.symbol.name, self._exchange_id(record.order_id), coid, OrderType(record.order_type))
        except ccxt.OrderNotFound:
            return False
        if isinstance(result, dict):
            self._apply({**result, "clientOrderId": coid})
        return True

    async def _cancel(self, sig) -> None:
        record = self.runner.orders[sig.order_id]
        if not await self._cancel_record(record) and not self.dry_run:
            raise LocalReject(RejectCode.ORDER_NOT_FOUND, f"order {sig.order_id} is not open at {self.exchange_id}")

    async def _cancel_all(self, sig) -> None:
        for record in self.runner.open_orders(sig.strategy):  # one cancel per tracked order (FLOX)
            if sig.symbol is None or record.symbol is sig.symbol:
                await self._cancel_record(record)

    async def _modify(self, sig) -> None:
        record = self.runner.orders[sig.order_id]
        if self.dry_run:
            self.dry_run_log.append(("modify", {"order_id": sig.order_id}))
            return
        request = orders.modify_order(sig, client_order_id=self.client_order_id(sig.order_id),
                                      strategy=sig.strategy.name, venue=self.exchange_id,
                                      symbol=record.symbol.name, ts_init=int(sig.ts_ns))
        exchange_id = self._exchange_id(sig.order_id)
        if exchange_id is None:
            raise LocalReject(RejectCode.ORDER_NOT_FOUND, f"order {sig.order_id} has no venue id yet: cannot modify it")
        qty = request.new_qty or record.qty
        price = request.new_price or record.price
        await self.adapter_for(request.symbol).modify(request.symbol, exchange_id, record.side, qty, price)
        self.runner.on_order_modified(sig.order_id, price, qty)

    def _exchange_id(self, order_id: int) -> str | None:
        status = self._status.get(order_id)
        return None if status is None else status.exchange_order_id

    # --- venue reports back -----------------------------------------------------------------

    def _apply(self, order: dict) -> None:
        """A venue view of one of our orders (a create or cancel response, a watched order) ->
        runner events: the ack, the fills ``FillLedger.view`` counts (venue trades it carries,
        then any cumulative increase beyond them), and the end of the order."""
        order_id = self._by_client.get(VenueAdapter.client_order_id(order) or "")
        if order_id is None:
            order_id = self._by_exchange_id.get(str(order.get("id")))
        status = self._status.get(order_id) if order_id is not None else None
        if status is None:
            return
        if order.get("id") is not None and status.exchange_order_id is None:
            status = msgspec.structs.replace(status, exchange_order_id=str(order["id"]))
            self._by_exchange_id[status.exchange_order_id] = order_id
            self.runner.on_order_acked(order_id, status.exchange_order_id)
        trades = self.adapter_for(status.symbol).order_trades(order)
        status, fills = self.ledger.view(status, order, trades)
        self._status[order_id] = status
        for fill in fills:
            self.runner.on_fill(order_id, fill.price, fill.qty, fill_quote_fee(fill), fill.ts_event or None,
                                fill.liquidity is Liquidity.MAKER, trade_id=fill.trade_id,
                                position_change=fill_position_change(fill))
        state = order.get("status")
        if order_id not in self._closed and state in ("canceled", "expired", "rejected"):
            self._closed.add(order_id)
            if state == "canceled":
                self.runner.on_order_cancelled(order_id, "cancelled")
            elif state == "expired":
                self.runner.on_order_expired(order_id, "expired")
            else:
                self.runner.on_order_rejected(order_id, "rejected by the venue", "unknown")

    async def _cancel_pending(self) -> None:
        tasks = list(self._pending)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
