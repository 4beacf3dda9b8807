"""Account queries (MLThon's fetch_*) answered from the venue through the router's endpoint."""
from __future__ import annotations

import pytest

from tradebus.proto import AccountQuery, AccountSnapshot, OrderState, OrderType, QueryKind, Side
from tradebus.proto.subjects import account_query_subject

from .conftest import PERP, SPOT, resting_bid


async def ask(h, **fields) -> AccountSnapshot:
    return await h.bus.request(account_query_subject(h.venue), AccountQuery(venue=h.venue, **fields),
                               AccountSnapshot, timeout=10)


async def test_wallet_account_and_unsupported_answers(harness, sim):
    h = harness
    await h.start()
    wallet = await ask(h, kind=QueryKind.WALLET, coin="USDT")
    (usdt,) = wallet.balances
    assert wallet.ok and usdt.currency == "USDT" and usdt.total > 0 and usdt.total == pytest.approx(usdt.free + usdt.used)
    account = await ask(h, kind=QueryKind.ACCOUNT)
    assert account.ok and account.account == h.venue
    spot_funding = await ask(h, kind=QueryKind.FUNDING, symbol=SPOT)
    assert spot_funding.unsupported and "no funding" in spot_funding.error
    spot_position = await ask(h, kind=QueryKind.POSITION, symbol=SPOT)
    assert spot_position.unsupported
    unknown = await ask(h, kind=QueryKind.POSITION, symbol="DOGE/USDT")
    assert not unknown.ok and "DOGE/USDT" in unknown.error


async def test_perp_position_and_funding_come_from_the_venue(harness, sim):
    h = harness
    await h.start()
    position = await ask(h, kind=QueryKind.POSITION, symbol=PERP)
    assert position.ok and all(p.symbol == PERP for p in position.positions)
    funding = await ask(h, kind=QueryKind.FUNDING, symbol=PERP)
    assert funding.ok or funding.unsupported          # whichever the venue offers, never an exception


async def test_order_and_open_orders_are_the_routers_view(harness, sim):
    h = harness
    await h.start()
    price = resting_bid(sim, h.router.adapter_for(SPOT))
    await h.send(h.order("q1", side=Side.BUY, order_type=OrderType.LIMIT, qty=0.001, price=price, strategy="s7"),
                 msg_id="q1")
    from tradebus.proto import OrderAck
    await h.wait(OrderAck, "q1")
    one = await ask(h, kind=QueryKind.ORDER, strategy="s7", client_order_id="q1", symbol=SPOT)
    (status,) = one.orders
    assert status.client_order_id == "q1" and status.status in (OrderState.ACKED, OrderState.NEW)
    mine = await ask(h, kind=QueryKind.OPEN_ORDERS, strategy="s7")
    assert [o.client_order_id for o in mine.orders] == ["q1"]
    other = await ask(h, kind=QueryKind.OPEN_ORDERS, strategy="someone-else")
    assert other.orders == []


async def test_a_bad_query_gets_a_400(harness):
    h = harness
    await h.start()
    reply = await h.bus.nc.request(account_query_subject(h.venue), b"\xc1", timeout=5)
    assert reply.headers["Nats-Service-Error-Code"] == "400"
