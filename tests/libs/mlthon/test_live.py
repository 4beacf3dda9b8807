"""The live inputs: bus events mapped to MLThon callbacks, fetch_* as AccountQuery requests."""

from tradebus import proto as p
from tradebus.mlthon.basics.defs import Exchange, FeedHandlerStatus, GtwRejectCode, GtwStatus
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
    assert ("on_rate_limit_info", BIN, 1200, 100, TS + 60_000 * 1_000_000) in rec.calls
    assert host.funding[1] == (0.0001, TS + 1)


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
