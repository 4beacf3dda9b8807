"""Fills carry the venue's executions: trade id, fee and fee currency, maker/taker; exactly one
Fill per execution whichever path (trade stream, create response, catch-up) brings it."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tradebus.proto import Fill, GatewayState, Liquidity, OrderAck, OrderState, OrderStatus

from .conftest import PERP, SPOT, resting_bid, sell_into, until


async def stream_fills(h, coid: str) -> list[Fill]:
    """The Fill events of ``coid`` stored in the ORDERS stream, in order."""
    return await h.stored(Fill, coid)

FAULTS_OFF = dict(latency_ms=0, rate_limit_rate=0, timeout_rate=0, error_rate=0, maintenance=False)


@pytest.fixture(autouse=True)
def clear_faults(sim):
    yield
    sim.set_faults(**FAULTS_OFF)


def venue_fills(sim, exchange_order_id: str, market: str = "spot") -> list:
    """The sim's own execution records of one order."""
    return list(sim.account().orders[(market, int(exchange_order_id))].fills)


def expected_fee(sim, fill, market: str = "spot") -> tuple[float, str]:
    """Binance's commission, computed here: rate by maker/taker; spot buys pay in the base asset,
    spot sells in the quote asset, USD-M in USDT."""
    order = fill.order
    inst = order.inst
    rate = inst.maker_fee if fill.is_maker else inst.taker_fee
    if market == "spot" and order.side == "BUY":
        return float(fill.qty * rate), inst.base
    return float(fill.price * fill.qty * rate), inst.quote if market == "spot" else "USDT"


def check_against_venue(sim, fills: list[Fill], market: str = "spot") -> None:
    venue = venue_fills(sim, fills[0].exchange_order_id, market)
    assert [f.trade_id for f in fills] == [str(v.trade_id) for v in venue]
    for fill, v in zip(fills, venue):
        fee, currency = expected_fee(sim, v, market)
        assert fill.fee == pytest.approx(fee, rel=1e-9, abs=1e-12) and fee > 0
        assert fill.fee == pytest.approx(float(v.commission), abs=1e-12)
        assert fill.fee_currency == currency == v.commission_asset
        assert fill.qty == pytest.approx(float(v.qty)) and fill.price == pytest.approx(float(v.price))
        assert fill.liquidity is (Liquidity.MAKER if v.is_maker else Liquidity.TAKER)


def ahead_of(sim, order, price: Decimal) -> Decimal:
    """Bid quantity a sell at ``price`` takes before reaching ``order`` (resting buy at ``price``)."""
    book = sim.engine.books[order.inst.key]
    above = sum((q for p, q in book.bids.top(500) if p > price), Decimal(0))
    level = book.bids.levels[price]
    users = sum((o.qty - o.executed for o in level.orders[:level.orders.index(order)]), Decimal(0))
    return above + order.queue_ahead + users


def sell_part(sim, order, price: float, qty: str) -> None:
    """Another account sells (IOC, in the engine) exactly ``qty`` into the resting buy ``order``."""
    p = Decimal(str(price))
    sim.engine.place(sim.account("sim-key-2"), order.inst, side="SELL", type="LIMIT",
                     qty=ahead_of(sim, order, p) + Decimal(qty), price=p, tif="IOC")


async def kv_status(h, coid, n_trades: int) -> OrderStatus:
    """The order's KV status once it counts ``n_trades`` executions (KV is written after the events)."""
    st = await h.kv_status(coid, lambda st: len(st.trade_ids) >= n_trades)
    assert len(st.trade_ids) >= n_trades, f"KV of {coid} never counted {n_trades} trades"
    return st


async def test_marketable_orders_fill_as_taker_with_the_venue_fee(harness):
    h = harness
    await h.start()
    await h.send(h.order("fee-buy", side="buy", order_type="market", qty=0.01), "fee-buy")
    await h.send(h.order("fee-sell", side="sell", order_type="market", qty=0.005), "fee-sell")
    await h.send(h.order("fee-perp", PERP, side="buy", order_type="market", qty=0.01), "fee-perp")
    for coid, qty, market in (("fee-buy", 0.01, "spot"), ("fee-sell", 0.005, "spot"), ("fee-perp", 0.01, "usdm")):
        await until(lambda: h.router.orders.get(coid) and h.router.orders[coid].status.status is OrderState.FILLED)
        await until(lambda: sum(f.qty for f in h.of(Fill, coid)) >= qty - 1e-9)
        fills = h.of(Fill, coid)
        check_against_venue(h.sim, fills, market)
        assert all(f.liquidity is Liquidity.TAKER for f in fills)
        assert sum(f.qty for f in fills) == pytest.approx(qty) and fills[-1].leaves_qty == pytest.approx(0.0)
        st = await kv_status(h, coid, len(fills))
        assert st.filled_qty == pytest.approx(qty) and list(st.trade_ids) == [f.trade_id for f in fills]
    assert h.of(Fill, "fee-buy")[0].fee_currency == "BTC"  # spot buy: commission in the base asset
    assert h.of(Fill, "fee-sell")[0].fee_currency == "USDT"
    # the create response and the trade stream both carried these executions: one Fill each
    assert h.router.counters["fills"] == len(h.of(Fill))
    await h.send(h.order("fee-perp-close", PERP, side="sell", order_type="market", qty=0.01, reduce_only=True),
                 "fee-perp-close")
    await h.wait(Fill, "fee-perp-close")


async def test_resting_limit_partial_then_full_fills_as_maker(harness):
    h = harness
    await h.start()
    price = resting_bid(h.sim, h.router.adapters[0])
    await h.send(h.order("mk1", side="buy", order_type="limit", qty=0.01, price=price), "mk1")
    ack = (await h.wait(OrderAck, "mk1", replay=False))[0]  # resting at the bid: no replayed trade first
    venue_order = h.sim.account().orders[("spot", int(ack.exchange_order_id))]
    sell_part(h.sim, venue_order, price, "0.004")
    assert float(venue_order.executed) == pytest.approx(0.004)
    first = (await h.wait(Fill, "mk1", replay=False))[0]
    assert first.qty == pytest.approx(0.004) and first.leaves_qty == pytest.approx(0.006)
    await until(lambda: h.router.orders["mk1"].status.status is OrderState.PARTIALLY_FILLED)
    sell_into(h.sim, price)
    await until(lambda: h.router.orders["mk1"].status.status is OrderState.FILLED)
    await until(lambda: len(h.of(Fill, "mk1")) >= 2)
    fills = h.of(Fill, "mk1")
    assert len(fills) == 2 and [f.qty for f in fills] == pytest.approx([0.004, 0.006])
    assert [f.cum_qty for f in fills] == pytest.approx([0.004, 0.01])
    assert all(f.liquidity is Liquidity.MAKER for f in fills)
    check_against_venue(h.sim, fills)
    st = await kv_status(h, "mk1", 2)
    assert st.status is OrderState.FILLED and st.filled_qty == pytest.approx(0.01)
    assert st.avg_price == pytest.approx(price)


async def test_no_duplicate_or_lost_fill_across_restarts_mid_flow(harness):
    """Partial fill seen live; restart (nothing new); the rest fills while the router is down;
    restart: the missing execution comes from the venue's trade list, the first is not repeated."""
    h = harness
    await h.start()
    price = resting_bid(h.sim, h.router.adapters[0])
    await h.send(h.order("rr1", side="buy", order_type="limit", qty=0.01, price=price), "rr1")
    ack = (await h.wait(OrderAck, "rr1", replay=False))[0]  # resting at the bid: no replayed trade first
    venue_order = h.sim.account().orders[("spot", int(ack.exchange_order_id))]
    sell_part(h.sim, venue_order, price, "0.003")
    await h.wait(Fill, "rr1", replay=False)
    await until(lambda: h.router.orders["rr1"].status.filled_qty > 0.0029)
    await h.stop()
    await h.start()
    assert h.router.orders["rr1"].status.filled_qty == pytest.approx(0.003)
    await h.stop()
    sell_into(h.sim, price)
    assert venue_order.status == "FILLED"
    await h.start()
    await until(lambda: h.router.orders["rr1"].status.status is OrderState.FILLED)
    await until(lambda: sum(f.qty for f in h.of(Fill, "rr1")) >= 0.01 - 1e-9)
    # what consumers get: the ORDERS stream. A fill whose KV write the first stop cut off is sent
    # again after the restart under the same Nats-Msg-Id; the stream keeps one copy (a plain
    # subscriber, like the harness's, sees both).
    fills = await stream_fills(h, "rr1")
    assert len(fills) == 2 and sum(f.qty for f in fills) == pytest.approx(0.01)
    assert {f.trade_id for f in h.of(Fill, "rr1")} == {f.trade_id for f in fills}
    check_against_venue(h.sim, fills)
    assert h.router.counters["trade_catch_ups"] >= 1 and not h.router.counters["trade_fallbacks"]
    # the position holds what was bought less the fee the venue took in BTC (issue 12's base-fee defect)
    base_fees = sum(f.fee for f in fills if f.fee_currency == "BTC")
    assert base_fees > 0 and h.router.positions[("s1", SPOT)] == pytest.approx(0.01 - base_fees)
    st = await kv_status(h, "rr1", 2)
    assert list(st.trade_ids) == [f.trade_id for f in fills]


async def test_fills_missed_in_a_ws_gap_come_with_their_trade_ids_and_fees(harness):
    h = harness
    await h.start()
    price = resting_bid(h.sim, h.router.adapters[0])
    await h.send(h.order("gapfee", side="buy", order_type="limit", qty=0.01, price=price), "gapfee")
    await h.wait(OrderAck, "gapfee", replay=False)  # no replayed trade may fill it before the gap
    h.sim.set_faults(maintenance=True)
    assert await h.sim.drop_ws() >= 1
    await until(lambda: h.router.state is GatewayState.DISCONNECTED)
    sell_into(h.sim, price)
    assert not h.of(Fill, "gapfee")
    h.sim.set_faults(maintenance=False)
    await until(lambda: h.router.orders["gapfee"].status.status is OrderState.FILLED)
    await until(lambda: sum(f.qty for f in h.of(Fill, "gapfee")) >= 0.01 - 1e-9)
    fills = h.of(Fill, "gapfee")
    assert all(f.liquidity is Liquidity.MAKER for f in fills)
    check_against_venue(h.sim, fills)


async def test_a_spot_buy_holds_what_the_venue_credits_and_close_position_sells_just_that(harness):
    """Binance charges a spot buy's fee in the base asset: the router's position is the venue's
    balance change (net of the fee), so closing it sells what the account got, not more."""
    h = harness
    await h.start()
    btc = h.sim.account().asset("BTC")
    before = btc[0] + btc[1]
    await h.send(h.order("nf-buy", strategy="netfee", side="buy", order_type="market", qty=0.01), "nf-buy")
    fills = await h.wait(Fill, "nf-buy")
    await until(lambda: sum(f.qty for f in h.of(Fill, "nf-buy")) >= 0.01 - 1e-12)
    fills = h.of(Fill, "nf-buy")
    credited = float(btc[0] + btc[1] - before)
    assert all(f.fee_currency == "BTC" and f.fee > 0 for f in fills)
    assert credited == pytest.approx(0.01 - sum(f.fee for f in fills))
    assert h.router.positions[("netfee", SPOT)] == pytest.approx(credited)
    await h.send(h.order("nf-close", strategy="netfee", side="sell", order_type="close_position", qty=0.0), "nf-close")
    await until(lambda: h.router.orders.get("nf-close") is not None
                and h.router.orders["nf-close"].status.status is OrderState.FILLED, step=lambda: h.sim.step(2))
    sold = h.router.orders["nf-close"].status.filled_qty
    step = 0.00001  # BTC/USDT lot size: what cannot be sold stays
    assert credited - step < sold <= credited + 1e-12
    assert 0 <= float(btc[0] + btc[1] - before) < step
    assert 0 <= h.router.positions[("netfee", SPOT)] < step


async def test_an_execution_reported_while_the_previous_one_is_applied_is_not_missed(harness):
    """The venue reports the rest of an order while the router is still applying the order update
    of its first fill (ccxt.pro resolves only a pending watch): the router watches again before
    applying, so the report is applied now, not when the account's next message comes."""
    h = harness
    await h.start()
    price = resting_bid(h.sim, h.router.adapters[0])
    await h.send(h.order("busy1", side="buy", order_type="limit", qty=0.01, price=price), "busy1")
    ack = (await h.wait(OrderAck, "busy1", replay=False))[0]
    venue_order = h.sim.account().orders[("spot", int(ack.exchange_order_id))]
    observe, rest_sold = h.router.observe, []

    async def busy_observe(order, adapter, reconciled=False):
        rec = await observe(order, adapter, reconciled)
        if rec is not None and rec.status.client_order_id == "busy1" and rec.status.filled_qty > 0 and not rest_sold:
            rest_sold.append(True)
            sell_into(h.sim, price)  # reported while the router is still busy with this update
            await asyncio.sleep(0.2)
        return rec

    h.router.observe = busy_observe
    sell_part(h.sim, venue_order, price, "0.004")
    await until(lambda: h.router.orders["busy1"].status.status is OrderState.FILLED)
    assert rest_sold and venue_order.status == "FILLED"
    await until(lambda: sum(f.qty for f in h.of(Fill, "busy1")) >= 0.01 - 1e-9)
    check_against_venue(h.sim, h.of(Fill, "busy1"))
