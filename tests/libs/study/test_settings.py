"""tradebus.study.settings: a study that is not told its costs charges the venue's taker fee and
fills at the next open, and says so at the top of its report and summary."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from tradebus.engine import DEFAULT_FILL
from tradebus.exchanges.venue_config import load_config
from tradebus.proto import EngineSettings
from tradebus.proto.backtest import EngineMode
from tradebus.study.jobs import StudyError, build_jobs, make_spec
from tradebus.study.results import results_frame
from tradebus.study.settings import DEFAULT_VENUE, settings_rows, study_settings, venue_of


def test_every_venue_states_its_fees_and_binance_spot_charges_10_bps():
    assert load_config("binance:spot").fees.taker_bps == 10.0
    assert load_config("binance:spot").fees.maker_bps == 10.0
    for key in ("binance:usdm", "bybit:linear", "okx:swap"):
        fees = load_config(key).fees
        assert 0 < fees.maker_bps < fees.taker_bps < 10, key


def test_venue_comes_from_the_flag_then_the_data_file_name_then_binance_spot():
    assert venue_of("binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz") == "binance:spot"
    assert venue_of("/data/binance_usdm_BTCUSDT_20240808T2354Z_trades.csv.gz") == "binance:usdm"
    assert venue_of("okx_swap_BTC.npy") == "okx:swap"
    assert venue_of("btc_small.csv") == venue_of("") == venue_of("bars-0123") == DEFAULT_VENUE == "binance:spot"
    assert venue_of("binance_spot_BTCUSDT.csv", venue="BYBIT___SWAP") == "bybit:linear"
    with pytest.raises(ValueError, match="unknown venue"):
        venue_of("x.csv", venue="nowhere:spot")


def test_study_settings_default_to_the_venue_taker_fee_and_next_open_fills():
    spot = study_settings()
    assert (spot.taker_fee_bps, spot.maker_fee_bps, spot.fill) == (10.0, 10.0, "next_open") == (10.0, 10.0, DEFAULT_FILL)
    usdm = study_settings("binance:usdm", initial_cash=5_000.0)
    assert (usdm.taker_fee_bps, usdm.maker_fee_bps, usdm.initial_cash) == (5.0, 5.0, 5_000.0)  # batch: one rate
    event = study_settings("binance:usdm", mode="event")
    assert (event.mode, event.taker_fee_bps, event.maker_fee_bps) == (EngineMode.EVENT, 5.0, 2.0)
    told = study_settings("binance:usdm", mode="event", taker_fee_bps=0.0, fill="close")
    assert (told.taker_fee_bps, told.maker_fee_bps, told.fill) == (0.0, 0.0, "close")  # what is said wins


def test_make_spec_without_settings_charges_the_dataset_venue_fee_in_every_job():
    sweep = make_spec("sweep", strategy="sma_cross", dataset_id="bars-x", grid={"fast": [5, 10]})
    assert sweep.venue == "binance:spot"
    assert sweep.settings == EngineSettings(taker_fee_bps=10.0, maker_fee_bps=10.0, fill="next_open")
    perm = make_spec("permutation", strategy="sma_cross", dataset_id="bars-x", n=3, seed=1,
                     dataset_name="binance_usdm_BTCUSDT_1m.npy", bars=1234)
    assert perm.venue == "binance:usdm" and perm.bars == 1234
    assert {p.job.settings.taker_fee_bps for p in build_jobs(perm)} == {5.0}
    assert {p.job.settings.fill for p in build_jobs(perm)} == {"next_open"}
    explicit = make_spec("sweep", strategy="sma_cross", dataset_id="bars-x", settings=EngineSettings())
    assert explicit.settings.taker_fee_bps == 0.0  # an explicit choice is kept
    with pytest.raises(StudyError, match="unknown venue"):
        make_spec("sweep", strategy="sma_cross", dataset_id="bars-x", venue="nowhere:spot")


def test_settings_rows_name_fee_fill_slippage_capital_data_bars_seed_and_n():
    spec = make_spec("permutation", strategy="sma_cross", dataset_id="bars-abc", n=50, seed=9,
                     dataset_name="binance_spot_BTCUSDT_1m.csv.gz", bars=130_708)
    rows = dict(settings_rows(spec))
    assert list(rows)[:8] == ["fee", "fill", "slippage", "capital", "data", "bars", "seed", "n"]
    assert rows["fee"] == "10 bps (binance:spot taker)"
    assert rows["fill"] == "next_open" and rows["slippage"] == "0 bps" and rows["capital"] == "10,000.00"
    assert rows["data"] == "binance_spot_BTCUSDT_1m.csv.gz (bars-abc)" and rows["bars"] == "130,708"
    assert rows["seed"] == "9" and rows["n"] == "50"
    custom = make_spec("sweep", strategy="sma_cross", dataset_id="bars-abc", grid={"fast": [1, 2, 3]},
                       settings=study_settings(mode="event", taker_fee_bps=4.0, maker_fee_bps=1.0,
                                               slippage_bps=2.5, latency_ns=7))
    rows = dict(settings_rows(custom))
    assert rows["fee"] == "4 bps, maker 1 bps" and rows["slippage"] == "2.5 bps"
    assert rows["seed"] == "-" and rows["n"] == "3 jobs" and rows["mode"] == "event" and "7 ns" in rows["latency"]


def _parser():
    from tradebus.cli.study import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def test_command_line_defaults_to_the_venue_fee_and_next_open():
    from tradebus.cli.study import _settings

    args = _parser().parse_args(["study", "permutation", "--param", "fast=5", "--n", "3"])
    assert _settings(args) == EngineSettings(initial_cash=100_000.0, taker_fee_bps=10.0, maker_fee_bps=10.0,
                                             fill="next_open")
    assert _settings(args, "binance_usdm_BTCUSDT_1m.npy").taker_fee_bps == 5.0
    args = _parser().parse_args(["study", "sweep", "--grid", "fast=2:4", "--venue", "okx:swap", "--mode", "event"])
    assert (_settings(args).taker_fee_bps, _settings(args).maker_fee_bps) == (5.0, 2.0)
    args = _parser().parse_args(["study", "sweep", "--grid", "fast=2:4", "--venue", "nowhere"])
    with pytest.raises(StudyError, match="unknown venue"):
        _settings(args)


def test_report_and_summary_open_with_the_settings(tmp_path, capsys):
    from tradebus.cli.study import _print_summary
    from tradebus.study.report import write_report

    spec = make_spec("sweep", strategy="sma_cross", dataset_id="bars-abc", grid={"fast": [5]},
                     dataset_name="binance_spot_BTCUSDT_1m.csv.gz", bars=2_000)
    frame = results_frame(spec, {}, {})
    page = write_report(spec, frame, tmp_path).read_text()
    settings = page.index("<h2>Settings</h2>")
    assert settings < page.index("<h2>Study</h2>")
    for text in ("10 bps (binance:spot taker)", "next_open", "2,000", "bars-abc"):
        assert settings < page.index(text), text
    _print_summary(spec, frame, top=3)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("settings: fee 10 bps (binance:spot taker) | fill next_open | slippage 0 bps")
    assert "bars 2,000" in first and "seed -" in first
    assert np.isnan(frame["net_pnl"]).all()  # nothing ran: the settings are printed all the same
