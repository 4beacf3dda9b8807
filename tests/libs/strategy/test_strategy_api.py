"""Symbols, order methods and their validation: a bad order raises before anything is sent."""
from __future__ import annotations

import math

import pytest

from tradebus.strategy import Runner, Signal, Strategy, SymbolRegistry, unified_symbol


def test_symbols_are_ints_scoped_to_their_registry():
    reg = SymbolRegistry()
    btc = reg.add_symbol("binance", "BTCUSDT", tick_size=0.01, lot_size=0.00001)
    eth = reg.add_symbol("binance", "ETHUSDT", tick_size=0.01)
    assert (btc.id, btc.name, btc.exchange, btc.tick_size, btc.lot_size) == (1, "BTCUSDT", "binance", 0.01, 0.00001)
    assert int(btc) == 1 and int(eth) == 2 and btc + 1 == 2 and {btc: "x"}[1] == "x"
    assert [1, 2, 3][btc] == 2                      # usable as an index
    assert btc.unified == "BTC/USDT" and str(btc) == "BTCUSDT"
    assert reg.add_symbol("binance", "BTCUSDT", tick_size=0.01, lot_size=0.00001) is btc
    with pytest.raises(ValueError, match="already registered"):
        reg.add_symbol("binance", "BTCUSDT", tick_size=0.1)
    assert reg.get(1) is btc and reg.get("btc/usdt") is btc and reg.get(btc) is btc
    other = SymbolRegistry().add_symbol("binance", "BTCUSDT")
    assert other == btc                              # both are symbol 1 ...
    with pytest.raises(KeyError, match="another SymbolRegistry"):
        reg.get(other)                               # ... of different registries
    for bad in ({"exchange": "", "name": "X"}, {"exchange": "b", "name": ""}):
        with pytest.raises(ValueError):
            reg.add_symbol(**bad)
    with pytest.raises(ValueError, match="tick_size"):
        reg.add_symbol("b", "X", tick_size=-1)
    with pytest.raises(ValueError, match="tick_size"):
        reg.add_symbol("b", "X", tick_size=math.nan)


@pytest.mark.parametrize("name, unified", [("BTCUSDT", "BTC/USDT"), ("btc-usdt", "BTC/USDT"),
                                            ("ETHBTC", "ETH/BTC"), ("BTC/USDT:USDT", "BTC/USDT:USDT")])
def test_unified_symbol(name, unified):
    assert unified_symbol(name) == unified


class Probe(Strategy):
    pass


@pytest.fixture
def live():
    reg = SymbolRegistry()
    btc = reg.add_symbol("sim", "BTC/USDT", tick_size=0.01, lot_size=0.001)
    eth = reg.add_symbol("sim", "ETH/USDT", tick_size=0.05)
    signals: list[Signal] = []
    runner = Runner(reg, signals.append)
    strategy = runner.add_strategy(Probe([btc, eth]))
    runner.start()
    return strategy, signals, btc, eth, runner


def test_every_order_method_becomes_a_signal(live):
    s, signals, btc, eth, runner = live
    ids = [
        s.market_buy(0.5),
        s.market_sell(0.25, eth, reduce_only=True),
        s.limit_buy(100.01, 1.0, time_in_force="IOC"),
        s.limit_sell(101.0, 1.0, post_only=True),
        s.stop_market("sell", 99.0, 1.0),
        s.stop_limit("buy", 105.0, 105.5, 1.0, symbol=btc),
        s.take_profit_market("sell", 120.0, 1.0),
        s.take_profit_limit("sell", 120.0, 119.5, 1.0),
        s.trailing_stop("sell", 2.5, 1.0, activation=110.0),
        s.trailing_stop_percent("buy", 50, 1.0),
    ]
    assert ids == list(range(1, 11))
    got = [(g.order_type, g.side, g.quantity, g.price, g.trigger, g.offset, g.symbol, g.flags, g.time_in_force)
           for g in signals]
    assert got == [
        ("market", "buy", 0.5, 0.0, 0.0, 0.0, btc, 0, "GTC"),
        ("market", "sell", 0.25, 0.0, 0.0, 0.0, eth, 2, "GTC"),
        ("limit", "buy", 1.0, 100.01, 0.0, 0.0, btc, 0, "IOC"),
        ("limit", "sell", 1.0, 101.0, 0.0, 0.0, btc, 1, "GTC"),
        ("stop_market", "sell", 1.0, 0.0, 99.0, 0.0, btc, 0, "GTC"),
        ("stop_limit", "buy", 1.0, 105.5, 105.0, 0.0, btc, 0, "GTC"),
        ("take_profit_market", "sell", 1.0, 0.0, 120.0, 0.0, btc, 0, "GTC"),
        ("take_profit_limit", "sell", 1.0, 119.5, 120.0, 0.0, btc, 0, "GTC"),
        ("trailing_stop", "sell", 1.0, 0.0, 110.0, 2.5, btc, 0, "GTC"),
        ("trailing_stop_percent", "buy", 1.0, 0.0, 0.0, 50.0, btc, 0, "GTC"),
    ]
    assert [g.order_id for g in signals] == ids and all(g.strategy is s for g in signals)
    signals.clear()
    assert s.cancel(3) == 3 and s.modify(4, price=100.5) == 4 and s.cancel_all() is None
    s.cancel_all(eth)
    assert [(g.order_type, g.order_id, g.price, g.symbol) for g in signals] == [
        ("cancel", 3, 0.0, None), ("modify", 4, 100.5, None), ("cancel_all", 0, 0.0, None),
        ("cancel_all", 0, 0.0, eth)]


def test_close_position_follows_the_filled_position(live):
    s, signals, btc, eth, runner = live
    assert s.close_position() is None and signals == []          # flat: nothing to send
    oid = s.market_buy(0.5)
    assert s.close_position() is None                             # not filled yet: still flat
    runner.on_fill(oid, 100.0, 0.2)
    cid = s.close_position()
    assert (signals[-1].order_type, signals[-1].side, signals[-1].quantity, signals[-1].reduce_only) == \
        ("close_position", "sell", 0.2, True)
    assert cid == oid + 1


@pytest.mark.parametrize("call, message", [
    (lambda s, btc, eth: s.market_buy(0), "quantity must be a finite number > 0"),
    (lambda s, btc, eth: s.market_buy(-1.0), "quantity must be a finite number > 0"),
    (lambda s, btc, eth: s.market_buy(math.inf), "quantity must be a finite number > 0"),
    (lambda s, btc, eth: s.market_buy("1"), "quantity must be a number"),
    (lambda s, btc, eth: s.market_buy(True), "quantity must be a number"),
    (lambda s, btc, eth: s.market_buy(0.0005), "not a multiple of BTC/USDT's lot size"),
    (lambda s, btc, eth: s.limit_buy(100.005, 1.0), "price 100.005 is not a multiple of BTC/USDT's tick size 0.01"),
    (lambda s, btc, eth: s.limit_buy(100.02, 1.0, eth), "not a multiple of ETH/USDT's tick size 0.05"),
    (lambda s, btc, eth: s.limit_buy(0.0, 1.0), "price must be a finite number > 0"),
    (lambda s, btc, eth: s.stop_market("sell", 99.001, 1.0), "trigger price 99.001 is not a multiple"),
    (lambda s, btc, eth: s.stop_market("up", 99.0, 1.0), "side must be 'buy' or 'sell'"),
    (lambda s, btc, eth: s.limit_buy(100.0, 1.0, time_in_force="DAY"), "time_in_force must be one of"),
    (lambda s, btc, eth: s.limit_buy(100.0, 1.0, time_in_force="IOC", post_only=True), "post_only needs a GTC limit"),
    (lambda s, btc, eth: s.market_buy(1.0, "DOGE/USDT"), "unknown symbol 'DOGE/USDT'"),
    (lambda s, btc, eth: s.market_buy(1.0, 7), "unknown symbol 7"),
    (lambda s, btc, eth: s.market_buy(1.0, SymbolRegistry().add_symbol("sim", "BTC/USDT")), "another SymbolRegistry"),
    (lambda s, btc, eth: s.cancel(99), "unknown order id 99"),
    (lambda s, btc, eth: s.cancel("1"), "order id must be an int"),
    (lambda s, btc, eth: s.modify(1), "modify needs a new price and/or qty"),
    (lambda s, btc, eth: s.trailing_stop_percent("sell", 10_000, 1.0), "trailing bps must be below 10000"),
])
def test_invalid_orders_raise_before_anything_is_sent(live, call, message):
    s, signals, btc, eth, runner = live
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        call(s, btc, eth)
    assert signals == []


def test_prices_are_snapped_to_the_tick_grid(live):
    s, signals, btc, eth, runner = live
    s.limit_buy(0.1 + 0.2, 0.001 * 3)            # 0.30000000000000004, 0.003 in floats
    assert (signals[0].price, signals[0].quantity) == (0.3, 0.003)


def test_a_strategy_without_symbols_or_runner_says_so():
    with pytest.raises(RuntimeError, match="not attached to a runner"):
        Probe([SymbolRegistry().add_symbol("sim", "X/Y")]).market_buy(1.0)
    reg = SymbolRegistry()
    with pytest.raises(ValueError, match="no symbols"):
        Runner(reg, print).add_strategy(Probe())
    other = SymbolRegistry().add_symbol("sim", "BTC/USDT")
    reg.add_symbol("sim", "BTC/USDT")
    with pytest.raises(ValueError, match="not in this runner's registry"):
        Runner(reg, print).add_strategy(Probe([other]))


def test_timer_validation():
    s = Probe([SymbolRegistry().add_symbol("sim", "X/Y")])
    with pytest.raises(ValueError, match="timer interval"):
        s.set_timer("t", 0)
    with pytest.raises(ValueError, match="HH:MM"):
        s.set_daily_timer("d", "25:00")
    with pytest.raises(ValueError, match="HH:MM"):
        s.set_daily_timer("d", "noon")
