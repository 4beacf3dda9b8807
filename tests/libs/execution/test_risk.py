"""RiskEngine limits, lookup order and kill switch."""
from __future__ import annotations

from tradebus.execution import RiskEngine, RiskLimits
from tradebus.proto import NewOrder


def order(**kw):
    base = dict(client_order_id="c1", strategy="s1", venue="sim", symbol="BTC/USDT", side="buy",
                order_type="limit", qty=0.1, price=100.0, ts_init=1)
    base.update(kw)
    return NewOrder(**base)


def test_each_limit():
    r = RiskEngine({"*": RiskLimits(max_order_qty=1.0, max_notional=50.0, max_position=0.5, max_open_orders=3,
                                    price_band_bps=100)})
    assert r.check(order(), last_price=100.0) is None
    assert "max_order_qty" in r.check(order(qty=2.0), last_price=100.0)
    assert "max_notional" in r.check(order(qty=0.6), last_price=100.0)
    assert "max_position" in r.check(order(qty=0.3), last_price=100.0, position=0.3)
    assert r.check(order(qty=0.3, side="sell"), last_price=100.0, position=0.3) is None  # reduces
    assert "max_open_orders" in r.check(order(), last_price=100.0, open_orders=3)
    assert "bps" in r.check(order(price=102.0), last_price=100.0)
    assert r.check(order(price=100.9), last_price=100.0) is None
    assert "no price" in r.check(order(order_type="market", price=None), last_price=None)
    band_only = RiskEngine({"*": RiskLimits(price_band_bps=10)})
    assert "no last trade" in band_only.check(order(), last_price=None)


def test_most_specific_limits_win():
    r = RiskEngine({"*": RiskLimits(max_order_qty=1.0), "s1": RiskLimits(max_order_qty=2.0),
                    "s1@sim": RiskLimits(max_order_qty=3.0), "*@live": RiskLimits(max_order_qty=0.5)})
    assert r.limits_for("s1", "sim").max_order_qty == 3.0
    assert r.limits_for("s1", "other").max_order_qty == 2.0
    assert r.limits_for("s2", "live").max_order_qty == 0.5
    assert r.limits_for("s2", "other").max_order_qty == 1.0


def test_kill_switch():
    r = RiskEngine()
    assert not r.killed("s1")
    r.kill("s1")
    assert r.killed("s1") and not r.killed("s2")
    r.kill()
    assert r.killed("s2")
    r.release()
    assert not r.killed("s1") and not r.killed("s2")


def test_order_rate_throttles_one_strategy_only():
    now = [0.0]
    r = RiskEngine({"*": RiskLimits(max_orders_per_s=2.0, order_burst=3)}, clock=lambda: now[0])
    outcomes = [r.pre_trade(order(strategy="flood")) for _ in range(5)]
    assert [o is None for o in outcomes] == [True, True, True, False, False]  # the burst, then empty
    assert outcomes[3].code == "rate_limited" and "throttled: flood" in outcomes[3].reason
    assert r.pre_trade(order(strategy="calm")) is None  # a bucket per strategy
    now[0] = 0.5  # half a second refills one token at 2/s
    assert r.pre_trade(order(strategy="flood")) is None
    assert r.pre_trade(order(strategy="flood")) is not None
    now[0] = 100.0  # never more than the burst
    assert [r.pre_trade(order(strategy="flood")) is None for _ in range(4)] == [True, True, True, False]
    assert RiskEngine().pre_trade(order()) is None  # no rate limit configured
