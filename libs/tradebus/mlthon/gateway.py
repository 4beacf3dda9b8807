"""Answers to the information requests (fetch_*) of an MLThon strategy.

:class:`LocalGateway` answers from the strategy's own state as the runner keeps it (positions,
cash derived from the fills, open orders): the backtester's answer, and the fallback live when
no venue connection is configured. Every answer is a deferred callback.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tradebus.mlthon.basics.defs import OrderStatus
from tradebus.mlthon.basics.instrument import Instrument
from tradebus.mlthon.basics.qty import Qty
from tradebus.mlthon.orders import Order

if TYPE_CHECKING:
    from tradebus.mlthon.env import StratEnv


class LocalGateway:
    """fetch_* answered from the strategy's contexts (see the module docstring).

    ``initial_balances``: the wallet before the first fill, by coin ("USDT": 10_000).
    """

    def __init__(self, initial_balances: dict[str, float] | None = None) -> None:
        self.initial_balances = {k.upper(): float(v) for k, v in (initial_balances or {}).items()}

    def account_info(self, env: StratEnv) -> None:
        env.defer("on_account_info", env.exchange, env.strat_name or "")

    def wallet_info(self, env: StratEnv, coin: str) -> None:
        total = self.initial_balances.get(coin, 0.0)
        reserved = 0.0
        host = env._host
        for iid, inst in host.instruments.items():
            ctx = host.context(host.symbol_of(inst))
            position = ctx.position
            if inst.get_base_asset() == coin:
                total += position
                reserved += sum(o.leaves_qty.to_float() for o in env.orders.values()
                                if o.instrument_id == iid and o.is_open and o.side.name == "Sell")
            if inst.get_quote_asset() == coin:
                total += ctx.realized_pnl - ctx.fees - position * ctx.avg_price
                reserved += sum(o.leaves_qty.to_float() * o.price.to_float() for o in env.orders.values()
                                if o.instrument_id == iid and o.is_open and o.side.name == "Buy")
        env.defer("on_wallet_info", env.exchange, coin, Qty(total), Qty(total - reserved))

    def position_info(self, env: StratEnv, inst: Instrument) -> None:
        host = env._host
        env.defer("on_position_info", env.exchange, inst.get_instrument_id(),
                  Qty(host.context(host.symbol_of(inst)).position))

    def funding_info(self, env: StratEnv, inst: Instrument) -> None:
        funding = env._host.funding.get(inst.get_instrument_id())
        if funding is None:
            env.defer("on_unsupported_op", env.exchange, "FetchFundingInfo")
        else:
            env.defer("on_funding_info", env.exchange, inst.get_instrument_id(), funding[0], funding[1])

    def order_status(self, env: StratEnv, inst: Instrument, order: Order) -> None:
        env.defer("on_order_status", env.exchange, inst.get_instrument_id(), order.client_id, order.exchange_id,
                  order.side, order.price, order.leaves_qty,
                  order.status if order.status != OrderStatus.Unset else OrderStatus.New,
                  order.order_type, order.tif, order.exec_instr)

    def orders_info(self, env: StratEnv, inst: Instrument | None) -> None:
        orders = [o for o in env.orders.values()
                  if o.is_open and (inst is None or o.instrument_id == inst.get_instrument_id())]
        env.defer("on_orders_info", env.exchange, orders)
