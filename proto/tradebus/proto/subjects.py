"""Subject builders, stream and KV bucket names: the bus layout in one place (see SUBJECTS.md).

Symbols become one subject token: ``/`` and ``:`` turn into ``-`` (``BTC/USDT`` ->
``BTC-USDT``, ``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``, ``BTC/USD:BTC-240927`` ->
``BTC-USD-BTC-240927``) and every other character outside ``[A-Za-z0-9_]`` is written as
``=XX`` per UTF-8 byte (``-`` inside base or quote included), so ``token_symbol`` gives the
exact symbol back and a token is also a valid KV key and consumer name.
"""
from __future__ import annotations

import enum
import re
import string
import unicodedata
from functools import lru_cache
from typing import Any, NamedTuple

from .account import AccountEvent, Balance, GatewayStatus, Position, RateLimitInfo
from .backtest import BacktestDead, BacktestJob, BacktestMessage, BacktestProgress, BacktestResult
from .base import MdKind
from .control import AccountQuery, ControlMessage, ParamsUpdate, ServiceCommand, StrategyCommand
from .instrument import Instrument
from .market import (
    BBO,
    Bar,
    BookDelta,
    BookSnapshot,
    FeedStatus,
    FundingRate,
    MarketDataEvent,
    Trade,
    TradeBatch,
)
from .order_events import OrderEvent
from .orders import OrderRequest

__all__ = [
    "AcctKind",
    "MdKind",
    "symbol_token",
    "token_symbol",
    "venue_token",
    "name_token",
    "md_subject",
    "md_wildcard",
    "order_request_subject",
    "order_request_wildcard",
    "order_request_strategy",
    "control_strategy",
    "order_event_subject",
    "order_event_wildcard",
    "EXTERNAL_STRATEGY",
    "account_subject",
    "account_wildcard",
    "control_subject",
    "control_wildcard",
    "params_subject",
    "service_subject",
    "account_query_subject",
    "service_wildcard",
    "BT_JOB_SUBJECT",
    "bt_job_subject",
    "bt_result_subject",
    "bt_dead_subject",
    "bt_progress_subject",
    "subject_for",
    "payload_type",
    "StreamSpec",
    "ORDERS_STREAM",
    "ORDERS_SUBJECTS",
    "BT_JOBS_STREAM",
    "BT_JOBS_SUBJECTS",
    "BT_RESULTS_STREAM",
    "BT_RESULTS_SUBJECTS",
    "STREAMS",
    "BT_WORKER_CONSUMER",
    "router_consumer",
    "KV_STRATEGY_PARAMS",
    "KV_ROUTER_STATE",
    "KV_BT_STUDIES",
    "KV_BUCKETS",
    "OBJECT_BT_DATASETS",
    "params_key",
    "router_order_key",
    "router_position_key",
    "router_kill_key",
    "router_carried_key",
]


class AcctKind(enum.StrEnum):
    """Account kind: the last token of an ``acct.<venue>.<kind>`` subject."""

    BALANCE = "balance"
    POSITION = "position"
    RATELIMIT = "ratelimit"
    GATEWAY = "gateway"


# --- tokens -----------------------------------------------------------------------------------

_LITERAL = frozenset(string.ascii_letters + string.digits + "_")
_LITERAL_SUFFIX = _LITERAL | {"-"}  # after the settle ':' a '-' is kept (expiry, strike, type)
_HEX = frozenset("0123456789ABCDEF")
_TOKEN = re.compile(r"[A-Za-z0-9_=-]+")
_VENUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol must be a non-empty str, got {symbol!r}")
    for ch in symbol:
        if ch in "*>" or ch.isspace() or unicodedata.category(ch)[0] == "C":
            raise ValueError(f"symbol {symbol!r} contains {ch!r}, which cannot go into a subject")


def _escape(part: str, literal: frozenset[str]) -> str:
    if all(ch in literal for ch in part):
        return part
    return "".join(ch if ch in literal else "".join(f"={b:02X}" for b in ch.encode()) for ch in part)


def _unescape(part: str) -> str:
    if "=" not in part:
        return part
    out = bytearray()
    i = 0
    while i < len(part):
        if part[i] == "=":
            hx = part[i + 1 : i + 3]
            if len(hx) != 2 or not set(hx) <= _HEX:
                raise ValueError(f"bad escape {part[i:i + 3]!r} in symbol token")
            out.append(int(hx, 16))
            i += 3
        else:
            out += part[i].encode()
            i += 1
    return out.decode("utf-8")


@lru_cache(maxsize=8192)
def symbol_token(symbol: str) -> str:
    """Turn a ccxt unified symbol into a subject token (``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``)."""
    _check_symbol(symbol)
    base, slash, rest = symbol.partition("/")
    if not slash:
        return _escape(symbol, _LITERAL)
    quote, colon, settle = rest.partition(":")
    token = f"{_escape(base, _LITERAL)}-{_escape(quote, _LITERAL)}"
    if colon:
        token += "-" + _escape(settle, _LITERAL_SUFFIX)
    return token


@lru_cache(maxsize=8192)
def token_symbol(token: str) -> str:
    """Inverse of ``symbol_token``; raises ValueError for anything it would not produce."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ValueError(f"not a symbol token: {token!r}")
    try:
        parts = [_unescape(p) for p in token.split("-", 2)]
        symbol = parts[0] if len(parts) == 1 else f"{parts[0]}/{parts[1]}"
        if len(parts) == 3:
            symbol += f":{parts[2]}"
        canonical = symbol_token(symbol)
    except ValueError as exc:
        raise ValueError(f"not a symbol token: {token!r} ({exc})") from None
    if canonical != token:
        raise ValueError(f"not a canonical symbol token: {token!r} (canonical: {canonical!r})")
    return symbol


def venue_token(venue: str) -> str:
    """Check a venue id (lowercase ccxt id or route name: ``[a-z0-9][a-z0-9_-]*``) and return it."""
    if not isinstance(venue, str) or not _VENUE.fullmatch(venue):
        raise ValueError(f"venue must match [a-z0-9][a-z0-9_-]{{0,63}}, got {venue!r}")
    return venue


def name_token(value: str, what: str = "name") -> str:
    """Check a strategy/command/study/service name (``[A-Za-z0-9_-]{1,64}``) and return it."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{what} must match [A-Za-z0-9_-]{{1,64}}, got {value!r}")
    return value


def _wildcard(prefix: str, *tokens: str | None) -> str:
    """Join tokens, '*' for an inner None and a single '>' for trailing Nones."""
    parts = list(tokens)
    while parts and parts[-1] is None:
        parts.pop()
    tail = [] if len(parts) == len(tokens) else [">"]
    return ".".join([prefix, *("*" if p is None else p for p in parts), *tail])


# --- market data: md.<venue>.<symbol>.<kind> -----------------------------------------------------

@lru_cache(maxsize=8192)
def md_subject(venue: str, symbol: str, kind: MdKind | str) -> str:
    """``md.<venue>.<symbol token>.<kind>``."""
    return f"md.{venue_token(venue)}.{symbol_token(symbol)}.{MdKind(kind).value}"


def md_wildcard(venue: str | None = None, symbol: str | None = None,
                kind: MdKind | str | None = None) -> str:
    """Subscription subject for market data; None matches anything (``md_wildcard()`` = ``md.>``)."""
    return _wildcard(
        "md",
        None if venue is None else venue_token(venue),
        None if symbol is None else symbol_token(symbol),
        None if kind is None else MdKind(kind).value,
    )


# --- orders: ord.req.<venue>.<strategy>, ord.evt.<venue>.<strategy> ------------------------------

def order_request_subject(venue: str, strategy: str) -> str:
    """``ord.req.<venue>.<strategy>``: the strategy's order requests to one venue account.

    The strategy token is the sender's identity: NATS permissions let each strategy's user publish
    only under its own token, and the router refuses a request whose ``strategy`` field differs.
    """
    return f"ord.req.{venue_token(venue)}.{name_token(strategy, 'strategy')}"


def order_request_wildcard(venue: str | None = None) -> str:
    """Order requests of one venue account (``ord.req.<venue>.>``, the router's filter) or all (``ord.req.>``)."""
    return "ord.req.>" if venue is None else f"ord.req.{venue_token(venue)}.>"


def order_request_strategy(subject: str) -> str | None:
    """The strategy token of an ``ord.req.<venue>.<strategy>`` subject (None for any other subject)."""
    parts = subject.split(".")
    return parts[3] if len(parts) == 4 and parts[0] == "ord" and parts[1] == "req" else None


def order_event_subject(venue: str, strategy: str) -> str:
    """``ord.evt.<venue>.<strategy>``: order events and fills for the strategy's orders."""
    return f"ord.evt.{venue_token(venue)}.{name_token(strategy, 'strategy')}"


EXTERNAL_STRATEGY = "_external"
"""Strategy token for events on orders no strategy placed (manual trades on the venue account)."""


def order_event_wildcard(venue: str | None = None, strategy: str | None = None) -> str:
    """Order events of a venue and/or strategy (``ord.evt.*.<strategy>`` for one strategy)."""
    if venue is None and strategy is None:
        return "ord.evt.>"
    return "ord.evt.{}.{}".format(
        "*" if venue is None else venue_token(venue),
        "*" if strategy is None else name_token(strategy, "strategy"),
    )


# --- account: acct.<venue>.<kind> ----------------------------------------------------------------

def account_subject(venue: str, kind: AcctKind | str) -> str:
    """``acct.<venue>.<kind>`` with kind balance | position | ratelimit | gateway."""
    return f"acct.{venue_token(venue)}.{AcctKind(kind).value}"


def account_wildcard(venue: str | None = None, kind: AcctKind | str | None = None) -> str:
    """Account events of a venue and/or kind (``acct.>`` for all)."""
    return _wildcard(
        "acct",
        None if venue is None else venue_token(venue),
        None if kind is None else AcctKind(kind).value,
    )


# --- control: ctl.<strategy>.<command>, svc.<service>.<command> ---------------------------------

def control_subject(strategy: str, command: str) -> str:
    """``ctl.<strategy>.<command>``: a StrategyCommand request (or ParamsUpdate on ``params``)."""
    return f"ctl.{name_token(strategy, 'strategy')}.{name_token(command, 'command')}"


def control_strategy(subject: str) -> str | None:
    """The strategy token of a ``ctl.<strategy>.<command>`` subject (None for any other subject)."""
    parts = subject.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "ctl" else None


def control_wildcard(strategy: str | None = None) -> str:
    """Everything for one strategy (``ctl.<strategy>.*``) or for all (``ctl.>``)."""
    return "ctl.>" if strategy is None else f"ctl.{name_token(strategy, 'strategy')}.*"


def params_subject(strategy: str) -> str:
    """``ctl.<strategy>.params``: ParamsUpdate for one strategy."""
    return control_subject(strategy, "params")


def service_subject(service: str, command: str) -> str:
    """``svc.<service>.<command>``: a ServiceCommand request to any instance of a service."""
    return f"svc.{name_token(service, 'service')}.{name_token(command, 'command')}"


def account_query_subject(venue: str) -> str:
    """``svc.order_router.query.<venue>``: AccountQuery requests, answered by that venue's router."""
    return f"{service_subject('order_router', 'query')}.{venue_token(venue)}"


def service_wildcard(service: str | None = None) -> str:
    """Commands of one service (``svc.<service>.*``) or of all (``svc.>``)."""
    return "svc.>" if service is None else f"svc.{name_token(service, 'service')}.*"

# --- backtest farm: bt.job[.<study>], bt.result.<study>, bt.dead.<study>, bt.progress.<study> ----

BT_JOB_SUBJECT = "bt.job"


def bt_job_subject(study: str | None = None) -> str:
    """``bt.job.<study>`` for a study's jobs (purgeable per study), ``bt.job`` for a lone job."""
    return BT_JOB_SUBJECT if study is None else f"{BT_JOB_SUBJECT}.{name_token(study, 'study')}"


def bt_result_subject(study: str) -> str:
    """``bt.result.<study>``: BacktestResult of each job of the study."""
    return f"bt.result.{name_token(study, 'study')}"


def bt_dead_subject(study: str) -> str:
    """``bt.dead.<study>``: BacktestDead for jobs given up on."""
    return f"bt.dead.{name_token(study, 'study')}"


def bt_progress_subject(study: str) -> str:
    """``bt.progress.<study>``: BacktestProgress (core NATS, not persisted)."""
    return f"bt.progress.{name_token(study, 'study')}"


# --- message -> subject, subject -> payload type ------------------------------------------------

_MD_KIND: dict[type, MdKind] = {
    Trade: MdKind.TRADE,
    TradeBatch: MdKind.TRADE,
    BookSnapshot: MdKind.BOOK,
    BookDelta: MdKind.DELTA,
    BBO: MdKind.BBO,
    Bar: MdKind.BAR,
    FundingRate: MdKind.FUNDING,
    FeedStatus: MdKind.STATUS,
    Instrument: MdKind.INSTRUMENT,
}
_ACCT_KIND: dict[type, AcctKind] = {
    Balance: AcctKind.BALANCE,
    Position: AcctKind.POSITION,
    RateLimitInfo: AcctKind.RATELIMIT,
    GatewayStatus: AcctKind.GATEWAY,
}
_ORDER_REQUESTS = frozenset(OrderRequest.__args__)
_ORDER_EVENTS = frozenset(OrderEvent.__args__)


def subject_for(msg: Any) -> str:
    """The subject a message is published on (ValueError for reply-only types)."""
    cls = type(msg)
    if cls in _MD_KIND:
        return md_subject(msg.venue, msg.symbol, _MD_KIND[cls])
    if cls in _ORDER_REQUESTS:
        return order_request_subject(msg.venue, msg.strategy)
    if cls in _ORDER_EVENTS:
        return order_event_subject(msg.venue, msg.strategy)
    if cls in _ACCT_KIND:
        return account_subject(msg.venue, _ACCT_KIND[cls])
    match msg:
        case StrategyCommand():
            return control_subject(msg.strategy, msg.command)
        case ParamsUpdate():
            return params_subject(msg.strategy)
        case ServiceCommand():
            return service_subject(msg.service, msg.command)
        case AccountQuery():
            return account_query_subject(msg.venue)
        case BacktestJob():
            return bt_job_subject(msg.study_id)
        case BacktestResult():
            return bt_result_subject(msg.study_id)
        case BacktestDead():
            return bt_dead_subject(msg.job.study_id)
        case BacktestProgress():
            return bt_progress_subject(msg.study_id)
    raise ValueError(f"{cls.__name__} has no subject of its own (it is a reply or not a message)")


_PAYLOADS: tuple[tuple[str, Any], ...] = (
    ("md.", MarketDataEvent),
    ("ord.req.", OrderRequest),
    ("ord.evt.", OrderEvent),
    ("acct.", AccountEvent),
    ("ctl.", ControlMessage),
    ("svc.", ControlMessage),
    ("bt.", BacktestMessage),
)


def payload_type(subject: str) -> Any:
    """The union a message on ``subject`` must decode as (ValueError for foreign subjects)."""
    for prefix, union in _PAYLOADS:
        if subject.startswith(prefix):
            return union
    raise ValueError(f"{subject!r} is not a tradebus subject")


# --- JetStream streams, consumers and KV buckets -----------------------------------------------

class StreamSpec(NamedTuple):
    """What the bus library declares for a JetStream stream."""

    name: str
    subjects: tuple[str, ...]
    retention: str  # "limits" or "workqueue"
    description: str


# ORDERS keeps requests and events (an audit log the runner can replay). Requests and events
# share no subject prefix below "ord.", so ORDERS can be split into a work-queue stream on
# ord.req.> and a limits stream on ord.evt.> without renaming any subject.
ORDERS_STREAM = "ORDERS"
ORDERS_SUBJECTS = ("ord.req.>", "ord.evt.>")
BT_JOBS_STREAM = "BT_JOBS"
BT_JOBS_SUBJECTS = (BT_JOB_SUBJECT, f"{BT_JOB_SUBJECT}.>")
BT_RESULTS_STREAM = "BT_RESULTS"
BT_RESULTS_SUBJECTS = ("bt.result.>", "bt.dead.>")

STREAMS = (
    StreamSpec(ORDERS_STREAM, ORDERS_SUBJECTS, "limits", "order requests and order events"),
    StreamSpec(BT_JOBS_STREAM, BT_JOBS_SUBJECTS, "workqueue", "backtest jobs, one ack each"),
    StreamSpec(BT_RESULTS_STREAM, BT_RESULTS_SUBJECTS, "limits", "backtest results and dead letters"),
)

BT_WORKER_CONSUMER = "bt_workers"
"""Durable pull consumer on BT_JOBS shared by every backtest worker."""


def router_consumer(venue: str) -> str:
    """Durable pull consumer on ORDERS (filter ``ord.req.<venue>.>``) of the venue's router."""
    return f"router_{venue_token(venue)}"


KV_STRATEGY_PARAMS = "strategy_params"
KV_ROUTER_STATE = "router_state"
KV_BT_STUDIES = "bt_studies"
KV_BUCKETS = (KV_STRATEGY_PARAMS, KV_ROUTER_STATE, KV_BT_STUDIES)
OBJECT_BT_DATASETS = "bt_datasets"
"""Object store of backtest bar datasets, keyed by content hash."""


def params_key(strategy: str) -> str:
    """Key of a strategy's merged params (a ParamsUpdate) in ``strategy_params``."""
    return name_token(strategy, "strategy")


def router_order_key(venue: str, client_order_id: str) -> str:
    """Key of an order's last OrderStatus in ``router_state``: ``<venue>.order.<client id>``."""
    return f"{venue_token(venue)}.order.{name_token(client_order_id, 'client_order_id')}"


def router_kill_key(venue: str, strategy: str | None = None) -> str:
    """Key of an engaged kill switch in ``router_state``: ``<venue>.kill.<strategy>``, or
    ``<venue>.kill`` for every strategy; deleted on release."""
    base = f"{venue_token(venue)}.kill"
    return base if strategy is None else f"{base}.{name_token(strategy, 'strategy')}"


def router_carried_key(venue: str) -> str:
    """Key of the strategy positions carried over from orders purged from ``router_state``:
    ``<venue>.carried``."""
    return f"{venue_token(venue)}.carried"


def router_position_key(venue: str, symbol: str) -> str:
    """Key of the last reconciled Position in ``router_state``: ``<venue>.position.<symbol token>``."""
    return f"{venue_token(venue)}.position.{symbol_token(symbol)}"
