"""Bus throughput and latency through a real nats-server, publisher and subscriber in separate processes.

Figures:
- end-to-end trade events/s from one publisher process to one subscriber process: single Trade
  messages, TradeBatch of 100 and of 1,000 (both through the tradebus Bus: encode, publish,
  typed decode), and raw nats-py with pre-encoded 1,000-trade payloads as the floor to compare;
- request-reply round trip p50/p99 over 10,000 sequential requests, asyncio and uvloop.

The subscriber acknowledges progress on a side subject and the publisher keeps a bounded window in
flight, so the rate is what the pair sustains, not what fits in socket buffers. Usage:
``python bench/bus.py [--quick]``.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

ACK_SUBJECT = "bench.ack"
DATA_SUBJECT = "bench.md.sim.BTC-USDT.trade"
RPC_SUBJECT = "bench.rpc"


def use_uvloop(enabled: bool) -> None:
    if enabled:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# ---------------------------------------------------------------- subscriber / publisher roles
async def subscriber(url: str, mode: str, total: int, ack_every: int) -> None:
    from tradebus.bus import Bus
    from tradebus.proto import Trade, TradeBatch

    bus = await Bus.connect(url)
    done = asyncio.Event()
    count = 0
    next_ack = ack_every
    t0 = t1 = 0.0

    def progress(n: int) -> None:
        nonlocal count, next_ack, t0, t1
        if count == 0:
            t0 = time.perf_counter()
        count += n
        if count >= next_ack or count >= total:
            next_ack += ack_every
            asyncio.ensure_future(bus.nc.publish(ACK_SUBJECT, str(count).encode()))
        if count >= total:
            t1 = time.perf_counter()
            done.set()

    if mode == "raw":
        async def on_raw(msg) -> None:
            progress(1000)

        await bus.nc.subscribe(DATA_SUBJECT, cb=on_raw, pending_msgs_limit=-1, pending_bytes_limit=-1)
    else:
        type_ = Trade if mode == "single" else TradeBatch

        async def on_msg(obj, _msg) -> None:
            progress(1 if mode == "single" else len(obj))

        await bus.subscribe(DATA_SUBJECT, type_, on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await bus.nc.flush()
    print("ready", flush=True)
    await done.wait()
    await asyncio.sleep(0.05)
    print(f"{count} {t1 - t0:.6f} bad={bus.bad_input.total}", flush=True)
    await bus.close()


async def publisher(url: str, mode: str, total: int, window: int) -> None:
    from tradebus.bus import Bus
    from tradebus.proto import Trade, TradeBatch
    from tradebus.proto.codec import encode

    bus = await Bus.connect(url)
    acked = 0
    ack_event = asyncio.Event()

    async def on_ack(msg) -> None:
        nonlocal acked
        acked = max(acked, int(msg.data))
        ack_event.set()

    await bus.nc.subscribe(ACK_SUBJECT, cb=on_ack)
    rng = np.random.default_rng(1)
    size = {"single": 1, "batch100": 100, "batch1000": 1000, "raw": 1000}[mode]
    prices = 60_000 + rng.standard_normal(size).cumsum()
    qtys = rng.uniform(0.001, 1.0, size)
    sides = (rng.random(size) < 0.5).astype(np.uint8).tobytes()
    ts = np.arange(size, dtype=np.int64) + time.time_ns()
    raw_payload = encode(TradeBatch.from_columns(venue="sim", symbol="BTC/USDT", prices=prices, qtys=qtys, sides=sides,
                                                 ts_event=ts, ts_recv=ts))
    sent = 0
    i = 0
    while sent < total:
        while sent - acked >= window:
            ack_event.clear()
            await ack_event.wait()
        if mode == "single":
            await bus.publish(DATA_SUBJECT, Trade(venue="sim", symbol="BTC/USDT", price=float(prices[0]) + i, qty=0.01,
                                                 side="buy", trade_id=str(i), ts_event=i, ts_recv=i))
        elif mode == "raw":
            await bus.nc.publish(DATA_SUBJECT, raw_payload)
        else:
            await bus.publish(DATA_SUBJECT, TradeBatch.from_columns(venue="sim", symbol="BTC/USDT", prices=prices, qtys=qtys,
                                                                   sides=sides, ts_event=ts + i, ts_recv=ts + i))
        sent += size
        i += 1
    while acked < total:
        ack_event.clear()
        await ack_event.wait()
    await bus.close()


async def responder(url: str) -> None:
    from tradebus.bus import Bus
    from tradebus.proto import ServiceCommand, ServiceStatus

    bus = await Bus.connect(url)

    async def handle(cmd: ServiceCommand) -> ServiceStatus:
        return ServiceStatus(service=cmd.service, instance="bench", state="running", ts_init=time.time_ns())

    await bus.serve(RPC_SUBJECT, ServiceCommand, handle)
    await bus.nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def raw_responder(url: str) -> None:
    import nats

    nc = await nats.connect(url)

    async def echo(msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(RPC_SUBJECT, cb=echo)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def raw_requester(url: str, n: int) -> None:
    import nats

    nc = await nats.connect(url)
    payload = b"x" * 48
    for _ in range(200):
        await nc.request(RPC_SUBJECT, payload, timeout=2)
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await nc.request(RPC_SUBJECT, payload, timeout=2)
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    print(f"{samples[len(samples) // 2]} {samples[int(len(samples) * 0.99)]} {statistics.fmean(samples):.0f}", flush=True)
    await nc.close()


async def requester(url: str, n: int) -> None:
    from tradebus.bus import Bus
    from tradebus.proto import ServiceCommand, ServiceStatus

    bus = await Bus.connect(url)
    cmd = ServiceCommand(service="bench", command="status")
    for _ in range(200):  # warm-up
        await bus.request(RPC_SUBJECT, cmd, ServiceStatus)
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await bus.request(RPC_SUBJECT, cmd, ServiceStatus)
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    print(f"{samples[len(samples) // 2]} {samples[int(len(samples) * 0.99)]} {statistics.fmean(samples):.0f}", flush=True)
    await bus.close()


# ---------------------------------------------------------------- orchestration
def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def throughput(url: str, mode: str, total: int, uvloop: bool) -> tuple[float, str]:
    window = 50_000 if mode == "single" else 1_000_000
    ack_every = 5_000 if mode == "single" else 100_000
    flag = ["--uvloop"] if uvloop else []
    sub = spawn("--role", "sub", "--url", url, "--mode", mode, "--total", str(total), "--ack-every", str(ack_every), *flag)
    assert sub.stdout.readline().strip() == "ready"
    pub = spawn("--role", "pub", "--url", url, "--mode", mode, "--total", str(total), "--window", str(window), *flag)
    pub.wait(timeout=600)
    count, seconds, bad = sub.stdout.readline().split()
    sub.wait(timeout=30)
    return int(count) / float(seconds), bad


def round_trip(url: str, n: int, uvloop: bool, raw: bool = False) -> tuple[float, float]:
    flag = ["--uvloop"] if uvloop else []
    prefix = "raw" if raw else ""
    resp = spawn("--role", f"{prefix}resp", "--url", url, *flag)
    assert resp.stdout.readline().strip() == "ready"
    req = spawn("--role", f"{prefix}req", "--url", url, "--total", str(n), *flag)
    p50, p99, _mean = req.stdout.readline().split()
    req.wait(timeout=60)
    resp.terminate()
    resp.wait(timeout=10)
    return int(p50) / 1000, int(p99) / 1000


def orchestrate(quick: bool) -> None:
    from _results import record
    from tradebus.bus import EmbeddedNats

    scale = 0.2 if quick else 1.0
    rows = []
    with EmbeddedNats(jetstream=False, max_payload=8 * 1024 * 1024) as server:
        for mode, total, label in [
            ("single", int(300_000 * scale), "single Trade messages"),
            ("batch100", int(3_000_000 * scale), "TradeBatch of 100"),
            ("batch1000", int(10_000_000 * scale), "TradeBatch of 1,000"),
            ("raw", int(10_000_000 * scale), "raw nats-py, pre-encoded 1,000-trade payloads (floor)"),
        ]:
            for uv in (False, True):
                rate, bad = throughput(server.url, mode, total, uv)
                rows.append((f"trades/s end to end, {label}, {'uvloop' if uv else 'asyncio'}", f"{rate:,.0f}"))
                print(rows[-1], flush=True)
        for raw in (False, True):
            for uv in (False, True):
                p50, p99 = round_trip(server.url, int(10_000 * scale) or 1000, uv, raw)
                label = "raw nats-py echo (floor)" if raw else "tradebus Bus, ServiceCommand -> ServiceStatus"
                rows.append((f"request-reply round trip, {label}, {'uvloop' if uv else 'asyncio'}",
                             f"p50 {p50:.0f} µs, p99 {p99:.0f} µs"))
                print(rows[-1], flush=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    record(
        "bus (bench/bus.py)" + (" --quick" if quick else ""),
        rows,
        notes="One publisher and one subscriber process through one nats-server on loopback; "
        f"load average before/after: {' '.join(load)}. "
        "Targets: >= 3,000,000 trades/s with TradeBatch of 1,000; request-reply p50 < 250 µs with uvloop.",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["sub", "pub", "resp", "req", "rawresp", "rawreq"])
    parser.add_argument("--url")
    parser.add_argument("--mode", default="single")
    parser.add_argument("--total", type=int, default=0)
    parser.add_argument("--window", type=int, default=0)
    parser.add_argument("--ack-every", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.role is None:
        orchestrate(args.quick)
        return
    use_uvloop(args.uvloop)
    if args.role == "sub":
        asyncio.run(subscriber(args.url, args.mode, args.total, args.ack_every))
    elif args.role == "pub":
        asyncio.run(publisher(args.url, args.mode, args.total, args.window))
    elif args.role == "resp":
        asyncio.run(responder(args.url))
    elif args.role == "rawresp":
        asyncio.run(raw_responder(args.url))
    elif args.role == "rawreq":
        asyncio.run(raw_requester(args.url, args.total))
    else:
        asyncio.run(requester(args.url, args.total))


if __name__ == "__main__":
    main()
