"""Test venues for the broker: sim_exchange with a funded account of our own."""
from __future__ import annotations

import msgspec

from tradebus.services.sim_exchange.settings import Account, default_config
from tradebus.services.sim_exchange.testing import running_sim


def sim_with_account(api_key: str, secret: str, futures: bool = True):
    """``running_sim`` (paused replay) with an extra account: 100,000 USDT and 1 BTC on spot, and
    100,000 USDT on USD-M unless ``futures`` is False."""
    config = default_config(speed="0")
    mine = Account(api_key=api_key, secret=secret, spot={"USDT": "100000", "BTC": "1"},
                   futures={"USDT": "100000"} if futures else {})
    return running_sim(msgspec.structs.replace(config, accounts=[*config.accounts, mine]))


async def open_perp_position(url: str, keys: dict, qty: float) -> None:
    """Buy ``qty`` BTC/USDT:USDT on the sim's USD-M market over REST (a position held before a broker starts)."""
    import ccxt.async_support as ccxt_async

    from tradebus.exchanges.sim import point_ccxt_at_sim

    rest = point_ccxt_at_sim(ccxt_async.binanceusdm(keys), url)
    try:
        await rest.load_markets()
        await rest.create_order("BTC/USDT:USDT", "market", "buy", qty)
    finally:
        await rest.close()
