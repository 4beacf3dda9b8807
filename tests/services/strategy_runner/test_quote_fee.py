"""Fill fees reach the strategy's cash in the quote currency, whatever currency the venue charged."""
from __future__ import annotations

import pytest

from tradebus.proto import Fill
from tradebus.services.strategy_runner.host import quote_fee


def fill(symbol: str, fee: float, currency: str, price: float = 50_000.0) -> Fill:
    return Fill(venue="binance", strategy="s", symbol=symbol, client_order_id="c", exchange_order_id="1",
                trade_id="1", side="buy", price=price, qty=0.01, leaves_qty=0.0, cum_qty=0.01, fee=fee,
                fee_currency=currency, ts_init=1)


def test_quote_fee_values_base_asset_fees_at_the_fill_price():
    assert quote_fee(fill("BTC/USDT", 0.00001, "BTC")) == pytest.approx(0.5)  # Binance spot buy
    assert quote_fee(fill("BTC/USDT", 0.5, "USDT")) == pytest.approx(0.5)
    assert quote_fee(fill("BTC/USDT:USDT", 0.25, "USDT")) == pytest.approx(0.25)
    assert quote_fee(fill("BTC/USDT", -0.1, "USDT")) == pytest.approx(-0.1)  # rebate
    assert quote_fee(fill("BTC/USDT", 0.001, "BNB")) == 0.0  # no price for it here
    assert quote_fee(fill("BTC/USDT", 0.0, "")) == 0.0
