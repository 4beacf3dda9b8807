"""MLThon's module layout, enums, Price/Qty and Instrument."""
import importlib

import pytest

from tradebus.mlthon.basics.defs import Exchange, GtwRejectCode, Side
from tradebus.mlthon.basics.instrument import Instrument
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty


@pytest.mark.parametrize("module, names", [
    ("api.istrategy", ["IStrategy"]),
    ("api.istrat_env", ["IStratEnv", "MDSub"]),
    ("basics.defs", ["Exchange", "Side", "OrderType", "TIF", "ExecInstructions", "GtwRejectCode", "CancelCode",
                     "GtwStatus", "FeedHandlerStatus", "OrderStatus"]),
    ("basics.price", ["Price"]),
    ("basics.qty", ["Qty"]),
    ("basics.instrument", ["Instrument"]),
])
def test_mlthon_module_layout(module, names):
    mod = importlib.import_module(f"tradebus.mlthon.{module}")
    for name in names:
        assert hasattr(mod, name), f"tradebus.mlthon.{module} has no {name}"


def test_price_is_exact_and_keeps_its_digits():
    assert Price("0.1") + Price("0.2") == Price("0.3")
    assert (Price("0.1") + Price("0.2")).to_str() == "0.3"
    assert Price("9226.50000000").to_str() == "9226.50000000"
    assert Price("9226.5") == Price("9226.50000000")
    assert Price("1.5").to_float() == 1.5
    assert Price(0.1).to_str() == "0.1"                      # floats by their shortest repr
    assert Qty("2") * Qty("0.5") == Qty("1")
    assert Qty("1") / Qty("4") == Qty("0.25")
    assert Price("10") - 1 == Price("9")
    assert -Qty("3") < Qty("0") < Qty("1e-8")
    assert sorted([Price("2"), Price("1.5"), Price("10")]) == [Price("1.5"), Price("2"), Price("10")]
    assert hash(Price("1.0")) == hash(Price("1"))
    assert repr(Qty("0.001")) == "Qty('0.001')"


@pytest.mark.parametrize("bad", ["abc", "", "nan", "inf", None, True, [1]])
def test_price_refuses_non_numbers(bad):
    with pytest.raises(ValueError):
        Price(bad)


def test_enums_parse_by_name_and_value():
    assert Side.parse("buy") is Side.Buy
    assert Side.parse(Side.Sell) is Side.Sell
    assert GtwRejectCode(1000) is GtwRejectCode.GtwNotReady
    assert Exchange.from_venue("binance:spot") is Exchange.Binance
    assert Exchange.Binance.venue == "binance"
    with pytest.raises(ValueError, match="not a Side"):
        Side.parse("up")


def test_instrument_getters():
    inst = Instrument(Exchange.Binance, 7, "BTC-USDT", "BTC/USDT", tick_size="0.01", lot_size="0.00001",
                      min_qty="0.0001", base="BTC", quote="USDT")
    assert inst.get_instrument_name() == "BTC-USDT"
    assert inst.get_instrument_id() == 7
    assert inst.get_tick_size() == Price("0.01")
    assert inst.get_lot_size() == Qty("0.00001")
    assert inst.get_min_qty() == Qty("0.0001")
    assert inst.get_exchange() is Exchange.Binance
