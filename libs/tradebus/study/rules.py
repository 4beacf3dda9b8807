"""Signal rules for studies: the rule language of :mod:`tradebus.engine.rule_language`, under the
name a study author looks for::

    from tradebus.study.rules import Rule, close, sma, cross_above, cross_below, param

    rule = Rule(entry_long=cross_above(sma(close, param("fast")), sma(close, param("slow"))),
                exit_long=cross_below(sma(close, param("fast")), sma(close, param("slow"))))
    spec = rule.to_spec()                  # JSON-able: the CLI's YAML/JSON, a farm job's field
    Rule.from_spec(spec) == rule           # True

The language lives in the engine package because the engine's permutation_test and sweep
compile it; this module is its study-side name. ``resolve_rule`` finds a built-in strategy's
rule form.
"""
from tradebus.engine.rule_language import (
    Order,
    Param,
    Rule,
    RuleError,
    atr,
    bbands,
    close,
    const,
    cross_above,
    cross_below,
    ema,
    high,
    limit,
    low,
    macd,
    market,
    open_,
    param,
    rolling_std,
    rsi,
    sma,
    stop,
    volume,
    vwap,
)
from tradebus.engine.rule_program import Program

from .strategies import resolve_rule

__all__ = [
    "Order", "Param", "Program", "Rule", "RuleError", "resolve_rule",
    "close", "open_", "high", "low", "volume", "param", "const",
    "sma", "ema", "rsi", "atr", "bbands", "macd", "rolling_std", "vwap",
    "cross_above", "cross_below", "market", "limit", "stop",
]
