"""A paused sim_exchange per module, real NATS JetStream, and an OrderRouter per test on a fresh
venue name (its own durable consumer and KV keys) trading the sim's ``sim-key`` account."""
from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from decimal import Decimal

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import msgspec
import pytest
import pytest_asyncio

from tradebus.exchanges import make_adapter
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.execution import RiskEngine
from tradebus.proto import ORDER_EVENT_DECODER, NewOrder, OrderStatus
from tradebus.proto.codec import decode, encode
from tradebus.proto.subjects import order_event_subject, order_event_wildcard, order_request_subject, router_order_key
from tradebus.retry import BackoffSettings
from tradebus.services.order_router.router import OrderRouter, RouterOptions
from tradebus.services.sim_exchange.settings import Account, default_config
from tradebus.services.sim_exchange.testing import running_sim, until  # noqa: F401  (re-exported to the tests)

KEYS = {"apiKey": "sim-key", "secret": "sim-secret", "enableRateLimit": False, "timeout": 3000}
MOVER = {"apiKey": "sim-key-2", "secret": "sim-secret-2", "enableRateLimit": False}
_venues = itertools.count(1)
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


def sim_config():
    config = default_config(speed="0")
    mover = Account(api_key="sim-key-2", secret="sim-secret-2",
                    spot={"USDT": "5000000", "BTC": "100", "ETH": "1000"}, futures={"USDT": "5000000"})
    return msgspec.structs.replace(config, accounts=[*config.accounts, mover])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with running_sim(sim_config()) as venue:
        yield venue



def adapters_for(sim, pro: bool = True, order_entry: str | None = None, **extra):
    module = ccxtpro if pro else ccxt_async
    spot = point_ccxt_at_sim(module.binance({**KEYS, **extra}), sim.url)
    usdm = point_ccxt_at_sim(module.binanceusdm({**KEYS, **extra}), sim.url)
    return [make_adapter("binance:spot", spot, order_entry=order_entry),
            make_adapter("binance:usdm", usdm, order_entry=order_entry)]


class Harness:
    """A router plus everything it published on ord.evt.<venue>.>."""

    def __init__(self, bus, sim, venue, risk=None, options=None, order_entry=None, **ccxt_extra):
        self.bus, self.sim, self.venue = bus, sim, venue
        self.order_entry = order_entry
        self.risk = risk or RiskEngine()
        self.options = options or RouterOptions(backoff=BackoffSettings(initial=0.05, cap=0.5))
        self.ccxt_extra = ccxt_extra
        self.events: list = []
        self.router: OrderRouter | None = None
        self._sub = None

    async def start(self):
        if self._sub is None:
            async def on_evt(msg):
                self.events.append(ORDER_EVENT_DECODER.decode(msg.data))
            self._sub = await self.bus.nc.subscribe(order_event_wildcard(self.venue), cb=on_evt)
        adapters = adapters_for(self.sim, order_entry=self.order_entry, **self.ccxt_extra)
        self.router = OrderRouter(self.bus, self.venue, adapters, self.risk, self.options)
        await self.router.start()
        await until(self.router.ready.is_set)
        return self.router

    async def stop(self):
        if self.router is not None:
            await self.router.stop()
            self.router = None

    async def send(self, request, msg_id: str | None = None):
        # scoped to the venue: tests reuse client ids, and JetStream drops a repeated id for 2 minutes
        headers = {"Nats-Msg-Id": f"{self.venue}.{msg_id}"} if msg_id else None
        await self.bus.js.publish(order_request_subject(self.venue, request.strategy), encode(request), headers=headers)

    def order(self, coid, symbol=SPOT, **fields) -> NewOrder:
        return NewOrder(client_order_id=coid, strategy=fields.pop("strategy", "s1"), venue=self.venue, symbol=symbol,
                        ts_init=time.time_ns(), **fields)

    def of(self, kind, coid=None) -> list:
        return [e for e in self.events if isinstance(e, kind) and (coid is None or getattr(e, "client_order_id", None) == coid)]

    async def stored(self, kind, coid=None, strategy="s1") -> list:
        """The ``kind`` events of ``coid`` kept in the ORDERS stream, in order: what consumers get.
        (A stop can cut the router off between an event and its KV write; after the restart the
        event is sent again under the same Nats-Msg-Id, which the stream keeps once and a plain
        subscriber like ``events`` sees twice.)"""
        sub = await self.bus.js.subscribe(order_event_subject(self.venue, strategy), ordered_consumer=True)
        out = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    return out
                event = ORDER_EVENT_DECODER.decode(msg.data)
                if isinstance(event, kind) and (coid is None or getattr(event, "client_order_id", None) == coid):
                    out.append(event)
        finally:
            await sub.unsubscribe()

    async def wait(self, kind, coid=None, n=1, timeout=10.0, replay=True):
        """The ``kind`` events of ``coid`` once there are ``n``; ``replay``: advance the paused
        market meanwhile (False while an order rests where replayed trades would fill it: the
        more polls a loaded machine takes, the further the market would move)."""
        step = (lambda: self.sim.step(2)) if replay else None
        await until(lambda: len(self.of(kind, coid)) >= n, timeout, step=step)
        return self.of(kind, coid)

    async def kv_status(self, coid, reached: Callable[[OrderStatus], bool] = lambda st: True,
                        timeout: float = 10.0) -> OrderStatus:
        """``coid``'s OrderStatus in the router's KV once ``reached(status)``; after ``timeout``,
        as it is, for the caller's assertion to report. The router stores a change's events
        before its KV write, so a subscriber can see an event while KV still holds the state before."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = decode((await self.router.kv.get(router_order_key(self.venue, coid))).value, OrderStatus)
            if reached(status) or loop.time() > deadline:
                return status
            await asyncio.sleep(0.01)


@pytest.fixture
async def harness(bus, sim):
    h = Harness(bus, sim, f"rt{next(_venues)}")
    yield h
    sim.set_faults(latency_ms=0, rate_limit_rate=0, timeout_rate=0, error_rate=0, maintenance=False)
    await h.stop()
    if h._sub is not None:
        await h._sub.unsubscribe()
    for cls in (ccxt_async.binance, ccxt_async.binanceusdm):  # leave the shared account flat and empty
        ex = point_ccxt_at_sim(cls({**KEYS, "options": {"warnOnFetchOpenOrdersWithoutSymbol": False}}), sim.url)
        try:
            await ex.load_markets()
            for o in await ex.fetch_open_orders():
                try:
                    await ex.cancel_order(o["id"], o["symbol"])
                except Exception:
                    pass
        finally:
            await ex.close()


@pytest.fixture
async def mover_spot(sim):
    ex = point_ccxt_at_sim(ccxt_async.binance(MOVER), sim.url)
    await ex.load_markets()
    yield ex
    await ex.close()


def top(sim, symbol: str = "BTCUSDT", market: str = "spot", n: int = 5):
    book = sim.engine.books[(market, symbol)]
    return book.bids.top(n), book.asks.top(n)


def sell_into(sim, price: float, symbol: str = "BTCUSDT", market: str = "spot") -> None:
    """Another account sells (IOC, in the engine) everything bid at ``price`` or better, so a
    resting buy at ``price`` fills completely whatever its queue position."""
    bids = sim.engine.books[(market, symbol)].bids.top(500)
    qty = sum(q for p, q in bids if p >= Decimal(str(price)))
    sim.engine.place(sim.account("sim-key-2"), sim.instrument(symbol, market), side="SELL", type="LIMIT",
                     qty=qty, price=Decimal(str(price)), tif="IOC")


def resting_bid(sim, adapter, symbol: str = SPOT, market: str = "spot") -> float:
    """A buy price that rests: the mid rounded to the tick, or the best bid when the spread is
    one tick wide (the rounded mid would then be the best ask and take)."""
    bids, asks = top(sim, symbol.split(":")[0].replace("/", ""), market)
    bid, ask = float(bids[0][0]), float(asks[0][0])
    price = float(adapter.price(symbol, (bid + ask) / 2))
    return price if price < ask else bid
