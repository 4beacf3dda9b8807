"""``tradebus health [SERVICE]``: does this host's instance of SERVICE answer on the bus?

The container HEALTHCHECK and the Kubernetes probes run it. It sends ``$SRV.PING.<SERVICE>`` and
exits 0 when an instance of this host answers (the instance id a service reports is
``<hostname>-<pid>`` unless ``--instance`` set it), 1 when none does, 2 when the bus is
unreachable. ``--nats-monitor URL`` checks a NATS server's own ``/healthz`` instead (the
image's nats-server containers). Without SERVICE it checks the service the image's entry point started (recorded in
``/tmp/tradebus-service``); with none recorded there is nothing to check and it exits 0.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tradebus.bus import discover
from tradebus.cli.connect import BusUnreachable, bus_url, connect

RECORDED_SERVICE = Path("/tmp/tradebus-service")


def ours(reply: dict, host: str) -> bool:
    """Whether a ping reply comes from an instance on ``host`` (``host`` or ``host-<pid>``)."""
    instance = (reply.get("metadata") or {}).get("instance", "")
    return instance == host or instance.startswith(host + "-")


async def check(service: str, url: str | None, host: str | None, timeout: float) -> tuple[int, str]:
    try:
        bus = await connect(url, "tradebus-health", timeout=timeout)
    except BusUnreachable as exc:
        return 2, f"unhealthy: {exc}"
    try:
        replies = await discover(bus.nc, "PING", service, timeout=timeout)
    finally:
        await bus.close()
    mine = replies if host is None else [r for r in replies if ours(r, host)]
    if mine:
        return 0, f"healthy: {service} {', '.join(r['metadata'].get('instance', r['id']) for r in mine)}"
    where = "any host" if host is None else f"host {host}"
    return 1, f"unhealthy: no {service} instance of {where} answered $SRV.PING.{service} ({len(replies)} elsewhere)"


def nats_server_healthy(monitor: str, timeout: float) -> tuple[int, str]:
    """The NATS server's own check (``/healthz``, JetStream enabled) on its monitoring port."""
    import urllib.error
    import urllib.request

    url = monitor.rstrip("/") + "/healthz?js-enabled-only=true"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return 0, f"healthy: nats-server {reply.read().decode().strip()}"
    except (OSError, urllib.error.URLError) as exc:
        return 1, f"unhealthy: nats-server at {url}: {exc}"


def run(args) -> int:
    if args.nats_monitor:
        code, message = nats_server_healthy(args.nats_monitor, args.timeout)
        print(message, file=sys.stdout if code == 0 else sys.stderr)
        return code
    service = args.service or os.environ.get("TRADEBUS_SERVICE")
    if not service and RECORDED_SERVICE.is_file():
        service = RECORDED_SERVICE.read_text().strip()
    if not service:
        print("no service runs here: nothing to check")
        return 0
    host = None if args.any else (args.host or socket.gethostname())
    code, message = asyncio.run(check(service, bus_url(args), host, args.timeout))
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


def add_arguments(p) -> None:
    p.add_argument("service", nargs="?", help="service name (default: $TRADEBUS_SERVICE, then the one the "
                                              "image's entry point started)")
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url")
    p.add_argument("--state-dir", default=".state", help="where `tradebus up` wrote nats-url")
    p.add_argument("--host", help="instance host to look for (default: this host's name)")
    p.add_argument("--any", action="store_true", help="any instance of the service will do")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for the server and replies")
    p.add_argument("--nats-monitor", metavar="URL", help="check a NATS server itself on its monitoring URL "
                                                         "(http://127.0.0.1:8222) instead of a service")
    p.set_defaults(func=run)


HELP = "exit 0 if this host's instance of a service answers on the bus"


def register(sub) -> None:
    add_arguments(sub.add_parser("health", help=HELP))


if __name__ == "__main__":  # `python -m tradebus.cli.health`: the probe, without the whole CLI's imports
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tradebus.cli.health", description=HELP)
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
