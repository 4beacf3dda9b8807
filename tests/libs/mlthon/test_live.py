"""The live inputs: bus events mapped to MLThon callbacks, fetch_* as AccountQuery requests."""

from tradebus import proto as p
from tradebus.mlthon.basics.defs import Exchange, FeedHandlerStatus, GtwRejectCode, GtwStatus
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty
from tradebus.mlthon.live import BusGateway, on_live_event

from .conftest import Recorder, market, run

TS = 1_700_000_000_000_000_000
BIN = Exchange.Binance


def test_bus_events_become_transitions():
    rec = Recorder()
    host = run(rec, market(3))
    for event in (
        p.GatewayStatus(venue="binance", state=p.GatewayState.READY_TO_TRADE, ts_init=TS),      # no change
        p.GatewayStatus(venue="binance", state=p.GatewayState.MAINTENANCE, reason="upgrade", ts_init=TS),
        p.FeedStatus(venue="binance", symbol="BTC/USDT", state=p.FeedState.DISCONNECTED, reason="ws", ts_init=TS),
        p.FeedStatus(venue="binance", symbol="ETH/USDT", state=p.FeedState.DISCONNECTED, ts_init=TS),  # not ours
        p.RateLimitInfo(venue="binance", used=1100, limit=1200, pct=91.7, window_ms=60_000, ts_init=TS),
        p.FundingRate(venue="binance", symbol="BTC/USDT", rate=0.0001, ts_next_funding=TS + 1, ts_event=TS,
                      ts_recv=TS),
    ):
        on_live_event(host, event)
    assert ("on_gateway_status", BIN, GtwStatus.Maintenance, "upgrade") in rec.calls
    assert [c for c in rec.calls if c[0] == "on_feed_handler_status"] == [
        ("on_feed_handler_status", BIN, FeedHandlerStatus.Disconnected, "ws")]
    assert ("on_rate_limit_info", BIN, 100, 8, TS + 60_000 * 1_000_000) in rec.calls
    assert host.funding[1] == (0.0001, TS + 1)
    on_live_event(host, p.Instrument(venue="binance", symbol="BTC/USDT", venue_symbol="BTCUSDT", base="BTC",
                                     quote="USDT", market_type=p.MarketType.SPOT, tick_size=0.1, lot_size=0.0001,
                                     min_qty=0.0002, price_precision=1, qty_precision=4, ts_init=TS))
    inst = host.instruments[1]
    assert (inst.get_tick_size(), inst.get_lot_size(), inst.get_min_qty()) == (Price("0.1"), Qty("0.0001"),
                                                                              Qty("0.0002"))


def test_fetches_go_to_the_router_and_come_back_as_callbacks():
    sent = []

    def send(query, reply):
        sent.append((query, reply))

    rec = Recorder()
    host = run(rec, market(3))
    host.gateway = BusGateway(send, "binance", host.name)
    host.env.state = "running"
    env = host.env
    env.fetch_wallet_info(BIN, "usdt")
    env.fetch_position_info(BIN, 1)
    env.fetch_funding_info(BIN, 1)
    env.fetch_account_info(BIN)
    kinds = [(q.kind, q.venue, q.coin, q.symbol) for q, _ in sent]
    assert kinds == [(p.QueryKind.WALLET, "binance", "USDT", ""), (p.QueryKind.POSITION, "binance", "", "BTC/USDT"),
                     (p.QueryKind.FUNDING, "binance", "", "BTC/USDT"), (p.QueryKind.ACCOUNT, "binance", "", "")]
    n = len(rec.calls)
    (_, wallet), (_, position), (_, funding), (_, account) = sent
    wallet(p.AccountSnapshot(venue="binance", kind=p.QueryKind.WALLET,
                             balances=[p.AssetBalance(currency="USDT", free=90, used=10, total=100)]), "")
    position(p.AccountSnapshot(venue="binance", kind=p.QueryKind.POSITION, unsupported=True), "")
    funding(None, "no answer from the order router of binance")
    account(p.AccountSnapshot(venue="binance", kind=p.QueryKind.ACCOUNT, account="paper-1"), "")
    assert rec.calls[n:] == [
        ("on_wallet_info", BIN, "USDT", Qty(100), Qty(90)),
        ("on_unsupported_op", BIN, "FetchPositionInfo"),
        ("on_request_reject", BIN, GtwRejectCode.Unknown, "no answer from the order router of binance", "FetchFunding"),
        ("on_account_info", BIN, "paper-1"),
    ]


def test_order_status_and_open_orders_come_from_the_router():
    from tradebus.mlthon.basics.defs import TIF, ExecInstructions, OrderStatus, OrderType, Side
    from tradebus.mlthon.basics.price import Price

    sent = []
    rec = Recorder()
    host = run(rec, market(3))
    host.env.state = "running"
    host.gateway = BusGateway(lambda q, reply: sent.append((q, reply)), "binance", host.name,
                              coid_of={7: "demo-s-7"}.get, order_id_of={"demo-s-7": 7}.get)
    env = host.env
    from tradebus.mlthon.orders import Order
    order = Order(11, 1, Side.Buy, Price("100"), Qty("2"), OrderType.Limit, TIF.GTC, ExecInstructions.PostOnly,
                  order_id=7, status=OrderStatus.New)
    env.orders[11] = order
    env._by_order_id[7] = order
    env.fetch_order_status(BIN, 1, 11)
    env.fetch_orders_info(BIN)
    (q1, status_reply), (q2, orders_reply) = sent
    assert (q1.kind, q1.client_order_id, q1.symbol) == (p.QueryKind.ORDER, "demo-s-7", "BTC/USDT")
    assert (q2.kind, q2.symbol) == (p.QueryKind.OPEN_ORDERS, "")
    st = p.OrderStatus(venue="binance", strategy=host.name, symbol="BTC/USDT", client_order_id="demo-s-7",
                       exchange_order_id="x9", side=p.Side.BUY, order_type=p.OrderType.LIMIT,
                       status=p.OrderState.PARTIALLY_FILLED, qty=2.0, price=101.0, filled_qty=0.5, leaves_qty=1.5,
                       ts_init=TS)
    other = p.OrderStatus(venue="binance", strategy=host.name, symbol="BTC/USDT", client_order_id="old-1",
                          side=p.Side.SELL, order_type=p.OrderType.LIMIT, status=p.OrderState.ACKED, qty=1.0,
                          ts_init=TS)
    n = len(rec.calls)
    status_reply(p.AccountSnapshot(venue="binance", kind=p.QueryKind.ORDER, orders=[st]), "")
    orders_reply(p.AccountSnapshot(venue="binance", kind=p.QueryKind.OPEN_ORDERS, orders=[st, other]), "")
    status_call, orders_call = rec.calls[n:]
    assert status_call == ("on_order_status", BIN, 1, 11, "x9", Side.Buy, Price("101"), Qty("1.5"),
                           OrderStatus.PartiallyFilled, OrderType.Limit, TIF.GTC, ExecInstructions.PostOnly)
    (view,) = orders_call[2]
    assert (view.client_id, view.price, view.leaves_qty, view.status) == (11, Price("101"), Qty("1.5"),
                                                                          OrderStatus.PartiallyFilled)
    assert order.price == Price("100")              # the strategy's own record is untouched
