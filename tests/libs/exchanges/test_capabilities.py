"""Market-data capabilities: a subscription the venue cannot stream is refused with what it can."""
from __future__ import annotations

import ccxt.pro as ccxtpro
import pytest

from tradebus.exchanges import UnsupportedSubscription, check_subscription, load_config


@pytest.fixture
async def pro():
    made = []

    def make(exchange_id):
        made.append(getattr(ccxtpro, exchange_id)())
        return made[-1]
    yield make
    for ex in made:
        await ex.close()


async def test_supported_streams_pass_and_funding_is_left_out_for_spot(pro):
    ex = pro("binance")
    streams = ["trades", "book", "bbo", "bars", "funding"]
    assert check_subscription(ex, "BTC/USDT:USDT", streams, 20, "1m") == streams
    assert check_subscription(ex, "BTC/USDT", streams, 20, "1m") == ["trades", "book", "bbo", "bars"]


async def test_book_depth_beyond_the_venue_stream_is_refused(pro):
    ex = pro("bybit")
    assert check_subscription(ex, "BTC/USDT:USDT", ["book"], 200, "1m") == ["book"]
    with pytest.raises(UnsupportedSubscription, match=r"bybit:linear streams books up to 500 levels .*1000 asked"):
        check_subscription(ex, "BTC/USDT:USDT", ["book"], 1000, "1m")


async def test_bar_intervals_are_the_declared_kline_periods_and_ccxt_timeframes(pro):
    with pytest.raises(UnsupportedSubscription, match="okx:swap .* no '8h' bars"):
        check_subscription(pro("okx"), "BTC/USDT:USDT", ["bars"], 20, "8h")  # OKX has no 8h candles
    usdm = pro("binanceusdm")
    assert "1s" in usdm.timeframes and "1s" not in load_config("binance:usdm").kline_periods
    with pytest.raises(UnsupportedSubscription, match="binance:usdm has no '1s' bars; kline_periods: 1m, 3m"):
        check_subscription(usdm, "BTC/USDT:USDT", ["bars"], 20, "1s")


async def test_a_venue_without_yaml_is_checked_against_ccxt_only(pro):
    ex = pro("kraken")
    assert check_subscription(ex, "BTC/USD", ["trades", "book"], 5000, "1m") == ["trades", "book"]
    with pytest.raises(UnsupportedSubscription, match="kraken has no '7m' bars"):
        check_subscription(ex, "BTC/USD", ["bars"], 20, "7m")
    ex.has["watchOHLCV"] = False  # as ccxt declares a venue without a candle stream
    with pytest.raises(UnsupportedSubscription, match="kraken cannot stream bars of BTC/USD: ccxt has no watchOHLCV"):
        check_subscription(ex, "BTC/USD", ["bars"], 20, "1m")


async def test_declared_streams_off_are_refused(pro):
    ex = pro("binance")
    config = load_config("binance:spot")
    assert config.capabilities.market_data.funding is False and config.capabilities.market_data.bbo
    with pytest.raises(UnsupportedSubscription, match="unknown stream 'ticks'"):
        check_subscription(ex, "BTC/USDT", ["ticks"], 20, "1m")
