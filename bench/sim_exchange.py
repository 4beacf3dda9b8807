"""sim_exchange throughput through unmodified ccxt / ccxt.pro.

1. Order round trips: create (LIMIT GTC, resting) + cancel through ``ccxt.binance`` against a sim
   running in its own process. Reported end to end, plus the sim's own CPU per round trip and
   the rate that CPU cost allows on one core (the sim's capacity, whatever the client costs).
2. WS market events: the sim replays at max speed; one ``ccxt.pro.binance`` client watches
   trades + diff depth of BTC/USDT and ETH/USDT; events/s delivered to it, counted by ccxt.pro's
   own handlers, plus the sim's push rate to a raw aiohttp client for comparison.

Run from the repo root: ``.venv/bin/python bench/sim_exchange.py [--seconds 10]``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro

sys.path.insert(0, str(Path(__file__).parent))
from _results import record  # noqa: E402
from tradebus.bus import free_port  # noqa: E402
from tradebus.exchanges.sim import point_ccxt_at_sim  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


STREAM_CONFIG = Path(__file__).with_name("sim_exchange_stream.yaml")


def start_sim(speed: str, config: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    extra = ["--config", str(config)] if config else []
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.services.sim_exchange", "--standalone", "--port", str(port),
                             "--speed", speed, *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"sim_exchange did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def order_round_trips(url: str, seconds: float, concurrency: int) -> int:
    ex = point_ccxt_at_sim(ccxt_async.binance({"apiKey": "sim-key", "secret": "sim-secret",
                                               "enableRateLimit": False}), url)
    done = 0
    try:
        await ex.load_markets()
        deadline = time.perf_counter() + seconds

        async def worker():
            nonlocal done
            while time.perf_counter() < deadline:
                order = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 50000)
                await ex.cancel_order(order["id"], "BTC/USDT")
                done += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await ex.close()
    return done


def client_process(url: str, seconds: float, concurrency: int) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(asyncio.run(order_round_trips(url, seconds, concurrency)), flush=True)


def bench_orders(seconds: float, clients: int, concurrency: int) -> list[tuple[str, str]]:
    proc, url = start_sim("0")
    try:
        warm = subprocess.run([sys.executable, __file__, "--client", url, "--seconds", "1", "--concurrency", "4"],
                              capture_output=True, text=True, cwd=ROOT)
        if warm.returncode:
            raise RuntimeError(warm.stderr)
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        workers = [subprocess.Popen([sys.executable, __file__, "--client", url, "--seconds", str(seconds),
                                     "--concurrency", str(concurrency)], stdout=subprocess.PIPE, text=True,
                                    cwd=ROOT) for _ in range(clients)]
        total = sum(int(w.communicate()[0].strip().splitlines()[-1]) for w in workers)
        wall, sim_cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait()
    per_rt = sim_cpu / total
    return [("order round trips/s through ccxt (create+cancel, end to end)", f"{total / wall:,.0f}"),
            ("  client processes x concurrent tasks", f"{clients} x {concurrency}"),
            ("  sim CPU per round trip", f"{per_rt * 1e6:,.0f} us"),
            ("  sim capacity on one core (1 / CPU per round trip)", f"{1 / per_rt:,.0f} round trips/s")]


async def ws_events(url: str, seconds: float) -> int:
    """Stream messages handled by one ccxt.pro client watching trades and depth of two symbols."""
    ex = point_ccxt_at_sim(ccxtpro.binance({"enableRateLimit": False}), url)
    counted = 0
    original = ex.handle_message

    def counting(client, message):
        nonlocal counted
        counted += 1
        return original(client, message)
    ex.handle_message = counting
    try:
        await ex.load_markets()
        stop = time.perf_counter() + seconds

        async def watch(method, symbol):
            while time.perf_counter() < stop:
                await method(symbol)
        await asyncio.sleep(0)
        start = counted
        await asyncio.wait_for(asyncio.gather(*(watch(m, s) for m in (ex.watch_trades, ex.watch_order_book)
                                                for s in ("BTC/USDT", "ETH/USDT"))), seconds + 30)
        handled = counted - start
    finally:
        await ex.close()
    return handled


async def raw_ws_events(url: str, seconds: float) -> int:
    ws_url = url.replace("http", "ws") + "/stream/stream?streams=" + "/".join(
        f"{s}@{k}" for s in ("btcusdt", "ethusdt") for k in ("trade", "depth@100ms"))
    received = 0
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, max_msg_size=0) as ws:
            stop = time.perf_counter() + seconds
            while time.perf_counter() < stop:
                msg = await ws.receive(timeout=5)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                received += 1
    return received


def bench_ws(seconds: float) -> list[tuple[str, str]]:
    rows = []
    cases = (("recorded BTC/USDT + synthetic ETH/USDT (default config)", None),
             ("trade-heavy synthetic BTC/USDT + ETH/USDT (sim_exchange_stream.yaml)", STREAM_CONFIG))
    for label, config in cases:
        rows.append((f"WS, {label}", ""))
        for client, run in (("one ccxt.pro client", ws_events), ("one raw aiohttp client", raw_ws_events)):
            proc, url = start_sim("max", config)
            try:
                time.sleep(1.0)
                cpu0 = cpu_seconds(proc.pid)
                events = asyncio.run(run(url, seconds))
                sim_cpu = (cpu_seconds(proc.pid) - cpu0) / seconds
            finally:
                proc.terminate()
                proc.wait()
            rows.append((f"  market events/s delivered to {client}", f"{events / seconds:,.0f} "
                         f"(sim CPU {sim_cpu:.0%} of a core, {events / seconds / sim_cpu:,.0f}/s per "
                         "sim core)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_process(args.client, args.seconds, args.concurrency)
        return
    load = os.getloadavg()
    rows = bench_orders(args.seconds, args.clients, args.concurrency)
    rows += bench_ws(args.seconds)
    record("sim_exchange", rows, notes=(
        f"Sim and clients in separate processes on the same {os.cpu_count()}-core machine "
        f"(load average before the run: {load[0]:.2f}; other work shared the cores). Orders: LIMIT GTC "
        "buy away from the market then cancel, through ccxt.binance with rate limiting off; the "
        "end-to-end figure is bound by ccxt's own client CPU, the capacity line is the sim's. WS: "
        "replay at max speed; clients watch trades and 100 ms diff depth of both symbols; an event "
        "is one stream message. The recording is depth-heavy (about 46 level changes per diff), so "
        "book upkeep, not pushing, limits it; the trade-heavy config measures the push path."))


if __name__ == "__main__":
    main()
