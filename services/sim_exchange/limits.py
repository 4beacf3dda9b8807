"""Binance's request-weight and order-count limits, counted as Binance counts them.

Every REST answer carries ``X-MBX-USED-WEIGHT-1M`` (the IP's weight in the current UTC minute);
answers to order requests carry the account's order counts (spot ``X-MBX-ORDER-COUNT-10S`` and
``-1D``, USD-M ``-10S`` and ``-1M``). With a limit configured (:class:`MarketLimits`), a request
over it is refused the way Binance does: HTTP 429 with -1003 (weight) or -1015 (orders) and a
``Retry-After``; an IP that keeps sending after ``ban_after`` refusals gets 418 with -1003 until
its ban ends. Windows are aligned to the clock (UTC minute, 10 s, day), as Binance's are.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .engine import SPOT, USDM, SimError
from .settings import MarketLimits, UsageLimits

__all__ = ["Usage", "LimitError", "request_weight", "ORDER_PATHS"]

# documented weights (https://developers.binance.com/docs/binance-spot-api-docs/rest-api,
# .../derivatives/usds-margined-futures); anything not listed weighs 1
_SPOT_WEIGHTS = {"/api/v3/order": {"GET": 4}, "/api/v3/account": 20, "/api/v3/myTrades": 20,
                 "/api/v3/exchangeInfo": 20, "/api/v3/allOrders": 20, "/api/v3/klines": 2, "/api/v3/uiKlines": 2,
                 "/api/v3/ticker/price": 2, "/api/v3/ticker/bookTicker": 2, "/api/v3/avgPrice": 2,
                 "/api/v3/trades": 25, "/api/v3/historicalTrades": 25, "/api/v3/aggTrades": 2,
                 "/api/v3/userDataStream": 2}
_USDM_WEIGHTS = {"/fapi/v1/order": {"POST": 0}, "/fapi/v1/algoOrder": {"POST": 0}, "/fapi/v2/account": 5,
                 "/fapi/v3/account": 5, "/fapi/v2/balance": 5, "/fapi/v3/balance": 5, "/fapi/v2/positionRisk": 5,
                 "/fapi/v3/positionRisk": 5, "/fapi/v1/userTrades": 5, "/fapi/v1/allOrders": 5,
                 "/fapi/v1/klines": 2, "/fapi/v1/trades": 5, "/fapi/v1/historicalTrades": 20,
                 "/fapi/v1/aggTrades": 20, "/fapi/v1/ticker/price": 2}
# without a symbol these list every market: they weigh more
_ALL_SYMBOLS = {"/api/v3/openOrders": 80, "/api/v3/ticker/24hr": 80, "/fapi/v1/openOrders": 40,
                "/fapi/v1/openAlgoOrders": 40, "/fapi/v1/ticker/24hr": 40, "/api/v3/ticker/price": 4,
                "/api/v3/ticker/bookTicker": 4, "/fapi/v1/ticker/price": 5, "/fapi/v1/ticker/bookTicker": 5,
                "/fapi/v1/premiumIndex": 10}
_SYMBOL_WEIGHTS = {"/api/v3/openOrders": 6, "/api/v3/ticker/24hr": 2}
# requests that count as new orders (an amend of a USD-M order counts too)
ORDER_PATHS = {("POST", "/api/v3/order"), ("POST", "/api/v3/order/cancelReplace"), ("POST", "/fapi/v1/order"),
               ("PUT", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder")}
_ORDER_WINDOWS = {SPOT: (("orders_10s", 10, "10S"), ("orders_1d", 86400, "1D")),
                  USDM: (("orders_10s", 10, "10S"), ("orders_1m", 60, "1M"))}
_WINDOW_NAMES = {10: "10 SECOND", 60: "1 MINUTE", 86400: "1 DAY"}


class LimitError(SimError):
    """A request refused for load: Binance's body plus a ``Retry-After`` (seconds)."""

    def __init__(self, code: int, msg: str, status: int, retry_after: int, used_weight: int):
        super().__init__(code, msg, status)
        self.retry_after, self.used_weight = retry_after, used_weight

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), "X-MBX-USED-WEIGHT-1M": str(self.used_weight)}


def _depth_weight(market: str, limit: int) -> int:
    if market == SPOT:
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def request_weight(market: str, method: str, path: str, params: dict[str, str]) -> int:
    """Binance's weight of one REST request."""
    if path.endswith("/depth"):
        limit = params.get("limit") or "100"
        return _depth_weight(market, int(limit) if limit.isdigit() else 100)  # a bad limit: the handler says so
    if path in _ALL_SYMBOLS:
        if not params.get("symbol"):
            return _ALL_SYMBOLS[path]
        return _SYMBOL_WEIGHTS.get(path, 1 if market == USDM else 2)
    weights = _SPOT_WEIGHTS if market == SPOT else _USDM_WEIGHTS
    weight = weights.get(path, 1)
    return weight.get(method, 1) if isinstance(weight, dict) else weight


class _Window:
    """A count in the clock-aligned window of ``interval`` seconds."""

    __slots__ = ("interval", "start", "count")

    def __init__(self, interval: int):
        self.interval, self.start, self.count = interval, -1, 0

    def value(self, now: float) -> int:
        start = int(now // self.interval) * self.interval
        if start != self.start:
            self.start, self.count = start, 0
        return self.count

    def retry_after(self, now: float) -> int:
        return max(1, int(self.start + self.interval - now + 0.999))


class Usage:
    """Weight per (market, IP) and order counts per (market, account), with the configured limits."""

    def __init__(self, limits: UsageLimits, clock: Callable[[], float] = time.time):
        self.limits = limits
        self._clock = clock
        self._weights: dict[tuple[str, str], _Window] = {}
        self._orders: dict[tuple[str, str, str], _Window] = {}
        self._violations: dict[tuple[str, str], int] = {}
        self._banned_until: dict[tuple[str, str], float] = {}
        self.counters = {"limit_429": 0, "limit_418": 0}

    def _market_limits(self, market: str) -> MarketLimits:
        return self.limits.spot if market == SPOT else self.limits.usdm

    def _weight_window(self, market: str, ip: str) -> _Window:
        return self._weights.setdefault((market, ip), _Window(60))

    def _order_window(self, market: str, account: str, name: str, interval: int) -> _Window:
        return self._orders.setdefault((market, account, name), _Window(interval))

    def used_weight(self, market: str, ip: str) -> int:
        return self._weight_window(market, ip).value(self._clock())

    def order_count(self, market: str, account: str, name: str) -> int:
        """``name``: orders_10s, orders_1d (spot) or orders_1m (USD-M)."""
        interval = dict((n, i) for n, i, _ in _ORDER_WINDOWS[market])[name]
        return self._order_window(market, account, name, interval).value(self._clock())

    def charge(self, market: str, ip: str, weight: int) -> dict[str, str]:
        """Count one request of ``weight``; SimError 429/418 when over the limit. Returns the headers."""
        now = self._clock()
        key = (market, ip)
        limits = self._market_limits(market)
        window = self._weight_window(market, ip)
        used = window.value(now)
        banned = self._banned_until.get(key, 0.0)
        if banned > now:
            self.counters["limit_418"] += 1
            raise LimitError(-1003, f"Way too many requests; IP({ip}) banned until {int(banned * 1000)}. Please use "
                                  "the websocket for live updates to avoid bans.", 418,
                           retry_after=max(1, int(banned - now + 0.999)), used_weight=used)
        if limits.request_weight_1m and used + weight > limits.request_weight_1m:
            self._violated(key, now)
            raise LimitError(-1003, f"Too many requests; current limit of IP({ip}) is {limits.request_weight_1m} "
                                  "requests per minute. Please use the websocket for live updates to avoid "
                                  "polling the API.", 429, retry_after=window.retry_after(now), used_weight=used)
        window.count = used + weight
        return {"X-MBX-USED-WEIGHT-1M": str(window.count)}

    def _violated(self, key: tuple[str, str], now: float) -> None:
        self.counters["limit_429"] += 1
        count = self._violations[key] = self._violations.get(key, 0) + 1
        if self.limits.ban_after and count >= self.limits.ban_after:
            self._violations[key] = 0
            self._banned_until[key] = now + self.limits.ban_s

    def count_order(self, market: str, ip: str, account: str) -> dict[str, str]:
        """Count one new order of ``account``; SimError 429 / -1015 when a count is at its limit."""
        now = self._clock()
        used = self._weight_window(market, ip).value(now)
        limits = self._market_limits(market)
        windows = [(self._order_window(market, account, name, interval), getattr(limits, name), interval, suffix)
                   for name, interval, suffix in _ORDER_WINDOWS[market]]
        for window, limit, interval, _ in windows:
            if limit and window.value(now) + 1 > limit:
                self._violated((market, ip), now)
                raise LimitError(-1015, f"Too many new orders; current limit is {limit} orders per "
                                      f"{_WINDOW_NAMES[interval]}.", 429, retry_after=window.retry_after(now),
                                 used_weight=used)
        headers = {}
        for window, _, _, suffix in windows:
            window.count = window.value(now) + 1
            headers[f"X-MBX-ORDER-COUNT-{suffix}"] = str(window.count)
        return headers
