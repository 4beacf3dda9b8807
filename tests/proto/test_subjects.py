"""Subject builders, symbol tokens, streams and KV names."""
from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tradebus import proto as p
from tradebus.proto import subjects as s

from .samples import SAMPLES

TOKEN = re.compile(r"[A-Za-z0-9_=-]+")
KV_KEY = re.compile(r"[-/_=.a-zA-Z0-9]+")
KV_BUCKET = re.compile(r"[a-zA-Z0-9_-]+")


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: '*' is one token, a final '>' one or more."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, token in enumerate(pat):
        if token == ">":
            return len(sub) > i
        if i >= len(sub) or (token != "*" and token != sub[i]):
            return False
    return len(pat) == len(sub)


def valid_subject(subject: str) -> bool:
    return all(t and not set(t) & set("*> \t\r\n") for t in subject.split("."))


@pytest.mark.parametrize("symbol, token", [
    ("BTC/USDT", "BTC-USDT"),
    ("BTC/USDT:USDT", "BTC-USDT-USDT"),
    ("ETH/USD:ETH", "ETH-USD-ETH"),
    ("BTC/USDT:USDT-240927", "BTC-USDT-USDT-240927"),
    ("BTC/USD:BTC-240927-60000-C", "BTC-USD-BTC-240927-60000-C"),
    ("1000PEPE/USDT", "1000PEPE-USDT"),
    ("BTCUSDT", "BTCUSDT"),
    ("BTC-PERP", "BTC=2DPERP"),
    ("BTC.D/USDT", "BTC=2ED-USDT"),
    ("A-B/C", "A=2DB-C"),
    ("A/B/C", "A-B=2FC"),
    ("我/USDT", "=E6=88=91-USDT"),
])
def test_symbol_tokens(symbol, token):
    assert s.symbol_token(symbol) == token
    assert s.token_symbol(token) == symbol


@pytest.mark.parametrize("bad", ["", " ", "BTC /USDT", "BTC/USDT\n", "BTC\t", "BTC*", "BTC/>", "*", ">",
                                 "a\x00b", "a\u200bb", "a\u3000b"])
def test_symbols_that_cannot_be_tokens(bad):
    with pytest.raises(ValueError, match="symbol"):
        s.symbol_token(bad)


@pytest.mark.parametrize("bad", ["", "BTC.USDT", "BTC/USDT", "BTC USDT", "BTC*", "a>", "=4", "=zz", "a=2e",
                                 "=41", "BTC-USDT-USDT=2D1", "=FF", "BTC:USDT"])
def test_tokens_that_are_not_symbol_tokens(bad):
    with pytest.raises(ValueError, match="token"):
        s.token_symbol(bad)


symbol_chars = st.characters(blacklist_categories=("C",), blacklist_characters="*>").filter(lambda c: not c.isspace())
any_symbol = st.text(symbol_chars, min_size=1, max_size=30)
code = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8)
ccxt_symbol = st.builds(
    lambda b, q, settle, expiry, option: f"{b}/{q}" + (f":{settle}{expiry}{option}" if settle else ""),
    code, code, st.none() | code, st.sampled_from(["", "-240927", "-251226"]),
    st.sampled_from(["", "-60000-C", "-3500-P"]),
)


@given(any_symbol | ccxt_symbol)
@example("BTC/USDT:USDT")
@example("A/B:C:D/E-F.G")
@example("/")
@example("-")
@example("=")
def test_symbol_token_round_trip(symbol):
    token = s.symbol_token(symbol)
    assert TOKEN.fullmatch(token) and KV_KEY.fullmatch(token)
    assert s.token_symbol(token) == symbol


@given(ccxt_symbol)
def test_unified_symbols_only_swap_separators(symbol):
    assert s.symbol_token(symbol) == symbol.replace("/", "-").replace(":", "-")


@given(st.text(max_size=20))
def test_token_symbol_accepts_only_canonical_tokens(text):
    try:
        symbol = s.token_symbol(text)
    except ValueError:
        return
    assert s.symbol_token(symbol) == text


def test_token_checks():
    for venue in ["binance", "binanceusdm", "sim", "okx", "binance_sub1", "kraken-futures"]:
        assert s.venue_token(venue) == venue
    for bad in ["", "Binance", "bin.ance", "bin ance", "*", ">", "-x", "x" * 65]:
        with pytest.raises(ValueError, match="venue"):
            s.venue_token(bad)
    assert s.name_token("sma_cross-2") == "sma_cross-2"
    for bad in ["", "a.b", "a b", "a*", "a>", "ü", "x" * 65]:
        with pytest.raises(ValueError, match="strategy"):
            s.name_token(bad, "strategy")


def test_market_data_subjects():
    assert s.md_subject("binance", "BTC/USDT", "trade") == "md.binance.BTC-USDT.trade"
    assert s.md_subject("binanceusdm", "BTC/USDT:USDT", p.MdKind.DELTA) == "md.binanceusdm.BTC-USDT-USDT.delta"
    with pytest.raises(ValueError):
        s.md_subject("binance", "BTC/USDT", "trades")
    with pytest.raises(ValueError):
        s.md_subject("Binance", "BTC/USDT", "trade")
    assert s.md_wildcard() == "md.>"
    assert s.md_wildcard("binance") == "md.binance.>"
    assert s.md_wildcard("binance", "BTC/USDT") == "md.binance.BTC-USDT.>"
    assert s.md_wildcard("binance", "BTC/USDT", "bbo") == "md.binance.BTC-USDT.bbo"
    assert s.md_wildcard(kind="trade") == "md.*.*.trade"
    assert s.md_wildcard(symbol="ETH/USDT") == "md.*.ETH-USDT.>"
    assert matches(s.md_wildcard(kind="trade"), s.md_subject("sim", "ETH/USDT", "trade"))
    assert not matches(s.md_wildcard(kind="trade"), s.md_subject("sim", "ETH/USDT", "bbo"))


def test_order_account_control_backtest_subjects():
    assert s.order_request_subject("binance", "sma") == "ord.req.binance.sma"
    assert s.order_request_wildcard() == "ord.req.>"
    assert s.order_request_wildcard("binance") == "ord.req.binance.>"
    assert matches(s.order_request_wildcard("binance"), s.order_request_subject("binance", "sma"))
    assert not matches(s.order_request_wildcard("binance"), s.order_request_subject("binance2", "sma"))
    assert s.order_request_strategy("ord.req.binance.sma") == "sma"
    assert s.order_request_strategy("ord.req.binance") is None
    assert s.order_request_strategy("ord.evt.binance.sma") is None
    assert s.control_strategy("ctl.sma.start") == "sma" and s.control_strategy("ctl.sma") is None
    with pytest.raises(ValueError):
        s.order_request_subject("binance", "a.b")
    assert s.order_event_subject("binance", "sma") == "ord.evt.binance.sma"
    assert s.order_event_wildcard() == "ord.evt.>"
    assert s.order_event_wildcard(strategy="sma") == "ord.evt.*.sma"
    assert s.order_event_wildcard("binance") == "ord.evt.binance.*"
    assert s.account_subject("binance", "balance") == "acct.binance.balance"
    assert s.account_wildcard("binance") == "acct.binance.>"
    assert s.account_wildcard(kind=s.AcctKind.GATEWAY) == "acct.*.gateway"
    with pytest.raises(ValueError):
        s.account_subject("binance", "balances")
    assert s.control_subject("sma", "start") == "ctl.sma.start"
    assert s.params_subject("sma") == "ctl.sma.params"
    assert s.control_wildcard("sma") == "ctl.sma.*" and s.control_wildcard() == "ctl.>"
    assert s.service_subject("order_router", "status") == "svc.order_router.status"
    assert s.service_wildcard() == "svc.>" and s.service_wildcard("market_data") == "svc.market_data.*"
    assert s.BT_JOB_SUBJECT == "bt.job" and s.bt_job_subject() == "bt.job"
    assert s.bt_job_subject("sweep1") == "bt.job.sweep1"
    assert s.bt_result_subject("sweep1") == "bt.result.sweep1"
    assert s.bt_dead_subject("sweep1") == "bt.dead.sweep1"
    assert s.bt_progress_subject("sweep1") == "bt.progress.sweep1"
    with pytest.raises(ValueError, match="strategy"):
        s.order_event_subject("binance", "my strategy")
    with pytest.raises(ValueError, match="study"):
        s.bt_result_subject("a.b")


REPLY_ONLY = {p.CommandResult, p.ServiceStatus, p.AccountSnapshot}
STORED = {p.NewOrder, p.CancelOrder, p.CancelAll, p.ModifyOrder, p.BacktestJob, p.BacktestResult, p.BacktestDead}
STORED |= set(p.OrderEvent.__args__)


@pytest.mark.parametrize("cls", sorted(SAMPLES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_subject_for_every_message(cls):
    msg = SAMPLES[cls]
    if cls in REPLY_ONLY:
        with pytest.raises(ValueError, match="no subject"):
            s.subject_for(msg)
        return
    subject = s.subject_for(msg)
    assert valid_subject(subject)
    assert cls in s.payload_type(subject).__args__
    streams = [spec.name for spec in s.STREAMS if any(matches(f, subject) for f in spec.subjects)]
    assert len(streams) == (1 if cls in STORED else 0), (subject, streams)


def test_payload_type():
    assert s.payload_type("md.binance.BTC-USDT.trade") is p.MarketDataEvent
    assert s.payload_type("ord.req.binance.sma") is p.OrderRequest
    assert s.payload_type("ord.evt.binance.sma") is p.OrderEvent
    assert s.payload_type("acct.binance.balance") is p.AccountEvent
    assert s.payload_type("ctl.sma.params") is p.ControlMessage
    assert s.payload_type("svc.order_router.status") is p.ControlMessage
    assert s.payload_type("bt.job") is p.BacktestMessage
    with pytest.raises(ValueError):
        s.payload_type("$SRV.PING")


def test_streams():
    assert {spec.name for spec in s.STREAMS} == {s.ORDERS_STREAM, s.BT_JOBS_STREAM, s.BT_RESULTS_STREAM}
    by_name = {spec.name: spec for spec in s.STREAMS}
    assert by_name["ORDERS"].subjects == ("ord.req.>", "ord.evt.>")
    assert by_name["BT_JOBS"].retention == "workqueue"
    assert {by_name["ORDERS"].retention, by_name["BT_RESULTS"].retention} == {"limits"}
    # requests and events never share a subject, so ORDERS can be split into two streams
    assert not matches("ord.req.>", s.order_event_subject("req", "x"))
    assert not matches("ord.evt.>", s.order_request_subject("evt", "x"))
    # no subject belongs to two streams
    probes = ["ord.req.binance.sma", "ord.evt.binance.sma", "bt.job", "bt.job.s1", "bt.result.s1", "bt.dead.s1",
              "bt.progress.s1", "md.sim.BTC-USDT.trade", "ctl.sma.params", "svc.market_data.status"]
    for subject in probes:
        holders = [spec.name for spec in s.STREAMS if any(matches(f, subject) for f in spec.subjects)]
        assert len(holders) <= 1, subject


def test_consumers_and_kv_names():
    for name in [s.BT_WORKER_CONSUMER, s.router_consumer("binance_sub1")]:
        assert not set(name) & set(".*> ")
    for bucket in (*s.KV_BUCKETS, s.OBJECT_BT_DATASETS):
        assert KV_BUCKET.fullmatch(bucket)
    assert s.KV_BUCKETS == (s.KV_STRATEGY_PARAMS, s.KV_ROUTER_STATE, s.KV_BT_STUDIES)
    assert s.params_key("sma") == "sma"
    assert s.router_order_key("binance", "sma-000001") == "binance.order.sma-000001"
    assert s.router_position_key("binanceusdm", "BTC/USDT:USDT") == "binanceusdm.position.BTC-USDT-USDT"
    for key in [s.router_order_key("binance", "x"), s.router_position_key("binance", "我踏马/USDT")]:
        assert KV_KEY.fullmatch(key)


def test_symbol_rejection_covers_control_characters():
    bad = [chr(c) for c in range(0x20)] + ["\x7f", "\u2028", "\ufeff"]
    for ch in bad:
        assert unicodedata.category(ch)[0] == "C" or ch.isspace()
        with pytest.raises(ValueError):
            s.symbol_token(f"A{ch}/B")
