"""Exact decimal values built from strings: the common base of Price and Qty."""
from __future__ import annotations

import decimal
from functools import total_ordering

_CONTEXT = decimal.Context(prec=34)


@total_ordering
class DecimalValue:
    """An exact decimal (``Price("9226.5")``), compared and combined exactly.

    Built from a string, an int, a Decimal or another value; a float is taken by its shortest
    repr (``0.1`` is 0.1, not 0.1000000000000000055...; ``2.0`` is 2). Non-finite or non-numeric input raises
    ValueError naming the value.
    """

    __slots__ = ("_value",)

    def __init__(self, value="0") -> None:
        self._value = _to_decimal(value, type(self).__name__)

    @classmethod
    def _of(cls, value: decimal.Decimal):
        out = cls.__new__(cls)
        out._value = value
        return out

    def to_str(self) -> str:
        """The value in plain notation with no exponent (``"9226.50000000"`` keeps its digits)."""
        return format(self._value, "f")

    def to_float(self) -> float:
        return float(self._value)

    def to_decimal(self) -> decimal.Decimal:
        return self._value

    def is_zero(self) -> bool:
        return self._value == 0

    def __str__(self) -> str:
        return self.to_str()

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.to_str()}')"

    def __float__(self) -> float:
        return float(self._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __eq__(self, other) -> bool:
        value = _other(other)
        return NotImplemented if value is None else self._value == value

    def __lt__(self, other) -> bool:
        value = _other(other)
        if value is None:
            return NotImplemented
        return self._value < value

    def __bool__(self) -> bool:
        return self._value != 0

    def __neg__(self):
        return self._of(-self._value)

    def __abs__(self):
        return self._of(abs(self._value))

    def __add__(self, other):
        value = _other(other)
        return NotImplemented if value is None else self._of(_CONTEXT.add(self._value, value))

    __radd__ = __add__

    def __sub__(self, other):
        value = _other(other)
        return NotImplemented if value is None else self._of(_CONTEXT.subtract(self._value, value))

    def __rsub__(self, other):
        value = _other(other)
        return NotImplemented if value is None else self._of(_CONTEXT.subtract(value, self._value))

    def __mul__(self, other):
        value = _other(other)
        return NotImplemented if value is None else self._of(_CONTEXT.multiply(self._value, value))

    __rmul__ = __mul__

    def __truediv__(self, other):
        value = _other(other)
        if value is None:
            return NotImplemented
        if value == 0:
            raise ZeroDivisionError(f"{self!r} / 0")
        return self._of(_CONTEXT.divide(self._value, value))


def _to_decimal(value, what: str) -> decimal.Decimal:
    if isinstance(value, DecimalValue):
        return value._value
    if isinstance(value, bool):
        raise ValueError(f"{what} needs a number, got {value!r}")
    try:
        if isinstance(value, float):
            out = _from_float(value)
        elif isinstance(value, (int, decimal.Decimal)):
            out = decimal.Decimal(value)
        elif isinstance(value, str):
            out = decimal.Decimal(value.strip())
        else:
            raise TypeError
    except (decimal.InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{what} needs a decimal number, got {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"{what} needs a finite number, got {value!r}")
    return out


def _from_float(value: float) -> decimal.Decimal:
    """A float by its shortest repr, whole numbers without a trailing ".0" (61834.0 -> 61834)."""
    out = decimal.Decimal(repr(value))
    return out.quantize(decimal.Decimal(1)) if out.is_finite() and out == out.to_integral_value() else out


def _other(value):
    if isinstance(value, DecimalValue):
        return value._value
    if isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
        return decimal.Decimal(value)
    if isinstance(value, float):
        return _from_float(value)
    return None
