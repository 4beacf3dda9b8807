"""IStratEnv: the requests a strategy sends to its trading environment.

Every request is non-blocking; its answer arrives later as an IStrategy callback. tradebus's
implementation is :class:`tradebus.mlthon.env.StratEnv`.
"""
from __future__ import annotations

import abc

from tradebus.mlthon.basics.mlt_enum import MltEnum


class MDSub(MltEnum):
    """Market-data subscription kinds."""

    OrderBook = 0
    LevelBook = 1
    PriceLevelBook = 2
    BBO = 3
    PublicTrades = 4


class IStratEnv(abc.ABC):
    """The trading environment as a strategy sees it."""

    @abc.abstractmethod
    def login(self, strat_name): ...

    @abc.abstractmethod
    def subscribe_to_market_data(self, exchange, products, subscriptions): ...

    @abc.abstractmethod
    def request_execution_connection(self, exchange, products): ...

    @abc.abstractmethod
    def send_new_order(self, client_id, exchange, instrument_id, side, price, qty, exec_instr, ord_type,
                       time_in_force, close_position, symbol=None): ...

    @abc.abstractmethod
    def send_cancel_order(self, exchange, instrument_id, client_ord_id): ...

    @abc.abstractmethod
    def send_cancel_all(self, exchange, instrument_id): ...

    @abc.abstractmethod
    def send_modify_order(self, exchange, client_ord_id, new_price, new_qty): ...

    @abc.abstractmethod
    def fetch_account_info(self, exchange): ...

    @abc.abstractmethod
    def fetch_wallet_info(self, exchange, coin): ...

    @abc.abstractmethod
    def fetch_position_info(self, exchange, instrument_id): ...

    @abc.abstractmethod
    def fetch_funding_info(self, exchange, instrument_id): ...

    @abc.abstractmethod
    def fetch_order_status(self, exchange, instrument_id, client_ord_id): ...

    @abc.abstractmethod
    def fetch_orders_info(self, exchange, instrument_id=None): ...

    @abc.abstractmethod
    def setup_timer(self, duration_ms, callback_func): ...

    @abc.abstractmethod
    def setup_daily_callback(self, hh_mm_ss, callback_func): ...

    @abc.abstractmethod
    def add_cmd_hook(self, cmd_name_str, callback_func): ...

    @abc.abstractmethod
    def publish_telegram(self, msg): ...

    @abc.abstractmethod
    def send_stop_ack(self): ...
