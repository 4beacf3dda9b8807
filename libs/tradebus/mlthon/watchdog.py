"""Calls a strategy's callbacks one at a time: errors reported, slow ones caught by a watchdog."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tradebus.mlthon")


class CallbackGuard:
    """Runs callbacks so that one that raises is reported and the others carry on, and one that
    runs longer than ``bound_s`` is reported by a watchdog thread while it is still running.

    ``errors`` holds (callback name, exception) and ``slow`` holds (callback name, seconds it
    had run when reported); ``on_report(kind, name, detail)`` is told of each.
    """

    def __init__(self, strategy: str, bound_s: float | None = 1.0,
                 on_report: Callable[[str, str, Any], None] | None = None) -> None:
        if bound_s is not None and not bound_s > 0:
            raise ValueError(f"callback bound must be > 0 seconds (or None), got {bound_s!r}")
        self.strategy = strategy
        self.bound_s = bound_s
        self.on_report = on_report
        self.errors: list[tuple[str, BaseException]] = []
        self.slow: list[tuple[str, float]] = []
        self._current: tuple[int, str, float] | None = None
        self._seq = 0
        self._reported = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def call(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)``; returns its result, or None when it raised."""
        if self.bound_s is not None and self._thread is None:
            self._start()
        self._seq += 1
        seq = self._seq
        start = time.monotonic()
        self._current = (seq, name, start)
        try:
            return fn(*args)
        except Exception as exc:
            self.errors.append((name, exc))
            log.error("strategy %s: callback %s raised %s: %s", self.strategy, name, type(exc).__name__, exc,
                      exc_info=exc)
            self._report("error", name, exc)
            return None
        finally:
            self._current = None
            if self.bound_s is not None:
                elapsed = time.monotonic() - start
                if elapsed > self.bound_s:
                    self._slow(seq, name, elapsed)

    def _slow(self, seq: int, name: str, elapsed: float) -> None:
        with self._lock:
            if self._reported >= seq:
                return
            self._reported = seq
        self.slow.append((name, elapsed))
        log.warning("strategy %s: callback %s has run %.3f s, over the %.3f s bound", self.strategy, name,
                    elapsed, self.bound_s)
        self._report("slow", name, elapsed)

    def _report(self, kind: str, name: str, detail: Any) -> None:
        if self.on_report is not None:
            try:
                self.on_report(kind, name, detail)
            except Exception:
                log.exception("the callback report hook failed")

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name=f"watchdog-{self.strategy}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        bound = self.bound_s
        assert bound is not None                  # started only with a bound
        period = max(bound / 4, 0.005)
        while not self._stop.wait(period):
            current = self._current
            if current is None:
                continue
            seq, name, start = current
            elapsed = time.monotonic() - start
            if elapsed > bound:
                self._slow(seq, name, elapsed)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
