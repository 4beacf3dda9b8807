"""TradeBatch: packed columns, conversions to and from Trade, validation."""
from __future__ import annotations

from array import array

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.proto import Side, Trade, TradeBatch, codec

TS = 1_723_161_240_000_000_000


def _trades(n: int, ids: bool = True) -> list[Trade]:
    return [
        Trade(venue="binance", symbol="BTC/USDT", price=60_000 + i * 0.1, qty=0.001 * (i + 1),
              side=Side.BUY if i % 3 else Side.SELL, trade_id=str(1000 + i) if ids else "",
              ts_event=TS + i, ts_recv=TS + i + 7)
        for i in range(n)
    ]


def test_from_trades_and_back():
    trades = _trades(5)
    batch = TradeBatch.from_trades(trades)
    assert len(batch) == 5
    assert list(batch.trades()) == trades
    assert codec.decode(codec.encode(batch), TradeBatch) == batch


def test_trade_ids_are_optional():
    batch = TradeBatch.from_trades(_trades(3, ids=False))
    assert batch.trade_ids == []
    assert "trade_ids" not in msgspec.json.decode(codec.encode_json(batch))
    assert [t.trade_id for t in batch.trades()] == ["", "", ""]


def test_columns_are_typed_views():
    batch = TradeBatch.from_trades(_trades(4))
    cols = batch.columns()
    assert cols.prices.format == "d" and cols.ts_event.format == "q" and cols.sides.format == "B"
    assert cols.prices.tolist() == [60_000 + i * 0.1 for i in range(4)]
    assert cols.sides.tolist() == [1, 0, 0, 1]
    assert cols.ts_recv.tolist() == [TS + i + 7 for i in range(4)]
    assert np.frombuffer(batch.prices, dtype="<f8").tolist() == cols.prices.tolist()


def test_from_columns_accepts_numpy_arrays_and_sequences():
    prices = np.array([1.5, 2.5, 3.5])
    ts = np.arange(3, dtype=np.int64) + TS
    from_np = TradeBatch.from_columns(venue="sim", symbol="BTC/USDT", prices=prices, qtys=np.ones(3, dtype=np.float32),
                                      sides=np.array([0, 1, 0], dtype=np.uint8).tobytes(), ts_event=ts, ts_recv=ts)
    from_lists = TradeBatch.from_columns(venue="sim", symbol="BTC/USDT", prices=[1.5, 2.5, 3.5], qtys=[1, 1, 1],
                                         sides=[Side.BUY, Side.SELL, Side.BUY], ts_event=ts.tolist(),
                                         ts_recv=array("q", ts.tolist()))
    assert from_np == from_lists
    assert [t.side for t in from_np.trades()] == [Side.BUY, Side.SELL, Side.BUY]


def test_empty_batch():
    batch = TradeBatch.from_trades([], venue="sim", symbol="BTC/USDT")
    assert len(batch) == 0 and list(batch.trades()) == []
    assert codec.decode(codec.encode(batch), TradeBatch) == batch
    with pytest.raises(ValueError, match="needs venue and symbol"):
        TradeBatch.from_trades([])


def test_one_venue_and_symbol_per_batch():
    trades = _trades(2)
    other = msgspec.structs.replace(trades[1], symbol="ETH/USDT")
    with pytest.raises(ValueError, match="one venue and symbol"):
        TradeBatch.from_trades([trades[0], other])


def test_column_lengths_must_agree():
    with pytest.raises(ValueError, match="column 'qtys' holds 8 bytes, expected 16"):
        TradeBatch(venue="sim", symbol="X/Y", prices=bytes(16), qtys=bytes(8), sides=b"\x00\x01",
                   ts_event=bytes(16), ts_recv=bytes(16))
    good = TradeBatch.from_trades(_trades(2))
    raw = msgspec.to_builtins(good, builtin_types=(bytes,))
    raw["ts_recv"] = raw["ts_recv"][:8]
    with pytest.raises(msgspec.ValidationError, match="ts_recv"):
        codec.decode(msgspec.msgpack.encode(raw), TradeBatch)
    raw = msgspec.to_builtins(good, builtin_types=(bytes,))
    raw["trade_ids"] = ["only-one"]
    with pytest.raises(msgspec.ValidationError, match="1 trade_ids for 2 trades"):
        codec.decode(msgspec.msgpack.encode(raw), TradeBatch)


def test_side_codes_are_checked():
    with pytest.raises(ValueError, match="0 \\(buy\\) or 1 \\(sell\\)"):
        TradeBatch(venue="sim", symbol="X/Y", prices=bytes(8), qtys=bytes(8), sides=b"\x02",
                   ts_event=bytes(8), ts_recv=bytes(8))


def test_batch_is_much_smaller_than_single_trades():
    trades = _trades(1000, ids=False)
    batch_size = len(codec.encode(TradeBatch.from_trades(trades)))
    singles_size = sum(len(codec.encode(t)) for t in trades)
    assert batch_size * 3 < singles_size


finite = st.floats(allow_nan=False, allow_infinity=False)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(st.tuples(finite, finite, st.sampled_from(Side), int64, int64, st.text(max_size=5)), max_size=50))
def test_round_trip_property(rows):
    trades = [Trade(venue="v", symbol="A/B", price=p, qty=q, side=s, trade_id=i, ts_event=te, ts_recv=tr)
              for p, q, s, te, tr, i in rows]
    batch = TradeBatch.from_trades(trades, venue="v", symbol="A/B")
    decoded = codec.decode(codec.encode(batch), TradeBatch)
    assert list(decoded.trades()) == trades
    assert codec.decode_json(codec.encode_json(batch), TradeBatch) == batch


def test_plain_string_sides_are_accepted():
    trades = [Trade(venue="sim", symbol="A/B", price=1.0, qty=1.0, side=side, ts_event=1, ts_recv=2)
              for side in ("buy", "sell")]
    assert [t.side for t in TradeBatch.from_trades(trades).trades()] == [Side.BUY, Side.SELL]
    with pytest.raises(ValueError, match="not a side: 'hold'"):
        TradeBatch.from_columns(venue="sim", symbol="A/B", prices=[1.0], qtys=[1.0], sides=["hold"],
                                ts_event=[1], ts_recv=[1])
