"""Book deltas, backoff and the ccxt -> proto edge, on plain values."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.marketdata import parse
from tradebus.marketdata.book import LevelBook, delta_between, diff_levels
from tradebus.marketdata.emit import BarCloser, BookEmitter, trade_events
from tradebus.proto import BookDelta, BookSnapshot, FeedStatus, Trade, TradeBatch
from tradebus.retry import Backoff, BackoffSettings

prices = st.integers(1, 60).map(lambda i: i / 4)
qtys = st.integers(1, 5).map(float)


def snap(bids, asks, seq):
    return BookSnapshot(venue="v", symbol="S", bids=sorted(bids.items(), reverse=True)[:10],
                        asks=sorted(asks.items())[:10], depth=10, sequence=seq, ts_event=seq, ts_recv=seq)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(prices, qtys, max_size=15), st.dictionaries(prices, qtys, max_size=15)),
                min_size=1, max_size=12))
def test_deltas_rebuild_exactly_the_snapshot_sequence(books):
    snaps = [snap(b, a, i + 1) for i, (b, a) in enumerate(books)]
    book = LevelBook()
    book.reset(snaps[0])
    for old, new in zip(snaps, snaps[1:]):
        book.apply(delta_between(old, new))
        assert book.top() == (new.bids, new.asks) and book.sequence == new.sequence


def test_actions_are_add_modify_delete():
    a = snap({10.0: 1.0, 9.0: 1.0}, {11.0: 1.0}, 1)
    b = snap({10.0: 2.0, 8.0: 1.0}, {11.0: 1.0}, 2)
    assert [(c.side, c.price, c.qty, c.action) for c in diff_levels(a, b)] == [
        ("bid", 10.0, 2.0, "modify"), ("bid", 8.0, 1.0, "add"), ("bid", 9.0, 0.0, "delete")]


def test_book_emitter_cycle():
    em = BookEmitter("v", "S")
    first = em.on_snapshot(snap({1.0: 1.0}, {2.0: 1.0}, 1))
    assert [type(e).__name__ for e in first] == ["FeedStatus", "BookSnapshot", "FeedStatus"]
    assert [first[0].state, first[2].state] == ["snapshot_start", "snapshot_end"]
    assert em.on_snapshot(snap({1.0: 1.0}, {2.0: 1.0}, 2)) == []  # top N unchanged: nothing
    out = em.on_snapshot(snap({1.0: 3.0}, {2.0: 1.0}, 3))
    assert [type(e) for e in out] == [BookDelta, BookSnapshot] and out[0].first_sequence == 2
    assert isinstance(em.start()[0], FeedStatus) and em.prev is None


def test_backoff_grows_caps_and_resets():
    b = Backoff(BackoffSettings(initial=0.5, multiplier=2.0, cap=3.0))
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5
    with pytest.raises(ValueError):
        BackoffSettings(initial=1.0, multiplier=0.5)


def test_trade_events_batch_bursts():
    t = [Trade(venue="v", symbol="S", price=1.0 + i, qty=1.0, side="buy", trade_id=str(i), ts_event=i, ts_recv=i)
         for i in range(5)]
    assert trade_events(t[:1]) == t[:1]
    out = trade_events(t, max_batch=2)
    assert [type(e) for e in out] == [TradeBatch] * 3 and [x for b in out for x in b.trades()] == t


def test_bar_closer_closes_on_the_next_open():
    c = BarCloser()
    bar = lambda t, close: parse.bar("v", "S", "1m", [t, 1, 2, 0.5, close, 3], False, 0)  # noqa: E731
    assert [b.closed for b in c.on_bar(bar(0, 1.5))] == [False]
    out = c.on_bar(bar(60_000, 1.2))
    assert [(b.ts_open, b.closed, b.close) for b in out] == [(0, True, 1.5), (60_000_000_000, False, 1.2)]


GOOD = {"symbol": "BTC/USDT", "id": "7", "timestamp": 1000, "price": 10.5, "amount": 0.1, "side": "buy"}


@pytest.mark.parametrize("bad", [{"price": None}, {"price": float("nan")}, {"side": "up"}, {"price": -1.0},
                                 {"amount": "x"}, {"symbol": None} and {"timestamp": "soon"}])
def test_trades_that_do_not_parse_raise_value_errors(bad):
    with pytest.raises((ValueError, TypeError)):
        parse.trade("v", {**GOOD, **bad}, 1)


def test_good_values_convert():
    t = parse.trade("v", GOOD, 5)
    assert (t.price, t.qty, t.side, t.trade_id, t.ts_event, t.ts_recv) == (10.5, 0.1, "buy", "7", 10**9, 5)
    with pytest.raises(ValueError):
        parse.bar("v", "S", "1m", [0, 1, 0.5, 0.9, 1, 1], True, 0)  # high below open
    with pytest.raises(ValueError):
        parse.book_snapshot("v", "S", {"bids": [[1.0, math.inf]], "asks": []}, 5, 0)
    assert parse.timeframe_ms("4h") == 14_400_000
