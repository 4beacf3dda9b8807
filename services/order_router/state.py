"""The router's state store: the orders it knows (``Tracked``), kept in the ``router_state`` KV
bucket so a restarted router picks up where it stopped.

KV keys (proto.subjects): ``router_order_key`` -> the order's ``OrderStatus`` (written NEW before
the venue is called, then after each change, always after the events it implies were stored);
``router_kill_key`` -> an engaged kill switch; ``router_position_key`` -> the last reconciled
venue position; ``router_carried_key`` -> the strategy positions of the orders purged so far.

Memory stays bounded however many orders pass through. Open orders are kept (and indexed, so
open-order lookups never scan history); of the terminal ones only the last ``keep_done`` are kept
whole, older ones are *forgotten*: only their client and venue ids stay, in a compact map, for
``remember_s`` seconds after they were forgotten, and then their KV entries are purged (no
delete marker left: the bucket's stream stops growing too). A restart rebuilds each strategy's
position from the orders in KV plus the carried positions, which a sweep writes (naming the
orders it is about to purge, so a crash in between counts none twice) before it purges.

Why that window keeps duplicate orders out: a NewOrder's duplicate (an ORDERS redelivery, or the
request published again) carries the request's own ``ts_init``, which is older than the moment
its order was forgotten. So once ``remember_s >= stale_after_s`` (the router's max request age)
have passed since then, any duplicate is older than ``stale_after_s`` and the router rejects it
as stale without calling the venue: the id need not be remembered any more, in memory or in KV.
Within the window a known or forgotten id is recognised (a restart reloads both from KV), and a
late venue view of a forgotten order is ignored instead of being adopted as a new one.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import msgspec
from nats.js.errors import KeyNotFoundError, NoKeysError

from tradebus.exchanges import VenueAdapter
from tradebus.execution import stored_position_change
from tradebus.proto import OrderState, OrderStatus, Position, ServiceCommand
from tradebus.proto.codec import decoder_for, encode
from tradebus.proto.subjects import (
    KV_ROUTER_STATE,
    router_carried_key,
    router_kill_key,
    router_order_key,
    router_position_key,
)

__all__ = ["OPEN", "StateStore", "Tracked"]

OPEN = {OrderState.NEW, OrderState.ACKED, OrderState.PARTIALLY_FILLED}
_STATUS_DECODER = decoder_for(OrderStatus)


class Carried(msgspec.Struct, frozen=True):
    """The ``router_carried_key`` value: (strategy, symbol, position) of the purged orders' fills,
    and the orders the last sweep purged (already counted in ``positions``)."""

    positions: list[tuple[str, str, float]] = []
    purged: list[str] = []


class _Forgotten(msgspec.Struct, array_like=True):
    """What stays of a forgotten order: when it was forgotten, its venue ids, its fills' position."""

    when: int
    exchange_ids: tuple[str, ...]
    strategy: str
    symbol: str
    position: float


@dataclass
class Tracked:
    """The router's view of one order (its KV value is ``status``)."""

    status: OrderStatus
    adapter: VenueAdapter
    trigger_price: float | None = None
    cancel_requested: bool = False
    ack_published: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    order_ids: set[str] = field(default_factory=set)  # every venue id it executes under
    venue_filled: float = 0.0  # the highest cumulative filled quantity a venue view showed
    held: OrderState | None = None  # an end state the venue reported before all its executions
    held_reason: str = ""
    catching_up: bool = False

    @property
    def open(self) -> bool:
        return self.status.status in OPEN


class StateStore:
    """The orders of one venue account, in memory and in KV.

    ``keep_done``: terminal orders kept whole in memory (the most recent); ``remember_s``: how
    long the ids of older ones are remembered (None: for ever); see the module docstring."""

    def __init__(self, bus, venue: str, keep_done: int = 1000, remember_s: float | None = 300.0):
        if keep_done < 0 or (remember_s is not None and remember_s < 0):
            raise ValueError(f"keep_done and remember_s must be >= 0, not {keep_done!r}, {remember_s!r}")
        self.bus = bus
        self.venue = venue
        self.keep_done = keep_done
        self.remember_s = remember_s
        self.kv = None
        self.orders: dict[str, Tracked] = {}  # open orders and the last ``keep_done`` terminal ones
        self.by_exchange_id: dict[str, str] = {}  # every venue id of those -> client order id
        self._open: dict[str, Tracked] = {}
        self._done: OrderedDict[str, None] = OrderedDict()  # terminal ones in ``orders``, oldest first
        self.forgotten: OrderedDict[str, _Forgotten] = OrderedDict()  # client id -> what stays, oldest first
        self._forgotten_exchange_ids: dict[str, str] = {}
        self.carried: dict[tuple[str, str], float] = {}  # (strategy, symbol) -> position of purged orders
        self._prefix = router_order_key(venue, "x")[:-1]

    async def open(self) -> None:
        """Declare the streams and buckets (idempotent) and bind the router's bucket."""
        declared = await self.bus.declare_all()
        self.kv = declared.kv[KV_ROUTER_STATE]

    async def _keys(self) -> list[str]:
        try:
            return await self.kv.keys()
        except NoKeysError:
            return []

    async def load(self, adapter_for_symbol) -> tuple[list[str | None], list[Tracked]]:
        """Read KV: the engaged kill switches (None: the venue-wide one) and the stored orders,
        which are tracked again (``adapter_for_symbol`` picks each one's adapter), less those the
        carried positions already count; terminal orders past the window are purged."""
        kill_all = router_kill_key(self.venue)
        kills: list[str | None] = []
        loaded: list[Tracked] = []
        carried = Carried()
        try:
            carried = msgspec.json.decode((await self.kv.get(router_carried_key(self.venue))).value, type=Carried)
        except KeyNotFoundError:
            pass
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # positions would be wrong: refuse to start
            raise ValueError(f"router_state {router_carried_key(self.venue)} is unreadable: {exc}") from exc
        self.carried = {(strategy, symbol): qty for strategy, symbol, qty in carried.positions}
        counted = set(carried.purged)
        for key in await self._keys():
            if key == kill_all or key.startswith(kill_all + "."):
                kills.append(None if key == kill_all else key[len(kill_all) + 1:])
                continue
            if not key.startswith(self._prefix):
                continue
            try:
                entry = await self.kv.get(key)
                status = _STATUS_DECODER.decode(entry.value)
            except (KeyNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            if status.client_order_id in counted:  # purged by a sweep the router stopped in: again
                self.forgotten[status.client_order_id] = _Forgotten(0, (), status.strategy, status.symbol, 0.0)
                continue
            rec = Tracked(status=status, adapter=adapter_for_symbol(status.symbol),
                          ack_published=status.status is not OrderState.NEW)
            if status.exchange_order_id:
                rec.order_ids.add(status.exchange_order_id)
            loaded.append(rec)
        loaded.sort(key=lambda r: r.status.ts_init)  # the oldest terminal ones are forgotten first
        for rec in loaded:
            for exchange_id in rec.order_ids:
                self.alias(rec, exchange_id)
            self.track(rec, forgotten_at=rec.status.ts_init)
        return kills, loaded

    def track(self, rec: Tracked, forgotten_at: int | None = None) -> Tracked:
        """Keep ``rec`` (``forgotten_at``: when it is forgotten, if it is; default now)."""
        coid = rec.status.client_order_id
        self.orders[coid] = rec
        self._forget_ids(coid)
        self._file(rec, forgotten_at)
        return rec

    def _file(self, rec: Tracked, forgotten_at: int | None = None) -> None:
        """Index ``rec`` as open or terminal; terminal ones beyond ``keep_done`` are forgotten."""
        coid = rec.status.client_order_id
        if rec.open:
            self._open[coid] = rec
            self._done.pop(coid, None)
            return
        self._open.pop(coid, None)
        self._done[coid] = None
        self._done.move_to_end(coid)
        while len(self._done) > self.keep_done:
            old, _ = self._done.popitem(last=False)
            self._forget(self.orders.pop(old), forgotten_at)

    def _forget(self, rec: Tracked, when: int | None) -> None:
        coid = rec.status.client_order_id
        exchange_ids = tuple(i for i in rec.order_ids if self.by_exchange_id.get(i) == coid)
        for exchange_id in exchange_ids:
            del self.by_exchange_id[exchange_id]
            self._forgotten_exchange_ids[exchange_id] = coid
        st = rec.status
        self.forgotten[coid] = _Forgotten(time.time_ns() if when is None else when, exchange_ids, st.strategy,
                                          st.symbol, stored_position_change(st))
        self.forgotten.move_to_end(coid)

    def _forget_ids(self, coid: str) -> None:
        gone = self.forgotten.pop(coid, None)
        for exchange_id in gone.exchange_ids if gone is not None else ():
            self._forgotten_exchange_ids.pop(exchange_id, None)

    def settled(self, rec: Tracked) -> None:
        """``rec``'s state changed: re-index it (an order no longer tracked is left alone)."""
        if self.orders.get(rec.status.client_order_id) is rec:
            self._file(rec)

    def is_forgotten(self, client_order_id: str | None, exchange_id: str | None = None) -> bool:
        """True when the order was terminal and forgotten within the last ``remember_s``."""
        return bool(client_order_id and client_order_id in self.forgotten) or \
            bool(exchange_id and exchange_id in self._forgotten_exchange_ids)

    def forgotten_strategy(self, client_order_id: str) -> str | None:
        """The strategy of a forgotten order (None: not forgotten, or past the window)."""
        gone = self.forgotten.get(client_order_id)
        return None if gone is None else gone.strategy

    async def sweep(self, now: int | None = None) -> int:
        """Drop the forgotten ids older than ``remember_s`` and purge their KV entries (a
        subject purge of the bucket's stream: no value and no delete marker left), their fills
        carried over first. Returns how many were dropped."""
        if self.remember_s is None:
            return 0
        limit = (time.time_ns() if now is None else now) - int(self.remember_s * 1e9)
        expired = []
        positions = dict(self.carried)
        for coid, gone in self.forgotten.items():
            if gone.when > limit:
                break  # the map is in the order they were forgotten (a restart's reloads first)
            expired.append(coid)
            if gone.position:
                key = (gone.strategy, gone.symbol)
                positions[key] = positions.get(key, 0.0) + gone.position
        if not expired:
            return 0
        carried = Carried(positions=[(s, sym, q) for (s, sym), q in sorted(positions.items())], purged=expired)
        await self.bus.kv_put(KV_ROUTER_STATE, router_carried_key(self.venue), msgspec.json.encode(carried))
        self.carried = positions
        stream, subject = f"KV_{KV_ROUTER_STATE}", f"$KV.{KV_ROUTER_STATE}."
        for coid in expired:
            await self.bus.js.purge_stream(stream, subject=subject + router_order_key(self.venue, coid))
            self._forget_ids(coid)
        return len(expired)

    def alias(self, rec: Tracked, exchange_id: str) -> None:
        """``exchange_id`` is one of the venue ids ``rec`` executes under."""
        self.by_exchange_id[exchange_id] = rec.status.client_order_id
        rec.order_ids.add(exchange_id)

    def find(self, client_order_id: str | None, exchange_id: str | None) -> Tracked | None:
        """The tracked order by client id, else by any of its venue ids."""
        rec = self.orders.get(client_order_id or "")
        if rec is None and exchange_id:
            rec = self.orders.get(self.by_exchange_id.get(exchange_id, ""))
        return rec

    def open_orders(self, strategy: str | None = None, symbol: str | None = None) -> list[Tracked]:
        """The open orders (of ``strategy`` / ``symbol``), from the open index."""
        return [r for r in self._open.values() if r.open and (strategy is None or r.status.strategy == strategy)
                and (symbol is None or r.status.symbol == symbol)]

    async def save(self, rec: Tracked) -> None:
        await self.bus.kv_put(KV_ROUTER_STATE, router_order_key(self.venue, rec.status.client_order_id),
                              encode(rec.status))
        self.settled(rec)

    async def save_position(self, position: Position) -> None:
        await self.kv.put(router_position_key(self.venue, position.symbol), encode(position))

    async def save_kill(self, strategy: str | None, command: ServiceCommand) -> None:
        await self.kv.put(router_kill_key(self.venue, strategy), encode(command))

    async def delete_kills(self, strategy: str | None) -> None:
        """Delete the kill switch of ``strategy`` (None: every switch on this venue)."""
        if strategy is None:
            base = router_kill_key(self.venue)
            keys = [k for k in await self._keys() if k == base or k.startswith(base + ".")]
        else:
            keys = [router_kill_key(self.venue, strategy)]
        for key in keys:
            await self.kv.delete(key)
