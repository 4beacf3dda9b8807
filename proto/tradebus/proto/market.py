"""Market-data events, published on ``md.<venue>.<symbol>.<kind>``."""
from __future__ import annotations

import enum
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from .base import Event, MdKind, Side
from .instrument import Instrument

__all__ = [
    "Trade",
    "TradeBatch",
    "TradeColumns",
    "BookSnapshot",
    "BookSide",
    "BookAction",
    "LevelChange",
    "BookDelta",
    "BBO",
    "Bar",
    "FundingRate",
    "FeedState",
    "FeedStatus",
    "MarketDataEvent",
]


class Trade(Event, tag="md.trade", kw_only=True, frozen=True):
    """One public trade; ``side`` is the aggressor (taker) side."""

    venue: str
    symbol: str
    price: float
    qty: float
    side: Side
    trade_id: str = ""
    ts_event: int
    ts_recv: int


_LITTLE_ENDIAN = sys.byteorder == "little"
_SIDE_CODE: dict[str, int] = {Side.BUY: 0, Side.SELL: 1}
_SIDE_OF_CODE = (Side.BUY, Side.SELL)
_FORMATS = {"d": ("d",), "q": ("q", "l")}  # memoryview formats of 8-byte floats / ints


def _pack(values: Any, code: str) -> bytes:
    """Pack a column (sequence or float64/int64 buffer, e.g. a numpy array) little-endian."""
    try:
        view = memoryview(values)
    except TypeError:
        data = array(code, values)
    else:
        if view.ndim == 1 and view.itemsize == 8 and view.format.lstrip("@=<") in _FORMATS[code]:
            if _LITTLE_ENDIAN:
                return view.tobytes()
            data = array(code)
            data.frombytes(view.tobytes())
        else:
            data = array(code, view.tolist())
    if not _LITTLE_ENDIAN:
        data.byteswap()
    return data.tobytes()


def _side_code(side: Side | str | int) -> int:
    if isinstance(side, str):  # Side is a StrEnum, so "buy" finds Side.BUY
        try:
            return _SIDE_CODE[side]
        except KeyError:
            raise ValueError(f"not a side: {side!r}") from None
    return side


def _unpack(data: bytes, code: Literal["d", "q"]) -> memoryview[Any]:
    if _LITTLE_ENDIAN:
        return memoryview(data).cast(code)
    values = array(code)
    values.frombytes(data)
    values.byteswap()
    return memoryview(values)


_F64 = Annotated[bytes, msgspec.Meta(description="float64 little-endian, one per trade")]
_I64 = Annotated[bytes, msgspec.Meta(description="int64 little-endian nanoseconds, one per trade")]
_SIDES = Annotated[bytes, msgspec.Meta(description="uint8 aggressor side per trade: 0 buy, 1 sell")]


class TradeColumns(NamedTuple):
    """Typed views over a TradeBatch's columns (zero-copy on little-endian hosts)."""

    prices: memoryview
    qtys: memoryview
    sides: memoryview
    ts_event: memoryview
    ts_recv: memoryview


class TradeBatch(Event, tag="md.trades", kw_only=True, frozen=True):
    """Many trades of one symbol as packed columns, for high-rate feeds.

    Numeric columns are raw little-endian arrays (``bytes``), so msgpack carries them as one
    binary blob each: encoding and decoding cost a copy, not one object per value, and
    ``numpy.frombuffer`` or a Cython memoryview reads them without conversion. ``trade_ids`` is
    empty when the producer does not carry ids, otherwise one per trade.
    """

    venue: str
    symbol: str
    prices: _F64
    qtys: _F64
    sides: _SIDES
    ts_event: _I64
    ts_recv: _I64
    trade_ids: list[str] = []

    def __post_init__(self) -> None:
        n = len(self.sides)
        for name in ("prices", "qtys", "ts_event", "ts_recv"):
            if len(getattr(self, name)) != 8 * n:
                raise ValueError(
                    f"TradeBatch column {name!r} holds {len(getattr(self, name))} bytes, "
                    f"expected {8 * n} (8 per trade for {n} sides)"
                )
        if self.trade_ids and len(self.trade_ids) != n:
            raise ValueError(f"TradeBatch has {len(self.trade_ids)} trade_ids for {n} trades")
        if self.sides.translate(None, b"\x00\x01"):
            raise ValueError("TradeBatch sides must be 0 (buy) or 1 (sell)")

    def __len__(self) -> int:
        return len(self.sides)

    @classmethod
    def from_columns(
        cls,
        *,
        venue: str,
        symbol: str,
        prices: Any,
        qtys: Any,
        sides: Iterable[Side | str | int] | bytes,
        ts_event: Any,
        ts_recv: Any,
        trade_ids: Sequence[str] = (),
    ) -> TradeBatch:
        """Build a batch from columns: sequences of numbers or float64/int64 buffers."""
        if not isinstance(sides, bytes):
            sides = bytes(_side_code(s) for s in sides)
        return cls(
            venue=venue,
            symbol=symbol,
            prices=_pack(prices, "d"),
            qtys=_pack(qtys, "d"),
            sides=sides,
            ts_event=_pack(ts_event, "q"),
            ts_recv=_pack(ts_recv, "q"),
            trade_ids=list(trade_ids),
        )

    @classmethod
    def from_trades(cls, trades: Iterable[Trade], *, venue: str | None = None,
                    symbol: str | None = None) -> TradeBatch:
        """Pack trades of one venue and symbol; pass venue/symbol to allow an empty batch."""
        trades = list(trades)
        if not trades and (venue is None or symbol is None):
            raise ValueError("TradeBatch.from_trades needs venue and symbol for an empty batch")
        venue = trades[0].venue if venue is None else venue
        symbol = trades[0].symbol if symbol is None else symbol
        for t in trades:
            if t.venue != venue or t.symbol != symbol:
                raise ValueError(
                    f"TradeBatch holds one venue and symbol ({venue} {symbol}), got {t.venue} {t.symbol}"
                )
        ids = [t.trade_id for t in trades]
        return cls.from_columns(
            venue=venue,
            symbol=symbol,
            prices=[t.price for t in trades],
            qtys=[t.qty for t in trades],
            sides=[t.side for t in trades],
            ts_event=[t.ts_event for t in trades],
            ts_recv=[t.ts_recv for t in trades],
            trade_ids=ids if any(ids) else (),
        )

    def columns(self) -> TradeColumns:
        """Typed views: prices/qtys as float ('d'), sides as uint8 ('B'), timestamps as int ('q')."""
        return TradeColumns(
            _unpack(self.prices, "d"),
            _unpack(self.qtys, "d"),
            memoryview(self.sides),
            _unpack(self.ts_event, "q"),
            _unpack(self.ts_recv, "q"),
        )

    def trades(self) -> Iterator[Trade]:
        """Yield the batch as Trade events, in order."""
        cols = self.columns()
        ids = self.trade_ids or None
        venue, symbol = self.venue, self.symbol
        for i in range(len(self.sides)):
            yield Trade(
                venue=venue,
                symbol=symbol,
                price=cols.prices[i],
                qty=cols.qtys[i],
                side=_SIDE_OF_CODE[cols.sides[i]],
                trade_id=ids[i] if ids else "",
                ts_event=cols.ts_event[i],
                ts_recv=cols.ts_recv[i],
            )


class BookSnapshot(Event, tag="md.book", kw_only=True, frozen=True):
    """Full order book to ``depth`` levels (0 = all); levels are (price, qty), best first."""

    venue: str
    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    depth: int = 0
    sequence: int = 0
    ts_event: int
    ts_recv: int


class BookSide(enum.StrEnum):
    """Side of the book a level belongs to."""

    BID = "bid"
    ASK = "ask"


class BookAction(enum.StrEnum):
    """What happened to a price level. ADD and MODIFY both set the level to the new qty."""

    ADD = "add"
    MODIFY = "modify"
    DELETE = "delete"


class LevelChange(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One price-level change, encoded as ``[side, price, qty, action]``; qty 0 deletes."""

    side: BookSide
    price: float
    qty: float
    action: BookAction = BookAction.MODIFY


class BookDelta(Event, tag="md.delta", kw_only=True, frozen=True):
    """Incremental price-level updates to apply on top of the last BookSnapshot.

    ``sequence`` is the venue's last update id in this delta and ``first_sequence`` its first
    (0 when unknown); a gap between one delta's sequence and the next one's first_sequence means
    a missed update and calls for a new snapshot. Feeds that cannot tell an added level from a
    modified one send MODIFY.
    """

    venue: str
    symbol: str
    changes: list[LevelChange]
    sequence: int = 0
    first_sequence: int = 0
    ts_event: int
    ts_recv: int


class BBO(Event, tag="md.bbo", kw_only=True, frozen=True):
    """Best bid and offer."""

    venue: str
    symbol: str
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    ts_event: int
    ts_recv: int


class Bar(Event, tag="md.bar", kw_only=True, frozen=True):
    """OHLCV bar; ``closed`` is False while the bar is still forming.

    ``interval`` uses ccxt timeframe notation ("1m", "1h", "1d"); ``ts_open`` is the bar's open
    time and ``ts_event`` the venue time of the last update.
    """

    venue: str
    symbol: str
    interval: str
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool = True
    ts_event: int
    ts_recv: int


class FundingRate(Event, tag="md.funding", kw_only=True, frozen=True):
    """Perpetual funding rate (a fraction per funding interval, 0.0001 = 1 bp)."""

    venue: str
    symbol: str
    rate: float
    ts_next_funding: int = 0
    mark_price: float | None = None
    index_price: float | None = None
    ts_event: int
    ts_recv: int


class FeedState(enum.StrEnum):
    """Feed transitions, as MLThon's FeedHandlerStatus plus CONNECTED.

    Between SNAPSHOT_START and SNAPSHOT_END the events form the initial snapshot; after
    SNAPSHOT_END they are live increments. On DISCONNECTED clear the book: a new snapshot follows
    the reconnect.
    """

    CONNECTED = "connected"
    SNAPSHOT_START = "snapshot_start"
    SNAPSHOT_END = "snapshot_end"
    DISCONNECTED = "disconnected"


class FeedStatus(Event, tag="md.status", kw_only=True, frozen=True):
    """State change of one market-data stream (``stream``: the md kind, e.g. book)."""

    venue: str
    symbol: str
    stream: MdKind | None = None
    state: FeedState
    reason: str = ""
    ts_init: int


MarketDataEvent = (
    Trade | TradeBatch | BookSnapshot | BookDelta | BBO | Bar | FundingRate | FeedStatus | Instrument
)
"""Everything published under ``md.>``."""
