"""The one ledger of tradebus's engines: positions, cash, fills, round trips, equity marks and
every statistic, shared by the batch engine (batch.pyx) and the event backtester (event_sim.pyx).

Both engines cimport ``ledger.pxd``: an :c:type:`Account` (cash, fees, round-trip tallies), a
:c:type:`Holding` per instrument (position, the open round trip's cash), a :c:type:`Curve`
(running peak, drawdowns, squared per-mark PnL) and :c:func:`ledger_stats`, which turns them into
the statistics whose formulas the docstring of :mod:`tradebus.engine` gives. The per-fill
(``ledger_fill``) and per-mark (``ledger_mark``) steps are inline functions of the ``.pxd``, so
the batch engine's loops stay typed, nogil and inlined. The batch engine marks a stretch of bars
without fills in one step from its block summaries (``hold`` in batch.pyx); that gives the same
Curve as marking each bar, which the per-bar numpy reference in the tests checks.

Guards (one set, for both engines). The equity arithmetic rounds: a position opened and marked
at the same price moves the equity by ~1e-16 of the capital, and two engines that sum the same
PnL in a different order round differently. Ratios of that noise are noise, so

* Sharpe and Sortino are 0 when there are fewer than 2 marks or when the per-mark returns
  (fractions of the initial capital) have a root mean square below 1e-12 (TB_NOISE_RETURN);
  Sharpe is also 0 when the variance is below 1e-12 x the mean square return (a constant
  return series: the variance is the rounding of the sums); Sortino is 0 without a losing mark;
* Calmar is 0 unless the max drawdown exceeds 1e-12 x the initial capital.

A variance test alone (what the event backtester had) lets rounding noise through as a huge
Sortino or Calmar; the batch engine's noise floor is what makes both engines agree on every
statistic, ratios included.
"""
from libc.math cimport INFINITY, sqrt

__all__ = ["STAT_KEYS"]

STAT_KEYS = (
    "total_trades", "winning_trades", "losing_trades", "net_pnl", "gross_profit", "gross_loss",
    "total_fees", "return_pct", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_pct", "win_rate", "profit_factor", "avg_win", "avg_loss", "final_capital",
    "exposure_pct", "total_fills", "unfilled_orders",
)


cdef void ledger_stats(const Account* acct, const Curve* cv, double capital, double final_equity,
                       int64_t marks, int64_t interval_ns, int64_t fills, int64_t unfilled,
                       Stats* out) noexcept nogil:
    """Every statistic of a run: ``marks`` equity marks ``interval_ns`` apart (the smallest gap),
    the last at ``final_equity``."""
    cdef int64_t n = marks
    cdef double net = final_equity - capital
    cdef double mean, s2, s2neg, var, ppy, root
    out.total_trades = acct.trades
    out.winning_trades = acct.wins
    out.losing_trades = acct.losses
    out.total_fills = fills
    out.unfilled_orders = unfilled
    out.exposure_bars = cv.exposure
    out.net_pnl = net
    out.gross_profit = acct.gross_profit
    out.gross_loss = acct.gross_loss
    out.total_fees = acct.fees
    out.return_pct = net / capital * 100.0
    out.final_capital = final_equity
    out.max_drawdown = cv.max_dd
    out.max_drawdown_pct = cv.max_dd_frac * 100.0
    out.sharpe = 0.0
    out.sortino = 0.0
    out.calmar = 0.0
    out.exposure_pct = 100.0 * cv.exposure / n if n > 0 else 0.0
    if n >= 2:
        mean = net / capital / n
        s2 = cv.s2 / (capital * capital)
        s2neg = cv.s2neg / (capital * capital)
        ppy = TB_YEAR_NS / interval_ns
        root = sqrt(ppy)
        if s2 / n > TB_NOISE_RETURN * TB_NOISE_RETURN:
            var = (s2 - n * mean * mean) / (n - 1)
            if var > TB_ZERO_VARIANCE * s2 / n:
                out.sharpe = mean / sqrt(var) * root
            if s2neg > 0.0:
                out.sortino = mean / sqrt(s2neg / n) * root
        if cv.max_dd > TB_NOISE_RETURN * capital:
            out.calmar = (out.return_pct * ppy / n) / out.max_drawdown_pct
    out.win_rate = <double>acct.wins / acct.trades if acct.trades > 0 else 0.0
    if acct.gross_loss > 0.0:
        out.profit_factor = acct.gross_profit / acct.gross_loss
    else:
        out.profit_factor = INFINITY if acct.gross_profit > 0.0 else 0.0
    out.avg_win = acct.gross_profit / acct.wins if acct.wins > 0 else 0.0
    out.avg_loss = -acct.gross_loss / acct.losses if acct.losses > 0 else 0.0


cdef dict stats_dict(const Stats* st):
    """The statistics as the engines return them (keys in STAT_KEYS order)."""
    return {
        "total_trades": st.total_trades,
        "winning_trades": st.winning_trades,
        "losing_trades": st.losing_trades,
        "net_pnl": st.net_pnl,
        "gross_profit": st.gross_profit,
        "gross_loss": st.gross_loss,
        "total_fees": st.total_fees,
        "return_pct": st.return_pct,
        "sharpe": st.sharpe,
        "sortino": st.sortino,
        "calmar": st.calmar,
        "max_drawdown": st.max_drawdown,
        "max_drawdown_pct": st.max_drawdown_pct,
        "win_rate": st.win_rate,
        "profit_factor": st.profit_factor,
        "avg_win": st.avg_win,
        "avg_loss": st.avg_loss,
        "final_capital": st.final_capital,
        "exposure_pct": st.exposure_pct,
        "total_fills": st.total_fills,
        "unfilled_orders": st.unfilled_orders,
    }
