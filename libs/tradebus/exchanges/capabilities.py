"""Market-data capabilities: can this venue stream this subscription? Asked once, where market_data
accepts a subscription, so an unsupported one is refused with a reason instead of failing inside
ccxt (Bybit's book stream takes depths 1/50/200/500 only; spot has no funding; ...)."""
from __future__ import annotations

from .venue_config import VenueConfig, adapter_keys, load_config

__all__ = ["UnsupportedSubscription", "check_subscription", "feed_config", "market_type_of"]

# the ccxt ``has`` entry (any of them) a stream needs
_WATCH = {"trades": ("watchTrades",), "book": ("watchOrderBook",), "bbo": ("watchBidsAsks", "watchTicker"),
          "bars": ("watchOHLCV",), "funding": ("fetchFundingRate",)}


class UnsupportedSubscription(ValueError):
    """The venue cannot stream what was asked; the message says what it can."""


def market_type_of(exchange, symbol: str) -> str:
    """``spot`` or the derivative type of ``symbol`` (from loaded markets, else its ``:settle`` form)."""
    market = (exchange.markets or {}).get(symbol) if getattr(exchange, "markets", None) else None
    if market is not None:
        return market.get("type") or "spot"
    return "swap" if ":" in symbol else "spot"


def feed_config(exchange_id: str, symbol_market_type: str) -> VenueConfig | None:
    """The venue YAML for a ccxt exchange id and a market type, if one is configured."""
    spot = symbol_market_type == "spot"
    for key in adapter_keys():
        config = load_config(key)
        if exchange_id in (config.ccxt_id, config.exchange) and (config.market_type == "spot") == spot:
            return config
    return None


def check_subscription(exchange, symbol: str, streams: list[str], book_depth: int, bar_interval: str) -> list[str]:
    """The streams of ``streams`` to run for ``symbol``, or :class:`UnsupportedSubscription` when
    ``exchange`` (a ccxt.pro instance) cannot stream one of them: the venue YAML's declared feed
    capabilities where the venue is configured, and ccxt's ``has`` / ``timeframes`` in every case.
    Funding does not apply to a spot market: it is left out, not refused (a venue's stream list
    covers its spot and perpetual symbols alike)."""
    kind = market_type_of(exchange, symbol)
    config = feed_config(exchange.id, kind)
    where = f"{config.key} ({exchange.id})" if config else exchange.id
    has = exchange.has or {}
    run = []
    for stream in streams:
        needs = _WATCH.get(stream)
        if needs is None:
            raise UnsupportedSubscription(f"unknown stream {stream!r}; known: {', '.join(_WATCH)}")
        if not any(has.get(name) for name in needs):
            raise UnsupportedSubscription(f"{where} cannot stream {stream} of {symbol}: ccxt has no "
                                          f"{' / '.join(needs)} for it")
        if stream == "bars" and bar_interval not in (exchange.timeframes or {}):
            raise UnsupportedSubscription(f"{where} has no {bar_interval!r} bars; ccxt knows "
                                          f"{', '.join(exchange.timeframes or {})}")
        if stream == "funding" and kind == "spot":
            continue
        if config is not None:
            _check_declared(config, stream, symbol, book_depth, bar_interval)
        run.append(stream)
    return run


def _check_declared(config: VenueConfig, stream: str, symbol: str, book_depth: int, bar_interval: str) -> None:
    feed = config.capabilities.market_data
    if stream == "book":
        if not feed.book_depths:
            raise UnsupportedSubscription(f"{config.key} declares no book stream ({symbol})")
        if book_depth > max(feed.book_depths):
            raise UnsupportedSubscription(f"{config.key} streams books up to {max(feed.book_depths)} levels "
                                          f"(depths {list(feed.book_depths)}); {book_depth} asked for {symbol}")
        return
    if stream == "bars":
        if not feed.bars:
            raise UnsupportedSubscription(f"{config.key} declares no bar stream ({symbol})")
        if config.kline_periods and bar_interval not in config.kline_periods:
            raise UnsupportedSubscription(f"{config.key} has no {bar_interval!r} bars; kline_periods: "
                                          f"{', '.join(config.kline_periods)}")
        return
    if not getattr(feed, stream):
        raise UnsupportedSubscription(f"{config.key} declares no {stream} stream ({symbol})")
