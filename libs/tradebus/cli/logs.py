"""``tradebus logs [SERVICE] [-f] [-n N]``: the local stack's logs, merged by time.

``tradebus up`` has each child write its output to ``<state-dir>/logs/<instance>.log``: JSON
events (see :mod:`tradebus.logs`) and whatever the service prints. This prints the events of every
service (or of SERVICE's instances) in time order, in the human format (``--json``: one event per
line); a line that is not an event goes with the event before it. ``-f`` keeps following: new
lines, instances restarted into the same file, new files.
"""
from __future__ import annotations

import heapq
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradebus.logs import parse_event, render_event

__all__ = ["Entry", "LogFile", "log_files", "merged", "register"]

POLL_INTERVAL = 0.25


@dataclass(slots=True)
class Entry:
    time: str
    name: str
    line: str
    event: dict[str, Any] | None

    def render(self, as_json: bool) -> str:
        if as_json:
            return json.dumps(self.event if self.event is not None else
                              {"time": self.time, "instance": self.name, "message": self.line}, ensure_ascii=False)
        return render_event(self.event) if self.event is not None else f"{self.name}: {self.line}"


class LogFile:
    """One instance's log file, read incrementally (a line is taken once it is complete)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem
        self.offset = 0
        self.partial = b""
        self.last_time = ""

    def read_new(self) -> list[Entry]:
        try:
            size = self.path.stat().st_size
            if size < self.offset:  # truncated or replaced: start over
                self.offset, self.partial = 0, b""
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        entries = []
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            if not line:
                continue
            event = parse_event(line)
            if event is not None:
                self.last_time = str(event["time"])
            entries.append(Entry(self.last_time, self.name, line, event))
        return entries


def log_files(log_dir: Path, service: str | None) -> list[Path]:
    """The log files of ``service``'s instances (``name.log``, ``name-N.log``), or all of them."""
    paths = sorted(log_dir.glob("*.log"))
    if service is None:
        return paths
    instance = re.compile(re.escape(service) + r"(-\d+)?")
    return [p for p in paths if instance.fullmatch(p.stem)]


def merged(batches: list[list[Entry]]) -> list[Entry]:
    """Entries of several files in time order; each file's own order is kept."""
    return list(heapq.merge(*batches, key=lambda e: e.time))


def _emit(entries: list[Entry], as_json: bool) -> None:
    for entry in entries:
        print(entry.render(as_json))
    sys.stdout.flush()


def run(args) -> int:
    log_dir = Path(args.state_dir) / "logs"
    if not log_dir.is_dir():
        print(f"tradebus logs: no logs in {log_dir} (`tradebus up` writes them there)", file=sys.stderr)
        return 1
    paths = log_files(log_dir, args.service)
    if args.service and not paths and not args.follow:
        known = sorted({p.stem for p in log_dir.glob("*.log")})
        print(f"tradebus logs: no logs of {args.service} in {log_dir} (there are: {', '.join(known) or 'none'})",
              file=sys.stderr)
        return 2
    files = {p: LogFile(p) for p in paths}
    entries = merged([f.read_new() for f in files.values()])
    _emit(entries[max(0, len(entries) - args.lines):] if args.lines is not None else entries, args.json)
    try:
        while args.follow:
            time.sleep(POLL_INTERVAL)
            for path in log_files(log_dir, args.service):
                files.setdefault(path, LogFile(path))
            _emit(merged([f.read_new() for f in files.values()]), args.json)
    except KeyboardInterrupt:
        pass
    return 0


def _count(text: str) -> int:
    import argparse

    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a number of lines: {text!r}")
    return int(text)


def register(sub) -> None:
    p = sub.add_parser("logs", help="the local stack's logs (tradebus up), merged by time; -f follows")
    p.add_argument("service", nargs="?", help="only this service's instances (default: all)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("-n", "--lines", type=_count, metavar="N", help="start with the last N lines (default: all)")
    p.add_argument("--json", action="store_true", help="print events as JSON, one per line")
    p.add_argument("--state-dir", default=".state", help="the folder `tradebus up` writes to")
    p.set_defaults(func=run)
