"""Matching in the sim venue: replayed trades against resting user orders (through the queue
model), replayed liquidity crossing them, user takers sweeping market liquidity and user orders
in price-time priority, resting, and recording fills.

Where a resting order waits at its price is the queue model's business
(:class:`tradebus.engine.models.QueueModel`, the event backtester's code): the order joins
behind the level's replayed quantity, replayed trades at its price reach it once the queue
ahead is through, depth updates move the queue (``RiskAverseQueue`` by default: only a level
that shrinks below the quantity ahead moves it up).
"""
from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from tradebus.engine.models import QueuePosition

from .book import Book, BookSide, Level
from .records import BUY, MARKET_TYPES, SELL, SPOT, USDM, ZERO, Fill, Instrument, Order, SimError, from_float, q8

__all__ = ["Matching"]


class Matching:
    """The Engine's matching methods (a mixin: ``self`` is the Engine)."""

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
            if level.price != price:
                # traded through: the orders here fill in time order, no queue ahead of them
                for order in list(level.orders):
                    if remaining <= 0:
                        break
                    take = min(order.remaining, remaining)
                    remaining -= take
                    user_filled += take
                    self._fill_maker_vs_market(book, resting, level, order, take)
            else:
                # at the price: each order's queue model says how much of what is left of the
                # trade gets past the liquidity ahead of it
                for order in list(level.orders):
                    if remaining <= 0:
                        break
                    reached = order.queue.trade(float(remaining))
                    take = min(order.remaining, remaining) if math.isinf(reached) else \
                        min(order.remaining, from_float(reached).quantize(order.inst.step, ROUND_DOWN))
                    if take > 0:
                        remaining -= take
                        user_filled += take
                        self._fill_maker_vs_market(book, resting, level, order, take)
            resting.drop_if_empty(level)
        if qty > user_filled:
            # what replayed liquidity traded (user fills were printed as their own trades); the
            # replay's own Decimal when nothing was filled (its hash is cached: the WS hub keys on it)
            self._print_trade(inst, price, qty - user_filled if user_filled else qty, buyer_maker)
        if crossed:
            self._flush_accounts()

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
                    resting.queue.consumed(float(taken))
            self._book_changed(book, side, level)
            side.drop_if_empty(level)
        self._run_triggers(inst)

    def _rest(self, order: Order) -> None:
        book = self.books[order.inst.key]
        side = book.bids if order.side == BUY else book.asks
        level = side.level(order.price)
        order.queue = QueuePosition(self.queue_model, float(level.market_qty))
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
        commission, commission_asset, realized = self._settle(order, price, qty, quote, is_maker, now)
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

