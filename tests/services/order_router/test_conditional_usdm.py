"""USD-M conditional orders (ccxt 4.5.90 sends them to /fapi/v1/algoOrder) end to end: the
trigger fires in the sim, the algo order places a market order, the router emits its fills with
fees and the order ends FILLED."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tradebus.proto import CancelAck, CancelOrder, Fill, Liquidity, OrderAck, OrderState

from .conftest import PERP, until

SYMBOL, MARKET = "BTCUSDT", "usdm"


def sweep_asks_to(sim, trigger: Decimal) -> None:
    """Another account buys (IOC, in the engine) every ask up to the first level at or above
    ``trigger``: the last trade prints at or above it."""
    asks = sim.engine.books[(MARKET, SYMBOL)].asks.top(500)
    level = next(p for p, _ in asks if p >= trigger)
    qty = sum((q for p, q in asks if p <= level), Decimal(0))
    sim.engine.place(sim.account("sim-key-2"), sim.instrument(SYMBOL, MARKET), side="BUY", type="LIMIT",
                     qty=qty, price=level, tif="IOC")


def sweep_bids_to(sim, trigger: Decimal) -> None:
    bids = sim.engine.books[(MARKET, SYMBOL)].bids.top(500)
    level = next(p for p, _ in bids if p <= trigger)
    qty = sum((q for p, q in bids if p >= level), Decimal(0))
    sim.engine.place(sim.account("sim-key-2"), sim.instrument(SYMBOL, MARKET), side="SELL", type="LIMIT",
                     qty=qty, price=level, tif="IOC")


def check_fills(sim, h, coid: str, qty: float) -> list[Fill]:
    acct = sim.account()
    algo = next(o for o in acct.algo_orders.values() if o.client_id == coid)
    assert algo.actual_order_id, "the algo order did not trigger"
    placed = acct.orders[(MARKET, algo.actual_order_id)]
    fills = h.of(Fill, coid)
    assert [f.trade_id for f in fills] == [str(v.trade_id) for v in placed.fills]
    for fill, v in zip(fills, placed.fills):
        rate = placed.inst.maker_fee if v.is_maker else placed.inst.taker_fee
        assert fill.fee == pytest.approx(float(v.price * v.qty * rate)) and fill.fee > 0
        assert fill.fee_currency == "USDT" and fill.liquidity is Liquidity.TAKER
        assert fill.exchange_order_id == str(algo.actual_order_id)
    assert sum(f.qty for f in fills) == pytest.approx(qty)
    ack = h.of(OrderAck, coid)
    assert len(ack) == 1 and ack[0].exchange_order_id == str(algo.order_id)
    return fills


async def test_stop_market_and_take_profit_market_fill_after_their_trigger(harness):
    h = harness
    await h.start()
    inst = h.sim.instrument(SYMBOL, MARKET)
    ref = h.sim.engine.reference_price(inst)
    stop = (ref + 20 * inst.tick).quantize(inst.tick)
    await h.send(h.order("c-stop", PERP, side="buy", order_type="stop_market", qty=0.01,
                         trigger_price=float(stop)), "c-stop")
    await h.wait(OrderAck, "c-stop", replay=False)  # the replayed market must not reach the trigger first
    assert h.router.orders["c-stop"].status.status is OrderState.ACKED
    assert not h.of(Fill, "c-stop")
    sweep_asks_to(h.sim, stop)
    await until(lambda: h.router.orders["c-stop"].status.status is OrderState.FILLED)
    await until(lambda: sum(f.qty for f in h.of(Fill, "c-stop")) >= 0.01 - 1e-9)
    check_fills(h.sim, h, "c-stop", 0.01)
    assert float(h.sim.account().position(SYMBOL).amount) == pytest.approx(0.01)
    st = await h.kv_status("c-stop", lambda st: st.status is OrderState.FILLED)  # KV is written after the events
    assert st.status is OrderState.FILLED and st.filled_qty == pytest.approx(0.01)
    # take profit on the long: a sell that triggers when the price rises to it
    ref = h.sim.engine.reference_price(inst)
    tp = (ref + 20 * inst.tick).quantize(inst.tick)
    await h.send(h.order("c-tp", PERP, side="sell", order_type="take_profit_market", qty=0.01,
                         trigger_price=float(tp), reduce_only=True), "c-tp")
    await h.wait(OrderAck, "c-tp", replay=False)
    sweep_asks_to(h.sim, tp)
    await until(lambda: h.router.orders["c-tp"].status.status is OrderState.FILLED)
    await until(lambda: sum(f.qty for f in h.of(Fill, "c-tp")) >= 0.01 - 1e-9)
    check_fills(h.sim, h, "c-tp", 0.01)
    assert float(h.sim.account().position(SYMBOL).amount) == pytest.approx(0.0)
    assert h.router.positions[("s1", PERP)] == pytest.approx(0.0)
    assert not h.router.open_orders("s1") and not h.sim.account().open_algo


async def test_stop_triggered_while_the_router_is_down_is_filled_on_restart(harness):
    h = harness
    await h.start()
    inst = h.sim.instrument(SYMBOL, MARKET)
    ref = h.sim.engine.reference_price(inst)
    stop = (ref - 20 * inst.tick).quantize(inst.tick)
    await h.send(h.order("c-down", PERP, side="sell", order_type="stop_market", qty=0.01,
                         trigger_price=float(stop)), "c-down")
    await h.wait(OrderAck, "c-down", replay=False)
    # stopped before its KV write, the router would send the ack again after the restart (the stream
    # keeps one copy under its Nats-Msg-Id; the harness's plain subscriber would count two)
    assert (await h.kv_status("c-down", lambda st: st.status is OrderState.ACKED)).status is OrderState.ACKED
    await h.stop()
    sweep_bids_to(h.sim, stop)
    await h.start()
    await until(lambda: h.router.orders["c-down"].status.status is OrderState.FILLED)
    await until(lambda: sum(f.qty for f in h.of(Fill, "c-down")) >= 0.01 - 1e-9)
    check_fills(h.sim, h, "c-down", 0.01)
    await h.send(h.order("c-down-close", PERP, side="buy", order_type="market", qty=0.01, reduce_only=True),
                 "c-down-close")
    await h.wait(Fill, "c-down-close")
    assert float(h.sim.account().position(SYMBOL).amount) == pytest.approx(0.0)


async def test_triggered_stop_limit_rests_open_then_fills_as_maker(harness):
    """A triggered algo order says TRIGGERED / FINISHED (ccxt: "closed"); the order it placed is
    still working, so the router keeps the order open until that one fills."""
    h = harness
    await h.start()
    inst = h.sim.instrument(SYMBOL, MARKET)
    ref = h.sim.engine.reference_price(inst)
    stop = (ref + 20 * inst.tick).quantize(inst.tick)
    limit = (ref - 200 * inst.tick).quantize(inst.tick)  # far below the market once triggered: rests
    await h.send(h.order("c-stl", PERP, side="buy", order_type="stop_limit", qty=0.01, trigger_price=float(stop),
                         price=float(limit)), "c-stl")
    await h.wait(OrderAck, "c-stl", replay=False)
    sweep_asks_to(h.sim, stop)
    algo = next(o for o in h.sim.account().algo_orders.values() if o.client_id == "c-stl")
    assert algo.actual_order_id
    placed = h.sim.account().orders[(MARKET, algo.actual_order_id)]
    assert placed.is_open
    await until(lambda: str(algo.actual_order_id) in h.router.orders["c-stl"].order_ids)
    await h.router.reconcile()  # the venue's REST view agrees: still open
    assert h.router.orders["c-stl"].status.status is OrderState.ACKED and not h.of(Fill, "c-stl")
    sweep_bids_to(h.sim, limit)
    await until(lambda: h.router.orders["c-stl"].status.status is OrderState.FILLED)
    await until(lambda: sum(f.qty for f in h.of(Fill, "c-stl")) >= 0.01 - 1e-9)
    fills = h.of(Fill, "c-stl")
    assert [f.trade_id for f in fills] == [str(v.trade_id) for v in placed.fills]
    for fill, v in zip(fills, placed.fills):
        assert fill.liquidity is Liquidity.MAKER and v.is_maker
        assert fill.fee == pytest.approx(float(v.price * v.qty * inst.maker_fee)) and fill.fee_currency == "USDT"
    await h.send(h.order("c-stl-close", PERP, side="sell", order_type="market", qty=0.01, reduce_only=True),
                 "c-stl-close")
    await h.wait(Fill, "c-stl-close")


async def test_cancel_of_a_triggered_stop_limit_cancels_the_order_it_placed(harness):
    h = harness
    await h.start()
    inst = h.sim.instrument(SYMBOL, MARKET)
    ref = h.sim.engine.reference_price(inst)
    stop = (ref + 20 * inst.tick).quantize(inst.tick)
    limit = (ref - 200 * inst.tick).quantize(inst.tick)
    await h.send(h.order("c-stl-x", PERP, side="buy", order_type="stop_limit", qty=0.01, trigger_price=float(stop),
                         price=float(limit)), "c-stl-x")
    await h.wait(OrderAck, "c-stl-x", replay=False)
    sweep_asks_to(h.sim, stop)
    algo = next(o for o in h.sim.account().algo_orders.values() if o.client_id == "c-stl-x")
    placed = h.sim.account().orders[(MARKET, algo.actual_order_id)]
    await until(lambda: str(algo.actual_order_id) in h.router.orders["c-stl-x"].order_ids)
    await h.send(CancelOrder(client_order_id="c-stl-x", strategy="s1", venue=h.venue, symbol=PERP, ts_init=1))
    await h.wait(CancelAck, "c-stl-x")
    assert not placed.is_open
    await until(lambda: h.router.orders["c-stl-x"].status.status is OrderState.CANCELLED)
    assert not h.of(Fill, "c-stl-x")
