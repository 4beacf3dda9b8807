"""A demo MLThon strategy that uses every environment call once, driven by its own callbacks.

It is written as an MLThon user would (only the import prefix differs) and is deterministic
given the order callbacks it receives: after ``start_after`` public trades it rests a far limit
buy, modifies it, asks for its status and the open orders, cancels it, buys at market, sells the
position back (close_position), cancels all, and checks the wallet and position. It also sends a few
bad requests (each answered with a reject) and a telegram message. Its params: ``qty`` (decimal
string), ``far_price`` (the resting limit price), ``start_after`` (trades to wait, with the
gateway ReadyToTrade).
"""
from __future__ import annotations

from tradebus.mlthon.api.istrat_env import IStratEnv, MDSub
from tradebus.mlthon.api.istrategy import IStrategy
from tradebus.mlthon.basics.defs import TIF, ExecInstructions, GtwStatus, OrderType, Side


class DemoStrategy(IStrategy):
    def __init__(self, cfg=None):
        cfg = dict(cfg or {})
        self.product = cfg.get("product", "BTC-USDT")
        self.env: IStratEnv | None = None
        self.exchange = None
        self.instrument = None
        self.params: dict = {}
        self.trades = 0
        self.step = "wait"
        self.limit_id = None
        self.commands: list[list[str]] = []
        self.timer_calls = 0
        self.executions = []
        self.gateway_ready = True            # ready is assumed until on_gateway_status says otherwise

    # -- start-up ---------------------------------------------------------------------------

    def on_framework_connected(self, env):
        self.env = env
        env.login("mlthon-demo")

    def on_framework_disconnected(self):
        self.step = "disconnected"

    def on_start(self, params):
        self.step = "wait"

    def on_stop(self, params):
        self.step = "stopped"
        self.env.send_stop_ack()

    def on_instruments(self, instruments):
        for inst in instruments:
            if inst.get_instrument_name() == self.product:
                self.instrument = inst
                self.exchange = inst.get_exchange()
        env = self.env
        env.subscribe_to_market_data(self.exchange, [self.product],
                                     [MDSub.PublicTrades, MDSub.BBO, MDSub.PriceLevelBook, MDSub.LevelBook])
        env.request_execution_connection(self.exchange, [self.product])
        env.add_cmd_hook("Bump", self.on_bump)
        env.setup_timer(1000, self.on_timer)
        env.setup_daily_callback("00:00:00", self.on_daily)

    def on_strat_params_update(self, strat_params):
        self.params = dict(strat_params)

    def on_bump(self, params):
        self.commands.append(list(params))

    def on_timer(self):
        self.timer_calls += 1
        return self.timer_calls < 3

    def on_daily(self):
        return True

    # -- the script -------------------------------------------------------------------------

    def _iid(self):
        return self.instrument.get_instrument_id()

    def _qty(self):
        return str(self.params.get("qty", "0.001"))

    def on_public_trade(self, exchange, instrument_id, side, price, qty, exec_ts, recv_ts):
        self.trades += 1
        if self.step == "wait" and self.gateway_ready and self.trades >= int(self.params.get("start_after", 20)):
            self.step = "resting"
            env = self.env
            env.fetch_account_info(exchange)
            env.fetch_funding_info(exchange, self._iid())
            env.send_new_order(None, exchange, self._iid(), Side.Buy, "not-a-price", self._qty(),
                               ExecInstructions.Unset, OrderType.Limit, TIF.GTC, False)
            env.send_new_order(None, exchange, 999_999, Side.Buy, "100", self._qty(),
                               ExecInstructions.Unset, OrderType.Limit, TIF.GTC, False)
            env.send_new_order(None, exchange, self._iid(), Side.Buy, "100", "-1",
                               ExecInstructions.Unset, OrderType.Limit, TIF.GTC, False)
            env.send_cancel_order(exchange, self._iid(), 424242)
            self.limit_id = env.send_new_order(None, exchange, self._iid(), Side.Buy,
                                               str(self.params.get("far_price", "60000")), self._qty(),
                                               ExecInstructions.PostOnly, OrderType.Limit, TIF.GTC, False)

    def on_new_order_ack(self, exchange, client_id, exchange_id, instrument_id, side, price, qty, leaves_qty,
                         order_type, tif, exec_instr):
        if client_id == self.limit_id and self.step == "resting":
            self.step = "modifying"
            self.env.send_modify_order(exchange, client_id, str(price - 1), None)

    def on_modify_order_ack(self, exchange, client_id, new_price, new_qty, leaves_qty):
        self.step = "cancelling"
        self.env.fetch_order_status(exchange, self._iid(), client_id)
        self.env.fetch_orders_info(exchange, self._iid())
        self.env.send_cancel_order(exchange, self._iid(), client_id)

    def on_order_cancelled(self, exchange, client_id, unsolicited, engine_ts, recv_ts, cancel_code, cancel_reason):
        if client_id == self.limit_id and self.step == "cancelling":
            self.step = "buying"
            self.env.send_new_order(None, exchange, self._iid(), Side.Buy, None, self._qty(),
                                    ExecInstructions.Unset, OrderType.Market, TIF.IOC, False)

    def on_order_execution(self, exchange, client_id, side, price, fill_qty, leaves_qty, exec_ts, recv_ts):
        self.executions.append((client_id, side, fill_qty))
        if leaves_qty.is_zero() and self.step == "buying":
            self.step = "selling"
            self.env.send_new_order(None, exchange, self._iid(), Side.Sell, None, None,
                                    ExecInstructions.Unset, OrderType.Market, TIF.IOC, True)
        elif leaves_qty.is_zero() and self.step == "selling":
            self.step = "done"
            self.env.send_cancel_all(exchange, self._iid())
            self.env.fetch_position_info(exchange, self._iid())
            self.env.fetch_wallet_info(exchange, self.instrument.get_quote_asset())
            self.env.publish_telegram("mlthon demo: round trip done")

    # -- the rest of the interface ----------------------------------------------------------

    def on_gateway_status(self, exchange, status, detail):
        self.gateway_ready = status == GtwStatus.ReadyToTrade

    def on_feed_handler_status(self, exchange, status, detail): pass
    def on_best_bid_level_update(self, exchange, instrument_id, price, qty, recv_ts): pass
    def on_best_ask_level_update(self, exchange, instrument_id, price, qty, recv_ts): pass
    def on_add_price_level(self, exchange, instrument_id, side, price, qty, recv_ts): pass
    def on_modify_price_level(self, exchange, instrument_id, side, price, new_qty, recv_ts): pass
    def on_delete_price_level(self, exchange, instrument_id, side, price, recv_ts): pass
    def on_add_level(self, exchange, instrument_id, side, level_id, price, qty, recv_ts): pass
    def on_modify_level(self, exchange, instrument_id, side, level_id, new_qty, recv_ts): pass
    def on_delete_level(self, exchange, instrument_id, side, level_id, recv_ts): pass
    def on_new_order_reject(self, exchange, client_id, reject_code, reject_reason): pass
    def on_cancel_order_ack(self, exchange, client_id): pass
    def on_cancel_order_reject(self, exchange, nullable_client_id, reject_code, reject_reason): pass
    def on_cancel_all_ack(self, exchange, instrument_id): pass
    def on_cancel_all_reject(self, exchange, instrument_id, reject_code, reject_reason): pass
    def on_modify_order_reject(self, exchange, client_id, reject_code, reject_reason): pass
    def on_order_status(self, exchange, instrument_id, client_ord_id, exch_ord_id, side, price, leaves_qty,
                        status, order_type, tif, exec_instr): pass
    def on_orders_info(self, exchange, orders): pass
    def on_wallet_info(self, exchange, coin, total_balance, available_balance): pass
    def on_position_info(self, exchange, instrument_id, position): pass
    def on_funding_info(self, exchange, instrument_id, funding_rate, next_funding_ts): pass
    def on_account_info(self, exchange, user_id): pass
    def on_rate_limit_info(self, exchange, rate_limit, rate_remaining, reset_ts): pass
    def on_request_reject(self, exchange, reject_code, detail, rejected_rqst_type): pass
    def on_unsupported_op(self, exchange, unsupported_msg_type): pass
