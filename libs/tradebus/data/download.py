"""Page through ccxt ``fetch_ohlcv`` / ``fetch_trades`` into CSV files replay and the backtesters read.

Klines: ``open_time,open,high,low,close,volume`` (the layout of ../shared/data's 1m files).
Trades: ``trade_time_ms,trade_id,price,qty,is_buyer_maker``. Rows are appended and flushed page by
page, so an interrupted download resumes after the last row on disk. Requests go through ccxt's
own rate limiter (``enableRateLimit``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from tradebus.proto.subjects import symbol_token

log = logging.getLogger("tradebus.data.download")

__all__ = ["download", "output_path", "KLINE_HEADER", "TRADE_HEADER"]

KLINE_HEADER = "open_time,open,high,low,close,volume"
TRADE_HEADER = "trade_time_ms,trade_id,price,qty,is_buyer_maker"
HOUR_MS = 3_600_000


def output_path(out_dir: str | Path, venue: str, symbol: str, kind: str, interval: str = "1m") -> Path:
    name = f"{venue}_{symbol_token(symbol)}_{interval + '_klines' if kind == 'klines' else 'trades'}.csv"
    return Path(out_dir) / name


def _last_row(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        lines = fh.read().decode().strip().splitlines()
    last = lines[-1].split(",") if lines else None
    return None if not last or not last[0].isdigit() else last


def _fmt(x) -> str:
    return repr(float(x)) if x is not None else ""


async def download(exchange, symbol: str, kind: str, path: Path, since_ms: int, until_ms: int,
                   interval: str = "1m", limit: int = 1000,
                   progress: Callable[[int], None] | None = None) -> int:
    """Append ``kind`` rows in [since_ms, until_ms] to ``path`` (resuming after its last row); returns rows added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    last = _last_row(path)
    new_file = not path.exists() or path.stat().st_size == 0
    await exchange.load_markets()
    added = 0
    with path.open("a", newline="") as fh:
        if new_file:
            fh.write((KLINE_HEADER if kind == "klines" else TRADE_HEADER) + "\n")
        if kind == "klines":
            span = exchange.parse_timeframe(interval) * 1000
            since = max(since_ms, int(last[0]) + span) if last else since_ms
            while since <= until_ms:
                rows = await exchange.fetch_ohlcv(symbol, interval, since, limit)
                rows = [r for r in rows if since <= r[0] <= until_ms]
                if not rows:
                    break
                fh.write("".join(f"{r[0]},{_fmt(r[1])},{_fmt(r[2])},{_fmt(r[3])},{_fmt(r[4])},{_fmt(r[5])}\n"
                                 for r in rows))
                fh.flush()
                added += len(rows)
                since = rows[-1][0] + span
                if progress:
                    progress(added)
        elif kind == "trades":
            # by time window first; a full page continues by id (fromId) so no print is skipped
            since = max(since_ms, int(last[0])) if last else since_ms
            last_id = int(last[1]) if last else -1
            from_id = last_id + 1 if last else None
            while since <= until_ms:
                if from_id is None:
                    window_end = min(since + HOUR_MS - 1, until_ms)
                    page = await exchange.fetch_trades(symbol, since, limit, {"until": window_end})
                else:
                    page = await exchange.fetch_trades(symbol, None, limit, {"fromId": from_id})
                # ccxt sorts a page by (timestamp, id as text): restore the venue's id order
                page = sorted(page, key=lambda t: int(t["id"]))
                rows = [t for t in page if int(t["id"]) > last_id and since_ms <= t["timestamp"] <= until_ms]
                if rows:
                    fh.write("".join(f"{t['timestamp']},{t['id']},{_fmt(t['price'])},{_fmt(t['amount'])},"
                                     f"{'true' if t['side'] == 'sell' else 'false'}\n" for t in rows))
                    fh.flush()
                    added += len(rows)
                    last_id = int(rows[-1]["id"])
                    if progress:
                        progress(added)
                if page and page[-1]["timestamp"] > until_ms:
                    break
                if len(page) >= limit:
                    from_id = int(page[-1]["id"]) + 1
                    continue
                if from_id is not None:
                    break  # a short page by id: nothing newer exists
                since = window_end + 1
        else:
            raise ValueError(f"unknown kind {kind!r} (trades, klines)")
    return added
