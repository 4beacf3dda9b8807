"""`tradebus data download` pages sim_exchange's REST klines and trades through real ccxt, and resumes."""
from __future__ import annotations

import asyncio
from collections import Counter

import ccxt.async_support as ccxt_async
import pytest
import pytest_asyncio

from tradebus.cli import main as cli_main
from tradebus.data.download import download, output_path
from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.marketdata.replay import Replayer, open_sources
from tradebus.proto import Bar, Trade
from tradebus.services.sim_exchange.settings import default_config
from tradebus.services.sim_exchange.testing import running_sim


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with running_sim(default_config(speed="0")) as venue:
        for _ in range(40):  # print a few thousand trades
            venue.step(100)
            await asyncio.sleep(0)
        yield venue


@pytest.fixture
async def spot(sim):
    ex = point_ccxt_at_sim(ccxt_async.binance({"enableRateLimit": False}), sim.url)
    yield ex
    await ex.close()


def csv_rows(path):
    return path.read_text().splitlines()


async def replayed(path, symbol="BTC/USDT"):
    out = []

    async def pub(e):
        out.append(e)
    c = Counter()
    await Replayer(open_sources([path], "sim", symbol, counters=c), pub, counters=c).run()
    assert c["bad.replay"] == 0
    return out


async def test_klines_download_pages_resumes_and_replays(sim, spot, tmp_path):
    klines = sim.engine.klines[("spot", "ETHUSDT")]
    assert len(klines) > 400  # the 1m history the sim serves before its replay start
    first, last = klines[0].open_time, klines[-1].open_time
    full = tmp_path / "full.csv"
    assert await download(spot, "ETH/USDT", "klines", full, first, last, "1m", limit=97) == len(klines)
    part = tmp_path / "part.csv"
    half = klines[len(klines) // 2].open_time
    n1 = await download(spot, "ETH/USDT", "klines", part, first, half, "1m", limit=97)
    n2 = await download(spot, "ETH/USDT", "klines", part, first, last, "1m", limit=97)
    assert n1 + n2 == len(klines) and csv_rows(part) == csv_rows(full)
    bars = await replayed(full, "ETH/USDT")
    assert [b.ts_open for b in bars] == [k.open_time * 10**6 for k in klines]
    assert all(isinstance(b, Bar) for b in bars) and bars[-1].close == float(klines[-1].close)


async def test_trades_download_pages_by_time_and_id_and_resumes(sim, spot, tmp_path):
    trades = list(sim.engine.trades[("spot", "BTCUSDT")])
    assert len(trades) > 500
    since, until = trades[0].time, trades[-1].time
    full = tmp_path / "t.csv"
    assert await download(spot, "BTC/USDT", "trades", full, since, until, limit=150) == len(trades)
    part = tmp_path / "p.csv"
    cut = trades[len(trades) // 3].time
    n1 = await download(spot, "BTC/USDT", "trades", part, since, cut, limit=150)
    n2 = await download(spot, "BTC/USDT", "trades", part, since, until, limit=150)
    assert n1 + n2 == len(trades) and csv_rows(part) == csv_rows(full)
    got = await replayed(full)
    assert [t.trade_id for t in got] == [str(t.trade_id) for t in trades]
    assert all(isinstance(t, Trade) for t in got)
    assert [(t.price, t.side) for t in got[:50]] == [(float(x.price), "sell" if x.buyer_maker else "buy")
                                                     for x in trades[:50]]


async def test_cli_download(sim, tmp_path):
    klines = sim.engine.klines[("spot", "ETHUSDT")]
    argv = ["data", "download", "--venue", "sim", "--exchange", "binance", "--symbol", "ETH/USDT", "--kind",
            "klines", "--since", str(klines[0].open_time), "--until", str(klines[9].open_time), "--out",
            str(tmp_path), "--sim-url", sim.url]
    assert await asyncio.to_thread(cli_main, argv) == 0
    path = output_path(tmp_path, "sim", "ETH/USDT", "klines")
    assert len(csv_rows(path)) == 11
