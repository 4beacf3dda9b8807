"""The router's adapters named in either spelling (settings or ``--adapters``) are one canonical key inside."""
from __future__ import annotations

from tradebus.services.order_router.__main__ import RouterSettings, build_adapters


async def test_settings_take_bt_api_py_names():
    settings = RouterSettings(adapters=("BINANCE___SPOT", "BINANCE___SWAP"))
    adapters = build_adapters(settings, "sim", False, "http://127.0.0.1:9")
    try:
        assert [a.config.key for a in adapters] == ["binance:spot", "binance:usdm"]
        assert [a.exchange.id for a in adapters] == ["binance", "binanceusdm"]
    finally:
        for a in adapters:
            await a.exchange.close()


async def test_adapters_argument_overrides_the_settings():
    adapters = build_adapters(RouterSettings(), "sim", False, "http://127.0.0.1:9", ("OKX___SWAP", "bybit:linear"))
    try:
        assert [a.config.key for a in adapters] == ["okx:swap", "bybit:linear"]
    finally:
        for a in adapters:
            await a.exchange.close()
