"""The sim venue's records: instruments, orders, fills, public trades, klines, the sink the
engine reports to, and the venue's error. Plain data; the engine modules act on them."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from tradebus.engine.models import QueuePosition

if TYPE_CHECKING:
    from .accounts import Account


ZERO = Decimal(0)
ONE = Decimal(1)
E8 = Decimal("0.00000001")
BUY, SELL = "BUY", "SELL"
SPOT, USDM = "spot", "usdm"

SPOT_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
              "TAKE_PROFIT_LIMIT")
USDM_TYPES = ("LIMIT", "MARKET")
USDM_ALGO_TYPES = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "STOP", "STOP_MARKET")
TAKE_PROFIT_TYPES = ("TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "TAKE_PROFIT_MARKET")
MARKET_TYPES = ("MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP_MARKET")


class SimError(Exception):
    """A venue error: HTTP status plus Binance's ``{"code": ..., "msg": ...}``."""

    def __init__(self, code: int, msg: str, status: int = 400, data: dict | None = None):
        super().__init__(msg)
        self.code, self.msg, self.status, self.data = code, msg, status, data


def q8(value: Decimal, rounding=None) -> Decimal:
    return value.quantize(E8, rounding=rounding) if rounding else value.quantize(E8)


def from_float(qty: float) -> Decimal:
    """A quantity computed in floats (the compiled queue model), back on the 8-decimal grid."""
    return q8(Decimal(repr(qty)))


@dataclass(slots=True, eq=False)
class Instrument:
    symbol: str  # venue id, BTCUSDT
    unified: str  # ccxt symbol
    market: str  # spot | usdm
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    price_dp: int = 0
    qty_dp: int = 0
    key: tuple[str, str] = ("", "")  # (market, symbol), set from them

    def __post_init__(self):
        self.price_dp = max(0, -self.tick.normalize().as_tuple().exponent)
        self.qty_dp = max(0, -self.step.normalize().as_tuple().exponent)
        self.key = (self.market, self.symbol)


@dataclass(slots=True, eq=False)
class Order:
    order_id: int
    client_id: str
    account: Account
    inst: Instrument
    side: str
    type: str
    qty: Decimal
    price: Decimal | None
    time: int
    tif: str = "GTC"
    stop_price: Decimal | None = None
    quote_qty: Decimal = ZERO  # quoteOrderQty of a spot market order
    reduce_only: bool = False
    close_position: bool = False
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    working_type: str = "CONTRACT_PRICE"
    algo: bool = False  # a USD-M conditional (algo) order; order_id is then the algoId
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    working_time: int = -1
    locked: Decimal = ZERO  # spot funds still reserved, in the asset the order spends
    queue: QueuePosition | None = None  # a resting limit's place in its level (queue model)
    trail_extreme: Decimal | None = None
    trail_active: bool = False
    actual_order_id: int | None = None  # algo order: the order it placed when triggered
    trigger_time: int = 0
    orig_type: str = ""
    fills: list[Fill] = field(default_factory=list)

    @property
    def queue_ahead(self) -> Decimal:
        """Replayed (market) quantity ahead of the resting order at its price, to 8 decimals."""
        return ZERO if self.queue is None else from_float(self.queue.ahead)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else ZERO

    @property
    def conditional(self) -> bool:
        return self.type in STOP_TYPES or self.type in TAKE_PROFIT_TYPES or self.type == "TRAILING_STOP_MARKET"


@dataclass(slots=True, eq=False)
class Fill:
    trade_id: int
    order: Order
    price: Decimal
    qty: Decimal
    quote: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool
    realized_pnl: Decimal = ZERO


@dataclass(slots=True, eq=False)
class PublicTrade:
    trade_id: int
    price: Decimal
    qty: Decimal
    time: int
    buyer_maker: bool


class Sink(Protocol):
    """Where the engine reports what the venue would push (implemented by the WS hub)."""

    def book_change(self, inst: Instrument, is_bid: bool, price: Decimal, total: Decimal, update_id: int): ...
    def public_trade(self, inst: Instrument, trade: PublicTrade): ...
    def order_update(self, order: Order, exec_type: str, fill: Fill | None): ...
    def algo_update(self, order: Order): ...
    def spot_balance(self, account: Account, assets: list[str]): ...
    def futures_account(self, account: Account, symbols: list[str], reason: str): ...


class NullSink:
    def book_change(self, *a): pass
    def public_trade(self, *a): pass
    def order_update(self, *a): pass
    def algo_update(self, *a): pass
    def spot_balance(self, *a): pass
    def futures_account(self, *a): pass


@dataclass(slots=True)
class Kline:
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    trades: int = 0

