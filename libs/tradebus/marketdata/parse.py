"""The edge: ccxt / ccxt.pro dicts become tradebus.proto events here and nowhere else.

Every function raises ``ValueError`` (or ``KeyError``/``TypeError``) on a dict it cannot read;
callers count that as bad input and skip the message.
"""
from __future__ import annotations

import math
from typing import Any

from tradebus.proto import BBO, Bar, BookSnapshot, FundingRate, Instrument, Trade
from tradebus.proto.base import MarketType, Side

__all__ = [
    "ms_to_ns",
    "trade",
    "book_snapshot",
    "bbo_from_ticker",
    "bars",
    "funding",
    "instrument",
    "timeframe_ms",
]

_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


def ms_to_ns(ms: Any) -> int:
    """ccxt millisecond timestamp (or None) -> int nanoseconds (0 when unknown)."""
    return int(ms) * 1_000_000 if ms is not None else 0


def _num(value: Any, what: str) -> float:
    if value is None:
        raise ValueError(f"{what} missing")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{what} not finite: {value!r}")
    return x


def trade(venue: str, t: dict, ts_recv: int) -> Trade:
    """A ccxt unified trade -> Trade (side is the taker side)."""
    side = _SIDES.get(t.get("side"))
    if side is None:
        raise ValueError(f"trade side {t.get('side')!r}")
    price, qty = _num(t.get("price"), "price"), _num(t.get("amount"), "amount")
    if price <= 0 or qty < 0:
        raise ValueError(f"trade price/amount out of range: {price} {qty}")
    tid = t.get("id")
    return Trade(venue=venue, symbol=t["symbol"], price=price, qty=qty, side=side,
                 trade_id="" if tid is None else str(tid), ts_event=ms_to_ns(t.get("timestamp")),
                 ts_recv=ts_recv)


def _levels(side: Any, depth: int, what: str) -> list[tuple[float, float]]:
    out = []
    for level in side[:depth] if depth else side:
        out.append((_num(level[0], what + " price"), _num(level[1], what + " qty")))
    return out


def book_snapshot(venue: str, symbol: str, book: dict, depth: int, ts_recv: int) -> BookSnapshot:
    """A ccxt order book -> BookSnapshot of its top ``depth`` levels (0: all)."""
    bids = _levels(book["bids"], depth, "bid")
    asks = _levels(book["asks"], depth, "ask")
    nonce = book.get("nonce")
    return BookSnapshot(venue=venue, symbol=symbol, bids=bids, asks=asks, depth=depth,
                        sequence=int(nonce) if nonce is not None else 0,
                        ts_event=ms_to_ns(book.get("timestamp")), ts_recv=ts_recv)


def bbo_from_ticker(venue: str, t: dict, ts_recv: int) -> BBO:
    """A ccxt ticker or bids/asks entry -> BBO."""
    return BBO(venue=venue, symbol=t["symbol"], bid_price=_num(t.get("bid"), "bid"),
               bid_qty=_num(t.get("bidVolume") or 0.0, "bidVolume"), ask_price=_num(t.get("ask"), "ask"),
               ask_qty=_num(t.get("askVolume") or 0.0, "askVolume"), ts_event=ms_to_ns(t.get("timestamp")),
               ts_recv=ts_recv)


_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "M": 2_592_000_000}


def timeframe_ms(timeframe: str) -> int:
    """ccxt timeframe ("1m", "4h") -> milliseconds."""
    try:
        return int(timeframe[:-1]) * _UNIT_MS[timeframe[-1]]
    except (KeyError, ValueError, IndexError):
        raise ValueError(f"bad timeframe {timeframe!r}") from None


def bar(venue: str, symbol: str, interval: str, row: Any, closed: bool, ts_recv: int,
        ts_event: int = 0) -> Bar:
    """One ccxt OHLCV row ``[t, o, h, l, c, v]`` -> Bar."""
    t, o, h, low, c, v = row[:6]
    o, h, low, c = (_num(x, "ohlc") for x in (o, h, low, c))
    if not (low <= min(o, c) and h >= max(o, c)):
        raise ValueError(f"inconsistent OHLC {row!r}")
    return Bar(venue=venue, symbol=symbol, interval=interval, ts_open=ms_to_ns(t), open=o, high=h, low=low,
               close=c, volume=_num(v if v is not None else 0.0, "volume"), closed=closed,
               ts_event=ts_event or ms_to_ns(t), ts_recv=ts_recv)


def bars(venue: str, symbol: str, interval: str, rows: list, closed_before: int, ts_recv: int) -> list[Bar]:
    """OHLCV rows -> Bars; a row opening before ``closed_before`` (ms) is closed."""
    return [bar(venue, symbol, interval, r, r[0] < closed_before, ts_recv) for r in rows]


def funding(venue: str, f: dict, ts_recv: int) -> FundingRate:
    """A ccxt funding-rate dict -> FundingRate."""
    mark, index = f.get("markPrice"), f.get("indexPrice")
    return FundingRate(venue=venue, symbol=f["symbol"], rate=_num(f.get("fundingRate"), "fundingRate"),
                       ts_next_funding=ms_to_ns(f.get("fundingTimestamp") or f.get("nextFundingTimestamp")),
                       mark_price=None if mark is None else float(mark),
                       index_price=None if index is None else float(index),
                       ts_event=ms_to_ns(f.get("timestamp")), ts_recv=ts_recv)


def _decimals(step: float) -> int:
    if step <= 0:
        return 0
    return max(0, round(-math.log10(step))) if step < 1 else 0


def instrument(venue: str, m: dict, ts_init: int) -> Instrument:
    """A ccxt market -> Instrument (ccxt precision mode TICK_SIZE, as for Binance)."""
    precision, limits = m.get("precision") or {}, m.get("limits") or {}
    tick, lot = float(precision.get("price") or 0.0), float(precision.get("amount") or 0.0)
    mtype = MarketType(m.get("type") or "spot")
    expiry = m.get("expiry")
    return Instrument(
        venue=venue, symbol=m["symbol"], venue_symbol=str(m.get("id")), base=m["base"], quote=m["quote"],
        settle=m.get("settle"), market_type=mtype, tick_size=tick, lot_size=lot,
        min_qty=float((limits.get("amount") or {}).get("min") or 0.0),
        min_notional=float((limits.get("cost") or {}).get("min") or 0.0),
        price_precision=_decimals(tick), qty_precision=_decimals(lot),
        contract_size=float(m.get("contractSize") or 1.0), expiry=ms_to_ns(expiry),
        active=bool(m.get("active", True)), ts_init=ts_init)
