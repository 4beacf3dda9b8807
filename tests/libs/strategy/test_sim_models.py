"""The event backtester with each venue model (fees, latency, queue position), checked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from tradebus.engine.models import (
    ConstantLatency,
    FeeModel,
    NoQueue,
    ProbQueue,
    RecordedLatency,
    RiskAverseQueue,
)
from tradebus.strategy import BacktestRunner, Strategy

from ..engine.test_models import splitmix64
from .scripted import SEC, T0, registry, run_trades
from .test_sim_book import run_book as run_sim_book

# -- fees ----------------------------------------------------------------------------------------

def test_fee_model_charges_taker_and_maker_rates_per_symbol():
    fees = FeeModel(maker_rate=0.0002, taker_rate=0.001, overrides={"BTCUSDT": (-0.0001, 0.0005)})
    script = {0: lambda s, ctx: s.market_buy(2.0), 1: lambda s, ctx: s.limit_sell(103.0, 2.0)}
    stats, s = run_trades([100.0, 101.0, 102.0, 104.0], script, fee_rate=None, fee_model=fees)
    # taker buy 2 @ 101 at the override's 0.05%; maker sell 2 @ 103 earns the 0.01% rebate
    assert stats["fills"]["fee"].tolist() == pytest.approx([2 * 101 * 0.0005, -2 * 103 * 0.0001])
    assert stats["total_fees"] == pytest.approx(0.101 - 0.0206)
    assert stats["net_pnl"] == pytest.approx(2 * (103 - 101) - (0.101 - 0.0206))
    # without the override the symbol pays the model's rates
    stats, s = run_trades([100.0, 101.0, 102.0, 104.0], script, fee_rate=None,
                          fee_model=FeeModel(maker_rate=0.0002, taker_rate=0.001))
    assert stats["fills"]["fee"].tolist() == pytest.approx([2 * 101 * 0.001, 2 * 103 * 0.0002])


def test_fee_model_and_fee_rate_are_exclusive_and_overrides_must_name_a_symbol():
    reg, sym = registry()
    with pytest.raises(ValueError, match="not both"):
        BacktestRunner(reg, fee_rate=0.001, fee_model=FeeModel(0.0, 0.001))
    with pytest.raises(ValueError, match="ETHUSDT"):
        BacktestRunner(reg, fee_model=FeeModel(0.0, 0.001, overrides={"ETHUSDT": (0.0, 0.0)}))
    with pytest.raises(TypeError):
        BacktestRunner(reg, queue_model="risk_averse")


def test_the_default_models_are_the_plain_arguments():
    """fee_rate/maker_fee_rate/latency_ns and the equivalent explicit models give one result."""
    script = {0: lambda s, ctx: s.market_buy(1.0), 1: lambda s, ctx: s.limit_sell(103.0, 1.0),
              3: lambda s, ctx: s.limit_buy(101.0, 1.0)}
    prices = [100.0, 101.0, 102.0, 104.0, 101.0, 100.0, 99.0]
    plain, _ = run_trades(prices, script, fee_rate=0.001, maker_fee_rate=0.0002, latency_ns=SEC // 2)
    models, _ = run_trades(prices, script, fee_rate=None, fee_model=FeeModel(0.0002, 0.001),
                           latency_model=ConstantLatency(SEC // 2), queue_model=NoQueue())
    for key in ("net_pnl", "total_fees", "total_fills", "sharpe", "final_capital"):
        assert plain[key] == models[key]
    assert plain["fills"].tolist() == models["fills"].tolist()


# -- latency -------------------------------------------------------------------------------------

class Timed(Strategy):
    """Buys at the first trade and records when (event time) each report arrives."""

    def __init__(self, symbols):
        super().__init__(symbols)
        self.seen = []
        self.n = 0

    def on_trade(self, ctx, trade):
        if self.n == 0:
            self.market_buy(1.0)
        self.n += 1
        self.seen.append(("trade", trade.ts_ns, ctx.position))

    def on_order_update(self, symbol, status, filled, avg_price):
        self.seen.append((status, self.context().now_ns, self.context().position))

    def on_fill(self, fill):
        self.seen.append(("fill", self.context().now_ns, fill.ts_ns))


def run_timed(prices, **options):
    reg, sym = registry()
    strategy = Timed([sym])
    bt = BacktestRunner(reg, fee_rate=None if "fee_model" in options else 0.0, **options)
    bt.set_strategy(strategy)
    n = len(prices)
    stats = bt.run_arrays(T0 + np.arange(n, dtype=np.int64) * SEC, np.asarray(prices, float),
                          np.ones(n), np.ones(n, bool))
    return stats, strategy.seen


def test_entry_and_response_latency():
    stats, seen = run_timed([100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0],
                            latency_model=ConstantLatency(entry_ns=int(1.5 * SEC), response_ns=int(2.2 * SEC)))
    # reaches the venue at 1.5 s (acked there), fills at the 2 s trade (102): the ack arrives
    # at 3.7 s, the fill at 4.2 s; the position is the venue's, so it changes at 2 s
    assert stats["fills"]["ts_ns"].tolist() == [T0 + 2 * SEC]
    assert stats["fills"]["price"].tolist() == [102.0]
    assert ("acked", T0 + int(3.7 * SEC), 1.0) in seen
    assert ("fill", T0 + int(4.2 * SEC), T0 + 2 * SEC) in seen
    assert ("filled", T0 + int(4.2 * SEC), 1.0) in seen
    order = [e[0] for e in seen]
    assert order == ["trade"] * 4 + ["acked", "trade", "fill", "filled", "trade", "trade"]
    # without a response latency the reports come at once
    stats, seen = run_timed([100.0, 101.0, 102.0, 103.0], latency_model=ConstantLatency(int(1.5 * SEC)))
    assert ("acked", T0 + int(1.5 * SEC), 0.0) in seen and ("fill", T0 + 2 * SEC, T0 + 2 * SEC) in seen


def test_latency_model_and_latency_ns_are_exclusive():
    reg, _ = registry()
    with pytest.raises(ValueError, match="not both"):
        BacktestRunner(reg, latency_ns=5, latency_model=ConstantLatency(5))


def test_recorded_latency_with_a_seed_picks_the_sample_splitmix64_draws():
    entry = [int(0.5 * SEC), int(2.5 * SEC), int(4.5 * SEC)]
    prices = [100.0 + k for k in range(8)]
    for seed in (1, 2, 3, 4):
        stats, seen = run_timed(prices, latency_model=RecordedLatency(entry, seed=seed))
        delay = entry[next(splitmix64(seed)) % 3]
        first_trade_after = -(-delay // SEC)                 # trades are 1 s apart from T0
        assert stats["fills"]["price"].tolist() == [prices[first_trade_after]]
        again, _ = run_timed(prices, latency_model=RecordedLatency(entry, seed=seed))
        assert again["fills"].tolist() == stats["fills"].tolist()


def _first_two(seed):
    draws = splitmix64(seed)
    return next(draws), next(draws)


def test_requests_never_overtake_each_other():
    """A cancel sent after an order reaches the venue after it, even when its latency is shorter."""
    # a seed whose first two draws pick different samples: the order gets 3 s, the cancel 1 s
    seed = next(k for k in range(100) if len({d % 2 for d in _first_two(k)}) == 2)
    first = next(splitmix64(seed)) % 2
    samples = [SEC, SEC]
    samples[first] = 3 * SEC
    script = {0: lambda s, ctx: s.limit_buy(90.0, 1.0), 1: lambda s, ctx: s.cancel(s.ids[0])}
    stats, s = run_trades([100.0] * 6, script, latency_model=RecordedLatency(samples, seed=seed))
    # the cancel, sent at 1 s, would arrive at 2 s: it waits for the order (3 s)
    assert s.statuses(1) == ["acked", "cancelled"]
    assert stats["orders"]["done_ns"].tolist() == [T0 + 3 * SEC]


# -- queue position, trades only -----------------------------------------------------------------

def rest_then_trade_at(qtys, queue_model):
    """A limit buy 1.0 @ 100 rests (no book: nothing ahead), then trades print at 100."""
    prices = [101.0] + [100.0] * len(qtys)
    return run_trades(prices, {0: lambda s, ctx: s.limit_buy(100.0, 1.0)},
                      qtys=np.array([1.0] + qtys), queue_model=queue_model)


def test_queue_models_on_trades_at_the_resting_price():
    stats, s = rest_then_trade_at([0.3, 0.3, 0.9], None)              # default: NoQueue()
    assert s.fills() == []
    stats, s = rest_then_trade_at([0.3, 0.3, 0.9], NoQueue(touch=True))
    assert s.fills() == [(1, 100.0, 1.0, True)]
    stats, s = rest_then_trade_at([0.3, 0.3, 0.9], RiskAverseQueue())
    assert [f[2] for f in s.fills()] == pytest.approx([0.3, 0.3, 0.4])
    assert s.statuses(1) == ["acked", "partially_filled", "partially_filled", "filled"]
    # a trade through the price fills whatever is left, whatever the model
    stats, s = run_trades([101.0, 100.0, 99.0], {0: lambda s, ctx: s.limit_buy(100.0, 1.0)},
                          qtys=np.array([1.0, 0.25, 0.01]), queue_model=RiskAverseQueue())
    assert [f[2] for f in s.fills()] == pytest.approx([0.25, 0.75])


# -- queue position on a book --------------------------------------------------------------------

def run_book(rows, queue_model):
    """A limit buy 1.0 @ 99 (behind the snapshot's 1.0 there) sent at the first event; rows as
    test_sim_book's, one second apart."""
    return run_sim_book(rows, {0: lambda s, ctx: s.limit_buy(99.0, 1.0)}, queue_model=queue_model)


ROWS = [("ask", 102.0, 1.0),          # event 0: the order is sent, joins behind the 1.0 at 99
        ("trade", 99.0, 0.6),         # 0.4 ahead
        ("bid", 99.0, 0.2),           # the level shrank below our queue: 0.2 ahead
        ("trade", 99.0, 0.5),         # 0.2 ahead, 0.3 reach us
        ("bid", 99.0, 3.0),           # others join behind
        ("trade", 99.0, 0.4)]         # nothing ahead: 0.4 more


def test_risk_averse_queue_on_the_book():
    stats, s = run_book(ROWS, RiskAverseQueue())
    assert [f[2] for f in s.fills()] == pytest.approx([0.3, 0.4])
    assert stats["fills"]["ts_ns"].tolist() == [T0 + 4 * SEC, T0 + 6 * SEC]
    stats, s = run_book(ROWS, None)
    assert s.fills() == []


def test_prob_queue_on_the_book():
    # joins behind 1.0; 2.0 more join behind it; then the level drops 3.0 -> 2.0 with no trade:
    # a cancel of 1.0, behind us with p = back^2 / (back^2 + front^2) = 4 / 5, so the front
    # shrinks by (1 - p) x 1.0 to 0.8; a trade of 1.0 at 99 then fills 0.2. The risk-averse
    # model keeps 1.0 ahead and fills nothing.
    rows = [("ask", 102.0, 1.0), ("bid", 99.0, 3.0), ("bid", 99.0, 2.0), ("trade", 99.0, 1.0)]
    stats, s = run_book(rows, ProbQueue(power=2.0))
    assert [f[2] for f in s.fills()] == pytest.approx([0.2])
    stats, s = run_book(rows, RiskAverseQueue())
    assert s.fills() == []
