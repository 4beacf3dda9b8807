"""MLThon's enumerations, with the values tradebus maps them to.

``Exchange`` names the venues tradebus routes to; each carries the tradebus venue key
(``Exchange.Binance.venue == "binance"``). Reject codes keep MLThon's numbering
(1000 = GtwNotReady).
"""
from __future__ import annotations

from .mlt_enum import MltEnum


class Exchange(MltEnum):
    Unset = 0
    Binance = 1
    BinanceFutures = 2
    Bybit = 3
    OKX = 4
    Sim = 5

    @property
    def venue(self) -> str:
        """The tradebus venue name of this exchange."""
        return _VENUES[self]

    @classmethod
    def from_venue(cls, venue: str) -> Exchange:
        base = venue.split(":")[0].lower()
        for member, name in _VENUES.items():
            if name == base:
                return member
        raise ValueError(f"no MLThon Exchange for venue {venue!r}; known: {sorted(_VENUES.values())}")


_VENUES = {Exchange.Unset: "", Exchange.Binance: "binance", Exchange.BinanceFutures: "binanceusdm",
           Exchange.Bybit: "bybit", Exchange.OKX: "okx", Exchange.Sim: "sim"}


class Side(MltEnum):
    Unset = 0
    Buy = 1
    Sell = 2


class OrderType(MltEnum):
    Unset = 0
    Limit = 1
    Market = 2


class TIF(MltEnum):
    Unset = 0
    GTC = 1
    IOC = 2
    FOK = 3


class ExecInstructions(MltEnum):
    Unset = 0
    PostOnly = 1


class GtwRejectCode(MltEnum):
    Unset = 0
    GtwNotReady = 1000
    NotLoggedIn = 1001
    StrategyStopped = 1002
    InvalidPrice = 1003
    InvalidQty = 1004
    UnknownInstrument = 1005
    UnknownOrder = 1006
    UnsupportedOrderType = 1007
    RateLimited = 1008
    ExchangeReject = 1009
    InsufficientFunds = 1010
    RiskLimit = 1011
    Unknown = 1099


class CancelCode(MltEnum):
    Unset = 0
    CanceledByUser = 1
    SelfTradePrevention = 2
    Expired = 3
    PostOnlyWouldTake = 4
    ReduceOnly = 5
    NoLiquidity = 6
    IocUnfilled = 7
    Other = 99


class GtwStatus(MltEnum):
    Unset = 0
    ReadyToTrade = 1
    Connecting = 2
    Maintenance = 3


class FeedHandlerStatus(MltEnum):
    Unset = 0
    SnapshotStart = 1
    SnapshotEnd = 2
    Disconnected = 3


class OrderStatus(MltEnum):
    Unset = 0
    New = 1
    PartiallyFilled = 2
    Filled = 3
    Cancelled = 4
    Rejected = 5
    Expired = 6
