"""strategy_runner settings: ``services.strategy_runner.settings`` of the deployment file.

    strategy_runner:
      module: tradebus.services.strategy_runner
      settings:
        status_interval: 5.0
        strategies:
          - name: sma_cross                     # orders come back on ord.evt.<venue>.sma_cross
            class: tradebus.strategy.examples:SmaCross    # or path/to/file.py:SmaCross
            venue: sim
            symbols: [{symbol: BTC/USDT, tick_size: 0.01, lot_size: 0.00001}]   # or ["BTC/USDT"]
            params: {fast: 10, slow: 30, qty: 0.001}      # keyword arguments after symbols
          - name: demo                          # an MLThon IStrategy (see docs/mlthon.md)
            kind: mlthon
            class: tradebus.mlthon.demo:DemoStrategy
            cfg: {product: BTC-USDT}            # the strategy's constructor argument
            params: {qty: "0.001"}              # on_strat_params_update
            venue: sim
            symbols: ["BTC/USDT"]
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Literal

import msgspec

from tradebus.config import Settings
from tradebus.proto.subjects import name_token, symbol_token, venue_token

__all__ = ["SymbolSpec", "StrategySpec", "StrategyRunnerSettings", "load_class"]


class SymbolSpec(Settings):
    """A symbol in ccxt unified form (BTC/USDT) with its price and quantity steps (0: none)."""

    symbol: str
    tick_size: float = 0.0
    lot_size: float = 0.0


class StrategySpec(Settings):
    """One hosted strategy: ``class`` is ``package.module:Class`` or ``path/file.py:Class``.

    ``kind``: ``flox`` (a tradebus Strategy, built as ``Class(symbols, **params)``) or ``mlthon``
    (an MLThon IStrategy, built as ``Class(cfg)``, with ``params`` its strat params);
    ``callback_log``: for mlthon, a file that gets each callback delivered as a JSON line.
    """

    name: str
    cls: str = msgspec.field(name="class")
    venue: str = "sim"
    symbols: list[str | SymbolSpec]
    params: dict[str, Any] = {}
    enabled: bool = True
    kind: Literal["flox", "mlthon"] = "flox"
    cfg: dict[str, Any] = {}
    callback_log: str = ""

    def __post_init__(self) -> None:
        name_token(self.name, "strategy name")
        venue_token(self.venue)
        if ":" not in self.cls:
            raise ValueError(f"strategy {self.name}: class must be 'module:Class' or 'file.py:Class', got {self.cls!r}")
        if not self.symbols:
            raise ValueError(f"strategy {self.name}: needs at least one symbol")
        if self.kind != "mlthon" and (self.cfg or self.callback_log):
            raise ValueError(f"strategy {self.name}: cfg and callback_log are for kind: mlthon")
        for spec in self.symbol_specs():
            symbol_token(spec.symbol)
            if "/" not in spec.symbol:
                raise ValueError(f"strategy {self.name}: symbol {spec.symbol!r} must be in ccxt unified "
                                 "form (BTC/USDT), the form market data is published under")

    def symbol_specs(self) -> list[SymbolSpec]:
        return [SymbolSpec(symbol=s) if isinstance(s, str) else s for s in self.symbols]


class StrategyRunnerSettings(Settings):
    """strategies: what to host; status_interval: seconds between status lines;
    python_path: folders added to sys.path before loading strategy classes; query_timeout:
    seconds an MLThon fetch_* waits for the order router."""

    strategies: list[StrategySpec] = []
    status_interval: float = 5.0
    python_path: list[str] = []
    query_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.status_interval > 0:
            raise ValueError(f"status_interval must be > 0, got {self.status_interval!r}")
        names = [s.name for s in self.strategies if s.enabled]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"strategy names must be unique, repeated: {dupes}")


def load_class(target: str, base: Path | None = None) -> type:
    """The class named by ``module:Class`` or ``path/to/file.py:Class`` (relative paths are
    taken from ``base``, then the working directory)."""
    where, _, name = target.rpartition(":")
    if not where or not name:
        raise ValueError(f"expected 'module:Class' or 'file.py:Class', got {target!r}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_absolute() and base is not None and (base / path).exists():
            path = base / path
        if not path.exists():
            raise ValueError(f"strategy file {where!r} not found")
        mod_name = f"_tradebus_strategy_{path.stem}_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        cls = getattr(module, name)
    except AttributeError:
        raise ValueError(f"{where} has no {name!r}") from None
    if not isinstance(cls, type):
        raise ValueError(f"{target} is not a class")
    return cls
