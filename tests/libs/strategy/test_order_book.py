"""OrderBook against a dict of levels: any sequence of level changes gives the same book."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.strategy import OrderBook

changes = st.lists(st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 300),
                             st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.25])), max_size=400)


@settings(max_examples=60, deadline=None)
@given(changes)
def test_book_levels_match_a_reference(ops):
    book = OrderBook()
    ref = {"bid": {}, "ask": {}}
    for side, tick, qty in ops:
        price = tick / 4
        book.update(side, price, qty)
        if qty:
            ref[side][price] = qty
        else:
            ref[side].pop(price, None)
    assert book.bids(None) == sorted(ref["bid"].items(), reverse=True)
    assert book.asks(None) == sorted(ref["ask"].items())
    assert book.best_bid == (max(ref["bid"]) if ref["bid"] else None)
    assert book.best_ask == (min(ref["ask"]) if ref["ask"] else None)
    assert (book.bid_depth, book.ask_depth) == (len(ref["bid"]), len(ref["ask"]))


def test_book_snapshot_and_bad_levels():
    book = OrderBook()
    book.set_snapshot([(10.0, 1.0), (9.0, 2.0)], [(11.0, 1.0)], ts_ns=5)
    assert (book.best_bid, book.best_ask, book.mid, book.spread, book.ts_ns) == (10.0, 11.0, 10.5, 1.0, 5)
    book.set_snapshot([], [])
    assert book.best_bid is None and book.mid is None and book.bids() == []
    with pytest.raises(ValueError, match="book side"):
        book.update("up", 1.0, 1.0)
    with pytest.raises(ValueError, match="finite price"):
        book.update("bid", float("nan"), 1.0)
