"""The fill ledger: venue reports -> exactly-once ``Fill``s, fees in the quote currency, positions.

Venues report executions two ways, and both are ccxt structures:

- **per-trade executions** (``watch_my_trades``, the trades a create response carries,
  ``fetch_order_trades``): each becomes one Fill with its trade id, price, fee, fee currency and
  maker/taker flag. A trade id counts once: it goes into the order's ``OrderStatus.trade_ids``.
- **cumulative order state** (``watch_orders``, ``fetch_order``, REST responses): only the
  increase of the order's cumulative filled quantity over what the status already counts becomes
  a Fill, with a deterministic trade id (``<exchange id>-<cum qty>``); fee 0, liquidity unknown.

An order counts its fills one way: by trades until it is switched (for good, a ``CUMULATIVE``
marker in ``trade_ids``) to the cumulative path, which then ignores trade records, so no unit is
counted twice whichever report comes first. ``OrderStatus`` (the router keeps it in KV) is the
whole state, so the ledger's functions are pure: status + report in, status + Fill out.

**Fees and positions.** ``Fill.fee`` stays as the venue charged it; ``quote_fee`` values it in
the symbol's quote (or settle) currency, the cash a strategy counts. On spot a fee charged in the
base asset (Binance's buys) is taken out of what was bought: the position moves by
``position_change`` (a buy of 1 BTC paying 0.001 BTC holds 0.999), as the venue's balance does,
so closing a position never tries to sell more than the account holds. The order's fees by
currency are kept in ``OrderStatus.fees`` so positions rebuild the same after a restart.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import msgspec

from tradebus.proto import Fill, Liquidity, NewOrder, OrderState, OrderStatus, Side
from tradebus.proto.subjects import EXTERNAL_STRATEGY

__all__ = [
    "CUMULATIVE",
    "EPS",
    "FillLedger",
    "base_fee",
    "by_trades",
    "fill_position_change",
    "fill_quote_fee",
    "market_currencies",
    "new_status",
    "position_change",
    "quote_fee",
    "runner_external_fill",
    "runner_fill",
    "stored_position_change",
]

EPS = 1e-12
CUMULATIVE = "~cumulative"
"""Marker in ``OrderStatus.trade_ids``: this order's fills are counted by cumulative quantity."""

_LIQUIDITY = {"maker": Liquidity.MAKER, "taker": Liquidity.TAKER}


def market_currencies(symbol: str) -> tuple[str, str, str | None]:
    """(base, quote, settle) of a ccxt unified symbol; settle is None on spot
    (``BTC/USDT`` -> BTC, USDT, None; ``BTC/USD:BTC-240927`` -> BTC, USD, BTC)."""
    base, _, rest = symbol.partition("/")
    quote, colon, settle = rest.partition(":")
    return base, quote, (settle.split("-", 1)[0] or quote) if colon else None


def quote_fee(symbol: str, price: float, fee: float, fee_currency: str) -> float:
    """``fee`` in the symbol's quote (or settle) currency, the cash a strategy counts: a fee
    charged in the base asset (Binance spot buys) is valued at the fill price; one in another
    currency (e.g. BNB) has no price here and counts 0."""
    if not fee or not fee_currency:
        return fee
    base, quote, settle = market_currencies(symbol)
    if fee_currency in (quote, settle or quote):
        return fee
    if fee_currency == base:
        return fee * price
    return 0.0


def base_fee(symbol: str, fee: float, fee_currency: str) -> float:
    """The part of a fee that the venue takes out of a spot position (charged in the base asset)."""
    base, _, settle = market_currencies(symbol)
    return fee if settle is None and fee and fee_currency == base else 0.0


def position_change(symbol: str, side: Side | str, qty: float, fee: float = 0.0, fee_currency: str = "") -> float:
    """Signed change of the position one execution makes: the quantity, less a spot fee charged
    in the base asset (a buy holds less than it bought, a sell gives up more than it sold)."""
    return Side(side).sign * qty - base_fee(symbol, fee, fee_currency)


def fill_quote_fee(fill: Fill) -> float:
    """``quote_fee`` of a Fill event."""
    return quote_fee(fill.symbol, fill.price, fill.fee, fill.fee_currency)


def fill_position_change(fill: Fill) -> float:
    """``position_change`` of a Fill event."""
    return position_change(fill.symbol, fill.side, fill.qty, fill.fee, fill.fee_currency)


def runner_fill(runner, order_id: int, fill: Fill) -> bool:
    """Hand a Fill of order ``order_id`` to a strategy ``Runner``: the fee in the quote currency,
    the position moved net of a base-asset fee. False when the runner does not know the order."""
    return runner.on_fill(order_id, fill.price, fill.qty, fill_quote_fee(fill), fill.ts_event or fill.ts_init,
                          fill.liquidity is Liquidity.MAKER, fill.trade_id or None, fill_position_change(fill))


def runner_external_fill(runner, strategy, symbol, fill: Fill) -> bool:
    """As ``runner_fill`` for an order the runner did not send (one of a previous session);
    False for a trade id it has seen."""
    return runner.on_external_fill(strategy, symbol, str(fill.side), fill.price, fill.qty, fill_quote_fee(fill),
                                   fill.ts_event or fill.ts_init, fill.trade_id or None, fill_position_change(fill))


def new_status(order: NewOrder, state: OrderState = OrderState.NEW, exchange_order_id: str | None = None,
               ts_init: int | None = None) -> OrderStatus:
    """The first OrderStatus of a NewOrder (nothing filled)."""
    return OrderStatus(venue=order.venue, strategy=order.strategy, symbol=order.symbol,
                       client_order_id=order.client_order_id, exchange_order_id=exchange_order_id,
                       side=order.side, order_type=order.order_type, status=state, qty=order.qty,
                       price=order.price, leaves_qty=order.qty, ts_init=time.time_ns() if ts_init is None else ts_init)


def stored_position_change(status: OrderStatus) -> float:
    """What an order's fills so far add to its strategy's position (net of base-asset fees;
    0 for an external order)."""
    if status.filled_qty <= 0 or status.strategy == EXTERNAL_STRATEGY:
        return 0.0
    base, _, _ = market_currencies(status.symbol)
    return position_change(status.symbol, status.side, status.filled_qty, status.fees.get(base, 0.0), base)


def by_trades(status: OrderStatus, venue_lists_trades: bool) -> bool:
    """True when this order's fills come from trade records: the venue lists them, the order has
    not been switched to the cumulative path, and it did not fill before trade ids were kept."""
    if CUMULATIVE in status.trade_ids or (status.filled_qty > EPS and not status.trade_ids):
        return False
    return venue_lists_trades


def _fees(status: OrderStatus, fee: float, currency: str) -> dict[str, float]:
    if not fee or not currency:
        return status.fees
    return {**status.fees, currency: status.fees.get(currency, 0.0) + fee}


def _ms_to_ns(ms: Any) -> int:
    return int(ms or 0) * 1_000_000


class FillLedger:
    """One venue account's fills: exactly-once, with positions per (strategy, symbol) net of
    base-asset fees. Orders of ``EXTERNAL_STRATEGY`` (placed outside the bus) count no position."""

    def __init__(self, venue: str):
        self.venue = venue
        self.positions: defaultdict[tuple[str, str], float] = defaultdict(float)

    def position(self, strategy: str, symbol: str) -> float:
        return self.positions.get((strategy, symbol), 0.0)

    def restore(self, status: OrderStatus) -> None:
        """Count a stored order's fills into the positions (at start, from KV)."""
        change = stored_position_change(status)
        if change:
            self.positions[(status.strategy, status.symbol)] += change

    def _book(self, fill: Fill) -> None:
        if fill.strategy != EXTERNAL_STRATEGY:
            self.positions[(fill.strategy, fill.symbol)] += fill_position_change(fill)

    def trade(self, status: OrderStatus, trade: dict) -> tuple[OrderStatus, Fill | None]:
        """One venue execution (a ccxt trade structure): the Fill, unless its id is already
        counted (or it has no id or quantity)."""
        tid = trade.get("id")
        qty = float(trade.get("amount") or 0.0)
        if tid is None or str(tid) in status.trade_ids or qty <= 0:
            return status, None
        tid = str(tid)
        price = float(trade.get("price") or 0.0)
        filled = status.filled_qty + qty
        fee = trade.get("fee") or next(iter(trade.get("fees") or ()), None) or {}
        cost, currency = float(fee.get("cost") or 0.0), str(fee.get("currency") or "")
        status = msgspec.structs.replace(
            status, filled_qty=filled, avg_price=(status.avg_price * status.filled_qty + price * qty) / filled,
            leaves_qty=max(0.0, status.qty - filled), trade_ids=(*status.trade_ids, tid),
            fees=_fees(status, cost, currency))
        liquidity = _LIQUIDITY.get(str(trade.get("takerOrMaker")), Liquidity.UNKNOWN)
        fill = Fill(venue=self.venue, strategy=status.strategy, symbol=status.symbol,
                    client_order_id=status.client_order_id,
                    exchange_order_id=str(trade.get("order") or status.exchange_order_id or ""), trade_id=tid,
                    side=status.side, price=price, qty=qty, leaves_qty=status.leaves_qty, cum_qty=filled,
                    fee=cost, fee_currency=currency, liquidity=liquidity,
                    ts_event=_ms_to_ns(trade.get("timestamp")), ts_init=time.time_ns())
        self._book(fill)
        return status, fill

    def cumulative(self, status: OrderStatus, order: dict) -> tuple[OrderStatus, Fill | None]:
        """A venue view of the order (a ccxt order structure): the increase of its cumulative
        filled quantity over the status's as one Fill, priced from the view's cost (or average)."""
        filled = float(order.get("filled") or 0.0)
        if filled <= status.filled_qty + EPS:
            return status, None
        delta = filled - status.filled_qty
        old_cost = status.avg_price * status.filled_qty
        cost = order.get("cost")
        price = (float(cost) - old_cost) / delta if cost else 0.0
        if price <= 0:
            price = float(order.get("average") or order.get("price") or 0.0)
        fee = order.get("fee") or {}
        status = msgspec.structs.replace(status, filled_qty=filled, avg_price=(old_cost + price * delta) / filled,
                                         leaves_qty=max(0.0, status.qty - filled))
        fill = Fill(venue=self.venue, strategy=status.strategy, symbol=status.symbol,
                    client_order_id=status.client_order_id, exchange_order_id=status.exchange_order_id or "",
                    trade_id=f"{status.exchange_order_id}-{filled:.12g}", side=status.side, price=price, qty=delta,
                    leaves_qty=status.leaves_qty, cum_qty=filled, fee=0.0,
                    fee_currency=str(fee.get("currency") or ""), liquidity=Liquidity.UNKNOWN,
                    ts_event=_ms_to_ns(order.get("lastUpdateTimestamp") or order.get("timestamp")),
                    ts_init=time.time_ns())
        self._book(fill)
        return status, fill

    def to_cumulative(self, status: OrderStatus) -> OrderStatus:
        """Switch an order to the cumulative path for good (its venue lists fewer trades than it counts)."""
        if CUMULATIVE in status.trade_ids:
            return status
        return msgspec.structs.replace(status, trade_ids=(*status.trade_ids, CUMULATIVE))

    def view(self, status: OrderStatus, order: dict, trades: list[dict], venue_lists_trades: bool = True
             ) -> tuple[OrderStatus, list[Fill]]:
        """For a consumer with no trade stream to wait for (the in-process broker): the trades
        a view carries, then whatever its cumulative quantity counts beyond them (the order then
        switches to the cumulative path, so a late trade record is not counted again)."""
        fills: list[Fill] = []
        if by_trades(status, venue_lists_trades):
            for trade in trades:
                status, fill = self.trade(status, trade)
                if fill is not None:
                    fills.append(fill)
        if float(order.get("filled") or 0.0) > status.filled_qty + EPS:
            if status.trade_ids:
                status = self.to_cumulative(status)
            status, fill = self.cumulative(status, order)
            if fill is not None:
                fills.append(fill)
        return status, fills
