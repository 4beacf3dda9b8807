"""The execution layer shared by order_router, strategy_runner and the in-process CcxtBroker.

- ``orders``: strategy Signal -> NewOrder / CancelOrder / ModifyOrder / CancelAll.
- ``fills``: venue reports (cumulative order state, per-trade executions) -> exactly-once Fills,
  fees valued in the quote currency, positions net of base-asset fees (``FillLedger``), and
  Fill -> strategy Runner (``runner_fill``, ``runner_external_fill``).
- ``risk``: pre-trade limits and the kill switch (``RiskEngine.pre_trade``).

They differ only in how requests travel (bus or direct call); what an order, a fill, a fee and a
position mean is decided here once.
"""
from __future__ import annotations

from . import orders
from .fills import (
    CUMULATIVE,
    EPS,
    FillLedger,
    base_fee,
    by_trades,
    fill_position_change,
    fill_quote_fee,
    market_currencies,
    new_status,
    position_change,
    quote_fee,
    runner_external_fill,
    runner_fill,
    stored_position_change,
)
from .risk import Refusal, RiskEngine, RiskLimits

__all__ = [
    "CUMULATIVE",
    "EPS",
    "FillLedger",
    "Refusal",
    "RiskEngine",
    "RiskLimits",
    "base_fee",
    "by_trades",
    "fill_position_change",
    "fill_quote_fee",
    "market_currencies",
    "new_status",
    "orders",
    "position_change",
    "quote_fee",
    "runner_external_fill",
    "runner_fill",
    "stored_position_change",
]
