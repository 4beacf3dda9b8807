"""A sim_exchange per test module (replay paused, so tests step the market themselves) and
unmodified ccxt / ccxt.pro Binance clients pointed at it."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import msgspec
import pytest
import pytest_asyncio

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.services.sim_exchange.settings import Account, default_config
from tradebus.services.sim_exchange.testing import running_sim, until  # noqa: F401  (re-exported to the tests)

KEYS = {"apiKey": "sim-key", "secret": "sim-secret", "enableRateLimit": False}


MOVER = {"apiKey": "sim-key-2", "secret": "sim-secret-2", "enableRateLimit": False}


def sim_config(**overrides):
    """The packaged default, paused, plus a second well-funded account that moves prices in tests."""
    config = default_config(speed="0", **overrides)
    mover = Account(api_key="sim-key-2", secret="sim-secret-2", spot={"USDT": "5000000", "BTC": "100",
                                                                       "ETH": "1000"},
                    futures={"USDT": "5000000"}, leverage=20)
    return msgspec.structs.replace(config, accounts=[*config.accounts, mover])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with running_sim(sim_config()) as venue:
        yield venue


def make(cls, sim, **extra):
    return point_ccxt_at_sim(cls({**KEYS, **extra}), sim.url)


@pytest.fixture
async def spot(sim):
    ex = make(ccxt_async.binance, sim)
    await ex.load_markets()
    yield ex
    await ex.close()


@pytest.fixture
async def usdm(sim):
    ex = make(ccxt_async.binanceusdm, sim)
    await ex.load_markets()
    yield ex
    await ex.close()


@pytest.fixture
async def mover_spot(sim):
    ex = point_ccxt_at_sim(ccxt_async.binance(MOVER), sim.url)
    await ex.load_markets()
    yield ex
    await ex.close()


@pytest.fixture
async def mover_usdm(sim):
    ex = point_ccxt_at_sim(ccxt_async.binanceusdm(MOVER), sim.url)
    await ex.load_markets()
    yield ex
    await ex.close()


@pytest.fixture
async def pro_spot(sim):
    ex = make(ccxtpro.binance, sim)
    await ex.load_markets()
    yield ex
    await ex.close()


@pytest.fixture
async def pro_usdm(sim):
    ex = make(ccxtpro.binanceusdm, sim)
    await ex.load_markets()
    yield ex
    await ex.close()


def D(value) -> Decimal:
    return Decimal(str(value))


def balances(sim, api_key: str = "sim-key") -> dict[str, tuple[Decimal, Decimal]]:
    """Spot (free, locked) per asset, read from the engine."""
    return {asset: (v[0], v[1]) for asset, v in sim.account(api_key).spot.items()}


def sweep(levels: list[tuple[Decimal, Decimal]], qty: Decimal) -> list[tuple[Decimal, Decimal]]:
    """Independent reference: the fills a market order of ``qty`` gets from ``levels`` (best first)."""
    fills = []
    for price, available in levels:
        if qty <= 0:
            break
        take = min(qty, available)
        fills.append((price, take))
        qty -= take
    return fills



def top(sim, symbol: str = "BTCUSDT", market: str = "spot", n: int = 50):
    """(bids, asks) best first, as the engine holds them."""
    book = sim.engine.books[(market, symbol)]
    return book.bids.top(n), book.asks.top(n)


def last_price(sim, symbol: str = "BTCUSDT", market: str = "spot") -> Decimal:
    return sim.engine.reference_price(sim.engine.instruments[(market, symbol)])


async def stepping(sim, awaitable, events: int = 10, timeout: float = 5.0):
    """Await a ccxt.pro watch while the paused replay advances ``events`` at a time."""
    task = asyncio.ensure_future(awaitable)
    await until(task.done, timeout=timeout, step=lambda: sim.step(events))
    return task.result()
