"""The router's state store: every order it knows (``Tracked``), kept in the ``router_state`` KV
bucket so a restarted router picks up where it stopped.

KV keys (proto.subjects): ``router_order_key`` -> the order's ``OrderStatus`` (written NEW before
the venue is called, then after each change, always after the events it implies were stored);
``router_kill_key`` -> an engaged kill switch; ``router_position_key`` -> the last reconciled
venue position.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import msgspec
from nats.js.errors import KeyNotFoundError, NoKeysError

from tradebus.exchanges import VenueAdapter
from tradebus.proto import OrderState, OrderStatus, Position, ServiceCommand
from tradebus.proto.codec import decoder_for, encode
from tradebus.proto.subjects import KV_ROUTER_STATE, router_kill_key, router_order_key, router_position_key

__all__ = ["OPEN", "StateStore", "Tracked"]

OPEN = {OrderState.NEW, OrderState.ACKED, OrderState.PARTIALLY_FILLED}
_STATUS_DECODER = decoder_for(OrderStatus)


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
    """The orders of one venue account, in memory and in KV."""

    def __init__(self, bus, venue: str):
        self.bus = bus
        self.venue = venue
        self.kv = None
        self.orders: dict[str, Tracked] = {}
        self.by_exchange_id: dict[str, str] = {}  # every venue order id -> client order id

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
        which are tracked again (``adapter_for_symbol`` picks each one's adapter)."""
        prefix = router_order_key(self.venue, "x")[:-1]
        kill_all = router_kill_key(self.venue)
        kills: list[str | None] = []
        loaded: list[Tracked] = []
        for key in await self._keys():
            if key == kill_all or key.startswith(kill_all + "."):
                kills.append(None if key == kill_all else key[len(kill_all) + 1:])
                continue
            if not key.startswith(prefix):
                continue
            try:
                entry = await self.kv.get(key)
                status = _STATUS_DECODER.decode(entry.value)
            except (KeyNotFoundError, msgspec.DecodeError, msgspec.ValidationError):
                continue
            rec = Tracked(status=status, adapter=adapter_for_symbol(status.symbol),
                          ack_published=status.status is not OrderState.NEW)
            self.track(rec)
            if status.exchange_order_id:
                self.alias(rec, status.exchange_order_id)
            loaded.append(rec)
        return kills, loaded

    def track(self, rec: Tracked) -> Tracked:
        self.orders[rec.status.client_order_id] = rec
        return rec

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
        return [r for r in self.orders.values() if r.open and (strategy is None or r.status.strategy == strategy)
                and (symbol is None or r.status.symbol == symbol)]

    async def save(self, rec: Tracked) -> None:
        await self.bus.kv_put(KV_ROUTER_STATE, router_order_key(self.venue, rec.status.client_order_id),
                              encode(rec.status))

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
