"""OrderRecords: open orders found without looking through closed ones, closed ones forgotten
beyond a bound (a runner trading for days keeps a bounded memory)."""
from __future__ import annotations

import pytest

from tradebus.strategy import Runner, Strategy, SymbolRegistry
from tradebus.strategy.orders import OrderRecords


def runner_with(keep_closed: int):
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT", tick_size=0.01, lot_size=0.001)
    eth = reg.add_symbol("sim", "ETH/USDT", tick_size=0.01, lot_size=0.001)
    runner = Runner(reg, lambda sig: None, keep_closed=keep_closed)
    s = runner.add_strategy(Strategy([btc, eth]))
    runner.start()
    return runner, s, btc, eth


def test_closed_orders_beyond_the_bound_are_forgotten_and_open_ones_stay():
    runner, s, btc, eth = runner_with(keep_closed=3)
    resting = s.limit_buy(100.0, 0.001, eth)
    ids = [s.market_buy(0.001) for _ in range(6)]
    assert [r.order_id for r in runner.open_orders(s)] == [resting, *ids]
    for i, oid in enumerate(ids):
        assert runner.on_fill(oid, 100.0, 0.001, trade_id=f"t{i}")
    assert set(runner.orders) == {resting, *ids[-3:]}            # the three most recent closed, and the open one
    assert [o.id for o in s.context(eth).open_orders()] == [resting] and s.context(btc).open_orders() == []
    assert not runner.on_fill(ids[0], 100.0, 0.001, trade_id="late")  # forgotten: an unknown order
    assert s.context(btc).position == pytest.approx(0.006)
    assert runner.summary()[0]["open_orders"] == 1
    runner.on_order_cancelled(resting)
    assert runner.open_orders() == [] and resting in runner.orders


def test_a_late_fill_reopens_a_cancelled_order_in_the_open_index():
    runner, s, btc, _ = runner_with(keep_closed=10)
    oid = s.limit_buy(100.0, 0.002)
    runner.on_order_cancelled(oid)
    assert s.context(btc).open_orders() == []
    runner.on_fill(oid, 100.0, 0.001, trade_id="t1")
    assert [o.id for o in s.context(btc).open_orders()] == [oid]


def test_keep_closed_is_checked():
    with pytest.raises(ValueError):
        OrderRecords(-1)
