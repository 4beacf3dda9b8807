"""The live half of the MLThon environment: bus events in, venue queries out.

strategy_runner hosts an :class:`MLThonStrategy` like any strategy; these helpers feed it what
only the live stack has: the router's gateway status and rate-limit use (``acct.*``), feed
status and funding (``md.*``), and the answers to ``fetch_*`` from the venue, asked through the
order router (an AccountQuery on ``svc.order_router.query.<venue>``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tradebus.mlthon.basics.defs import FeedHandlerStatus, GtwRejectCode, GtwStatus
from tradebus.mlthon.basics.qty import Qty
from tradebus.mlthon.gateway import LocalGateway
from tradebus.proto import (
    AccountQuery,
    AccountSnapshot,
    FeedState,
    FeedStatus,
    FundingRate,
    GatewayState,
    GatewayStatus,
    QueryKind,
    RateLimitInfo,
)

if TYPE_CHECKING:
    from tradebus.mlthon.basics.instrument import Instrument
    from tradebus.mlthon.env import StratEnv
    from tradebus.mlthon.host import MLThonStrategy

__all__ = ["BusGateway", "on_live_event", "GATEWAY_STATES", "FEED_STATES"]

GATEWAY_STATES = {
    GatewayState.READY_TO_TRADE: GtwStatus.ReadyToTrade, GatewayState.CONNECTING: GtwStatus.Connecting,
    GatewayState.MAINTENANCE: GtwStatus.Maintenance, GatewayState.DISCONNECTED: GtwStatus.Connecting,
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
            reset = event.ts_init + event.window_ms * 1_000_000
            host.rate_limit_update(event.pct / 100.0, int(event.limit), reset)
        case FeedStatus():
            state = FEED_STATES.get(event.state)
            inst = host.instrument_by_name(event.symbol)
            if state is not None and inst is not None:
                host.feed_update(inst.get_instrument_id(), state, event.reason)
        case FundingRate():
            inst = host.instrument_by_name(event.symbol)
            if inst is not None:
                host.funding_update(inst.get_instrument_id(), event.rate, event.ts_next_funding)


Send = Callable[[AccountQuery, Callable[[AccountSnapshot | None, str], None]], None]


class BusGateway(LocalGateway):
    """fetch_* answered by the venue: each becomes an AccountQuery that ``send(query, reply)``
    puts on the bus; ``reply(snapshot, error)`` is called (on the runner's thread) with the
    router's AccountSnapshot, or None and the reason when the router did not answer.

    Order status and the open orders are the strategy's own view, which the router keeps in
    step with the venue; they are answered locally, as in the backtest, so both agree.
    """

    def __init__(self, send: Send, venue: str, strategy: str) -> None:
        super().__init__()
        self._send = send
        self.venue = venue
        self.strategy = strategy

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

    def funding_info(self, env: StratEnv, inst: Instrument) -> None:
        def answer(snap: AccountSnapshot) -> None:
            env.defer("on_funding_info", env.exchange, inst.get_instrument_id(), float(snap.funding_rate or 0.0),
                      snap.next_funding_ts)

        self._ask(env, QueryKind.FUNDING, answer, symbol=inst.get_symbol())
