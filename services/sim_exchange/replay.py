"""Market replay: recorded Binance depth and trades, or a seeded synthetic market, at a chosen speed.

A feed yields ``(t_ns, kind, payload)`` in time order: ``DEPTH`` carries absolute level changes
``[(is_bid, price, qty)]``, ``TRADE`` carries ``(price, qty, buyer_maker)`` and ``SNAPSHOT`` carries
``(bids, asks)`` that replace the market liquidity; ``TRADES`` is a tuple of ``TRADE`` payloads
printed back to back (one replay step of the synthetic market). ``t_ns`` is the data's own clock; the driver
maps it to wall time through the speed, and the venue stamps every event with the wall time at
which it is published.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import time
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import numpy as np

from tradebus.data.binance import BadRowLog, BinanceFrame, read_binance_csv

from .engine import Engine, Instrument, Kline
from .settings import Instrument as InstrumentConfig

DEPTH, TRADE, SNAPSHOT, TRADES = 0, 1, 2, 3
Event = tuple[int, int, object]


_bad_rows = BadRowLog(logging.getLogger("tradebus.sim_exchange.replay"), key="bad.replay")


def _read(path: Path, kind: str) -> BinanceFrame:
    """The file's rows with prices and quantities as decimal text; bad rows are logged and skipped."""
    return read_binance_csv(path, kind, exact=True, on_bad_row=_bad_rows)


def _decimals(texts) -> list[Decimal]:
    return [Decimal(t) for t in texts]


@lru_cache(maxsize=16)
def load_snapshot(path: Path) -> tuple[int, int, list, list]:
    """(local_ts_ns, last_update_id, bids, asks) from a depth snapshot CSV."""
    f = _read(path, "depth_snapshot")
    levels = list(zip(_decimals(f["price"]), _decimals(f["qty"])))
    is_bid = f["is_bid"].tolist()
    bids = [lv for lv, b in zip(levels, is_bid) if b]
    asks = [lv for lv, b in zip(levels, is_bid) if not b]
    if not len(f):
        return 0, 0, bids, asks
    return int(f["recv_ts_ns"][-1]), int(f["last_update_id"][-1]), bids, asks


@lru_cache(maxsize=16)
def load_depth_updates(path: Path, last_update_id: int, futures: bool) -> tuple[Event, ...]:
    """Diff-depth events after a snapshot, kept by Binance's own synchronisation rule."""
    f = _read(path, "depth_updates")
    first, last, ts = f["first_update_id"], f["last_update_id"], f["recv_ts_ns"]
    starts = np.flatnonzero(np.r_[True, (first[1:] != first[:-1]) | (last[1:] != last[:-1])]).tolist()
    changes = list(zip(f["is_bid"].tolist(), _decimals(f["price"]), _decimals(f["qty"])))
    events: list[Event] = []
    for a, b in zip(starts, starts[1:] + [len(f)]):
        u_first, u_last = int(first[a]), int(last[a])
        if not events:
            if futures:
                if u_last < last_update_id or not u_first <= last_update_id <= u_last:
                    continue
            elif u_last <= last_update_id or not u_first <= last_update_id + 1 <= u_last:
                continue
        elif u_last < last_update_id if futures else u_last <= last_update_id:
            continue
        events.append((int(ts[a]), DEPTH, tuple(changes[a:b])))
    return tuple(events)


@lru_cache(maxsize=16)
def load_trades(path: Path) -> tuple[Event, ...]:
    f = _read(path, "trades")
    return tuple((t, TRADE, (p, q, m)) for t, p, q, m in zip(
        f["recv_ts_ns"].tolist(), _decimals(f["price"]), _decimals(f["qty"]), f["is_buyer_maker"].tolist()))


@lru_cache(maxsize=8)
def load_klines(path: Path) -> tuple[tuple[int, float, float, float, float, float], ...]:
    """1m OHLCV rows: (open_time_ms, open, high, low, close, volume)."""
    f = read_binance_csv(path, "klines", on_bad_row=_bad_rows)
    return tuple(zip((f["ts_ns"] // 1_000_000).tolist(),
                     *(f[n].tolist() for n in ("open", "high", "low", "close", "volume"))))


def recorded_feed(cfg: InstrumentConfig, data: Path | None) -> Iterator[Event] | None:
    """Snapshot, then depth diffs and trades merged by arrival time; None if files are missing."""
    files = cfg.data
    if data is None or files is None or not (files.snapshot and files.updates):
        return None
    paths = [data / name for name in (files.snapshot, files.updates, files.trades) if name]
    if not all(p.exists() for p in paths):
        return None
    ts, last_id, bids, asks = load_snapshot(data / files.snapshot)
    depth = load_depth_updates(data / files.updates, last_id, cfg.market == "usdm")
    trades = load_trades(data / files.trades) if files.trades else ()
    if depth:
        # trades beyond the recorded depth would print against a frozen book
        end = depth[-1][0]
        trades = tuple(t for t in trades if t[0] <= end)

    # buffered diffs may have arrived before the snapshot response; the book opens with the snapshot
    opening = min([ts] + [events[0][0] for events in (depth, trades) if events])

    def events() -> Iterator[Event]:
        yield opening, SNAPSHOT, (bids, asks)
        yield from heapq.merge(depth, trades, key=lambda e: e[0])

    return events()


class SyntheticMarket:
    """A seeded random (or kline-following) market: a level lattice around a moving mid, and trades."""

    def __init__(self, inst: Instrument, cfg: InstrumentConfig, data: Path | None, seed: int,
                 start_price: Decimal | None = None):
        syn = cfg.synthetic
        self.inst, self.syn = inst, syn
        self.rng = random.Random(seed * 1_000_003 + zlib.crc32(f"{inst.market}:{inst.symbol}".encode()))
        self.klines = None
        if syn.klines and data is not None and (data / syn.klines).exists() and start_price is None:
            rows = load_klines(data / syn.klines)
            self.klines = rows[min(syn.klines_start, len(rows) - 1):]
            self.history_rows = rows[max(0, syn.klines_start - syn.history_minutes):syn.klines_start]
        else:
            self.history_rows = ()
        if start_price is None:
            if self.klines:
                start_price = Decimal(str(self.klines[0][1]))
            elif syn.price:
                start_price = Decimal(syn.price)
            else:
                raise ValueError(f"{inst.unified}: synthetic market needs a price or a klines file")
        self.mid = float(start_price)
        tick = float(inst.tick)
        self.tick = tick
        self.step_f = float(inst.step)
        self.gap = max(1, round(self.mid * syn.level_gap_bps / 1e4 / tick))
        self.step_ns = syn.step_ms * 1_000_000
        self.bids: dict[int, Decimal] = {}
        self.asks: dict[int, Decimal] = {}
        self.base_qty = float(syn.base_qty)
        self.trade_qty = float(syn.trade_qty)
        self._lot_qty: dict[int, Decimal] = {}
        self._random = self.rng.random
        self._tick_price: dict[int, Decimal] = {}

    def history(self, now_ms: int) -> list[Kline]:
        """Klines before the start, their clock moved so the followed row opens this minute."""
        if not self.history_rows or not self.klines:
            return []
        shift = now_ms - now_ms % 60000 - self.klines[0][0]
        d = lambda x: Decimal(str(x)).quantize(self.inst.tick)  # noqa: E731
        return [Kline(t + shift, d(o), d(h), d(lo), d(c), Decimal(str(v)), Decimal(str(round(v * c, 8))), 0)
                for t, o, h, lo, c, v in self.history_rows]

    def _qty(self, mean: float) -> Decimal:
        """A random size around ``mean`` in whole lots (at least one lot)."""
        # rng.uniform(0.2, 1.8) spelled out (same draw, same arithmetic): this runs twice per trade
        lots = max(int(mean / self.step_f * (0.2 + (1.8 - 0.2) * self._random())), 1)
        qty = self._lot_qty.get(lots)
        if qty is None:  # Decimal products cached: the same values, without the arithmetic per trade
            if len(self._lot_qty) > 65536:
                self._lot_qty.clear()
            qty = self._lot_qty[lots] = Decimal(lots) * self.inst.step
        return qty

    def _target(self, t_ms: float) -> float:
        if self.klines:
            index, offset = divmod(t_ms, 60000.0)
            index = int(index) % len(self.klines)
            _, o, h, lo, c, _ = self.klines[index]
            path = (o, lo, h, c) if c >= o else (o, h, lo, c)
            seg, frac = divmod(offset / 20000.0, 1.0)
            seg = int(seg)
            return path[seg] + (path[seg + 1] - path[seg]) * frac
        return self.mid * math.exp(self.rng.gauss(0, self.syn.volatility_bps / 1e4))

    def _desired(self) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
        best_bid = int(self.mid / self.tick)
        best_ask = best_bid + 1
        bids, asks = {}, {}
        lattice_bid = best_bid - best_bid % self.gap
        lattice_ask = best_ask + (-best_ask) % self.gap
        bid_prices = [best_bid] + [lattice_bid - i * self.gap for i in range(self.syn.levels - 1)]
        ask_prices = [best_ask] + [lattice_ask + i * self.gap for i in range(self.syn.levels - 1)]
        for prices, old, new in ((bid_prices, self.bids, bids), (ask_prices, self.asks, asks)):
            for p in prices:
                if p not in new:
                    new[p] = old.get(p) or self._qty(self.base_qty)
        return bids, asks

    def _price(self, ticks: int) -> Decimal:
        price = self._tick_price.get(ticks)
        if price is None:
            if len(self._tick_price) > 65536:
                self._tick_price.clear()
            price = self._tick_price[ticks] = Decimal(ticks) * self.inst.tick
        return price

    def events(self, t0_ns: int) -> Iterator[Event]:
        self.bids, self.asks = self._desired()
        best_bid = int(self.mid / self.tick)
        keys = {True: sorted(self.bids), False: sorted(self.asks)}
        yield t0_ns, SNAPSHOT, ([(self._price(p), q) for p, q in sorted(self.bids.items(), reverse=True)],
                                [(self._price(p), q) for p, q in sorted(self.asks.items())])
        t_ns = t0_ns
        step = 0
        whole, frac = divmod(self.syn.trades_per_step, 1.0)
        zero = Decimal(0)
        while True:
            step += 1
            t_ns += self.step_ns
            old_mid = self.mid
            self.mid = max(self.tick * 10, self._target(step * self.syn.step_ms))
            changed: dict[tuple[bool, int], Decimal] = {}
            trades: list[tuple[Decimal, Decimal, bool]] = []
            count = int(whole) + (self.rng.random() < frac)
            p_buy = 0.65 if self.mid >= old_mid else 0.35
            # the trade loop runs per printed trade at max speed: names bound once, same draws in the same order
            rng_random, qty_of, price_of = self.rng.random, self._qty, self._price
            trade_qty, base_qty, asks, bids = self.trade_qty, self.base_qty, self.asks, self.bids
            for _ in range(count):
                buy = rng_random() < p_buy
                if buy:
                    side, best = asks, keys[False][0]
                else:
                    side, best = bids, keys[True][-1]
                level = side[best]
                qty = min(qty_of(trade_qty), level)
                trades.append((price_of(best), qty, not buy))
                left = level - qty
                side[best] = left = left if left > zero else qty_of(base_qty)
                changed[(not buy, best)] = left
            if trades:
                yield t_ns, TRADES, tuple(trades)
            for is_bid, side in ((True, self.bids), (False, self.asks)):
                prices = keys[is_bid]
                for _ in range(2):
                    p = prices[self.rng.randrange(len(prices))]
                    side[p] = changed[(is_bid, p)] = self._qty(self.base_qty)
            new_best = int(self.mid / self.tick)
            if new_best != best_bid:
                best_bid = new_best
                bids, asks = self._desired()
                for is_bid, old, new in ((True, self.bids, bids), (False, self.asks, asks)):
                    for p in old.keys() - new.keys():
                        changed[(is_bid, p)] = zero
                    for p in new.keys() - old.keys():
                        changed[(is_bid, p)] = new[p]
                self.bids, self.asks = bids, asks
                keys = {True: sorted(bids), False: sorted(asks)}
            if changed:
                yield t_ns, DEPTH, tuple((b, self._price(p), q) for (b, p), q in sorted(changed.items()))


def instrument_feed(engine: Engine, inst: Instrument, cfg: InstrumentConfig, data: Path | None,
                    seed: int) -> tuple[Iterator[Event], list[Kline]]:
    """The recording when there is one, continued by a synthetic market seeded from its last price."""
    recorded = recorded_feed(cfg, data)
    if recorded is None:
        market = SyntheticMarket(inst, cfg, data, seed)
        return market.events(0), market.history(engine.clock())

    def chained() -> Iterator[Event]:
        last_t = 0
        for event in recorded:
            last_t = event[0]
            yield event
        price = engine.mark_price(inst).quantize(inst.tick)
        yield from SyntheticMarket(inst, cfg, data, seed, start_price=price).events(last_t + 1)

    return chained(), []


def parse_speed(speed: str | float) -> float:
    """'max' -> inf, '0' -> paused, '10' or '10x' -> ten times real time."""
    text = str(speed).strip().lower()
    if text in ("max", "inf"):
        return math.inf
    text = text[:-1] if text.endswith("x") else text
    value = float(text)
    if value < 0 or math.isnan(value):
        raise ValueError(f"speed must be >= 0 or 'max', got {speed!r}")
    return value


class Replay:
    """Merges the feeds of all instruments and applies them to the engine at ``speed``."""

    BATCH = 256  # events applied between two yields to the event loop at max speed

    def __init__(self, engine: Engine, feeds: dict[Instrument, Iterator[Event]], speed: float,
                 after_batch: Callable[[], None]):
        self.engine = engine
        self.after_batch = after_batch
        self.speed = speed
        self.events_applied = 0
        self.last_time = 0  # replay clock (ns from the feeds' start) of the last applied event
        self._heap: list = []
        self._origin: dict[Instrument, int] = {}
        self._seq = 0
        self._feeds = feeds
        for inst, feed in feeds.items():
            self._push(inst, feed)
        self._wake = asyncio.Event()
        self._rebase()

    def _push(self, inst: Instrument, feed: Iterator[Event]) -> None:
        event = next(feed, None)
        if event is not None:
            # every feed starts at replay time 0, whatever clock its data was recorded on
            origin = self._origin.setdefault(inst, event[0])
            self._seq += 1
            heapq.heappush(self._heap, (event[0] - origin, self._seq, inst, feed, event))

    def _rebase(self) -> None:
        self._wall0 = time.monotonic()
        self._data0 = self._heap[0][0] if self._heap else 0

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        self._rebase()
        self._wake.set()

    def _apply_one(self) -> bool:
        if not self._heap:
            return False
        t, _, inst, feed, (_, kind, payload) = heapq.heappop(self._heap)
        self.last_time = t
        if kind == DEPTH:
            self.engine.apply_depth(inst, payload)
        elif kind == TRADE:
            price, qty, buyer_maker = payload
            self.engine.apply_trade(inst, price, qty, buyer_maker)
        elif kind == TRADES:
            apply_trade = self.engine.apply_trade
            for price, qty, buyer_maker in payload:
                apply_trade(inst, price, qty, buyer_maker)
        else:
            self.engine.seed_book(inst, *payload)
        self.events_applied += 1
        self._push(inst, feed)
        return True

    def start_books(self) -> None:
        """Apply every feed's opening snapshot so books are full before the first request."""
        while self._heap and self._heap[0][4][1] == SNAPSHOT:
            self._apply_one()
        self.after_batch()
        self._rebase()

    def step(self, events: int = 1) -> int:
        """Apply the next ``events`` events now, whatever the speed (tests use this paused)."""
        done = 0
        while done < events and self._apply_one():
            done += 1
        self.after_batch()
        return done

    async def run(self) -> None:
        while True:
            if self.speed == 0 or not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            if math.isinf(self.speed):
                for _ in range(self.BATCH):
                    if not self._apply_one():
                        break
                self.after_batch()
                await asyncio.sleep(0)
                continue
            due = self._wall0 + (self._heap[0][0] - self._data0) / 1e9 / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(delay, 1.0))
                except TimeoutError:
                    pass
                continue
            now = time.monotonic()
            count = 0
            while self._heap and count < 4 * self.BATCH:
                due = self._wall0 + (self._heap[0][0] - self._data0) / 1e9 / self.speed
                if due > now:
                    break
                self._apply_one()
                count += 1
            self.after_batch()
            await asyncio.sleep(0)
