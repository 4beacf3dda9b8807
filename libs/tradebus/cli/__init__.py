"""The ``tradebus`` command line. Each sub-command lives in its own module with ``register``."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from tradebus.bus import BusUnreachable
from tradebus.logs import configure_logging

from .connect import NO_BUS_EXIT, unreachable_line

__all__ = ["main", "build_parser"]

SUBCOMMANDS = ["up", "status", "logs", "study", "strategy", "version", "replay", "data", "venues", "health", "declare",
               "farm", "audit"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradebus", description="tradebus trading platform")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"tradebus.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "state_dir", None):  # where the local stack's URL and operator credentials are
        os.environ.setdefault("TRADEBUS_STATE_DIR", args.state_dir)
    configure_logging("tradebus", args.log_level, instance=args.command)
    try:
        return int(args.func(args) or 0)
    except BusUnreachable as exc:
        print(unreachable_line(args.command, exc), file=sys.stderr)
        return NO_BUS_EXIT


if __name__ == "__main__":
    sys.exit(main())
