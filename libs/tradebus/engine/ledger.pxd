# The engines' one ledger (see ledger.pyx): cimported by batch.pyx and event_sim.pyx. The hot
# per-fill and per-mark steps are inline here so each engine compiles them into its own loop.
from libc.stdint cimport int64_t


cdef extern from "kernels.h" nogil:
    double tb_max(double a, double b) noexcept       # a > b ? a : b
    double tb_pos(double a) noexcept                 # max(a, 0)
    double tb_neg(double a) noexcept                 # min(a, 0)

cdef extern from "ledger.h" nogil:
    const double TB_FLAT_EPSILON
    const double TB_NOISE_RETURN
    const double TB_ZERO_VARIANCE
    const double TB_NEAR
    const double TB_YEAR_NS


# The money of one account: cash, fees and the tallies of closed round trips.
cdef struct Account:
    double cash
    double fees
    double gross_profit
    double gross_loss
    int64_t trades
    int64_t wins
    int64_t losses

# One instrument of an account: its position and the cash its open round trip has moved.
cdef struct Holding:
    double pos
    double trade_pnl

# The equity curve, summarised as it is marked.
cdef struct Curve:
    double peak             # highest equity so far (initial capital included)
    double max_dd
    double max_dd_frac
    double s2               # sum of squared per-mark PnL
    double s2neg            # the same over losing marks
    int64_t exposure        # marks with an open position

# Every statistic of a run (STAT_KEYS, in ledger.pyx, names them).
cdef struct Stats:
    int64_t total_trades
    int64_t winning_trades
    int64_t losing_trades
    int64_t total_fills
    int64_t unfilled_orders
    int64_t exposure_bars
    double net_pnl
    double gross_profit
    double gross_loss
    double total_fees
    double return_pct
    double sharpe
    double sortino
    double calmar
    double max_drawdown
    double max_drawdown_pct
    double win_rate
    double profit_factor
    double avg_win
    double avg_loss
    double final_capital
    double exposure_pct


cdef inline void ledger_open(Account* acct, Curve* cv, double capital) noexcept nogil:
    """An account holding ``capital`` in cash, nothing traded, nothing marked."""
    acct.cash = capital
    acct.fees = 0.0
    acct.gross_profit = 0.0
    acct.gross_loss = 0.0
    acct.trades = 0
    acct.wins = 0
    acct.losses = 0
    cv.peak = capital
    cv.max_dd = 0.0
    cv.max_dd_frac = 0.0
    cv.s2 = 0.0
    cv.s2neg = 0.0
    cv.exposure = 0


cdef inline void close_trade(Account* acct, Holding* h) noexcept nogil:
    # Branch-free: whether a trade won is as unpredictable as the market.
    cdef double pnl = h.trade_pnl
    acct.trades += 1
    acct.wins += pnl > 0.0
    acct.losses += pnl < 0.0
    acct.gross_profit += tb_pos(pnl)
    acct.gross_loss -= tb_neg(pnl)
    h.trade_pnl = 0.0


cdef inline double ledger_fill(Account* acct, Holding* h, double q, double px,
                               double fee_rate) noexcept nogil:
    """Trade signed quantity q (> 0 buys) at px paying fee_rate x |q| x px; return the fee.

    A round trip runs from flat to flat (or to a flip); its PnL is the cash it moved, fees
    included, a flipping fill's fee split by quantity. A position reduced to within
    TB_FLAT_EPSILON of its size is flat."""
    cdef double aq = q if q > 0.0 else -q
    cdef double fee = fee_rate * aq * px
    cdef double pos0 = h.pos, pos1 = pos0 + q, apos0, apos1, fee_close
    acct.cash -= q * px + fee
    acct.fees += fee
    if pos0 == 0.0:
        h.trade_pnl = -q * px - fee
        h.pos = pos1
    elif (pos0 > 0.0) == (q > 0.0):
        h.trade_pnl += -q * px - fee
        h.pos = pos1
    else:
        apos0 = pos0 if pos0 > 0.0 else -pos0
        apos1 = pos1 if pos1 > 0.0 else -pos1
        if apos1 <= TB_FLAT_EPSILON * apos0:
            h.trade_pnl += -q * px - fee
            h.pos = 0.0
            close_trade(acct, h)
        elif aq < apos0:
            h.trade_pnl += -q * px - fee
            h.pos = pos1
        else:
            fee_close = fee_rate * apos0 * px
            h.trade_pnl += pos0 * px - fee_close
            close_trade(acct, h)
            h.trade_pnl = -pos1 * px - (fee - fee_close)
            h.pos = pos1
    return fee


cdef inline void ledger_mark(Curve* cv, double eq, double pnl) noexcept nogil:
    """Mark the equity ``eq`` that changed by ``pnl`` since the last mark (exposure apart)."""
    cdef double down = tb_neg(pnl), dd, frac
    cv.s2 += pnl * pnl
    cv.s2neg += down * down
    cv.peak = tb_max(eq, cv.peak)
    dd = cv.peak - eq
    cv.max_dd = tb_max(dd, cv.max_dd)
    if dd > cv.max_dd_frac * cv.peak * TB_NEAR:      # only then can the fraction be larger
        frac = dd / cv.peak
        if frac > cv.max_dd_frac:
            cv.max_dd_frac = frac


cdef void ledger_stats(const Account* acct, const Curve* cv, double capital, double final_equity,
                       int64_t marks, int64_t interval_ns, int64_t fills, int64_t unfilled,
                       Stats* out) noexcept nogil

cdef dict stats_dict(const Stats* st)
