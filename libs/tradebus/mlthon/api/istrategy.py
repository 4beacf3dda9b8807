"""IStrategy: the callbacks a trading environment invokes on a strategy.

Start-up order: ``__init__``, ``on_framework_connected(env)`` (where the strategy must call
``env.login``), ``on_start``, ``on_instruments``, ``on_strat_params_update``; gateway and feed
statuses only on transitions away from (and back to) ready. Callbacks must not block. Prices and
quantities arrive as :class:`Price` / :class:`Qty`. ``on_instruments`` and
``on_strat_params_update`` have default implementations; every other callback is abstract, as in
MLThon.
"""
from __future__ import annotations

import abc

CALLBACKS = (
    "on_framework_connected",
    "on_framework_disconnected",
    "on_start",
    "on_stop",
    "on_instruments",
    "on_strat_params_update",
    "on_gateway_status",
    "on_feed_handler_status",
    "on_public_trade",
    "on_best_bid_level_update",
    "on_best_ask_level_update",
    "on_add_price_level",
    "on_modify_price_level",
    "on_delete_price_level",
    "on_add_level",
    "on_modify_level",
    "on_delete_level",
    "on_new_order_ack",
    "on_new_order_reject",
    "on_cancel_order_ack",
    "on_cancel_order_reject",
    "on_cancel_all_ack",
    "on_cancel_all_reject",
    "on_modify_order_ack",
    "on_modify_order_reject",
    "on_order_cancelled",
    "on_order_execution",
    "on_order_status",
    "on_orders_info",
    "on_wallet_info",
    "on_position_info",
    "on_funding_info",
    "on_account_info",
    "on_rate_limit_info",
    "on_request_reject",
    "on_unsupported_op",
)
"""Every IStrategy callback name, in the order of the interface."""


class IStrategy(abc.ABC):
    """The interface of a strategy run by a trading environment."""

    @abc.abstractmethod
    def on_framework_connected(self, env): ...

    @abc.abstractmethod
    def on_framework_disconnected(self): ...

    @abc.abstractmethod
    def on_start(self, params): ...

    @abc.abstractmethod
    def on_stop(self, params): ...

    def on_instruments(self, instruments):
        return None

    def on_strat_params_update(self, strat_params):
        return None

    @abc.abstractmethod
    def on_gateway_status(self, exchange, status, detail): ...

    @abc.abstractmethod
    def on_feed_handler_status(self, exchange, status, detail): ...

    @abc.abstractmethod
    def on_public_trade(self, exchange, instrument_id, side, price, qty, exec_ts, recv_ts): ...

    @abc.abstractmethod
    def on_best_bid_level_update(self, exchange, instrument_id, price, qty, recv_ts): ...

    @abc.abstractmethod
    def on_best_ask_level_update(self, exchange, instrument_id, price, qty, recv_ts): ...

    @abc.abstractmethod
    def on_add_price_level(self, exchange, instrument_id, side, price, qty, recv_ts): ...

    @abc.abstractmethod
    def on_modify_price_level(self, exchange, instrument_id, side, price, new_qty, recv_ts): ...

    @abc.abstractmethod
    def on_delete_price_level(self, exchange, instrument_id, side, price, recv_ts): ...

    @abc.abstractmethod
    def on_add_level(self, exchange, instrument_id, side, level_id, price, qty, recv_ts): ...

    @abc.abstractmethod
    def on_modify_level(self, exchange, instrument_id, side, level_id, new_qty, recv_ts): ...

    @abc.abstractmethod
    def on_delete_level(self, exchange, instrument_id, side, level_id, recv_ts): ...

    @abc.abstractmethod
    def on_new_order_ack(self, exchange, client_id, exchange_id, instrument_id, side, price, qty, leaves_qty,
                         order_type, tif, exec_instr): ...

    @abc.abstractmethod
    def on_new_order_reject(self, exchange, client_id, reject_code, reject_reason): ...

    @abc.abstractmethod
    def on_cancel_order_ack(self, exchange, client_id): ...

    @abc.abstractmethod
    def on_cancel_order_reject(self, exchange, nullable_client_id, reject_code, reject_reason): ...

    @abc.abstractmethod
    def on_cancel_all_ack(self, exchange, instrument_id): ...

    @abc.abstractmethod
    def on_cancel_all_reject(self, exchange, instrument_id, reject_code, reject_reason): ...

    @abc.abstractmethod
    def on_modify_order_ack(self, exchange, client_id, new_price, new_qty, leaves_qty): ...

    @abc.abstractmethod
    def on_modify_order_reject(self, exchange, client_id, reject_code, reject_reason): ...

    @abc.abstractmethod
    def on_order_cancelled(self, exchange, client_id, unsolicited, engine_ts, recv_ts, cancel_code, cancel_reason): ...

    @abc.abstractmethod
    def on_order_execution(self, exchange, client_id, side, price, fill_qty, leaves_qty, exec_ts, recv_ts): ...

    @abc.abstractmethod
    def on_order_status(self, exchange, instrument_id, client_ord_id, exch_ord_id, side, price, leaves_qty, status,
                        order_type, tif, exec_instr): ...

    @abc.abstractmethod
    def on_orders_info(self, exchange, orders): ...

    @abc.abstractmethod
    def on_wallet_info(self, exchange, coin, total_balance, available_balance): ...

    @abc.abstractmethod
    def on_position_info(self, exchange, instrument_id, position): ...

    @abc.abstractmethod
    def on_funding_info(self, exchange, instrument_id, funding_rate, next_funding_ts): ...

    @abc.abstractmethod
    def on_account_info(self, exchange, user_id): ...

    @abc.abstractmethod
    def on_rate_limit_info(self, exchange, rate_limit, rate_remaining, reset_ts): ...

    @abc.abstractmethod
    def on_request_reject(self, exchange, reject_code, detail, rejected_rqst_type): ...

    @abc.abstractmethod
    def on_unsupported_op(self, exchange, unsupported_msg_type): ...
