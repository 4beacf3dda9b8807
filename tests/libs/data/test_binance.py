"""The Binance CSV reader against every file of ../shared/data (checked with Python's csv module as
an independent reference), Binance's headerless archive layouts, and malformed rows."""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.data import data_dir
from tradebus.data.binance import CsvRowError, detect_kind, read_binance_csv

D = data_dir()
SPOT = "binance_spot_BTCUSDT_20240808T2354Z_"
USDM = "binance_usdm_BTCUSDT_20240808T2354Z_"


def reference(path: Path) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def as_ns(text: str, name: str) -> int:
    value = int(text)
    return value * 1_000_000 if name.endswith("_ms") or name in ("open_time", "timestamp") else value


# file, kind, rows (the data README's counts), canonical column -> file column
FILES = [
    ("binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz", "klines", 130_708,
     {"ts_ns": "open_time", "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}),
    ("binance_spot_ETHUSDT_1m_20250520_20250818.csv.gz", "klines", 130_708,
     {"ts_ns": "open_time", "close": "close", "volume": "volume"}),
    (SPOT + "depth_snapshot.csv", "depth_snapshot", 2_000,
     {"recv_ts_ns": "local_ts_ns", "last_update_id": "last_update_id", "is_bid": "side", "level": "level",
      "price": "price", "qty": "qty"}),
    (SPOT + "depth_updates.csv.gz", "depth_updates", 298_111,
     {"recv_ts_ns": "local_ts_ns", "event_ts_ns": "event_time_ms", "first_update_id": "first_update_id",
      "last_update_id": "last_update_id", "is_bid": "side", "price": "price", "qty": "qty"}),
    (SPOT + "trades.csv.gz", "trades", 19_904,
     {"recv_ts_ns": "local_ts_ns", "event_ts_ns": "event_time_ms", "ts_ns": "trade_time_ms",
      "trade_id": "trade_id", "price": "price", "qty": "qty", "is_buyer_maker": "is_buyer_maker"}),
    (SPOT + "bookticker.csv.gz", "bookticker", 73_174,
     {"recv_ts_ns": "local_ts_ns", "update_id": "update_id", "bid_price": "bid_price", "bid_qty": "bid_qty",
      "ask_price": "ask_price", "ask_qty": "ask_qty"}),
    (USDM + "depth_snapshot.csv", "depth_snapshot", 2_000,
     {"event_ts_ns": "event_time_ms", "is_bid": "side", "price": "price", "qty": "qty"}),
    (USDM + "depth_updates_first45s.csv.gz", "depth_updates", 54_599,
     {"prev_last_update_id": "prev_last_update_id", "first_update_id": "first_update_id", "is_bid": "side",
      "price": "price", "qty": "qty"}),
    (USDM + "bookticker_first45s.csv.gz", "bookticker", 8_403,
     {"event_ts_ns": "event_time_ms", "update_id": "update_id", "bid_price": "bid_price", "ask_qty": "ask_qty"}),
    (USDM + "trades.csv.gz", "trades", 21_313,
     {"ts_ns": "trade_time_ms", "trade_id": "trade_id", "price": "price", "qty": "qty",
      "is_buyer_maker": "is_buyer_maker"}),
    ("binance_usdm_BTCUSDT_T_DEPTH_20221101_snap_sample.csv", "t_depth", 100,
     {"ts_ns": "timestamp", "first_update_id": "first_update_id", "prev_last_update_id": "pu", "is_bid": "side",
      "is_snapshot": "update_type", "price": "price", "qty": "qty"}),
    ("binance_usdm_BTCUSDT_T_DEPTH_20221101_update_sample.csv", "t_depth", 100,
     {"last_update_id": "last_update_id", "is_bid": "side", "is_snapshot": "update_type", "price": "price"}),
]


def convert(name: str, file_column: str, text: str):
    if name == "is_bid":
        return text in ("bid", "b")
    if name == "is_snapshot":
        return text == "snap"
    if name == "is_buyer_maker":
        return text == "true"
    if name.endswith("_ns"):
        return as_ns(text, file_column)
    if name.endswith("_id") or name == "level":
        return int(text)
    return float(text)


@pytest.mark.parametrize("name,kind,count,mapping", FILES, ids=[f[0] for f in FILES])
def test_every_shared_file_matches_the_csv_module(name, kind, count, mapping):
    path = D / name
    header, rows = reference(path)
    frame = read_binance_csv(path)
    assert frame.kind == detect_kind(path) == kind
    assert len(frame) == len(rows) == count
    assert frame.lines[0] == 2 and frame.lines[-1] == count + 1
    for canonical, column in mapping.items():
        i = header.index(column)
        values = frame[canonical]
        # first, last and a row in the middle, then the whole column for the numeric ones
        for row in (0, count // 2, count - 1):
            assert values[row] == convert(canonical, column, rows[row][i]), (canonical, row)
        expected = np.array([convert(canonical, column, r[i]) for r in rows])
        assert np.array_equal(values, expected), canonical


def test_types_are_fixed():
    frame = read_binance_csv(D / (SPOT + "trades.csv.gz"))
    assert {k: v.dtype.str for k, v in frame.columns.items()} == {
        "ts_ns": "<i8", "price": "<f8", "qty": "<f8", "is_buyer_maker": "|b1", "trade_id": "<i8",
        "recv_ts_ns": "<i8", "event_ts_ns": "<i8"}
    assert all(v.flags.c_contiguous for v in frame.columns.values())


def test_exact_keeps_the_decimal_text():
    frame = read_binance_csv(D / (SPOT + "depth_snapshot.csv"), exact=True)
    assert frame["price"][0] == "61837.63000000" and frame["qty"][0] == "3.78826000"
    assert frame["last_update_id"].dtype == np.int64


def write(path: Path, text: str) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as fh:
        fh.write(text)
    return path


@pytest.fixture(scope="module")
def spot_trades():
    return reference(D / (SPOT + "trades.csv.gz"))[1]


def test_headerless_archive_layouts_read_like_the_headered_file(tmp_path, spot_trades):
    """Binance's public archives have no header: trades have 7 columns, aggTrades 8, klines 12."""
    # local_ts_ns, event_time_ms, trade_time_ms, trade_id, price, qty, is_buyer_maker, is_best_match
    trades = write(tmp_path / "BTCUSDT-trades-2024-08-08.csv.gz", "".join(
        f"{r[3]},{r[4]},{r[5]},0,{r[2]},{r[6]},{r[7]}\n" for r in spot_trades))
    agg = write(tmp_path / "BTCUSDT-aggTrades-2024-08-08.csv", "".join(
        f"{r[3]},{r[4]},{r[5]},{r[3]},{r[3]},{r[2]}000,{r[6]},{r[7]}\n" for r in spot_trades))  # microseconds
    headered = read_binance_csv(D / (SPOT + "trades.csv.gz"))
    for path, kind in ((trades, "trades"), (agg, "aggtrades")):
        frame = read_binance_csv(path)
        assert frame.kind == kind and frame.header is None and frame.lines[0] == 1
        for name in ("ts_ns", "price", "qty", "is_buyer_maker", "trade_id"):
            assert np.array_equal(frame[name], headered[name]), (kind, name)
    klines = write(tmp_path / "BTCUSDT-1m-2024-08-08.csv",
                   "1723161240000,1,2,0.5,1.5,10,1723161299999,15,3,5,7,0\n"
                   "1723161300000,1.5,2.5,1,2,11,1723161359999,16,4,6,8,0\n")
    k = read_binance_csv(klines)
    assert k.kind == "klines" and k["close"].tolist() == [1.5, 2.0] and k["ts_ns"][0] == 1723161240000 * 10**6


def test_timestamp_units_ms_us_and_ns_in_one_file(tmp_path):
    path = write(tmp_path / "BTCUSDT-trades.csv",
                 "1,61000.1,0.5,30500.05,1723161254000,true,true\n"
                 "2,61000.2,0.1,6100.02,1723161254001000,false,true\n"
                 "3,61000.2,0.1,6100.02,1723161254002000000,false,true\n")
    assert read_binance_csv(path)["ts_ns"].tolist() == [1723161254000 * 10**6, 1723161254001 * 10**6,
                                                          1723161254002 * 10**6]


def test_blank_lines_are_skipped_and_lines_still_count(tmp_path, spot_trades):
    text = "local_ts_ns,event_time_ms,trade_time_ms,trade_id,price,qty,is_buyer_maker,is_best_match\n"
    rows = [",".join(r) + "\n" for r in spot_trades[:5]]
    path = write(tmp_path / "t.csv", text + rows[0] + "\n" + "".join(rows[1:3]) + "\n\n" + "".join(rows[3:]))
    frame = read_binance_csv(path)
    assert frame["trade_id"].tolist() == [int(r[3]) for r in spot_trades[:5]]
    assert frame.lines.tolist() == [2, 4, 5, 8, 9]


HEADER = "local_ts_ns,event_time_ms,trade_time_ms,trade_id,price,qty,is_buyer_maker,is_best_match\n"
GOOD = "1723161254087896568,1723161255343,1723161255342,{id},61837.63,0.02,true,true\n"


@pytest.mark.parametrize("bad, reason", [
    ("1723161254087896568,1723161255343,1723161255342,7,61837.63,0.02,true\n", "expected 8 columns, found 7"),
    ("1723161254087896568,1723161255343,1723161255342,7,abc,0.02,true,true\n", "column 'price': 'abc' is not a number"),
    ("1723161254087896568,1723161255343,1723161255342,7,61837.63,,true,true\n", "column 'qty': empty"),
    ("1723161254087896568,1723161255343,1723161255342,7,61837.63,0.02,maybe,true\n",
     "column 'is_buyer_maker': 'maybe' is not true/false"),
    ("1723161254087896568,1723161255343,17231612553.5,7,61837.63,0.02,true,true\n",
     "column 'trade_time_ms': '17231612553.5' is not an integer"),
    ("garbage\n", "expected 8 columns, found 1"),
])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_malformed_row_names_the_file_and_line(tmp_path, bad, reason, suffix):
    rows = [GOOD.format(id=i) for i in range(1, 40)]
    path = write(tmp_path / f"trades{suffix}", HEADER + "".join(rows[:30]) + bad + "".join(rows[30:]))
    with pytest.raises(CsvRowError) as info:
        read_binance_csv(path)
    assert (info.value.path, info.value.line) == (path, 32)
    assert str(info.value).startswith(f"{path}: line 32: ") and reason in str(info.value)
    # or every bad row reported, the others kept
    seen = []
    frame = read_binance_csv(path, on_bad_row=lambda p, line, why: seen.append((p, line, why)))
    assert [(p, line) for p, line, _ in seen] == [(path, 32)] and reason in seen[0][2]
    assert frame["trade_id"].tolist() == list(range(1, 40)) and frame.lines[30] == 33


def test_bad_sides_are_rows_errors_too(tmp_path):
    path = write(tmp_path / "u.csv", "local_ts_ns,event_time_ms,first_update_id,last_update_id,side,price,qty\n"
                                     "1,1,1,2,bid,10.0,1\n1,1,1,2,middle,11.0,1\n1,1,1,2,ask,11.0,1\n")
    with pytest.raises(CsvRowError, match=r"line 3: side must be bid/ask, found 'middle'"):
        read_binance_csv(path)
    seen = []
    frame = read_binance_csv(path, on_bad_row=lambda p, line, why: seen.append(line))
    assert seen == [3] and frame["is_bid"].tolist() == [True, False] and frame.lines.tolist() == [2, 4]


def test_several_bad_rows_are_all_reported_in_line_order(tmp_path):
    rows = [GOOD.format(id=i) for i in range(10)]
    rows[2] = rows[2].replace("61837.63", "x")
    rows[5] = "1,2,3\n"
    rows[7] = rows[7].replace("true,true", "no,true")
    path = write(tmp_path / "t.csv.gz", HEADER + "".join(rows))
    seen = []
    frame = read_binance_csv(path, on_bad_row=lambda p, line, why: seen.append(line))
    assert seen == [4, 7, 9] and frame["trade_id"].tolist() == [0, 1, 3, 4, 6, 8, 9]


@pytest.mark.parametrize("text, message", [
    ("1,2,3\n", r"7 \(trades\) or 8 \(aggTrades\)"),
    ("foo,bar\n1,2\n", "not a trade or kline"),
    ("ts_ns,price,qty\n1,1.0,1.0\n", "needs is_buyer_maker or side"),
    ("", "empty file"),
])
def test_files_of_no_known_kind_are_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_binance_csv(write(tmp_path / "x.csv", text), kinds=("trades", "aggtrades", "klines"))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_binance_csv(tmp_path / "nope.csv")


def test_streaming_gives_the_rows_and_lines_of_the_whole_read(tmp_path, spot_trades):
    from tradebus.data.binance import iter_binance_csv

    path = D / (SPOT + "trades.csv.gz")
    whole = read_binance_csv(path)
    frames = list(iter_binance_csv(path, block_size=64 << 10))
    assert len(frames) > 5
    for name in whole.columns:
        assert np.array_equal(np.concatenate([f[name] for f in frames]), whole[name]), name
    assert np.array_equal(np.concatenate([f.lines for f in frames]), whole.lines)
    # a bad row late in the file: the frames before it come out, then the error names its line
    rows = [",".join(r) + "\n" for r in spot_trades]
    fields = rows[15_000].split(",")
    rows[15_000] = ",".join(fields[:6] + ["perhaps"] + fields[7:])
    bad = write(tmp_path / "late.csv", HEADER + "".join(rows))
    seen = []
    with pytest.raises(CsvRowError, match="line 15002: column 'is_buyer_maker': 'perhaps'"):
        for frame in iter_binance_csv(bad, block_size=64 << 10):
            seen.append(frame)
    assert seen and seen[-1].lines[-1] < 15002
    skipped = []
    kept = list(iter_binance_csv(bad, block_size=64 << 10, on_bad_row=lambda p, line, why: skipped.append(line)))
    assert skipped == [15002]
    ids = np.concatenate([f["trade_id"] for f in kept])
    assert np.array_equal(ids, np.delete(whole["trade_id"], 15_000))



@given(st.lists(st.one_of(st.integers(0, 10**13 - 1), st.integers(10**13, 10**16 - 1),
                          st.integers(10**16, 4 * 10**18), st.integers(-10**12, -1)), max_size=30))
def test_timestamp_scale_matches_a_value_by_value_reference(values):
    from tradebus.data.binance import timestamps_ns

    def ref(v):
        m = abs(v)
        return v * 1_000_000 if m < 10**13 else v * 1_000 if m < 10**16 else v
    from tradebus.data.binance import out_of_range

    arr = np.array(values, dtype=np.int64)
    late = out_of_range(arr)
    assert late.tolist() == [abs(ref(v)) > 2**63 - 1 for v in values]
    assert timestamps_ns(arr[~late]).tolist() == [ref(v) for v in values if abs(ref(v)) <= 2**63 - 1]


def test_a_time_past_2262_is_a_row_error(tmp_path):
    path = write(tmp_path / "t.csv", HEADER + GOOD.format(id=1)
                 + GOOD.format(id=2).replace("1723161255342", "9999999999999") + GOOD.format(id=3))
    with pytest.raises(CsvRowError, match="line 3: column 'trade_time_ms': time 9999999999999 is out of range"):
        read_binance_csv(path)
    assert read_binance_csv(path, on_bad_row=lambda *a: None)["trade_id"].tolist() == [1, 3]
