"""The paper-trading flow of a running stack, checked on its bus (``make deploy-check`` runs it on
the host for compose and inside a container for ``podman kube play``; it needs only tradebus).

    python flow.py --nats-url URL [--timeout S] [--deny-user USER --deny-password-file FILE]

Passes when every service answers ``$SRV.PING``, the sample strategy's orders were acknowledged
by sim_exchange and fills came back on ``ord.evt.sim.sma_cross`` (through order_router; read from
the ORDERS stream, so fills before the check count), and, with
``--deny-user``, when the server refuses that user a publish on ``md.>``. Credentials of the
checking user come from the environment (TRADEBUS_NATS_USER, TRADEBUS_NATS_PASSWORD_FILE).
Prints one JSON line with what it saw; exits 1 when something is missing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import msgspec
import nats
from nats.js.api import DeliverPolicy

from tradebus.bus import Bus, NatsConfig, discover
from tradebus.proto import ServiceCommand, ServiceStatus
from tradebus.proto.subjects import service_subject

SERVICES = ["sim_exchange", "market_data", "strategy_runner", "order_router", "backtest_worker"]


async def services_answering(bus: Bus, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    seen: dict[str, int] = {}
    while time.monotonic() < deadline:
        seen = {}
        for reply in await discover(bus.nc, "PING", timeout=1.0):
            seen[reply["name"]] = seen.get(reply["name"], 0) + 1
        if all(seen.get(name) for name in SERVICES):
            break
    return seen


async def order_events(bus: Bus, timeout: float, fills_wanted: int = 1) -> dict[str, int]:
    """Count the strategy's order events, from the start of the ORDERS stream (fills that came back
    before this check began count too), until ``fills_wanted`` fills are in (or the timeout)."""
    counts: dict[str, int] = {}
    enough = asyncio.Event()

    async def on_event(msg) -> None:
        kind = msgspec.msgpack.decode(msg.data).get("type", "?")
        counts[kind] = counts.get(kind, 0) + 1
        if counts.get("ord.fill", 0) >= fills_wanted:
            enough.set()

    sub = await bus.js.subscribe("ord.evt.sim.sma_cross", cb=on_event, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.ALL)
    try:
        await asyncio.wait_for(enough.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return counts


async def denied(url: str, user: str, password_file: str) -> str | None:
    """The server's refusal when ``user`` publishes fake market data, or None if it let it through."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    password = open(password_file).read().strip()
    nc = await nats.connect(url.split(","), user=user, password=password, error_cb=on_error,
                            max_reconnect_attempts=0)
    try:
        await nc.publish("md.sim.BTC-USDT.trade", b"\x80")
        await nc.flush()
        await asyncio.sleep(1.0)
    finally:
        await nc.close()
    return next((e for e in errors if "permissions violation" in e.lower()), None)


async def check(args) -> dict:
    bus = await Bus.connect(NatsConfig.from_env(url=args.nats_url, name="deploy-check-flow", initial_connect_timeout=30.0))
    try:
        answering = await services_answering(bus, args.timeout / 3)
        events = await order_events(bus, args.timeout)
        try:
            status = await bus.request(service_subject("strategy_runner", "status"),
                                       ServiceCommand(service="strategy_runner", command="status"), ServiceStatus, timeout=5)
            message = status.message
        except Exception as exc:  # reported, and the check fails on the missing fills anyway
            message = f"no status: {exc}"
    finally:
        await bus.close()
    result = {"services": answering, "order_events": events, "strategy_runner": message}
    if args.deny_user:
        result["denied"] = await denied(args.nats_url, args.deny_user, args.deny_password_file)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the first fill")
    parser.add_argument("--deny-user", help="a service user that must not publish md.>")
    parser.add_argument("--deny-password-file")
    args = parser.parse_args()
    result = asyncio.run(check(args))
    print(json.dumps(result), flush=True)
    ok = (all(result["services"].get(name) for name in SERVICES)
          and result["order_events"].get("ord.ack", 0) > 0 and result["order_events"].get("ord.fill", 0) > 0
          and (not args.deny_user or result["denied"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
