"""Matching engine of the sim venue: price-time priority books, spot balances, USD-M positions,
triggers.

Each price level holds replayed market liquidity (``market_qty``, owned by the recording or the
synthetic generator) and a FIFO of user orders. Where a resting user order waits behind the
replayed liquidity is the queue model's business (``queue_model``, the event backtester's
compiled :mod:`tradebus.engine.models`; hftbacktest's risk-averse model by default): replayed
trades at its price eat the queue ahead first, depth updates that shrink the level below it move
it up. User takers sweep both kinds of liquidity in queue order. Everything here is synchronous
and deterministic: the same inputs in the same order give the same fills.

The engine is split by concern: :mod:`.book` (levels, market data, public trades),
:mod:`.matching` (fills), :mod:`.accounts` (funds, margin, positions, balances) and
:mod:`.triggers` (stops, take profits, trailing stops); this module places, cancels and amends
orders. Every name below stays importable from here.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal

from tradebus.engine.models import QueueModel, RiskAverseQueue

from .accounts import Account, Accounts, Position
from .book import Book, BookSide, Level, MarketBook
from .matching import Matching
from .records import (
    BUY,
    E8,
    MARKET_TYPES,
    ONE,
    SELL,
    SPOT,
    SPOT_TYPES,
    STOP_TYPES,
    TAKE_PROFIT_TYPES,
    USDM,
    USDM_ALGO_TYPES,
    USDM_TYPES,
    ZERO,
    Fill,
    Instrument,
    Kline,
    NullSink,
    Order,
    PublicTrade,
    SimError,
    Sink,
    q8,
)
from .triggers import Triggers

__all__ = [
    "Engine", "Account", "Position", "Instrument", "Order", "Fill", "PublicTrade", "Kline", "Level",
    "BookSide", "Book", "Sink", "NullSink", "SimError", "q8", "ZERO", "ONE", "E8", "BUY", "SELL",
    "SPOT", "USDM", "SPOT_TYPES", "USDM_TYPES", "USDM_ALGO_TYPES", "STOP_TYPES", "TAKE_PROFIT_TYPES",
    "MARKET_TYPES",
]


class Engine(MarketBook, Matching, Accounts, Triggers):
    """All books and accounts of one venue. ``clock`` returns epoch milliseconds; ``queue_model``
    places resting orders in their level (default RiskAverseQueue()). Order, algo and trade ids
    count up from ``id_base`` (a restarted venue passes a larger one: ids are never reused)."""

    def __init__(self, instruments: list[Instrument], accounts: list[Account],
                 clock: Callable[[], int], sink: Sink | None = None, trade_history: int = 1000,
                 queue_model: QueueModel | None = None, id_base: int = 0):
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
        self._next_trade_id = {k: id_base + 1 for k in self.instruments}
        self._next_order_id = {SPOT: id_base + 1_000_001, USDM: id_base + 4_000_001}
        self._next_algo_id = id_base + 9_000_001
        self._triggering = False
        self._printed: dict[tuple[str, str], deque[Decimal]] = {k: deque() for k in self.instruments}
        self.counters = {"orders": 0, "fills": 0, "public_trades": 0, "book_changes": 0}
        self.queue_model: QueueModel = queue_model if queue_model is not None else RiskAverseQueue()

    # ---------------------------------------------------------------- lookups

    def instrument(self, market: str, symbol: str) -> Instrument:
        inst = self.instruments.get((market, symbol))
        if inst is None:
            raise SimError(-1121, "Invalid symbol.")
        return inst


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

