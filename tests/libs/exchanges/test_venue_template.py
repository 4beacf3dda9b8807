"""The venue template: every configured venue (``adapter_keys()``) runs these.

- its YAML loads with no unknown field and its bt_api_py fields hold together (asset type and
  market type, kline periods as ccxt knows them, legal currencies, status words);
- its registry entry exists under both spellings (``binance:spot`` and ``BINANCE___SPOT``);
- every routing row it claims produces the exact method, path and parameters genuine ccxt sends
  (captured after signing by overriding the exchange's ``fetch``; static markets; nothing leaves
  the process), and every row it does not claim is refused locally;
- every venue error code it maps produces its reject code, through ccxt's own error handling.

A new venue adds its expected requests to EXPECTED / CANCEL, its markets to capture.MARKETS and
its error body to ERROR_BODY; until it does, its template test fails and says so.
"""
from __future__ import annotations

import json

import msgspec
import pytest
import yaml

from tradebus.exchanges import LocalReject, VenueConfig, adapter_keys, bt_api_key, canonical_key, load_config, make_adapter
from tradebus.exchanges.adapter import _CLASSES
from tradebus.exchanges.venue_config import ASSET_TYPES, _registry
from tradebus.proto import NewOrder, RejectCode

from .capture import MARKETS, Captured, capturing_adapter

VENUES = adapter_keys()

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


def test_the_four_venues_run_the_template():
    assert {"binance:spot", "binance:usdm", "okx:swap", "bybit:linear"} <= set(VENUES)


@pytest.mark.parametrize("key", VENUES)
def test_yaml_loads_strictly_and_holds_together(key):
    raw = yaml.safe_load(_registry()[0][key].read_text())
    assert set(raw) <= set(VenueConfig.__struct_fields__)
    config = msgspec.convert(raw, VenueConfig)  # forbid_unknown_fields: a typo anywhere fails here
    assert config == load_config(key) and config.display_name and config.legal_currency
    assert ASSET_TYPES[config.asset_type] == config.market_type, "asset type and ccxt market type disagree"
    ex = make_adapter(key, pro=False, sandbox=False).exchange
    assert {k: str(ex.timeframes.get(k)) for k in config.kline_periods} == config.kline_periods, \
        "kline_periods must be the venue's own interval names, as ccxt sends them"
    assert set(config.capabilities.market_data.book_depths) and config.rate_limits
    assert config.status_dict and config.error_codes


@pytest.mark.parametrize("key", VENUES)
def test_registry_under_both_spellings(key):
    bt = bt_api_key(key)
    assert "___" in bt and bt == bt.upper()
    for name in (key, key.upper(), bt, bt.lower(), f"{key.split(':')[0]}___{key.split(':')[1]}".upper()):
        assert canonical_key(name) == key
        assert load_config(name).key == key
    adapter = make_adapter(bt, pro=False, sandbox=False)
    assert adapter.config.key == key and type(adapter) is _CLASSES.get(key, type(adapter))


def test_unknown_venue_names_the_known_ones():
    with pytest.raises(ValueError, match="BINANCE___SPOT"):
        canonical_key("NOWHERE___SPOT")


@pytest.mark.parametrize("key", VENUES)
def test_claimed_rows_have_expectations(key):
    assert key in EXPECTED and key in CANCEL and key in MARKETS, f"add {key}'s expected requests to the template"
    claimed = {t.value for t in load_config(key).capabilities.order_types}
    assert claimed == {row for row, want in EXPECTED[key].items() if want is not UNSUPPORTED}


@pytest.mark.parametrize("key,row", [(k, r) for k in VENUES for r in ROWS])
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


@pytest.mark.parametrize("key", VENUES)
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


# the venue's error answer for ``code``, as its API sends it: (HTTP status, body)
ERROR_BODY = {
    "binance": lambda code: (429 if code in ("-1003", "-1015") else 400, {"code": int(code), "msg": "refused"}),
    "binanceusdm": lambda code: (429 if code in ("-1003", "-1015") else 400, {"code": int(code), "msg": "refused"}),
    "okx": lambda code: (200, {"code": "1", "msg": "", "data": [{"sCode": code, "sMsg": "refused"}]}),
    "bybit": lambda code: (200, {"retCode": int(code), "retMsg": "refused", "result": {}, "retExtInfo": {},
                                 "time": 1}),
}

# ccxt picks some error maps by URL (Binance: per market type)
ORDER_URL = {"binance": "https://api.binance.com/api/v3/order", "binanceusdm": "https://fapi.binance.com/fapi/v1/order",
             "okx": "https://www.okx.com/api/v5/trade/order", "bybit": "https://api.bybit.com/v5/order/create"}


def venue_error(adapter, code: str) -> Exception:
    """What ccxt raises when the venue answers ``code`` to an order (its own handle_errors and
    handle_http_status_code, in the order its ``fetch`` calls them)."""
    ex = adapter.exchange
    status, body = ERROR_BODY[ex.id](code)
    text = json.dumps(body)
    url = ORDER_URL[ex.id]
    try:
        ex.handle_errors(status, "reason", url, "POST", {}, text, body, {}, "")
        ex.handle_http_status_code(status, "reason", url, "POST", text)
    except Exception as exc:  # noqa: BLE001 - the test looks at whatever ccxt raised
        return exc
    raise AssertionError(f"ccxt raised nothing for {ex.id} error {code}")


@pytest.mark.parametrize("key", VENUES)
async def test_mapped_error_codes_give_their_reject_codes(key):
    adapter, _ = capturing_adapter(key)
    try:
        assert adapter.exchange.id in ERROR_BODY, f"add {adapter.exchange.id}'s error body to the template"
        for code, expected in load_config(key).error_codes.items():
            exc = venue_error(adapter, code)
            assert adapter.venue_error_code(exc) == code, f"{key}: code {code} not found in {exc!r}"
            assert adapter.reject_code(exc) is expected, f"{key}: {code} -> {adapter.reject_code(exc)}"
    finally:
        await adapter.exchange.close()


async def test_an_unmapped_code_falls_back_to_the_ccxt_exception_class():
    adapter, _ = capturing_adapter("binance:spot")
    try:
        exc = venue_error(adapter, "-1100")  # illegal characters: ccxt's BadRequest
        assert "-1100" not in load_config("binance:spot").error_codes
        assert adapter.reject_code(exc) is RejectCode.INVALID_ORDER
        assert adapter.reject_code(LocalReject(RejectCode.RISK_LIMIT, "x")) is RejectCode.RISK_LIMIT
    finally:
        await adapter.exchange.close()


@pytest.mark.parametrize("key", ["binance:spot", "binance:usdm"])
async def test_execution_status_unknown_codes_are_ambiguous(key):
    """Binance's -1001/-1006/-1007 mean the order may exist: ccxt raises them as plain errors
    (-1001 as OperationFailed), so only the YAML's ambiguous_codes make the router look the
    order up instead of rejecting one the venue may have executed."""
    adapter, _ = capturing_adapter(key)
    try:
        for code in ("-1001", "-1006", "-1007"):
            exc = venue_error(adapter, code)
            assert adapter.is_ambiguous(exc), f"{key}: {code} ({exc!r}) not ambiguous"
        assert not adapter.is_ambiguous(venue_error(adapter, "-2010"))  # insufficient balance: definite
        assert not adapter.is_ambiguous(LocalReject(RejectCode.RISK_LIMIT, "x"))
    finally:
        await adapter.exchange.close()
