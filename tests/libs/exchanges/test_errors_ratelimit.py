"""ccxt exception translation, YAML registry, and the weighted token bucket."""
from __future__ import annotations

import asyncio

import ccxt
import pytest

from tradebus.exchanges import TokenBucket, adapter_keys, is_ambiguous, load_config, reject_code
from tradebus.proto import OrderState, OrderType, RejectCode


@pytest.mark.parametrize("exc,code", [
    (ccxt.InsufficientFunds("x"), RejectCode.INSUFFICIENT_FUNDS),
    (ccxt.InvalidOrder("x"), RejectCode.INVALID_ORDER),
    (ccxt.BadSymbol("x"), RejectCode.INVALID_ORDER),
    (ccxt.OrderNotFound("x"), RejectCode.ORDER_NOT_FOUND),
    (ccxt.RateLimitExceeded("x"), RejectCode.RATE_LIMITED),
    (ccxt.DDoSProtection("x"), RejectCode.RATE_LIMITED),
    (ccxt.AuthenticationError("x"), RejectCode.AUTH_FAILED),
    (ccxt.PermissionDenied("x"), RejectCode.AUTH_FAILED),
    (ccxt.ExchangeNotAvailable("x"), RejectCode.EXCHANGE_UNAVAILABLE),
    (ccxt.OnMaintenance("x"), RejectCode.EXCHANGE_UNAVAILABLE),
    (ccxt.RequestTimeout("x"), RejectCode.NETWORK_ERROR),
    (ccxt.NetworkError("x"), RejectCode.NETWORK_ERROR),
    (ccxt.ExchangeError("x"), RejectCode.UNKNOWN),
    (RuntimeError("x"), RejectCode.UNKNOWN),
])
def test_reject_codes(exc, code):
    assert reject_code(exc) is code


def test_ambiguity():
    assert is_ambiguous(ccxt.RequestTimeout("t")) and is_ambiguous(ccxt.ExchangeNotAvailable("503"))
    assert not is_ambiguous(ccxt.RateLimitExceeded("429")) and not is_ambiguous(ccxt.InvalidOrder("bad"))


def test_registry_has_the_four_venues():
    assert {"binance:spot", "binance:usdm", "okx:swap", "bybit:linear"} <= set(adapter_keys())
    usdm = load_config("binance:usdm")
    assert usdm.ccxt_id == "binanceusdm" and OrderType.TRAILING_STOP_PERCENT in usdm.capabilities.order_types
    assert usdm.status_map["canceled"] is OrderState.CANCELLED
    assert load_config("okx:swap").extra_params == {"tdMode": "cross"}
    with pytest.raises(ValueError, match="unknown venue adapter"):
        load_config("nowhere:spot")


async def test_token_bucket_waits_and_reports_thresholds():
    now = [0.0]
    reports = []
    bucket = TokenBucket(10, 1000, lambda used, limit, pct, w: reports.append(round(pct)), clock=lambda: now[0])
    for _ in range(5):
        await bucket.acquire(1)
    assert reports == [50]
    await bucket.acquire(4)
    assert reports == [50, 90]
    await bucket.acquire(1)
    assert reports == [50, 90, 100]
    waiter = asyncio.ensure_future(bucket.acquire(2))
    await asyncio.sleep(0.01)
    assert not waiter.done() and bucket.waits >= 1  # over budget: it waits instead of sending
    now[0] += 0.2  # 2 units refilled
    await asyncio.wait_for(waiter, 5)
    assert bucket.used == pytest.approx(10)
