"""``tradebus data download``: page trades or klines from a venue (or the sim) into replayable CSVs."""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

log = logging.getLogger("tradebus.data")


def parse_time(value: str) -> int:
    """Milliseconds since the epoch, or an ISO date/time (UTC unless it says otherwise) -> ms."""
    if value.isdigit():
        return int(value)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


async def download(args) -> int:
    import ccxt
    import ccxt.async_support as ccxt_async

    from tradebus.data import data_dir
    from tradebus.data.download import download as run_download
    from tradebus.data.download import output_path
    from tradebus.exchanges.sim import point_ccxt_at_sim

    exchange_id = args.exchange or args.venue
    exchange = getattr(ccxt_async, exchange_id)({"enableRateLimit": True})
    if args.sim_url:
        point_ccxt_at_sim(exchange, args.sim_url)
    path = output_path(args.out or data_dir(), args.venue, args.symbol, args.kind, args.interval)
    until = parse_time(args.until) if args.until else exchange.milliseconds()
    try:
        n = await run_download(exchange, args.symbol, args.kind, path, parse_time(args.since), until,
                               args.interval, args.limit)
    except (ccxt.BaseError, ValueError, OSError) as exc:
        log.error("download stopped: %s (run again to resume)", exc)
        return 1
    finally:
        await exchange.close()
    print(f"{path}: {n} rows added")
    return 0


def run(args) -> int:
    return asyncio.run(download(args))


def register(sub) -> None:
    p = sub.add_parser("data", help="market-data files")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    d = dsub.add_parser("download", help="download trades or klines through ccxt (resumes)")
    d.add_argument("--venue", default="binance", help="venue name used in the file name")
    d.add_argument("--exchange", help="ccxt exchange id (default: --venue)")
    d.add_argument("--symbol", required=True)
    d.add_argument("--kind", choices=["trades", "klines"], required=True)
    d.add_argument("--interval", default="1m")
    d.add_argument("--since", required=True, help="ISO time (UTC) or epoch ms")
    d.add_argument("--until", help="ISO time (UTC) or epoch ms; default now")
    d.add_argument("--limit", type=int, default=1000, help="rows per request")
    d.add_argument("--out", help="output folder (default: the data folder, $TRADEBUS_DATA_DIR)")
    d.add_argument("--sim-url", help="download from a sim_exchange at this URL")
    d.set_defaults(func=run)
