"""The ledger balances a clean run and names every loss, duplicate and mismatch."""
from __future__ import annotations

import pytest

from tradebus.audit import (
    BusOrders,
    FillJournal,
    LedgerError,
    StrategyFills,
    VenueFill,
    VenueOrder,
    assert_balanced,
    balance,
    read_journal,
)
from tradebus.audit.journal import journal_size
from tradebus.proto import Fill, NewOrder, OrderAck, OrderReject, OrderType, RejectCode, Side


def new(coid: str, side: str = "buy", strategy: str = "s1") -> NewOrder:
    return NewOrder(client_order_id=coid, strategy=strategy, venue="sim", symbol="BTC/USDT", side=Side(side),
                    order_type=OrderType.MARKET, qty=0.001, ts_init=1)


def ack(coid: str, strategy: str = "s1") -> OrderAck:
    return OrderAck(venue="sim", strategy=strategy, symbol="BTC/USDT", client_order_id=coid, exchange_order_id="1",
                    side=Side.BUY, order_type=OrderType.MARKET, qty=0.001, ts_init=1)


def fill_event(coid: str, trade: str, side: str = "buy", strategy: str = "s1") -> Fill:
    return Fill(venue="sim", strategy=strategy, symbol="BTC/USDT", client_order_id=coid, exchange_order_id="1",
                trade_id=trade, side=Side(side), price=100.0, qty=0.001, leaves_qty=0.0, cum_qty=0.001,
                fee=0.1, fee_currency="USDT", ts_init=1)


def venue_fill(coid: str, trade: str, side: str = "buy") -> VenueFill:
    return VenueFill(client_id=coid, trade_id=trade, symbol="BTC/USDT", side=side, qty=0.001, price=100.0,
                     fee=0.1, fee_currency="USDT", time_ms=1)


def venue_order(coid: str, side: str = "buy", status: str = "FILLED") -> VenueOrder:
    return VenueOrder(client_id=coid, order_id=coid, symbol="BTC/USDT", side=side, status=status, qty=0.001,
                      executed=0.001 if status == "FILLED" else 0.0)


def clean_run():
    """Two filled orders (a buy and a sell) and one risk reject."""
    bus = BusOrders()
    for coid, side in (("a", "buy"), ("b", "sell")):
        bus.add_request(new(coid, side))
        bus.add_event(ack(coid))
        bus.add_event(fill_event(coid, f"t-{coid}", side))
    bus.add_request(new("c"))
    bus.add_event(OrderReject(venue="sim", strategy="s1", symbol="BTC/USDT", client_order_id="c",
                              reject_code=RejectCode.RISK_LIMIT, ts_init=1))
    orders = [venue_order("a"), venue_order("b", "sell")]
    fills = [venue_fill("a", "t-a"), venue_fill("b", "t-b", "sell")]
    seen = StrategyFills(fills=[("BTC/USDT", "t-a", 0.001, 5), ("BTC/USDT", "t-b", -0.001, 6)],
                         position={"BTC/USDT": 0.0})
    return bus, orders, fills, {"s1": seen}


def test_a_clean_run_balances_and_prints_its_tally(capsys):
    bus, orders, fills, seen = clean_run()
    tally = assert_balanced(balance(bus, orders, fills, strategies=seen, balance_change={"BTC": 0.0},
                                    scenario="clean"))
    assert (tally.sent, tally.accepted, tally.filled, tally.fills) == (3, 2, 2, 2)
    assert tally.rejected == {"risk_limit": 1}
    assert "clean: sent=3 accepted=2 rejected=1 (risk_limit=1) filled=2" in capsys.readouterr().out
    assert "lost=0 duplicated=0 mismatched=0" in tally.line()


@pytest.mark.parametrize("damage, kind, words", [
    (lambda bus, orders, fills, seen: bus.events.pop("a"), "lost", "no outcome"),
    (lambda bus, orders, fills, seen: orders.pop(0), "lost", "no venue order"),
    (lambda bus, orders, fills, seen: orders.append(venue_order("a")), "duplicated", "2 venue orders"),
    (lambda bus, orders, fills, seen: bus.add_event(fill_event("a", "t-a")), "duplicated", "2 times in the order events"),
    (lambda bus, orders, fills, seen: bus.events["b"].pop(), "lost", "missing from the order events"),
    (lambda bus, orders, fills, seen: seen["s1"].fills.pop(0), "lost", "never saw fill"),
    (lambda bus, orders, fills, seen: seen["s1"].fills.append(seen["s1"].fills[0]), "duplicated", "2 times"),
    (lambda bus, orders, fills, seen: seen["s1"].position.update({"BTC/USDT": 0.001}), "mismatched", "position"),
    (lambda bus, orders, fills, seen: orders.append(venue_order("c")), "mismatched", "rejected (risk_limit)"),
    (lambda bus, orders, fills, seen: orders.append(venue_order("zz")), "mismatched", "nobody requested"),
    (lambda bus, orders, fills, seen: orders.__setitem__(0, venue_order("a", status="NEW")), "lost", "no final state"),
])
def test_every_loss_duplicate_and_mismatch_is_named(damage, kind, words):
    bus, orders, fills, seen = clean_run()
    damage(bus, orders, fills, seen)
    tally = balance(bus, orders, fills, strategies=seen, balance_change={"BTC": 0.0})
    assert getattr(tally, kind) >= 1 and any(words in p for p in tally.problems), tally.report()
    with pytest.raises(LedgerError, match=kind):
        assert_balanced(tally)


def test_a_fill_missed_while_the_strategy_was_down_counts_when_it_was_restored():
    bus, orders, fills, seen = clean_run()
    seen["s1"].fills.pop(0)  # t-a happened at venue time 1 ms, before the restart at 2 ms
    seen["s1"].restored_at_ns.append(2_000_000)
    assert balance(bus, orders, fills, strategies=seen).balanced
    seen["s1"].restored_at_ns[0] = 500_000  # restarted before the fill: then it was lost
    assert not balance(bus, orders, fills, strategies=seen).balanced


def test_venue_balance_change_must_match_the_fills():
    bus, orders, fills, seen = clean_run()
    fills[0] = VenueFill(client_id="a", trade_id="t-a", symbol="BTC/USDT", side="buy", qty=0.001, price=100.0,
                         fee=0.000001, fee_currency="BTC", time_ms=1)  # a buy's fee in the base asset
    seen["s1"].position["BTC/USDT"] = -0.000001
    assert balance(bus, orders, fills, strategies=seen, balance_change={"BTC": -0.000001}).balanced
    tally = balance(bus, orders, fills, strategies=seen, balance_change={"BTC": 0.0})
    assert tally.mismatched == 1 and "BTC balance" in tally.problems[0]


def test_perpetual_fills_leave_the_spot_wallets_alone():
    bus, orders, fills, seen = clean_run()
    bus.add_request(NewOrder(client_order_id="p", strategy="s1", venue="sim", symbol="BTC/USDT:USDT",
                             side=Side.BUY, order_type=OrderType.MARKET, qty=0.002, ts_init=1))
    bus.add_event(ack("p"))
    bus.add_event(Fill(venue="sim", strategy="s1", symbol="BTC/USDT:USDT", client_order_id="p", exchange_order_id="9",
                       trade_id="t-p", side=Side.BUY, price=100.0, qty=0.002, leaves_qty=0.0, cum_qty=0.002,
                       fee=0.1, fee_currency="USDT", ts_init=1))
    orders.append(VenueOrder(client_id="p", order_id="9", symbol="BTC/USDT:USDT", side="buy", status="FILLED",
                             qty=0.002, executed=0.002))
    fills.append(VenueFill(client_id="p", trade_id="t-p", symbol="BTC/USDT:USDT", side="buy", qty=0.002,
                           price=100.0, fee=0.1, fee_currency="USDT", time_ms=1))
    seen["s1"].fills.append(("BTC/USDT:USDT", "t-p", 0.002, 7))
    seen["s1"].position["BTC/USDT:USDT"] = 0.002
    assert balance(bus, orders, fills, strategies=seen, balance_change={"BTC": 0.0}).balanced


def test_study_results_missing_or_twice():
    tally = balance(BusOrders(), [], [], study_jobs={"st": {"j1", "j2", "j3"}},
                    study_results={"st": ["j1", "j2", "j2"]})
    assert (tally.lost, tally.duplicated, tally.study_results) == (1, 1, 3)


def test_journal_round_trip_from_an_offset(tmp_path):
    path = tmp_path / "s1.jsonl"
    journal = FillJournal(path)
    journal.started()
    journal.fill("BTC/USDT", "t1", 0.001, 0.001)
    offset = journal_size(path)
    journal.fill("BTC/USDT", "t2", 0.001, 0.002)
    journal.started()  # a restart: the position starts over from what is restored
    journal.restored("BTC/USDT", 0.002)
    journal.fill("BTC/USDT", "t3", -0.001, 0.001)
    journal.close()
    seen = read_journal(path, offset)
    assert [f[1] for f in seen.fills] == ["t2", "t3"]
    assert seen.position == {"BTC/USDT": pytest.approx(0.0)}
    assert len(seen.restored_at_ns) == 2
