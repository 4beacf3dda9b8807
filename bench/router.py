"""order_router throughput and latency: NewOrders on the bus -> OrderRouter -> genuine ccxt ->
sim_exchange (own process) -> OrderAck on the bus.

Figures:
- orders/s: a burst of N limit orders published at once (core publish into the ORDERS stream,
  Nats-Msg-Id = client id), from the first publish to the last OrderAck seen by a subscriber;
- request-to-ack latency p50/p99: orders published one at a time at a steady pace (each waits
  for its ack), so the figure is the router's path, not queueing. The client runs in its own
  process, as a strategy_runner does; the same measured from inside the router's process (where
  the client waits for the router's work after the ack) is the second latency row.

Both order entry paths of the Binance adapter are measured, each on a fresh sim and server: ``rest``
(ccxt's REST create_order, the routing table's default) and ``ws`` (ccxt.pro's create_order_ws
over Binance's WebSocket API, ``order_entry: ws``).

Router in this process (uvloop when installed), sim_exchange and nats-server in their own.
Usage: ``python bench/router.py [--quick] [--order-entry rest|ws]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ccxt.pro as ccxtpro

sys.path.insert(0, str(Path(__file__).parent))

from _results import record  # noqa: E402
from tradebus.bus import Bus, EmbeddedNats, free_port  # noqa: E402
from tradebus.exchanges import make_adapter  # noqa: E402
from tradebus.exchanges.sim import point_ccxt_at_sim  # noqa: E402
from tradebus.proto import ORDER_EVENT_DECODER, NewOrder, OrderAck, OrderReject  # noqa: E402
from tradebus.proto.codec import encode  # noqa: E402
from tradebus.proto.subjects import order_event_wildcard, order_request_subject  # noqa: E402
from tradebus.services.order_router.router import OrderRouter, RouterOptions  # noqa: E402

LATENCY_RUNS = 3
KEYS = {"apiKey": "sim-key", "secret": "sim-secret", "enableRateLimit": False, "timeout": 10000}


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_http(url: str, timeout: float = 20.0) -> None:
    import aiohttp
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/api/v3/ping") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("sim_exchange did not start")


def order_for(coid: str, price: float) -> NewOrder:
    return NewOrder(client_order_id=coid, strategy="bench", venue="bench", symbol="BTC/USDT",
                    side="buy", order_type="limit", qty=0.0001, price=price, ts_init=time.time_ns())


async def latency_client(nats_url: str, n: int, price: float, prefix: str) -> list[float]:
    """Publish ``n`` orders one at a time, each after the previous one's OrderAck; ms per order."""
    bus = await Bus.connect(nats_url)
    acked: dict[str, int] = {}
    arrived = asyncio.Event()

    async def on_evt(msg):
        evt = ORDER_EVENT_DECODER.decode(msg.data)
        if isinstance(evt, (OrderAck, OrderReject)):
            acked[evt.client_order_id] = time.perf_counter_ns()
            arrived.set()
    await bus.nc.subscribe(order_event_wildcard("bench"), cb=on_evt)
    subject, out = order_request_subject("bench", "bench"), []
    for i in range(n):
        coid = f"{prefix}{i}"
        arrived.clear()
        t0 = time.perf_counter_ns()
        await bus.nc.publish(subject, encode(order_for(coid, price)), headers={"Nats-Msg-Id": coid})
        while coid not in acked:
            await asyncio.wait_for(arrived.wait(), 30)
            arrived.clear()
        out.append((acked[coid] - t0) / 1e6)
        await asyncio.sleep(0.002)
    await bus.close()
    return out


def percentiles(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    return statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]


async def run(args) -> dict[str, str]:
    with EmbeddedNats(state_dir=tempfile.mkdtemp(prefix="bench-router-")) as nats_server:
        port = free_port()
        sim = subprocess.Popen([sys.executable, "-m", "tradebus.services.sim_exchange", "--port", str(port),
                                "--speed", "0", "--nats-url", nats_server.url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_http(url)
            bus = await Bus.connect(nats_server.url)
            spot = point_ccxt_at_sim(ccxtpro.binance(KEYS), url)
            router = OrderRouter(bus, "bench", [make_adapter("binance:spot", spot, order_entry=args.order_entry)],
                                 options=RouterOptions(fetch_batch=512, max_ack_pending=20000))
            await router.start()
            while not router.ready.is_set():
                await asyncio.sleep(0.05)
            await spot.load_markets()
            ticker = await spot.fetch_ticker("BTC/USDT")
            price = round(float(ticker["bid"] or ticker["last"]) * 0.9, 2)

            acks: dict[str, int] = {}
            rejects: list = []
            done = asyncio.Event()
            expected = [0]

            async def on_evt(msg):
                evt = ORDER_EVENT_DECODER.decode(msg.data)
                if isinstance(evt, OrderAck):
                    acks[evt.client_order_id] = time.perf_counter_ns()
                elif isinstance(evt, OrderReject):
                    rejects.append(evt)
                if len(acks) + len(rejects) >= expected[0]:
                    done.set()
            await bus.nc.subscribe(order_event_wildcard("bench"), cb=on_evt)
            subject = order_request_subject("bench", "bench")

            def order(coid: str) -> NewOrder:
                return order_for(coid, price)

            # warm-up
            expected[0] = 50
            for i in range(50):
                await bus.nc.publish(subject, encode(order(f"w{i}")), headers={"Nats-Msg-Id": f"w{i}"})
            await asyncio.wait_for(done.wait(), 60)

            # latency: one at a time, from a client process of its own; several client runs pooled,
            # since the p50 of one run moves by +-0.3 ms with where the scheduler puts the processes
            own = []
            for run_no in range(LATENCY_RUNS):
                client = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--latency-client", nats_server.url, str(args.latency_n), str(price),
                    f"c{run_no}-", stdout=asyncio.subprocess.PIPE)
                out, _ = await asyncio.wait_for(client.communicate(), 600)
                if client.returncode != 0:
                    raise RuntimeError("latency client failed")
                own += json.loads(out)
            p50_own, p99_own = percentiles(own)

            # latency: one at a time, the client in this (the router's) process
            lat = []
            for i in range(args.latency_n):
                coid = f"l{i}"
                acks.clear()
                rejects.clear()
                done.clear()
                expected[0] = 1
                t0 = time.perf_counter_ns()
                await bus.nc.publish(subject, encode(order(coid)), headers={"Nats-Msg-Id": coid})
                await asyncio.wait_for(done.wait(), 30)
                lat.append((acks[coid] - t0) / 1e6)
                await asyncio.sleep(0.002)
            p50, p99 = percentiles(lat)

            # throughput: a burst
            acks.clear()
            rejects.clear()
            done.clear()
            expected[0] = args.n
            payloads = [(f"b{i}", encode(order(f"b{i}"))) for i in range(args.n)]
            cpu0, sim_cpu0 = time.process_time(), proc_cpu(sim.pid)
            t0 = time.perf_counter_ns()
            for coid, data in payloads:
                await bus.nc.publish(subject, data, headers={"Nats-Msg-Id": coid})
            await asyncio.wait_for(done.wait(), 600)
            elapsed = (max(acks.values()) - t0) / 1e9
            router_cpu = (time.process_time() - cpu0) / elapsed * 100
            sim_cpu = (proc_cpu(sim.pid) - sim_cpu0) / elapsed * 100
            rate = len(acks) / elapsed
            venue_orders = router.counters["orders_sent"]
            await router.stop()
            await bus.close()
        finally:
            sim.terminate()
            sim.wait(10)
    return {
        f"orders/s, bus -> sim ack (burst of {args.n})": f"{rate:,.0f}",
        f"request-to-ack p50 / p99 (ms, sequential, client in its own process, {LATENCY_RUNS} runs pooled)":
            f"{p50_own:.2f} / {p99_own:.2f}",
        "request-to-ack p50 / p99 (ms, sequential, client in the router's process)": f"{p50:.2f} / {p99:.2f}",
        "router CPU per order in the burst (us)": f"{router_cpu * 10_000 / rate:.0f}",
        "CPU during burst, router + bus client (% of one core)": f"{router_cpu:.0f}",
        "CPU during burst, sim_exchange (% of one core)": f"{sim_cpu:.0f}",
        "rejects in burst": str(len(rejects)),
        "venue orders sent (warm-up + latency + burst)": str(venue_orders),
    }


def _use_uvloop() -> None:
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-client", nargs=4, metavar=("NATS_URL", "N", "PRICE", "PREFIX"), help=argparse.SUPPRESS)
    parser.add_argument("--order-entry", choices=("rest", "ws"), action="append",
                        help="measure only this order entry path (default: both)")
    args = parser.parse_args()
    if args.latency_client:
        url, n, price, prefix = args.latency_client
        _use_uvloop()
        print(json.dumps(asyncio.run(latency_client(url, int(n), float(price), prefix))))
        return
    args.n = 500 if args.quick else 3000
    args.latency_n = 100 if args.quick else 500
    _use_uvloop()
    results = {}
    for entry in args.order_entry or ("rest", "ws"):
        args.order_entry = entry
        results[entry] = asyncio.run(run(args))
    entries = list(results)
    rows = [(metric, "; ".join(f"{e}: {results[e][metric]}" for e in entries)) for metric in results[entries[0]]]
    rows.append(("load average at end (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())))
    for metric, value in rows:
        print(f"{metric:75s} {value}")
    notes = (f"{args.latency_n} sequential orders per latency run, burst of {args.n}; spot limit orders resting "
             f"far from the market; order entry {' / '.join(entries)}: REST create_order, or create_order_ws over "
             f"the venue's WebSocket API; router with uvloop={'uvloop' in sys.modules}, sim_exchange and nats-server "
             "in separate processes on the same 2-core VM. Target: >= 1,000 orders/s, p50 < 3 ms.")
    record("order_router: bus -> ccxt -> sim_exchange -> ack", rows=rows, notes=notes)


if __name__ == "__main__":
    main()
