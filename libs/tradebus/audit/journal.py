"""A strategy's own record of what it saw, for audits: one JSON line per start, restored
position and fill, appended as it happens (a SIGKILL loses nothing already written).

    journal = FillJournal(path)
    journal.started()                              # in on_start: the position starts from 0
    journal.restored("BTC/USDT", qty)              # in on_initial_position
    journal.fill("BTC/USDT", fill.trade_id, change, fill.position)   # in on_fill

``read_journal`` gives it back as the ledger's StrategyFills, from a byte offset on.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .ledger import StrategyFills

__all__ = ["FillJournal", "read_journal", "journal_size"]


class FillJournal:
    """Appends one line per call; each line reaches the OS before the call returns."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", buffering=1)

    def _write(self, **record) -> None:
        self._file.write(json.dumps({"t": time.time_ns(), **record}) + "\n")

    def started(self) -> None:
        self._write(kind="start")

    def restored(self, symbol: str, position: float) -> None:
        self._write(kind="restored", symbol=symbol, position=position)

    def fill(self, symbol: str, trade_id: str | None, change: float, position: float) -> None:
        self._write(kind="fill", symbol=symbol, trade_id=trade_id or "", change=change, position=position)

    def close(self) -> None:
        self._file.close()


def journal_size(path: str | os.PathLike) -> int:
    """Bytes written so far (the offset a scenario starts reading from)."""
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


def _positions(lines: list[dict]) -> dict[str, float]:
    position: dict[str, float] = {}
    for line in lines:
        if line["kind"] == "start":
            position = {}
        elif line["kind"] in ("restored", "fill"):
            position[line["symbol"]] = line["position"]
    return position


def read_journal(path: str | os.PathLike, offset: int = 0) -> StrategyFills:
    """What the strategy saw after byte ``offset``: fills, position change, restarts."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raw = b""
    parse = lambda chunk: [json.loads(x) for x in chunk.decode().splitlines() if x.strip()]  # noqa: E731
    before, after = parse(raw[:offset]), parse(raw[offset:])
    start, end = _positions(before), _positions(before + after)
    out = StrategyFills()
    for line in after:
        if line["kind"] == "fill":
            out.fills.append((line["symbol"], line["trade_id"], line["change"], line["t"]))
        else:
            out.restored_at_ns.append(line["t"])
    out.position = {s: end.get(s, 0.0) - start.get(s, 0.0) for s in set(start) | set(end)}
    return out
