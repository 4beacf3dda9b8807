"""Instrument: what a strategy needs to trade one product (name, id, tick and lot sizes)."""
from __future__ import annotations

from .defs import Exchange
from .price import Price
from .qty import Qty


class Instrument:
    """One tradable product as MLThon describes it.

    ``name`` is MLThon's product name ("BTC-USDT"); ``symbol`` the ccxt unified symbol tradebus
    uses on the bus ("BTC/USDT"); ``instrument_id`` the integer id requests refer to.
    """

    __slots__ = ("_exchange", "_id", "_name", "_symbol", "_tick", "_lot", "_min_qty", "_base", "_quote")

    def __init__(self, exchange: Exchange, instrument_id: int, name: str, symbol: str, *,
                 tick_size="0", lot_size="0", min_qty="0", base: str = "", quote: str = "") -> None:
        self._exchange = Exchange.parse(exchange)
        self._id = int(instrument_id)
        self._name = name
        self._symbol = symbol
        self._tick = Price(tick_size)
        self._lot = Qty(lot_size)
        self._min_qty = Qty(min_qty)
        self._base = base
        self._quote = quote

    def update_sizes(self, tick_size=None, lot_size=None, min_qty=None) -> None:
        """The venue's own sizes (from its Instrument events) replace the configured ones."""
        if tick_size:
            self._tick = Price(tick_size)
        if lot_size:
            self._lot = Qty(lot_size)
        if min_qty:
            self._min_qty = Qty(min_qty)

    def get_exchange(self) -> Exchange:
        return self._exchange

    def get_instrument_id(self) -> int:
        return self._id

    def get_instrument_name(self) -> str:
        return self._name

    def get_symbol(self) -> str:
        return self._symbol

    def get_tick_size(self) -> Price:
        return self._tick

    def get_lot_size(self) -> Qty:
        return self._lot

    def get_min_qty(self) -> Qty:
        return self._min_qty

    def get_base_asset(self) -> str:
        return self._base

    def get_quote_asset(self) -> str:
        return self._quote

    def __repr__(self) -> str:
        return (f"Instrument({self._exchange.name}, {self._id}, {self._name!r}, tick={self._tick.to_str()}, "
                f"lot={self._lot.to_str()}, min_qty={self._min_qty.to_str()})")
