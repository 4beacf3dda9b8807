"""Market replay: the real recording rebuilds Binance's book, the synthetic market is seeded and
deterministic, and symbols without data fall back to it."""
from __future__ import annotations

import csv
import gzip
import math
import time
from decimal import Decimal

import pytest

from tradebus.data import data_dir
from tradebus.services.sim_exchange.engine import Engine
from tradebus.services.sim_exchange.replay import DEPTH, SNAPSHOT, TRADE, parse_speed, recorded_feed
from tradebus.services.sim_exchange.server import SimExchange
from tradebus.services.sim_exchange.settings import default_config, load_config
from tradebus.services.sim_exchange.testing import running_sim

from .conftest import until

DATA = data_dir()
needs_data = pytest.mark.skipif(not (DATA / "binance_spot_BTCUSDT_20240808T2354Z_depth_snapshot.csv").exists(),
                                reason="shared/data recordings not present")


def test_default_config_lists_the_issue_venue():
    config = load_config()
    assert [(i.symbol, i.market) for i in config.instruments] == [
        ("BTC/USDT", "spot"), ("ETH/USDT", "spot"), ("BTC/USDT:USDT", "usdm")]
    [account] = config.accounts
    assert (account.api_key, account.secret) == ("sim-key", "sim-secret")
    assert account.spot == {"USDT": "100000", "BTC": "1"} and account.futures == {"USDT": "100000"}


def test_config_typos_fail_loudly(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text("seed: 1\nspeeed: max\n")
    with pytest.raises(Exception, match="speeed"):
        load_config(path)


@pytest.mark.parametrize("text, value", [("max", math.inf), ("0", 0.0), ("1", 1.0), ("10x", 10.0), (2.5, 2.5)])
def test_parse_speed(text, value):
    assert parse_speed(text) == value


@pytest.mark.parametrize("text", ["-1", "fast", "nan"])
def test_bad_speed_is_refused(text):
    with pytest.raises(ValueError):
        parse_speed(text)


def reference_book(limit: int):
    """Independent rebuild of the spot book from the CSVs with Binance's documented rule."""
    book = {"bid": {}, "ask": {}}
    with open(DATA / "binance_spot_BTCUSDT_20240808T2354Z_depth_snapshot.csv") as fh:
        rows = list(csv.DictReader(fh))
    last_id = int(rows[0]["last_update_id"])
    for row in rows:
        book[row["side"]][Decimal(row["price"])] = Decimal(row["qty"])
    applied, previous = 0, None
    with gzip.open(DATA / "binance_spot_BTCUSDT_20240808T2354Z_depth_updates.csv.gz", "rt") as fh:
        for row in csv.DictReader(fh):
            first, last = int(row["first_update_id"]), int(row["last_update_id"])
            if last <= last_id:
                continue
            if (first, last) != previous:
                if applied == limit:
                    break
                assert previous is None or first == previous[1] + 1
                previous, applied = (first, last), applied + 1
            qty = Decimal(row["qty"])
            if qty:
                book[row["side"]][Decimal(row["price"])] = qty
            else:
                book[row["side"]].pop(Decimal(row["price"]), None)
    return sorted(book["bid"].items(), reverse=True), sorted(book["ask"].items())


@needs_data
def test_recording_rebuilds_the_binance_book():
    config = default_config()
    sim = SimExchange(config)
    inst = sim.engine.instruments[("spot", "BTCUSDT")]
    engine = Engine([inst], [], clock=lambda: 0)
    feed = recorded_feed(config.instruments[0], DATA)
    depth_events = 0
    for _, kind, payload in feed:
        if kind == SNAPSHOT:
            engine.seed_book(inst, *payload)
        elif kind == DEPTH:
            engine.apply_depth(inst, payload)
            depth_events += 1
            if depth_events == 1500:
                break
        elif kind == TRADE:
            engine.apply_trade(inst, *payload)
    bids, asks = reference_book(1500)
    book = engine.books[inst.key]
    assert book.bids.top(2000) == bids and book.asks.top(2000) == asks
    assert len(engine.trades[inst.key]) > 0


async def run_synthetic(seed: int, steps: int = 1500):
    config = default_config(speed="0", seed=seed)
    async with running_sim(config) as sim:
        sim.step(steps)
        trades = [(t.trade_id, t.price, t.qty, t.buyer_maker) for t in sim.engine.trades[("spot", "ETHUSDT")]]
        book = sim.engine.books[("spot", "ETHUSDT")]
        return trades, book.bids.top(20), book.asks.top(20)


async def test_synthetic_market_is_deterministic_per_seed():
    first, again, other = await run_synthetic(3), await run_synthetic(3), await run_synthetic(4)
    assert first == again and len(first[0]) > 50
    assert first != other


async def test_symbols_without_data_get_a_seeded_synthetic_market(tmp_path):
    sim = SimExchange(default_config(speed="0"), data=tmp_path)
    await sim.start()
    try:
        sim.step(300)
        btc = sim.engine.reference_price(sim.instrument("BTCUSDT"))
        eth = sim.engine.reference_price(sim.instrument("ETHUSDT"))
        perp = sim.engine.reference_price(sim.instrument("BTCUSDT", "usdm"))
        assert abs(btc - Decimal("61838")) < 300 and abs(perp - Decimal("61800")) < 300
        assert abs(eth - Decimal("2600")) < 30  # no klines file either: the configured price
        assert sim.engine.klines[("spot", "ETHUSDT")][0].open_time >= 0
    finally:
        await sim.stop()


async def test_no_data_folder_at_all_still_gets_a_synthetic_market(monkeypatch, tmp_path):
    """Started where no shared/data exists and TRADEBUS_DATA_DIR is unset (a container, say)."""
    monkeypatch.delenv("TRADEBUS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    sim = SimExchange(default_config(speed="0"))
    assert sim.data_dir is None
    await sim.start()
    try:
        sim.step(300)
        assert sim.engine.reference_price(sim.instrument("BTCUSDT")) > 0
    finally:
        await sim.stop()


async def test_speed_max_runs_by_itself_and_zero_holds():
    async with running_sim(default_config(speed="0")) as sim:
        before = sim.replay.events_applied
        sim.set_speed("max")
        await until(lambda: sim.replay.events_applied > before + 2000)
        sim.set_speed("0")
        held = sim.replay.events_applied
        for _ in range(5):
            await until(lambda: True)
        assert sim.replay.events_applied == held


async def test_real_time_speed_never_runs_ahead_of_the_data_clock():
    """At 1x an event is applied no earlier than its recorded offset (a floor, not a speed claim)."""
    async with running_sim(default_config(speed="0")) as sim:
        first = sim.replay._heap[0][0]  # the next event's recorded offset
        started = time.monotonic()
        sim.set_speed("1")
        await until(lambda: sim.replay.last_time - first > 300_000_000)  # 0.3 s of recorded time
        assert time.monotonic() - started >= (sim.replay.last_time - first) / 1e9


@needs_data
async def test_a_recording_with_bad_rows_is_reported_and_replayed(tmp_path, caplog):
    """Bad rows are logged with their file and line and skipped; the venue keeps replaying."""
    spot = "binance_spot_BTCUSDT_20240808T2354Z_"
    (tmp_path / (spot + "depth_snapshot.csv")).write_bytes((DATA / (spot + "depth_snapshot.csv")).read_bytes())
    for name, keep in (("depth_updates.csv.gz", 3000), ("trades.csv.gz", 300)):
        with gzip.open(DATA / (spot + name), "rt") as fh:
            lines = fh.read().splitlines()[:keep]
        lines[100] = lines[100].replace(",", ";")          # line 101: one column
        with gzip.open(tmp_path / (spot + name), "wt") as fh:
            fh.write("\n".join(lines) + "\n")
    caplog.set_level("WARNING", logger="tradebus.sim_exchange.replay")
    sim = SimExchange(default_config(speed="0"), data=tmp_path)
    await sim.start()
    try:
        sim.step(400)
        inst = sim.instrument("BTCUSDT")
        assert len(sim.engine.trades[inst.key]) > 0
        assert sim.engine.reference_price(inst) > Decimal("60000")   # the recorded book, not a synthetic one
    finally:
        await sim.stop()
    reports = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert any(m.startswith(spot + "depth_updates.csv.gz line 101 skipped: expected 7 columns") for m in reports)
