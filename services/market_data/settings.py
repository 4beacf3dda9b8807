"""market_data settings: ``services.market_data.settings`` of the deployment file."""
from __future__ import annotations

from typing import Literal

import msgspec

from tradebus.config import BackoffSettings, Settings

STREAMS = ("trades", "book", "bbo", "bars", "funding")


class VenueSettings(Settings):
    """One ccxt.pro venue. ``name`` is the subject token; ``exchange`` the ccxt.pro class."""

    name: str
    exchange: str = "binance"
    sim_url: str | None = None  # point the ccxt instance at a sim_exchange (e.g. http://127.0.0.1:8765)
    options: dict[str, object] = {}  # extra ccxt constructor config
    symbols: list[str] = []
    streams: list[str] = msgspec.field(default_factory=lambda: ["trades", "book", "bbo", "bars"])
    book_depth: int = 20
    bar_interval: str = "1m"
    funding_interval: float = 60.0  # seconds between fetch_funding_rate calls (perpetuals only)
    max_batch: int = 1000  # trades per TradeBatch
    # trades, book, BBO and bars of all symbols through the venue's multi-symbol watch (one connection per
    # stream and market type: watch_trades/order_book/ohlcv_for_symbols, watch_bids_asks) where ccxt has it
    for_symbols: bool = True
    # Binance trade/aggTrade frames normalised straight to Trade/TradeBatch (ccxt.pro still runs the
    # connection); only where such a normaliser exists (binance, binanceusdm), else ccxt's parse
    fast_trades: bool = True

    def __post_init__(self) -> None:
        bad = [s for s in self.streams if s not in STREAMS]
        if bad:
            raise ValueError(f"unknown streams {bad}; known: {list(STREAMS)}")
        if self.book_depth < 1:
            raise ValueError("book_depth must be >= 1")


class RecordSettings(Settings):
    """Record every published md event: rotating Parquet files or a JetStream stream."""

    enabled: bool = False
    format: Literal["parquet", "jetstream"] = "parquet"
    path: str = "recordings"
    rotate_rows: int = 100_000
    rotate_seconds: float = 300.0
    retention_hours: float = 0.0  # 0: keep everything
    stream: str = "MD_RECORD"


class ReplaySettings(Settings):
    """Replay mode: publish files instead of (or besides) live venues."""

    files: list[str] = []  # Binance CSVs and/or recording folders / parquet files
    venue: str = "binance"
    symbol: str = "BTC/USDT"
    speed: float = 0.0  # 0: as fast as possible; 1: real time; N: N times faster
    book_depth: int = 20


class MarketDataSettings(Settings):
    venues: list[VenueSettings] = []
    backoff: BackoffSettings = BackoffSettings()
    record: RecordSettings = RecordSettings()
    replay: ReplaySettings | None = None
