"""The fill ledger: fees in the quote currency whatever currency the venue charged, exactly-once
fills from trade records and cumulative order views, and positions net of base-asset fees."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.execution import CUMULATIVE, FillLedger, fill_position_change, fill_quote_fee, new_status, position_change
from tradebus.proto import Fill, NewOrder, OrderStatus

quote_fee = fill_quote_fee


def fill(symbol: str, fee: float, currency: str, price: float = 50_000.0, side: str = "buy") -> Fill:
    return Fill(venue="binance", strategy="s", symbol=symbol, client_order_id="c", exchange_order_id="1",
                trade_id="1", side=side, price=price, qty=0.01, leaves_qty=0.0, cum_qty=0.01, fee=fee,
                fee_currency=currency, ts_init=1)


def test_quote_fee_values_base_asset_fees_at_the_fill_price():
    assert quote_fee(fill("BTC/USDT", 0.00001, "BTC")) == pytest.approx(0.5)  # Binance spot buy
    assert quote_fee(fill("BTC/USDT", 0.5, "USDT")) == pytest.approx(0.5)
    assert quote_fee(fill("BTC/USDT:USDT", 0.25, "USDT")) == pytest.approx(0.25)
    assert quote_fee(fill("BTC/USDT", -0.1, "USDT")) == pytest.approx(-0.1)  # rebate
    assert quote_fee(fill("BTC/USDT", 0.001, "BNB")) == 0.0  # no price for it here
    assert quote_fee(fill("BTC/USDT", 0.0, "")) == 0.0


def test_quote_fee_of_an_inverse_contract_is_in_its_settle_currency():
    assert quote_fee(fill("BTC/USD:BTC", 0.00001, "BTC")) == pytest.approx(0.00001)
    assert quote_fee(fill("BTC/USD:BTC-240927", 0.00001, "BTC")) == pytest.approx(0.00001)


def test_a_spot_fee_in_the_base_asset_comes_out_of_the_position():
    assert fill_position_change(fill("BTC/USDT", 0.00001, "BTC")) == pytest.approx(0.01 - 0.00001)
    assert fill_position_change(fill("BTC/USDT", 0.00001, "BTC", side="sell")) == pytest.approx(-0.01 - 0.00001)
    assert fill_position_change(fill("BTC/USDT", 0.5, "USDT")) == pytest.approx(0.01)
    assert fill_position_change(fill("BTC/USDT", 0.5, "USDT", side="sell")) == pytest.approx(-0.01)
    # derivatives hold contracts: a fee never changes the position
    assert fill_position_change(fill("BTC/USD:BTC", 0.00001, "BTC")) == pytest.approx(0.01)
    assert fill_position_change(fill("BTC/USDT:USDT", 0.25, "USDT")) == pytest.approx(0.01)


@given(qty=st.floats(1e-6, 10), price=st.floats(1, 1e6), rate=st.floats(0, 0.01))
def test_a_base_fee_buy_costs_the_same_cash_as_its_quote_value(qty, price, rate):
    """Holding qty - fee bought at price, with the fee valued at price, is the quote paid."""
    fee = qty * rate
    held = position_change("BTC/USDT", "buy", qty, fee, "BTC")
    assert held * price + quote_fee(fill("BTC/USDT", fee, "BTC", price)) == pytest.approx(qty * price)


def order(coid="c1", qty=1.0, symbol="BTC/USDT", side="buy") -> NewOrder:
    return NewOrder(client_order_id=coid, strategy="s", venue="v", symbol=symbol, side=side, order_type="limit",
                    qty=qty, price=100.0, ts_init=1)


def trade(tid, qty, price=100.0, fee=0.0, currency="BTC", maker=True):
    return {"id": tid, "order": "9", "amount": qty, "price": price, "timestamp": 5,
            "takerOrMaker": "maker" if maker else "taker", "fee": {"cost": fee, "currency": currency}}


def test_each_trade_counts_once_with_its_fee():
    ledger = FillLedger("v")
    status = new_status(order(), exchange_order_id="9")
    status, first = ledger.trade(status, trade("t1", 0.4, 100.0, 0.0004))
    status, again = ledger.trade(status, trade("t1", 0.4, 100.0, 0.0004))
    status, second = ledger.trade(status, trade("t2", 0.6, 110.0, 0.0006))
    assert again is None
    assert (first.trade_id, first.qty, first.fee, first.fee_currency) == ("t1", 0.4, 0.0004, "BTC")
    assert first.liquidity == "maker" and first.ts_event == 5_000_000 and first.cum_qty == 0.4
    assert (second.qty, second.cum_qty, second.leaves_qty) == (0.6, 1.0, 0.0)
    assert status.filled_qty == 1.0 and status.avg_price == pytest.approx(106.0)
    assert status.trade_ids == ("t1", "t2") and status.fees == {"BTC": pytest.approx(0.001)}
    assert ledger.position("s", "BTC/USDT") == pytest.approx(0.999)


def test_cumulative_views_count_only_the_increase():
    ledger = FillLedger("v")
    status = new_status(order(), exchange_order_id="9")
    status, f1 = ledger.cumulative(status, {"filled": 0.25, "cost": 25.0, "timestamp": 1})
    status, same = ledger.cumulative(status, {"filled": 0.25, "cost": 25.0})
    status, f2 = ledger.cumulative(status, {"filled": 1.0, "cost": 107.5})
    assert same is None
    assert (f1.qty, f1.price, f1.trade_id) == (0.25, 100.0, "9-0.25")
    assert (f2.qty, f2.price, f2.trade_id) == (0.75, pytest.approx(110.0), "9-1")
    assert status.avg_price == pytest.approx(107.5) and ledger.position("s", "BTC/USDT") == 1.0


def test_a_view_counting_more_than_its_trades_switches_the_order_to_cumulative():
    ledger = FillLedger("v")
    status = new_status(order(), exchange_order_id="9")
    status, fills = ledger.view(status, {"filled": 0.4}, [trade("t1", 0.4, fee=0.0004)])
    assert [f.trade_id for f in fills] == ["t1"]
    status, fills = ledger.view(status, {"filled": 1.0, "cost": 100.0}, [])
    assert [f.qty for f in fills] == [pytest.approx(0.6)] and CUMULATIVE in status.trade_ids
    status, fills = ledger.view(status, {"filled": 1.0}, [trade("t2", 0.6)])  # late record: already counted
    assert fills == [] and status.filled_qty == pytest.approx(1.0)
    assert ledger.position("s", "BTC/USDT") == pytest.approx(0.9996)


def test_restored_positions_equal_the_positions_the_fills_made():
    ledger = FillLedger("v")
    buy = new_status(order("b"), exchange_order_id="1")
    buy, _ = ledger.trade(buy, trade("t1", 1.0, fee=0.001))
    sell = new_status(order("s", qty=0.5, side="sell"), exchange_order_id="2")
    sell, _ = ledger.trade(sell, trade("t2", 0.5, fee=0.05, currency="USDT"))
    restored = FillLedger("v")
    for status in (buy, sell):
        restored.restore(OrderStatus(**{f: getattr(status, f) for f in status.__struct_fields__}))
    assert restored.positions == ledger.positions
    assert ledger.position("s", "BTC/USDT") == pytest.approx(0.499)
