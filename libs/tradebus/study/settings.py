"""The engine settings a study runs with, and the lines that tell the user which were used.

A study that is not told its costs must not be optimistic: it charges the taker fee of the
dataset's venue (``fees`` of ``exchanges/venues/<venue>.yaml``; Binance spot's 10 bps when the
data names no known venue) and fills market orders at the next bar's open (``DEFAULT_FILL``).
The venue is ``--venue``, else read from the data file name (``binance_spot_BTCUSDT_1m_...``,
the layout of Binance's archives and of ../shared/data), else ``DEFAULT_VENUE``.

:func:`settings_rows` is the one description of a study's settings: the CLI prints it before
the results and the HTML report opens with it.
"""
from __future__ import annotations

import re

from tradebus.exchanges.venue_config import canonical_key, load_config
from tradebus.proto import EngineSettings
from tradebus.proto.backtest import DEFAULT_FILL, EngineMode

__all__ = ["DEFAULT_VENUE", "venue_of", "venue_fees", "study_settings", "settings_rows"]

DEFAULT_VENUE = "binance:spot"
_NAME_TOKENS = re.compile(r"[A-Za-z0-9]+")


def venue_of(dataset_name: str = "", venue: str | None = None) -> str:
    """The canonical venue key of a study: ``venue`` when given (ValueError if unknown), else the
    first two words of the data file name when they name a venue (``binance_spot_...`` ->
    ``binance:spot``), else DEFAULT_VENUE."""
    if venue:
        return canonical_key(venue)
    words = _NAME_TOKENS.findall(dataset_name.rsplit("/", 1)[-1])
    if len(words) >= 2:
        try:
            return canonical_key(f"{words[0]}:{words[1]}")
        except ValueError:
            pass
    return DEFAULT_VENUE


def venue_fees(venue: str) -> tuple[float, float]:
    """(maker, taker) fee of ``venue`` in basis points of notional."""
    fees = load_config(venue).fees
    return fees.maker_bps, fees.taker_bps


def study_settings(venue: str = DEFAULT_VENUE, *, mode: EngineMode | str = EngineMode.BATCH,
                   taker_fee_bps: float | None = None, maker_fee_bps: float | None = None,
                   fill: str | None = None, **others) -> EngineSettings:
    """EngineSettings with the venue's fees and DEFAULT_FILL where the caller left them out (None).

    The batch engine has one fee rate, so in batch mode the maker fee follows the taker fee; in
    event mode an unset maker fee is the venue's maker fee, or the taker fee when that was given.
    ``others`` are the remaining EngineSettings fields (initial_cash, slippage_bps, start, ...).
    """
    mode = EngineMode(mode)
    venue_maker, venue_taker = venue_fees(venue)
    taker = venue_taker if taker_fee_bps is None else taker_fee_bps
    if maker_fee_bps is None:
        maker_fee_bps = venue_maker if mode == EngineMode.EVENT and taker_fee_bps is None else taker
    return EngineSettings(mode=mode, taker_fee_bps=taker, maker_fee_bps=maker_fee_bps,
                          fill=fill or DEFAULT_FILL, **others)


def _bps(value: float) -> str:
    return f"{value:g} bps"


def settings_rows(spec) -> list[tuple[str, str]]:
    """(name, value) of every setting that shapes a study's numbers: fee, fill, slippage, capital,
    data, bars, seed, n (and the mode, window and latency when they are not the defaults)."""
    s: EngineSettings = spec.settings
    venue = f" ({spec.venue} taker)" if spec.venue and s.taker_fee_bps == venue_fees(spec.venue)[1] else ""
    fee = _bps(s.taker_fee_bps) + venue
    if s.maker_fee_bps != s.taker_fee_bps:
        fee += f", maker {_bps(s.maker_fee_bps)}"
    data = spec.dataset_name or spec.dataset_id
    if spec.dataset_name:
        data += f" ({spec.dataset_id})"
    rows = [
        ("fee", fee),
        ("fill", s.fill),
        ("slippage", _bps(s.slippage_bps)),
        ("capital", f"{s.initial_cash:,.2f}"),
        ("data", data),
        ("bars", f"{spec.bars:,}" if spec.bars else "-"),
        ("seed", "-" if spec.seed is None else str(spec.seed)),
        ("n", str(spec.n) if spec.kind == "permutation" else f"{spec.total_jobs} jobs"),
    ]
    if s.mode != EngineMode.BATCH:
        rows.append(("mode", str(s.mode)))
    if s.start or s.end:
        rows.append(("window", f"[{s.start or 'start'}, {s.end or 'end'}) ns"))
    if s.latency_ns or s.response_latency_ns:
        rows.append(("latency", f"{s.latency_ns} ns entry, {s.response_latency_ns} ns response"))
    return rows
