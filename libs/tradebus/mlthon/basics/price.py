"""Price: an exact decimal price (``Price("9226.5")``)."""
from .decimal_value import DecimalValue


class Price(DecimalValue):
    """An exact decimal price."""

    __slots__ = ()
