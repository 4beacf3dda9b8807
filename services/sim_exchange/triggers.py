"""Conditional orders of the sim venue: stop, take-profit and trailing-stop triggers, checked
against every price printed, and what a triggered order becomes (the same spot order working
as a market/limit order, or a USD-M algo order placing a regular one)."""
from __future__ import annotations

from decimal import Decimal

from .records import BUY, SELL, SPOT, STOP_TYPES, TAKE_PROFIT_TYPES, USDM, ZERO, Instrument, Order, SimError

__all__ = ["Triggers"]


class Triggers:
    """The Engine's trigger methods (a mixin: ``self`` is the Engine)."""

    def _check_not_immediate(self, order: Order) -> None:
        if order.type == "TRAILING_STOP_MARKET":
            return
        if self._stop_hit(order, self.reference_price(order.inst)):
            if order.inst.market == SPOT:
                raise SimError(-2010, "Stop price would trigger immediately.")
            raise SimError(-2021, "Order would immediately trigger.")

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

