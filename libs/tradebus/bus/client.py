"""Typed publish/subscribe, request-reply and JetStream over NATS, with bad input counted and survived.

    bus = await Bus.connect(NatsConfig(url=server.url, name="strategy_runner"))
    await bus.subscribe("md.sim.>", MarketDataEvent, on_md)
    await bus.publish("md.sim.BTC-USDT.trade", Trade(...))
    reply = await bus.request("svc.echo", Ping(...), Pong)

Every message in (through :meth:`Bus.decode`) and out is counted per subject family in the
process's Prometheus metrics (:mod:`tradebus.metrics`), and each handler's time is observed.
A message that does not decode, has the wrong type for its subject, fails validation or is larger
than ``max_message_bytes`` never reaches the handler: it is counted per subject and reason, logged
at most once per subject per ``bad_log_interval`` seconds, and answered with a service error when
it was a request. A handler that raises is logged and counted; the subscription carries on.

Services do everything through ``Bus`` methods (publishing pre-encoded bytes, replies, service
discovery, streams, consumers, KV buckets); ``bus.nc`` and ``bus.js`` are for this package.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.micro import add_service
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER
from nats.micro.service import Service

from tradebus import metrics
from tradebus.config import NatsConfig
from tradebus.proto.codec import decoder_for, encode

from . import jetstream
from .config import connect_options, masked_url
from .discovery import discover

__all__ = ["Bus", "BusUnreachable", "BadInput", "RequestError", "Batcher", "PubAck", "DEFAULT_MAX_MESSAGE_BYTES"]

log = logging.getLogger("tradebus.bus")

T = TypeVar("T")
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024


class BusUnreachable(nats.errors.NoServersError):
    """No NATS server at ``url`` accepted a connection; ``reason`` is the last error."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot reach NATS at {masked_url(self.url)}: {self.reason}"


class RequestError(Exception):
    """A request was answered with a service error (``Nats-Service-Error`` headers)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class BadInput:
    """Counts rejected messages per (subject, reason kind) and rate-limits the log lines."""

    def __init__(self, logger: logging.Logger = log, interval: float = 10.0) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._logger = logger
        self._interval = interval
        self._last_logged: dict[str, float] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, subject: str, kind: str, reason: str) -> None:
        self.counts[(subject, kind)] += 1
        metrics.count_bad(subject, kind)
        now = time.monotonic()
        last = self._last_logged.get(subject)
        if last is None or now - last >= self._interval:
            self._last_logged[subject] = now
            total = sum(n for (s, _), n in self.counts.items() if s == subject)
            self._logger.warning("bad message on %s (%s): %s [%d rejected on this subject]", subject, kind, reason, total)

    def by_kind(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, kind), n in self.counts.items():
            out[kind] += n
        return dict(out)


def _classify(exc: Exception) -> str:
    if isinstance(exc, msgspec.ValidationError):
        return "invalid"
    return "undecodable"


class Bus:
    """A NATS connection with typed codecs. Create with :meth:`connect`."""

    def __init__(
        self,
        nc: Client,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        bad_log_interval: float = 10.0,
        logger: logging.Logger = log,
    ) -> None:
        self.nc = nc
        self.max_message_bytes = max_message_bytes
        self.bad_input = BadInput(logger, bad_log_interval)
        self.handler_errors = 0
        self.received = 0
        self.published = 0
        self._log = logger
        self._js = None
        self._acks: _JsAcks | None = None
        self.stream_replicas = 1  # of what this connection declares; connect() takes it from NatsConfig

    @classmethod
    async def connect(cls, config: NatsConfig | str | None = None, *, retry_first_connect: bool = True,
                      **bus_options: Any) -> Bus:
        """Connect using ``config`` (a NatsConfig, a URL, or None for the environment's default).

        A service keeps trying for ``initial_connect_timeout`` (NATS may start after it); with
        ``retry_first_connect=False`` (the CLI) each server gets one more try at once, no wait and
        no warning per attempt. Either way failure raises :class:`BusUnreachable` with the last
        error. Once connected, reconnects follow ``config`` in both cases.
        """
        if config is None or isinstance(config, str):
            config = NatsConfig.from_env(url=config)
        logger = bus_options.get("logger", log)
        client: list[Client] = []
        first_errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            if not client:
                first_errors.append(exc)
                if not retry_first_connect:
                    return  # the caller gets it in BusUnreachable
            logger.warning("nats: %s", exc)

        async def on_disconnect() -> None:
            closing = client and (client[0].is_closed or client[0].is_draining)
            logger.log(logging.DEBUG if closing else logging.WARNING, "nats: disconnected")

        async def on_reconnect() -> None:
            logger.info("nats: reconnected")

        options = connect_options(config)
        if not retry_first_connect:
            # nats-py drops a server from the pool only after max_reconnect_attempts (> 0) failed
            # tries, and forever retries the pool otherwise.
            options.update(max_reconnect_attempts=1, reconnect_time_wait=0)
        connecting = nats.connect(error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
                                  **options)
        try:
            # nats-py retries the first connection forever; a service must fail visibly instead.
            nc = await asyncio.wait_for(connecting, config.initial_connect_timeout)
        except TimeoutError:
            last = f" (last error: {first_errors[-1]})" if first_errors else ""
            raise BusUnreachable(config.url, f"no answer within {config.initial_connect_timeout:g}s{last}") from None
        except nats.errors.NoServersError:
            raise BusUnreachable(config.url, str(first_errors[-1]) if first_errors else "no server") from None
        if not retry_first_connect:
            nc.options["max_reconnect_attempts"] = config.max_reconnect_attempts
        client.append(nc)
        bus = cls(nc, **bus_options)
        bus.stream_replicas = config.stream_replicas
        return bus

    @property
    def js(self):
        """The JetStream context of this connection."""
        if self._js is None:
            self._js = self.nc.jetstream()
        return self._js

    @property
    def connected_url(self) -> str:
        """``host:port`` of the server this connection is on ("?" while disconnected)."""
        url = self.nc.connected_url
        return f"{url.hostname}:{url.port}" if url else "?"  # never the user:password a URL may carry

    def _sent(self, subject: str) -> None:
        self.published += 1
        metrics.count_out(subject)

    async def publish(self, subject: str, message: Any, headers: dict[str, str] | None = None) -> None:
        await self.nc.publish(subject, encode(message), headers=headers)
        self._sent(subject)

    async def publish_bytes(self, subject: str, data: bytes, headers: dict[str, str] | None = None,
                            reply: str = "") -> None:
        """Publish an already encoded payload (a message encoded once and sent or recorded twice)."""
        await self.nc.publish(subject, data, reply=reply, headers=headers)
        self._sent(subject)

    async def respond(self, msg: Msg, message: Any) -> None:
        """Answer the request ``msg`` with ``message`` (nothing when it expects no reply)."""
        if msg.reply:
            await self.nc.publish(msg.reply, encode(message))
            self._sent(msg.reply)

    async def flush(self, timeout: int = 2) -> None:
        """Wait until the server has seen everything published so far."""
        await self.nc.flush(timeout)

    async def discover(self, verb: str = "PING", name: str | None = None, timeout: float = 0.5) -> list[dict[str, Any]]:
        """Replies to ``$SRV.<verb>[.<name>]`` (the NATS service API) arriving within ``timeout``."""
        return await discover(self.nc, verb, name, timeout)

    async def add_service(self, **config: Any) -> Service:
        """Register a ``nats.micro`` service on this connection (``name``, ``version``, ...)."""
        return await add_service(self.nc, **config)

    async def js_publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None,
                         timeout: float = 5.0, stream: str | None = None) -> int:
        """Store ``payload`` in the JetStream stream holding ``subject``; returns its sequence.

        The same as ``js.publish`` (``Nats-Msg-Id`` deduplicates; ``stream`` makes the server refuse
        it unless that stream holds the subject; APIError, NoStreamResponseError or
        nats.errors.TimeoutError on failure) at a fraction of its CPU: every ack comes back on one
        wildcard inbox subscription and a timer bounds the wait, where nats-py's request path adds
        an ``asyncio.wait_for`` and a new inbox token per call. Hot paths (the order router) use it.
        """
        return (await self.js_store(subject, payload, headers, timeout, stream)).seq

    async def js_store(self, subject: str, payload: bytes, headers: dict[str, str] | None = None,
                       timeout: float = 5.0, stream: str | None = None) -> PubAck:
        """:meth:`js_publish` returning the whole ack: its sequence and whether it was a duplicate."""
        if stream:
            headers = {**(headers or {}), "Nats-Expected-Stream": stream}
        if self._acks is None:
            self._acks = _JsAcks(self.nc)
        ack = await self._acks.publish(subject, payload, headers, timeout)
        self._sent(subject)
        return ack

    async def declare_all(self) -> jetstream.Declared:
        """Declare every stream, KV bucket and object store tradebus uses (idempotent), with
        ``stream_replicas`` replicas where it creates one; on a cluster (replicas > 1) it waits
        for the cluster to be ready to take them (``jetstream.CLUSTER_READY_TIMEOUT``)."""
        ready = jetstream.CLUSTER_READY_TIMEOUT if self.stream_replicas > 1 else 0.0
        return await jetstream.declare_all(self.js, replicas=self.stream_replicas, ready_timeout=ready)

    async def declare_stream(self, config: api.StreamConfig) -> api.StreamInfo:
        """Create the stream ``config.name`` (with ``stream_replicas`` replicas unless ``config`` sets
        them) or bring an existing one to ``config``."""
        if config.num_replicas is None:
            config = jetstream.replicated(config, self.stream_replicas)
        return await jetstream.declare_stream(self.js, config)

    async def declare_consumer(self, stream: str, config: api.ConsumerConfig) -> api.ConsumerInfo:
        """Create or update the consumer ``config`` on ``stream``."""
        return await jetstream.declare_consumer(self.js, stream, config)

    async def delete_consumer(self, stream: str, name: str) -> None:
        await self.js.delete_consumer(stream, name)

    async def pull_subscribe(self, stream: str, consumer: str | None = None, *, subject: str = ">",
                             config: api.ConsumerConfig | None = None):
        """A pull subscription on ``stream``, ``fetch()`` from it: bound to the existing consumer
        ``consumer``, or without one a new ephemeral consumer over ``subject`` set up by ``config``."""
        if consumer is not None:
            return await self.js.pull_subscribe_bind(consumer, stream=stream)
        return await self.js.pull_subscribe(subject, stream=stream, config=config)

    async def consumer_info(self, stream: str, consumer: str) -> api.ConsumerInfo:
        """State of ``consumer`` on ``stream``: ``num_pending`` (not yet delivered), ``num_ack_pending``."""
        return await self.js.consumer_info(stream, consumer)

    async def consumers(self, stream: str) -> list[api.ConsumerInfo]:
        """Every consumer of ``stream`` with its state."""
        return await self.js.consumers_info(stream)

    async def stream_info(self, stream: str, subjects_filter: str | None = None) -> api.StreamInfo:
        """State of ``stream``; with ``subjects_filter``, ``state.subjects`` counts per matching subject."""
        return await self.js.stream_info(stream, subjects_filter=subjects_filter)

    async def read_stream(self, stream: str, subject: str = ">"):
        """An ordered consumer over ``stream`` from its first message; ``next_msg()`` from the result."""
        return await self.js.subscribe(subject, stream=stream, ordered_consumer=True)

    async def key_value(self, bucket: str):
        """The KV bucket ``bucket`` (one of ``jetstream.KV_BUCKETS``), created when missing."""
        return await jetstream.declare_kv(self.js, jetstream.replicated(jetstream.KV_BUCKETS[bucket], self.stream_replicas))

    async def object_store(self, bucket: str):
        """The object store ``bucket`` (one of ``jetstream.OBJECT_STORES``), created when missing."""
        return await jetstream.declare_object_store(self.js, jetstream.replicated(jetstream.OBJECT_STORES[bucket],
                                                                                  self.stream_replicas))

    async def kv_put(self, bucket: str, key: str, value: bytes, timeout: float = 5.0) -> int:
        """``KeyValue.put`` through :meth:`js_publish` (a KV entry is a message on ``$KV.<bucket>.<key>``)."""
        return await self.js_publish(f"$KV.{bucket}.{key}", value, timeout=timeout)

    def decode(self, subject: str, data: bytes, type_: type[T]) -> T | None:
        """Decode ``data`` as ``type_`` (counting it in); on failure report bad input and return None."""
        metrics.count_in(subject)
        if len(data) > self.max_message_bytes:
            self.bad_input.report(subject, "oversized", f"{len(data)} bytes > limit {self.max_message_bytes}")
            return None
        try:
            return decoder_for(type_).decode(data)  # type: ignore[arg-type]  # typeshed: type[T] is not Hashable
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
            self.bad_input.report(subject, _classify(exc), str(exc))
            return None

    async def subscribe(
        self,
        subject: str,
        type_: Any,
        handler: Callable[[Any, Msg], Awaitable[None]],
        queue: str = "",
        **limits: Any,
    ) -> Subscription:
        """Deliver each message on ``subject`` decoded as ``type_`` (a Struct or a union) to ``handler``.

        ``limits`` (``pending_msgs_limit``, ``pending_bytes_limit``) size the client-side buffer.
        """

        async def on_msg(msg: Msg) -> None:
            self.received += 1
            obj = self.decode(msg.subject, msg.data, type_)
            if obj is None:
                if msg.reply:
                    await self._respond_error(msg, "400", "bad request: message rejected, see service log")
                return
            started = time.perf_counter()
            try:
                await handler(obj, msg)
            except Exception:
                self.handler_errors += 1
                metrics.observe_handler(metrics.subject_family(msg.subject), started, failed=True)
                self._log.exception("handler for %s failed", msg.subject)
            else:
                metrics.observe_handler(metrics.subject_family(msg.subject), started)

        return await self.nc.subscribe(subject, queue=queue, cb=on_msg, **limits)

    async def serve(
        self,
        subject: str,
        request_type: Any,
        handler: Callable[[Any], Awaitable[Any]],
        queue: str = "",
    ) -> Subscription:
        """Answer requests on ``subject``: the handler's return value is encoded as the reply.

        A request that does not decode gets a ``400`` service error; a handler that raises gets ``500``.
        """

        async def on_request(obj: Any, msg: Msg) -> None:
            try:
                reply = await handler(obj)
            except Exception as exc:
                self.handler_errors += 1
                self._log.exception("request handler for %s failed", msg.subject)
                await self._respond_error(msg, "500", f"{type(exc).__name__}: {exc}")
                return
            await self.respond(msg, reply)

        return await self.subscribe(subject, request_type, on_request, queue=queue)

    async def _respond_error(self, msg: Msg, code: str, description: str) -> None:
        if msg.reply:
            await self.nc.publish(msg.reply, b"", headers={ERROR_HEADER: description, ERROR_CODE_HEADER: code})

    async def request(self, subject: str, message: Any, reply_type: type[T], timeout: float = 2.0) -> T:
        """Send a request and decode the reply; raises RequestError on a service error reply."""
        self._sent(subject)
        msg = await self.nc.request(subject, encode(message), timeout=timeout)
        headers = msg.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise RequestError(headers[ERROR_CODE_HEADER], headers.get(ERROR_HEADER, ""))
        return decoder_for(reply_type).decode(msg.data)  # type: ignore[arg-type]  # as in decode()

    async def drain(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.close()

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.drain()


class PubAck(msgspec.Struct):
    """A JetStream store acknowledgement: the stream, the sequence and whether it was a duplicate."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: dict | None = None


_PUB_ACK = msgspec.json.Decoder(PubAck)


class _JsAcks:
    """JetStream publishes whose acks are matched by token on one ``<inbox>.*`` subscription."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = ""
        self.pending: dict[str, asyncio.Future] = {}
        self.counter = 0
        self._lock = asyncio.Lock()

    async def _start(self) -> None:
        async with self._lock:
            if not self.prefix:
                prefix = self.nc.new_inbox() + "."
                await self.nc.subscribe(prefix + "*", cb=self._on_reply)
                self.prefix = prefix

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout: float) -> PubAck:
        if not self.prefix:
            await self._start()
        self.counter += 1
        token = str(self.counter)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending[token] = future
        timer = loop.call_later(timeout, self._expire, token)
        try:
            await self.nc.publish(subject, payload, reply=self.prefix + token, headers=headers)
            return await future
        finally:
            timer.cancel()
            self.pending.pop(token, None)

    def _expire(self, token: str) -> None:
        future = self.pending.pop(token, None)
        if future is not None and not future.done():
            future.set_exception(nats.errors.TimeoutError())

    async def _on_reply(self, msg: Msg) -> None:
        future = self.pending.pop(msg.subject[len(self.prefix):], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            ack = _PUB_ACK.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            future.set_exception(nats.js.errors.Error(f"bad JetStream ack: {exc}"))
            return
        if ack.error is not None:
            try:
                nats.js.errors.APIError.from_error(ack.error)  # raises the error's class
            except nats.js.errors.Error as exc:
                future.set_exception(exc)
            except Exception as exc:  # an error body nats-py cannot read
                future.set_exception(nats.js.errors.Error(f"JetStream error {ack.error}: {exc}"))
        else:
            future.set_result(ack)


class Batcher(Generic[T]):
    """Collects items and publishes them as one message built by ``build(items)``.

    A batch goes out when it reaches ``max_items`` or ``max_delay`` seconds after its first item,
    whichever comes first, so a burst is cheap and a trickle is not held back. Used for TradeBatch.
    """

    def __init__(
        self,
        bus: Bus,
        subject: str,
        build: Callable[[list[T]], Any],
        max_items: int = 1000,
        max_delay: float = 0.005,
    ) -> None:
        if max_items < 1 or max_delay < 0:
            raise ValueError("max_items must be >= 1 and max_delay >= 0")
        self.bus = bus
        self.subject = subject
        self.build = build
        self.max_items = max_items
        self.max_delay = max_delay
        self.published_batches = 0
        self._items: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task] = set()

    async def add(self, item: T) -> None:
        self._items.append(item)
        if len(self._items) >= self.max_items:
            await self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.max_delay, self._flush_soon)

    async def extend(self, items: Iterable[T]) -> None:
        for item in items:
            await self.add(item)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._items:
            return
        items, self._items = self._items, []
        await self.bus.publish(self.subject, self.build(items))
        self.published_batches += 1

    async def aclose(self) -> None:
        await self.flush()
        if self._pending:
            await asyncio.gather(*self._pending)
