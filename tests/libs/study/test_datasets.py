"""Datasets: read from real files, named by content, stored once in the object store, cached by workers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradebus.bus.jetstream import declare_all
from tradebus.study.datasets import (
    DEFAULT_BARS_FILE,
    DatasetCache,
    DatasetError,
    data_dir,
    dataset_id,
    decode_bars,
    encode_bars,
    fetch_dataset,
    publish_dataset,
    read_bars,
)


@pytest.fixture(scope="module")
def btc():
    return read_bars(data_dir() / DEFAULT_BARS_FILE)


def test_the_real_klines_load_with_ns_timestamps(btc):
    assert len(btc) == 130_708
    assert btc["timestamp_ns"][0] == 1_747_699_200_000 * 1_000_000  # 2025-05-20 00:00 UTC, ms -> ns
    assert (np.diff(btc["timestamp_ns"]) == 60_000_000_000).all()
    assert btc["high"].max() == 124_474.0


def test_other_formats_give_the_same_bars_and_id(btc, tmp_path):
    part = btc[:3_000]
    frame = pd.DataFrame({"open_time": part["timestamp_ns"] // 1_000_000, **{c: part[c] for c in
                                                                             ("open", "high", "low", "close", "volume")}})
    frame.to_parquet(tmp_path / "bars.parquet")
    frame.to_csv(tmp_path / "bars.csv", index=False)
    np.save(tmp_path / "bars.npy", part)
    for name in ("bars.parquet", "bars.csv", "bars.npy"):
        assert dataset_id(read_bars(tmp_path / name)) == dataset_id(part), name
    with pytest.raises(DatasetError, match="unknown data format"):
        (tmp_path / "bars.txt").write_text("x")
        read_bars(tmp_path / "bars.txt")
    with pytest.raises(DatasetError, match="no such data file"):
        read_bars(tmp_path / "absent.csv")
    frame.iloc[[1, 0]].to_csv(tmp_path / "unsorted.csv", index=False)
    with pytest.raises(DatasetError, match="row 1"):
        read_bars(tmp_path / "unsorted.csv")


def test_the_id_is_the_content(btc):
    a, b = btc[:1000], btc[:1000].copy()
    assert dataset_id(a) == dataset_id(b) and dataset_id(a).startswith("bars-") and len(dataset_id(a)) == 37
    b["close"][500] += 0.01
    assert dataset_id(a) != dataset_id(b)
    assert np.array_equal(decode_bars(encode_bars(a), dataset_id(a)), a)
    with pytest.raises(DatasetError, match="hash to"):
        decode_bars(encode_bars(b), dataset_id(a))


async def test_published_once_fetched_by_id_and_cached_on_disk(btc, bus, tmp_path):
    await declare_all(bus.js)
    bars = btc[:40_000]  # 1.9 MB: several object-store chunks
    ident = await publish_dataset(bus, bars)
    assert ident == dataset_id(bars)
    store = await bus.js.object_store("bt_datasets")
    first = await store.get_info(ident)
    assert await publish_dataset(bus, bars) == ident
    assert (await store.get_info(ident)).nuid == first.nuid  # not uploaded again
    assert decode_bars(await fetch_dataset(bus, ident), ident).tobytes() == bars.tobytes()

    cache = DatasetCache(tmp_path / "cache")
    got = await cache.get(bus, ident)
    assert np.array_equal(got, bars) and cache.fetched == 1
    assert await cache.get(bus, ident) is got and cache.fetched == 1  # memory
    fresh = DatasetCache(tmp_path / "cache")
    assert np.array_equal(await fresh.get(bus, ident), bars) and fresh.fetched == 0  # disk
    (tmp_path / "cache" / f"{ident}.npy").write_bytes(b"garbage")
    again = DatasetCache(tmp_path / "cache")
    assert np.array_equal(await again.get(bus, ident), bars) and again.fetched == 1  # corrupt file refetched

    with pytest.raises(DatasetError, match="not in the bt_datasets object store"):
        await cache.get(bus, "bars-" + "0" * 32)
    with pytest.raises(DatasetError, match="not a dataset id"):
        await fetch_dataset(bus, "../etc/passwd")
