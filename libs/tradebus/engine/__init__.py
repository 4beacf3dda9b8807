"""tradebus.engine: the compiled batch backtest engine, permutation studies, indicators and the
venue models of the event backtester (fees, latency, queue position: ``tradebus.engine.models``).

Names follow FLOX's batch engine::

    import numpy as np
    from tradebus.engine import Engine, make_signals, permutation_test

    engine = Engine(initial_capital=100_000, fee_rate=0.0001)
    engine.load_bars_df(timestamps, opens, highs, lows, closes, volumes)
    stats = engine.run(make_signals(ts, sides, quantities))
    results = engine.run_batch([signals_1, signals_2], threads=0)

Execution rules
---------------
Bars are OHLCV rows with strictly increasing timestamps (ms, us or ns, told apart by magnitude,
kept as ns). The bar interval is the smallest gap between consecutive bars. A signal is
*stamped at* the last bar that starts at or before its timestamp; a signal earlier than the
first bar is stamped before bar 0, one at or after the last bar's start plus the interval is
after the data.

* Market, ``fill="next_open"`` (the default, ``DEFAULT_FILL``, everywhere: Engine, the event
  backtester's ``bar_fill``, the farm's ``EngineSettings.fill``, ``tradebus study --fill``):
  fills at the open of the next bar, so a signal never trades at a price it was computed from.
* Market, ``fill="close"``: fills at the close of its bar (bar 0 if stamped before the data),
  FLOX's rule.
* Limit (type 1): rests from the bar after its stamp; fills at the limit price at the first bar
  that trades through it: low < price for a buy, high > price for a sell.
* Stop (type 2): rests from the bar after its stamp; triggers at the first bar whose range
  reaches the trigger (high >= trigger for a buy, low <= trigger for a sell) and fills at the
  trigger, or at the open when the bar opened beyond it.
* Market and stop fills pay slippage: buys at price x (1 + bps/10^4), sells at price x
  (1 - bps/10^4). Limit fills do not. Every fill pays fee = fee_rate x quantity x fill price.
* Each signal is an independent order: nothing cancels it. One that cannot fill before the data
  ends is counted in ``unfilled_orders``. There is no cash or margin limit.
* Fills of one bar execute in this order: next-open market fills, then limit and stop fills,
  then close market fills; within each, in signal order.
* Quantities are traded as given: a sell larger than a long position flips it short and the
  reverse. A position reduced to within 1e-9 of its size is flat.

Statistics
----------
Let C be ``initial_capital``, n the number of bars, E_t the mark-to-market equity at the close
of bar t (cash + position x close_t), E_{-1} = C, P_t = max(C, E_0..E_t) the running peak,
r_t = (E_t - E_{t-1}) / C the per-bar return, and ppy = 365 x 86400 s / bar interval (0 when
n < 2). A round trip (trade) runs from flat until the position is flat again or flips; its PnL
is the cash it moved, fees included (a flipping fill's fee is split by quantity). A position
still open at the end counts in the equity, not as a trade.

==================  ===========================================================================
total_trades        number of completed round trips
winning_trades      round trips with PnL > 0
losing_trades       round trips with PnL < 0
net_pnl             E_{n-1} - C (after fees, open position marked to the last close)
gross_profit        sum of the PnL of winning round trips
gross_loss          - sum of the PnL of losing round trips (>= 0)
total_fees          sum of all fill fees
return_pct          100 x net_pnl / C
sharpe              mean(r) / std(r, ddof=1) x sqrt(ppy); 0 when n < 2, when the variance is 0
                    (below 1e-12 x mean(r^2)) or when the returns are rounding noise
                    (sqrt(mean(r^2)) below 1e-12)
sortino             mean(r) / sqrt(sum(min(r_t, 0)^2) / n) x sqrt(ppy); 0 without a losing bar,
                    when n < 2 or when the returns are rounding noise (as for sharpe)
calmar              (return_pct x ppy / n) / max_drawdown_pct; 0 without a drawdown above
                    rounding noise (max_drawdown below 1e-12 x C)
max_drawdown        max_t (P_t - E_t)
max_drawdown_pct    100 x max_t (P_t - E_t) / P_t
win_rate            winning_trades / total_trades (a fraction; 0 without trades)
profit_factor       gross_profit / gross_loss; inf when only winners, 0 without trades
avg_win             gross_profit / winning_trades (0 without winners)
avg_loss            - gross_loss / losing_trades (<= 0; 0 without losers)
final_capital       E_{n-1}
exposure_pct        100 x (bars whose closing position is not flat) / n
total_fills         fills executed
unfilled_orders     signals that never filled
==================  ===========================================================================

Both engines compute these with one ledger (:mod:`tradebus.engine.ledger`): the event
backtester (``tradebus.strategy.BacktestRunner``) marks its equity at each bar's close, or for
trades and books at the end of each ``mark_interval_ns`` bucket, and n, r_t and ppy are taken
over those marks. The guards above are the only ones: a ratio of rounding noise is 0 in both
engines, which therefore agree on every statistic.

A run typically costs O(signals + fills x 64 + bars / 4096), not O(bars): see ``batch.pyx``.

Modules: ``bars`` (bar storage: loading, block summaries, ``Instrument``), ``fills`` (signals and
the fill search), ``batch`` (the run and ``Engine``), ``ledger`` (accounting and statistics, shared
with the event backtester), ``paths`` (permutation paths), ``indicators``, ``rule_language`` (signal
rules) and ``rules`` (their compiled evaluator), ``fused`` (permutation tests and sweeps of a rule in
one parallel loop: ``permutation``, ``sweeps``), ``event`` and ``event_sim`` (the event
backtester); the C kernels are headers in ``engine/include``.
"""
from tradebus.engine.bars import BAR_DTYPE, Instrument, PyBar, normalize_timestamps
from tradebus.engine.batch import DEFAULT_FILL, FILL_DTYPE, Engine
from tradebus.engine.fills import SIGNAL_DTYPE, make_signals
from tradebus.engine.indicators import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    VWAP,
    Bollinger,
    RollingStd,
    atr,
    bollinger,
    ema,
    macd,
    rolling_std,
    rsi,
    sma,
    vwap,
)
from tradebus.engine.ledger import STAT_KEYS
from tradebus.engine.models import (
    ConstantLatency,
    FeeModel,
    LatencyModel,
    NoQueue,
    ProbQueue,
    QueueModel,
    QueuePosition,
    RecordedLatency,
    RiskAverseQueue,
)
from tradebus.engine.permutation import PermutationResult, permutation_paths, permutation_test
from tradebus.engine.rule_language import Rule, RuleError
from tradebus.engine.sweeps import SweepResult, sweep

BUY, SELL = 0, 1
MARKET, LIMIT, STOP = 0, 1, 2

__all__ = [
    "BAR_DTYPE", "DEFAULT_FILL", "FILL_DTYPE", "SIGNAL_DTYPE", "STAT_KEYS", "BUY", "SELL", "MARKET", "LIMIT", "STOP",
    "Engine", "Instrument", "PyBar", "make_signals", "normalize_timestamps",
    "PermutationResult", "permutation_paths", "permutation_test", "Rule", "RuleError", "SweepResult", "sweep",
    "SMA", "EMA", "RSI", "ATR", "Bollinger", "MACD", "RollingStd", "VWAP",
    "sma", "ema", "rsi", "atr", "bollinger", "macd", "rolling_std", "vwap",
    "FeeModel", "LatencyModel", "ConstantLatency", "RecordedLatency", "QueueModel", "NoQueue",
    "RiskAverseQueue", "ProbQueue", "QueuePosition",
]
