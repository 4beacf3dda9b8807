"""The sim venue's books: price levels holding replayed market liquidity and a FIFO of user
orders, the market data that moves them (snapshots, depth updates), public trades and klines,
and the prices derived from them (mark, reference, best opposite)."""
from __future__ import annotations

import bisect
from collections.abc import Iterator
from decimal import Decimal

from .records import BUY, ZERO, Instrument, Kline, Order, PublicTrade

__all__ = ["Level", "BookSide", "Book", "MarketBook"]


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



class MarketBook:
    """The Engine's market-data methods (a mixin: ``self`` is the Engine)."""

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

    def _set_market_qty(self, book: Book, side: BookSide, level: Level, qty: Decimal) -> None:
        if level.market_qty == qty:
            return
        prev, level.market_qty = level.market_qty, qty
        if level.orders:
            prev_f, qty_f = float(prev), float(qty)
            for order in level.orders:
                order.queue.depth(prev_f, qty_f)   # the queue model: others cancelled or joined
        self._book_changed(book, side, level)
        side.drop_if_empty(level)

    def _book_changed(self, book: Book, side: BookSide, level: Level) -> None:
        book.update_id += 1
        self.counters["book_changes"] += 1
        self.sink.book_change(book.inst, side.is_bid, level.price, level.total(), book.update_id)

    def _best_opposite(self, order: Order) -> Decimal | None:
        book = self.books[order.inst.key]
        level = (book.asks if order.side == BUY else book.bids).best()
        return level.price if level else None

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

