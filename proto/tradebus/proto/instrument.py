"""Instrument definitions: what a venue trades and the rules an order must respect."""
from __future__ import annotations

from .base import Event, MarketType

__all__ = ["Instrument"]


class Instrument(Event, tag="md.instrument", kw_only=True, frozen=True):
    """One tradable market, from ccxt ``load_markets`` (or the sim venue).

    ``tick_size``/``lot_size`` are the price and quantity increments; ``price_precision`` and
    ``qty_precision`` the matching number of decimals. ``min_qty``/``min_notional`` are 0 when
    the venue sets no minimum. ``contract_size`` is the base amount of one contract (1 for spot).
    ``settle`` is None for spot; a contract with ``settle == base`` is inverse. ``expiry`` is the
    delivery time of a dated contract (0 for spot and perpetuals).
    """

    venue: str
    symbol: str
    venue_symbol: str
    base: str
    quote: str
    settle: str | None = None
    market_type: MarketType
    tick_size: float
    lot_size: float
    min_qty: float = 0.0
    min_notional: float = 0.0
    price_precision: int
    qty_precision: int
    contract_size: float = 1.0
    expiry: int = 0
    active: bool = True
    ts_init: int = 0
