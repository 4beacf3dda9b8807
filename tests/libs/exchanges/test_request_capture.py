"""Each routing row on binance spot, binance USD-M, okx and bybit: the exact method, path and
parameters genuine ccxt sends (captured after signing; static markets; nothing leaves the process)."""
from __future__ import annotations

import pytest

from tradebus.exchanges import LocalReject
from tradebus.proto import NewOrder, RejectCode

from .capture import Captured, capturing_adapter

ROWS = {
    "market": dict(order_type="market", side="buy", qty=0.5),
    "limit": dict(order_type="limit", side="sell", qty=0.5, price=30000.123),
    "stop_market": dict(order_type="stop_market", side="sell", qty=0.5, trigger_price=29000),
    "stop_limit": dict(order_type="stop_limit", side="sell", qty=0.5, trigger_price=29000, price=28900),
    "take_profit_market": dict(order_type="take_profit_market", side="sell", qty=0.5, trigger_price=31000),
    "take_profit_limit": dict(order_type="take_profit_limit", side="sell", qty=0.5, trigger_price=31000, price=31100),
    "trailing_stop": dict(order_type="trailing_stop", side="sell", qty=0.5, trailing_offset=50),
    "trailing_stop_percent": dict(order_type="trailing_stop_percent", side="sell", qty=0.5, trailing_bps=100,
                                  trigger_price=31000),
    "close_position": dict(order_type="close_position", side="sell", qty=0.5),
}
SYMBOL = {"binance:spot": "BTC/USDT", "binance:usdm": "BTC/USDT:USDT", "okx:swap": "BTC/USDT:USDT",
          "bybit:linear": "BTC/USDT:USDT"}

_BS = {"symbol": "BTCUSDT", "newClientOrderId": "c1", "newOrderRespType": "FULL", "quantity": "0.5"}
_BF = {"symbol": "BTCUSDT", "newClientOrderId": "c1", "newOrderRespType": "RESULT", "quantity": "0.5"}
_BA = {"symbol": "BTCUSDT", "clientAlgoId": "c1", "newOrderRespType": "RESULT", "quantity": "0.5",
       "algoType": "CONDITIONAL"}
_OK = {"instId": "BTC-USDT-SWAP", "side": "sell", "sz": "0.5", "tdMode": "cross", "clOrdId": "c1"}
_BY = {"symbol": "BTCUSDT", "orderLinkId": "c1", "category": "linear", "qty": "0.5"}
UNSUPPORTED = object()

EXPECTED = {
    "binance:spot": {
        "market": ("POST", "/api/v3/order", {**_BS, "side": "BUY", "type": "MARKET"}),
        "limit": ("POST", "/api/v3/order", {**_BS, "side": "SELL", "type": "LIMIT", "price": "30000.12",
                                            "timeInForce": "GTC"}),
        "stop_market": ("POST", "/api/v3/order", {**_BS, "side": "SELL", "type": "STOP_LOSS", "stopPrice": "29000"}),
        "stop_limit": ("POST", "/api/v3/order", {**_BS, "side": "SELL", "type": "STOP_LOSS_LIMIT", "price": "28900",
                                                 "stopPrice": "29000", "timeInForce": "GTC"}),
        "take_profit_market": ("POST", "/api/v3/order", {**_BS, "side": "SELL", "type": "TAKE_PROFIT",
                                                         "stopPrice": "31000"}),
        "take_profit_limit": ("POST", "/api/v3/order", {**_BS, "side": "SELL", "type": "TAKE_PROFIT_LIMIT",
                                                        "price": "31100", "stopPrice": "31000", "timeInForce": "GTC"}),
        "trailing_stop": UNSUPPORTED, "trailing_stop_percent": UNSUPPORTED,
        "close_position": ("POST", "/api/v3/order", {**_BS, "side": "SELL", "type": "MARKET"}),
    },
    "binance:usdm": {
        "market": ("POST", "/fapi/v1/order", {**_BF, "side": "BUY", "type": "MARKET"}),
        "limit": ("POST", "/fapi/v1/order", {**_BF, "side": "SELL", "type": "LIMIT", "price": "30000.1",
                                             "timeInForce": "GTC"}),
        "stop_market": ("POST", "/fapi/v1/algoOrder", {**_BA, "side": "SELL", "type": "STOP_MARKET",
                                                       "triggerPrice": "29000"}),
        "stop_limit": ("POST", "/fapi/v1/algoOrder", {**_BA, "side": "SELL", "type": "STOP", "price": "28900",
                                                      "triggerPrice": "29000"}),
        "take_profit_market": ("POST", "/fapi/v1/algoOrder", {**_BA, "side": "SELL", "type": "TAKE_PROFIT_MARKET",
                                                              "triggerPrice": "31000"}),
        "take_profit_limit": ("POST", "/fapi/v1/algoOrder", {**_BA, "side": "SELL", "type": "TAKE_PROFIT",
                                                             "price": "31100", "triggerPrice": "31000"}),
        "trailing_stop": UNSUPPORTED,
        "trailing_stop_percent": ("POST", "/fapi/v1/algoOrder", {**_BA, "side": "SELL", "type": "TRAILING_STOP_MARKET",
                                                                 "callbackRate": "1.0", "activatePrice": "31000"}),
        "close_position": ("POST", "/fapi/v1/order", {**_BF, "side": "SELL", "type": "MARKET", "reduceOnly": "true"}),
    },
    "okx:swap": {
        "market": ("POST", "/api/v5/trade/batch-orders", {**_OK, "side": "buy", "ordType": "market"}),
        "limit": ("POST", "/api/v5/trade/batch-orders", {**_OK, "ordType": "limit", "px": "30000.1"}),
        "stop_market": ("POST", "/api/v5/trade/order-algo", {**_OK, "ordType": "trigger", "triggerPx": "29000",
                                                             "orderPx": "-1"}),
        "stop_limit": ("POST", "/api/v5/trade/order-algo", {**_OK, "ordType": "trigger", "triggerPx": "29000",
                                                            "orderPx": "28900"}),
        "take_profit_market": ("POST", "/api/v5/trade/order-algo", {**_OK, "ordType": "trigger", "triggerPx": "31000",
                                                                    "orderPx": "-1"}),
        "take_profit_limit": ("POST", "/api/v5/trade/order-algo", {**_OK, "ordType": "trigger", "triggerPx": "31000",
                                                                   "orderPx": "31100"}),
        "trailing_stop": UNSUPPORTED,
        "trailing_stop_percent": ("POST", "/api/v5/trade/order-algo", {**_OK, "ordType": "move_order_stop",
                                                                       "callbackRatio": "0.01", "activePx": 31000.0}),
        "close_position": ("POST", "/api/v5/trade/batch-orders", {**_OK, "ordType": "market", "reduceOnly": True}),
    },
    "bybit:linear": {
        "market": ("POST", "/v5/order/create", {**_BY, "side": "Buy", "orderType": "Market"}),
        "limit": ("POST", "/v5/order/create", {**_BY, "side": "Sell", "orderType": "Limit", "price": "30000.1"}),
        "stop_market": ("POST", "/v5/order/create", {**_BY, "side": "Sell", "orderType": "Market", "triggerPrice": "29000",
                                                     "triggerDirection": 2, "triggerBy": "LastPrice"}),
        "stop_limit": ("POST", "/v5/order/create", {**_BY, "side": "Sell", "orderType": "Limit", "price": "28900",
                                                    "triggerPrice": "29000", "triggerDirection": 2,
                                                    "triggerBy": "LastPrice"}),
        "take_profit_market": ("POST", "/v5/order/create", {**_BY, "side": "Sell", "orderType": "Market",
                                                            "triggerPrice": "31000", "triggerDirection": 1,
                                                            "triggerBy": "LastPrice"}),
        "take_profit_limit": ("POST", "/v5/order/create", {**_BY, "side": "Sell", "orderType": "Limit", "price": "31100",
                                                           "triggerPrice": "31000", "triggerDirection": 1,
                                                           "triggerBy": "LastPrice"}),
        "trailing_stop": ("POST", "/v5/position/trading-stop", {"symbol": "BTCUSDT", "category": "linear",
                                                                "trailingStop": "50"}),
        "trailing_stop_percent": UNSUPPORTED,
        "close_position": ("POST", "/v5/order/create", {**_BY, "side": "Sell", "orderType": "Market", "reduceOnly": True}),
    },
}


@pytest.mark.parametrize("key,row", [(k, r) for k in EXPECTED for r in ROWS])
async def test_order_rows(key, row):
    adapter, requests = capturing_adapter(key)
    order = NewOrder(client_order_id="c1", strategy="s", venue="v", symbol=SYMBOL[key], ts_init=1, **ROWS[row])
    try:
        if EXPECTED[key][row] is UNSUPPORTED:
            with pytest.raises(LocalReject) as raised:
                await adapter.place(order)
            assert raised.value.code is RejectCode.UNSUPPORTED and not requests
            return
        with pytest.raises(Captured):
            await adapter.place(order)
        method, path, params = requests[-1]
        params.pop("recvWindow", None)
        assert (method, path, params) == EXPECTED[key][row]
    finally:
        await adapter.exchange.close()


CANCEL = {
    "binance:spot": [("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": "123"}),
                     ("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"}), None],
    "binance:usdm": [("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": "123"}),
                     ("DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"}),
                     ("PUT", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "orderId": "123",
                                                "quantity": "0.6", "price": "30001"})],
    "okx:swap": [("POST", "/api/v5/trade/cancel-order", {"instId": "BTC-USDT-SWAP", "ordId": "123"}),
                 ("POST", "/api/v5/trade/cancel-order", {"instId": "BTC-USDT-SWAP", "ordId": "123"}),  # one per order
                 ("POST", "/api/v5/trade/amend-order", {"instId": "BTC-USDT-SWAP", "ordId": "123", "newSz": "0.6",
                                                        "newPx": "30001"})],
    "bybit:linear": [("POST", "/v5/order/cancel", {"symbol": "BTCUSDT", "orderId": "123", "category": "linear"}),
                     ("POST", "/v5/order/cancel-all", {"symbol": "BTCUSDT", "category": "linear"}),
                     ("POST", "/v5/order/amend", {"symbol": "BTCUSDT", "orderId": "123", "category": "linear",
                                                  "qty": "0.6", "price": "30001"})],
}


@pytest.mark.parametrize("key", list(CANCEL))
async def test_cancel_cancel_all_modify(key):
    adapter, requests = capturing_adapter(key)
    sym = SYMBOL[key]
    cancel, cancel_all, modify = CANCEL[key]
    try:
        for expected, call in ((cancel, lambda: adapter.cancel(sym, "123", "c1")),
                               (cancel_all, lambda: adapter.cancel_all(sym, [("123", "c1", None)]))):
            with pytest.raises(Captured):
                await call()
            method, path, params = requests[-1]
            params.pop("recvWindow", None)
            assert (method, path, params) == expected
        if modify is None:
            with pytest.raises(LocalReject):
                await adapter.modify(sym, "123", "buy", 0.6, 30001)
        else:
            with pytest.raises(Captured):
                await adapter.modify(sym, "123", "buy", 0.6, 30001)
            method, path, params = requests[-1]
            params.pop("recvWindow", None)
            assert (method, path, params) == modify
    finally:
        await adapter.exchange.close()


async def test_amount_below_minimum_is_rejected_locally():
    adapter, requests = capturing_adapter("okx:swap")
    try:
        order = NewOrder(client_order_id="c1", strategy="s", venue="v", symbol="BTC/USDT:USDT", side="buy",
                         order_type="market", qty=0.001, ts_init=1)
        with pytest.raises(LocalReject) as raised:
            await adapter.place(order)
        assert raised.value.code is RejectCode.INVALID_ORDER and not requests
    finally:
        await adapter.exchange.close()
