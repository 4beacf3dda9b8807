"""Signal functions a backtest job can name: registered short names, or a module path.

A signal function takes the bars (a BAR_DTYPE array) and the job's parameters as keywords and
returns signals (a SIGNAL_DTYPE array from ``tradebus.engine.make_signals``)::

    sma_cross(bars, fast=10, slow=30)

A job's ``strategy`` is a registered name (``sma_cross``) or ``package.module:function``.
Built-in functions also have a signal-rule form (:mod:`tradebus.study.rules`), found by
:func:`resolve_rule`, which studies run through the engine's fused pipeline.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from tradebus.engine.examples import RULE_FORMS
from tradebus.engine.rule_language import Rule

__all__ = ["STRATEGIES", "SignalFunction", "StrategyError", "register_strategy", "resolve_rule", "resolve_strategy"]

SignalFunction = Callable[..., np.ndarray]

STRATEGIES: dict[str, str] = {
    "sma_cross": "tradebus.engine.examples:sma_cross",
}
"""Registered names and the ``module:function`` each stands for."""


class StrategyError(ValueError):
    """A strategy name that is neither registered nor an importable ``module:function``."""


def register_strategy(name: str, target: str) -> None:
    """Register ``name`` for the signal function at ``target`` (``module:function``)."""
    if ":" not in target:
        raise StrategyError(f"target must look like package.module:function, got {target!r}")
    STRATEGIES[name] = target
    resolve_strategy.cache_clear()


@lru_cache(maxsize=256)
def resolve_strategy(strategy: str) -> SignalFunction:
    """The signal function for a registered name or a ``module:function`` path."""
    target = STRATEGIES.get(strategy, strategy)
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        known = ", ".join(sorted(STRATEGIES))
        raise StrategyError(f"unknown strategy {strategy!r}: not registered ({known}) and not a module:function path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"strategy {strategy!r}: cannot import {module_name}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise StrategyError(f"strategy {strategy!r}: {module_name} has no function {attr!r}")
    return fn


def resolve_rule(strategy: str) -> Rule | None:
    """The signal-rule form of a strategy name or ``module:function`` (built-ins have one), or
    None when it exists only as a Python function; StrategyError when it cannot be resolved."""
    return RULE_FORMS.get(resolve_strategy(strategy))
