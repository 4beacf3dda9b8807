"""``tradebus strategy cmd STRATEGY NAME [ARGS...]``: run a strategy's command hook.

The command is a StrategyCommand request on ``ctl.<strategy>.<name>`` (``start`` and ``stop``
drive an MLThon strategy's session; other names run the hooks it added with add_cmd_hook); the
runner answers with a CommandResult.
"""
from __future__ import annotations

import asyncio
import time

from tradebus.cli.connect import bus_url, connect
from tradebus.proto import CommandResult, StrategyCommand
from tradebus.proto.subjects import control_subject


async def send(url: str | None, strategy: str, command: str, params: list[str], timeout: float) -> CommandResult:
    bus = await connect(url, "tradebus-strategy")
    try:
        return await bus.request(control_subject(strategy, command),
                                 StrategyCommand(strategy=strategy, command=command, params=params,
                                                 ts_init=time.time_ns()),
                                 CommandResult, timeout=timeout)
    finally:
        await bus.close()


def run(args) -> int:
    try:
        result = asyncio.run(send(bus_url(args), args.strategy, args.hook,
                                  list(args.params), args.timeout))
    except TimeoutError:
        print(f"no answer from strategy {args.strategy!r} within {args.timeout} s: is strategy_runner hosting it?")
        return 1
    print(f"{result.strategy} {result.command}: {'ok' if result.ok else 'refused'}"
          f"{': ' + result.message if result.message else ''}")
    return 0 if result.ok else 1


def register(sub) -> None:
    p = sub.add_parser("strategy", help="talk to a hosted strategy")
    actions = p.add_subparsers(dest="action", required=True)
    cmd = actions.add_parser("cmd", help="run a strategy's command hook: tradebus strategy cmd STRATEGY NAME [ARGS...]")
    cmd.add_argument("strategy")
    cmd.add_argument("hook", metavar="NAME")
    cmd.add_argument("params", nargs="*", help="passed to the hook as a list of strings")
    cmd.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url")
    cmd.add_argument("--state-dir", default=".state", help="where `tradebus up` wrote nats-url")
    cmd.add_argument("--timeout", type=float, default=5.0)
    cmd.set_defaults(func=run)
