"""CcxtBroker fills carry the venue's executions: trade id, fee (valued in the quote currency),
maker flag; the strategy's fees add up to the venue's commission."""
from __future__ import annotations

import asyncio

import ccxt.pro as ccxtpro
import pytest
import pytest_asyncio

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.live import CcxtBroker
from tradebus.services.sim_exchange.testing import until
from tradebus.strategy import Strategy

from .venue import sim_with_account

KEYS = {"apiKey": "fee-key", "secret": "fee-secret", "enableRateLimit": False}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sim():
    async with sim_with_account("fee-key", "fee-secret") as venue:
        yield venue


class BuyThenSell(Strategy):
    def __init__(self, symbols):
        super().__init__(symbols)
        self.fills, self.trades = [], 0

    def on_trade(self, ctx, trade):
        self.trades += 1
        if self.trades == 1:
            self.market_buy(0.01)
            self.market_sell(0.004)

    def on_fill(self, fill):
        self.fills.append(fill)


async def test_broker_fills_carry_trade_ids_and_quote_valued_fees(sim):
    exchange = point_ccxt_at_sim(ccxtpro.binance(KEYS), sim.url)
    async with CcxtBroker("binance", exchange=exchange, live=True, retry_initial_delay=0.05) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        probe = broker.add_strategy(BuyThenSell([btc]))
        task = asyncio.ensure_future(broker.run(streams=("trades", "orders")))
        await until(lambda: sum(f.qty for f in probe.fills) >= 0.014 - 1e-9, step=lambda: sim.step(3))
        venue = [f for f in sim.account("fee-key").fills["spot"]]
        assert sorted(str(v.trade_id) for v in venue) == sorted(f.trade_id for f in probe.fills)
        by_id = {str(v.trade_id): v for v in venue}
        for fill in probe.fills:
            v = by_id[fill.trade_id]
            quote_fee = v.commission * v.price if v.commission_asset == "BTC" else v.commission
            assert fill.fee == pytest.approx(float(quote_fee)) and fill.fee > 0
            assert fill.is_maker is v.is_maker is False
        ctx = broker.runner.context(probe, btc)
        assert ctx.fees == pytest.approx(sum(f.fee for f in probe.fills))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await exchange.close()
