"""Audit of the order flow: a ledger that must balance after any fault (issue 17).

- ``ledger``: the reconciliation itself, over plain records (``balance``, ``Tally``,
  ``assert_balanced``).
- ``journal``: a strategy's own record of the fills it saw (``FillJournal``, ``read_journal``).
- ``collect``: the inputs from a running stack (ORDERS, sim_exchange's records, journals,
  BT_RESULTS) over one scenario's window (``Audit``).
"""
from .journal import FillJournal, journal_size, read_journal
from .ledger import (
    BusOrders,
    LedgerError,
    StrategyFills,
    Tally,
    VenueFill,
    VenueOrder,
    assert_balanced,
    balance,
)

__all__ = [
    "Audit",
    "BusOrders",
    "FillJournal",
    "LedgerError",
    "StrategyFills",
    "Tally",
    "VenueFill",
    "VenueOrder",
    "assert_balanced",
    "balance",
    "journal_size",
    "read_journal",
]


def __getattr__(name: str):
    # the collectors pull in NATS and aiohttp; a strategy that only writes its journal need not
    if name == "Audit":
        from .collect import Audit
        return Audit
    raise AttributeError(name)
