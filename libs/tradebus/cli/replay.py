"""``tradebus replay``: publish recorded market data (Binance CSVs, Parquet or JetStream recordings) as md events."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from pathlib import Path

log = logging.getLogger("tradebus.replay")


async def replay(args) -> int:
    from tradebus.marketdata.record import read_jetstream
    from tradebus.marketdata.replay import Replayer, open_sources
    from tradebus.proto import MarketDataEvent
    from tradebus.proto.codec import decoder_for
    from tradebus.proto.subjects import subject_for

    from .connect import bus_url, connect

    counters: Counter = Counter()
    bus = None
    if not args.dry_run:
        bus = await connect(bus_url(args), "tradebus-replay")
    kinds: Counter = Counter()

    async def publish(event) -> None:
        kinds[type(event).__name__] += 1
        if bus is not None:
            await bus.publish(subject_for(event), event)

    try:
        sources = open_sources([Path(f) for f in args.files], args.venue, args.symbol, args.depth, counters,
                               args.interval) if args.files else []
        if args.jetstream:
            if bus is None:
                raise ValueError("--jetstream needs a NATS connection (no --dry-run)")
            decode = decoder_for(MarketDataEvent).decode
            stored = [(ts, decode(data)) async for ts, _, data in read_jetstream(bus, args.jetstream)]
            sources.append(iter(stored))
        if not sources:
            raise ValueError("nothing to replay: give files or --jetstream")
        start = time.perf_counter()
        n = await Replayer(sources, publish, speed=args.speed, counters=counters).run()
        if bus is not None:
            await bus.flush()
    except (ValueError, OSError) as exc:
        log.error("replay: %s", exc)
        return 2
    finally:
        if bus is not None:
            await bus.close()
    took = time.perf_counter() - start
    print(f"replayed {n} events in {took:.2f}s ({n / took if took else 0:,.0f}/s); bad rows {counters['bad.replay']}")
    for k, v in sorted(kinds.items()):
        print(f"  {k:<14} {v}")
    return 0


def run(args) -> int:
    return asyncio.run(replay(args))


def register(sub) -> None:
    p = sub.add_parser("replay", help="publish recorded market data on md.<venue>.<symbol>.<kind>")
    p.add_argument("files", nargs="*", help="Binance CSVs (trades, aggTrades, klines, bookTicker, depth snapshot "
                                            "+ its updates file) and/or recording folders / .parquet files")
    p.add_argument("--venue", default="binance", help="venue token of the published events (CSV files)")
    p.add_argument("--symbol", default="BTC/USDT", help="unified symbol of the CSV files")
    p.add_argument("--speed", type=float, default=0.0, help="1 = real time, N = N times faster, 0 = as fast as possible")
    p.add_argument("--depth", type=int, default=20, help="book levels per side in BookSnapshot")
    p.add_argument("--interval", default="1m", help="kline interval of kline files")
    p.add_argument("--jetstream", help="also replay this JetStream recording stream (e.g. MD_RECORD)")
    p.add_argument("--dry-run", action="store_true", help="read and count, publish nothing")
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url")
    p.add_argument("--state-dir", default=".state")
    p.set_defaults(func=run)
