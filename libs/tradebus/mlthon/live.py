"""The live half of the MLThon environment: bus events in, venue queries out.

strategy_runner hosts an :class:`MLThonStrategy` like any strategy; these helpers feed it what
only the live stack has: the router's gateway status and rate-limit use (``acct.*``), feed
status, funding and the venue's instrument sizes (``md.*``), and the answers to ``fetch_*`` from the venue, asked through the
order router (an AccountQuery on ``svc.order_router.query.<venue>``).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from tradebus.mlthon.basics.defs import FeedHandlerStatus, GtwRejectCode, GtwStatus, OrderStatus
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty
from tradebus.mlthon.gateway import LocalGateway
from tradebus.mlthon.orders import Order
from tradebus.proto import (
    AccountQuery,
    AccountSnapshot,
    FeedState,
    FeedStatus,
    FundingRate,
    GatewayState,
    GatewayStatus,
    OrderState,
    QueryKind,
    RateLimitInfo,
)
from tradebus.proto import Instrument as InstrumentEvent

if TYPE_CHECKING:
    from tradebus.mlthon.basics.instrument import Instrument
    from tradebus.mlthon.env import StratEnv
    from tradebus.mlthon.host import MLThonStrategy

__all__ = ["BusGateway", "on_live_event", "GATEWAY_STATES", "FEED_STATES", "ORDER_STATES"]

GATEWAY_STATES = {
    GatewayState.READY_TO_TRADE: GtwStatus.ReadyToTrade, GatewayState.CONNECTING: GtwStatus.Connecting,
    GatewayState.MAINTENANCE: GtwStatus.Maintenance, GatewayState.DISCONNECTED: GtwStatus.Connecting,
}
ORDER_STATES = {
    OrderState.NEW: OrderStatus.New, OrderState.ACKED: OrderStatus.New,
    OrderState.PARTIALLY_FILLED: OrderStatus.PartiallyFilled, OrderState.FILLED: OrderStatus.Filled,
    OrderState.CANCELLED: OrderStatus.Cancelled, OrderState.REJECTED: OrderStatus.Rejected,
    OrderState.EXPIRED: OrderStatus.Expired,
}
FEED_STATES = {
    FeedState.SNAPSHOT_START: FeedHandlerStatus.SnapshotStart, FeedState.SNAPSHOT_END: FeedHandlerStatus.SnapshotEnd,
    FeedState.DISCONNECTED: FeedHandlerStatus.Disconnected,
}


def on_live_event(host: MLThonStrategy, event) -> None:
    """Hand one bus event the MLThon callbacks need (anything else is ignored)."""
    match event:
        case GatewayStatus():
            host.gateway_update(GATEWAY_STATES[event.state], event.reason)
        case RateLimitInfo():
            reset = getattr(event, "reset_ts", 0) or event.ts_init + event.window_ms * 1_000_000
            host.rate_limit_update(event.pct / 100.0, reset)
        case FeedStatus():
            state = FEED_STATES.get(event.state)
            inst = host.instrument_by_symbol(event.symbol)
            if state is not None and inst is not None:
                host.feed_update(inst.get_instrument_id(), state, event.reason)
        case FundingRate():
            inst = host.instrument_by_symbol(event.symbol)
            if inst is not None:
                host.funding_update(inst.get_instrument_id(), event.rate, event.ts_next_funding)
        case InstrumentEvent():
            inst = host.instrument_by_symbol(event.symbol)
            if inst is not None:
                inst.update_sizes(event.tick_size, event.lot_size, event.min_qty)


Send = Callable[[AccountQuery, Callable[[AccountSnapshot | None, str], None]], None]


class BusGateway(LocalGateway):
    """fetch_* answered by the venue: each becomes an AccountQuery that ``send(query, reply)``
    puts on the bus; ``reply(snapshot, error)`` is called (on the runner's thread) with the
    router's AccountSnapshot, or None and the reason when the router did not answer.

    ``coid_of(order_id)`` / ``order_id_of(client_order_id)`` map the runner's order ids to the
    client order ids the router knows orders by. An order the router never got (refused before
    it was sent) is answered from the strategy's own view.
    """

    def __init__(self, send: Send, venue: str, strategy: str, coid_of: Callable[[int], str | None] = lambda _: None,
                 order_id_of: Callable[[str], int | None] = lambda _: None) -> None:
        super().__init__()
        self._send = send
        self.venue = venue
        self.strategy = strategy
        self._coid_of = coid_of
        self._order_id_of = order_id_of

    def _ask(self, env: StratEnv, kind: QueryKind, answer: Callable[[AccountSnapshot], None], **fields) -> None:
        def reply(snapshot: AccountSnapshot | None, error: str) -> None:
            if snapshot is None or not snapshot.ok:
                reason = error or (snapshot.error if snapshot is not None else "no answer")
                env.defer("on_request_reject", env.exchange, GtwRejectCode.Unknown, reason,
                          f"Fetch{kind.name.title().replace('_', '')}")
            elif snapshot.unsupported:
                env.defer("on_unsupported_op", env.exchange, f"Fetch{kind.name.title().replace('_', '')}Info")
            else:
                answer(snapshot)
            env.drain()

        self._send(AccountQuery(venue=self.venue, kind=kind, strategy=self.strategy, **fields), reply)

    def account_info(self, env: StratEnv) -> None:
        self._ask(env, QueryKind.ACCOUNT,
                  lambda snap: env.defer("on_account_info", env.exchange, snap.account or env.strat_name or ""))

    def wallet_info(self, env: StratEnv, coin: str) -> None:
        def answer(snap: AccountSnapshot) -> None:
            bal = next((b for b in snap.balances if b.currency.upper() == coin), None)
            total, free = (bal.total, bal.free) if bal is not None else (0.0, 0.0)
            env.defer("on_wallet_info", env.exchange, coin, Qty(total), Qty(free))

        self._ask(env, QueryKind.WALLET, answer, coin=coin)

    def position_info(self, env: StratEnv, inst: Instrument) -> None:
        def answer(snap: AccountSnapshot) -> None:
            qty = sum(p.qty for p in snap.positions if p.symbol == inst.get_symbol())
            env.defer("on_position_info", env.exchange, inst.get_instrument_id(), Qty(qty))

        self._ask(env, QueryKind.POSITION, answer, symbol=inst.get_symbol())

    def order_status(self, env: StratEnv, inst: Instrument, order: Order) -> None:
        coid = self._coid_of(order.order_id) if order.order_id else None
        if coid is None:
            super().order_status(env, inst, order)
            return

        def answer(snap: AccountSnapshot) -> None:
            if not snap.orders:
                env.defer("on_request_reject", env.exchange, GtwRejectCode.UnknownOrder,
                          f"the router has no order {coid}", "FetchOrderStatus")
                return
            status = snap.orders[0]
            env.defer("on_order_status", env.exchange, inst.get_instrument_id(), order.client_id,
                      status.exchange_order_id or order.exchange_id, order.side,
                      Price(status.price) if status.price is not None else order.price, Qty(status.leaves_qty),
                      ORDER_STATES.get(status.status, OrderStatus.Unset), order.order_type, order.tif,
                      order.exec_instr)

        self._ask(env, QueryKind.ORDER, answer, symbol=inst.get_symbol(), client_order_id=coid)

    def orders_info(self, env: StratEnv, inst: Instrument | None) -> None:
        def answer(snap: AccountSnapshot) -> None:
            orders = []
            for status in snap.orders:
                order_id = self._order_id_of(status.client_order_id)
                known = env.order_for(order_id) if order_id is not None else None
                if known is None:
                    continue                      # not an order of this session's strategy
                view = copy.copy(known)
                view.price = Price(status.price) if status.price is not None else known.price
                view.filled = Qty(status.filled_qty)
                view.exchange_id = status.exchange_order_id or known.exchange_id
                view.status = ORDER_STATES.get(status.status, known.status)
                orders.append(view)
            env.defer("on_orders_info", env.exchange, orders)

        self._ask(env, QueryKind.OPEN_ORDERS, answer, symbol=inst.get_symbol() if inst is not None else "")

    def funding_info(self, env: StratEnv, inst: Instrument) -> None:
        def answer(snap: AccountSnapshot) -> None:
            env.defer("on_funding_info", env.exchange, inst.get_instrument_id(), float(snap.funding_rate or 0.0),
                      snap.next_funding_ts)

        self._ask(env, QueryKind.FUNDING, answer, symbol=inst.get_symbol())
