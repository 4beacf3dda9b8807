"""A plain vectorised numpy SMA-cross backtest, written from the documentation with no engine
code: long-only flips (long while SMA(fast) > SMA(slow)), market orders filled at the next
bar's open, a fee on every fill. The fused pipeline's statistics must equal it."""
from __future__ import annotations

import math

import numpy as np

YEAR_NS = 365 * 86400 * 10**9


def sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        c = np.cumsum(np.concatenate(([0.0], x)))
        out[n - 1:] = (c[n:] - c[:-n]) / n
    return out


def sma_cross_stats(bars: np.ndarray, fast: int, slow: int, fee_rate: float, capital: float = 100_000.0,
                    quantity: float = 1.0) -> dict:
    close, opens = bars["close"], bars["open"]
    n = len(close)
    with np.errstate(invalid="ignore"):
        above = sma(close, fast) > sma(close, slow)
    change = np.diff(above.astype(np.int8), prepend=np.int8(0))
    decided = np.flatnonzero(change)
    filled = decided[decided + 1 < n]                     # the bar after the data never comes
    fill_bar = filled + 1
    q = np.where(change[filled] > 0, quantity, -quantity)
    price = opens[fill_bar]
    fees = fee_rate * np.abs(q) * price
    cash_flow = np.zeros(n)
    np.add.at(cash_flow, fill_bar, -q * price - fees)
    pos_change = np.zeros(n)
    np.add.at(pos_change, fill_bar, q)
    cash = capital + np.cumsum(cash_flow)
    pos = np.cumsum(pos_change)
    equity = cash + pos * close
    peak = np.maximum.accumulate(np.concatenate(([capital], equity)))[1:]
    r = np.diff(np.concatenate(([capital], equity))) / capital
    ppy = YEAR_NS / np.min(np.diff(bars["timestamp_ns"])) if n >= 2 else 0.0
    var = r.var(ddof=1) if n >= 2 else 0.0
    sharpe = r.mean() / math.sqrt(var) * math.sqrt(ppy) if n >= 2 and var > 1e-12 * np.mean(r * r) else 0.0
    sells = q < 0
    # a round trip is a buy and the sell after it: PnL = what the pair moved in cash
    buy_cost = (q * price + fees)[~sells][: int(sells.sum())]
    sell_gain = (-q * price - fees)[sells]
    trade_pnl = sell_gain - buy_cost
    return {
        "net_pnl": float(equity[-1] - capital),
        "final_capital": float(equity[-1]),
        "total_fees": float(fees.sum()),
        "total_fills": int(len(filled)),
        "unfilled_orders": int(len(decided) - len(filled)),
        "total_trades": int(sells.sum()),
        "winning_trades": int((trade_pnl > 0).sum()),
        "max_drawdown": float(np.max(peak - equity)),
        "exposure_pct": float(100 * np.count_nonzero(pos != 0) / n),
        "sharpe": float(sharpe),
    }
