"""Run backtest jobs on the event backtester (``EngineMode.EVENT``).

The job's bars (its window, permuted when it has a seed) drive the simulated venue of
:mod:`tradebus.engine.event_sim` with the job's venue models: a
:class:`~tradebus.engine.models.FeeModel` of ``maker_fee_bps``/``taker_fee_bps`` and a latency
model (:class:`~tradebus.engine.models.ConstantLatency` of ``latency_ns`` and
``response_latency_ns``, or :class:`~tradebus.engine.models.RecordedLatency` over
``latency_samples_ns``/``response_latency_samples_ns`` with ``latency_seed``). Market orders
fill at the ``fill`` rule of the settings (``close`` or ``next_open``), limits and stops as the
event backtester's bar rules say.

A job's ``strategy`` is either a :class:`tradebus.strategy.Strategy` subclass, built as
``cls([symbol], **params)``, or a signal function (the batch engine's shape), whose signals
are sent as orders by :class:`SignalReplay` at the bar that stamps them, so one signal function
runs on both engines. A job with a ``rule`` replays the rule's signals the same way.
"""
from __future__ import annotations

import numpy as np

from tradebus.engine import STAT_KEYS
from tradebus.engine.models import ConstantLatency, FeeModel, RecordedLatency
from tradebus.proto import BacktestJob, EngineSettings
from tradebus.strategy import BacktestRunner, Strategy, SymbolRegistry

from .rule_jobs import rule_signals
from .strategies import resolve_strategy

__all__ = ["EventJobError", "SignalReplay", "event_options", "event_stats", "run_event_job"]

MARKET, LIMIT, STOP = 0, 1, 2


class EventJobError(ValueError):
    """Settings the event backtester cannot run (bad fee or latency values)."""


def event_options(settings: EngineSettings) -> dict:
    """BacktestRunner keyword arguments (venue models included) for ``settings``."""
    for name in ("latency_ns", "response_latency_ns", "latency_seed"):
        if getattr(settings, name) < 0:
            raise EventJobError(f"{name} must be >= 0, got {getattr(settings, name)}")
    try:
        fees = FeeModel(maker_rate=settings.maker_fee_bps / 10_000.0,
                        taker_rate=settings.taker_fee_bps / 10_000.0)
    except ValueError as exc:
        raise EventJobError(f"fees (maker_fee_bps={settings.maker_fee_bps}, taker_fee_bps="
                            f"{settings.taker_fee_bps}): {exc}") from None
    try:
        if settings.latency_samples_ns:
            latency = RecordedLatency(list(settings.latency_samples_ns),
                                      list(settings.response_latency_samples_ns) or None,
                                      seed=settings.latency_seed)
        elif settings.response_latency_samples_ns:
            raise ValueError("response_latency_samples_ns needs latency_samples_ns (entry latencies) too")
        else:
            latency = ConstantLatency(settings.latency_ns, settings.response_latency_ns)
    except ValueError as exc:
        raise EventJobError(str(exc)) from None
    if settings.latency_samples_ns and (settings.latency_ns or settings.response_latency_ns):
        raise EventJobError("give either latency_ns/response_latency_ns or latency samples, not both")
    if settings.fill not in ("close", "next_open"):
        raise EventJobError(f'fill must be "close" or "next_open", got {settings.fill!r}')
    return {
        "initial_capital": settings.initial_cash,
        "slippage_bps": settings.slippage_bps,
        "bar_fill": settings.fill,
        "fee_model": fees,
        "latency_model": latency,
    }


class SignalReplay(Strategy):
    """Sends a signal array (SIGNAL_DTYPE) as orders: each signal at the bar that stamps it
    (the last bar starting at or before its timestamp; bar 0 for earlier ones; signals after
    the data are never sent), as a market, limit (type 1) or stop-market (type 2) order."""

    def __init__(self, symbols, signals: np.ndarray, bar_ts: np.ndarray):
        super().__init__(symbols)
        signals = np.asarray(signals)
        names = set(signals.dtype.names or ())
        if signals.ndim != 1 or not {"timestamp_ns", "quantity", "price", "side", "type"} <= names:
            raise ValueError(f"signals must be a SIGNAL_DTYPE array, got {signals.dtype}")
        stamp = np.searchsorted(bar_ts, signals["timestamp_ns"], side="right") - 1
        stamp[stamp < 0] = 0
        if len(bar_ts) > 1:
            interval = int(np.min(np.diff(bar_ts)))
            stamp[signals["timestamp_ns"] >= bar_ts[-1] + interval] = -1
        order = np.argsort(stamp, kind="stable")
        self._signals = signals[order]
        self._stamp = stamp[order]
        self._next = int(np.searchsorted(self._stamp, 0, side="left"))   # skip the unsent (-1)
        self._bar = -1

    def on_bar(self, ctx, bar):
        self._bar += 1
        sig, stamp = self._signals, self._stamp
        while self._next < len(sig) and stamp[self._next] == self._bar:
            s = sig[self._next]
            self._next += 1
            side = "sell" if s["side"] else "buy"
            qty = float(s["quantity"])
            if s["type"] == LIMIT:
                (self.limit_sell if side == "sell" else self.limit_buy)(float(s["price"]), qty)
            elif s["type"] == STOP:
                self.stop_market(side, float(s["price"]), qty)
            else:
                (self.market_sell if side == "sell" else self.market_buy)(qty)


def _strategy(job: BacktestJob, symbol, data: np.ndarray) -> Strategy:
    if job.rule is not None:  # a signal rule: its signals replayed as orders
        return SignalReplay([symbol], rule_signals(data, job), data["timestamp_ns"])
    target = resolve_strategy(job.strategy)
    if isinstance(target, type) and issubclass(target, Strategy):
        return target([symbol], **job.params)
    return SignalReplay([symbol], target(data, **job.params), data["timestamp_ns"])


def run_event_job(data: np.ndarray, job: BacktestJob) -> dict:
    """The event backtester's result (statistics, fills, orders, equity) of ``job`` on the bars
    ``data`` (already windowed / permuted). Raises on failure."""
    options = event_options(job.settings)
    registry = SymbolRegistry()
    symbol = registry.add_symbol("farm", job.dataset_id or "data")
    runner = BacktestRunner(registry, **options)
    runner.set_strategy(_strategy(job, symbol, data))
    return runner.run_bars(data["timestamp_ns"], data["open"], data["high"], data["low"], data["close"],
                           data["volume"], symbol=symbol)


def event_stats(result: dict) -> dict[str, float]:
    """Every STAT_KEYS value of an event backtest result, as float."""
    return {key: float(result[key]) for key in STAT_KEYS}
