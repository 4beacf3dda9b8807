"""Binance REST endpoints (spot /api/v3, USD-M /fapi/v1-v3) and the WS-API, over the engine."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import unquote_plus

import msgspec
from aiohttp import WSMsgType, web

from . import wire
from .engine import SPOT, USDM, Account, Engine, Instrument, SimError
from .limits import ORDER_PATHS, LimitError, Usage, request_weight
from .settings import UsageLimits
from .ws import CLOSE_TIMEOUT_S, Conn, Hub

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

NONE, APIKEY, SIGNED = 0, 1, 2
WSAPI_PLACE_METHODS = frozenset({"order.place", "algoOrder.place"})
_NUMBER = re.compile(r"^-?([0-9]{1,20})(\.[0-9]{1,20})?$")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ctx:
    """One request: its parameters, market and (for signed endpoints) account."""

    __slots__ = ("params", "market", "account", "engine", "path")

    def __init__(self, params: dict[str, str], market: str, engine: Engine, path: str = ""):
        self.params, self.market, self.engine, self.path = params, market, engine, path
        self.account: Account | None = None

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def req(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SimError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return value

    def dec(self, name: str, required: bool = False) -> Decimal | None:
        value = self.req(name) if required else self.get(name)
        if value is None:
            return None
        if not _NUMBER.match(value):
            raise SimError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                  "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
        return Decimal(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise SimError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                  "'^([0-9]{1,20})$'.") from None

    def bool(self, name: str) -> bool:
        value = (self.get(name) or "false").lower()
        if value not in ("true", "false"):
            raise SimError(-1130, f"Data sent for parameter '{name}' is not valid.")
        return value == "true"

    def inst(self) -> Instrument:
        return self.engine.instrument(self.market, self.req("symbol"))

    def inst_opt(self) -> Instrument | None:
        return self.inst() if self.get("symbol") else None


class Venue:
    """Routes, authentication and the handlers of every served REST path."""

    def __init__(self, engine: Engine, hub: Hub, recv_window_max: int, usage: Usage | None = None):
        self.engine, self.hub = engine, hub
        self.usage = usage if usage is not None else Usage(UsageLimits())
        self.recv_window_max = recv_window_max
        self.routes: dict[tuple[str, str], tuple[Callable, int]] = {}
        self.counters = {"rest_requests": 0, "rest_errors": 0, "wsapi_requests": 0, "wsapi_faults": 0}
        # WS-API methods that reuse a REST handler (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api)
        self.wsapi_methods: dict[tuple[str, str], Callable] = {}
        for market in (SPOT, USDM):
            for method, handler in (("order.place", self.new_order), ("order.cancel", self.cancel_order),
                                    ("order.status", self.get_order), ("openOrders.status", self.open_orders),
                                    ("openOrders.cancelAll", self.cancel_all), ("myTrades", self.my_trades)):
                self.wsapi_methods[(market, method)] = handler
        self.wsapi_methods[(SPOT, "order.cancelReplace")] = self.cancel_replace
        self.wsapi_methods[(USDM, "order.modify")] = self.amend_order
        self.wsapi_methods[(USDM, "algoOrder.place")] = self.new_algo_order
        self.wsapi_methods[(USDM, "algoOrder.cancel")] = self.cancel_algo_order
        self._wsapi_order_handlers = (self.new_order, self.cancel_replace, self.amend_order, self.new_algo_order)
        for prefix, market in (("/api/v3/", SPOT), ("/fapi/v1/", USDM)):
            for path, handler in (("ping", self.ping), ("time", self.time), ("exchangeInfo", self.exchange_info),
                                  ("depth", self.depth), ("trades", self.trades),
                                  ("historicalTrades", self.trades), ("aggTrades", self.agg_trades),
                                  ("klines", self.klines), ("uiKlines", self.klines),
                                  ("ticker/price", self.ticker_price), ("ticker/bookTicker", self.book_ticker),
                                  ("ticker/24hr", self.ticker_24h)):
                self._add("GET", prefix + path, handler, NONE, market)
            self._add("POST", prefix + "order", self.new_order, SIGNED, market)
            self._add("GET", prefix + "order", self.get_order, SIGNED, market)
            self._add("DELETE", prefix + "order", self.cancel_order, SIGNED, market)
            self._add("GET", prefix + "openOrders", self.open_orders, SIGNED, market)
            self._add("GET", prefix + "allOrders", self.all_orders, SIGNED, market)
        self._add("GET", "/api/v3/avgPrice", self.avg_price, NONE, SPOT)
        self._add("POST", "/api/v3/order/test", self.test_order, SIGNED, SPOT)
        self._add("POST", "/api/v3/order/cancelReplace", self.cancel_replace, SIGNED, SPOT)
        self._add("DELETE", "/api/v3/openOrders", self.cancel_all, SIGNED, SPOT)
        self._add("GET", "/api/v3/myTrades", self.my_trades, SIGNED, SPOT)
        self._add("GET", "/api/v3/account", self.spot_account, SIGNED, SPOT)
        for method in ("POST", "PUT", "DELETE"):
            self._add(method, "/api/v3/userDataStream", self.listen_key, APIKEY, SPOT)
            self._add(method, "/fapi/v1/listenKey", self.listen_key, APIKEY, USDM)
        f = "/fapi/v1/"
        self._add("GET", f + "premiumIndex", self.premium_index, NONE, USDM)
        self._add("GET", f + "fundingRate", lambda ctx: [], NONE, USDM)
        self._add("PUT", f + "order", self.amend_order, SIGNED, USDM)
        self._add("GET", f + "openOrder", self.get_open_order, SIGNED, USDM)
        self._add("DELETE", f + "allOpenOrders", self.cancel_all, SIGNED, USDM)
        self._add("GET", f + "userTrades", self.my_trades, SIGNED, USDM)
        self._add("POST", f + "leverage", self.leverage, SIGNED, USDM)
        self._add("POST", f + "marginType", self.margin_type, SIGNED, USDM)
        self._add("GET", f + "leverageBracket", self.leverage_bracket, SIGNED, USDM)
        self._add("GET", f + "positionSide/dual", lambda ctx: {"dualSidePosition": False}, SIGNED, USDM)
        self._add("GET", f + "commissionRate", self.commission_rate, SIGNED, USDM)
        self._add("POST", f + "algoOrder", self.new_algo_order, SIGNED, USDM)
        self._add("GET", f + "algoOrder", self.get_algo_order, SIGNED, USDM)
        self._add("DELETE", f + "algoOrder", self.cancel_algo_order, SIGNED, USDM)
        self._add("GET", f + "openAlgoOrders", self.open_algo_orders, SIGNED, USDM)
        self._add("GET", f + "allAlgoOrders", self.all_algo_orders, SIGNED, USDM)
        self._add("DELETE", f + "algoOpenOrders", self.cancel_all_algo, SIGNED, USDM)
        for version in ("v2", "v3"):
            self._add("GET", f"/fapi/{version}/account", self.usdm_account, SIGNED, USDM)
            self._add("GET", f"/fapi/{version}/balance", self.usdm_balance, SIGNED, USDM)
            self._add("GET", f"/fapi/{version}/positionRisk", self.position_risk, SIGNED, USDM)

    def _add(self, method: str, path: str, handler: Callable, security: int, market: str) -> None:
        self.routes[(method, path)] = (handler, security, market)

    # ------------------------------------------------------------------ request plumbing

    async def handle(self, request: web.BaseRequest) -> web.Response:
        self.counters["rest_requests"] += 1
        route = self.routes.get((request.method, request.path))
        if route is None:
            self.counters["rest_errors"] += 1
            return web.json_response(
                {"msg": f"sim_exchange does not serve {request.method} {request.path}"}, status=404)
        handler, security, market = route
        raw_query = request.rel_url.raw_query_string
        raw_body = (await request.text()) if request.can_read_body else ""
        params = parse_params(raw_query)
        if raw_body:
            params.update(parse_params(raw_body))
        ctx = Ctx(params, market, self.engine, request.path)
        ip = request.remote or "127.0.0.1"
        headers: dict[str, str] = {}
        try:
            headers = self.usage.charge(market, ip, request_weight(market, request.method, request.path, params))
            if security:
                ctx.account = self._api_key(request.headers.get("X-MBX-APIKEY"))
            if security == SIGNED:
                self._check_signature(ctx, raw_query, raw_body)
            if (request.method, request.path) in ORDER_PATHS:
                headers.update(self.usage.count_order(market, ip, ctx.account.api_key))
            body = handler(ctx)
        except SimError as err:
            self.counters["rest_errors"] += 1
            return error_response(err, {**headers, **err.headers} if isinstance(err, LimitError) else headers)
        return web.Response(body=_encode(body), content_type="application/json", headers=headers)

    def _api_key(self, key: str | None) -> Account:
        if not key:
            raise SimError(-2014, "API-key format invalid.", 401)
        account = self.engine.accounts.get(key)
        if account is None:
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return account

    def _check_signature(self, ctx: Ctx, raw_query: str, raw_body: str) -> None:
        signature = ctx.get("signature")
        if signature is None:
            raise SimError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        payload = _without_signature(raw_query) + _without_signature(raw_body)
        self._verify(ctx.account, payload, signature, ctx.get("timestamp"), ctx.get("recvWindow"))

    def _verify(self, account: Account, payload: str, signature: str, timestamp: str | None,
                recv_window: str | None) -> None:
        expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise SimError(-1022, "Signature for this request is not valid.")
        if timestamp is None:
            raise SimError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        try:
            ts = int(timestamp)
            window = int(recv_window) if recv_window not in (None, "") else 5000
        except ValueError:
            raise SimError(-1100, "Illegal characters found in parameter 'timestamp'.") from None
        if window > self.recv_window_max or window <= 0:
            raise SimError(-1131, f"recvWindow must be less than {self.recv_window_max}.")
        now = now_ms()
        if ts > now + 1000:
            raise SimError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------------ public market data

    def ping(self, ctx: Ctx):
        return {}

    def time(self, ctx: Ctx):
        return {"serverTime": now_ms()}

    def _market_instruments(self, market: str) -> list[Instrument]:
        return [i for i in self.engine.instruments.values() if i.market == market]

    def exchange_info(self, ctx: Ctx):
        insts = self._market_instruments(ctx.market)
        wanted = ctx.get("symbol")
        if ctx.get("symbols"):
            try:
                names = _decode(ctx.get("symbols"))
            except msgspec.DecodeError:
                raise SimError(-1100, "Illegal characters found in parameter 'symbols'.") from None
        else:
            names = [wanted] if wanted else None
        if names is not None:
            by_id = {i.symbol: i for i in insts}
            for name in names:
                if name not in by_id:
                    raise SimError(-1121, "Invalid symbol.")
            insts = [by_id[n] for n in names]
        return wire.exchange_info(ctx.market, insts, now_ms())

    def depth(self, ctx: Ctx):
        inst = ctx.inst()
        limit = ctx.integer("limit", 100 if ctx.market == SPOT else 500)
        if limit <= 0 or limit > 5000:
            raise SimError(-1100, "Illegal characters found in parameter 'limit'.")
        return wire.depth(self.engine, inst, limit, now_ms())

    def _limit(self, ctx: Ctx, default: int, maximum: int) -> int:
        limit = ctx.integer("limit", default)
        if limit <= 0:
            raise SimError(-1100, "Illegal characters found in parameter 'limit'.")
        return min(limit, maximum)

    def trades(self, ctx: Ctx):
        inst = ctx.inst()
        limit = self._limit(ctx, 500, 1000)
        trades = list(self.engine.trades[inst.key])
        from_id = ctx.integer("fromId")
        if from_id is not None:
            trades = [t for t in trades if t.trade_id >= from_id][:limit]
        else:
            trades = trades[-limit:]
        return [wire.trade(inst, t) for t in trades]

    def agg_trades(self, ctx: Ctx):
        inst = ctx.inst()
        limit = self._limit(ctx, 500, 1000)
        trades = list(self.engine.trades[inst.key])
        from_id, start, end = ctx.integer("fromId"), ctx.integer("startTime"), ctx.integer("endTime")
        if from_id is not None:
            trades = [t for t in trades if t.trade_id >= from_id]
        if start is not None:
            trades = [t for t in trades if t.time >= start]
        if end is not None:
            trades = [t for t in trades if t.time <= end]
        trades = trades[:limit] if (from_id is not None or start is not None) else trades[-limit:]
        return [wire.agg_trade(inst, t) for t in trades]

    def klines(self, ctx: Ctx):
        inst = ctx.inst()
        interval = ctx.req("interval")
        span = wire.INTERVAL_MS.get(interval)
        if span is None:
            raise SimError(-1120, "Invalid interval.")
        limit = self._limit(ctx, 500, 1000 if ctx.market == SPOT else 1500)
        start, end = ctx.integer("startTime"), ctx.integer("endTime")
        klines = wire.aggregate_klines(self.engine.klines[inst.key], span)
        if start is not None:
            klines = [k for k in klines if k.open_time >= start - start % span]
        if end is not None:
            klines = [k for k in klines if k.open_time <= end]
        klines = klines[:limit] if start is not None else klines[-limit:]
        return [wire.kline_row(inst, k, span) for k in klines]

    def _each(self, ctx: Ctx, build: Callable):
        inst = ctx.inst_opt()
        if inst is not None:
            return build(inst)
        return [build(i) for i in self._market_instruments(ctx.market)]

    def ticker_price(self, ctx: Ctx):
        now = now_ms()
        return self._each(ctx, lambda i: {"symbol": i.symbol,
                                          "price": wire.price_text(i, self.engine.reference_price(i)),
                                          **({"time": now} if i.market == USDM else {})})

    def book_ticker(self, ctx: Ctx):
        return self._each(ctx, lambda i: wire.book_ticker(self.engine, i, now_ms()))

    def ticker_24h(self, ctx: Ctx):
        return self._each(ctx, lambda i: wire.ticker_24h(self.engine, i, now_ms()))

    def avg_price(self, ctx: Ctx):
        inst = ctx.inst()
        return {"mins": 5, "price": wire.price_text(inst, self.engine.reference_price(inst)),
                "closeTime": now_ms()}

    def premium_index(self, ctx: Ctx):
        now = now_ms()

        def build(i: Instrument):
            mark = wire.price_text(i, self.engine.mark_price(i).quantize(Decimal(10) ** -8))
            return {"symbol": i.symbol, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
                    "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
                    "nextFundingTime": now - now % 28_800_000 + 28_800_000, "time": now}
        return self._each(ctx, build)

    # ------------------------------------------------------------------ orders

    def _place(self, ctx: Ctx, algo: bool = False):
        inst = ctx.inst()
        if algo and ctx.get("algoType") != "CONDITIONAL":
            raise SimError(-1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        return self.engine.place(
            ctx.account, inst, side=ctx.req("side"), type=ctx.req("type"), qty=ctx.dec("quantity"),
            price=ctx.dec("price"), stop_price=ctx.dec("triggerPrice" if algo else "stopPrice"),
            tif=ctx.get("timeInForce"),
            client_id=ctx.get("clientAlgoId" if algo else "newClientOrderId"),
            quote_qty=ctx.dec("quoteOrderQty"), reduce_only=ctx.bool("reduceOnly"),
            close_position=ctx.bool("closePosition"), callback_rate=ctx.dec("callbackRate"),
            activation_price=ctx.dec("activatePrice" if algo else "activationPrice"), algo=algo,
            working_type=ctx.get("workingType") or "CONTRACT_PRICE")

    def new_order(self, ctx: Ctx):
        order = self._place(ctx)
        resp_type = ctx.get("newOrderRespType") or (
            "FULL" if ctx.market == SPOT and order.type in ("MARKET", "LIMIT") else "ACK")
        if ctx.market == USDM:
            return wire.usdm_order(order)
        if resp_type == "ACK":
            return {"symbol": order.inst.symbol, "orderId": order.order_id, "orderListId": -1,
                    "clientOrderId": order.client_id, "transactTime": order.update_time}
        return wire.spot_order(order, full=True, fills=resp_type == "FULL")

    def test_order(self, ctx: Ctx):
        """Validate a new order (parameters, filters) without sending it to the book."""
        inst = ctx.inst()
        side, type_ = ctx.req("side"), ctx.req("type")
        if side not in ("BUY", "SELL"):
            raise SimError(-1117, "Invalid side.")
        if type_ not in ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                         "TAKE_PROFIT_LIMIT"):
            raise SimError(-1116, "Invalid orderType.")
        self.engine.check_filters(inst, ctx.dec("quantity"), ctx.dec("price"), ctx.dec("stopPrice"),
                                   ctx.dec("quoteOrderQty"), False)
        return {}

    def _find(self, ctx: Ctx, algo: bool = False):
        inst = ctx.inst()
        if algo:
            order_id, client_id = ctx.integer("algoId"), ctx.get("clientAlgoId")
        else:
            order_id, client_id = ctx.integer("orderId"), ctx.get("origClientOrderId")
        if order_id is None and client_id is None:
            name = "algoId" if algo else "orderId"
            raise SimError(-1102, f"Param '{name}' or 'origClientOrderId' must be sent, but both were empty/null!")
        return inst, order_id, client_id

    def get_order(self, ctx: Ctx):
        inst, order_id, client_id = self._find(ctx)
        order = self.engine.find_order(ctx.account, inst, order_id, client_id)
        if order is None:
            raise SimError(-2013, "Order does not exist.")
        return wire.order_json(order)

    def get_open_order(self, ctx: Ctx):
        inst, order_id, client_id = self._find(ctx)
        order = self.engine.find_order(ctx.account, inst, order_id, client_id)
        if order is None or not order.is_open:
            raise SimError(-2013, "Order does not exist.")
        return wire.order_json(order)

    def cancel_order(self, ctx: Ctx):
        inst, order_id, client_id = self._find(ctx)
        order = self.engine.cancel(ctx.account, inst, order_id, client_id)
        out = wire.order_json(order)
        if ctx.market == SPOT:
            out = {"symbol": out["symbol"], "origClientOrderId": order.client_id, **out}
            out["transactTime"] = order.update_time
        return out

    def amend_order(self, ctx: Ctx):
        inst, order_id, client_id = self._find(ctx)
        order = self.engine.amend(ctx.account, inst, order_id, client_id, ctx.req("side"),
                                  ctx.dec("quantity", True), ctx.dec("price", True))
        return wire.usdm_order(order)

    def open_orders(self, ctx: Ctx):
        inst = ctx.inst_opt()
        orders = sorted(ctx.account.open[ctx.market].values(), key=lambda o: o.order_id)
        return [wire.order_json(o) for o in orders if inst is None or o.inst is inst]

    def all_orders(self, ctx: Ctx):
        inst = ctx.inst()
        limit = self._limit(ctx, 500, 1000)
        from_id, start, end = ctx.integer("orderId"), ctx.integer("startTime"), ctx.integer("endTime")
        orders = sorted((o for (m, _), o in ctx.account.orders.items() if m == ctx.market and o.inst is inst),
                        key=lambda o: o.order_id)
        orders = [o for o in orders if (from_id is None or o.order_id >= from_id)
                  and (start is None or o.time >= start) and (end is None or o.time <= end)]
        orders = orders[:limit] if (from_id is not None or start is not None) else orders[-limit:]
        return [wire.order_json(o) for o in orders]

    def cancel_all(self, ctx: Ctx):
        inst = ctx.inst()
        orders = self.engine.cancel_all(ctx.account, inst)
        if ctx.market == USDM:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        if not orders:
            raise SimError(-2011, "Unknown order sent.")
        return [{"origClientOrderId": o.client_id, **wire.spot_order(o)} for o in orders]

    def cancel_replace(self, ctx: Ctx):
        inst = ctx.inst()
        mode = ctx.req("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise SimError(-1130, "Data sent for parameter 'cancelReplaceMode' is not valid.")
        order_id, client_id = ctx.integer("cancelOrderId"), ctx.get("cancelOrigClientOrderId")
        if order_id is None and client_id is None:
            raise SimError(-1102, "Param 'cancelOrderId' or 'cancelOrigClientOrderId' must be sent.")
        result = {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": None,
                  "newOrderResponse": None}
        try:
            cancelled = self.engine.cancel(ctx.account, inst, order_id, client_id)
            result["cancelResponse"] = {"origClientOrderId": cancelled.client_id, **wire.spot_order(cancelled)}
        except SimError as err:
            result["cancelResult"] = "FAILURE"
            result["cancelResponse"] = {"code": err.code, "msg": err.msg}
            if mode == "STOP_ON_FAILURE":
                result["newOrderResult"] = "NOT_ATTEMPTED"
                raise SimError(-2022, "Order cancel-replace failed.", 400, data=result) from None
        try:
            order = self._place(ctx)
            result["newOrderResponse"] = wire.spot_order(
                order, full=True, fills=(ctx.get("newOrderRespType") or "FULL") == "FULL")
        except SimError as err:
            result["newOrderResult"] = "FAILURE"
            result["newOrderResponse"] = {"code": err.code, "msg": err.msg}
            raise SimError(-2021, "Order cancel-replace partially failed.", 409, data=result) from None
        return result

    def my_trades(self, ctx: Ctx):
        inst = ctx.inst()
        limit = self._limit(ctx, 500, 1000)
        order_id, from_id = ctx.integer("orderId"), ctx.integer("fromId")
        start, end = ctx.integer("startTime"), ctx.integer("endTime")
        fills = [f for f in ctx.account.fills[ctx.market] if f.order.inst is inst
                 and (order_id is None or f.order.order_id == order_id)
                 and (from_id is None or f.trade_id >= from_id)
                 and (start is None or f.time >= start) and (end is None or f.time <= end)]
        fills = fills[:limit] if (from_id is not None or start is not None) else fills[-limit:]
        build = wire.spot_my_trade if ctx.market == SPOT else wire.usdm_my_trade
        return [build(f) for f in fills]

    def spot_account(self, ctx: Ctx):
        out = wire.spot_account(ctx.account, now_ms())
        if ctx.bool("omitZeroBalances"):
            out["balances"] = [b for b in out["balances"] if Decimal(b["free"]) or Decimal(b["locked"])]
        return out

    def listen_key(self, ctx: Ctx):
        return {"listenKey": self.hub.listen_key(ctx.account, ctx.market)}

    # ------------------------------------------------------------------ USD-M account

    def usdm_account(self, ctx: Ctx):
        version = 2 if ctx.path.startswith("/fapi/v2/") else 3
        return wire.usdm_account(self.engine, ctx.account, now_ms(), version)

    def usdm_balance(self, ctx: Ctx):
        return wire.usdm_balance(self.engine, ctx.account, now_ms())

    def position_risk(self, ctx: Ctx):
        inst = ctx.inst_opt()
        v2 = ctx.path.startswith("/fapi/v2/")
        out = []
        for i in self._market_instruments(USDM):
            if inst is not None and i is not inst:
                continue
            pos = ctx.account.positions.get(i.symbol)
            has_orders = any(o.inst is i for o in ctx.account.open[USDM].values())
            if v2 or (pos is not None and pos.amount) or has_orders:
                out.append(wire.position_risk(self.engine, ctx.account, i, v2))
        return out

    def leverage(self, ctx: Ctx):
        inst = ctx.inst()
        leverage = ctx.integer("leverage")
        if leverage is None:
            raise SimError(-1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.")
        self.engine.set_leverage(ctx.account, inst, leverage)
        return {"leverage": leverage, "maxNotionalValue": "80000000", "symbol": inst.symbol}

    def margin_type(self, ctx: Ctx):
        ctx.inst()
        if ctx.req("marginType") == "CROSSED":
            raise SimError(-4046, "No need to change margin type.")
        raise SimError(-1020, "This operation is not supported.")

    def leverage_bracket(self, ctx: Ctx):
        return self._each(ctx, lambda i: {"symbol": i.symbol, "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
             "maintMarginRatio": float(wire.MAINT_MARGIN_RATE), "cum": 0.0},
            {"bracket": 2, "initialLeverage": 50, "notionalCap": 10000000, "notionalFloor": 50000,
             "maintMarginRatio": 0.01, "cum": 300.0}]})

    def commission_rate(self, ctx: Ctx):
        inst = ctx.inst()
        return {"symbol": inst.symbol, "makerCommissionRate": f"{inst.maker_fee:f}",
                "takerCommissionRate": f"{inst.taker_fee:f}"}

    # ------------------------------------------------------------------ USD-M algo orders

    def new_algo_order(self, ctx: Ctx):
        return wire.algo_order(self._place(ctx, algo=True))

    def get_algo_order(self, ctx: Ctx):
        inst = ctx.engine.instrument(USDM, ctx.req("symbol")) if ctx.get("symbol") else None
        algo_id, client_id = ctx.integer("algoId"), ctx.get("clientAlgoId")
        order = ctx.account.algo_orders.get(algo_id) if algo_id is not None else \
            ctx.account.by_client.get(("algo", client_id or ""))
        if order is None or (inst is not None and order.inst is not inst):
            raise SimError(-2013, "Order does not exist.")
        return wire.algo_order(order)

    def cancel_algo_order(self, ctx: Ctx):
        algo_id, client_id = ctx.integer("algoId"), ctx.get("clientAlgoId")
        order = ctx.account.algo_orders.get(algo_id) if algo_id is not None else \
            ctx.account.by_client.get(("algo", client_id or ""))
        if order is None or not order.is_open:
            raise SimError(-2011, "Unknown order sent.")
        self.engine.cancel(ctx.account, order.inst, order.order_id, None, algo=True)
        return {"algoId": order.order_id, "clientAlgoId": order.client_id, "code": "200", "msg": "success"}

    def open_algo_orders(self, ctx: Ctx):
        inst = ctx.inst_opt()
        orders = sorted(ctx.account.open_algo.values(), key=lambda o: o.order_id)
        return [wire.algo_order(o) for o in orders if inst is None or o.inst is inst]

    def all_algo_orders(self, ctx: Ctx):
        inst = ctx.inst()
        limit = self._limit(ctx, 500, 1000)
        orders = sorted((o for o in ctx.account.algo_orders.values() if o.inst is inst), key=lambda o: o.order_id)
        return [wire.algo_order(o) for o in orders[-limit:]]

    def cancel_all_algo(self, ctx: Ctx):
        self.engine.cancel_all(ctx.account, ctx.inst(), algo=True)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # ------------------------------------------------------------------ WS-API

    async def serve_wsapi(self, request: web.BaseRequest, market: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20, compress=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = Conn(ws, market, False, request.path)
        hub = self.hub
        hub.start_writer(conn, request)
        try:
            loop = asyncio.get_running_loop()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    queued = len(conn.buf)
                    answer = self._wsapi_request(conn, msg.data)
                    if answer is None:
                        continue  # the timeout fault: never answered
                    delay = self._fault_delay_s()
                    if delay > 0:
                        loop.call_later(delay, conn.send, answer)
                    elif not conn.closed:
                        # the answer goes ahead of the user-stream events the request caused (an
                        # executionReport is a separate stream; the venue does not order the two)
                        conn.buf.insert(queued, answer)
                        conn.wake.set()
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.closed = True
            conn.wake.set()
            hub._forget(conn)
        return ws

    def _fault_delay_s(self) -> float:
        faults = self.hub.faults
        delay = faults.latency_ms
        if faults.latency_jitter_ms > 0:
            delay += faults.rng.uniform(0, faults.latency_jitter_ms)
        return delay / 1000

    def _wsapi_faults(self, method: str) -> bool:
        """The REST fault knobs on signed WS-API requests; False: leave the request unanswered."""
        faults = self.hub.faults
        if faults.maintenance:
            self.counters["wsapi_faults"] += 1
            raise SimError(-1008, "System is under maintenance.", 503)
        if faults.draw(faults.rate_limit_rate):
            self.counters["wsapi_faults"] += 1
            raise SimError(-1003, "Too many requests; please use the websocket for live updates.", 429)
        if faults.draw(faults.ban_rate):
            self.counters["wsapi_faults"] += 1
            raise SimError(-1003, "Way too many requests; IP banned until further notice.", 418)
        if faults.draw(faults.error_rate):
            self.counters["wsapi_faults"] += 1
            raise SimError(-1001, "Internal error; unable to process your request. Please try again.", 500)
        if faults.draw(faults.timeout_rate):
            self.counters["wsapi_faults"] += 1
            return False
        return True

    def _wsapi_request(self, conn: Conn, text: str) -> bytes | None:
        req_id = None
        try:
            try:
                request = _decode(text)
                req_id, method = request.get("id"), request.get("method")
                params = request.get("params") or {}
            except Exception:
                raise SimError(-1100, "Illegal characters found in request: invalid JSON.") from None
            if (conn.market, method) in self.wsapi_methods and not self._wsapi_faults(method):
                return None
            result = self._wsapi_call(conn, method, params)
            if method in WSAPI_PLACE_METHODS:
                faults = self.hub.faults
                if faults.draw(faults.answer_lost_rate):
                    self.counters["wsapi_faults"] += 1
                    return None  # executed, but the answer is lost: the client times out on an order that exists
                if faults.draw(faults.error_after_accept_rate):
                    self.counters["wsapi_faults"] += 1  # executed, then Binance's "execution status unknown"
                    raise SimError(-1001, "Internal error; unable to process your request. Please try again.", 500)
            return _encode({"id": req_id, "status": 200, "result": result, "rateLimits": []})
        except SimError as err:
            return _encode({"id": req_id, "status": err.status, "error": {"code": err.code, "msg": err.msg}})

    def _wsapi_account(self, params: dict) -> Account:
        """The account of a signed WS-API request: ``apiKey`` plus a ``signature`` over the other
        parameters, sorted, as ``k=v`` joined by ``&``."""
        account = self._api_key(params.get("apiKey"))
        signature = params.get("signature")
        if not signature:
            raise SimError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        payload = "&".join(f"{k}={_wsapi_value(v)}" for k, v in sorted(params.items()) if k != "signature")
        self._verify(account, payload, signature, str(params.get("timestamp", "")) or None,
                     str(params["recvWindow"]) if "recvWindow" in params else None)
        return account

    def _wsapi_signed(self, conn: Conn, handler: Callable, params: dict):
        """A signed WS-API request (order entry, queries): the REST handler, authenticated by the
        ``apiKey`` and ``signature`` parameters as Binance's WS-API does."""
        self.counters["wsapi_requests"] += 1
        account = self._wsapi_account(params)
        ctx = Ctx({k: _wsapi_value(v) for k, v in params.items() if k not in ("apiKey", "signature")},
                  conn.market, self.engine, "ws-api")
        ctx.account = account
        if handler in self._wsapi_order_handlers:  # WS-API orders count against the account's order limits
            self.usage.count_order(conn.market, "ws-api", account.api_key)
        try:
            return handler(ctx)
        finally:
            self.hub.after_operation()

    def _wsapi_call(self, conn: Conn, method: str, params: dict):
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": now_ms()}
        if method == "userDataStream.subscribe.signature":
            account = self._wsapi_account(params)
            sub_id = len(conn.wsapi_subs)
            conn.wsapi_subs[sub_id] = (account, conn.market)
            self.hub._attach_user(conn, account, conn.market, sub_id)
            return {"subscriptionId": sub_id}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            for sub_id in list(conn.wsapi_subs):
                if wanted is None or wanted == sub_id:
                    account, market = conn.wsapi_subs.pop(sub_id)
                    key = (account.api_key, market)
                    self.hub.user_conns[key] = [e for e in self.hub.user_conns.get(key, [])
                                                if not (e[0] is conn and e[1] == sub_id)]
            return {}
        handler = self.wsapi_methods.get((conn.market, method))
        if handler is not None:
            return self._wsapi_signed(conn, handler, params)
        if method == "session.status":
            return {"apiKey": None, "authorizedSince": None, "connectedSince": now_ms(),
                    "returnRateLimits": False, "serverTime": now_ms(), "userDataStream": bool(conn.wsapi_subs)}
        raise SimError(-1020, f"sim_exchange does not serve WS-API method {method!r}", 400)


def parse_params(raw: str) -> dict[str, str]:
    """application/x-www-form-urlencoded to a dict; unquotes only the parts that need it."""
    params = {}
    if not raw:
        return params
    for part in raw.split("&"):
        key, _, value = part.partition("=")
        if "%" in value or "+" in value:
            value = unquote_plus(value)
        if "%" in key or "+" in key:
            key = unquote_plus(key)
        params[key] = value
    return params


def _wsapi_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _without_signature(raw: str) -> str:
    if "signature=" not in raw:
        return raw
    return "&".join(p for p in raw.split("&") if not p.startswith("signature="))


def error_response(err: SimError, headers: dict | None = None) -> web.Response:
    body = {"code": err.code, "msg": err.msg}
    if err.data is not None:
        body["data"] = err.data
    return web.Response(body=_encode(body), status=err.status, content_type="application/json", headers=headers)
