# FLOX "Python Bindings", Batch Backtest Engine: Loading Bar Data (second option), Creating
# Signals, Single Run and Batch Execution, in the document's order, verbatim but for the import
# line (was: import flox_py as flox). The document's placeholders are filled where marked
# "placeholder:"; the arrays (n, timestamps, opens, ..., sides, quantities, prices, types) come
# from the test.
import numpy as np
import tradebus as flox

engine = flox.Engine(initial_capital=100_000, fee_rate=0.0001)

bars = np.zeros(n, dtype=flox.PyBar)
bars['timestamp_ns'] = timestamps * 1_000_000  # placeholder: "= ..."
bars['open_raw'] = (opens * 1e8).astype(np.int64)
# ... etc
bars['high_raw'] = (highs * 1e8).astype(np.int64)  # placeholder: "# ... etc"
bars['low_raw'] = (lows * 1e8).astype(np.int64)  # placeholder: "# ... etc"
bars['close_raw'] = (closes * 1e8).astype(np.int64)  # placeholder: "# ... etc"
bars['volume_raw'] = (volumes * 1e8).astype(np.int64)  # placeholder: "# ... etc"
engine.load_bars(bars)

signals = flox.make_signals(
    timestamps,   # int64 — unix ms, us, or ns (auto-normalized)
    sides,        # uint8 — 0=buy, 1=sell
    quantities,   # float64 — position size
    prices,       # float64 — limit price (optional, default: market)
    types,        # uint8 — 0=market, 1=limit (optional, default: market)
)

stats = engine.run(signals, symbol=1)

signals_1, signals_2, signals_n = signals, signals, signals  # placeholder: the document's signal sets
all_stats = engine.run_batch(
    [signals_1, signals_2, signals_n],  # placeholder: "[signals_1, signals_2, ..., signals_n]"
    threads=0,   # 0 = use all cores
    symbol=1,
)
