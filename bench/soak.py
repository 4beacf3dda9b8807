"""Soak: the paper stack under a steady load for ten minutes (issue 17). Not a test.

A real nats-server (JetStream) and the services as their own processes, as ``tradebus up`` runs
them: sim_exchange (a synthetic BTC/USDT spot market printing ``--trade-rate`` trades/s at real
time, and BTC/USDT:USDT and ETH/USDT:USDT perpetuals), market_data streaming the spot trades,
strategy_runner with ``bench/_soak_strategy.py`` (round trips on the three at ``--spot-per-s`` +
``--perp-per-s`` orders/s, each order triggered by a trade, one order at a time per symbol), and
order_router trading the sim's paper account over its WebSocket API. Spot alone allows 10
orders/s per account (Binance's 100 per 10 s, which the router keeps), so the order rate is split
between spot and USD-M (1,200 per minute), the USD-M part over two symbols so that each symbol's
next order is due 125 ms after its last.

Recorded over time: every process's RSS (psutil when installed, else /proc) and CPU; the trade
events/s reaching the bus and the orders/s; tick-to-order latency (the venue's time of the trade
that triggered an order, whole ms floored, to the order request's ``ts_init``: it over-states by
0-1 ms) and order-to-ack latency (the request's ``ts_init`` to its OrderAck reaching a bus
subscriber), p50/p99 per window (a minute). At the end the strategy is paused and the ledger of
``tradebus.audit`` must balance: every order requested, accepted and filled once at the venue,
every venue fill once on the bus and in the strategy's journal, positions = fills = the venue's
BTC balance change.

Checks: each window's trade events/s >= 5,000 and orders/s >= 20 (the issue's load); memory:
each process's median RSS in the last window within +10% of window 2's (window 1 is warm-up);
latency: the last window's p99 at most 1.5 x the first window's + 2 ms; the ledger balanced.

Usage: ``python bench/soak.py [--minutes 10] [--window 60] [--no-record]``; ``--minutes 2
--window 20`` is a quick run. Results go to bench/RESULTS.md and the plot to bench/soak.png.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from _results import RESULTS, cpu_seconds, record, rss_bytes  # noqa: E402
from tradebus.audit import Audit  # noqa: E402
from tradebus.bus import Bus, EmbeddedNats, free_port  # noqa: E402
from tradebus.proto import (  # noqa: E402  # noqa: E402
    MarketDataEvent,
    NewOrder,
    OrderAck,
    OrderEvent,
    OrderReject,
    OrderRequest,
    ParamsUpdate,
    Trade,
    TradeBatch,
)
from tradebus.proto.subjects import md_wildcard, order_event_subject, order_request_subject, params_subject  # noqa: E402

HERE = Path(__file__).parent
STRATEGY = "soak"
SERVICES = ("sim_exchange", "market_data", "order_router", "strategy_runner")
MIN_TRADES_PER_S, MIN_ORDERS_PER_S = 5_000, 20
RSS_GROWTH = 0.10
P99_FACTOR, P99_SLACK_MS = 1.5, 2.0
MiB = 2 ** 20


def deployment(sim_port: int, tmp: Path, args) -> dict:
    """The deployment file of the soak: local.yaml's stack with a dense synthetic market."""
    steps_per_s = 1000 / args.step_ms
    sim = {
        "seed": 17, "speed": "1",
        "instruments": [
            {"symbol": "BTC/USDT", "market": "spot", "tick_size": "0.01", "step_size": "0.00001",
             "min_qty": "0.00001", "min_notional": "5",
             "synthetic": {"price": "61838.00", "levels": 20, "base_qty": "0.4", "trade_qty": "0.01",
                           "step_ms": args.step_ms, "trades_per_step": args.trade_rate / steps_per_s}},
            {"symbol": "BTC/USDT:USDT", "market": "usdm", "tick_size": "0.10", "step_size": "0.001",
             "min_qty": "0.001", "min_notional": "100",
             "synthetic": {"price": "61800.00", "levels": 20, "base_qty": "1.5", "trade_qty": "0.05"}},
            {"symbol": "ETH/USDT:USDT", "market": "usdm", "tick_size": "0.01", "step_size": "0.001",
             "min_qty": "0.001", "min_notional": "20",
             "synthetic": {"price": "2600.00", "levels": 20, "base_qty": "20", "trade_qty": "0.5"}},
        ],
        "accounts": [{"api_key": "sim-key", "secret": "sim-secret", "spot": {"USDT": "1000000", "BTC": "1"},
                      "futures": {"USDT": "1000000"}, "leverage": 20}],
    }
    url = f"http://127.0.0.1:{sim_port}"
    return {"services": {
        "sim_exchange": {"module": "tradebus.services.sim_exchange", "args": ["--port", str(sim_port)],
                         "settings": sim},
        "market_data": {"module": "tradebus.services.market_data", "settings": {"venues": [{
            "name": "sim", "exchange": "binance", "sim_url": url, "symbols": ["BTC/USDT"], "streams": ["trades"],
            "options": {"enableRateLimit": False}}]}},
        "strategy_runner": {"module": "tradebus.services.strategy_runner", "settings": {"strategies": [{
            "name": STRATEGY, "class": f"{HERE / '_soak_strategy.py'}:SoakPacer", "venue": "sim",
            "symbols": [{"symbol": "BTC/USDT", "tick_size": 0.01, "lot_size": 0.00001},
                        {"symbol": "BTC/USDT:USDT", "tick_size": 0.1, "lot_size": 0.001},
                        {"symbol": "ETH/USDT:USDT", "tick_size": 0.01, "lot_size": 0.001}],
            "params": {"journal": str(tmp / "journal.jsonl"), "ticks": str(tmp / "ticks.txt"),
                       "per_s": [args.spot_per_s, args.perp_per_s / 2, args.perp_per_s / 2],
                       "qty": [0.001, 0.002, 0.01]}}]}},
        "order_router": {"module": "tradebus.services.order_router", "settings": {
            "venue": "sim", "adapters": ["binance:spot", "binance:usdm"], "sim_url": url,
            "order_entry": "ws"}},
    }}


# -- processes ---------------------------------------------------------------------------------

class Stack:
    """The services as child processes (``python -m tradebus.services.<name>``), logs in ``logs``."""

    def __init__(self, config: Path, url: str, logs: Path):
        self.config, self.url, self.logs = config, url, logs
        self.procs: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, extra: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"tradebus.services.{name}", "--config", str(self.config), "--nats-url", self.url,
             "--instance", name, "--log-level", "WARNING", *extra], stdout=log, stderr=subprocess.STDOUT)

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- what the bus shows ------------------------------------------------------------------------

class Observer:
    """A bus subscriber counting trade events and orders per second, and each order's ack."""

    def __init__(self) -> None:
        self.trades: Counter = Counter()        # second -> trade events
        self.orders: Counter = Counter()        # second -> new orders
        self.requested: dict[str, int] = {}     # client order id -> ts_init
        self.acked: dict[str, int] = {}         # client order id -> arrival (ns)
        self.rejects: Counter = Counter()

    async def on_md(self, event, _msg) -> None:
        n = len(event) if isinstance(event, TradeBatch) else 1 if isinstance(event, Trade) else 0
        self.trades[int(time.time())] += n

    async def on_request(self, request, _msg) -> None:
        if isinstance(request, NewOrder):
            self.requested[request.client_order_id] = request.ts_init
            self.orders[request.ts_init // 1_000_000_000] += 1

    async def on_event(self, event, _msg) -> None:
        if isinstance(event, OrderAck):
            self.acked.setdefault(event.client_order_id, time.time_ns())
        elif isinstance(event, OrderReject):
            self.rejects[str(event.reject_code)] += 1


async def wait_for(check, what: str, stack: Stack, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        stack.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: {what} not reached within {timeout:.0f} s")
        await asyncio.sleep(0.25)


async def answering(bus: Bus, names) -> bool:
    found = {p["name"] for p in await bus.discover("PING", timeout=0.3)}
    return set(names) <= found


# -- figures -----------------------------------------------------------------------------------

def windows_of(t0: float, seconds: float, window: float) -> list[tuple[float, float]]:
    n = max(1, int(round(seconds / window)))
    return [(t0 + k * window, t0 + (k + 1) * window) for k in range(n)]


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def latency_rows(samples: list[tuple[float, float]], wins) -> list[tuple[float, float, int]]:
    """(p50, p99 in ms, count) per window of (time s, latency ms) samples."""
    out = []
    for a, b in wins:
        lat = [ms for t, ms in samples if a <= t < b]
        out.append((pct(lat, 50), pct(lat, 99), len(lat)))
    return out


def rate_rows(counts: Counter, wins) -> list[float]:
    return [sum(n for s, n in counts.items() if a <= s < b) / (b - a) for a, b in wins]


def plot(path: Path, t0: float, end: float, rss: list, lat: dict, rates: dict, window: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 11), sharex=True, layout="constrained")
    minutes = [(t - t0) / 60 for t, _ in rss]
    for name in rss[0][1]:
        axes[0].plot(minutes, [sample[name] / MiB for _, sample in rss], label=name)
    axes[0].set_ylabel("RSS (MiB)")
    axes[0].set_title("memory of each process")
    axes[0].legend(fontsize=8, ncol=3, loc="center right")
    for (label, samples), color in zip(lat.items(), ("tab:blue", "tab:orange")):
        ts, ms = [t for t, _ in samples], [m for _, m in samples]
        axes[1].scatter([(t - t0) / 60 for t in ts], ms, s=2, alpha=0.15, color=color)
        bins = np.arange(0, max(ts or [t0]) - t0 + 10, 10.0)
        mids, p50, p99 = [], [], []
        for a in bins:
            sel = [m for t, m in samples if a <= t - t0 < a + 10]
            if sel:
                mids.append((a + 5) / 60)
                p50.append(pct(sel, 50))
                p99.append(pct(sel, 99))
        axes[1].plot(mids, p50, color=color, label=f"{label} p50 (10 s)")
        axes[1].plot(mids, p99, color=color, linestyle="--", label=f"{label} p99 (10 s)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("latency (ms)")
    axes[1].set_title("latency (dots: every order)")
    axes[1].legend(fontsize=8, ncol=2, loc="upper left")
    for (label, counts), ax, color in zip(rates.items(), (axes[2], axes[2].twinx()), ("tab:green", "tab:red")):
        secs = sorted(s for s in counts if t0 <= s and s + 1 <= end)
        ax.plot([(s - t0) / 60 for s in secs], [counts[s] for s in secs], color=color, linewidth=0.7, label=label)
        ax.set_ylabel(label, color=color)
    axes[2].set_xlabel(f"minutes since the first order (windows of {window:.0f} s)")
    axes[2].set_title("load: trade events/s on the bus, orders/s")
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the run -----------------------------------------------------------------------------------

async def soak(args, tmp: Path) -> tuple[list, str, bool]:
    load_before = os.getloadavg()
    sim_port = free_port()
    config = tmp / "soak.yaml"
    config.write_text(yaml.safe_dump(deployment(sim_port, tmp, args), sort_keys=False))
    with EmbeddedNats(state_dir=tmp / "nats") as nats:
        bus = await Bus.connect(nats.url)
        await bus.declare_all()
        stack = Stack(config, nats.url, tmp / "logs")
        obs = Observer()
        await bus.subscribe(md_wildcard("sim"), MarketDataEvent, obs.on_md,
                            pending_msgs_limit=-1, pending_bytes_limit=-1)
        await bus.subscribe(order_request_subject("sim", STRATEGY), OrderRequest, obs.on_request,
                            pending_msgs_limit=-1, pending_bytes_limit=-1)
        await bus.subscribe(order_event_subject("sim", STRATEGY), OrderEvent, obs.on_event,
                            pending_msgs_limit=-1, pending_bytes_limit=-1)
        try:
            stack.start("sim_exchange", ["--port", str(sim_port)])
            await wait_for(lambda: answering(bus, ["sim_exchange"]), "sim_exchange up", stack)
            audit = Audit(bus, f"http://127.0.0.1:{sim_port}", journals={STRATEGY: tmp / "journal.jsonl"},
                          assets=("BTC",))
            await audit.start()
            stack.start("market_data", [])
            stack.start("order_router", [])
            await wait_for(lambda: answering(bus, ["market_data", "order_router"]), "market_data, order_router up",
                           stack)

            async def flowing() -> bool:
                return sum(obs.trades.values()) > 0
            await wait_for(flowing, "trades on the bus", stack)
            await asyncio.sleep(2.0)                       # the router reconciles, then consumes
            stack.start("strategy_runner", [])

            async def ordering() -> bool:
                return bool(obs.requested)
            await wait_for(ordering, "the first order", stack)
            t0 = min(obs.requested.values()) / 1e9
            end = t0 + args.minutes * 60
            pids = {"nats-server": nats.process.pid, **{n: p.pid for n, p in stack.procs.items()},
                    "soak (bus observer)": os.getpid()}
            rss: list[tuple[float, dict[str, int]]] = []
            cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
            loads = []
            print(f"soak: {args.minutes:g} min from {time.strftime('%H:%M:%S', time.localtime(t0))}", flush=True)
            while (now := time.time()) < end:
                stack.check()
                rss.append((now, {n: rss_bytes(p) for n, p in pids.items()}))
                loads.append(os.getloadavg()[0])
                if len(rss) % 60 == 0:
                    done = int(now - t0)
                    print(f"  {done // 60:02d}:{done % 60:02d} orders {len(obs.requested)}, acks {len(obs.acked)}, "
                          f"load {loads[-1]:.1f}", flush=True)
                await asyncio.sleep(min(1.0, max(0.0, end - time.time())))
            took = time.time() - t0
            cpu = {n: (cpu_seconds(p) - cpu0[n]) / took for n, p in pids.items()}

            await bus.publish(params_subject(STRATEGY), ParamsUpdate(strategy=STRATEGY, params={"active": False},
                                                                     ts_init=time.time_ns()))
            await asyncio.sleep(3.0)
            tally = await audit.settle("soak", timeout=60.0)
            print(tally.report(limit=20), flush=True)
        finally:
            for name in reversed(SERVICES):
                stack.stop(name)
            await bus.close()
    load_after = os.getloadavg()

    # tick-to-order: the strategy's tick time joined to the request's ts_init by order id
    coid_of = {coid.rsplit("-", 1)[1]: coid for coid in obs.requested}
    t2o = []
    for line in (tmp / "ticks.txt").read_text().splitlines():
        order_id, tick_ns, _ = line.split()
        coid = coid_of.get(order_id)
        if coid is not None:
            ts = obs.requested[coid]
            t2o.append((ts / 1e9, (ts - int(tick_ns)) / 1e6))
    o2a = [(obs.requested[c] / 1e9, (obs.acked[c] - obs.requested[c]) / 1e6) for c in obs.acked if c in obs.requested]
    wins = windows_of(t0, args.minutes * 60, args.window)
    md_rates, order_rates = rate_rows(obs.trades, wins), rate_rows(obs.orders, wins)
    t2o_w, o2a_w = latency_rows(t2o, wins), latency_rows(o2a, wins)
    rss_w = {n: [statistics.median([s[n] for t, s in rss if a <= t < b] or [0]) for a, b in wins] for n in pids}

    # RSS growth after warm-up (from window 2 on), least squares, bytes/s
    after = [(t, sample) for t, sample in rss if t >= wins[min(1, len(wins) - 1)][0]]
    slopes = {n: float(np.polyfit([t for t, _ in after], [s[n] for _, s in after], 1)[0]) if len(after) > 2 else 0.0
              for n in pids}
    order_rate = max(1e-9, statistics.mean(order_rates))
    checks = {
        f"trade events/s >= {MIN_TRADES_PER_S:,} in every window": min(md_rates) >= MIN_TRADES_PER_S,
        f"orders/s >= {MIN_ORDERS_PER_S} in every window": min(order_rates) >= MIN_ORDERS_PER_S,
        "ledger balanced": tally.balanced,
    }
    if len(wins) >= 3:
        for n, series in rss_w.items():
            checks[f"RSS {n}: last window <= window 2 + {RSS_GROWTH:.0%}"] = series[-1] <= series[1] * (1 + RSS_GROWTH)
    for label, w in (("tick-to-order", t2o_w), ("order-to-ack", o2a_w)):
        checks[f"{label} p99: last window <= {P99_FACTOR} x first + {P99_SLACK_MS:g} ms"] = (
            w[-1][1] <= w[0][1] * P99_FACTOR + P99_SLACK_MS)

    png = (HERE / "soak.png") if args.record else (tmp / "soak.png")
    plot(png, t0, end, rss, {"tick-to-order": t2o, "order-to-ack": o2a},
         {"trade events/s": obs.trades, "orders/s": obs.orders}, args.window)
    rows = [
        ("duration / windows", f"{took / 60:.1f} min / {len(wins)} x {args.window:.0f} s"),
        ("trade events/s on the bus per window (min / median / max)",
         " / ".join(f"{f(md_rates):,.0f}" for f in (min, statistics.median, max))),
        ("orders/s per window (min / median / max)",
         " / ".join(f"{f(order_rates):.1f}" for f in (min, statistics.median, max))),
        ("ledger", tally.line()),
        ("rejects on the bus", ", ".join(f"{k}: {v}" for k, v in obs.rejects.items()) or "0"),
        ("tick-to-order p50 / p99, first window -> last (ms)",
         f"{t2o_w[0][0]:.2f} / {t2o_w[0][1]:.2f} -> {t2o_w[-1][0]:.2f} / {t2o_w[-1][1]:.2f} "
         f"(worst window p99 {max(w[1] for w in t2o_w):.2f})"),
        ("order-to-ack p50 / p99, first window -> last (ms)",
         f"{o2a_w[0][0]:.2f} / {o2a_w[0][1]:.2f} -> {o2a_w[-1][0]:.2f} / {o2a_w[-1][1]:.2f} "
         f"(worst window p99 {max(w[1] for w in o2a_w):.2f})"),
        *[(f"RSS {n}, window 2 -> last (MiB)",
           f"{s[min(1, len(s) - 1)] / MiB:.1f} -> {s[-1] / MiB:.1f} "
           f"({(s[-1] / s[min(1, len(s) - 1)] - 1) * 100:+.1f}%), after warm-up {slopes[n] * 60 / MiB:+.2f} MiB/min "
           f"= {slopes[n] / order_rate / 1024:+.2f} KiB per order; CPU {cpu[n] * 100:.0f}% of a core")
          for n, s in rss_w.items()],
        ("load average (1 min) before / mean during / after",
         f"{load_before[0]:.2f} / {statistics.mean(loads):.2f} / {load_after[0]:.2f}"),
        *[(f"check: {k}", "pass" if ok else "FAIL") for k, ok in checks.items()],
    ]
    per_window = ["| window | trade ev/s | orders/s | tick-to-order p50 / p99 ms | order-to-ack p50 / p99 ms | "
                  + " | ".join(f"{n} MiB" for n in pids) + " |",
                  "|---" * (5 + len(pids)) + "|"]
    for k in range(len(wins)):
        per_window.append(f"| {k + 1} | {md_rates[k]:,.0f} | {order_rates[k]:.1f} | "
                          f"{t2o_w[k][0]:.2f} / {t2o_w[k][1]:.2f} | {o2a_w[k][0]:.2f} / {o2a_w[k][1]:.2f} | "
                          + " | ".join(f"{rss_w[n][k] / MiB:.1f}" for n in pids) + " |")
    return rows, "\n".join(per_window), all(checks.values())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the measured run (default 10)")
    p.add_argument("--window", type=float, default=60.0, help="seconds per p50/p99 and RSS window (default 60)")
    p.add_argument("--trade-rate", type=float, default=6_000.0, help="trades/s the sim prints on BTC/USDT")
    p.add_argument("--step-ms", type=int, default=10, help="sim time between synthetic book updates")
    p.add_argument("--spot-per-s", type=float, default=8.0, help="spot orders/s (the venue allows 10)")
    p.add_argument("--perp-per-s", type=float, default=16.0, help="USD-M orders/s (the venue allows 20)")
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="print only: no RESULTS.md section, the plot stays in the temporary folder")
    p.add_argument("--keep", help="keep the run's folder (logs, journal, deployment file) here")
    args = p.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tradebus-soak-"))
    if tmp.exists() and any(tmp.iterdir()):   # a previous run's stream and journal would mix in
        p.error(f"--keep {tmp} is not empty")
    tmp.mkdir(parents=True, exist_ok=True)
    rows, table, ok = asyncio.run(soak(args, tmp))
    notes = (
        "The paper stack as separate processes on one shared 2-core VM (other helpers' builds and tests "
        "ran at the same time: see the load average). Load: the sim's synthetic BTC/USDT prints "
        f"{args.trade_rate:,.0f} trades/s at real time, market_data streams them (fast trades) to the bus; "
        f"bench/_soak_strategy.py sends {args.spot_per_s:g} spot (BTC/USDT) + {args.perp_per_s:g} USD-M "
        "(BTC and ETH perpetuals) market orders/s (buy when flat, close_position when long, one order at a "
        "time per symbol), the order router sends them over the venue's WebSocket API. Tick-to-order: venue "
        "trade time (ms, floored) to the request's ts_init; order-to-ack: ts_init "
        "to the OrderAck at a bus subscriber. Rules: RSS median of the last window <= window 2's + 10% "
        "(window 1 is warm-up); p99 of the last window <= 1.5 x the first's + 2 ms; the ledger "
        "(tradebus.audit) balanced after the strategy is paused.\n\n"
        f"{table}\n\n![soak: memory and latency over time](soak.png)")
    if args.record:
        record("soak: the paper stack for "
               f"{args.minutes:g} minutes (bench/soak.py)", rows, notes=notes)
        print(f"recorded in {RESULTS}; plot bench/soak.png")
    else:
        print("\n".join(f"  {k}: {v}" for k, v in rows))
        print(table)
        print(f"plot: {tmp / 'soak.png'}")
    print(f"run folder: {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
