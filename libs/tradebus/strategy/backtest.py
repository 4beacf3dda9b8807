"""BacktestRunner: one strategy, event by event, through the compiled simulated venue.

    bt = BacktestRunner(registry, fee_rate=0.0004, initial_capital=10_000)
    bt.set_strategy(SmaCross([btc]))
    stats = bt.run_csv("binance_spot_BTCUSDT_20240808T2354Z_trades.csv.gz")   # symbol from the name
    stats["return_pct"], stats["sharpe"], stats["max_drawdown_pct"], stats["fills"]

Every run returns the batch engine's statistics (``tradebus.engine.STAT_KEYS``, same formulas)
plus ``fills`` and ``orders`` (structured arrays, see FILL_LOG_DTYPE and ORDER_LOG_DTYPE),
``equity``/``equity_ts`` (the marks the statistics use), ``positions``, ``realized_pnl``,
``unrealized_pnl``, ``open_orders``, ``cancelled_orders``, ``rejected_orders`` and ``events``.
``unfilled_orders`` counts the orders that never got a fill (still open at the end, cancelled or
expired); ``total_trades`` the completed round trips, as in the batch engine.
The execution rules are in :mod:`tradebus.engine.event_sim`.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from tradebus.engine import normalize_timestamps
from tradebus.engine.event import Clock, Strategy, StrategyContext
from tradebus.engine.event_sim import CANCEL_REASONS, FILL_LOG_DTYPE, ORDER_LOG_DTYPE, SimVenue
from tradebus.engine.models import FeeModel, LatencyModel, QueueModel

from .data import (
    BarData,
    BookData,
    BookReplay,
    TradeData,
    load_csv,
    load_depth,
    load_trades,
    merge_book,
    symbol_from_filename,
)
from .symbols import Symbol, SymbolRegistry

__all__ = ["BacktestRunner", "FILL_LOG_DTYPE", "ORDER_LOG_DTYPE", "CANCEL_REASONS", "accepts_order_arg"]


def accepts_order_arg(method) -> bool:
    """Whether an on_order_update override takes the fifth (Order) argument."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 5


def _check_sorted(ts: np.ndarray, strict: bool, what: str) -> None:
    if len(ts) < 2:
        return
    step = np.diff(ts)
    bad = np.flatnonzero(step <= 0 if strict else step < 0)
    if len(bad):
        i = int(bad[0]) + 1
        rule = "strictly increase" if strict else "not decrease"
        raise ValueError(f"{what} timestamps must {rule}: row {i} ({ts[i]}) after row {i - 1} ({ts[i - 1]})")


def _check_prices(values: np.ndarray, what: str, allow_zero: bool = False) -> None:
    ok = np.isfinite(values) & ((values >= 0) if allow_zero else (values > 0))
    if not ok.all():
        i = int(np.argmin(ok))
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} row {i}: {values[i]!r} is not a finite number {rule}")


def _f8(values, n: int | None, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional")
    if n is not None and len(arr) != n:
        raise ValueError(f"{what} has {len(arr)} values, timestamps have {n}")
    return arr


class BacktestRunner:
    """Runs one strategy over recorded market data on the simulated venue.

    fee_rate: fee per fill as a fraction of notional (maker_fee_rate for resting limit fills,
    default the same; fee_rate defaults to 0.0001); initial_capital: starting cash; latency_ns:
    time between a request and the venue acting on it; slippage_bps: market and stop fills
    priced this many basis points against the taker when they fill at a trade or bar price
    (book walks pay the book); bar_fill: on bars, market orders fill at the "next_open"
    (default) or at the "close" of the bar whose on_bar sent them; mark_interval: seconds
    between equity marks on trades and books.

    Venue models (:mod:`tradebus.engine.models`): ``fee_model`` (a FeeModel: maker/taker rates,
    per-symbol overrides) instead of fee_rate/maker_fee_rate; ``latency_model``
    (ConstantLatency or RecordedLatency: order entry and response latency) instead of
    latency_ns; ``queue_model`` (NoQueue, the default; RiskAverseQueue; ProbQueue) for resting
    limits on trades at their price.
    """

    def __init__(
        self,
        registry: SymbolRegistry,
        fee_rate: float | None = None,
        initial_capital: float = 100_000.0,
        latency_ns: int = 0,
        *,
        maker_fee_rate: float | None = None,
        slippage_bps: float = 0.0,
        bar_fill: str = "next_open",
        mark_interval: float = 1.0,
        fee_model: FeeModel | None = None,
        latency_model: LatencyModel | None = None,
        queue_model: QueueModel | None = None,
    ) -> None:
        if not isinstance(registry, SymbolRegistry):
            raise TypeError(f"registry must be a SymbolRegistry, got {type(registry).__name__}")
        if not (isinstance(mark_interval, (int, float)) and mark_interval > 0):
            raise ValueError(f"mark_interval must be a number of seconds > 0, got {mark_interval!r}")
        if isinstance(latency_ns, bool) or not isinstance(latency_ns, (int, np.integer)) or latency_ns < 0:
            raise ValueError(f"latency_ns must be an int >= 0, got {latency_ns!r}")
        self.registry = registry
        if fee_model is not None:
            if fee_rate is not None or maker_fee_rate is not None:
                raise ValueError("pass either fee_model or fee_rate/maker_fee_rate, not both")
            if isinstance(fee_model, FeeModel):
                fee_model.check_symbols(list(registry))
        self.config = dict(
            initial_capital=float(initial_capital),
            fee_rate=0.0 if fee_model is not None else 0.0001 if fee_rate is None else float(fee_rate),
            maker_fee_rate=None if maker_fee_rate is None else float(maker_fee_rate),
            slippage_bps=float(slippage_bps),
            latency_ns=int(latency_ns),
            bar_fill=bar_fill,
            mark_interval_ns=max(1, int(round(mark_interval * 1e9))),
            fee_model=fee_model,
            latency_model=latency_model,
            queue_model=queue_model,
        )
        # Fail now on bad numbers rather than at the first run.
        SimVenue(Strategy(), [], Clock(), **self.config)
        self._strategy: Strategy | None = None
        self._initial: list[tuple[Symbol, float, float]] = []

    # -- set-up ------------------------------------------------------------------------------

    def set_strategy(self, strategy: Strategy) -> None:
        """The strategy the next runs drive (its state carries over between runs)."""
        if not isinstance(strategy, Strategy):
            raise TypeError(f"expected a tradebus Strategy, got {type(strategy).__name__}")
        if not strategy.symbols:
            raise ValueError(f"{strategy.name} has no symbols: call super().__init__(symbols) in its __init__")
        for symbol in strategy.symbols:
            if not isinstance(symbol, Symbol) or self.registry.get(int(symbol)) is not symbol:
                raise ValueError(f"{strategy.name} trades {symbol!r}, which is not a symbol of this "
                                 f"runner's registry {self.registry.names()}")
        self._strategy = strategy

    @property
    def strategy(self) -> Strategy | None:
        return self._strategy

    def set_initial_position(self, symbol, qty: float, avg_price: float) -> None:
        """Start the next runs holding ``qty`` of ``symbol`` bought at ``avg_price``; the
        strategy gets on_initial_position after on_start."""
        sym = self.registry.get(symbol)
        self._initial = [x for x in self._initial if x[0] is not sym]
        if qty:
            self._initial.append((sym, float(qty), float(avg_price)))

    # -- runs --------------------------------------------------------------------------------

    def _symbol(self, symbol, guess: str | None, where: str) -> Symbol:
        strategy = self._require_strategy()
        if symbol is not None:
            try:
                sym = self.registry.get(symbol)
            except KeyError as exc:
                raise ValueError(str(exc.args[0])) from None
        else:
            matches = self.registry.find(guess) if guess else []
            if len(matches) != 1:
                if len(strategy.symbols) == 1 and not guess:
                    return strategy.symbols[0]
                raise ValueError(f"cannot tell the symbol of {where}"
                                 f"{f' (found {guess!r})' if guess else ''}; registered: "
                                 f"{self.registry.names()}: pass symbol=")
            sym = matches[0]
        if not any(s is sym for s in strategy.symbols):
            raise ValueError(f"{strategy.name} does not trade {sym.name}; it trades "
                             f"{[s.name for s in strategy.symbols]}")
        return sym

    def _require_strategy(self) -> Strategy:
        if self._strategy is None:
            raise RuntimeError("call set_strategy(strategy) before running")
        return self._strategy

    def _venue(self, first_ts: int) -> tuple[SimVenue, list[StrategyContext], Clock]:
        strategy = self._require_strategy()
        clock = Clock(live=False, now=int(first_ts))
        contexts = []
        for i, symbol in enumerate(strategy.symbols):
            contexts.append(StrategyContext(symbol, None, clock, i))
        venue = SimVenue(strategy, contexts, clock, **self.config,
                         update_with_order=accepts_order_arg(strategy.on_order_update)
                         if type(strategy).on_order_update is not Strategy.on_order_update else False)
        strategy._attach(venue, {s: c for s, c in zip(strategy.symbols, contexts)})
        for sym, qty, avg in self._initial:
            if sym in strategy.symbols:
                venue.set_initial_position(strategy.symbols.index(sym), qty, avg)
        return venue, contexts, clock

    def _finish(self, venue: SimVenue, symbol: Symbol) -> dict[str, Any]:
        self._require_strategy()._detach()
        out = venue.result()
        out["symbol"] = symbol
        return out

    def run_arrays(self, timestamps, prices, quantities, is_buy=None, symbol=None) -> dict[str, Any]:
        """Replay trades given as columns: timestamps (ms/us/ns by magnitude, non-decreasing),
        prices, quantities, is_buy (aggressor bought; default all True)."""
        ts = np.ascontiguousarray(normalize_timestamps(timestamps), dtype=np.int64)
        n = len(ts)
        px = _f8(prices, n, "prices")
        qty = _f8(quantities, n, "quantities")
        if is_buy is None:
            side = np.ones(n, dtype=np.uint8)
        else:
            side = np.ascontiguousarray(np.asarray(is_buy).astype(bool), dtype=np.uint8)
            if len(side) != n:
                raise ValueError(f"is_buy has {len(side)} values, timestamps have {n}")
        _check_sorted(ts, False, "trade")
        _check_prices(px, "prices")
        _check_prices(qty, "quantities", allow_zero=True)
        sym = self._symbol(symbol, None, "these arrays")
        venue, _, _ = self._venue(ts[0] if n else 0)
        venue.run_trades(self._strategy.symbols.index(sym), ts, px, qty, side)
        return self._finish(venue, sym)

    def run_trades(self, trades: TradeData, symbol=None) -> dict[str, Any]:
        """Replay a TradeData (from tradebus.strategy.data)."""
        sym = symbol if symbol is not None else self._symbol(None, trades.symbol, "the trades")
        return self.run_arrays(trades.ts_ns, trades.price, trades.qty, trades.is_buy, symbol=sym)

    def run_bars(self, timestamps, opens, highs, lows, closes, volumes=None, symbol=None) -> dict[str, Any]:
        """Replay OHLCV bars (timestamps: bar open times, strictly increasing)."""
        ts = np.ascontiguousarray(normalize_timestamps(timestamps), dtype=np.int64)
        n = len(ts)
        o, h, l, c = (_f8(x, n, name) for x, name in ((opens, "opens"), (highs, "highs"), (lows, "lows"), (closes, "closes")))
        v = np.zeros(n) if volumes is None else _f8(volumes, n, "volumes")
        _check_sorted(ts, True, "bar")
        for arr, name in ((o, "opens"), (h, "highs"), (l, "lows"), (c, "closes")):
            _check_prices(arr, name)
        _check_prices(v, "volumes", allow_zero=True)
        bad = np.flatnonzero((h < np.maximum(o, c)) | (l > np.minimum(o, c)))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"bar row {i}: high/low do not contain open/close "
                             f"(o={o[i]}, h={h[i]}, l={l[i]}, c={c[i]})")
        sym = self._symbol(symbol, None, "these bars")
        venue, _, _ = self._venue(ts[0] if n else 0)
        venue.run_bars(self._strategy.symbols.index(sym), ts, o, h, l, c, v)
        return self._finish(venue, sym)

    def run_bar_data(self, bars: BarData, symbol=None) -> dict[str, Any]:
        """Replay a BarData (from tradebus.strategy.data)."""
        sym = symbol if symbol is not None else self._symbol(None, bars.symbol, "the bars")
        return self.run_bars(bars.ts_ns, bars.open, bars.high, bars.low, bars.close, bars.volume, symbol=sym)

    def run_csv(self, path: str | os.PathLike, symbol=None) -> dict[str, Any]:
        """Replay a trade or kline CSV (Binance layouts or tradebus's own; gzip accepted). The
        symbol comes from the file name (BTCUSDT in binance_spot_BTCUSDT_...) when omitted."""
        path = Path(path)
        sym = self._symbol(symbol, symbol_from_filename(path) if symbol is None else None, str(path.name))
        data = load_csv(path)
        if isinstance(data, BarData):
            return self.run_bar_data(data, symbol=sym)
        return self.run_trades(data, symbol=sym)

    def run_parquet(self, path: str | os.PathLike, symbol=None) -> dict[str, Any]:
        """Replay a Parquet file of trades (time, price, qty, side/is_buy/is_buyer_maker) or
        bars (time, open, high, low, close[, volume]). Needs pyarrow."""
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise RuntimeError("run_parquet needs pyarrow: pip install pyarrow") from None
        path = Path(path)
        table = pq.read_table(path)
        cols = {name.lower(): name for name in table.column_names}

        def col(*names, required=True):
            for name in names:
                if name in cols:
                    return table.column(cols[name]).to_numpy()
            if required:
                raise ValueError(f"{path}: no column among {names}; columns: {table.column_names}")
            return None

        sym = self._symbol(symbol, symbol_from_filename(path) if symbol is None else None, str(path.name))
        times = ("ts_ns", "timestamp_ns", "timestamp", "time", "open_time", "trade_time_ms", "ts", "date")
        if "open" in cols and "close" in cols:
            return self.run_bars(col(*times), col("open"), col("high"), col("low"), col("close"),
                                 col("volume", required=False), symbol=sym)
        is_buy = col("is_buy", required=False)
        if is_buy is None:
            maker = col("is_buyer_maker", required=False)
            if maker is not None:
                is_buy = ~maker.astype(bool)
            else:
                side = col("side", required=False)
                is_buy = None if side is None else np.array([str(s).lower() in ("buy", "b") for s in side])
        return self.run_arrays(col(*times), col("price", "p"), col("qty", "quantity", "amount", "size"),
                               is_buy, symbol=sym)

    def run_book(self, snapshot, updates=None, trades=None, symbol=None) -> dict[str, Any]:
        """Replay an L2 book (a depth snapshot and its diff updates) with trades.

        ``snapshot`` and ``updates`` are file paths (Binance depth snapshot + diff updates, see
        tradebus.strategy.data.load_depth) or ``snapshot`` is an already loaded BookData or
        BookReplay; ``trades`` a trade file path or TradeData, placed by receive time. Market
        orders walk the book; the equity is marked every ``mark_interval``.
        """
        if isinstance(snapshot, BookReplay):
            replay = snapshot
        else:
            book = snapshot if isinstance(snapshot, BookData) else load_depth(snapshot, updates)
            if trades is not None and not isinstance(trades, TradeData):
                trades = load_trades(trades)
            replay = merge_book(book, trades)
        sym = self._symbol(symbol, replay.symbol if symbol is None else None, "the book")
        _check_sorted(replay.ts_ns, False, "book")
        venue, _, _ = self._venue(replay.snapshot_ts)
        venue.run_book(self._strategy.symbols.index(sym), replay.bids, replay.asks, replay.snapshot_ts,
                       replay.kind, replay.ts_ns, replay.price, replay.qty, replay.flag,
                       replay.last_of_event)
        return self._finish(venue, sym)
