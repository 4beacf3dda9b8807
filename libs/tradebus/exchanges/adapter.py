"""Venue adapters: one YAML per venue/market type, one ``place_*`` hook per routing-table row.

The routing table (ccxt unified API):

=====================  =======================================================================
MARKET                 create_market_<side>_order(symbol, amount, params)
LIMIT                  create_limit_<side>_order(symbol, amount, price, params)
STOP_MARKET ...        create_order(symbol, <yaml type>, side, amount, price, <yaml params>)
TRAILING_STOP[_PCT]    create_order(..., {trailing offset | callbackRate = bps / 100})
CLOSE_POSITION         create_order(symbol, "market", side, amount, None, {"reduceOnly": True})
CANCEL                 cancel_order(exchange id, symbol)
CANCEL_ALL             cancel_all_orders(symbol), or cancel_order per tracked order
MODIFY                 edit_order(exchange id, symbol, "limit", side, qty, price)
=====================  =======================================================================

A new venue is a YAML file in ``venues/`` plus, only where needed, a subclass overriding a hook
(registered with :func:`register`).

Order entry (``order_entry`` in the YAML, or ``make_adapter(..., order_entry=...)``): ``rest`` sends
the rows above; ``ws`` sends the same rows, with the same parameters, through ccxt.pro's WebSocket
API methods (``create_order_ws``, ``cancel_order_ws``) on venues that have them (Binance's WS-API).
That saves the HTTP request per order; lookups, cancel-all and reconciliation stay on REST. A WS
request the venue never answers raises ``ccxt.RequestTimeout`` after the exchange's ``timeout``,
so it is handled like any ambiguous REST timeout (looked up by client id before any resend).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import ccxt
import msgspec

from tradebus.proto import NewOrder, OrderState, OrderType, RejectCode, Side, TimeInForce

from .errors import LocalReject, is_ambiguous, reject_code
from .ratelimit import RateLimiter, RuleStatus
from .venue_config import VenueConfig, canonical_key, load_config

__all__ = ["VenueAdapter", "register", "make_adapter"]

_CLASSES: dict[str, type[VenueAdapter]] = {}


def register(key: str):
    """Class decorator: use this VenueAdapter subclass for venue ``key`` (either spelling)."""
    def wrap(cls):
        _CLASSES[canonical_key(key)] = cls
        return cls
    return wrap


def make_adapter(key: str, exchange=None, order_entry: str | None = None, **ccxt_config) -> VenueAdapter:
    """The adapter for ``key`` (``binance:spot`` or ``BINANCE___SPOT``) on ``exchange`` (a ready
    ccxt / ccxt.pro instance) or a new ccxt.pro instance built from the YAML plus ``ccxt_config``
    (apiKey, secret, ...); ``order_entry`` (``rest`` / ``ws``) overrides the YAML's."""
    config = load_config(key)
    if order_entry is not None:
        config = msgspec.structs.replace(config, order_entry=order_entry)
    cls = _CLASSES.get(config.key, VenueAdapter)
    return cls(config, exchange if exchange is not None else cls.build_exchange(config, **ccxt_config))


_EMPTY = object()


class VenueAdapter:
    """Routing table and parameter shapes of one venue account's market type."""

    def __init__(self, config: VenueConfig, exchange):
        self.config = config
        self.exchange = exchange
        self.capabilities = config.capabilities
        self.ws_orders = config.order_entry == "ws"
        if self.ws_orders and not (exchange.has.get("createOrderWs") and exchange.has.get("cancelOrderWs")):
            raise ValueError(f"{config.key}: order_entry ws needs a ccxt.pro exchange with createOrderWs and "
                             f"cancelOrderWs; {type(exchange).__module__}.{type(exchange).__name__} has not")
        self._by_symbol: dict[str, bool] = {}
        # the router reconciles every symbol at once, knowingly (the YAML weight covers it)
        exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False

    @staticmethod
    def build_exchange(config: VenueConfig, sandbox: bool | None = None, pro: bool = True, **ccxt_config):
        import ccxt.async_support as ccxt_async
        import ccxt.pro as ccxtpro
        module = ccxtpro if pro else ccxt_async
        cls = getattr(module, config.ccxt_id)
        options = {**config.options, **ccxt_config.pop("options", {})}
        exchange = cls({**ccxt_config, "options": options})
        if config.sandbox if sandbox is None else sandbox:
            exchange.set_sandbox_mode(True)
        return exchange

    # --- rate limits ----------------------------------------------------------------------

    def rate_limiter(self, on_report: Callable[[RuleStatus, float], None] | None = None, **kwargs) -> RateLimiter:
        """A limiter of this venue's rules (``clock``/``sleep`` may be passed for simulation);
        ip-scope budgets are shared with every other limiter of the same venue key."""
        return RateLimiter(self.config.limit_rules(), on_report, share_key=self.config.key, **kwargs)

    def usage_headers(self):
        """The headers of the venue's latest REST response (ccxt keeps them), for the limiter."""
        return getattr(self.exchange, "last_response_headers", None)

    # --- capabilities ---------------------------------------------------------------------

    def supports(self, order_type: OrderType) -> bool:
        return OrderType(order_type) in self.capabilities.order_types

    def handles(self, symbol: str) -> bool:
        """True when ``symbol`` is one of this adapter's market type."""
        known = self._by_symbol.get(symbol)
        if known is not None:
            return known
        market = self.exchange.markets.get(symbol) if self.exchange.markets else None
        if market is None:
            return False
        known = self._by_symbol[symbol] = (market.get("type") == "spot") == (self.config.market_type == "spot")
        return known

    # --- rounding and local checks --------------------------------------------------------

    def amount(self, symbol: str, qty: float) -> float:
        """``qty`` rounded (down) to the lot size; LocalReject below the venue's minimum."""
        ex = self.exchange
        try:
            amount = float(ex.amount_to_precision(symbol, qty))
        except ccxt.InvalidOrder as exc:  # ccxt raises when rounding gives zero
            raise LocalReject(RejectCode.INVALID_ORDER, f"amount {qty} of {symbol} below precision: {exc}") from None
        limits = ex.market(symbol).get("limits") or {}
        min_amount = (limits.get("amount") or {}).get("min")
        if min_amount is not None and amount < float(min_amount) - 1e-12:
            raise LocalReject(RejectCode.INVALID_ORDER,
                              f"amount {amount} of {symbol} below the venue minimum {min_amount}")
        return amount

    def price(self, symbol: str, price: float | None) -> float | None:
        return None if price is None else float(self.exchange.price_to_precision(symbol, price))

    def check_notional(self, symbol: str, amount: float, price: float | None) -> None:
        if price is None:
            return
        limits = self.exchange.market(symbol).get("limits") or {}
        min_cost = (limits.get("cost") or {}).get("min")
        if min_cost is not None and amount * price < float(min_cost) - 1e-9:
            raise LocalReject(RejectCode.INVALID_ORDER,
                              f"notional {amount * price:g} of {symbol} below the venue minimum {min_cost}")

    def client_id_params(self, client_order_id: str) -> dict[str, Any]:
        """How the venue takes our client order id (ccxt's unified ``clientOrderId``)."""
        return {"clientOrderId": client_order_id}

    def base_params(self, order: NewOrder) -> dict[str, Any]:
        params: dict[str, Any] = {**self.config.extra_params, **self.client_id_params(order.client_order_id)}
        if order.time_in_force is not TimeInForce.GTC and order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT,
                                                                               OrderType.TAKE_PROFIT_LIMIT):
            params["timeInForce"] = order.time_in_force.value
        if order.post_only:
            params["postOnly"] = True
        if order.reduce_only and order.order_type is not OrderType.CLOSE_POSITION:
            params["reduceOnly"] = True
        params.update(order.params)
        return params

    def _fill(self, template: dict[str, Any], order: NewOrder, symbol: str) -> dict[str, Any]:
        values = {
            "$trigger": self.price(symbol, order.trigger_price),
            "$activation": self.price(symbol, order.trigger_price),
            "$offset": order.trailing_offset,
            "$callback_rate": None if order.trailing_bps is None else order.trailing_bps / 100.0,
            # a stop triggers when price moves against the order's side, a take-profit when it moves with it
            "$stop_direction": "ascending" if Side(order.side) is Side.BUY else "descending",
            "$tp_direction": "descending" if Side(order.side) is Side.BUY else "ascending",
        }
        out = {}
        for key, value in template.items():
            if isinstance(value, str) and value.startswith("$"):
                value = values.get(value)
                if value is None:
                    continue
            out[key] = value
        return out

    # --- the routing table ----------------------------------------------------------------

    async def place(self, order: NewOrder, close_qty: float | None = None) -> dict:
        """Send ``order`` through its ``place_*`` hook; LocalReject if the venue cannot do it."""
        kind = OrderType(order.order_type)
        if not self.supports(kind):
            raise LocalReject(RejectCode.UNSUPPORTED, f"{self.config.key} does not support {kind.value} orders")
        symbol = order.symbol
        qty = close_qty if kind is OrderType.CLOSE_POSITION and not order.qty else order.qty
        amount = self.amount(symbol, qty)
        price = self.price(symbol, order.price)
        self.check_notional(symbol, amount, price)
        side = Side(order.side).value
        params = self.base_params(order)
        hook = getattr(self, f"place_{kind.value}")
        return await hook(symbol, side, amount, price, order, params)

    async def _row(self, kind: str, symbol, side, amount, price, order, params) -> dict:
        row = self.config.orders.get(kind)
        if row is None:
            raise LocalReject(RejectCode.UNSUPPORTED, f"{self.config.key} has no parameter shape for {kind}")
        params = {**params, **self._fill(row.params, order, symbol)}
        if self.ws_orders:
            return await self._ws(self.exchange.create_order_ws(symbol, row.type, side, amount, price, params))
        return await self.exchange.create_order(symbol, row.type, side, amount, price, params)

    async def place_market(self, symbol, side, amount, price, order, params) -> dict:
        if self.ws_orders:
            return await self._ws(self.exchange.create_order_ws(symbol, "market", side, amount, None, params))
        method = getattr(self.exchange, f"create_market_{side}_order")
        return await method(symbol, amount, params)

    async def place_limit(self, symbol, side, amount, price, order, params) -> dict:
        if self.ws_orders:
            return await self._ws(self.exchange.create_order_ws(symbol, "limit", side, amount, price, params))
        method = getattr(self.exchange, f"create_limit_{side}_order")
        return await method(symbol, amount, price, params)

    async def _ws(self, request):
        """A WS-API call bounded by the exchange's timeout: ccxt.pro waits for the answer forever."""
        try:
            return await asyncio.wait_for(request, self.exchange.timeout / 1000)
        except TimeoutError:
            raise ccxt.RequestTimeout(f"{self.config.key}: no WS-API answer within {self.exchange.timeout} ms") from None

    async def place_stop_market(self, *args) -> dict:
        return await self._row("stop_market", *args)

    async def place_stop_limit(self, *args) -> dict:
        return await self._row("stop_limit", *args)

    async def place_take_profit_market(self, *args) -> dict:
        return await self._row("take_profit_market", *args)

    async def place_take_profit_limit(self, *args) -> dict:
        return await self._row("take_profit_limit", *args)

    async def place_trailing_stop(self, *args) -> dict:
        return await self._row("trailing_stop", *args)

    async def place_trailing_stop_percent(self, *args) -> dict:
        return await self._row("trailing_stop_percent", *args)

    async def place_close_position(self, *args) -> dict:
        return await self._row("close_position", *args)

    # --- cancel, cancel-all, modify, lookups ----------------------------------------------

    def conditional(self, order_type: OrderType) -> bool:
        """True when the venue keeps this order type apart (Binance USD-M algo orders)."""
        return False

    def lookup_params(self, order_type: OrderType | None) -> dict[str, Any]:
        return {}

    async def cancel(self, symbol: str, exchange_order_id: str | None, client_order_id: str,
                     order_type: OrderType | None = None) -> dict:
        params = dict(self.lookup_params(order_type))
        if not exchange_order_id:
            params.update(self.client_id_params(client_order_id))
        if self.ws_orders:
            return await self._ws(self.exchange.cancel_order_ws(exchange_order_id, symbol, params))
        return await self.exchange.cancel_order(exchange_order_id, symbol, params)

    async def cancel_all(self, symbol: str, tracked: list[tuple[str | None, str, OrderType | None]]) -> int:
        """Cancel everything open on ``symbol``: the venue's cancel-all, else one cancel per tracked order."""
        if self.capabilities.cancel_all:
            await self.exchange.cancel_all_orders(symbol)
            if any(self.conditional(t) for _, _, t in tracked if t is not None):
                await self.exchange.cancel_all_orders(symbol, self.lookup_params(OrderType.STOP_MARKET))
            return len(tracked)
        count = 0
        for exchange_id, client_id, order_type in tracked:
            try:
                await self.cancel(symbol, exchange_id, client_id, order_type)
                count += 1
            except ccxt.OrderNotFound:
                pass
        return count

    async def modify(self, symbol: str, exchange_order_id: str, side: Side, qty: float, price: float | None) -> dict:
        if not self.capabilities.modify:
            raise LocalReject(RejectCode.UNSUPPORTED, f"{self.config.key} cannot modify orders")
        return await self.exchange.edit_order(exchange_order_id, symbol, "limit", Side(side).value,
                                              self.amount(symbol, qty), self.price(symbol, price))

    async def fetch_by_client_id(self, symbol: str, client_order_id: str, order_type: OrderType | None = None) -> dict | None:
        """The venue's view of our order, found by client id; None when the venue never got it."""
        params = {**self.lookup_params(order_type), **self.client_id_params(client_order_id)}
        try:
            return await self.exchange.fetch_order(None, symbol, params)
        except ccxt.OrderNotFound:
            return None

    async def fetch_order(self, symbol: str, exchange_order_id: str, order_type: OrderType | None = None) -> dict:
        return await self.exchange.fetch_order(exchange_order_id, symbol, self.lookup_params(order_type))

    async def fetch_open_orders(self) -> list[dict]:
        orders = list(await self.exchange.fetch_open_orders())
        if any(self.conditional(t) for t in self.capabilities.order_types):
            try:
                orders += await self.exchange.fetch_open_orders(None, None, None, self.lookup_params(OrderType.STOP_MARKET))
            except ccxt.NotSupported:
                pass
        return orders

    async def fetch_positions(self) -> list[dict]:
        if not self.capabilities.positions:
            return []
        try:
            return list(await self.exchange.fetch_positions())
        except ccxt.NotSupported:
            return []

    def watch_params(self) -> dict[str, Any]:
        return {}

    def skip_user_events(self) -> None:
        """Drop the user-stream events in ``ignored_user_events`` before ccxt parses them.

        A router reads orders and trades; Binance also pushes a balance event with every order
        (outboundAccountPosition, ACCOUNT_UPDATE), whose parse cost about 8% of the router's CPU
        per order. Balances and positions come from reconciliation instead. Must run before the
        exchange opens a connection (a ccxt client keeps the handler it was created with).
        """
        names = frozenset(self.config.ignored_user_events)
        if not names or getattr(self.exchange, "_tradebus_skips_user_events", False):
            return
        self.exchange._tradebus_skips_user_events = True
        handle = self.exchange.handle_message

        def handle_message(client, message):
            if isinstance(message, dict):
                event = message.get("event", message)
                if isinstance(event, dict) and event.get("e") in names:
                    return None
            return handle(client, message)
        self.exchange.handle_message = handle_message

    async def fetch_order_trades(self, symbol: str, exchange_order_id: str) -> list[dict] | None:
        """The executions of one order (ccxt trade structures); None when the venue cannot list them."""
        if not self.exchange.has.get("fetchOrderTrades"):
            return None
        try:
            return list(await self.exchange.fetch_order_trades(exchange_order_id, symbol))
        except ccxt.NotSupported:
            return None

    # --- venue -> tradebus ----------------------------------------------------------------

    def fills_from_trades(self) -> bool:
        """True when fills come from per-execution trade records (ccxt ``watch_my_trades``: venue
        trade id, fee, maker/taker) rather than from an order's cumulative filled quantity."""
        return bool(self.capabilities.watch_my_trades and self.exchange.has.get("watchMyTrades"))

    def order_trades(self, order: dict) -> list[dict]:
        """Executions a ccxt order carries (a create response's fills, a watched order's trades),
        with ``order`` set; records without a venue trade id are left out."""
        out = []
        for trade in order.get("trades") or ():
            if isinstance(trade, dict) and trade.get("id") is not None:
                out.append(trade if trade.get("order") is not None else {**trade, "order": order.get("id")})
        return out

    def related_order_ids(self, order: dict) -> list[str]:
        """Other venue ids under which this order executes (e.g. the order a conditional one placed)."""
        return []

    @staticmethod
    def trade_client_order_id(trade: dict) -> str | None:
        """Our client order id in a ccxt trade's raw record, when the venue sends it."""
        info = trade.get("info") or {}
        return info.get("c") or info.get("clientOrderId") or info.get("clOrdId") or info.get("orderLinkId") or None

    @staticmethod
    def venue_status(order: dict) -> str | None:
        """The venue's own status word in a ccxt order's raw record (Binance ``status``/``X``,
        OKX ``state``, Bybit ``orderStatus``)."""
        info = order.get("info") or {}
        status = info.get("status") or info.get("X") or info.get("state") or info.get("orderStatus")
        return status if isinstance(status, str) else None

    def state(self, order: dict) -> OrderState:
        """Map a ccxt order's status (and fills) onto the tradebus order state: the venue's own
        status through ``status_dict`` first, else ccxt's unified one through ``status_map``."""
        state = self.config.status_dict.get(self.venue_status(order)) if self.config.status_dict else None
        if state is None:
            state = self.config.status_map.get(order.get("status") or "open", OrderState.ACKED)
        filled = float(order.get("filled") or 0.0)
        if state is OrderState.ACKED and filled > 0:
            return OrderState.PARTIALLY_FILLED
        return state

    @staticmethod
    def venue_error_code(exc: BaseException) -> str | None:
        """The venue's error code in a ccxt exception (ccxt's message is ``<id> <response body>``):
        Binance ``code``, Bybit ``retCode``, OKX ``sCode`` of the failed item, else ``code``."""
        text = str(exc)
        start = text.find("{")
        if start < 0:
            return None
        try:
            body = json.loads(text[start:])
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        for item in body.get("data") or ():
            if isinstance(item, dict) and str(item.get("sCode", "0")) not in ("0", ""):
                return str(item["sCode"])
        code = body.get("retCode", body.get("code"))
        return None if code is None else str(code)

    def is_ambiguous(self, exc: BaseException) -> bool:
        """Whether a failed call may still have reached the venue: ccxt's timeouts and network
        errors, and the venue's own "execution status unknown" codes (the YAML's
        ``ambiguous_codes``, e.g. Binance's -1001 that ccxt raises as a plain OperationFailed)."""
        if is_ambiguous(exc):
            return True
        return bool(self.config.ambiguous_codes) and not isinstance(exc, LocalReject) \
            and self.venue_error_code(exc) in self.config.ambiguous_codes

    def reject_code(self, exc: BaseException) -> RejectCode:
        """Our code for a failed venue call: the YAML's ``error_codes`` for the venue's own code,
        else by ccxt's exception class."""
        if self.config.error_codes and not isinstance(exc, LocalReject):
            mapped = self.config.error_codes.get(self.venue_error_code(exc) or "")
            if mapped is not None:
                return mapped
        return reject_code(exc)

    @staticmethod
    def client_order_id(order: dict) -> str | None:
        coid = order.get("clientOrderId")
        info = order.get("info") or {}
        return coid or info.get("clientAlgoId") or info.get("clOrdId") or info.get("orderLinkId") or None


@register("binance:usdm")
class BinanceUsdm(VenueAdapter):
    """USD-M conditional orders live apart (algo orders): look them up with ``trigger``."""

    _CONDITIONAL = {OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET,
                    OrderType.TAKE_PROFIT_LIMIT, OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_PERCENT}

    def conditional(self, order_type: OrderType) -> bool:
        return OrderType(order_type) in self._CONDITIONAL

    def lookup_params(self, order_type: OrderType | None) -> dict[str, Any]:
        return {"trigger": True} if order_type is not None and self.conditional(order_type) else {}

    def client_id_params(self, client_order_id: str) -> dict[str, Any]:
        return {"clientOrderId": client_order_id}

    # A triggered algo order places a regular order (the algo's actualOrderId / WS ``ai``) that
    # executes and ends; the algo view itself carries no fills and says TRIGGERED / FINISHED,
    # which ccxt maps to "closed". The order's end is the placed order's end, not the algo's.

    @staticmethod
    def _algo(order: dict) -> dict | None:
        info = order.get("info") or {}
        return info if ("algoId" in info or "aid" in info) else None

    def state(self, order: dict) -> OrderState:
        algo = self._algo(order)
        if algo is not None and str(algo.get("algoStatus") or algo.get("X") or "").upper() in ("TRIGGERED",
                                                                                                 "FINISHED"):
            return OrderState.ACKED
        return super().state(order)

    def related_order_ids(self, order: dict) -> list[str]:
        algo = self._algo(order)
        actual = str((algo or {}).get("actualOrderId") or (algo or {}).get("ai") or "")
        return [actual] if actual and actual != "0" else []

    async def fetch_order(self, symbol: str, exchange_order_id: str, order_type: OrderType | None = None) -> dict:
        order = await super().fetch_order(symbol, exchange_order_id, order_type)
        return await self._actual(order, symbol)

    async def fetch_by_client_id(self, symbol: str, client_order_id: str, order_type: OrderType | None = None) -> dict | None:
        order = await super().fetch_by_client_id(symbol, client_order_id, order_type)
        return None if order is None else await self._actual(order, symbol)

    async def _actual(self, order: dict, symbol: str) -> dict:
        """A triggered algo order: the order it placed, under the algo's client id."""
        related = self.related_order_ids(order)
        if not related:
            return order
        placed = await self.exchange.fetch_order(related[0], symbol)
        return {**placed, "clientOrderId": order.get("clientOrderId") or placed.get("clientOrderId")}

    async def fetch_order_trades(self, symbol: str, exchange_order_id: str) -> list[dict] | None:
        # ccxt's fetch_order_trades is spot-only on Binance; userTrades takes the order id
        return list(await self.exchange.fetch_my_trades(symbol, None, None, {"orderId": exchange_order_id}))


@register("binance:spot")
class BinanceSpot(VenueAdapter):
    def order_trades(self, order: dict) -> list[dict]:
        # a create response's fills are the executions at entry, where the new order is the taker
        trades = super().order_trades(order)
        if (order.get("info") or {}).get("fills"):
            trades = [t if t.get("takerOrMaker") else {**t, "takerOrMaker": "taker"} for t in trades]
        return trades
