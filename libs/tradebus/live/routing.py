"""FLOX's routing table for the in-process broker: every row on every ccxt venue.

=====================  ====================================================================
MARKET                 create_market_<side>_order(sym, qty)
LIMIT                  create_limit_<side>_order(sym, qty, price)
STOP_MARKET            create_order(sym, "stop_market", side, qty, None, {"stopPrice": trigger})
STOP_LIMIT             create_order(sym, "stop_limit", side, qty, limit, {"stopPrice": trigger})
TAKE_PROFIT_MARKET     create_order(sym, "take_profit_market", side, qty, None, {"stopPrice": ...})
TAKE_PROFIT_LIMIT      create_order(sym, "take_profit_limit", side, qty, limit, {"stopPrice": ...})
TRAILING_STOP          create_order(sym, "trailing_stop_market", side, qty, None, {"trailingDelta": offset})
TRAILING_STOP_PERCENT  create_order(sym, "trailing_stop_market", side, qty, None, {"callbackRate": bps/100})
CLOSE_POSITION         create_order(sym, "market", side, qty, None, {"reduceOnly": True})
CANCEL                 cancel_order(ccxt_id, sym) with the tracked id
CANCEL_ALL             cancel_order for every tracked id on the symbol
MODIFY                 edit_order(ccxt_id, sym, "limit", side, new_qty, new_price)
=====================  ====================================================================

These are ccxt's unified parameters, the default for a venue with no YAML file and for a row a
venue's YAML does not give. A row in the YAML (``venues/<name>.yaml``, e.g. Binance USD-M's
``triggerPrice``) refines its row; a ``_place_*`` override on a CcxtBroker subclass refines it
further. The order router keeps the YAML's capabilities; the broker, like FLOX, sends every row
and lets the venue answer.
"""
from __future__ import annotations

import msgspec

from tradebus.exchanges import VenueAdapter, VenueConfig, make_adapter
from tradebus.exchanges.venue_config import OrderRow
from tradebus.proto import OrderType

__all__ = ["UNIFIED_ORDERS", "ROUTED_TYPES", "broker_adapter", "default_adapter", "book_limit"]

UNIFIED_ORDERS: dict[str, OrderRow] = {
    "stop_market": OrderRow(type="stop_market", params={"stopPrice": "$trigger"}),
    "stop_limit": OrderRow(type="stop_limit", params={"stopPrice": "$trigger"}),
    "take_profit_market": OrderRow(type="take_profit_market", params={"stopPrice": "$trigger"}),
    "take_profit_limit": OrderRow(type="take_profit_limit", params={"stopPrice": "$trigger"}),
    "trailing_stop": OrderRow(type="trailing_stop_market", params={"trailingDelta": "$offset"}),
    "trailing_stop_percent": OrderRow(type="trailing_stop_market", params={"callbackRate": "$callback_rate"}),
    "close_position": OrderRow(type="market", params={"reduceOnly": True}),
}
"""ccxt's unified parameter shapes of the conditional rows ($-values are filled per order)."""

ROUTED_TYPES: tuple[OrderType, ...] = (OrderType.MARKET, OrderType.LIMIT,
                                       *(OrderType(kind) for kind in UNIFIED_ORDERS))


def _every_row(config: VenueConfig) -> VenueConfig:
    """``config`` with every routing row: its own rows first, ccxt's unified ones for the rest."""
    capabilities = msgspec.structs.replace(config.capabilities, order_types=ROUTED_TYPES, modify=True)
    return msgspec.structs.replace(config, orders={**UNIFIED_ORDERS, **config.orders}, capabilities=capabilities)


def broker_adapter(key: str, exchange) -> VenueAdapter:
    """The registered adapter of venue ``key`` (its YAML rows and hooks) with every row routed."""
    adapter = make_adapter(key, exchange)
    adapter.config = _every_row(adapter.config)
    adapter.capabilities = adapter.config.capabilities
    return adapter


def default_adapter(exchange_id: str, exchange) -> VenueAdapter:
    """An adapter for a ccxt venue with no YAML file: ccxt's unified rows only."""
    return VenueAdapter(_every_row(VenueConfig(key=f"{exchange_id}:default", ccxt_id=exchange_id)), exchange)


def book_limit(adapter: VenueAdapter, depth: int) -> int:
    """The ``limit`` to ask ``watch_order_book`` for ``depth`` levels: ``depth`` itself on a venue
    with no YAML file (FLOX's behaviour); else the smallest depth the venue's book stream offers
    that covers it (``capabilities.market_data.book_depths``: Bybit refuses 20 and takes 50), or
    its largest when none does."""
    if adapter is None or adapter.config.key.endswith(":default"):
        return depth
    depths = sorted(adapter.config.capabilities.market_data.book_depths)
    return next((d for d in depths if d >= depth), depths[-1]) if depths else depth
