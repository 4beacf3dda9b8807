"""SimExchange: one aiohttp server for Binance spot + USD-M REST, streams and WS-API, plus /admin.

Paths are the venue's own: REST under /api/v3 and /fapi/v1..v3, market streams under the venue
host's first label (/stream/ws, /fstream/ws, /stream/stream, /fstream/public/ws, ...), WS-API
under /ws-api/v3 and /ws-fapi/v1. Anything else answers 404 naming the path.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import msgspec
from aiohttp import web

from tradebus.data import find_data_dir
from tradebus.logs import configure_logging

from . import wire
from .engine import SPOT, USDM, Account, Engine, Instrument, SimError
from .limits import ORDER_PATHS, Usage
from .replay import Replay, instrument_feed, parse_speed
from .rest import Venue, error_response
from .settings import Faults, SimConfig, load_config
from .ws import Hub

log = logging.getLogger("tradebus.sim_exchange")

MAINTENANCE = SimError(1, "System is under maintenance.", 503)
BANNED = SimError(-1003, "Way too many requests; IP(127.0.0.1) banned until further notice. Please use the "
                         "websocket for live updates to avoid bans.", 418)


class FaultState:
    """The live fault knobs (config values first, then whatever /admin/faults sets)."""

    def __init__(self, faults: Faults, seed: int):
        self._apply(msgspec.structs.asdict(faults))
        self.rng = random.Random(seed)
        self.window: deque[float] = deque()

    def _apply(self, values: dict) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def update(self, **knobs) -> dict:
        """Change knobs; unknown names or wrong types raise ``msgspec.ValidationError``."""
        merged = {**self.as_dict(), **knobs}
        self._apply(msgspec.structs.asdict(msgspec.convert(merged, Faults)))
        return self.as_dict()

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in Faults.__struct_fields__}

    def draw(self, rate: float) -> bool:
        # the RNG is consumed only while a knob is on, so runs without faults stay comparable
        return rate > 0 and self.rng.random() < rate


ID_EPOCH_MS = 1_704_067_200_000  # 2024-01-01


def restart_safe_id_base() -> int:
    """Where this life's ids start: 100 per millisecond since 2024 (13 digits, exact as a float),
    so a restarted venue never hands out an order or trade id of an earlier life, as a real
    exchange never does, unless the earlier one made more than 100,000 ids a second."""
    return (time.time_ns() // 1_000_000 - ID_EPOCH_MS) * 100


def parse_symbol(symbol: str, market: str) -> tuple[str, str, str]:
    """'BTC/USDT' or 'BTC/USDT:USDT' -> ('BTCUSDT', 'BTC', 'USDT')."""
    pair, _, settle = symbol.partition(":")
    base, _, quote = pair.partition("/")
    if not base or not quote or (market == USDM and settle != quote) or (market == SPOT and settle):
        raise ValueError(f"instrument symbol {symbol!r} does not fit market {market!r}")
    return base + quote, base, quote


class SimExchange:
    """A running venue. ``await start()``; then ``url`` / ``port``; ``await stop()``."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 data: str | Path | None = None):
        self.config = config or load_config()
        self.host, self._port = host, port
        self.data_dir = Path(data) if data else find_data_dir()  # None: synthetic markets only
        self.faults = FaultState(self.config.faults, self.config.seed)
        self.engine = self._build_engine()
        self.hub = Hub(self.engine, self.faults)
        self.engine.sink = self.hub
        self.venue = Venue(self.engine, self.hub, self.config.recv_window_max_ms, Usage(self.config.limits))
        self.replay: Replay | None = None
        self._runner: web.ServerRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping: asyncio.Event | None = None
        self.counters = {"faults_5xx": 0, "faults_429": 0, "faults_418": 0, "faults_timeouts": 0,
                         "faults_maintenance": 0, "faults_lost_answers": 0}

    # ------------------------------------------------------------------ construction

    def _build_engine(self) -> Engine:
        cfg, fees = self.config, self.config.fees
        instruments = []
        self._inst_cfg = {}
        for item in cfg.instruments:
            venue_id, base, quote = parse_symbol(item.symbol, item.market)
            maker, taker = (fees.spot_maker, fees.spot_taker) if item.market == SPOT else (fees.usdm_maker,
                                                                                          fees.usdm_taker)
            inst = Instrument(symbol=venue_id, unified=item.symbol, market=item.market, base=base, quote=quote,
                              tick=Decimal(item.tick_size), step=Decimal(item.step_size),
                              min_qty=Decimal(item.min_qty), max_qty=Decimal(item.max_qty),
                              min_notional=Decimal(item.min_notional), maker_fee=Decimal(maker),
                              taker_fee=Decimal(taker))
            instruments.append(inst)
            self._inst_cfg[inst.key] = item
        accounts = [Account(a.api_key, a.secret, {k: Decimal(v) for k, v in a.spot.items()},
                            {k: Decimal(v) for k, v in a.futures.items()}, a.leverage) for a in cfg.accounts]
        return Engine(instruments, accounts, clock=lambda: time.time_ns() // 1_000_000,
                      queue_model=cfg.queue.build(), id_base=restart_safe_id_base() if cfg.restart_safe_ids else 0)

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    async def start(self) -> SimExchange:
        self._stopping = asyncio.Event()
        feeds = {}
        for key, inst in self.engine.instruments.items():
            feed, history = instrument_feed(self.engine, inst, self._inst_cfg[key], self.data_dir,
                                            self.config.seed)
            self.engine.klines[key][:0] = history
            feeds[inst] = feed
        self.replay = Replay(self.engine, feeds, parse_speed(self.config.speed), self.hub.after_operation)
        self.replay.start_books()
        # the low-level server: one handler sees every path, no router or middleware cost per request
        server = web.Server(self._dispatch, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port, reuse_address=True)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]
        self.hub.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self.replay.run()))
        log.info("sim_exchange listening on %s (speed %s)", self.url, self.config.speed)
        return self

    async def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        await self.hub.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimExchange:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ------------------------------------------------------------------ control (also via /admin)

    def step(self, events: int = 1) -> int:
        """Apply the next ``events`` replay events now (works while paused)."""
        return self.replay.step(events)

    def set_speed(self, speed: str | float) -> None:
        self.replay.set_speed(parse_speed(speed))

    def set_faults(self, **knobs) -> dict:
        return self.faults.update(**knobs)

    def inject_depth_gap(self, symbol: str, market: str = SPOT) -> None:
        self.hub.inject_depth_gap(market, symbol)

    async def drop_ws(self, path_prefix: str = "") -> int:
        return await self.hub.drop_connections(path_prefix)

    def account(self, api_key: str = "sim-key") -> Account:
        return self.engine.accounts[api_key]

    def instrument(self, symbol: str, market: str = SPOT) -> Instrument:
        return self.engine.instrument(market, symbol)

    def state(self) -> dict:
        now = time.time_ns() // 1_000_000
        accounts = {}
        for key, acct in self.engine.accounts.items():
            accounts[key] = {
                "spot": wire.spot_account(acct, now)["balances"],
                "futures": wire.usdm_account(self.engine, acct, now, 3),
                "open_orders": [wire.order_json(o) for m in (SPOT, USDM) for o in acct.open[m].values()],
                "open_algo_orders": [wire.algo_order(o) for o in acct.open_algo.values()],
            }
        return {"url": self.url, "speed": self.replay.speed if self.replay else None,
                "replay_events": self.replay.events_applied if self.replay else 0,
                "faults": self.faults.as_dict(), "accounts": accounts,
                "counters": {**self.engine.counters, **self.hub.counters, **self.venue.counters,
                             **self.venue.usage.counters, **self.counters}}

    def records(self, api_key: str = "sim-key", since_ms: int = 0) -> dict:
        """The venue's own record of one account, for audits: every order placed since
        ``since_ms`` (venue time), every fill, the spot wallets (free + locked) now and as
        configured at start."""
        acct = self.account(api_key)
        orders = [{"client_id": o.client_id, "order_id": str(o.order_id), "symbol": o.inst.unified,
                   "side": o.side.lower(), "type": o.type, "status": o.status, "qty": str(o.qty),
                   "executed": str(o.executed), "time": o.time}
                  for o in acct.orders.values() if o.time >= since_ms]
        fills = [{"client_id": f.order.client_id, "trade_id": str(f.trade_id), "symbol": f.order.inst.unified,
                  "side": f.order.side.lower(), "qty": str(f.qty), "price": str(f.price),
                  "fee": str(f.commission), "fee_currency": f.commission_asset, "time": f.time}
                 for market in (SPOT, USDM) for f in acct.fills[market] if f.time >= since_ms]
        wallets = {asset: str(v[0] + v[1]) for asset, v in acct.spot.items()}
        initial = next((dict(a.spot) for a in self.config.accounts if a.api_key == api_key), {})
        return {"now": time.time_ns() // 1_000_000, "orders": orders, "fills": fills, "spot": wallets,
                "initial_spot": initial}

    # ------------------------------------------------------------------ HTTP dispatch

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/admin/"):
            return await self._admin(request)
        parts = path.strip("/").split("/")
        if parts[0] in ("stream", "fstream", "ws-api", "ws-fapi") and \
                request.headers.get("Upgrade", "").lower() == "websocket":
            if self.faults.maintenance:
                self.counters["faults_maintenance"] += 1
                return error_response(MAINTENANCE)
            if parts[0] == "ws-api" and parts[1:] == ["v3"]:
                return await self.venue.serve_wsapi(request, SPOT)
            if parts[0] == "ws-fapi" and parts[1:] == ["v1"]:
                return await self.venue.serve_wsapi(request, USDM)
            market = SPOT if parts[0] == "stream" else USDM
            rest = parts[1:]
            if rest and rest[0] in ("public", "market", "private") and market == USDM:
                rest = rest[1:]
            if rest and rest[0] in ("ws", "stream"):
                return await self.hub.serve_streams(request, market, rest[0] == "stream", "/".join(rest[1:]))
            return web.json_response({"msg": f"sim_exchange does not serve websocket {path}"}, status=404)
        return await self._rest_with_faults(request)

    async def _rest_with_faults(self, request: web.BaseRequest) -> web.StreamResponse:
        faults = self.faults
        if faults.maintenance:
            self.counters["faults_maintenance"] += 1
            return error_response(MAINTENANCE)
        if self._over_budget() or faults.draw(faults.rate_limit_rate):
            self.counters["faults_429"] += 1
            return error_response(SimError(
                -1003, "Too many requests; current limit of IP(127.0.0.1) is "
                       f"{faults.request_limit_per_minute or 6000} requests per minute. Please use the "
                       "websocket for live updates to avoid polling the API.", 429),
                headers={"Retry-After": str(faults.retry_after_s)})
        if faults.draw(faults.ban_rate):
            self.counters["faults_418"] += 1
            return error_response(BANNED, headers={"Retry-After": str(faults.retry_after_s)})
        if faults.draw(faults.error_rate):
            self.counters["faults_5xx"] += 1
            return web.Response(status=503, text="503 Service Unavailable (sim_exchange fault)")
        if faults.draw(faults.timeout_rate):
            # never answered: the client's own timeout fires; released when the sim stops
            self.counters["faults_timeouts"] += 1
            await self._stopping.wait()
            return web.Response(status=504, text="504 Gateway Timeout (sim_exchange fault)")
        delay = faults.latency_ms
        if faults.latency_jitter_ms > 0:
            delay += faults.rng.uniform(0, faults.latency_jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        response = await self.venue.handle(request)
        self.hub.after_operation()
        if (request.method, request.path) in ORDER_PATHS and request.method == "POST":
            if faults.draw(faults.answer_lost_rate):
                # executed, but the answer never leaves: the client times out on an order that exists
                self.counters["faults_lost_answers"] += 1
                await self._stopping.wait()
            if faults.draw(faults.error_after_accept_rate):
                # executed, then a 5xx: Binance's "execution status unknown"
                self.counters["faults_5xx"] += 1
                return web.Response(status=503, text="503 Service Unavailable (sim_exchange fault)")
        return response

    def _over_budget(self) -> bool:
        limit = self.faults.request_limit_per_minute
        if not limit:
            return False
        window, now = self.faults.window, time.monotonic()
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= limit:
            return True
        window.append(now)
        return False

    async def _admin(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path[len("/admin/"):]
        try:
            body = await request.json() if request.can_read_body else {}
            if path == "state" and request.method == "GET":
                return web.json_response(self.state())
            if path == "records" and request.method == "GET":
                return web.json_response(self.records(request.query.get("api_key", "sim-key"),
                                                      int(request.query.get("since_ms", 0))))
            if path == "faults" and request.method == "POST":
                return web.json_response(self.set_faults(**body))
            if path == "replay" and request.method == "POST":
                if "speed" in body:
                    self.set_speed(body["speed"])
                applied = self.step(int(body["step"])) if "step" in body else 0
                return web.json_response({"speed": str(self.replay.speed), "applied": applied,
                                          "events": self.replay.events_applied})
            if path == "depth_gap" and request.method == "POST":
                self.inject_depth_gap(body["symbol"], body.get("market", SPOT))
                return web.json_response({"ok": True})
            if path == "drop_ws" and request.method == "POST":
                return web.json_response({"dropped": await self.drop_ws(body.get("path_prefix", ""))})
            if path == "book" and request.method == "GET":
                inst = self.instrument(request.query["symbol"], request.query.get("market", SPOT))
                return web.json_response(wire.depth(self.engine, inst, int(request.query.get("limit", 20)),
                                                    time.time_ns() // 1_000_000))
        except (KeyError, ValueError, TypeError, msgspec.ValidationError, SimError) as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response({"error": f"unknown admin call {request.method} {request.path}"}, status=404)


# ---------------------------------------------------------------------- entry point

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tradebus.services.sim_exchange",
                                     description="Local Binance spot + USD-M venue for ccxt and ccxt.pro")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--config", help="YAML config (default: the packaged default.yaml)")
    parser.add_argument("--data", help="market data folder (default: $TRADEBUS_DATA_DIR or ../shared/data)")
    parser.add_argument("--speed", help="replay speed: 0 (paused), 1, 10, ... or max")
    parser.add_argument("--seed", type=int, help="seed of the synthetic market and fault draws")
    add_restart_safe_ids(parser)
    return parser


def add_restart_safe_ids(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--restart-safe-ids", action="store_true", default=None,
                        help="order and trade ids continue from the clock, so a restart never reuses one")


def with_overrides(config: SimConfig, speed: str | None = None, seed: int | None = None,
                   restart_safe_ids: bool | None = None) -> SimConfig:
    """``config`` with the command line's --speed, --seed and --restart-safe-ids applied (None
    leaves a field alone)."""
    overrides: dict = {}
    if restart_safe_ids is not None:
        overrides["restart_safe_ids"] = restart_safe_ids
    if speed is not None:
        parse_speed(speed)
        overrides["speed"] = speed
    if seed is not None:
        overrides["seed"] = seed
    return msgspec.structs.replace(config, **overrides) if overrides else config


def config_from_args(args: argparse.Namespace) -> SimConfig:
    return with_overrides(load_config(args.config), args.speed, args.seed, args.restart_safe_ids)


async def serve(args: argparse.Namespace,
                ready_callback: Callable[[SimExchange], Awaitable[None] | None] | None = None) -> int:
    """Run until SIGINT/SIGTERM; ``ready_callback(sim)`` runs once the port is bound."""
    sim = SimExchange(config_from_args(args), host=args.host, port=args.port, data=args.data)
    await sim.start()
    print(f"sim_exchange listening on {sim.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if ready_callback is not None:
            result = ready_callback(sim)
            if asyncio.iscoroutine(result):
                await result
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging("sim_exchange")
    args = build_parser().parse_args(argv)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(serve(args))
    except (OSError, ValueError, msgspec.ValidationError) as err:
        print(f"sim_exchange: {err}", file=sys.stderr)
        return 2
