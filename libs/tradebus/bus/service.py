"""The common life of a tradebus service process.

``service_main`` parses the standard arguments (``--config``, ``--nats-url``, ``--instance``,
``--log-level``), loads the deployment file, connects to NATS, registers with the NATS service API
(``nats.micro``: ``$SRV.PING/INFO/STATS``), runs the service's ``setup``, waits for SIGINT or
SIGTERM, then stops the service, drains the connection and returns 0::

    async def setup(svc: ServiceContext) -> None:
        await svc.subscribe("md.>", MarketDataEvent, on_md)
        svc.on_stop(flush_everything)

    if __name__ == "__main__":
        sys.exit(service_main("strategy_runner", "Hosts strategies", setup))

Every service answers ``svc.<name>.status`` (any ServiceCommand) with a ServiceStatus, and its
``$SRV.STATS`` data carries the counters: messages received and published, bad input by kind,
handler errors, and the service's state. With a metrics port (``--metrics-port``, else the
deployment file's ``services.<name>.metrics_port``) the process serves Prometheus ``/metrics``.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
from nats.micro.request import Request, ServiceError
from nats.micro.service import Service

from tradebus import __version__, metrics
from tradebus.config import ConfigError, DeploymentConfig, NatsConfig, load_deployment
from tradebus.logs import configure_logging, set_log_context, use_log_format
from tradebus.proto import ServiceCommand, ServiceState, ServiceStatus
from tradebus.proto.codec import encode
from tradebus.proto.subjects import service_subject

from .client import Bus

__all__ = ["ServiceContext", "service_main", "run_service", "base_parser"]

Setup = Callable[["ServiceContext"], Awaitable[None]]


def _now_ns() -> int:
    return time.time_ns()


class ServiceContext:
    """What a service's setup code gets: the bus, its config, the micro service and counters."""

    def __init__(self, name: str, args: argparse.Namespace, config: DeploymentConfig, bus: Bus, log: logging.Logger):
        self.name = name
        self.instance = args.instance or f"{socket.gethostname()}-{os.getpid()}"
        self.args = args
        self.config = config
        self.bus = bus
        self.log = log
        self.counters: Counter[str] = Counter()
        self.state = ServiceState.STARTING
        self.message = ""
        self.stopping = asyncio.Event()
        self.service: Service | None = None
        self._stop_callbacks: list[Callable[[], Awaitable[None]]] = []

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` on shutdown, before the connection drains (last registered runs first)."""
        self._stop_callbacks.append(callback)

    async def subscribe(self, subject: str, type_: Any, handler, queue: str = ""):
        return await self.bus.subscribe(subject, type_, handler, queue=queue)

    async def add_endpoint(self, name: str, subject: str, request_type: Any, handler: Callable[[Any], Awaitable[Any]]):
        """A request-reply endpoint listed in ``$SRV.INFO``; bad requests get a 400 service error."""
        assert self.service is not None
        await add_typed_endpoint(self.service, self.bus, name, subject, request_type, handler)

    def status(self) -> ServiceStatus:
        counters = dict(self.counters)
        counters["received"] = self.bus.received
        counters["published"] = self.bus.published
        counters["handler_errors"] = self.bus.handler_errors
        counters["bad_input"] = self.bus.bad_input.total
        for kind, n in self.bus.bad_input.by_kind().items():
            counters[f"bad_input.{kind}"] = n
        return ServiceStatus(
            service=self.name,
            instance=self.instance,
            state=self.state,
            message=self.message,
            counters=counters,
            ts_init=_now_ns(),
        )


async def add_typed_endpoint(service: Service, bus: Bus, name: str, subject: str, request_type: Any,
                             handler: Callable[[Any], Awaitable[Any]], queue_group: str | None = None) -> None:
    """Add an endpoint to ``service`` whose requests decode as ``request_type``: one that does not
    gets a 400 service error; the handler's return value is the reply (None: no reply, e.g. a
    request meant for another instance)."""

    async def on_request(req: Request) -> None:
        obj = bus.decode(req.subject, req.data, request_type)
        if obj is None:
            raise ServiceError("400", "bad request: message rejected, see service log")
        started = time.perf_counter()
        try:
            reply = await handler(obj)
        except Exception:
            metrics.observe_handler(metrics.subject_family(req.subject), started, failed=True)
            raise
        metrics.observe_handler(metrics.subject_family(req.subject), started)
        if reply is not None:
            await req.respond(encode(reply))

    await service.add_endpoint(name=name, subject=subject, handler=on_request, queue_group=queue_group)


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m tradebus.services.{name}", description=description)
    parser.add_argument("--config", help="deployment file (YAML or TOML); default: the packaged local config")
    parser.add_argument("--nats-url", help="NATS server URL(s), comma separated (default: config, $TRADEBUS_NATS_URL)")
    parser.add_argument("--instance", help="instance id reported to $SRV (default: host-pid)")
    parser.add_argument("--log-level", default=os.environ.get("TRADEBUS_LOG_LEVEL", "INFO"))
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here (default: the deployment "
                                                         "file's services.<name>.metrics_port; 0: none)")
    return parser


async def run_service(
    name: str,
    description: str,
    setup: Setup,
    args: argparse.Namespace,
    ready: Callable[[ServiceContext], None] | None = None,
) -> int:
    """Connect, register, run ``setup`` and serve until SIGINT/SIGTERM; returns the exit code."""
    log = logging.getLogger(f"tradebus.{name}")
    try:
        config = load_deployment(args.config)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    use_log_format(config.logging.format)
    nats_config: NatsConfig = config.nats
    overrides = {"name": f"{name}"}
    if args.nats_url:
        overrides["url"] = args.nats_url
    nats_config = msgspec.structs.replace(nats_config, **overrides)
    try:
        bus = await Bus.connect(nats_config, logger=log)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        log.error("%s: %s", name, exc)  # BusUnreachable names the URL and the last error
        return 3
    ctx = ServiceContext(name, args, config, bus, log)
    set_log_context(instance=ctx.instance)
    _serve_metrics(name, args, config, log)
    stop_counting = metrics.SERVICE_COUNTERS.add(lambda: ctx.status().counters)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, ctx.stopping.set)

    def stats_data(_endpoint_stats) -> dict[str, Any]:
        return {**ctx.status().counters, "state": ctx.state.value}

    ctx.service = await bus.add_service(
        name=name,
        version=__version__,
        description=description,
        metadata={"instance": ctx.instance, "pid": str(os.getpid())},
        stats_handler=stats_data,
    )

    async def on_status(_cmd: ServiceCommand) -> ServiceStatus:
        return ctx.status()

    await ctx.add_endpoint("status", service_subject(name, "status"), ServiceCommand, on_status)
    try:
        await setup(ctx)
    except (ValueError, OSError, msgspec.ValidationError) as exc:  # bad settings, port in use, missing file
        log.error("%s cannot start: %s", name, exc)
        stop_counting()
        await ctx.service.stop()
        await bus.close()
        return 2
    except Exception:
        log.exception("%s failed to start", name)
        stop_counting()
        await ctx.service.stop()
        await bus.close()
        return 1
    ctx.state = ServiceState.RUNNING
    log.info("%s %s running (instance %s, nats %s)", name, __version__, ctx.instance, bus.connected_url)
    if ready:
        ready(ctx)
    await ctx.stopping.wait()

    ctx.state = ServiceState.STOPPING
    log.info("%s stopping", name)
    for callback in reversed(ctx._stop_callbacks):
        try:
            await callback()
        except Exception:
            log.exception("stop callback failed")
    stop_counting()
    await ctx.service.stop()
    try:
        await asyncio.wait_for(bus.drain(), timeout=nats_config.drain_timeout + 1)
    except (TimeoutError, Exception):
        await bus.close()
    log.info("%s stopped", name)
    return 0


def _serve_metrics(name: str, args: argparse.Namespace, config: DeploymentConfig, log: logging.Logger) -> None:
    """Start the /metrics endpoint this instance is given. A taken port is logged, not fatal: the
    service trades on without metrics rather than stop (``tradebus up`` hands out free ports)."""
    entry = config.services.get(name)
    port = args.metrics_port if args.metrics_port is not None else (entry.metrics_port if entry else None)
    if not port or not config.metrics.enabled:
        return
    try:
        metrics.serve(port, config.metrics.host)
    except OSError as exc:
        log.warning("%s serves no metrics: cannot listen on %s:%d: %s", name, config.metrics.host, port, exc)


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def service_main(
    name: str,
    description: str,
    setup: Setup,
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Entry point of ``python -m tradebus.services.<name>``."""
    parser = base_parser(name, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(name, args.log_level, instance=args.instance or "")
    _use_uvloop()
    try:
        return asyncio.run(run_service(name, description, setup, args))
    except KeyboardInterrupt:
        return 0
