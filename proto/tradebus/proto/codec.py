"""Reusable encoders and decoders: msgpack on the bus, JSON for people and other languages.

Build codecs once and reuse them (msgspec's performance advice): ``decoder_for`` caches one
Decoder per type or union, and each stream union has its module-level decoder.
"""
from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import msgspec

from .account import AccountEvent
from .backtest import BacktestMessage
from .control import ControlMessage
from .market import MarketDataEvent
from .order_events import OrderEvent
from .orders import OrderRequest

__all__ = [
    "ENCODER",
    "JSON_ENCODER",
    "encode",
    "encode_json",
    "decode",
    "decode_json",
    "decoder_for",
    "json_decoder_for",
    "MARKET_DATA_DECODER",
    "ORDER_REQUEST_DECODER",
    "ORDER_EVENT_DECODER",
    "ACCOUNT_DECODER",
    "CONTROL_DECODER",
    "BACKTEST_DECODER",
]

T = TypeVar("T")

ENCODER = msgspec.msgpack.Encoder()
JSON_ENCODER = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    """msgpack bytes of a message (hot paths may call ``ENCODER.encode`` directly)."""
    return ENCODER.encode(obj)


def encode_json(obj: Any) -> bytes:
    """JSON bytes of a message."""
    return JSON_ENCODER.encode(obj)


@cache
def decoder_for(type_: Any) -> msgspec.msgpack.Decoder:
    """The shared msgpack Decoder for a Struct type or a union of them."""
    return msgspec.msgpack.Decoder(type_)


@cache
def json_decoder_for(type_: Any) -> msgspec.json.Decoder:
    """The shared JSON Decoder for a Struct type or a union of them."""
    return msgspec.json.Decoder(type_)


def decode(data: bytes | bytearray | memoryview, type_: type[T] | Any) -> T:
    """Decode msgpack as ``type_``; raises msgspec.ValidationError or msgspec.DecodeError."""
    return decoder_for(type_).decode(data)  # type: ignore[arg-type]  # typeshed: type[T] is not Hashable


def decode_json(data: bytes | bytearray | memoryview | str, type_: type[T] | Any) -> T:
    """Decode JSON as ``type_``; raises msgspec.ValidationError or msgspec.DecodeError."""
    return json_decoder_for(type_).decode(data)  # type: ignore[arg-type]  # as in decode()


MARKET_DATA_DECODER = decoder_for(MarketDataEvent)
ORDER_REQUEST_DECODER = decoder_for(OrderRequest)
ORDER_EVENT_DECODER = decoder_for(OrderEvent)
ACCOUNT_DECODER = decoder_for(AccountEvent)
CONTROL_DECODER = decoder_for(ControlMessage)
BACKTEST_DECODER = decoder_for(BacktestMessage)
