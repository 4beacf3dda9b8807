"""Prometheus metrics of every tradebus service: their names and labels, and the HTTP endpoint.

Each service process serves ``/metrics`` on the port its deployment file entry names
(``services.<name>.metrics_port``, on ``metrics.host``); ``tradebus up`` gives each replica its own
port and writes the targets to ``<state_dir>/prometheus-targets.json`` (Prometheus file_sd).

Labels stay bounded: a subject becomes its *family* (:func:`subject_family`: ``md.trade``,
``ord.req``, ``acct.balance``, ...), never a symbol, an order id or an inbox token. The bus counts
messages in and out and decode errors (:mod:`tradebus.bus.client`); each service adds what only it
knows (orders by outcome, venue calls, consumer backlogs, jobs, strategy PnL, market data).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "subject_family",
    "count_in",
    "count_out",
    "count_bad",
    "observe_handler",
    "HANDLER_ERRORS",
    "ORDER_EVENTS",
    "VENUE_REQUEST_SECONDS",
    "VENUE_ERRORS",
    "RATE_LIMIT_USED",
    "CONSUMER_PENDING",
    "CONSUMER_ACK_PENDING",
    "BACKTEST_JOBS",
    "MARKETDATA_EVENTS",
    "watch_consumer",
    "STRATEGIES",
    "SERVICE_COUNTERS",
    "serve",
]

log = logging.getLogger("tradebus.metrics")

# --- the bus: every service ---------------------------------------------------------------------

MESSAGES_IN = Counter("tradebus_bus_messages_in_total", "Messages consumed (decoded or rejected), by subject family",
                      ["family"])
MESSAGES_OUT = Counter("tradebus_bus_messages_out_total", "Messages published, by subject family", ["family"])
BAD_MESSAGES = Counter("tradebus_bus_bad_messages_total",
                       "Messages rejected before a handler (undecodable, invalid, oversized)", ["family", "kind"])
HANDLER_SECONDS = Histogram("tradebus_handler_seconds", "Time a handler took for one message, by subject family",
                            ["family"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
HANDLER_ERRORS = Counter("tradebus_handler_errors_total", "Handlers that raised, by subject family", ["family"])

# --- order_router -------------------------------------------------------------------------------

ORDER_EVENTS = Counter("tradebus_order_events_total",
                       "Order events stored in ORDERS by the router: outcome (event type) and reject code",
                       ["venue", "event", "code"])
VENUE_REQUEST_SECONDS = Histogram("tradebus_venue_request_seconds", "Venue (ccxt) calls of the order router",
                                  ["venue", "method"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                                0.5, 1.0, 2.5, 5.0, 10.0))
VENUE_ERRORS = Counter("tradebus_venue_errors_total", "Venue calls that failed, by ccxt error class",
                       ["venue", "method", "error"])
RATE_LIMIT_USED = Gauge("tradebus_rate_limit_used_ratio",
                        "Use of the venue rate-limit rule closest to its limit (1 = at the limit)", ["venue", "scope"])

# --- JetStream consumers (router's ORDERS consumer, the workers' BT_JOBS consumer) -------------

CONSUMER_PENDING = Gauge("tradebus_consumer_pending", "Messages of the stream not yet delivered to the consumer",
                         ["stream", "consumer"])
CONSUMER_ACK_PENDING = Gauge("tradebus_consumer_ack_pending", "Messages delivered to the consumer, not yet acked",
                             ["stream", "consumer"])

# --- backtest_worker, market_data ---------------------------------------------------------------

BACKTEST_JOBS = Counter("tradebus_backtest_jobs_total", "Backtest jobs finished by this worker (done, dead, retried)",
                        ["outcome"])
MARKETDATA_EVENTS = Counter("tradebus_marketdata_events_total", "Market data events published, per venue and stream",
                            ["venue", "stream"])

# Families whose second token is bounded and worth telling apart; md and acct keep their last
# token (the stream or account kind) instead of the symbol/venue in between.
_TWO_TOKENS = frozenset({"ord", "bt", "svc", "$KV", "$JS"})
_LAST_TOKEN = frozenset({"md", "acct"})
_family_cache: dict[str, str] = {}
_FAMILY_CACHE_MAX = 10_000


def subject_family(subject: str) -> str:
    """The bounded label of ``subject``: ``md.<venue>.<sym>.trade`` -> ``md.trade``,
    ``ord.evt.sim.s1`` -> ``ord.evt``, ``acct.sim.balance`` -> ``acct.balance``, ``_INBOX.x`` -> ``_INBOX``."""
    family = _family_cache.get(subject)
    if family is not None:
        return family
    tokens = subject.split(".")
    head = tokens[0]
    if head in _LAST_TOKEN and len(tokens) > 2:
        family = f"{head}.{tokens[-1]}"
    elif head in _TWO_TOKENS and len(tokens) > 1:
        family = f"{head}.{tokens[1]}"
    elif head.startswith("_INBOX") or head.startswith("_R_"):
        family = "_INBOX"
    else:
        family = head
    if len(_family_cache) < _FAMILY_CACHE_MAX and not head.startswith(("_INBOX", "_R_")):
        _family_cache[subject] = family
    return family


# Label children cached by family: ``labels()`` takes a lock and builds a key on every call,
# a hot path (every market data message) should pay that once.
_in: dict[str, Any] = {}
_out: dict[str, Any] = {}
_handled: dict[str, Any] = {}


def _child(cache: dict[str, Any], metric: Any, family: str) -> Any:
    child = cache.get(family)
    if child is None:
        child = cache[family] = metric.labels(family)
    return child


def count_in(subject: str) -> str:
    """Count one consumed message on ``subject``; returns its family."""
    family = subject_family(subject)
    _child(_in, MESSAGES_IN, family).inc()
    return family


def count_out(subject: str) -> None:
    _child(_out, MESSAGES_OUT, subject_family(subject)).inc()


def count_bad(subject: str, kind: str) -> None:
    BAD_MESSAGES.labels(subject_family(subject), kind).inc()


def observe_handler(family: str, started: float, failed: bool = False) -> None:
    """Record a handler that began at ``started`` (``time.perf_counter()``)."""
    _child(_handled, HANDLER_SECONDS, family).observe(time.perf_counter() - started)
    if failed:
        HANDLER_ERRORS.labels(family).inc()


async def watch_consumer(consumer_info: Callable[[], Any], stream: str, consumer: str,
                         interval: float = 5.0) -> None:
    """Keep the pending gauges of ``stream``/``consumer`` current (``await consumer_info()`` each
    ``interval`` seconds) until cancelled; a failed look-up is logged once and retried."""
    failing = False
    while True:
        try:
            info = await consumer_info()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not failing:
                log.warning("consumer info of %s/%s failed: %s", stream, consumer, exc)
            failing = True
        else:
            failing = False
            CONSUMER_PENDING.labels(stream, consumer).set(info.num_pending or 0)
            CONSUMER_ACK_PENDING.labels(stream, consumer).set(info.num_ack_pending or 0)
        await asyncio.sleep(interval)


class _Sources(Collector):
    """Metrics read at scrape time from registered sources (a process may host several, e.g. tests).

    A scrape runs on the HTTP server's thread while the event loop changes the state it reads: a
    source that raises RuntimeError (a dict changed size under it) is read again."""

    def __init__(self, build: Callable[[list[Callable[[], Any]]], Iterable[Any]]) -> None:
        self._build = build
        self.sources: list[Callable[[], Any]] = []

    def add(self, source: Callable[[], Any]) -> Callable[[], None]:
        """Read ``source()`` at each scrape; returns the function that stops it."""
        self.sources.append(source)
        return lambda: self.sources.remove(source) if source in self.sources else None

    def collect(self):
        yield from self._build([_consistent(source) for source in list(self.sources)])


def _consistent(source: Callable[[], Any], attempts: int = 5) -> Callable[[], Any]:
    def read() -> Any:
        for attempt in range(attempts):
            try:
                return source()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        return None
    return read


def _strategy_metrics(sources: list[Callable[[], Any]]):
    position = GaugeMetricFamily("tradebus_strategy_position", "Position of a strategy in a symbol (base units)",
                                 labels=["strategy", "symbol"])
    pnl = GaugeMetricFamily("tradebus_strategy_pnl", "PnL of a strategy in a symbol (quote currency): "
                            "realized, unrealized, fees, net", labels=["strategy", "symbol", "kind"])
    for summary in sources:
        for item in summary():
            for symbol, s in item["symbols"].items():
                labels = [item["strategy"], symbol]
                position.add_metric(labels, s["position"])
                pnl.add_metric([*labels, "realized"], s["realized_pnl"])
                pnl.add_metric([*labels, "unrealized"], s["unrealized_pnl"])
                pnl.add_metric([*labels, "fees"], s["fees"])
                pnl.add_metric([*labels, "net"], s["realized_pnl"] + s["unrealized_pnl"] - s["fees"])
    return [position, pnl]


def _service_metrics(sources: list[Callable[[], Any]]):
    events = CounterMetricFamily("tradebus_service_events", "A service's own counters (the $SRV.STATS data)",
                                 labels=["counter"])
    for counters in sources:
        for name, value in counters().items():
            if isinstance(value, int | float):
                events.add_metric([name], value)
    return [events]


# Position and PnL of each hosted strategy: sources are ``Runner.summary`` (strategy_runner).
STRATEGIES = _Sources(_strategy_metrics)
# Each service's counters (``ServiceContext.status().counters``): orders sent, jobs done, ...
SERVICE_COUNTERS = _Sources(_service_metrics)
REGISTRY.register(STRATEGIES)
REGISTRY.register(SERVICE_COUNTERS)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` of this process on ``host:port`` (a daemon thread); OSError when taken."""
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
