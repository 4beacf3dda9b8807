"""Matching engine: price-time priority books, spot balances, USD-M positions, triggers.

Each price level holds replayed market liquidity (``market_qty``, owned by the recording or the
synthetic generator) and a FIFO of user orders. A user order records how much market liquidity
was ahead of it when it joined (``queue_ahead``); replayed trades at its price consume that
first, depth updates that shrink the level shrink it too (the risk-averse queue model of
hftbacktest). User takers sweep both kinds of liquidity in queue order. Everything here is
synchronous and deterministic: the same inputs in the same order give the same fills.
"""
from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Protocol

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
    queue_ahead: Decimal = ZERO
    trail_extreme: Decimal | None = None
    trail_active: bool = False
    actual_order_id: int | None = None  # algo order: the order it placed when triggered
    trigger_time: int = 0
    orig_type: str = ""
    fills: list[Fill] = field(default_factory=list)

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


@dataclass(slots=True, eq=False)
class Position:
    amount: Decimal = ZERO  # signed, one-way mode
    entry: Decimal = ZERO
    update_time: int = 0


class Account:
    """One API key: a spot wallet (free/locked per asset), a USD-M wallet and positions."""

    def __init__(self, api_key: str, secret: str, spot: dict[str, Decimal], futures: dict[str, Decimal],
                 leverage: int):
        self.api_key, self.secret = api_key, secret
        self.spot: dict[str, list[Decimal]] = {a: [v, ZERO] for a, v in spot.items()}
        self.futures: dict[str, Decimal] = dict(futures)
        self.default_leverage = leverage
        self.leverage: dict[str, int] = {}
        self.positions: dict[str, Position] = {}
        self.orders: dict[tuple[str, int], Order] = {}
        self.algo_orders: dict[int, Order] = {}
        self.by_client: dict[tuple[str, str], Order] = {}
        self.open: dict[str, dict[int, Order]] = {SPOT: {}, USDM: {}}
        self.open_algo: dict[int, Order] = {}
        self.fills: dict[str, list[Fill]] = {SPOT: [], USDM: []}
        self.dirty_spot: set[str] = set()
        self.dirty_futures: set[str] = set()  # symbols whose position changed
        self.dirty_wallet = False

    def asset(self, name: str) -> list[Decimal]:
        return self.spot.setdefault(name, [ZERO, ZERO])

    def position(self, symbol: str) -> Position:
        return self.positions.setdefault(symbol, Position())

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, self.default_leverage)


class Level:
    __slots__ = ("price", "market_qty", "orders")

    def __init__(self, price: Decimal):
        self.price = price
        self.market_qty = ZERO
        self.orders: list[Order] = []

    def total(self) -> Decimal:
        total = self.market_qty
        for order in self.orders:
            total += order.qty - order.executed
        return total


class BookSide:
    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.levels: dict[Decimal, Level] = {}
        self.prices: list[Decimal] = []  # ascending
        self.user_orders = 0  # resting user orders on this side; 0 lets replayed trades skip the queue walk

    def best(self) -> Level | None:
        if not self.prices:
            return None
        return self.levels[self.prices[-1] if self.is_bid else self.prices[0]]

    def iter_best(self) -> Iterator[Level]:
        """Levels best first; callers that change the side while iterating must copy first."""
        levels = self.levels
        for price in (reversed(self.prices) if self.is_bid else self.prices):
            yield levels[price]

    def level(self, price: Decimal) -> Level:
        level = self.levels.get(price)
        if level is None:
            level = self.levels[price] = Level(price)
            bisect.insort(self.prices, price)
        return level

    def drop_if_empty(self, level: Level) -> None:
        if level.market_qty <= 0 and not level.orders and self.levels.get(level.price) is level:
            del self.levels[level.price]
            index = bisect.bisect_left(self.prices, level.price)
            del self.prices[index]

    def top(self, n: int) -> list[tuple[Decimal, Decimal]]:
        out = []
        for level in self.iter_best():
            total = level.total()
            if total > 0:
                out.append((level.price, total))
                if len(out) >= n:
                    break
        return out


class Book:
    def __init__(self, inst: Instrument):
        self.inst = inst
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.update_id = 1

    def side(self, is_bid: bool) -> BookSide:
        return self.bids if is_bid else self.asks


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


class Engine:
    """All books and accounts of one venue. ``clock`` returns epoch milliseconds."""

    def __init__(self, instruments: list[Instrument], accounts: list[Account],
                 clock: Callable[[], int], sink: Sink | None = None, trade_history: int = 1000):
        self.instruments = {inst.key: inst for inst in instruments}
        self.books = {inst.key: Book(inst) for inst in instruments}
        self.accounts = {acct.api_key: acct for acct in accounts}
        self.clock = clock
        self.sink: Sink = sink or NullSink()
        self.trades: dict[tuple[str, str], deque[PublicTrade]] = {
            k: deque(maxlen=trade_history) for k in self.instruments}
        self.klines: dict[tuple[str, str], list[Kline]] = {k: [] for k in self.instruments}
        self.last_price: dict[tuple[str, str], Decimal] = {}
        self.stops: dict[tuple[str, str], list[Order]] = {k: [] for k in self.instruments}
        self._next_trade_id = {k: 1 for k in self.instruments}
        self._next_order_id = {SPOT: 1_000_001, USDM: 4_000_001}
        self._next_algo_id = 9_000_001
        self._triggering = False
        self._printed: dict[tuple[str, str], deque[Decimal]] = {k: deque() for k in self.instruments}
        self.counters = {"orders": 0, "fills": 0, "public_trades": 0, "book_changes": 0}

    # ---------------------------------------------------------------- lookups

    def instrument(self, market: str, symbol: str) -> Instrument:
        inst = self.instruments.get((market, symbol))
        if inst is None:
            raise SimError(-1121, "Invalid symbol.")
        return inst

    def mark_price(self, inst: Instrument) -> Decimal:
        book = self.books[inst.key]
        bid, ask = book.bids.best(), book.asks.best()
        if bid is not None and ask is not None:
            return (bid.price + ask.price) / 2
        return self.last_price.get(inst.key) or (bid.price if bid else ask.price if ask else ZERO)

    def reference_price(self, inst: Instrument) -> Decimal:
        """Last trade price, else the mid; what stop orders compare against."""
        return self.last_price.get(inst.key) or self.mark_price(inst)

    # ------------------------------------------------------------ market data

    def seed_book(self, inst: Instrument, bids: list[tuple[Decimal, Decimal]],
                  asks: list[tuple[Decimal, Decimal]]) -> None:
        """Replace the market liquidity with a snapshot (user orders stay)."""
        book = self.books[inst.key]
        for side, levels in ((book.bids, bids), (book.asks, asks)):
            for level in list(side.levels.values()):
                if level.market_qty:
                    self._set_market_qty(book, side, level, ZERO)
            for price, qty in levels:
                if qty > 0:
                    self._set_market_qty(book, side, side.level(price), qty)
        self._uncross(inst)
        self._flush_accounts()

    def apply_depth(self, inst: Instrument, changes: list[tuple[bool, Decimal, Decimal]]) -> None:
        """Set market liquidity at price levels (absolute quantities, 0 removes)."""
        book = self.books[inst.key]
        for is_bid, price, qty in changes:
            side = book.bids if is_bid else book.asks
            level = side.levels.get(price)
            if level is None:
                if qty <= 0:
                    continue
                level = side.level(price)
            self._set_market_qty(book, side, level, qty)
        self._uncross(inst, changes)
        self._flush_accounts()

    def apply_trade(self, inst: Instrument, price: Decimal, qty: Decimal, buyer_maker: bool) -> None:
        """A replayed trade: fills user orders it trades through, then prints the rest."""
        book = self.books[inst.key]
        resting = book.bids if buyer_maker else book.asks
        remaining = qty
        user_filled = ZERO
        crossed = []
        if resting.user_orders:
            for level in resting.iter_best():
                if (level.price < price) if buyer_maker else (level.price > price):
                    break
                if level.orders:
                    crossed.append(level)
        for level in crossed:
            if remaining <= 0:
                break
            at_trade_price = level.price == price
            consumed_market = ZERO
            for order in list(level.orders):
                if remaining <= 0:
                    break
                if at_trade_price:
                    ahead = order.queue_ahead - consumed_market
                    if ahead > 0:
                        take = min(ahead, remaining)
                        consumed_market += take
                        remaining -= take
                        if remaining <= 0:
                            break
                take = min(order.remaining, remaining)
                remaining -= take
                user_filled += take
                self._fill_maker_vs_market(book, resting, level, order, take)
            if consumed_market:
                for order in level.orders:
                    order.queue_ahead = max(ZERO, order.queue_ahead - consumed_market)
            resting.drop_if_empty(level)
        if qty > user_filled:
            # what replayed liquidity traded (user fills were printed as their own trades); the
            # replay's own Decimal when nothing was filled (its hash is cached: the WS hub keys on it)
            self._print_trade(inst, price, qty - user_filled if user_filled else qty, buyer_maker)
        if crossed:
            self._flush_accounts()

    def _set_market_qty(self, book: Book, side: BookSide, level: Level, qty: Decimal) -> None:
        if level.market_qty == qty:
            return
        level.market_qty = qty
        for order in level.orders:
            if order.queue_ahead > qty:
                order.queue_ahead = qty
        self._book_changed(book, side, level)
        side.drop_if_empty(level)

    def _book_changed(self, book: Book, side: BookSide, level: Level) -> None:
        book.update_id += 1
        self.counters["book_changes"] += 1
        self.sink.book_change(book.inst, side.is_bid, level.price, level.total(), book.update_id)

    def _uncross(self, inst: Instrument, fresh=()) -> None:
        """Replayed liquidity that crosses a resting user order trades with it at the order's price.

        Replayed liquidity crossing replayed liquidity (possible only after user trades changed a
        level the recording later restores) is resolved for the levels ``fresh`` just set: the
        stale opposite level is removed.
        """
        book = self.books[inst.key]
        fresh_bids = {p for is_bid, p, q in fresh if is_bid and q > 0}
        while True:
            bid, ask = book.bids.best(), book.asks.best()
            if bid is None or ask is None or bid.price < ask.price:
                return
            if bid.orders and not ask.orders:
                maker_side, maker_level, taker_side, taker_level = book.bids, bid, book.asks, ask
            elif ask.orders and not bid.orders:
                maker_side, maker_level, taker_side, taker_level = book.asks, ask, book.bids, bid
            else:
                if bid.price in fresh_bids and not ask.orders:
                    self._set_market_qty(book, book.asks, ask, ZERO)
                elif not bid.orders:
                    self._set_market_qty(book, book.bids, bid, ZERO)
                else:
                    self._set_market_qty(book, book.asks, ask, ZERO)
                continue
            for order in list(maker_level.orders):
                if taker_level.market_qty <= 0:
                    break
                take = min(order.remaining, taker_level.market_qty)
                self._set_market_qty(book, taker_side, taker_level, taker_level.market_qty - take)
                self._fill_maker_vs_market(book, maker_side, maker_level, order, take)
            maker_side.drop_if_empty(maker_level)

    def _fill_maker_vs_market(self, book: Book, side: BookSide, level: Level, order: Order, qty: Decimal):
        """A resting user order trades ``qty`` with replayed (anonymous) liquidity."""
        if order.reduce_only or order.inst.market == USDM:
            qty = self._cap_reduce_only(order, qty)
            if qty <= 0:
                self._finish(order, "EXPIRED")
                return
        price = level.price
        self._print_trade(order.inst, price, qty, buyer_maker=order.side == BUY, deferred_triggers=True)
        trade_id = self._next_trade_id[order.inst.key] - 1
        self._apply_fill(order, price, qty, True, trade_id)
        if not order.is_open:
            self._remove_from_level(order, level)
        self._book_changed(book, side, level)
        self._run_triggers(order.inst)

    # ------------------------------------------------------------ user orders

    def new_order_id(self, market: str) -> int:
        oid = self._next_order_id[market]
        self._next_order_id[market] += 1
        return oid

    def place(self, account: Account, inst: Instrument, *, side: str, type: str, qty: Decimal | None,
              price: Decimal | None = None, stop_price: Decimal | None = None, tif: str | None = None,
              client_id: str | None = None, quote_qty: Decimal | None = None,
              reduce_only: bool = False, close_position: bool = False,
              callback_rate: Decimal | None = None, activation_price: Decimal | None = None,
              algo: bool = False, working_type: str = "CONTRACT_PRICE") -> Order:
        """Validate, reserve funds, then match or rest an order; raises SimError like the venue."""
        now = self.clock()
        if side not in (BUY, SELL):
            raise SimError(-1117, "Invalid side.")
        allowed = SPOT_TYPES if inst.market == SPOT else (USDM_ALGO_TYPES if algo else USDM_TYPES)
        if type not in allowed:
            if inst.market == USDM and not algo and type in USDM_ALGO_TYPES:
                raise SimError(-4120, "Order type not supported for this endpoint. Please use the "
                                      "Algo Order API endpoints instead.")
            raise SimError(-1116, "Invalid orderType.")
        needs_price = type in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "STOP") or (
            inst.market == USDM and type == "TAKE_PROFIT")
        needs_stop = type in STOP_TYPES or type in TAKE_PROFIT_TYPES
        if needs_price and price is None:
            raise SimError(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        if not needs_price and type != "MARKET" and price is not None and inst.market == SPOT:
            raise SimError(-1106, "Parameter 'price' sent when not required.")
        if needs_stop and stop_price is None:
            name = "triggerPrice" if algo else "stopPrice"
            raise SimError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        if type == "TRAILING_STOP_MARKET" and callback_rate is None:
            raise SimError(-1102, "Mandatory parameter 'callbackRate' was not sent, was empty/null, or malformed.")
        if type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and tif is None:
            if inst.market == SPOT:
                raise SimError(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        tif = tif or "GTC"
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise SimError(-1115, "Invalid timeInForce.")
        if tif == "GTX" and inst.market == SPOT:
            raise SimError(-1115, "Invalid timeInForce.")
        if close_position:
            if not algo or type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise SimError(-4136, "Target strategy invalid for orderType, closePosition true.")
            qty = ZERO
        elif qty is None and not quote_qty:
            raise SimError(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        if quote_qty and (inst.market != SPOT or type != "MARKET"):
            raise SimError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        self.check_filters(inst, qty, price, stop_price, quote_qty, reduce_only or close_position,
                            close_position)
        if client_id:
            previous = account.by_client.get((inst.market, client_id))
            if previous is not None and previous.is_open:
                raise SimError(-2010 if inst.market == SPOT else -4015, "Duplicate order sent.")
        if callback_rate is not None and not (Decimal("0.1") <= callback_rate <= Decimal("10")):
            raise SimError(-2007, "Invalid callBack rate.")
        if algo:
            oid = self._next_algo_id
            self._next_algo_id += 1
        else:
            oid = self.new_order_id(inst.market)
        order = Order(order_id=oid, client_id=client_id or f"sim{oid}", account=account, inst=inst,
                      side=side, type=type, qty=qty or ZERO, price=price, time=now, tif=tif,
                      stop_price=stop_price, quote_qty=quote_qty or ZERO, reduce_only=reduce_only,
                      close_position=close_position, callback_rate=callback_rate,
                      activation_price=activation_price, algo=algo, working_type=working_type,
                      update_time=now, orig_type=type)
        if order.conditional:
            self._check_not_immediate(order)
        if inst.market == SPOT:
            self._reserve_spot(order)
        else:
            self._check_margin(order)
        self.counters["orders"] += 1
        self._register(order)
        if order.conditional:
            self.stops[inst.key].append(order)
            if order.type == "TRAILING_STOP_MARKET":
                self._arm_trailing(order, self.reference_price(inst))
            if algo:
                self.sink.algo_update(order)
            else:
                self.sink.order_update(order, "NEW", None)
            self._flush_accounts()
            return order
        self._execute(order, now)
        self._flush_accounts()
        return order

    def check_filters(self, inst: Instrument, qty, price, stop_price, quote_qty, reducing: bool,
                       close_position: bool = False) -> None:
        """PRICE_FILTER, LOT_SIZE and MIN_NOTIONAL as exchangeInfo states them."""
        spot = inst.market == SPOT
        for value in (price, stop_price):
            if value is None:
                continue
            if value <= 0 or value % inst.tick:
                if spot:
                    raise SimError(-1013, "Filter failure: PRICE_FILTER")
                raise SimError(-4014, "Price not increased by tick size.")
        if quote_qty:
            if quote_qty <= 0:
                raise SimError(-1013, "Filter failure: MIN_NOTIONAL")
            notional = quote_qty
        elif close_position:
            return
        else:
            if qty is None or qty <= 0:
                if spot:
                    raise SimError(-1013, "Filter failure: LOT_SIZE")
                raise SimError(-4003, "Quantity less than or equal to zero.")
            if qty % inst.step:
                if spot:
                    raise SimError(-1013, "Filter failure: LOT_SIZE")
                raise SimError(-4023, "Quantity not increased by step size.")
            if qty < inst.min_qty or qty > inst.max_qty:
                raise SimError(-1013, "Filter failure: LOT_SIZE")
            ref = price if price is not None else stop_price if stop_price is not None else \
                self.reference_price(inst)
            notional = qty * ref
        if notional < inst.min_notional and not reducing:
            if spot:
                raise SimError(-1013, "Filter failure: MIN_NOTIONAL")
            raise SimError(-4164, f"Order's notional must be no smaller than {inst.min_notional.normalize():f} "
                                  "(unless you choose reduce only).")

    def _check_not_immediate(self, order: Order) -> None:
        if order.type == "TRAILING_STOP_MARKET":
            return
        if self._stop_hit(order, self.reference_price(order.inst)):
            if order.inst.market == SPOT:
                raise SimError(-2010, "Stop price would trigger immediately.")
            raise SimError(-2021, "Order would immediately trigger.")

    def _register(self, order: Order) -> None:
        acct, market = order.account, order.inst.market
        if order.algo:
            acct.algo_orders[order.order_id] = order
            acct.open_algo[order.order_id] = order
            acct.by_client[("algo", order.client_id)] = order
        else:
            acct.orders[(market, order.order_id)] = order
            acct.open[market][order.order_id] = order
            acct.by_client[(market, order.client_id)] = order

    # spot funds --------------------------------------------------------------

    def _reserve_spot(self, order: Order) -> None:
        inst, acct = order.inst, order.account
        if order.side == SELL:
            need_asset = inst.base
            if order.type == "MARKET" and order.quote_qty:
                need = self._sweep_qty_for_quote(order)
            else:
                need = order.qty
        else:
            need_asset = inst.quote
            if order.type == "MARKET":
                need = order.quote_qty if order.quote_qty else self._sweep_cost(order)
            elif order.price is not None:
                need = q8(order.price * order.qty, ROUND_UP)
            else:
                need = ZERO  # stop-market buy: funds are checked when it triggers
        wallet = acct.asset(need_asset)
        if need > wallet[0]:
            raise SimError(-2010, "Account has insufficient balance for requested action.")
        if need:
            wallet[0] -= need
            wallet[1] += need
            acct.dirty_spot.add(need_asset)
        order.locked = need

    def _spend_asset(self, order: Order) -> str:
        return order.inst.quote if order.side == BUY else order.inst.base

    def _release(self, order: Order, amount: Decimal | None = None) -> None:
        amount = order.locked if amount is None else amount
        if amount <= 0:
            return
        asset = self._spend_asset(order)
        wallet = order.account.asset(asset)
        wallet[1] -= amount
        wallet[0] += amount
        order.locked -= amount
        order.account.dirty_spot.add(asset)

    def _sweep_cost(self, order: Order) -> Decimal:
        """Quote a market buy would spend now (what the book can fill; the rest expires)."""
        plan = self._plan(order, None, order.qty, None)
        return sum((q8(level.price * qty) for level, qty, _ in plan), ZERO)

    def _sweep_qty_for_quote(self, order: Order) -> Decimal:
        plan = self._plan(order, None, order.inst.max_qty, order.quote_qty)
        return sum((qty for _, qty, _ in plan), ZERO)

    # futures margin ----------------------------------------------------------

    def futures_state(self, acct: Account) -> dict[str, Decimal]:
        """Wallet, unrealized PnL, margins and available balance of the USD-M account (USDT)."""
        wallet = acct.futures.get("USDT", ZERO)
        unrealized = position_im = ZERO
        for symbol, pos in acct.positions.items():
            if not pos.amount:
                continue
            inst = self.instruments[(USDM, symbol)]
            mark = self.mark_price(inst)
            unrealized += pos.amount * (mark - pos.entry)
            position_im += abs(pos.amount) * mark / acct.leverage_of(symbol)
        order_im = ZERO
        for order in acct.open[USDM].values():
            if not order.reduce_only and order.price is not None:
                order_im += order.price * order.remaining / acct.leverage_of(order.inst.symbol)
        margin_balance = wallet + unrealized
        available = margin_balance - position_im - order_im
        return {"wallet": wallet, "unrealized": unrealized, "position_im": position_im,
                "order_im": order_im, "margin_balance": margin_balance, "available": available}

    def _check_margin(self, order: Order) -> None:
        inst, acct = order.inst, order.account
        pos = acct.position(inst.symbol)
        reduces = pos.amount and ((pos.amount > 0) == (order.side == SELL))
        if order.reduce_only and not order.conditional and not reduces:
            raise SimError(-2022, "ReduceOnly Order is rejected.")
        if order.reduce_only or order.close_position or order.conditional:
            return
        qty = order.qty
        increase = max(ZERO, qty - abs(pos.amount)) if reduces else qty
        if not increase:
            return
        ref = order.price if order.price is not None else self._best_opposite(order) or self.mark_price(inst)
        required = ref * increase / acct.leverage_of(inst.symbol)
        if required > self.futures_state(acct)["available"]:
            raise SimError(-2019, "Margin is insufficient.")

    def _best_opposite(self, order: Order) -> Decimal | None:
        book = self.books[order.inst.key]
        level = (book.asks if order.side == BUY else book.bids).best()
        return level.price if level else None

    def _cap_reduce_only(self, order: Order, qty: Decimal) -> Decimal:
        """Reduce-only and close-position orders never trade more than the position they close."""
        if not (order.reduce_only or order.close_position):
            return qty
        pos = order.account.position(order.inst.symbol)
        if not pos.amount or (pos.amount > 0) == (order.side == BUY):
            return ZERO
        return min(qty, abs(pos.amount))

    # matching ----------------------------------------------------------------

    def _plan(self, order: Order, limit: Decimal | None, qty: Decimal, quote_budget: Decimal | None):
        """What a taker would trade, best price first, in queue order: [(level, qty, maker|None)]."""
        book = self.books[order.inst.key]
        side = book.asks if order.side == BUY else book.bids
        step = order.inst.step
        plan = []
        left = qty
        budget = quote_budget
        for level in side.iter_best():
            if left <= 0 or (budget is not None and budget <= 0):
                break
            if limit is not None and ((level.price > limit) if order.side == BUY else (level.price < limit)):
                break
            consumed_ahead = ZERO
            segments = []
            for maker in level.orders:
                gap = maker.queue_ahead - consumed_ahead
                if gap > 0:
                    segments.append((gap, None))
                    consumed_ahead = maker.queue_ahead
                segments.append((maker.remaining, maker))
            tail = level.market_qty - consumed_ahead
            if tail > 0:
                segments.append((tail, None))
            for available, maker in segments:
                take = min(available, left)
                if budget is not None:
                    affordable = (budget / level.price).quantize(step, rounding=ROUND_DOWN)
                    take = min(take, affordable)
                if take <= 0:
                    break
                plan.append((level, take, maker))
                left -= take
                if budget is not None:
                    budget -= q8(level.price * take)
                if left <= 0:
                    break
        return plan

    def _execute(self, order: Order, now: int, announce: bool = True) -> None:
        """Run a (possibly just triggered) order as a taker, then rest, expire or finish it."""
        inst = order.inst
        limit = None if order.type in MARKET_TYPES else order.price
        maker_only = order.type == "LIMIT_MAKER" or order.tif == "GTX"
        qty = order.remaining if not (order.quote_qty and not order.qty) else order.inst.max_qty
        qty = self._cap_reduce_only(order, qty) if inst.market == USDM else qty
        if (order.reduce_only or order.close_position) and qty <= 0:
            self._finish(order, "EXPIRED")
            return
        budget = order.quote_qty if order.quote_qty and order.side == BUY else None
        if order.quote_qty and order.side == SELL:
            qty = order.locked
            budget = order.quote_qty
        plan = self._plan(order, limit, qty, budget)
        if maker_only and plan:
            self._reject(order)
            if inst.market == SPOT:
                raise SimError(-2010, "Order would immediately match and take.")
            raise SimError(-5022, "Due to the order could not be executed as maker, the Post Only order "
                                  "will be rejected.")
        if announce:
            self.sink.order_update(order, "NEW", None)
        if order.tif == "FOK" and sum((q for _, q, _ in plan), ZERO) < qty:
            self._finish(order, "EXPIRED")
            return
        if order.quote_qty and not order.qty:
            order.qty = sum((q for _, q, _ in plan), ZERO)
        if plan:
            self._take(order, plan)
        if not order.is_open:
            return
        if order.type in MARKET_TYPES or order.tif in ("IOC", "FOK"):
            self._finish(order, "EXPIRED")
            return
        self._rest(order)

    def _take(self, order: Order, plan) -> None:
        inst = order.inst
        book = self.books[inst.key]
        side = book.asks if order.side == BUY else book.bids
        touched: dict[Decimal, Level] = {}
        market_taken: dict[Decimal, Decimal] = {}
        for level, qty, maker in plan:
            if inst.market == USDM and (order.reduce_only or order.close_position):
                qty = self._cap_reduce_only(order, qty)
                if qty <= 0:
                    break
            if maker is not None:
                if not maker.is_open:
                    continue
                qty = min(qty, maker.remaining)
                if inst.market == USDM and maker.reduce_only:
                    qty = self._cap_reduce_only(maker, qty)
                    if qty <= 0:
                        self._finish(maker, "EXPIRED")
                        continue
            self._print_trade(inst, level.price, qty, buyer_maker=order.side == SELL, deferred_triggers=True)
            trade_id = self._next_trade_id[inst.key] - 1
            if maker is None:
                market_taken[level.price] = market_taken.get(level.price, ZERO) + qty
            else:
                self._apply_fill(maker, level.price, qty, True, trade_id)
                if not maker.is_open:
                    self._remove_from_level(maker, level)
            self._apply_fill(order, level.price, qty, False, trade_id)
            touched[level.price] = level
            if not order.is_open:
                break
        for price, level in touched.items():
            taken = market_taken.get(price)
            if taken:
                level.market_qty -= taken
                for resting in level.orders:
                    resting.queue_ahead = max(ZERO, resting.queue_ahead - taken)
            self._book_changed(book, side, level)
            side.drop_if_empty(level)
        self._run_triggers(inst)

    def _rest(self, order: Order) -> None:
        book = self.books[order.inst.key]
        side = book.bids if order.side == BUY else book.asks
        level = side.level(order.price)
        order.queue_ahead = level.market_qty
        level.orders.append(order)
        side.user_orders += 1
        if order.working_time < 0:
            order.working_time = order.update_time
        self._book_changed(book, side, level)

    def _remove_from_level(self, order: Order, level: Level | None = None) -> None:
        if order.price is None:
            return
        book = self.books[order.inst.key]
        side = book.bids if order.side == BUY else book.asks
        level = level or side.levels.get(order.price)
        if level is None or order not in level.orders:
            return
        level.orders.remove(order)
        side.user_orders -= 1
        self._book_changed(book, side, level)
        side.drop_if_empty(level)

    def _apply_fill(self, order: Order, price: Decimal, qty: Decimal, is_maker: bool, trade_id: int) -> None:
        inst, acct = order.inst, order.account
        now = self.clock()
        quote = q8(price * qty)
        rate = inst.maker_fee if is_maker else inst.taker_fee
        realized = ZERO
        if inst.market == SPOT:
            if order.side == BUY:
                spend = acct.asset(inst.quote)
                spend[1] -= quote
                order.locked -= quote
                commission, commission_asset = q8(qty * rate), inst.base
                acct.asset(inst.base)[0] += qty - commission
            else:
                spend = acct.asset(inst.base)
                spend[1] -= qty
                order.locked -= qty
                commission, commission_asset = q8(quote * rate), inst.quote
                acct.asset(inst.quote)[0] += quote - commission
            acct.dirty_spot.update((inst.base, inst.quote))
        else:
            commission, commission_asset = q8(quote * rate), "USDT"
            pos = acct.position(inst.symbol)
            signed = qty if order.side == BUY else -qty
            if not pos.amount or (pos.amount > 0) == (signed > 0):
                total = abs(pos.amount) + qty
                pos.entry = (pos.entry * abs(pos.amount) + price * qty) / total
            else:
                closing = min(qty, abs(pos.amount))
                realized = q8(closing * (price - pos.entry) * (1 if pos.amount > 0 else -1))
                if qty > abs(pos.amount):
                    pos.entry = price
                elif qty == abs(pos.amount):
                    pos.entry = ZERO
            pos.amount += signed
            pos.update_time = now
            acct.futures["USDT"] = acct.futures.get("USDT", ZERO) + realized - commission
            acct.dirty_futures.add(inst.symbol)
            acct.dirty_wallet = True
        order.executed += qty
        order.cum_quote += quote
        order.update_time = now
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        fill = Fill(trade_id, order, price, qty, quote, commission, commission_asset, now, is_maker, realized)
        order.fills.append(fill)
        acct.fills[inst.market].append(fill)
        self.counters["fills"] += 1
        if inst.market == SPOT and order.side == BUY and order.is_open and order.price is not None:
            excess = order.locked - q8(order.price * order.remaining, ROUND_UP)
            if excess > 0:
                self._release(order, excess)
        if not order.is_open:
            self._close(order)
        self.sink.order_update(order, "TRADE", fill)

    def _reject(self, order: Order) -> None:
        """Undo an order the venue refuses after registering it: it leaves no trace."""
        self._unregister(order)
        if order.inst.market == SPOT:
            self._release(order)
        acct = order.account
        acct.orders.pop((order.inst.market, order.order_id), None)
        acct.by_client.pop((order.inst.market, order.client_id), None)
        order.status = "REJECTED"
        self.counters["orders"] -= 1

    def _close(self, order: Order) -> None:
        self._unregister(order)
        if order.inst.market == SPOT:
            self._release(order)

    def _unregister(self, order: Order) -> None:
        acct = order.account
        if order.algo:
            acct.open_algo.pop(order.order_id, None)
        else:
            acct.open[order.inst.market].pop(order.order_id, None)
        stops = self.stops[order.inst.key]
        if order in stops:
            stops.remove(order)

    def _finish(self, order: Order, status: str) -> None:
        """End an order that will not trade further (cancel, expire)."""
        if not order.is_open:
            return
        self._remove_from_level(order)
        order.status = status
        order.update_time = self.clock()
        self._close(order)
        if order.algo:
            self.sink.algo_update(order)
        else:
            self.sink.order_update(order, status if status != "CANCELED" else "CANCELED", None)

    def _print_trade(self, inst: Instrument, price: Decimal, qty: Decimal, buyer_maker: bool,
                     deferred_triggers: bool = False) -> None:
        key = inst.key
        now = self.clock()
        trade_id = self._next_trade_id[key]
        self._next_trade_id[key] = trade_id + 1
        trade = PublicTrade(trade_id, price, qty, now, buyer_maker)
        self.trades[key].append(trade)
        self.last_price[key] = price
        self.counters["public_trades"] += 1
        self._update_kline(inst, trade)
        self.sink.public_trade(inst, trade)
        if self.stops[key]:
            self._printed[key].append(price)
            if not deferred_triggers:
                self._run_triggers(inst)

    def _update_kline(self, inst: Instrument, trade: PublicTrade) -> None:
        klines = self.klines[inst.key]
        minute = trade.time - trade.time % 60000
        if klines and klines[-1].open_time == minute:
            k = klines[-1]
            price = trade.price
            if price > k.high:  # max()/min() keep the first of equals, and so does this
                k.high = price
            elif price < k.low:
                k.low = price
            k.close = price
        else:
            k = Kline(minute, trade.price, trade.price, trade.price, trade.price)
            klines.append(k)
        k.volume += trade.qty
        k.quote_volume += trade.price * trade.qty
        k.trades += 1

    # triggers ----------------------------------------------------------------

    def _stop_hit(self, order: Order, price: Decimal) -> bool:
        stop = order.stop_price
        buy = order.side == BUY
        if order.type in STOP_TYPES:
            return price >= stop if buy else price <= stop
        if order.type in TAKE_PROFIT_TYPES:
            return price <= stop if buy else price >= stop
        return False

    def _arm_trailing(self, order: Order, price: Decimal) -> None:
        act = order.activation_price
        if act is None or (price >= act if order.side == SELL else price <= act):
            order.trail_active = True
            order.trail_extreme = price

    def _trailing_hit(self, order: Order, price: Decimal) -> bool:
        if not order.trail_active:
            self._arm_trailing(order, price)
            if not order.trail_active:
                return False
        rate = order.callback_rate / 100
        if order.side == SELL:
            order.trail_extreme = max(order.trail_extreme, price)
            return price <= order.trail_extreme * (1 - rate)
        order.trail_extreme = min(order.trail_extreme, price)
        return price >= order.trail_extreme * (1 + rate)

    def _run_triggers(self, inst: Instrument) -> None:
        """Check stops against every price printed since the last check, in print order.

        A sweep that prints several prices fires every stop any of them crosses; orders fired
        here print more prices, which are checked in turn.
        """
        if self._triggering:
            return
        self._triggering = True
        printed, stops = self._printed[inst.key], self.stops[inst.key]
        try:
            while printed:
                price = printed.popleft()
                if not stops:
                    printed.clear()
                    break
                fired = [o for o in stops if (self._trailing_hit(o, price) if o.type == "TRAILING_STOP_MARKET"
                                              else self._stop_hit(o, price))]
                for order in fired:
                    if order in stops:
                        stops.remove(order)
                        self._trigger(order)
        finally:
            self._triggering = False

    def _trigger(self, order: Order) -> None:
        now = self.clock()
        inst = order.inst
        if not order.algo:
            # spot stop: the same order starts working as a market or limit order
            order.working_time = now
            order.update_time = now
            if order.side == BUY and not order.locked:
                try:
                    order.locked = ZERO
                    cost = self._sweep_cost(order)
                    wallet = order.account.asset(inst.quote)
                    if cost > wallet[0]:
                        raise SimError(-2010, "insufficient")
                    wallet[0] -= cost
                    wallet[1] += cost
                    order.locked = cost
                    order.account.dirty_spot.add(inst.quote)
                except SimError:
                    self._finish(order, "EXPIRED")
                    return
            try:
                self._execute(order, now, announce=False)
            except SimError:
                pass  # a triggered order refused by the book (post-only) simply ends
            return
        # USD-M algo order: it places a regular order in the matching engine
        order.trigger_time = now
        order.update_time = now
        order.status = "TRIGGERED"
        actual_type = "LIMIT" if order.type in ("STOP", "TAKE_PROFIT") else "MARKET"
        qty = order.qty
        if order.close_position:
            pos = order.account.position(inst.symbol)
            qty = abs(pos.amount)
        child = Order(order_id=self.new_order_id(USDM), client_id=order.client_id, account=order.account,
                      inst=inst, side=order.side, type=actual_type, qty=qty, price=order.price if
                      actual_type == "LIMIT" else None, time=now, tif=order.tif,
                      stop_price=order.stop_price, reduce_only=order.reduce_only,
                      close_position=order.close_position, callback_rate=order.callback_rate,
                      activation_price=order.activation_price, working_type=order.working_type,
                      update_time=now, orig_type=order.type)
        order.actual_order_id = child.order_id
        order.account.open_algo.pop(order.order_id, None)
        self.sink.algo_update(order)
        order.status = "FINISHED"
        if not qty:
            child.status = "EXPIRED"
            order.account.orders[(USDM, child.order_id)] = child
            self.sink.algo_update(order)
            return
        self._register(child)
        try:
            self._execute(child, now)
        except SimError:
            pass
        order.executed = child.executed
        order.cum_quote = child.cum_quote
        self.sink.algo_update(order)

    # cancel / amend ---------------------------------------------------------

    def find_order(self, account: Account, inst: Instrument, order_id: int | None, client_id: str | None,
                   algo: bool = False) -> Order | None:
        if algo:
            order = account.algo_orders.get(order_id) if order_id is not None else \
                account.by_client.get(("algo", client_id or ""))
        elif order_id is not None:
            order = account.orders.get((inst.market, order_id))
        else:
            order = account.by_client.get((inst.market, client_id or ""))
        if order is None or order.inst is not inst:
            return None
        return order

    def cancel(self, account: Account, inst: Instrument, order_id: int | None = None,
               client_id: str | None = None, algo: bool = False) -> Order:
        order = self.find_order(account, inst, order_id, client_id, algo)
        if order is None or not order.is_open:
            raise SimError(-2011, "Unknown order sent.")
        self._finish(order, "CANCELED")
        self._flush_accounts()
        return order

    def cancel_all(self, account: Account, inst: Instrument, algo: bool = False) -> list[Order]:
        book = account.open_algo if algo else account.open[inst.market]
        orders = sorted((o for o in book.values() if o.inst is inst), key=lambda o: o.order_id)
        for order in orders:
            self._finish(order, "CANCELED")
        self._flush_accounts()
        return orders

    def amend(self, account: Account, inst: Instrument, order_id: int | None, client_id: str | None,
              side: str, qty: Decimal, price: Decimal) -> Order:
        """USD-M order modify: new price/quantity, loses queue position when the price changes."""
        order = self.find_order(account, inst, order_id, client_id)
        if order is None or not order.is_open:
            raise SimError(-2013, "Order does not exist.")
        if order.type != "LIMIT":
            raise SimError(-4000, "Invalid order status.")
        if side != order.side:
            raise SimError(-4000, "Invalid order side.")
        self.check_filters(inst, qty, price, None, None, order.reduce_only)
        if qty <= order.executed:
            raise SimError(-4000, "Invalid quantity.")
        self._remove_from_level(order)
        order.qty, order.price = qty, price
        order.update_time = self.clock()
        self.sink.order_update(order, "AMENDMENT", None)
        plan = self._plan(order, price, order.remaining, None)
        if plan:
            self._take(order, plan)
        if order.is_open:
            self._rest(order)
        self._flush_accounts()
        return order

    def set_leverage(self, account: Account, inst: Instrument, leverage: int) -> None:
        if not 1 <= leverage <= 125:
            raise SimError(-4028, f"Leverage {leverage} is not valid")
        account.leverage[inst.symbol] = leverage

    # account events ----------------------------------------------------------

    def _flush_accounts(self) -> None:
        for acct in self.accounts.values():
            if acct.dirty_spot:
                assets = sorted(acct.dirty_spot)
                acct.dirty_spot.clear()
                self.sink.spot_balance(acct, assets)
            if acct.dirty_futures or acct.dirty_wallet:
                symbols = sorted(acct.dirty_futures)
                acct.dirty_futures.clear()
                acct.dirty_wallet = False
                self.sink.futures_account(acct, symbols, "ORDER")

    def flush(self) -> None:
        """Report account changes made outside ``place``/``cancel`` (public for the replay driver)."""
        self._flush_accounts()
