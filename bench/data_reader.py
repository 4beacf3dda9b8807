"""Binance CSV reading throughput: the reader itself and its four callers, on 1,000,000 trades.

The 19,904 real spot BTCUSDT trades of ../shared/data are repeated back to back (trade ids and
timestamps shifted) into a 1,000,000-row file, plain and gzipped; klines are the real 130,708-row
1m file. Best of 3 runs each. Run with an older checkout's Python to measure the readers it had
(the reader row is skipped where tradebus.data.binance does not exist).
"""
from __future__ import annotations

import csv
import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _results import record  # noqa: E402
from tradebus.data import data_dir  # noqa: E402

ROWS = 1_000_000
SPOT_TRADES = "binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz"
KLINES = "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz"


def build_trades(folder: Path) -> tuple[Path, Path]:
    with gzip.open(data_dir() / SPOT_TRADES, "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    span_ns = int(rows[-1][0]) - int(rows[0][0]) + 1_000_000
    plain = folder / "BTCUSDT_trades_1m.csv"
    with plain.open("w", newline="") as out:
        out.write(",".join(header) + "\n")
        n, rep = 0, 0
        while n < ROWS:
            shift_ns, shift_ids = rep * span_ns, rep * len(rows)
            chunk = rows[:ROWS - n]
            out.writelines(f"{int(r[0]) + shift_ns},{int(r[1]) + shift_ns // 10**6},{int(r[2]) + shift_ns // 10**6},"
                           f"{int(r[3]) + shift_ids},{r[4]},{r[5]},{r[6]},{r[7]}\n" for r in chunk)
            n += len(chunk)
            rep += 1
    gz = folder / "BTCUSDT_trades_1m.csv.gz"
    with plain.open("rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
        dst.write(src.read())
    return plain, gz


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s ({seconds * 1000:,.0f} ms)"


def main() -> None:
    from collections import Counter

    from tradebus.marketdata.replay import open_sources
    from tradebus.services.sim_exchange import replay as sim_replay
    from tradebus.strategy.data import load_klines, load_trades
    from tradebus.study.datasets import read_bars

    try:
        from tradebus.data.binance import read_binance_csv
    except ImportError:
        read_binance_csv = None
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        plain, gz = build_trades(Path(tmp))
        for path in (plain, gz):
            label = "gzip" if path.suffix == ".gz" else "plain"
            if read_binance_csv is not None:
                rows.append((f"read_binance_csv, trades, {label}", rate(ROWS, best(lambda: read_binance_csv(path)))))
            rows.append((f"strategy.data.load_trades, {label}", rate(ROWS, best(lambda: load_trades(path)))))

        def replay_all():
            for source in open_sources([gz], "binance", "BTC/USDT", counters=Counter()):
                for _ in source:
                    pass
        rows.append(("marketdata.replay trades source -> Trade events, gzip", rate(ROWS, best(replay_all, 1))))

        def sim_trades():
            sim_replay.load_trades.cache_clear()
            sim_replay.load_trades(gz)
        rows.append(("sim_exchange.replay.load_trades (Decimal), gzip", rate(ROWS, best(sim_trades, 1))))
    klines = data_dir() / KLINES
    n_bars = 130_708
    if read_binance_csv is not None:
        rows.append(("read_binance_csv, klines (130,708 rows, gzip)", rate(n_bars, best(lambda: read_binance_csv(klines)))))
    rows.append(("strategy.data.load_klines, gzip", rate(n_bars, best(lambda: load_klines(klines)))))
    rows.append(("study.datasets.read_bars, gzip", rate(n_bars, best(lambda: read_bars(klines)))))
    reader = "tradebus.data.binance (pyarrow)" if read_binance_csv is not None else "the csv-module/pandas readers"
    load = os.getloadavg()[0]
    record(f"data reader ({reader})", rows,
           f"1,000,000 trades: the 19,904 real spot BTCUSDT trades repeated with shifted ids and times; "
           f"best of 3 (replay and sim_exchange rows: 1 run). Load average (1 min) at the end: {load:.2f} "
           f"on {os.cpu_count()} shared cores.")


if __name__ == "__main__":
    main()
