"""The MLThon strategy environment: IStratEnv / IStrategy strategies on tradebus.

A strategy written for ML Tech's MLThon API runs here after changing only the ``mlthon`` prefix
of its imports::

    from tradebus.mlthon.api.istrategy import IStrategy
    from tradebus.mlthon.api.istrat_env import IStratEnv, MDSub
    from tradebus.mlthon.basics.defs import Exchange, Side, OrderType, TIF, ExecInstructions
    from tradebus.mlthon.basics.price import Price
    from tradebus.mlthon.basics.qty import Qty

It runs in the event-driven backtester (:func:`backtest`) and live in strategy_runner
(``kind: mlthon`` in its settings), with the same callbacks in both: the environment is an
adapter over tradebus's Strategy API (:class:`MLThonStrategy`), so its orders take the one order
path every tradebus strategy takes. See docs/mlthon.md.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tradebus.mlthon.api.istrat_env import IStratEnv, MDSub
from tradebus.mlthon.api.istrategy import IStrategy
from tradebus.mlthon.basics.defs import Exchange
from tradebus.mlthon.env import StratEnv
from tradebus.mlthon.gateway import LocalGateway
from tradebus.mlthon.host import MLThonStrategy, instrument_name
from tradebus.mlthon.notify import LogNotifier, TelegramNotifier, notifier_from_env

__all__ = [
    "IStrategy", "IStratEnv", "MDSub", "StratEnv", "MLThonStrategy", "LocalGateway", "LogNotifier",
    "TelegramNotifier", "notifier_from_env", "backtest", "instrument_name",
]


def backtest(strategy: IStrategy, data, *, exchange=Exchange.Binance, products=("BTC-USDT",),
             params: dict | None = None, initial_balances: dict[str, float] | None = None,
             fee_rate: float = 0.001, maker_fee_rate: float | None = None, latency_ns: int = 0,
             tick_size: float = 0.01, lot_size: float = 0.00001, callback_bound_s: float | None = 1.0,
             log_market_data: bool = False, notifier=None) -> dict[str, Any]:
    """Run one IStrategy instance in the event-driven backtester over recorded files.

    ``data``: a trades (or klines) CSV path (Binance layout or tradebus's own, gzip accepted), or
    a dict with ``depth_snapshot`` and ``depth_updates`` (Binance depth files) and optionally
    ``trades``. ``products``: MLThon product names ("BTC-USDT"); ``initial_balances``: the
    wallet at the start by coin (default 10,000 of the first product's quote coin).

    Returns ``{"summary": <the backtester's statistics>, "log": <every callback delivered, as
    (name, *arguments)>, "strategy": <the MLThonStrategy>}``.
    """
    from tradebus.strategy import BacktestRunner, SymbolRegistry

    exch = Exchange.parse(exchange)
    if isinstance(products, str):
        products = [products]
    if not products:
        raise ValueError("backtest needs at least one product")
    registry = SymbolRegistry()
    symbols = [registry.add_symbol(exch.venue, p.replace("-", "").replace("/", "").upper(),
                                   tick_size=tick_size, lot_size=lot_size) for p in products]
    quote = products[0].replace("/", "-").split("-")[-1].upper()
    balances = initial_balances if initial_balances is not None else {quote: 10_000.0}
    capital = float(balances.get(quote, 0.0))
    host = MLThonStrategy(strategy, symbols, exchange=exch, params=params, callback_bound_s=callback_bound_s,
                          gateway=LocalGateway(balances), log_market_data=log_market_data,
                          notifier=notifier if notifier is not None else LogNotifier(type(strategy).__name__))
    runner = BacktestRunner(registry, fee_rate=fee_rate, maker_fee_rate=maker_fee_rate,
                            initial_capital=capital, latency_ns=latency_ns)
    runner.set_strategy(host)
    if isinstance(data, (str, os.PathLike)):
        summary = runner.run_csv(Path(data), symbol=symbols[0])
    elif isinstance(data, dict):
        unknown = set(data) - {"depth_snapshot", "depth_updates", "trades"}
        if unknown or "depth_snapshot" not in data:
            raise ValueError(f"data needs depth_snapshot and depth_updates (and optionally trades); got {sorted(data)}")
        summary = runner.run_book(data["depth_snapshot"], data.get("depth_updates"), data.get("trades"),
                                  symbol=symbols[0])
    else:
        raise TypeError(f"data must be a file path or a dict of depth files, got {type(data).__name__}")
    return {"summary": summary, "log": list(host.log), "strategy": host}
