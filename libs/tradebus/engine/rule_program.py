"""Signal rules compiled to a flat program (what ``tradebus.engine.rules`` evaluates): number
series in dependency order, each distinct one once and shared by all parameter points, then
each point's conditions."""
from __future__ import annotations

from dataclasses import dataclass

from tradebus.engine.rule_language import (
    INDICATORS,
    ORDER_TYPES,
    SIDES,
    Arith,
    Compare,
    Const,
    Cross,
    Expr,
    Indicator,
    Logic,
    Not,
    Price,
    Rule,
    RuleError,
    _check_indicator,
)

__all__ = ["OPCODES", "PRICE_COLUMNS", "Point", "Program", "warmup"]


# Opcodes shared with rules.pyx (its OP_* enum mirrors these numbers; a test checks they agree).
OPCODES = {
    "const": 1, "add": 2, "sub": 3, "mul": 4, "div": 5,
    "sma": 10, "ema": 11, "rsi": 12, "atr": 13, "rolling_std": 14, "bbands": 15, "macd": 16, "vwap": 17,
    "lt": 30, "le": 31, "gt": 32, "ge": 33, "cross_above": 34, "cross_below": 35,
    "and": 40, "or": 41, "not": 42,
}
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
RING_INDICATORS = ("sma", "rolling_std", "bbands", "vwap")   # keep their last ``period`` inputs


def warmup(e: Expr) -> int:
    """Bars an expression needs before its first value (1: from the first bar)."""
    if isinstance(e, Indicator):
        inner = max((warmup(x) for x in e.inputs), default=1) - 1
        a = e.args
        own = {
            "sma": lambda: a[0], "ema": lambda: a[0], "rsi": lambda: a[0] + 1, "atr": lambda: a[0],
            "rolling_std": lambda: a[0], "bbands": lambda: a[0],
            "macd": lambda: a[1] + a[2] - 1, "vwap": lambda: a[0] or 1,
        }[e.name]()
        return inner + own
    if isinstance(e, Cross):
        return max(warmup(e.a), warmup(e.b)) + 1
    return max((warmup(x) for x in e.children()), default=1)


@dataclass(frozen=True)
class Point:
    """One bound rule's part of a program: its conditions and how it trades.

    ``conditions``: instructions (opcode, slot, input a, input b, -1, 0, 0, 0) producing
    true/false series into the point's condition slots, in dependency order; compare and cross
    read number columns, and/or/not read slots. ``sides``: the slot of entry_long, exit_long,
    entry_short, exit_short (-1: none)."""

    conditions: tuple[tuple, ...]
    sides: tuple[int, int, int, int]
    order_type: int
    offset_bps: float
    quantity: float


@dataclass(frozen=True)
class Program:
    """Rules compiled to flat instructions: number series shared by all points, each distinct
    one computed once, then each point's conditions.

    ``numbers``: instructions (opcode, column, input a, input b, input c, p0, p1, p2) in
    dependency order; columns 0..4 are open, high, low, close, volume and a multi-output
    indicator fills consecutive columns (bbands: upper, mid, lower; macd: line, signal, hist).
    ``max_period``: the longest ring an indicator keeps; ``warmup``: bars the slowest point
    needs before its conditions can be true.
    """

    numbers: tuple[tuple, ...]
    n_columns: int
    points: tuple[Point, ...]
    max_period: int
    warmup: int

    @classmethod
    def build(cls, rule: Rule, n_bars: int | None = None) -> Program:
        """The program of one bound rule."""
        return cls.build_many([rule], n_bars)

    @classmethod
    def build_many(cls, rules: list[Rule], n_bars: int | None = None) -> Program:
        """One program for bound rules (a sweep's points), their number series shared."""
        compiler = _Compiler()
        points = tuple(compiler.point(rule, n_bars) for rule in rules)
        return cls(tuple(compiler.numbers), compiler.n_columns, points, compiler.max_period,
                   compiler.warmup)


class _Compiler:
    """Assigns columns to number series (shared across points) and slots to conditions."""

    def __init__(self) -> None:
        self.columns: dict[Expr, int] = {}
        self.indicator_base: dict[tuple, int] = {}
        self.numbers: list[tuple] = []
        self.n_columns = len(PRICE_COLUMNS)
        self.max_period = 1
        self.warmup = 1

    def number(self, e: Expr) -> int:
        if isinstance(e, Price):
            return PRICE_COLUMNS.index(e.field)
        if e in self.columns:
            return self.columns[e]
        if isinstance(e, Const):
            col = self._new(1)
            self.numbers.append((OPCODES["const"], col, -1, -1, -1, float(e.value), 0.0, 0.0))
        elif isinstance(e, Arith):
            a, b = self.number(e.a), self.number(e.b)
            col = self._new(1)
            self.numbers.append((OPCODES[e.op], col, a, b, -1, 0.0, 0.0, 0.0))
        elif isinstance(e, Indicator):
            key = (e.name, e.inputs, e.args)
            if key not in self.indicator_base:
                ins = [self.number(x) for x in e.inputs] + [-1] * (3 - len(e.inputs))
                args = [0.0 if a is None else float(a) for a in e.args] + [0.0] * (3 - len(e.args))
                base = self._new(len(INDICATORS[e.name].outputs))
                self.indicator_base[key] = base
                self.numbers.append((OPCODES[e.name], base, *ins, *args))
                if e.name in RING_INDICATORS and e.args[0] is not None:
                    self.max_period = max(self.max_period, int(e.args[0]))
            col = self.indicator_base[key] + e.output
        else:
            raise RuleError(f"{e!r} is not a number series")
        self.columns[e] = col
        return col

    def _new(self, width: int) -> int:
        col = self.n_columns
        self.n_columns += width
        return col

    def point(self, rule: Rule, n_bars: int | None) -> Point:
        slots: dict[Expr, int] = {}
        conditions: list[tuple] = []

        def condition(e: Expr) -> int:
            if e in slots:
                return slots[e]
            if isinstance(e, (Compare, Cross)):
                ins = (self.number(e.a), self.number(e.b))
                op = e.op
            elif isinstance(e, Logic):
                ins = (condition(e.a), condition(e.b))
                op = e.op
            elif isinstance(e, Not):
                ins = (condition(e.a), -1)
                op = "not"
            else:
                raise RuleError(f"{e!r} is not a condition")
            slot = len(conditions)
            conditions.append((OPCODES[op], slot, *ins, -1, 0.0, 0.0, 0.0))
            slots[e] = slot
            return slot

        sides = []
        for side in SIDES:
            e = getattr(rule, side)
            if e is None:
                sides.append(-1)
                continue
            _check_args(e)
            w = warmup(e)
            if n_bars is not None and w > n_bars:
                part = _longest(e, n_bars)
                raise RuleError(f"{side}: {part!r} needs {warmup(part)} bars before its first value "
                                f"but the data has {n_bars}")
            self.warmup = max(self.warmup, w)
            sides.append(condition(e))
        return Point(tuple(conditions), tuple(sides), ORDER_TYPES[rule.order.type],  # type: ignore[arg-type]
                     float(rule.order.offset_bps), float(rule.quantity))


def _check_args(e: Expr) -> None:
    """Argument rules only known once parameters are bound."""
    for node in _nodes(e):
        if isinstance(node, Indicator):
            _check_indicator(node)


def _nodes(e: Expr):
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) not in seen:
            seen.add(id(x))
            yield x
            stack.extend(x.children())


def _longest(e: Expr, n_bars: int) -> Expr:
    """The smallest part of ``e`` that cannot warm up on ``n_bars`` bars (for the message)."""
    for child in e.children():
        if warmup(child) > n_bars:
            return _longest(child, n_bars)
    return e
