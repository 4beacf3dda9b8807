"""The enum base of MLThon's definitions."""
from __future__ import annotations

import enum


class MltEnum(enum.Enum):
    """An Enum whose members also look up by name, case-insensitively (``Side.parse("buy")``)."""

    @classmethod
    def parse(cls, value):
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            for member in cls:
                if member.name.lower() == value.strip().lower():
                    return member
        else:
            try:
                return cls(value)
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a {cls.__name__} (one of {', '.join(m.name for m in cls)})")

    def __str__(self) -> str:
        return self.name
