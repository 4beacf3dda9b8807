"""One valid instance of every concrete wire type, with optional fields set where they exist."""
from __future__ import annotations

import msgspec

from tradebus import proto as p

TS = 1_723_161_240_123_456_789


def concrete_types() -> set[type]:
    """Every Event/Request subclass, except the private intermediate bases (``_OrderEvent``...)."""
    found: set[type] = set()
    stack = [p.Event, p.Request]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if not sub.__name__.startswith("_") and sub.__module__.startswith("tradebus.proto"):
                found.add(sub)
    return found


_trades = [
    p.Trade(venue="binance", symbol="BTC/USDT", price=60_000.5, qty=0.01, side=p.Side.BUY,
            trade_id="t1", ts_event=TS, ts_recv=TS + 1),
    p.Trade(venue="binance", symbol="BTC/USDT", price=60_000.0, qty=0.25, side=p.Side.SELL,
            trade_id="t2", ts_event=TS + 10, ts_recv=TS + 11),
]
_job = p.BacktestJob(
    job_id="job-1", study_id="sweep1", dataset_id="binance_BTCUSDT_1m", strategy="sma",
    params={"fast": 10, "slow": 30.5, "mode": "long", "short": False}, seed=7,
    settings=p.EngineSettings(mode=p.EngineMode.EVENT, taker_fee_bps=4.0, latency_ns=1_000_000,
                              maker_fee_bps=-1.0, response_latency_ns=500_000),
    ts_init=TS,
    rule={"entry_long": {"cross_above": [{"sma": ["close", {"param": "fast"}]}, {"sma": ["close", {"param": "slow"}]}]},
          "exit_long": {"cross_below": [{"sma": ["close", {"param": "fast"}]}, {"sma": ["close", {"param": "slow"}]}]},
          "order": {"market": []}, "quantity": 1.0},
)

SAMPLES: dict[type, msgspec.Struct] = {s.__class__: s for s in [
    # market data
    _trades[0],
    p.TradeBatch.from_trades(_trades),
    p.BookSnapshot(venue="binanceusdm", symbol="BTC/USDT:USDT", bids=[(60_000.0, 1.5), (59_999.9, 2.0)],
                   asks=[(60_000.1, 0.5)], depth=20, sequence=42, ts_event=TS, ts_recv=TS + 5),
    p.BookDelta(venue="binanceusdm", symbol="BTC/USDT:USDT",
                changes=[p.LevelChange(p.BookSide.BID, 60_000.0, 0.0, p.BookAction.DELETE),
                         p.LevelChange(p.BookSide.ASK, 60_000.2, 1.0, p.BookAction.ADD)],
                sequence=44, first_sequence=43, ts_event=TS, ts_recv=TS + 5),
    p.BBO(venue="binance", symbol="ETH/USDT", bid_price=3000.0, bid_qty=2.0, ask_price=3000.1, ask_qty=1.0,
          ts_event=TS, ts_recv=TS + 1),
    p.Bar(venue="binance", symbol="BTC/USDT", interval="1m", ts_open=TS - 60_000_000_000, open=1.0, high=2.0,
          low=0.5, close=1.5, volume=100.0, closed=False, ts_event=TS, ts_recv=TS + 1),
    p.FundingRate(venue="binanceusdm", symbol="BTC/USDT:USDT", rate=0.0001, ts_next_funding=TS + 3_600_000_000_000,
                  mark_price=60_001.0, index_price=60_000.5, ts_event=TS, ts_recv=TS + 1),
    p.FeedStatus(venue="binance", symbol="BTC/USDT", stream=p.MdKind.BOOK, state=p.FeedState.DISCONNECTED,
                 reason="socket closed", ts_init=TS),
    p.Instrument(venue="binanceusdm", symbol="BTC/USDT:USDT", venue_symbol="BTCUSDT", base="BTC", quote="USDT",
                 settle="USDT", market_type=p.MarketType.SWAP, tick_size=0.1, lot_size=0.001, min_qty=0.001,
                 min_notional=100.0, price_precision=1, qty_precision=3, contract_size=1.0, ts_init=TS),
    # order requests
    p.NewOrder(client_order_id="sma-000001", strategy="sma", venue="binance", symbol="BTC/USDT", side=p.Side.BUY,
               order_type=p.OrderType.STOP_LIMIT, qty=0.01, price=61_000.0, trigger_price=60_900.0,
               time_in_force=p.TimeInForce.GTC, reduce_only=True, params={"triggerBy": "MarkPrice"}, ts_init=TS),
    p.CancelOrder(client_order_id="sma-000001", exchange_order_id="123456", strategy="sma", venue="binance",
                  symbol="BTC/USDT", ts_init=TS),
    p.CancelAll(strategy="sma", venue="binance", symbol="BTC/USDT", ts_init=TS),
    p.ModifyOrder(client_order_id="sma-000001", exchange_order_id="123456", strategy="sma", venue="binance",
                  symbol="BTC/USDT", new_price=61_100.0, new_qty=0.02, ts_init=TS),
    # order events
    p.OrderAck(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000001",
               exchange_order_id="123456", side=p.Side.BUY, order_type=p.OrderType.STOP_LIMIT, qty=0.01,
               price=61_000.0, trigger_price=60_900.0, ts_event=TS, ts_init=TS + 1),
    p.OrderReject(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000002",
                  reject_code=p.RejectCode.INSUFFICIENT_FUNDS, reason="Account has insufficient balance",
                  ts_init=TS),
    p.CancelAck(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000001",
                exchange_order_id="123456", ts_init=TS),
    p.CancelReject(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000009",
                   reject_code=p.RejectCode.ORDER_NOT_FOUND, reason="Unknown order sent.", ts_init=TS),
    p.CancelAllAck(venue="binance", strategy="sma", symbol="BTC/USDT", count=3, ts_init=TS),
    p.CancelAllReject(venue="binance", strategy="sma", reject_code=p.RejectCode.RATE_LIMITED, reason="429",
                      ts_init=TS),
    p.ModifyAck(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000001",
                exchange_order_id="123457", price=61_100.0, qty=0.02, ts_init=TS),
    p.ModifyReject(venue="sim", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000001",
                   reject_code=p.RejectCode.UNSUPPORTED, reason="edit_order not supported", ts_init=TS),
    p.OrderCancelled(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000003",
                     exchange_order_id="123458", unsolicited=True, cancel_code=p.CancelCode.IOC_FOK_UNFILLED,
                     reason="IOC remainder", cum_qty=0.004, ts_event=TS, ts_init=TS + 1),
    p.Fill(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000001",
           exchange_order_id="123456", trade_id="987", side=p.Side.BUY, price=61_000.0, qty=0.004,
           leaves_qty=0.006, cum_qty=0.004, fee=0.0000004, fee_currency="BTC", liquidity=p.Liquidity.MAKER,
           ts_event=TS, ts_init=TS + 2),
    p.OrderStatus(venue="binance", strategy="sma", symbol="BTC/USDT", client_order_id="sma-000001",
                  exchange_order_id="123456", side=p.Side.BUY, order_type=p.OrderType.LIMIT,
                  status=p.OrderState.PARTIALLY_FILLED, qty=0.01, price=61_000.0, filled_qty=0.004,
                  avg_price=61_000.0, leaves_qty=0.006, ts_event=TS, ts_init=TS + 1),
    p.UnsupportedOp(venue="sim", strategy="sma", op="trailing_stop_percent", reason="no callbackRate",
                    symbol="BTC/USDT", client_order_id="sma-000004", ts_init=TS),
    # account
    p.Balance(venue="binance", balances=[p.AssetBalance(currency="USDT", free=900.0, used=100.0, total=1000.0),
                                         p.AssetBalance(currency="BTC", free=0.1, used=0.0, total=0.1)],
              complete=False, ts_event=TS, ts_init=TS + 1),
    p.Position(venue="binanceusdm", symbol="BTC/USDT:USDT", qty=-0.5, avg_price=60_000.0, unrealized_pnl=-12.5,
               leverage=5.0, ts_event=TS, ts_init=TS + 1),
    p.RateLimitInfo(venue="binance", used=600.0, limit=1200.0, pct=50.0, window_ms=60_000, weight=2.0,
                    scope="requests", ts_init=TS),
    p.GatewayStatus(venue="binance", state=p.GatewayState.MAINTENANCE, reason="system maintenance",
                    ts_init=TS),
    # control
    p.StrategyCommand(strategy="sma", command="set_level", args={"level": "3"}, ts_init=TS, params=["3", "fast"]),
    p.AccountQuery(venue="binance", kind=p.QueryKind.ORDER, strategy="sma", symbol="BTC/USDT",
                   client_order_id="sma-1", ts_init=TS),
    p.AccountSnapshot(venue="binance", kind=p.QueryKind.WALLET, account="binance",
                      balances=[p.AssetBalance(currency="USDT", free=90.0, used=10.0, total=100.0)],
                      positions=[p.Position(venue="binance", symbol="BTC/USDT:USDT", qty=1.0, ts_init=TS)],
                      funding_rate=0.0001, next_funding_ts=TS, ts_init=TS),
    p.CommandResult(strategy="sma", command="set_level", ok=False, message="level out of range", ts_init=TS),
    p.ParamsUpdate(strategy="sma", params={"fast": 12, "slow": 26.0, "symbol": "BTC/USDT", "enabled": True},
                   ts_init=TS),
    p.ServiceCommand(service="order_router", command="status", args={"verbose": "1"}, ts_init=TS),
    p.ServiceStatus(service="order_router", instance="host-1234", state=p.ServiceState.DEGRADED,
                    message="venue binance rate limited", counters={"received": 10, "bad_input": 1}, ts_init=TS),
    # backtest
    _job,
    p.BacktestResult(job_id="job-1", study_id="sweep1", stats={"sharpe": 1.2, "return": 0.15},
                     error=None, worker="host-1", elapsed_ns=2_000_000, ts_init=TS),
    p.BacktestProgress(study_id="sweep1", done=10, total=100, failed=1, workers=4, ts_init=TS),
    p.BacktestDead(job=_job, reason="worker died 3 times", attempts=3, worker="host-2", ts_init=TS),
]}

UNIONS = {
    "MarketDataEvent": p.MarketDataEvent,
    "OrderRequest": p.OrderRequest,
    "OrderEvent": p.OrderEvent,
    "AccountEvent": p.AccountEvent,
    "ControlMessage": p.ControlMessage,
    "BacktestMessage": p.BacktestMessage,
}


def union_of(cls: type) -> str:
    """Name of the stream union that holds ``cls``."""
    (name,) = [n for n, u in UNIONS.items() if cls in u.__args__]
    return name
