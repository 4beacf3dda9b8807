"""Venue YAML (``venues/<name>.yaml``, one per venue and market type) and the registry of keys.

A venue is named ``binance:spot`` (canonical, used inside tradebus) or, as bt_api_py users write
it, ``BINANCE___SPOT``: ``<exchange>___<asset type>``. :func:`canonical_key` turns either
spelling into the canonical one; every public function here takes both.

ccxt owns URLs, paths and signing, so bt_api_py's ``base_urls``, ``rest_paths``, ``wss_paths``,
``connection`` and ``authentication`` have no field here (see docs/adding-a-venue.md).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import msgspec
import yaml

from tradebus.config import Settings
from tradebus.proto import OrderState, OrderType, RejectCode

from .ratelimit import RateLimitRule, RateLimitType

__all__ = ["VENUES_DIR", "VenueConfig", "Fees", "Capabilities", "FeedCapabilities", "OrderRow", "LegacyRateLimit",
           "load_config", "adapter_keys", "canonical_key", "bt_api_key", "asset_types", "VENUE_TYPES", "ASSET_TYPES",
           "ENDPOINTS"]

VENUES_DIR = Path(__file__).with_name("venues")
ORDER_ENTRY = ("rest", "ws")
VENUE_TYPES = ("cex", "dex", "broker")
# bt_api_py's asset types -> the ccxt market type they trade
ASSET_TYPES = {"spot": "spot", "margin": "spot", "swap": "swap", "futures": "future", "coin_m": "swap",
               "option": "option"}
BT_API_SEPARATOR = "___"
# the endpoint names rate-limit rules weigh: the ccxt methods the router and the broker call
ENDPOINTS = frozenset({"create_order", "cancel_order", "cancel_all_orders", "edit_order", "fetch_order",
                       "fetch_open_orders", "fetch_my_trades", "fetch_balance", "fetch_positions", "fetch_ticker",
                       "load_markets", "fetch_order_book", "fetch_ohlcv", "fetch_funding_rate"})


class FeedCapabilities(Settings, frozen=True):
    """What the venue streams to market_data; bar intervals are the keys of ``kline_periods``."""

    trades: bool = True
    book_depths: tuple[int, ...] = (5, 10, 20)  # depths of the venue's book stream (a subscription may ask up to the largest)
    bbo: bool = True
    bars: bool = True
    funding: bool = False


class Capabilities(Settings, frozen=True):
    order_types: tuple[OrderType, ...] = (OrderType.MARKET, OrderType.LIMIT)
    modify: bool = False
    cancel_all: bool = False
    positions: bool = False
    funding: bool = False
    watch_orders: bool = True
    watch_my_trades: bool = False
    market_data: FeedCapabilities = FeedCapabilities()


class Fees(Settings, frozen=True):
    """The venue's regular (lowest-tier, no discount) trading fees, basis points of notional.

    What a backtest charges when it is not told otherwise: a study on this venue's data defaults
    to ``taker_bps`` (market orders take liquidity).
    """

    maker_bps: float = 0.0
    taker_bps: float = 0.0


class LegacyRateLimit(Settings, frozen=True):
    """The single weighted bucket of earlier configurations (``rate_limit: {limit, window_ms}``)."""

    limit: float = 1200
    window_ms: int = 60000


class OrderRow(Settings, frozen=True):
    type: str
    params: dict[str, Any] = {}


class VenueConfig(Settings, frozen=True):
    """One venue + market type (``binance:usdm``), decoded from ``venues/<name>.yaml``."""

    key: str
    ccxt_id: str
    display_name: str = ""
    venue_type: str = "cex"
    asset_type: str = "spot"  # bt_api_py's asset type: the registry also knows the venue as <EXCHANGE>___<ASSET_TYPE>
    market_type: str = "spot"  # the ccxt market type of its symbols
    options: dict[str, Any] = {}
    sandbox: bool = True
    capabilities: Capabilities = Capabilities()
    fees: Fees = Fees()
    rate_limits: tuple[RateLimitRule, ...] = ()
    rate_limit: LegacyRateLimit = LegacyRateLimit()  # used only when ``rate_limits`` is empty
    weights: dict[str, float] = {}  # legacy per-method weights of ``rate_limit``
    kline_periods: dict[str, str] = {}  # our bar interval -> the venue's (ccxt's ``timeframes`` agree)
    legal_currency: tuple[str, ...] = ()  # quote / settle currencies of the markets this configuration trades
    extra_params: dict[str, Any] = {}
    status_map: dict[str, OrderState] = {}  # ccxt's unified order status -> ours
    status_dict: dict[str, OrderState] = {}  # the venue's own order status -> ours (checked first)
    error_codes: dict[str, RejectCode] = {}  # the venue's error code -> ours (before ccxt's exception class)
    # the venue's codes for "execution status unknown": the order may exist, look it up, never reject
    ambiguous_codes: tuple[str, ...] = ()
    orders: dict[str, OrderRow] = {}
    order_entry: str = "rest"
    ignored_user_events: tuple[str, ...] = ()  # user-stream event types a router does not read

    def __post_init__(self) -> None:
        if self.order_entry not in ORDER_ENTRY:
            raise ValueError(f"order_entry must be one of {', '.join(ORDER_ENTRY)}, not {self.order_entry!r}")
        if self.venue_type not in VENUE_TYPES:
            raise ValueError(f"{self.key}: venue_type must be one of {', '.join(VENUE_TYPES)}, not {self.venue_type!r}")
        if self.asset_type not in ASSET_TYPES:
            raise ValueError(f"{self.key}: asset_type must be one of {', '.join(ASSET_TYPES)}, not {self.asset_type!r}")
        if ":" not in self.key or BT_API_SEPARATOR in self.key or self.key != self.key.lower():
            raise ValueError(f"venue key {self.key!r} must be lower-case <exchange>:<market>, e.g. binance:spot")
        for rule in self.rate_limits:
            unknown = sorted(set(rule.weight_map) - ENDPOINTS)
            if unknown:
                raise ValueError(f"{self.key}: rate-limit rule {rule.name!r} weighs unknown endpoints {unknown}; "
                                 f"known: {', '.join(sorted(ENDPOINTS))}")

    @property
    def exchange(self) -> str:
        """The venue part of the key (``binance`` of ``binance:usdm``)."""
        return self.key.split(":", 1)[0]

    def weight(self, method: str) -> float:
        """The legacy single-bucket weight of ``method``."""
        return float(self.weights.get(method, 1.0))

    def limit_rules(self) -> tuple[RateLimitRule, ...]:
        """The rate-limit rules to enforce: ``rate_limits``, else the legacy bucket as one rule."""
        if self.rate_limits:
            return self.rate_limits
        return (RateLimitRule(name="weight", type=RateLimitType.TOKEN_BUCKET, interval=self.rate_limit.window_ms / 1000.0,
                              limit=self.rate_limit.limit, weight_map=dict(self.weights)),)


@functools.cache
def _registry(venues_dir: Path = VENUES_DIR) -> tuple[dict[str, Path], dict[str, str]]:
    """(canonical key -> YAML path, every accepted spelling in upper case -> canonical key)."""
    paths: dict[str, Path] = {}
    names: dict[str, str] = {}
    for path in sorted(venues_dir.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        key = raw.get("key")
        if not key:
            continue
        if key in paths:
            raise ValueError(f"venue key {key!r} is configured twice: {paths[key].name} and {path.name}")
        paths[key] = path
        exchange, market = key.split(":", 1)
        spellings = {key, f"{exchange}{BT_API_SEPARATOR}{market}",
                     f"{exchange}{BT_API_SEPARATOR}{raw.get('asset_type', 'spot')}"}
        for name in spellings:
            other = names.setdefault(name.upper(), key)
            if other != key:
                raise ValueError(f"{name!r} would name both {other} and {key}; give one of them another asset_type")
    return paths, names


def canonical_key(name: str) -> str:
    """``binance:spot`` for ``binance:spot``, ``BINANCE___SPOT``, ``BINANCE:SPOT`` ...; the bt_api_py
    spelling also takes the asset type (``BINANCE___SWAP`` is binance:usdm). ValueError if unknown."""
    paths, names = _registry()
    key = names.get(str(name).strip().upper())
    if key is None:
        raise ValueError(f"unknown venue adapter {name!r}; known: "
                         + ", ".join(f"{k} ({bt_api_key(k)})" for k in sorted(paths)))
    return key


def bt_api_key(name: str) -> str:
    """The bt_api_py spelling of a venue: ``BINANCE___SWAP`` for binance:usdm."""
    config = load_config(name)
    return f"{config.exchange}{BT_API_SEPARATOR}{config.asset_type}".upper()


def adapter_keys() -> list[str]:
    """Every configured venue key, canonical (``binance:spot``, ``okx:swap``, ...)."""
    return sorted(_registry()[0])


def asset_types(exchange: str) -> dict[str, str]:
    """The asset types configured for ``exchange`` (``binance``) -> their venue keys."""
    out = {}
    for key in adapter_keys():
        config = load_config(key)
        if config.exchange == exchange.lower():
            out[config.asset_type] = key
    return out


@functools.cache
def _load(key: str) -> VenueConfig:
    return msgspec.convert(yaml.safe_load(_registry()[0][key].read_text()), VenueConfig)


def load_config(name: str) -> VenueConfig:
    """The configuration of the venue ``name`` (either spelling)."""
    return _load(canonical_key(name))
