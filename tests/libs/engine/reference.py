"""Plain Python/numpy reference of the engines' rules, written from the documentation in
tradebus.engine, bar by bar and order by order, with no shared code. The batch engine must agree
with it on every statistic, fill and equity value; the event backtester's ledger is checked with
the same ``Account`` and ``curve_stats``."""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

YEAR_NS = 365 * 86400 * 10**9


@dataclass
class Result:
    stats: dict
    equity: np.ndarray
    fills: list  # dicts: bar, signal, side, type, quantity, price, fee, position


class Account:
    """Cash, fees, position and round trips of one instrument: a round trip runs from flat to
    flat (or to a flip); its PnL is the cash it moved, fees included, a flip's fee split by
    quantity; a position reduced to within 1e-9 of its size is flat."""

    def __init__(self, capital: float) -> None:
        self.cash, self.pos, self.trade_pnl, self.fees = capital, 0.0, 0.0, 0.0
        self.trades = self.wins = self.losses = 0
        self.gross_profit = self.gross_loss = 0.0

    def _close_trade(self) -> None:
        self.trades += 1
        if self.trade_pnl > 0:
            self.wins += 1
            self.gross_profit += self.trade_pnl
        elif self.trade_pnl < 0:
            self.losses += 1
            self.gross_loss += -self.trade_pnl
        self.trade_pnl = 0.0

    def fill(self, q: float, price: float, fee_rate: float) -> float:
        """Trade signed quantity q at price; the fee."""
        fee = fee_rate * abs(q) * price
        self.cash -= q * price + fee
        self.fees += fee
        before, after = self.pos, self.pos + q
        if before == 0.0:
            self.trade_pnl = -q * price - fee
            self.pos = after
        elif (before > 0) == (q > 0):
            self.trade_pnl += -q * price - fee
            self.pos = after
        elif abs(after) <= 1e-9 * abs(before):
            self.trade_pnl += -q * price - fee
            self.pos = 0.0
            self._close_trade()
        elif abs(q) < abs(before):
            self.trade_pnl += -q * price - fee
            self.pos = after
        else:
            closing_fee = fee_rate * abs(before) * price
            self.trade_pnl += before * price - closing_fee
            self._close_trade()
            self.trade_pnl = -after * price - (fee - closing_fee)
            self.pos = after
        return fee

    def trade_stats(self) -> dict:
        return {
            "total_trades": self.trades,
            "winning_trades": self.wins,
            "losing_trades": self.losses,
            "gross_profit": self.gross_profit,
            "gross_loss": self.gross_loss,
            "total_fees": self.fees,
            "win_rate": self.wins / self.trades if self.trades else 0.0,
            "profit_factor": (self.gross_profit / self.gross_loss if self.gross_loss > 0
                              else math.inf if self.gross_profit > 0 else 0.0),
            "avg_win": self.gross_profit / self.wins if self.wins else 0.0,
            "avg_loss": -self.gross_loss / self.losses if self.losses else 0.0,
        }


def curve_stats(equity: np.ndarray, capital: float, interval: int) -> dict:
    """The statistics of an equity curve marked ``interval`` ns apart (the smallest gap)."""
    eq = np.asarray(equity, dtype=np.float64)
    n = eq.shape[0]
    prev = np.concatenate(([capital], eq[:-1]))
    r = (eq - prev) / capital
    peak = np.maximum.accumulate(np.concatenate(([capital], eq)))[1:]
    drawdown = peak - eq
    ppy = YEAR_NS / interval if n >= 2 else 0.0
    mean = r.mean()
    sharpe = sortino = 0.0
    noise = math.sqrt(np.mean(r * r)) <= 1e-12            # rounding noise, not returns
    if n >= 2 and not noise:
        var = r.var(ddof=1)
        if var > 1e-12 * np.mean(r * r):
            sharpe = mean / math.sqrt(var) * math.sqrt(ppy)
        downside = float(np.sum(np.minimum(r, 0.0) ** 2))
        if downside > 0:
            sortino = mean / math.sqrt(downside / n) * math.sqrt(ppy)
    net = eq[-1] - capital
    return_pct = net / capital * 100
    mdd_pct = float(np.max(drawdown / peak)) * 100
    return {
        "net_pnl": float(net),
        "return_pct": float(return_pct),
        "sharpe": float(sharpe),
        "sortino": float(sortino),
        "calmar": float(return_pct * ppy / n / mdd_pct) if drawdown.max() > 1e-12 * capital else 0.0,
        "max_drawdown": float(drawdown.max()),
        "max_drawdown_pct": mdd_pct,
        "final_capital": float(eq[-1]),
    }


def stamp_bar(ts: list[int], interval: int, t: int) -> int:
    """-1 before the first bar, len(ts) after the last bar's interval, else the bar started last."""
    if t < ts[0]:
        return -1
    if t >= ts[-1] + interval:
        return len(ts)
    return bisect.bisect_right(ts, t) - 1


def reference_run(bars: dict, signals: list[dict], capital: float, fee_rate: float,
                  slippage_bps: float, fill: str) -> Result:
    """bars: ts (ns ints), open, high, low, close lists; signals: dicts with timestamp_ns, side
    (0 buy), quantity, price, type (0 market, 1 limit, 2 stop), already sorted by time."""
    ts = [int(t) for t in bars["ts"]]
    o, h, lo, c = (list(map(float, bars[k])) for k in ("open", "high", "low", "close"))
    n = len(ts)
    interval = min(ts[i + 1] - ts[i] for i in range(n - 1)) if n > 1 else 1
    slip = slippage_bps / 10_000.0

    stamped = [stamp_bar(ts, interval, s["timestamp_ns"]) for s in signals]
    acct = Account(capital)
    equity, fills = [], []

    def execute(bar: int, i: int, price: float):
        s = signals[i]
        q = s["quantity"] if s["side"] == 0 else -s["quantity"]
        fee = acct.fill(q, price, fee_rate)
        fills.append({"bar": bar, "signal": i, "side": s["side"], "type": s["type"],
                      "quantity": s["quantity"], "price": price, "fee": fee, "position": acct.pos})

    # Market orders know their bar up front; limit and stop orders rest from the bar after
    # their stamp and are checked against every bar until they fill.
    market_at = [[] for _ in range(n)]
    rests_from = [[] for _ in range(n)]
    for i, (s, k) in enumerate(zip(signals, stamped)):
        buy = s["side"] == 0
        if s["type"] == 0:
            if fill == "close" and k < n:
                t = max(k, 0)
                market_at[t].append((2, i, c[t] * (1 + slip) if buy else c[t] * (1 - slip)))
            elif fill == "next_open" and k + 1 < n:
                t = k + 1
                market_at[t].append((0, i, o[t] * (1 + slip) if buy else o[t] * (1 - slip)))
        elif k + 1 < n:
            rests_from[k + 1].append(i)
    resting = []
    for t in range(n):
        resting.extend(rests_from[t])
        todo = list(market_at[t])  # (phase, signal, price)
        still = []
        for i in resting:
            s = signals[i]
            p = s["price"]
            buy = s["side"] == 0
            if s["type"] == 1 and ((buy and lo[t] < p) or (not buy and h[t] > p)):
                todo.append((1, i, p))
            elif s["type"] == 2 and buy and h[t] >= p:
                todo.append((1, i, max(o[t], p) * (1 + slip)))
            elif s["type"] == 2 and not buy and lo[t] <= p:
                todo.append((1, i, min(o[t], p) * (1 - slip)))
            else:
                still.append(i)
        resting = still
        for _, i, price in sorted(todo):
            execute(t, i, price)
        equity.append(acct.cash + acct.pos * c[t])

    eq = np.array(equity)
    stats = {
        **curve_stats(eq, capital, interval),
        **acct.trade_stats(),
        "exposure_pct": 100.0 * sum(1 for f in _positions(fills, n) if f != 0.0) / n,
        "total_fills": len(fills),
        "unfilled_orders": len(signals) - len(fills),
    }
    return Result(stats=stats, equity=eq, fills=fills)


def _positions(fills: list, n: int) -> list[float]:
    """Position held at each bar's close."""
    out, pos, k = [], 0.0, 0
    for t in range(n):
        while k < len(fills) and fills[k]["bar"] == t:
            pos = fills[k]["position"]
            k += 1
        out.append(pos)
    return out


def tolerance_scales(stats: dict, equity: np.ndarray, capital: float, interval: int) -> dict:
    """Absolute error scale of each statistic, from how it is conditioned: sums of per-bar
    returns can cancel, so a ratio near zero is compared against its natural magnitude."""
    n = equity.shape[0]
    r = np.diff(np.concatenate(([capital], equity))) / capital
    ppy = YEAR_NS / interval if n >= 2 else 0.0
    mean_abs = float(np.mean(np.abs(r)))
    std = float(r.std(ddof=1)) if n >= 2 else 0.0
    down = math.sqrt(float(np.sum(np.minimum(r, 0.0) ** 2)) / n)
    money = capital + float(np.max(np.abs(equity)))
    return {
        "sharpe": math.sqrt(ppy) * mean_abs / std if std > 0 else 0.0,
        "sortino": math.sqrt(ppy) * mean_abs / down if down > 0 else 0.0,
        "calmar": (100 * ppy * mean_abs / stats["max_drawdown_pct"]
                   if stats["max_drawdown_pct"] > 0 else 0.0),
        "default_money": money,
        "default_pct": 100.0,
    }
