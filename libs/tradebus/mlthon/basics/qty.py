"""Qty: an exact decimal quantity (``Qty("0.001")``)."""
from .decimal_value import DecimalValue


class Qty(DecimalValue):
    """An exact decimal quantity."""

    __slots__ = ()
