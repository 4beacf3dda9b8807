"""Every wire type round-trips through msgpack and JSON and decodes through its stream union."""
from __future__ import annotations

import dataclasses

import msgspec
import pytest

from tradebus import proto as p
from tradebus.proto import codec

from .samples import SAMPLES, UNIONS, concrete_types, union_of

TYPES = sorted(SAMPLES, key=lambda c: c.__name__)


def test_every_concrete_type_has_a_sample():
    missing = {c.__name__ for c in concrete_types() - SAMPLES.keys()}
    assert not missing, f"add a sample to tests/proto/samples.py for {sorted(missing)}"


def test_every_type_is_in_exactly_one_stream_union():
    for cls in concrete_types():
        holders = [name for name, union in UNIONS.items() if cls in union.__args__]
        assert len(holders) == 1, f"{cls.__name__} is in {holders}"


def test_tags_are_unique_and_namespaced():
    tags = [cls.__struct_config__.tag for cls in concrete_types()]
    assert len(tags) == len(set(tags))
    prefixes = {"MarketDataEvent": "md.", "OrderRequest": "ord.", "OrderEvent": "ord.", "AccountEvent": "acct.",
                "ControlMessage": ("ctl.", "svc."), "BacktestMessage": "bt."}
    for cls in concrete_types():
        assert cls.__struct_config__.tag.startswith(prefixes[union_of(cls)]), cls


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_msgpack_round_trip(cls):
    msg = SAMPLES[cls]
    data = codec.encode(msg)
    assert codec.decode(data, cls) == msg
    assert codec.decoder_for(UNIONS[union_of(cls)]).decode(data) == msg


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_json_round_trip(cls):
    msg = SAMPLES[cls]
    data = codec.encode_json(msg)
    assert msgspec.json.decode(data)["type"] == cls.__struct_config__.tag
    assert codec.decode_json(data, cls) == msg
    assert codec.decode_json(data, UNIONS[union_of(cls)]) == msg


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_events_are_frozen_and_keyword_only(cls):
    msg = SAMPLES[cls]
    field = msgspec.structs.fields(cls)[0].name
    with pytest.raises(AttributeError):
        setattr(msg, field, getattr(msg, field))
    values = [getattr(msg, f.name) for f in msgspec.structs.fields(cls)]
    with pytest.raises(TypeError):
        cls(*values)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_unknown_fields_are_ignored(cls):
    """A newer producer may add fields; an older consumer must still decode the message."""
    extra = {"field_from_the_future": {"nested": [1, 2, 3]}}
    raw = msgspec.json.decode(codec.encode_json(SAMPLES[cls])) | extra
    assert codec.decode_json(msgspec.json.encode(raw), cls) == SAMPLES[cls]
    raw = msgspec.to_builtins(SAMPLES[cls], builtin_types=(bytes,)) | extra
    assert codec.decode(msgspec.msgpack.encode(raw), UNIONS[union_of(cls)]) == SAMPLES[cls]


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
def test_decoding_as_another_stream_union_fails(cls):
    data = codec.encode(SAMPLES[cls])
    for name, union in UNIONS.items():
        if name != union_of(cls):
            with pytest.raises(msgspec.ValidationError, match="type"):
                codec.decoder_for(union).decode(data)


def test_stream_decoders_are_shared():
    assert codec.MARKET_DATA_DECODER is codec.decoder_for(p.MarketDataEvent)
    assert codec.ORDER_REQUEST_DECODER is codec.decoder_for(p.OrderRequest)
    assert codec.ORDER_EVENT_DECODER is codec.decoder_for(p.OrderEvent)
    assert codec.ACCOUNT_DECODER is codec.decoder_for(p.AccountEvent)
    assert codec.CONTROL_DECODER is codec.decoder_for(p.ControlMessage)
    assert codec.BACKTEST_DECODER is codec.decoder_for(p.BacktestMessage)
    assert codec.json_decoder_for(p.Trade) is codec.json_decoder_for(p.Trade)


def test_union_decoding_dispatches_by_tag():
    trade, bbo = SAMPLES[p.Trade], SAMPLES[p.BBO]
    decoded = [codec.MARKET_DATA_DECODER.decode(codec.encode(m)) for m in (trade, bbo)]
    kinds = []
    for msg in decoded:
        match msg:
            case p.Trade(price=price):
                kinds.append(("trade", price))
            case p.BBO(bid_price=bid):
                kinds.append(("bbo", bid))
    assert kinds == [("trade", trade.price), ("bbo", bbo.bid_price)]


def test_wrong_field_type_raises_validation_error():
    raw = msgspec.json.decode(codec.encode_json(SAMPLES[p.Trade]))
    raw["price"] = "sixty thousand"
    with pytest.raises(msgspec.ValidationError, match=r"Expected `float`, got `str` - at `\$.price`"):
        codec.decode(msgspec.msgpack.encode(raw), p.MarketDataEvent)
    raw = msgspec.json.decode(codec.encode_json(SAMPLES[p.Trade]))
    raw["side"] = "sideways"
    with pytest.raises(msgspec.ValidationError, match="side"):
        codec.decode_json(msgspec.json.encode(raw), p.Trade)


def test_missing_required_field_raises_validation_error():
    raw = msgspec.json.decode(codec.encode_json(SAMPLES[p.Fill]))
    del raw["price"]
    with pytest.raises(msgspec.ValidationError, match="missing required field `price`"):
        codec.decode(msgspec.msgpack.encode(raw), p.OrderEvent)


def test_unknown_tag_and_garbage_raise_decode_errors():
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'md.nope'"):
        codec.decode(msgspec.msgpack.encode({"type": "md.nope"}), p.MarketDataEvent)
    with pytest.raises(msgspec.DecodeError):
        codec.decode(b"\xc1 not msgpack", p.MarketDataEvent)
    with pytest.raises(msgspec.DecodeError):
        codec.decode_json(b"{not json", p.OrderRequest)


def test_fields_at_their_default_are_left_off_the_wire():
    ack = p.CancelAck(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="c1", ts_init=1)
    assert msgspec.json.decode(codec.encode_json(ack)) == {
        "type": "ord.cancel_ack", "venue": "binance", "strategy": "sma", "symbol": "BTC/USDT",
        "client_order_id": "c1", "ts_init": 1,
    }
    assert codec.decode(codec.encode(ack), p.OrderEvent) == ack


def test_enums_encode_as_readable_strings():
    data = msgspec.json.decode(codec.encode_json(SAMPLES[p.OrderReject]))
    assert data["reject_code"] == "insufficient_funds"
    assert msgspec.json.decode(codec.encode_json(SAMPLES[p.GatewayStatus]))["state"] == "maintenance"
    assert p.Side.BUY.sign == 1 and p.Side.SELL.sign == -1


def test_level_changes_are_compact_arrays():
    raw = msgspec.json.decode(codec.encode_json(SAMPLES[p.BookDelta]))
    assert raw["changes"][0] == ["bid", 60_000.0, 0.0, "delete"]
    assert codec.decode_json(b'["ask", 1.5, 2.0]', p.LevelChange).action is p.BookAction.MODIFY


def test_fill_exposes_execution_time():
    fill = SAMPLES[p.Fill]
    assert fill.ts_exec == fill.ts_event


def test_backtest_job_defaults():
    job = p.BacktestJob(job_id="j", study_id="s", dataset_id="d", strategy="sma")
    assert job.settings == p.EngineSettings() and job.seed is None and job.params == {}
    assert codec.decode(codec.encode(job), p.BacktestMessage) == job


def test_structs_are_not_dataclasses_and_hold_no_cycles():
    # gc=False on the bases: instances are not tracked by the cyclic garbage collector.
    import gc

    assert not dataclasses.is_dataclass(SAMPLES[p.Trade])
    assert not gc.is_tracked(SAMPLES[p.Trade])
