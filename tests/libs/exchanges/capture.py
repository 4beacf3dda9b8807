"""Genuine ccxt instances with static markets whose outgoing requests are captured after signing."""
from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from tradebus.exchanges import make_adapter


class Captured(Exception):
    """Raised by the overridden ``fetch``: the request went no further than the wire."""


def _market(symbol, id_, type_, base, quote, settle=None, tick=0.1, lot=0.001, min_amount=0.001, min_cost=5.0,
            contract_size=None):
    contract = type_ != "spot"
    return {
        "id": id_, "symbol": symbol, "base": base, "quote": quote, "settle": settle,
        "baseId": base, "quoteId": quote, "settleId": settle, "type": type_,
        "spot": type_ == "spot", "margin": False, "swap": type_ == "swap", "future": False, "option": False,
        "active": True, "contract": contract, "linear": True if contract else None,
        "inverse": False if contract else None, "contractSize": contract_size if contract else None,
        "expiry": None, "expiryDatetime": None, "strike": None, "optionType": None,
        "precision": {"amount": lot, "price": tick}, "taker": 0.001, "maker": 0.001,
        "limits": {"amount": {"min": min_amount, "max": 1000.0}, "price": {"min": tick, "max": None},
                   "cost": {"min": min_cost, "max": None}, "leverage": {"min": None, "max": None}},
        "info": {}, "created": None,
    }


SPOT_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
USDM_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]


def _binance(market, order_types):
    return {**market, "info": {"symbol": market["id"], "orderTypes": order_types}}


MARKETS = {
    "binance:spot": [_binance(_market("BTC/USDT", "BTCUSDT", "spot", "BTC", "USDT", tick=0.01, lot=0.00001,
                                      min_amount=0.00001), SPOT_TYPES)],
    "binance:usdm": [_binance(_market("BTC/USDT:USDT", "BTCUSDT", "swap", "BTC", "USDT", "USDT"), USDM_TYPES)],
    "okx:swap": [_market("BTC/USDT:USDT", "BTC-USDT-SWAP", "swap", "BTC", "USDT", "USDT", lot=0.01,
                         min_amount=0.01, contract_size=0.01)],
    "bybit:linear": [_market("BTC/USDT:USDT", "BTCUSDT", "swap", "BTC", "USDT", "USDT")],
}


def capturing_adapter(key: str):
    """(adapter, requests): a real ccxt instance of ``key`` that records instead of sending."""
    adapter = make_adapter(key, **{"apiKey": "k" * 24, "secret": "s" * 32, "password": "p",
                                   "enableRateLimit": False, "pro": False, "sandbox": False})
    ex = adapter.exchange
    ex.set_markets(MARKETS[key])
    ex.options["adjustForTimeDifference"] = False
    requests = []

    async def fetch(url, method="GET", headers=None, body=None):
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        if body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = dict(parse_qsl(body))
            params.update(decoded[0] if isinstance(decoded, list) else decoded)
        params.pop("signature", None)
        params.pop("timestamp", None)
        requests.append((method, parts.path, params))
        raise Captured(f"{method} {parts.path}")

    ex.fetch = fetch
    return adapter, requests
