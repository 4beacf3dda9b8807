"""Both spellings of a venue (``binance:usdm`` and bt_api_py's ``BINANCE___SWAP``) wherever one is
named: configuration, the ``tradebus venues`` command, the in-process broker."""
from __future__ import annotations

from tradebus.cli import main as cli
from tradebus.exchanges import asset_types, load_config
from tradebus.live import CcxtBroker


def test_config_takes_either_spelling_and_keeps_the_canonical_key():
    assert load_config("BINANCE___SWAP") is load_config("binance:usdm")
    assert load_config("bybit___linear").key == "bybit:linear"
    assert asset_types("binance") == {"spot": "binance:spot", "swap": "binance:usdm"}


def test_cli_lists_both_spellings_and_shows_one_venue(capsys):
    assert cli(["venues"]) == 0
    out = capsys.readouterr().out
    assert "binance:usdm" in out and "BINANCE___SWAP" in out and "OKX___SWAP" in out
    assert cli(["venues", "BINANCE___SPOT"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("binance:spot") and "orders_1d: 200000 per 86400s" in out
    assert "x-mbx-order-count-10s" in out
    assert cli(["venues", "NOWHERE___SPOT"]) == 2
    assert "unknown venue adapter" in capsys.readouterr().out


def test_broker_takes_a_venue_name_in_either_spelling():
    broker = CcxtBroker("BINANCE___SWAP")
    assert broker.exchange_id == "binanceusdm" and broker._adapter_keys == ("binance:usdm",)
    broker = CcxtBroker("binance", adapters=("BINANCE___SPOT",))
    assert broker.exchange_id == "binance"
