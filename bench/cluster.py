"""The embedded three-node NATS cluster (`tradebus up --cluster 3`): how long it takes to be ready,
what replication costs a JetStream publish, and what a killed ORDERS leader costs the order flow.

Per round, a fresh ``NatsCluster(3)``:
- ready: start of the processes -> meta leader -> every stream and bucket declared with three
  replicas and current (what `tradebus up --cluster 3` waits for before starting services);
- acked publish latency on ORDERS (p50/p99 of 2,000 sequential publishes with ``Nats-Msg-Id``),
  beside the same on one embedded server with one replica;
- failover: a publisher storing one order request every 10 ms (each retried until acked, as
  strategy_runner does) while the ORDERS leader is SIGKILLed: time until a new leader is known,
  the longest gap between two acks, retries; then the node restarted and every replica current.

Usage: ``python bench/cluster.py [--rounds N]``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _results import record  # noqa: E402
from tradebus.bus import Bus, EmbeddedNats, NatsCluster, NatsConfig  # noqa: E402
from tradebus.bus.jetstream import wait_replicated  # noqa: E402
from tradebus.proto.subjects import ORDERS_STREAM  # noqa: E402

SUBJECT = "ord.req.bench"


async def publish_latency(bus: Bus, n: int = 2_000) -> tuple[float, float]:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        await bus.js_publish(SUBJECT, b"x" * 200, headers={"Nats-Msg-Id": f"lat-{time.time_ns()}-{i}"})
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=100)
    return q[49] * 1e3, q[98] * 1e3


async def leader(bus: Bus) -> str | None:
    """ORDERS' leader from ``$JS.API.STREAM.INFO``, asked with a short timeout (nats-py's stream_info
    waits 5 s for an answer that does not come during the election)."""
    try:
        reply = await bus.nc.request(f"$JS.API.STREAM.INFO.{ORDERS_STREAM}", b"", timeout=0.25)
    except Exception:
        return None
    return (json.loads(reply.data).get("cluster") or {}).get("leader")


async def failover(cluster: NatsCluster, bus: Bus) -> dict[str, float]:
    acked: list[float] = []
    retries = 0
    stop = asyncio.Event()

    async def flow() -> None:
        nonlocal retries
        n = 0
        while not stop.is_set():
            n += 1
            while True:
                try:
                    await bus.js_publish(SUBJECT, b"x" * 200, headers={"Nats-Msg-Id": f"fo-{time.time_ns()}-{n}"},
                                         timeout=1.0)
                    break
                except Exception:
                    retries += 1
                    await asyncio.sleep(0.05)
            acked.append(time.perf_counter())
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(flow())
    await asyncio.sleep(1.0)
    old = await leader(bus)
    victim = cluster.node(old)
    killed = time.perf_counter()
    cluster.kill(victim)
    while (now := await leader(bus)) in (None, old):
        await asyncio.sleep(0.02)
    elected = time.perf_counter() - killed
    while not acked or acked[-1] < killed + elected:
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)
    restarted = time.perf_counter()
    cluster.restart_exited()
    await wait_replicated(bus.js, timeout=120)
    caught_up = time.perf_counter() - restarted
    stop.set()
    await task
    gaps = [b - a for a, b in zip(acked, acked[1:])]
    return {"elected": elected, "gap": max(gaps), "retries": retries, "caught_up": caught_up, "new": now}


async def round_(tmp: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    cluster = NatsCluster(3, state_dir=tmp / "cluster").start()
    try:
        bus = await Bus.connect(NatsConfig(url=cluster.url, stream_replicas=3))
        await bus.declare_all()
        await wait_replicated(bus.js, timeout=120)
        ready = time.perf_counter() - t0
        p50, p99 = await publish_latency(bus)
        out = {"ready": ready, "p50": p50, "p99": p99, **await failover(cluster, bus)}
        await bus.close()
    finally:
        cluster.stop()
    single = EmbeddedNats(state_dir=tmp / "single").start()
    try:
        bus = await Bus.connect(single.url)
        await bus.declare_all()
        out["p50_r1"], out["p99_r1"] = await publish_latency(bus)
        await bus.close()
    finally:
        single.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="tradebus-bench-cluster-") as tmp:
            result = asyncio.run(round_(Path(tmp)))
        print(f"round {i + 1}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in result.items()), flush=True)
        rounds.append(result)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    def span(key: str, unit: str, scale: float = 1.0, fmt: str = ".2f") -> str:
        values = sorted(r[key] * scale for r in rounds)
        return f"{statistics.median(values):{fmt}} {unit} (min {values[0]:{fmt}}, max {values[-1]:{fmt}})"

    load = os.getloadavg()[0]
    record("NATS cluster (embedded, 3 nodes, replicas 3)", [
        ("start -> meta leader -> all streams and buckets R3 current", span("ready", "s")),
        ("ORDERS acked publish, R3 cluster: p50 / p99", f"{med('p50'):.2f} / {med('p99'):.2f} ms"),
        ("ORDERS acked publish, one server R1: p50 / p99", f"{med('p50_r1'):.2f} / {med('p99_r1'):.2f} ms"),
        ("ORDERS leader SIGKILLed -> new leader known", span("elected", "s")),
        ("longest gap between two acked order requests (100/s flow)", span("gap", "s")),
        ("publish retries during the failover", span("retries", "", fmt=".0f")),
        ("killed node restarted -> every replica current", span("caught_up", "s")),
    ], notes=f"{args.rounds} rounds, each on a fresh cluster on loopback; median (min, max). The flow retries each "
             "request until JetStream acks it (same Nats-Msg-Id), as strategy_runner does, so nothing is lost; "
             f"the gap is what a strategy's orders wait during the election. Load average (1 min) at the end: {load:.2f} "
             "on 2 shared cores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
