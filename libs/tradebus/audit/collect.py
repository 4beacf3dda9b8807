"""Gather the ledger's inputs from a running stack: the ORDERS stream, the venue's own records
(sim_exchange's ``/admin/records``), the strategies' journals and BT_RESULTS.

An ``Audit`` marks where a scenario starts (stream sequence, venue clock and wallets, journal
offsets), then ``tally()`` reconciles everything that happened since::

    audit = Audit(bus, sim_url, journals={"pulse_a": path})
    await audit.start()
    ...                                   # order flow, faults
    tally = await audit.settle("router killed")   # waits until it balances, or gives up
    assert_balanced(tally)
"""
from __future__ import annotations

import asyncio
import os
from decimal import Decimal

import aiohttp
from nats.js import api

from tradebus.proto import BacktestResult, OrderEvent, OrderRequest
from tradebus.proto.subjects import BT_RESULTS_STREAM, ORDERS_STREAM, bt_result_subject

from .journal import journal_size, read_journal
from .ledger import BusOrders, Tally, VenueFill, VenueOrder, balance

__all__ = ["Audit", "read_orders", "venue_records", "study_result_jobs"]


async def _read(bus, stream: str, subject: str, after_seq: int):
    """(seq, msg) of every message on ``subject`` in ``stream`` after ``after_seq``."""
    info = await bus.stream_info(stream)
    last = info.state.last_seq
    if last <= after_seq:
        return
    sub = await bus.js.subscribe(subject, stream=stream, ordered_consumer=True, config=api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1))
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=2.0)
            except TimeoutError:
                return  # nothing more on this subject up to ``last``
            seq = msg.metadata.sequence.stream
            yield seq, msg
            if seq >= last:
                return
    finally:
        await sub.unsubscribe()


async def read_orders(bus, after_seq: int = 0) -> tuple[BusOrders, int]:
    """The NewOrders and order events stored in ORDERS after ``after_seq``; and how many messages
    did not decode (malformed input someone published on an order subject)."""
    orders, bad = BusOrders(), 0
    async for _, msg in _read(bus, ORDERS_STREAM, ">", after_seq):
        if msg.subject.startswith("ord.req."):
            request = bus.decode(msg.subject, msg.data, OrderRequest)
            if request is None:
                bad += 1
            else:
                orders.add_request(request)
        else:
            event = bus.decode(msg.subject, msg.data, OrderEvent)
            if event is None:
                bad += 1
            else:
                orders.add_event(event)
    return orders, bad


async def study_result_jobs(bus, study: str) -> list[str]:
    """The job id of every result stored for ``study`` (a job stored twice appears twice)."""
    jobs = []
    async for _, msg in _read(bus, BT_RESULTS_STREAM, bt_result_subject(study), 0):
        result = bus.decode(msg.subject, msg.data, BacktestResult)
        if result is not None:
            jobs.append(result.job_id)
    return jobs


async def venue_records(sim_url: str, api_key: str = "sim-key", since_ms: int = 0) -> dict:
    """sim_exchange's own records of one account (``/admin/records``)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim_url}/admin/records", params={"api_key": api_key, "since_ms": since_ms},
                               timeout=aiohttp.ClientTimeout(total=10)) as response:
            response.raise_for_status()
            return await response.json()


def _venue(records: dict) -> tuple[list[VenueOrder], list[VenueFill]]:
    orders = [VenueOrder(client_id=o["client_id"], order_id=o["order_id"], symbol=o["symbol"], side=o["side"],
                         status=o["status"], qty=float(o["qty"]), executed=float(o["executed"]))
              for o in records["orders"]]
    fills = [VenueFill(client_id=f["client_id"], trade_id=f["trade_id"], symbol=f["symbol"], side=f["side"],
                       qty=float(f["qty"]), price=float(f["price"]), fee=float(f["fee"]),
                       fee_currency=f["fee_currency"], time_ms=f["time"])
             for f in records["fills"]]
    return orders, fills


class Audit:
    """One scenario's window over a running stack (see the module docstring)."""

    def __init__(self, bus, sim_url: str, journals: dict[str, str | os.PathLike] | None = None,
                 api_key: str = "sim-key", assets: tuple[str, ...] = ("BTC", "ETH")):
        self.bus, self.sim_url, self.api_key = bus, sim_url, api_key
        self.journals = dict(journals or {})
        self.assets = assets
        self.studies: dict[str, set[str]] = {}
        self.undecodable = 0
        self._seq = 0
        self._since_ms = 0
        self._offsets: dict[str, int] = {}
        self._wallets: dict[str, Decimal] = {}
        self._earlier: list[dict] = []  # records of venue incarnations that were restarted since start

    async def start(self, from_beginning: bool = False) -> None:
        """Mark the scenario's start: now, or (``from_beginning``) the start of the ORDERS stream,
        of the venue's life (its configured wallets) and of the journals."""
        records = await venue_records(self.sim_url, self.api_key, since_ms=2 ** 62)
        if from_beginning:
            self._seq, self._since_ms, self._offsets = 0, 0, {}
            self._wallets = {a: Decimal(records["initial_spot"].get(a, "0")) for a in self.assets}
        else:
            self._seq = (await self.bus.stream_info(ORDERS_STREAM)).state.last_seq
            self._since_ms, self._wallets = records["now"], self._spot(records)
            self._offsets = {name: journal_size(path) for name, path in self.journals.items()}
        self._earlier = []

    def expect_study(self, study: str, job_ids) -> None:
        self.studies[study] = set(job_ids)

    async def venue_restarting(self) -> None:
        """Call just before the venue restarts (a sim forgets everything): keep what it recorded.
        The restarted venue's records start at its configured wallets and the start of time."""
        self._earlier.append(await venue_records(self.sim_url, self.api_key, self._since_ms))

    def _spot(self, records: dict) -> dict[str, Decimal]:
        return {a: Decimal(records["spot"].get(a, "0")) for a in self.assets}

    async def orders(self) -> BusOrders:
        """The NewOrders and order events stored since ``start()``."""
        bus_orders, self.undecodable = await read_orders(self.bus, self._seq)
        return bus_orders

    async def tally(self, scenario: str = "", require_final: bool = True) -> Tally:
        bus_orders = await self.orders()
        current = await venue_records(self.sim_url, self.api_key, self._since_ms)
        incarnations = [*self._earlier, current]
        orders, fills = [], []
        change = {a: Decimal(0) for a in self.assets}
        for i, records in enumerate(incarnations):
            o, f = _venue(records)
            orders += o
            fills += f
            # a restarted venue starts again from its configured wallets
            start = self._wallets if i == 0 else {a: Decimal(v) for a, v in records["initial_spot"].items()}
            now = self._spot(records)
            for a in self.assets:
                change[a] += now[a] - start.get(a, Decimal(0))
        strategies = {name: read_journal(path, self._offsets.get(name, 0)) for name, path in self.journals.items()}
        results = {study: await study_result_jobs(self.bus, study) for study in self.studies}
        return balance(bus_orders, orders, fills, strategies=strategies,
                       balance_change={a: float(v) for a, v in change.items()},
                       study_jobs=self.studies or None, study_results=results,
                       require_final=require_final, scenario=scenario)

    async def settle(self, scenario: str = "", timeout: float = 20.0, require_final: bool = True) -> Tally:
        """Tally until it balances (in-flight orders finish, late fills arrive) or ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            tally = await self.tally(scenario, require_final)
            if tally.balanced or loop.time() > deadline:
                return tally
            await asyncio.sleep(0.5)
