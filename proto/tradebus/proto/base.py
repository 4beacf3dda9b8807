"""Base classes and shared enums of the wire contract.

Conventions for every type in ``tradebus.proto``:

- Prices and quantities are ``float`` (IEEE-754 double). They are cheap to encode and feed the
  engine without conversion; the router rounds them to the instrument's tick and lot size at
  the venue edge. Never compare them for equality.
- Timestamps are ``int`` nanoseconds since the Unix epoch (UTC). ``ts_event`` is the venue's
  time (0 when the venue gives none), ``ts_recv`` the local time a venue message arrived,
  ``ts_init`` the local time the message was created.
- Symbols use the ccxt unified form (``BTC/USDT``, ``BTC/USDT:USDT``); ``venue`` is the ccxt
  exchange id (``binance``, ``binanceusdm``) or ``sim``.
- Schema evolution: add fields only at the end and only with a default; never rename, re-type
  or remove. A breaking change is a new type with a new tag.
"""
from __future__ import annotations

import enum

import msgspec

__all__ = [
    "Event",
    "Request",
    "Side",
    "OrderType",
    "TimeInForce",
    "OrderState",
    "Liquidity",
    "MarketType",
    "MdKind",
]


# gc=False: wire messages are immutable leaves that never form reference cycles, so keeping
# them out of the cyclic GC saves time on hot market-data paths (msgspec performance tips).
# omit_defaults=True: fields still at their default are left off the wire.
# msgspec applies kw_only to the fields a class defines itself, so every subclass repeats it.
class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True, gc=False):
    """Base of every event: immutable, keyword-only, tagged by ``type`` (e.g. ``"md.trade"``)."""


class Request(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", omit_defaults=True, gc=False):
    """Base of every request a service asks another to carry out (e.g. ``"ord.new"``)."""


class Side(enum.StrEnum):
    """Order side, or the aggressor side of a public trade."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1


class OrderType(enum.StrEnum):
    """Every order type of the router's routing table."""

    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    TRAILING_STOP = "trailing_stop"
    TRAILING_STOP_PERCENT = "trailing_stop_percent"
    CLOSE_POSITION = "close_position"


class TimeInForce(enum.StrEnum):
    """GTC: rests until cancelled; IOC: fill what you can now, cancel the rest; FOK: all or none."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderState(enum.StrEnum):
    """Lifecycle state of an order as reported by OrderStatus."""

    NEW = "new"
    ACKED = "acked"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Liquidity(enum.StrEnum):
    """Whether a fill added (maker) or took (taker) liquidity."""

    MAKER = "maker"
    TAKER = "taker"
    UNKNOWN = "unknown"


class MarketType(enum.StrEnum):
    """ccxt market type: spot, perpetual swap, dated future, option."""

    SPOT = "spot"
    SWAP = "swap"
    FUTURE = "future"
    OPTION = "option"


class MdKind(enum.StrEnum):
    """Market-data kind: the last token of an ``md.<venue>.<symbol>.<kind>`` subject."""

    TRADE = "trade"
    BOOK = "book"
    DELTA = "delta"
    BBO = "bbo"
    BAR = "bar"
    FUNDING = "funding"
    STATUS = "status"
    INSTRUMENT = "instrument"
