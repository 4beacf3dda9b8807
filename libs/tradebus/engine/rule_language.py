"""Signal rules: a strategy's entries and exits stated as expressions over bars, compiled to a
flat program that ``tradebus.engine.rules`` evaluates in a nogil loop.

The vocabulary is vectorbt's and FLOX's: price series, the compiled indicators of
:mod:`tradebus.engine.indicators` (same numbers, NaN while warming up), crosses, comparisons
written with operators, ``&`` / ``|`` / ``~``::

    from tradebus.engine.rule_language import Rule, close, sma, rsi, cross_above, cross_below, param

    fast, slow = sma(close, param("fast")), sma(close, param("slow"))
    rule = Rule(entry_long=cross_above(fast, slow) & (rsi(close, 14) < 70),
                exit_long=cross_below(fast, slow))
    signals = rule.signals(bars, fast=10, slow=30)      # what make_signals would build

Semantics, per bar t (decided at its close, stamped at its timestamp, as the Python signal
functions do):

* A comparison or cross involving a value that is still warming up (NaN) is false.
  ``cross_above(a, b)`` is true at t when a > b at t and a <= b at t - 1 (both warm);
  ``cross_below(a, b)`` when a < b at t and a >= b at t - 1.
* The rule keeps an intended position (flat, long or short) from the signals it emitted: flat
  with ``entry_long`` true buys ``quantity`` (else with ``entry_short`` sells it); long with
  ``exit_long`` or ``entry_short`` true sells ``quantity``, then with ``entry_short`` sells it
  again (a flip is two orders); short likewise with ``exit_short`` / ``entry_long``.
* ``order``: ``market()`` (the engine's fill rule applies), ``limit(offset_bps)`` at the close
  moved ``offset_bps`` in the trader's favour (buy below, sell above), ``stop(offset_bps)`` at
  the close moved against (buy above, sell below). Limit and stop orders may not fill; the
  intended position does not wait for them.

A rule's JSON form (``to_spec`` / ``Rule.from_spec``; the CLI reads it from YAML or JSON, farm
jobs carry it) writes each expression as a price name, a number, or a one-key mapping from a
function name to its argument list::

    {"entry_long": {"cross_above": [{"sma": ["close", {"param": "fast"}]},
                                    {"sma": ["close", {"param": "slow"}]}]},
     "exit_long": {"cross_below": [...]}, "order": {"market": []}, "quantity": 1.0}

``{"ref": "name"}`` refers to an expression of the spec's ``define`` mapping. Comparisons are
``lt le gt ge``, arithmetic ``add sub mul div``, logic ``and or not``; multi-output indicators
are ``bbands.upper``, ``macd.signal`` and so on. Anything wrong (unknown name, wrong type, a
window longer than the data, a cycle of references, an unbound parameter) raises
:class:`RuleError` naming the part.

The JSON form is read and written by :mod:`tradebus.engine.rule_spec`, the flat program built by
:mod:`tradebus.engine.rule_program`.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradebus.engine.rule_program import Program

__all__ = [
    "RuleError", "Expr", "Param", "Rule", "Order",
    "close", "open_", "high", "low", "volume", "param", "const",
    "sma", "ema", "rsi", "atr", "bbands", "macd", "rolling_std", "vwap",
    "cross_above", "cross_below", "market", "limit", "stop",
]


class RuleError(ValueError):
    """A rule that cannot be built or compiled; the message names the part."""


# ---------------------------------------------------------------------------------------------
# Expressions.

Number = float | int


@dataclass(frozen=True)
class Param:
    """A number left open until a sweep point (or ``bind``) gives it."""

    name: str
    default: Number | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise RuleError(f"param name must be an identifier, got {self.name!r}")
        if self.default is not None and (isinstance(self.default, bool) or not isinstance(self.default, numbers.Real)):
            raise RuleError(f"param {self.name!r}: default must be a number, got {self.default!r}")

    def __repr__(self) -> str:
        return f"param({self.name!r})" if self.default is None else f"param({self.name!r}, {self.default!r})"


Arg = Any  # a number, a Param (until bound), or None (vwap's cumulative period)


def param(name: str, default: Number | None = None) -> Param:
    """A symbolic parameter, bound per sweep point: ``sma(close, param("fast", 10))``; the
    default (if any) is used when a point does not give it."""
    return Param(name, default)


class Expr:
    """A series (kind "number") or a condition (kind "bool"); built by the functions below."""

    kind = "number"
    __slots__ = ()

    def children(self) -> tuple[Expr, ...]:
        return ()

    # comparisons give conditions
    def __lt__(self, other: Any) -> Expr:
        return Compare("lt", self, _operand(other, "<"))

    def __le__(self, other: Any) -> Expr:
        return Compare("le", self, _operand(other, "<="))

    def __gt__(self, other: Any) -> Expr:
        return Compare("gt", self, _operand(other, ">"))

    def __ge__(self, other: Any) -> Expr:
        return Compare("ge", self, _operand(other, ">="))

    # arithmetic on series
    def __add__(self, other: Any) -> Expr:
        return Arith("add", self, _operand(other, "+"))

    def __radd__(self, other: Any) -> Expr:
        return Arith("add", _operand(other, "+"), self)

    def __sub__(self, other: Any) -> Expr:
        return Arith("sub", self, _operand(other, "-"))

    def __rsub__(self, other: Any) -> Expr:
        return Arith("sub", _operand(other, "-"), self)

    def __mul__(self, other: Any) -> Expr:
        return Arith("mul", self, _operand(other, "*"))

    def __rmul__(self, other: Any) -> Expr:
        return Arith("mul", _operand(other, "*"), self)

    def __truediv__(self, other: Any) -> Expr:
        return Arith("div", self, _operand(other, "/"))

    def __rtruediv__(self, other: Any) -> Expr:
        return Arith("div", _operand(other, "/"), self)

    # logic on conditions
    def __and__(self, other: Any) -> Expr:
        return Logic("and", self, _operand(other, "&"))

    def __rand__(self, other: Any) -> Expr:
        return Logic("and", _operand(other, "&"), self)

    def __or__(self, other: Any) -> Expr:
        return Logic("or", self, _operand(other, "|"))

    def __ror__(self, other: Any) -> Expr:
        return Logic("or", _operand(other, "|"), self)

    def __invert__(self) -> Expr:
        return Not(self)

    def __bool__(self) -> bool:
        raise RuleError(f"{self!r} has no truth value: combine conditions with & | ~, "
                        "not and/or/not, and compare one pair at a time (no a < b < c)")


def _operand(value: Any, where: str) -> Expr:
    """An expression, or a number/param made a constant; RuleError for anything else."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool) or value is None:
        raise RuleError(f"{where}: a series or a number is needed, got {value!r}")
    if isinstance(value, (numbers.Real, Param)):
        return Const(value)
    raise RuleError(f"{where}: a series or a number is needed, got {type(value).__name__} {value!r}")


def _need(expr: Any, kind: str, where: str) -> Expr:
    """``expr`` as an expression of ``kind`` ("number" or "bool"), or RuleError naming ``where``."""
    if kind == "number" and not isinstance(expr, Expr):
        expr = _operand(expr, where)
    if not isinstance(expr, Expr):
        raise RuleError(f"{where}: a condition is needed, got {type(expr).__name__} {expr!r}")
    if expr.kind != kind:
        want = "a number series" if kind == "number" else "a condition (true/false per bar)"
        got = "a condition" if expr.kind == "bool" else "a number series"
        raise RuleError(f"{where}: {want} is needed, got {got}: {expr!r}")
    return expr


def _number(value: Any, where: str, *, integer: bool = False, low: float = -math.inf,
            allow_none: bool = False) -> Arg:
    """A checked number argument (or a Param, checked when bound)."""
    if value is None and allow_none:
        return None
    if isinstance(value, Param):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise RuleError(f"{where}: a finite number is needed, got {value!r}")
    if integer and int(value) != value:  # type: ignore[call-overload]
        raise RuleError(f"{where}: an integer is needed, got {value!r}")
    if value < low:
        raise RuleError(f"{where}: must be >= {low:g}, got {value!r}")
    return int(value) if integer else float(value)  # type: ignore[call-overload]


@dataclass(frozen=True, eq=True, repr=False)
class Price(Expr):
    field: str

    def __repr__(self) -> str:
        return "open_" if self.field == "open" else self.field


@dataclass(frozen=True, eq=True, repr=False)
class Const(Expr):
    value: Arg

    def __repr__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, eq=True, repr=False)
class Binary(Expr):
    """Two operands of kind ``operands`` combined by ``op`` (written infix)."""

    op: str
    a: Expr
    b: Expr
    operands = "number"

    def __post_init__(self) -> None:
        _need(self.a, self.operands, f"{_SYMBOL.get(self.op, self.op)} {self._sides[0]}")
        _need(self.b, self.operands, f"{_SYMBOL.get(self.op, self.op)} {self._sides[1]}")

    _sides = ("left side", "right side")

    def children(self) -> tuple[Expr, ...]:
        return (self.a, self.b)

    def __repr__(self) -> str:
        return f"({self.a!r} {_SYMBOL[self.op]} {self.b!r})"


class Arith(Binary):
    """add, sub, mul, div of number series."""


class Compare(Binary):
    """lt, le, gt, ge of number series: a condition."""

    kind = "bool"


class Cross(Binary):
    """cross_above, cross_below of number series: a condition."""

    kind = "bool"
    _sides = ("first argument", "second argument")

    def __repr__(self) -> str:
        return f"{self.op}({self.a!r}, {self.b!r})"


class Logic(Binary):
    """and, or of conditions."""

    kind = "bool"
    operands = "bool"


@dataclass(frozen=True, eq=True, repr=False)
class Not(Expr):
    a: Expr
    kind = "bool"

    def __post_init__(self) -> None:
        _need(self.a, "bool", "~")

    def children(self) -> tuple[Expr, ...]:
        return (self.a,)

    def __repr__(self) -> str:
        return f"~{self.a!r}"


_SYMBOL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "add": "+", "sub": "-", "mul": "*",
           "div": "/", "and": "&", "or": "|"}


@dataclass(frozen=True)
class IndicatorDef:
    """One compiled indicator: its series inputs, its numeric arguments and its outputs."""

    name: str
    inputs: tuple[str, ...]               # names of the series arguments
    args: tuple[tuple[str, Any], ...]     # (name, default) of the numeric arguments; ... = required
    outputs: tuple[str, ...] = ("value",)


REQUIRED = ...
INDICATORS: dict[str, IndicatorDef] = {
    d.name: d for d in (
        IndicatorDef("sma", ("x",), (("period", REQUIRED),)),
        IndicatorDef("ema", ("x",), (("period", REQUIRED),)),
        IndicatorDef("rsi", ("x",), (("period", 14),)),
        IndicatorDef("atr", ("high", "low", "close"), (("period", 14),)),
        IndicatorDef("rolling_std", ("x",), (("period", REQUIRED), ("ddof", 0))),
        IndicatorDef("bbands", ("x",), (("period", 20), ("k", 2.0)), ("upper", "mid", "lower")),
        IndicatorDef("macd", ("x",), (("fast", 12), ("slow", 26), ("signal", 9)), ("line", "signal", "hist")),
        IndicatorDef("vwap", ("price", "volume"), (("period", None),)),
    )
}


@dataclass(frozen=True, eq=True, repr=False)
class Indicator(Expr):
    """Output ``output`` (an index into the definition's outputs) of an indicator."""

    name: str
    inputs: tuple[Expr, ...]
    args: tuple[Arg, ...]
    output: int = 0

    def children(self) -> tuple[Expr, ...]:
        return self.inputs

    @property
    def spec_name(self) -> str:
        d = INDICATORS[self.name]
        return self.name if len(d.outputs) == 1 else f"{self.name}.{d.outputs[self.output]}"

    def __repr__(self) -> str:
        d = INDICATORS[self.name]
        shown = [repr(x) for x in self.inputs if not (self.name in ("atr", "vwap") and isinstance(x, Price))]
        shown += [repr(a) for a in self.args]
        return f"{self.spec_name}({', '.join(shown)})" if len(d.outputs) == 1 else \
            f"{self.name}({', '.join(shown)}).{d.outputs[self.output]}"


def _indicator(name: str, inputs: tuple, args: tuple, output: int = 0) -> Indicator:
    d = INDICATORS[name]
    series = tuple(_need(x, "number", f"{name} {n}") for x, n in zip(inputs, d.inputs))
    checked = []
    for (arg_name, _), value in zip(d.args, args):
        where = f"{name} {arg_name}"
        if arg_name == "k":
            checked.append(_number(value, where, low=0.0))
        elif arg_name == "ddof":
            checked.append(_number(value, where, integer=True, low=0))
        else:
            checked.append(_number(value, where, integer=True, low=1, allow_none=name == "vwap"))
    node = Indicator(name, series, tuple(checked), output)
    if not any(isinstance(a, Param) for a in checked):
        _check_indicator(node)
    return node


close, open_, high, low, volume = (Price(f) for f in ("close", "open", "high", "low", "volume"))
PRICES = {"close": close, "open": open_, "open_": open_, "high": high, "low": low, "volume": volume}


def const(value: Number | Param) -> Expr:
    """A constant series (numbers in comparisons and arithmetic become one by themselves)."""
    return _operand(value, "const")


def sma(x: Expr, period: int | Param) -> Expr:
    """Simple moving average (``tradebus.engine.indicators.sma``)."""
    return _indicator("sma", (x,), (period,))


def ema(x: Expr, period: int | Param) -> Expr:
    """Exponential moving average seeded with the first SMA."""
    return _indicator("ema", (x,), (period,))


def rsi(x: Expr, period: int | Param = 14) -> Expr:
    """Wilder's RSI (0..100)."""
    return _indicator("rsi", (x,), (period,))


def atr(period: int | Param = 14) -> Expr:
    """Wilder's average true range of the bars."""
    return _indicator("atr", (high, low, close), (period,))


def rolling_std(x: Expr, period: int | Param, ddof: int | Param = 0) -> Expr:
    """Rolling standard deviation (ddof 0: population)."""
    return _indicator("rolling_std", (x,), (period, ddof))


@dataclass(frozen=True)
class Bands:
    """Bollinger bands: ``upper``, ``mid``, ``lower`` series."""

    upper: Expr
    mid: Expr
    lower: Expr


def bbands(x: Expr, period: int | Param = 20, k: float | Param = 2.0) -> Bands:
    """Bollinger bands, mean +- k population std over ``period`` values."""
    return Bands(*(_indicator("bbands", (x,), (period, k), i) for i in range(3)))


@dataclass(frozen=True)
class MACDLines:
    """MACD: ``line``, ``signal`` and ``hist`` series."""

    line: Expr
    signal: Expr
    hist: Expr


def macd(x: Expr, fast: int | Param = 12, slow: int | Param = 26, signal: int | Param = 9) -> MACDLines:
    """MACD line, signal line and histogram."""
    return MACDLines(*(_indicator("macd", (x,), (fast, slow, signal), i) for i in range(3)))


def vwap(price: Expr | None = None, period: int | Param | None = None) -> Expr:
    """VWAP of ``price`` (default the typical price (high + low + close) / 3) by the bars'
    volume, cumulative (period None) or over the last ``period`` bars."""
    price = (high + low + close) / 3 if price is None else price
    return _indicator("vwap", (price, volume), (period,))


def cross_above(a: Expr | Number, b: Expr | Number) -> Expr:
    """True at the bar where a goes from <= b to > b."""
    return Cross("cross_above", _operand(a, "cross_above"), _operand(b, "cross_above"))


def cross_below(a: Expr | Number, b: Expr | Number) -> Expr:
    """True at the bar where a goes from >= b to < b."""
    return Cross("cross_below", _operand(a, "cross_below"), _operand(b, "cross_below"))


# ---------------------------------------------------------------------------------------------
# Orders and rules.

ORDER_TYPES = {"market": 0, "limit": 1, "stop": 2}


@dataclass(frozen=True)
class Order:
    """How the rule's signals are sent: type (market, limit, stop) and the offset in bps."""

    type: str = "market"
    offset_bps: Arg = 0.0

    def __repr__(self) -> str:
        return "market()" if self.type == "market" else f"{self.type}({self.offset_bps!r})"


def market() -> Order:
    """Market orders (filled by the engine's fill rule: next open by default)."""
    return Order("market", 0.0)


def limit(offset_bps: Number | Param) -> Order:
    """Limit orders at the decision bar's close moved ``offset_bps`` in the trader's favour."""
    return Order("limit", _number(offset_bps, "limit offset_bps", low=0.0))


def stop(offset_bps: Number | Param) -> Order:
    """Stop orders triggered at the decision bar's close moved ``offset_bps`` against."""
    return Order("stop", _number(offset_bps, "stop offset_bps", low=0.0))


SIDES = ("entry_long", "exit_long", "entry_short", "exit_short")


@dataclass(frozen=True)
class Rule:
    """A strategy's signals as conditions per side (see the module docstring)."""

    entry_long: Expr | None = None
    exit_long: Expr | None = None
    entry_short: Expr | None = None
    exit_short: Expr | None = None
    order: Order = field(default_factory=market)
    quantity: Arg = 1.0

    def __post_init__(self) -> None:
        for side in SIDES:
            value = getattr(self, side)
            if value is not None:
                _need(value, "bool", side)
        if self.entry_long is None and self.entry_short is None:
            raise RuleError("a rule needs entry_long or entry_short")
        if self.exit_long is not None and self.entry_long is None:
            raise RuleError("exit_long without entry_long")
        if self.exit_short is not None and self.entry_short is None:
            raise RuleError("exit_short without entry_short")
        if not isinstance(self.order, Order) or self.order.type not in ORDER_TYPES:
            raise RuleError(f"order must be market(), limit(bps) or stop(bps), got {self.order!r}")
        _number(self.quantity, "quantity", low=0.0)
        if not isinstance(self.quantity, Param) and not self.quantity > 0:
            raise RuleError(f"quantity must be > 0, got {self.quantity!r}")

    def __repr__(self) -> str:
        parts = [f"{side}={getattr(self, side)!r}" for side in SIDES if getattr(self, side) is not None]
        return f"Rule({', '.join(parts)}, order={self.order!r}, quantity={self.quantity!r})"

    # -- parameters ------------------------------------------------------------------------------

    @property
    def params(self) -> frozenset[str]:
        """Names of the parameters the rule leaves open."""
        names: set[str] = set()
        for value in (*_walk_args(self), self.order.offset_bps, self.quantity):
            if isinstance(value, Param):
                names.add(value.name)
        return frozenset(names)

    def bind(self, defaults: bool = False, **values: Number) -> Rule:
        """The rule with parameters replaced by numbers (extra names are ignored, so one grid
        point may carry more than this rule uses); with ``defaults`` the others that have a
        default take it."""
        memo: dict[Expr, Expr] = {}

        def sub(v: Any, where: str) -> Any:
            if isinstance(v, Param) and (v.name in values or (defaults and v.default is not None)):
                value = values.get(v.name, v.default)
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise RuleError(f"param {v.name!r} ({where}): a number is needed, got {value!r}")
                return value
            return v

        def expr(e: Expr) -> Expr:
            if e in memo:
                return memo[e]
            if isinstance(e, Const):
                out: Expr = Const(sub(e.value, "constant"))
            elif isinstance(e, Indicator):
                args = tuple(sub(a, e.spec_name) for a in e.args)
                out = _indicator(e.name, tuple(expr(x) for x in e.inputs), args, e.output)
            elif isinstance(e, (Arith, Compare, Cross, Logic)):
                out = type(e)(e.op, expr(e.a), expr(e.b))
            elif isinstance(e, Not):
                out = Not(expr(e.a))
            else:
                out = e
            memo[e] = out
            return out

        sides = {side: None if getattr(self, side) is None else expr(getattr(self, side)) for side in SIDES}
        order = Order(self.order.type, sub(self.order.offset_bps, "order offset_bps"))
        if order.type != "market":
            _number(order.offset_bps, f"{order.type} offset_bps", low=0.0)
        return Rule(**sides, order=order, quantity=sub(self.quantity, "quantity"))

    # -- spec ------------------------------------------------------------------------------------

    def to_spec(self) -> dict:
        """The JSON-able form (``Rule.from_spec(rule.to_spec()) == rule``).

        >>> rule = Rule(entry_long=sma(close, 2) > sma(close, 4), exit_long=cross_below(close, sma(close, 4)))
        >>> rule.to_spec()["entry_long"]
        {'gt': [{'sma': ['close', 2]}, {'sma': ['close', 4]}]}
        >>> Rule.from_spec(rule.to_spec()) == rule
        True
        """
        from tradebus.engine.rule_spec import rule_to_spec
        return rule_to_spec(self)

    @classmethod
    def from_spec(cls, spec: Mapping) -> Rule:
        """A rule from its JSON form (see the module docstring); RuleError naming the bad part."""
        from tradebus.engine.rule_spec import rule_from_spec
        return rule_from_spec(cls, spec)

    # -- compiling and running -------------------------------------------------------------------

    def compile(self, n_bars: int | None = None, **params: Number) -> Program:
        """The flat program of this rule with ``params`` bound; RuleError when a parameter is
        unbound or (given ``n_bars``) an indicator could never warm up on the data."""
        rule = self.bind(defaults=True, **params)
        missing = rule.params
        if missing:
            raise RuleError(f"unbound param(s) {sorted(missing)}: give them a value")
        from tradebus.engine.rule_program import Program
        return Program.build(rule, n_bars)

    def compile_grid(self, points: Sequence[Mapping[str, Any]], n_bars: int | None = None) -> Program:
        """One program for every parameter point of a sweep: each distinct number series (an
        SMA of a given length) is computed once for all the points that use it."""
        rules = []
        for k, values in enumerate(points):
            rule = self.bind(defaults=True, **values)
            if rule.params:
                raise RuleError(f"grid point {k}: unbound param(s) {sorted(rule.params)}: give them a value")
            rules.append(rule)
        if not rules:
            raise RuleError("the grid has no points")
        from tradebus.engine.rule_program import Program
        return Program.build_many(rules, n_bars)

    def signals(self, bars, **params: Number):
        """The SIGNAL_DTYPE array this rule makes on ``bars`` (a BAR_DTYPE array)."""
        from tradebus.engine.rules import rule_signals
        return rule_signals(bars, self.compile(len(bars), **params))


def _walk_args(rule: Rule):
    seen: set[int] = set()
    stack = [getattr(rule, side) for side in SIDES if getattr(rule, side) is not None]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, Indicator):
            yield from e.args
        elif isinstance(e, Const):
            yield e.value
        stack.extend(e.children())


def _check_indicator(node: Indicator) -> None:
    a = node.args
    for (name, _), value in zip(INDICATORS[node.name].args, a):
        if name in ("period", "fast", "slow", "signal") and value is not None:
            _number(value, f"{node.spec_name} {name}", integer=True, low=1)
        if name == "k":
            _number(value, f"{node.spec_name} k", low=0.0)
    if node.name == "macd" and not a[0] < a[1]:
        raise RuleError(f"{node!r}: fast ({a[0]}) must be shorter than slow ({a[1]})")
    if node.name == "rolling_std" and (a[1] not in (0, 1) or a[1] >= a[0]):
        raise RuleError(f"{node!r}: ddof ({a[1]}) must be 0 or 1 and below period ({a[0]})")
