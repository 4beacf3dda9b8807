"""What the Prometheus metrics cost per message, and a scrape of a busy service's registry.

Figures (one process, no network, best of 5 rounds of 200,000 calls):
- ``count_in`` / ``count_out`` / ``observe_handler`` of tradebus.metrics per message;
- ``Bus.decode`` of one msgpack Trade (it counts the message in) against the bare msgspec decode;
- one scrape (``generate_latest``) of a registry with the families a busy stack produces.

Usage: ``python bench/metrics.py``.
"""
from __future__ import annotations

import os
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from prometheus_client import REGISTRY, generate_latest  # noqa: E402

from _results import record  # noqa: E402
from tradebus import metrics  # noqa: E402
from tradebus.bus import Bus  # noqa: E402
from tradebus.proto import Side, Trade  # noqa: E402
from tradebus.proto.codec import decoder_for, encode  # noqa: E402

CALLS = 200_000
ROUNDS = 5


def per_call_us(fn) -> float:
    return min(timeit.repeat(fn, number=CALLS, repeat=ROUNDS)) / CALLS * 1e6


def main() -> int:
    subject = "md.sim.BTC-USDT.trade"
    trade = Trade(venue="sim", symbol="BTC/USDT", price=65000.5, qty=0.01, side=Side.BUY, trade_id="1",
                  ts_event=time.time_ns(), ts_recv=time.time_ns())
    data = encode(trade)
    decoder = decoder_for(Trade)
    bus = Bus(None)  # type: ignore[arg-type]  # decode() needs no connection
    started = time.perf_counter()
    bare = per_call_us(lambda: decoder.decode(data))
    counted = per_call_us(lambda: bus.decode(subject, data, Trade))
    rows = [
        ("count_in (one message in, by family)", f"{per_call_us(lambda: metrics.count_in(subject)):.2f} us"),
        ("count_out (one message out)", f"{per_call_us(lambda: metrics.count_out(subject)):.2f} us"),
        ("observe_handler (histogram)", f"{per_call_us(lambda: metrics.observe_handler('md.trade', started)):.2f} us"),
        ("msgspec decode of a Trade, bare", f"{bare:.2f} us"),
        ("Bus.decode of a Trade (counts it in)", f"{counted:.2f} us (+{counted - bare:.2f} us)"),
    ]
    for family in ("md.trade", "md.bbo", "md.book", "md.delta", "md.bar", "ord.req", "ord.evt", "acct.balance",
                   "svc.strategy_runner", "_INBOX", "$KV.router_state", "bt.job", "bt.result"):
        metrics.MESSAGES_IN.labels(family).inc()
        metrics.MESSAGES_OUT.labels(family).inc()
        metrics.HANDLER_SECONDS.labels(family).observe(0.001)
    scrape = min(timeit.repeat(lambda: generate_latest(REGISTRY), number=200, repeat=ROUNDS)) / 200 * 1e3
    size = len(generate_latest(REGISTRY))
    rows.append(("scrape of 13 families (generate_latest)", f"{scrape:.2f} ms, {size:,} bytes"))
    load = os.getloadavg()[0]
    record("metrics: cost per message and per scrape (tradebus.metrics)", rows,
           notes=f"Best of {ROUNDS} rounds of {CALLS:,} calls; label children cached per family. "
                 f"Load average (1 min) at the end: {load:.2f} on shared cores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
