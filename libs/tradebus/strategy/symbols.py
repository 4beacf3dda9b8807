"""Symbols and the registry that numbers them (FLOX's ``SymbolRegistry``).

    registry = SymbolRegistry()
    btc = registry.add_symbol("binance", "BTCUSDT", tick_size=0.01, lot_size=0.00001)
    btc.id, btc.name, btc.exchange, btc.tick_size, int(btc)   # 1, 'BTCUSDT', 'binance', 0.01, 1

A Symbol is an ``int`` (its id), so it works anywhere an int does; ids count from 1 within
their registry, so two registries may both have a symbol 1: a strategy refuses a Symbol from a
registry other than the one its runner was built with.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterator

__all__ = ["Symbol", "SymbolRegistry", "unified_symbol", "symbol_key"]

# Quote currencies tried, longest first, to split "BTCUSDT" into BTC/USDT.
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDE", "USD", "DAI", "EUR", "GBP", "TRY",
           "BRL", "JPY", "BTC", "ETH", "BNB")


def unified_symbol(name: str) -> str:
    """ccxt unified form of a symbol name: ``BTCUSDT``, ``btc-usdt``, ``BTC_USDT`` -> ``BTC/USDT``.

    Names that already contain ``/`` are returned unchanged; a name whose quote currency is not
    recognised is returned upper-cased.
    """
    if "/" in name:
        return name
    parts = re.split(r"[-_]", name.upper())
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/{parts[1]}"
    upper = name.upper()
    for quote in _QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[:-len(quote)]}/{quote}"
    return upper


def symbol_key(name: str) -> str:
    """Comparable form of a symbol name: letters and digits only, upper case (BTC/USDT -> BTCUSDT)."""
    return re.sub(r"[^A-Za-z0-9]", "", name.split(":")[0]).upper()


def _step(value: float, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number >= 0, got {value!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{what} must be a finite number >= 0 (0: no constraint), got {value!r}")
    return x


class Symbol(int):
    """A tradable symbol: ``id`` (also its int value), ``name``, ``exchange``, ``tick_size``,
    ``lot_size`` (0: no constraint) and ``unified`` (the ccxt form used on the bus)."""

    def __new__(cls, id: int, name: str, exchange: str, tick_size: float = 0.0, lot_size: float = 0.0,
                registry: SymbolRegistry | None = None) -> Symbol:
        self = super().__new__(cls, id)
        self.name = name
        self.exchange = exchange
        self.tick_size = tick_size
        self.lot_size = lot_size
        self.registry = registry
        self.unified = unified_symbol(name)
        return self

    @property
    def id(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return (f"Symbol({int(self)}, {self.exchange}:{self.name}, tick_size={self.tick_size}, "
                f"lot_size={self.lot_size})")

    def __str__(self) -> str:
        return self.name

    def __reduce__(self):
        return (Symbol, (int(self), self.name, self.exchange, self.tick_size, self.lot_size))


class SymbolRegistry:
    """Numbers the symbols a runner knows (1, 2, ...) and finds them by id or name."""

    def __init__(self) -> None:
        self._symbols: list[Symbol] = []
        self._by_key: dict[tuple[str, str], Symbol] = {}

    def add_symbol(self, exchange: str, name: str, tick_size: float = 0.0, lot_size: float = 0.0) -> Symbol:
        """Register ``name`` on ``exchange`` and return its Symbol. Adding the same symbol
        again with the same sizes returns the existing one; different sizes are an error."""
        if not isinstance(exchange, str) or not exchange.strip():
            raise ValueError(f"exchange must be a non-empty str, got {exchange!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"symbol name must be a non-empty str, got {name!r}")
        tick = _step(tick_size, "tick_size")
        lot = _step(lot_size, "lot_size")
        key = (exchange, name)
        existing = self._by_key.get(key)
        if existing is not None:
            if (existing.tick_size, existing.lot_size) != (tick, lot):
                raise ValueError(
                    f"{exchange}:{name} is already registered with tick_size={existing.tick_size}, "
                    f"lot_size={existing.lot_size}"
                )
            return existing
        symbol = Symbol(len(self._symbols) + 1, name, exchange, tick, lot, self)
        self._symbols.append(symbol)
        self._by_key[key] = symbol
        return symbol

    def get(self, key, exchange: str | None = None) -> Symbol:
        """The Symbol for an id, a Symbol of this registry or a name (any of BTCUSDT, BTC/USDT,
        btc-usdt); ``exchange`` narrows a name lookup. KeyError when there is none."""
        if isinstance(key, Symbol):
            if key.registry is self or (0 < int(key) <= len(self._symbols) and self._symbols[int(key) - 1] is key):
                return key
            raise KeyError(f"{key!r} belongs to another SymbolRegistry")
        if isinstance(key, int) and not isinstance(key, bool):
            if 0 < key <= len(self._symbols):
                return self._symbols[key - 1]
            raise KeyError(f"no symbol with id {key} (ids 1..{len(self._symbols)})")
        if isinstance(key, str):
            found = self.find(key, exchange)
            if len(found) == 1:
                return found[0]
            if not found:
                raise KeyError(f"no symbol named {key!r}; registered: {self.names()}")
            raise KeyError(f"{key!r} matches several symbols {found}; pass exchange=")
        raise KeyError(f"not a symbol: {key!r}")

    def find(self, name: str, exchange: str | None = None) -> list[Symbol]:
        """Symbols whose name matches ``name`` ignoring case and separators."""
        want = symbol_key(name)
        return [s for s in self._symbols
                if symbol_key(s.name) == want and (exchange is None or s.exchange == exchange)]

    def names(self) -> list[str]:
        return [f"{s.exchange}:{s.name}" for s in self._symbols]

    def __contains__(self, key) -> bool:
        try:
            self.get(key)
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self._symbols)

    def __len__(self) -> int:
        return len(self._symbols)

    def __repr__(self) -> str:
        return f"SymbolRegistry({self.names()})"
