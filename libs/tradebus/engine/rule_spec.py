"""The JSON form of signal rules (see :mod:`tradebus.engine.rule_language`): writing a Rule as
plain data and reading it back, with ``define``/``ref`` names (cycles refused)."""
from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

from tradebus.engine.rule_language import (
    INDICATORS,
    PRICES,
    SIDES,
    Arith,
    Binary,
    Compare,
    Const,
    Expr,
    Indicator,
    Logic,
    Not,
    Order,
    Param,
    Price,
    Rule,
    RuleError,
    _operand,
    atr,
    bbands,
    const,
    cross_above,
    cross_below,
    ema,
    limit,
    macd,
    market,
    rolling_std,
    rsi,
    sma,
    stop,
    vwap,
)

__all__ = ["rule_to_spec", "rule_from_spec"]


def rule_to_spec(rule: Rule) -> dict:
    """The JSON-able form of ``rule``."""
    spec: dict[str, Any] = {side: _expr_spec(getattr(rule, side)) for side in SIDES
                            if getattr(rule, side) is not None}
    spec["order"] = {rule.order.type: [] if rule.order.type == "market" else [_arg_spec(rule.order.offset_bps)]}
    spec["quantity"] = _arg_spec(rule.quantity)
    return spec


def rule_from_spec(cls: type[Rule], spec: Mapping) -> Rule:
    """A ``cls`` rule from its JSON form; RuleError naming the bad part."""
    if not isinstance(spec, Mapping):
        raise RuleError(f"a rule spec must be a mapping, got {type(spec).__name__}")
    known = {*SIDES, "order", "quantity", "define"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise RuleError(f"unknown rule field(s) {unknown}; known: {sorted(known)}")
    defines = spec.get("define") or {}
    if not isinstance(defines, Mapping):
        raise RuleError("define must map names to expressions")
    reader = _SpecReader(defines)
    sides = {side: reader.expr(spec[side], side) for side in SIDES if spec.get(side) is not None}
    order = _order_from_spec(spec.get("order", {"market": []}))
    quantity = reader.arg(spec.get("quantity", 1.0), "quantity")
    return cls(**sides, order=order, quantity=quantity)


_SPEC_BINARY: dict[str, Callable[[Any, Any], Expr]] = {
    "lt": lambda a, b: Compare("lt", a, b), "le": lambda a, b: Compare("le", a, b),
    "gt": lambda a, b: Compare("gt", a, b), "ge": lambda a, b: Compare("ge", a, b),
    "add": lambda a, b: Arith("add", a, b), "sub": lambda a, b: Arith("sub", a, b),
    "mul": lambda a, b: Arith("mul", a, b), "div": lambda a, b: Arith("div", a, b),
    "and": lambda a, b: Logic("and", a, b), "or": lambda a, b: Logic("or", a, b),
    "cross_above": cross_above, "cross_below": cross_below,
}


def _arg_spec(value: Any) -> Any:
    if isinstance(value, Param):
        return {"param": value.name} if value.default is None else {"param": value.name, "default": value.default}
    return value


def _param_from_spec(value: Mapping) -> Param:
    if set(value) - {"param", "default"}:
        raise RuleError(f"a param is {{param: name}} or {{param: name, default: number}}, got {dict(value)!r}")
    return Param(value["param"], value.get("default"))


def _expr_spec(e: Expr) -> Any:
    if isinstance(e, Price):
        return e.field
    if isinstance(e, Const):
        return _arg_spec(e.value)
    if isinstance(e, Indicator):
        series = [_expr_spec(x) for x in e.inputs]
        if e.name == "atr":
            series = []
        elif e.name == "vwap":
            series = series[:1]
        return {e.spec_name: series + [_arg_spec(a) for a in e.args]}
    if isinstance(e, Not):
        return {"not": [_expr_spec(e.a)]}
    if isinstance(e, Binary):
        return {e.op: [_expr_spec(e.a), _expr_spec(e.b)]}
    raise RuleError(f"cannot write {e!r} as a spec")


def _order_from_spec(spec: Any) -> Order:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise RuleError(f"order must be one of {{market: []}}, {{limit: [bps]}}, {{stop: [bps]}}, got {spec!r}")
    (name, args), = spec.items()
    args = list(args) if isinstance(args, (list, tuple)) else [args]
    if name == "market" and not args:
        return market()
    if name in ("limit", "stop") and len(args) == 1:
        value = _param_from_spec(args[0]) if isinstance(args[0], Mapping) and "param" in args[0] else args[0]
        return limit(value) if name == "limit" else stop(value)
    raise RuleError(f"order {name!r} with arguments {args!r}: use market: [], limit: [bps] or stop: [bps]")


class _SpecReader:
    """Turns spec values into expressions, following ``ref`` names (cycles refused)."""

    def __init__(self, defines: Mapping) -> None:
        self.defines = defines
        self.done: dict[str, Any] = {}
        self.active: list[str] = []

    def arg(self, value: Any, where: str) -> Any:
        if isinstance(value, Mapping) and "param" in value:
            return _param_from_spec(value)
        if isinstance(value, Mapping) and set(value) == {"ref"}:
            return self.expr(value, where)
        return value

    def expr(self, value: Any, where: str) -> Any:
        if isinstance(value, str):
            if value in PRICES:
                return PRICES[value]
            raise RuleError(f"{where}: unknown series {value!r}; prices are {sorted(PRICES)}")
        if isinstance(value, bool) or value is None:
            raise RuleError(f"{where}: a series, number or expression is needed, got {value!r}")
        if isinstance(value, numbers.Real):
            return value
        if isinstance(value, Mapping) and "param" in value:
            return _param_from_spec(value)
        if not isinstance(value, Mapping) or len(value) != 1:
            raise RuleError(f"{where}: an expression is a one-key mapping {{function: [args]}}, got {value!r}")
        (name, args), = value.items()
        if name == "ref":
            return self.ref(args, where)
        args = list(args) if isinstance(args, (list, tuple)) else [args]
        inner = f"{where} > {name}"
        if name in _SPEC_BINARY:
            if len(args) != 2:
                raise RuleError(f"{inner}: takes 2 arguments, got {len(args)}")
            operands = [self.expr(a, inner) for a in args]
            if name not in ("and", "or"):
                operands = [_operand(x, inner) for x in operands]
            return _SPEC_BINARY[name](*operands)
        if name == "not":
            if len(args) != 1:
                raise RuleError(f"{inner}: takes 1 argument, got {len(args)}")
            return Not(self.expr(args[0], inner))
        if name == "const":
            return const(self.arg(args[0], inner))
        base, _, output = name.partition(".")
        d = INDICATORS.get(base)
        if d is None:
            known = sorted([*INDICATORS, *_SPEC_BINARY, "not", "param", "ref", "const"])
            raise RuleError(f"{where}: unknown function {name!r}; known: {known}")
        if (len(d.outputs) > 1) != bool(output) or (output and output not in d.outputs):
            choices = [f"{base}.{o}" for o in d.outputs] if len(d.outputs) > 1 else [base]
            raise RuleError(f"{where}: {name!r} is not an indicator output; use {choices}")
        fn = _FUNCTIONS[base]
        n_series = {"atr": 0, "vwap": 1}.get(base, 1)
        series = [self.expr(a, inner) for a in args[:n_series]]
        numbers_ = [self.arg(a, inner) for a in args[n_series:]]
        try:
            out = fn(*series, *numbers_)
        except TypeError as exc:
            raise RuleError(f"{inner}: {exc}") from None
        if output:
            out = getattr(out, output)
        return out

    def ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str) or name not in self.defines:
            raise RuleError(f"{where}: ref {name!r} is not in define ({sorted(self.defines)})")
        if name in self.done:
            return self.done[name]
        if name in self.active:
            cycle = " -> ".join([*self.active[self.active.index(name):], name])
            raise RuleError(f"define: cycle of references {cycle}")
        self.active.append(name)
        out = self.expr(self.defines[name], f"define {name}")
        self.active.pop()
        self.done[name] = out
        return out


_FUNCTIONS: dict[str, Callable[..., Any]] = {"sma": sma, "ema": ema, "rsi": rsi, "atr": atr, "rolling_std": rolling_std,
              "bbands": bbands, "macd": macd, "vwap": vwap}
