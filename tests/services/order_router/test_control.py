"""kill / release are service endpoints: listed in $SRV.INFO, and bad input gets a 400, not silence."""
from __future__ import annotations

from tradebus.bus import discover
from tradebus.proto import CommandResult, ServiceCommand, Trade
from tradebus.proto.codec import encode
from tradebus.proto.subjects import account_query_subject, service_subject

GARBAGE = [b"\xc1\xc1\xc1", b"\x93\x01\x02", b""]


async def test_kill_and_release_are_listed_in_srv_info(harness):
    h = harness
    await h.start()
    infos = await discover(h.bus.nc, "INFO", "order_router")
    mine = [i for i in infos if i.get("metadata", {}).get("venue") == h.venue]
    assert len(mine) == 1
    subjects = {e["name"]: e["subject"] for e in mine[0]["endpoints"]}
    assert subjects == {"kill": service_subject("order_router", "kill"),
                        "release": service_subject("order_router", "release"),
                        "query": account_query_subject(h.venue)}


async def test_an_undecodable_kill_or_release_gets_a_400(harness):
    h = harness
    await h.start()
    wrong_type = encode(Trade(venue="sim", symbol="BTC/USDT", price=1.0, qty=1.0, side="buy", trade_id="1",
                              ts_event=1, ts_recv=1))
    for command in ("kill", "release"):
        for data in (*GARBAGE, wrong_type):
            reply = await h.bus.nc.request(service_subject("order_router", command), data, timeout=5)
            assert reply.headers["Nats-Service-Error-Code"] == "400", (command, data)
    assert not h.router.risk.engaged
    # and it still answers a good one
    args = {"venue": h.venue, "strategy": "s9"}
    result = await h.bus.request(service_subject("order_router", "kill"),
                                 ServiceCommand(service="order_router", command="kill", args=args), CommandResult)
    assert result.ok and h.router.risk.killed("s9")
