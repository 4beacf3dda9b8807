"""The paper flow on a three-node NATS cluster, for the cluster fault scenarios.

- ``NatsCluster(3)``: real nats-servers, streams and buckets declared with three replicas;
- the local sim_exchange (ccxt talks to it unmodified) and an OrderRouter trading it, its Bus
  connected with every node's URL;
- a strategy's steady flow of market orders (:class:`OrderFlow`): each request published on
  ``ord.req.<venue>`` until JetStream acks it, under the same ``Nats-Msg-Id`` on every retry;
- a backtest_worker process on BT_JOBS running a study whose jobs wait on a gate file, so a
  test knows the study is running when it kills a node.

The balance of a scenario is the order ledger's (:class:`tradebus.audit.Audit`).
"""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import ccxt.pro as ccxtpro
import nats.errors

from tradebus.bus import Bus, NatsCluster, NatsConfig
from tradebus.bus.jetstream import wait_replicated
from tradebus.config import BackoffSettings
from tradebus.exchanges import make_adapter
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.proto import NewOrder
from tradebus.proto.codec import encode
from tradebus.proto.subjects import ORDERS_STREAM, order_event_subject, order_request_subject
from tradebus.services.order_router.router import OrderRouter, RouterOptions

REPLICAS = 3
HANG_GUARD = 90.0  # seconds: only stops a hung test, never a measure of speed
SIM_KEYS = {"apiKey": "sim-key", "secret": "sim-secret", "enableRateLimit": False, "timeout": 3000}
FAST = BackoffSettings(initial=0.05, multiplier=2.0, cap=0.5, jitter=0.0)
_strategies = itertools.count(1)


async def eventually(predicate, what: str, timeout: float = HANG_GUARD, step: float = 0.05) -> None:
    """Wait for ``predicate()`` (sync or async); AssertionError naming ``what`` past the hang guard."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(step)


async def connect(cluster: NatsCluster, name: str) -> Bus:
    """A Bus on every node of ``cluster``, reconnecting quickly, declaring with three replicas."""
    return await Bus.connect(NatsConfig(url=cluster.url, name=name, backoff=FAST, stream_replicas=REPLICAS),
                             bad_log_interval=0.0)


async def ready(bus: Bus) -> None:
    """Everything declared with three replicas (once the meta leader is elected), every replica current."""
    await bus.declare_all()
    await wait_replicated(bus.js, timeout=HANG_GUARD)


async def stream_leader(bus: Bus, stream: str) -> str:
    """The server name of ``stream``'s leader, from ``$JS.API.STREAM.INFO``'s cluster info."""
    info = await bus.js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader"
    return info.cluster.leader


async def leader_changed(bus: Bus, stream: str, old: str) -> bool:
    """Whether ``stream`` has a leader again and it is not ``old``."""
    try:
        return await stream_leader(bus, stream) != old
    except Exception:  # no leader yet: the election is running
        return False


def node_of(cluster: NatsCluster, bus: Bus):
    """The node ``bus`` is connected to."""
    port = int(bus.connected_url.rsplit(":", 1)[1])
    return next(node for node in cluster.nodes if node.port == port)


def start_router(bus: Bus, sim, venue: str) -> OrderRouter:
    adapters = [make_adapter("binance:spot", point_ccxt_at_sim(ccxtpro.binance(dict(SIM_KEYS)), sim.url)),
                make_adapter("binance:usdm", point_ccxt_at_sim(ccxtpro.binanceusdm(dict(SIM_KEYS)), sim.url))]
    return OrderRouter(bus, venue, adapters, options=RouterOptions(backoff=FAST, ack_wait=5.0))


@dataclass
class OrderFlow:
    """One strategy's market orders, one every ``interval`` seconds, alternately buying and selling
    ``qty`` of ``symbol``. A request is published until JetStream acks it (``Nats-Msg-Id`` is the
    client order id, so a retry after a lost ack is stored once): what a strategy must do for an
    order to survive a node or leader failing under it."""

    bus: Bus
    venue: str
    symbol: str = "BTC/USDT"
    qty: float = 0.001
    interval: float = 0.05
    strategy: str = field(default_factory=lambda: f"cl{next(_strategies)}")
    sent: list[str] = field(default_factory=list)
    publish_retries: int = 0
    outcomes: int = 0  # order events seen live (a plain subscription: for pacing the test only)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None
    _sub: object = None

    async def start(self) -> OrderFlow:
        async def on_event(_msg) -> None:
            self.outcomes += 1

        self._sub = await self.bus.nc.subscribe(order_event_subject(self.venue, self.strategy), cb=on_event)
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        for n in itertools.count(1):
            if self._stop.is_set():
                return
            coid = f"{self.strategy}-{n}"
            order = NewOrder(client_order_id=coid, strategy=self.strategy, venue=self.venue, symbol=self.symbol,
                             side="buy" if n % 2 else "sell", order_type="market", qty=self.qty, ts_init=time.time_ns())
            while True:
                try:
                    await self.bus.js_store(order_request_subject(self.venue), encode(order),
                                            headers={"Nats-Msg-Id": coid}, timeout=1.0, stream=ORDERS_STREAM)
                    break
                except (TimeoutError, nats.errors.Error):  # no leader for a moment, or a reconnect
                    self.publish_retries += 1
                    await asyncio.sleep(0.05)
            self.sent.append(coid)
            await asyncio.sleep(self.interval)

    async def sent_more(self, count: int) -> None:
        """Wait until ``count`` more orders than now are sent and stored."""
        target = len(self.sent) + count
        await eventually(lambda: len(self.sent) >= target, f"{count} more orders to be sent")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._sub is not None:
            await self._sub.unsubscribe()


@dataclass
class GatedStudy:
    """A sweep whose jobs wait while ``gate/closed`` exists: ``running()`` is true once a worker is
    inside a job, so a fault lands mid-study by construction, not by timing."""

    gate: Path

    def __post_init__(self) -> None:
        self.gate.mkdir(parents=True, exist_ok=True)
        (self.gate / "closed").touch()

    def running(self) -> bool:
        return any(self.gate.glob("started-*"))

    def open(self) -> None:
        (self.gate / "closed").unlink(missing_ok=True)

