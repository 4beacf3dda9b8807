"""sim_exchange settings: its own YAML file (``--config``), decoded into Settings Structs; typos fail loudly."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from tradebus.config import Settings, decode_settings, read_config_file
from tradebus.engine.models import ProbQueue, QueueModel, RiskAverseQueue

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


class DataFiles(Settings):
    """Recorded Binance data for one instrument; paths are relative to the data folder."""

    snapshot: str | None = None
    updates: str | None = None
    trades: str | None = None


class Synthetic(Settings):
    """Seeded synthetic market used when no recording exists (or after it runs out)."""

    price: str | None = None  # start price when ``klines`` is absent (else its first open)
    klines: str | None = None  # 1m OHLCV file whose path the mid price follows
    klines_start: int = 0  # first kline row to follow
    volatility_bps: float = 0.5  # per-step random walk when there are no klines
    levels: int = 40  # depth levels per side
    level_gap_bps: float = 1.0  # distance between levels beyond the top
    base_qty: str = "0.5"  # mean size of a level, in base asset
    trade_qty: str = "0.02"  # mean size of a trade
    step_ms: int = 100  # simulated time between book updates
    trades_per_step: float = 0.6
    history_minutes: int = 500  # 1m klines served before the replay start


class Instrument(Settings):
    symbol: str  # ccxt unified symbol: BTC/USDT (spot) or BTC/USDT:USDT (usdm)
    market: Literal["spot", "usdm"]
    tick_size: str
    step_size: str
    min_qty: str
    max_qty: str = "9000"
    min_notional: str = "5"
    data: DataFiles | None = None
    synthetic: Synthetic = Synthetic()


class Fees(Settings):
    spot_maker: str = "0.001"
    spot_taker: str = "0.001"
    usdm_maker: str = "0.0002"
    usdm_taker: str = "0.0005"


class Account(Settings):
    api_key: str
    secret: str
    spot: dict[str, str] = {}
    futures: dict[str, str] = {}
    leverage: int = 20


class Faults(Settings):
    """Fault knobs; every one can also be changed at run time through /admin/faults."""

    latency_ms: float = 0.0  # added to every REST response and signed WS-API answer
    latency_jitter_ms: float = 0.0  # seeded uniform jitter on top
    # error_rate, timeout_rate, rate_limit_rate and maintenance apply to signed WS-API requests
    # (order entry, queries) too, answered as WS-API errors
    error_rate: float = 0.0  # share of REST requests answered 503 (WS-API: -1001)
    timeout_rate: float = 0.0  # share of REST requests never answered (held until stop)
    rate_limit_rate: float = 0.0  # share of REST requests answered 429 / -1003
    ban_rate: float = 0.0  # share of REST requests answered 418 (IP banned) / -1003
    answer_lost_rate: float = 0.0  # share of order placements executed but never answered
    error_after_accept_rate: float = 0.0  # share of order placements executed, then answered 503 / -1001
    request_limit_per_minute: int = 0  # 0: off; else a real per-minute request budget
    retry_after_s: int = 1
    maintenance: bool = False  # REST answers 503 "System is under maintenance." (WS-API: -1008)
    ws_drop_after_messages: int = 0  # 0: off; else close a stream after N messages
    depth_gap_every: int = 0  # 0: off; else drop every Nth depth event of each stream


class MarketLimits(Settings):
    """Binance's limits of one market (0: not enforced; the usage headers are sent regardless).
    Binance: spot 6000 weight per minute, 100 orders per 10 s, 200,000 per day; USD-M 2400
    weight per minute, 300 orders per 10 s, 1200 per minute."""

    request_weight_1m: int = 0  # per IP
    orders_10s: int = 0  # per account
    orders_1d: int = 0  # per account (spot)
    orders_1m: int = 0  # per account (USD-M)


class UsageLimits(Settings):
    spot: MarketLimits = MarketLimits()
    usdm: MarketLimits = MarketLimits()
    ban_after: int = 0  # 0: never; else refusals (429) of an IP before it is banned (418)
    ban_s: int = 120  # how long a ban lasts


class Queue(Settings):
    """Where a resting user order waits in its price level: the event backtester's queue model
    (tradebus.engine.models). ``risk_averse``: behind all the level's replayed quantity, moved
    up only when the level shrinks below it (the default); ``prob``: ProbQueue, cancels are
    behind us with probability back^power / (back^power + front^power)."""

    model: Literal["risk_averse", "prob"] = "risk_averse"
    power: float = 3.0

    def build(self) -> QueueModel:
        return ProbQueue(power=self.power) if self.model == "prob" else RiskAverseQueue()


class SimConfig(Settings):
    seed: int = 7
    speed: str = "1"  # replay speed: "0" paused, "1" real time, "10", ... or "max"
    recv_window_max_ms: int = 60000
    fees: Fees = Fees()
    instruments: list[Instrument] = []
    accounts: list[Account] = []
    faults: Faults = Faults()
    limits: UsageLimits = UsageLimits()
    queue: Queue = Queue()
    # ids (orders, trades) continue from the clock instead of 1, so a restarted venue never
    # reuses one; off keeps a seeded market reproducible down to its trade ids
    restart_safe_ids: bool = False


def load_config(path: str | os.PathLike | None = None) -> SimConfig:
    """Decode a YAML file (the packaged default when ``path`` is None)."""
    path = Path(path or DEFAULT_CONFIG)
    return decode_settings(read_config_file(path), SimConfig, str(path))


def default_config(**overrides) -> SimConfig:
    """The packaged default with top-level fields replaced, e.g. ``default_config(speed="0")``."""
    return msgspec.structs.replace(load_config(), **overrides)


def replace_faults(config: SimConfig, **knobs) -> SimConfig:
    return msgspec.structs.replace(config, faults=msgspec.structs.replace(config.faults, **knobs))
