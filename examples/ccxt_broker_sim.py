"""SMA(10/30) cross on BTC/USDT with the in-process CcxtBroker, against a running sim_exchange.

    make run            # or: python -m tradebus.services.sim_exchange --port 8765
    python examples/ccxt_broker_sim.py --sim-url http://127.0.0.1:8765 --seconds 60

The broker sends orders whenever it has credentials (the sim's paper keys here); ``--dry-run``
passes ``dry_run=True`` so they are only logged. Against a real venue, API keys come from the
environment only. FLOX's quick start runs unchanged against the sim with
``TRADEBUS_SANDBOX_URL=http://127.0.0.1:8765`` (``sandbox=True`` then means the paper venue).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib

import ccxt.pro as ccxtpro

from tradebus.exchanges.sim import point_ccxt_at_sim
from tradebus.live import CcxtBroker
from tradebus.strategy.examples import SmaCross


class LoggedSma(SmaCross):
    def on_order_update(self, symbol, status, filled, avg_price, order=None):
        print(f"  {symbol} {status} filled={filled} avg={avg_price:.2f}")      # the ccxt symbol string

    def on_initial_position(self, symbol, qty, avg_price):
        print(f"  starting position on {symbol}: qty={qty} avg={avg_price}")


async def main(args) -> None:
    # the sim's paper account; sim_exchange documents these test keys
    exchange = point_ccxt_at_sim(ccxtpro.binance({"apiKey": "sim-key", "secret": "sim-secret"}), args.sim_url)
    async with CcxtBroker("binance", exchange=exchange, dry_run=args.dry_run) as broker:
        btc = await broker.add_symbol("BTC/USDT")
        strategy = broker.add_strategy(LoggedSma([btc], fast=10, slow=30, qty=args.qty))
        run = asyncio.ensure_future(broker.run(streams=("trades", "book", "orders")))
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(run), args.seconds)
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await exchange.close()   # the broker never closes an exchange it was given
        ctx = broker.runner.context(strategy, btc)
        print(f"done: position {ctx.position} BTC; {len(broker.runner.orders)} orders"
              + (f"; dry run, would have sent {len(broker.dry_run_log)}" if args.dry_run else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim-url", default="http://127.0.0.1:8765")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--qty", type=float, default=0.001)
    parser.add_argument("--dry-run", action="store_true")
    asyncio.run(main(parser.parse_args()))
