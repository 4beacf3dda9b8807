"""Event-mode jobs through the farm: a real nats-server, real worker processes, the event
backtester with the job's maker/taker fees and latency, checked against direct runs."""
from __future__ import annotations

import numpy as np

from tradebus.engine import STAT_KEYS
from tradebus.engine.models import ConstantLatency, FeeModel
from tradebus.proto import EngineSettings
from tradebus.proto.backtest import EngineMode
from tradebus.strategy import BacktestRunner, SymbolRegistry
from tradebus.study import Collector, build_jobs, make_spec, parse_grid, publish_dataset, submit

from .farm import STRATEGIES, real_bars, stored_records
from .strategies import Quoter
from .test_farm import COLLECT_TIMEOUT, workers

MINUTE = 60_000_000_000


def direct(bars: np.ndarray, params: dict) -> dict[str, float]:
    """The reference: BacktestRunner with the models built here, no farm code in between."""
    reg = SymbolRegistry()
    sym = reg.add_symbol("ref", "BTCUSDT")
    runner = BacktestRunner(reg, initial_capital=50_000.0, bar_fill="next_open",
                            fee_model=FeeModel(maker_rate=-0.5e-4, taker_rate=4e-4),
                            latency_model=ConstantLatency(entry_ns=MINUTE // 2, response_ns=MINUTE))
    runner.set_strategy(Quoter([sym], **params))
    out = runner.run_bars(bars["timestamp_ns"], bars["open"], bars["high"], bars["low"], bars["close"],
                          bars["volume"])
    return {key: float(out[key]) for key in STAT_KEYS}


async def test_event_mode_jobs_with_latency_and_maker_fees(farm, tmp_path):
    server, bus = farm
    bars = real_bars(5_000)
    ident = await publish_dataset(bus.js, bars)
    settings = EngineSettings(mode=EngineMode.EVENT, initial_cash=50_000.0, taker_fee_bps=4.0,
                              maker_fee_bps=-0.5, latency_ns=MINUTE // 2, response_latency_ns=MINUTE,
                              fill="next_open")
    spec = make_spec("sweep", strategy=f"{STRATEGIES}:Quoter", dataset_id=ident, settings=settings,
                     grid=parse_grid(["every=3:6:1", "offset_bps=2,8"]))
    assert spec.total_jobs == 8
    async with workers(bus, server, tmp_path, 2, batch=4):
        assert await submit(bus, spec) == 8
        collector = await Collector(bus, spec).run(timeout=COLLECT_TIMEOUT)
    assert collector.dead == {} and len(collector.results) == 8
    for planned in build_jobs(spec):
        result = collector.results[planned.job.job_id]
        assert result.error is None, result.error
        params = {k: v for k, v in planned.job.params.items() if k in ("every", "offset_bps")}
        assert result.stats == direct(bars, params), planned.job.job_id
        assert result.stats["total_fills"] > 0
    assert await stored_records(bus.js, spec.study_id) == (8, 0)
