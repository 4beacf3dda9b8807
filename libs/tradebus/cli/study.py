"""``tradebus study``: run backtest studies on the farm and read their results.

    tradebus study sweep --strategy sma_cross --grid fast=5:50:5 slow=20:200:10 [--data FILE]
    tradebus study permutation --strategy sma_cross --param fast=10 slow=30 --n 1000
    tradebus study walkforward --strategy sma_cross --grid fast=5:50:5 slow=20:200:20 --folds 4
    tradebus study sweep --rule my_rule.yaml --grid fast=5:50:5 slow=20:200:10

A built-in strategy (sma_cross ...) and a ``--rule`` file run as compiled signal rules: the jobs
carry the rule's spec and the workers run it through the engine's fused pipeline. A
``module:function`` strategy runs as Python on the workers.
    tradebus study status ID | results ID | list

A run publishes the dataset (once, by content id), stores the study spec, queues the jobs on
BT_JOBS and, unless ``--no-wait``, shows a progress bar until every job has a result or a dead
letter; then it writes results.parquet, results.csv and report.html into ``--out``.
``tradebus up --workers N`` (or any backtest_worker connected to the same NATS) runs the jobs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from tradebus.bus import Bus
from tradebus.cli.connect import bus_url, connect
from tradebus.engine import DEFAULT_FILL, STAT_KEYS
from tradebus.proto import EngineSettings
from tradebus.study.client import Collector, list_specs, load_spec, stored_counts, submit
from tradebus.study.datasets import (
    DEFAULT_BARS_FILE,
    DatasetCache,
    DatasetError,
    data_dir,
    publish_dataset,
    read_bars,
)
from tradebus.study.jobs import (
    StudyError,
    StudySpec,
    make_spec,
    parse_assignments,
    parse_grid,
    rule_spec_of,
    walkforward_windows,
)
from tradebus.study.settings import settings_rows, study_settings, venue_of

DEFAULT_STRATEGY = "sma_cross"
console = Console(stderr=True)
out_console = Console()


_bus_log = logging.getLogger("tradebus.study.bus")
_bus_log.setLevel(logging.WARNING)  # connection chatter would break up the progress bar


async def _connect(args) -> Bus:
    return await connect(bus_url(args), "tradebus-study", logger=_bus_log)


def _timestamp_ns(text: str | None) -> int:
    """An ISO date/time (UTC) or integer ns; None -> 0 (open)."""
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise StudyError(f"not a date or ns timestamp: {text!r}") from exc
    return int((stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")).value)


def _settings(args, dataset_name: str = "") -> EngineSettings:
    """The engine settings of the command line; what it leaves out is the venue's taker fee and
    next-open fills (``tradebus.study.settings``)."""
    return study_settings(_venue(args, dataset_name), mode=args.mode, initial_cash=args.capital,
                          taker_fee_bps=args.fee_bps, maker_fee_bps=args.maker_fee_bps,
                          slippage_bps=args.slippage_bps, fill=args.fill, start=_timestamp_ns(args.start),
                          end=_timestamp_ns(args.end), latency_ns=args.latency_ns,
                          response_latency_ns=args.response_latency_ns)


def _venue(args, dataset_name: str) -> str:
    try:
        return venue_of(dataset_name, args.venue)
    except ValueError as exc:
        raise StudyError(str(exc)) from None


def _settings_line(spec: StudySpec) -> str:
    """The settings a study's numbers depend on, on one line (the top of every summary)."""
    return "settings: " + " | ".join(f"{name} {value}" for name, value in settings_rows(spec))


def _strategy(args) -> tuple[str, object]:
    """(name, rule or None) of the study's strategy: ``--rule FILE`` (YAML or JSON spec), else
    the rule form of ``--strategy`` when it has one (the built-ins), else the Python function."""
    from tradebus.study.rules import resolve_rule
    from tradebus.study.strategies import StrategyError

    if args.rule:
        path = Path(args.rule)
        try:
            spec = yaml.safe_load(path.read_text())  # JSON is YAML too
        except (OSError, yaml.YAMLError) as exc:
            raise StudyError(f"--rule {path}: {exc}") from None
        if not isinstance(spec, dict):
            raise StudyError(f"--rule {path}: expected a mapping (entry_long, exit_long, ...), got {type(spec).__name__}")
        return args.strategy or f"rule:{path.stem}", rule_spec_of(spec)
    strategy = args.strategy or DEFAULT_STRATEGY
    try:
        return strategy, resolve_rule(strategy)
    except StrategyError:  # a module only the workers can import: it runs there as Python
        return strategy, None


DATASET_ID = re.compile(r"bars-[0-9a-f]{32}")


async def _load_data(args):
    """(bars, display name) of ``--data``: a file path, a stored dataset id, or by default the
    BTCUSDT 1m klines of the shared data folder."""
    if args.data and DATASET_ID.fullmatch(args.data):
        bus = await _connect(args)
        try:
            return await DatasetCache().get(bus, args.data), args.data
        finally:
            await bus.close()
    path = Path(args.data) if args.data else data_dir() / DEFAULT_BARS_FILE
    return await asyncio.to_thread(read_bars, path), path.name


async def _start(args, kind: str) -> int:
    strategy, rule = _strategy(args)
    bars, name = await _load_data(args)
    settings = _settings(args, name)
    params = parse_assignments(args.param)
    grid = parse_grid(getattr(args, "grid", None))
    windows = None
    if kind == "walkforward":
        from tradebus.study.execution import window

        part = window(bars, settings)
        windows = walkforward_windows(part["timestamp_ns"], args.folds, args.is_ratio, args.anchored)
        if windows[-1][3] == 0 and settings.end:
            windows[-1] = (*windows[-1][:3], settings.end)
    bus = await _connect(args)
    try:
        await bus.declare_all()
        ident = await publish_dataset(bus, bars)
        spec = make_spec(kind, strategy=strategy, rule=rule, dataset_id=ident, dataset_name=name, settings=settings,
                         grid=grid, params=params, n=getattr(args, "n", 0), seed=getattr(args, "seed", None),
                         windows=windows, objective=args.objective, study_id=args.id,
                         venue=_venue(args, name), bars=len(bars))
        new = await submit(bus, spec)
        console.print(f"study [bold]{spec.study_id}[/]: {spec.total_jobs} jobs queued ({new} new) on dataset "
                      f"{name} ({len(bars)} bars, {ident})")
        console.print(_settings_line(spec), markup=False, highlight=False, soft_wrap=True)
        if args.no_wait:
            console.print(f"follow it with: tradebus study status {spec.study_id}; "
                          f"collect with: tradebus study results {spec.study_id}")
            out_console.print(spec.study_id)
            return 0
        workers = await bus.discover("PING", "backtest_worker", timeout=0.5)
        if not workers:
            console.print("[yellow]no backtest_worker answered: the jobs wait in BT_JOBS until one starts "
                          "(tradebus up --workers N)[/]")
        collector = Collector(bus, spec)
        try:
            await _follow(collector, args.timeout)
        except (KeyboardInterrupt, asyncio.CancelledError):
            console.print(f"stopped waiting; the study goes on. Later: tradebus study results {spec.study_id}")
            return 130
        return await _finish(bus, spec, collector, args, bars)
    finally:
        await bus.close()


async def _follow(collector: Collector, timeout: float | None) -> None:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:>7.1f} jobs/s"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn(), TextColumn("failed {task.fields[failed]}  workers {task.fields[workers]}")]
    started = time.monotonic()
    with Progress(*columns, console=console, refresh_per_second=4) as progress:
        task = progress.add_task(collector.spec.kind, total=collector.total, rate=0.0, failed=0, workers=0)

        def update(c: Collector) -> None:
            elapsed = time.monotonic() - started
            progress.update(task, completed=c.done, rate=c.done / elapsed if elapsed > 0 else 0.0,
                            failed=c.failed, workers=len(c.workers))

        await collector.run(on_update=update, timeout=timeout)
        update(collector)


async def _dataset_bars(bus: Bus, spec: StudySpec):
    try:
        return await DatasetCache().get(bus, spec.dataset_id)
    except (DatasetError, OSError) as exc:
        console.print(f"[yellow]dataset {spec.dataset_id} unavailable ({exc}): report without equity curves[/]")
        return None


async def _finish(bus: Bus, spec: StudySpec, collector: Collector, args, bars=None) -> int:
    from tradebus.study.report import write_report  # pandas and matplotlib: only when needed
    from tradebus.study.results import results_frame, save_results

    frame = results_frame(spec, collector.results, collector.dead)
    out = Path(args.out or Path("studies") / spec.study_id)
    parquet, csv = save_results(frame, out)
    _print_summary(spec, frame, args.top)
    if not args.no_report:
        if bars is None:
            bars = await _dataset_bars(bus, spec)
        report = await asyncio.to_thread(write_report, spec, frame, out, bars, args.top)
        console.print(f"report: {report}")
    console.print(f"results: {parquet}, {csv}")
    pending = int((frame["status"] == "pending").sum())
    return 0 if pending == 0 else 3


def _rich_table(title: str, frame, columns: list[str]) -> Table:
    table = Table(title=title)
    columns = [c for c in columns if c in frame]
    for c in columns:
        table.add_column(c, justify="left" if c in ("job_id", "error") else "right")
    for _, row in frame.iterrows():
        table.add_row(*[f"{row[c]:,.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns])
    return table


def _print_summary(spec: StudySpec, frame, top: int) -> None:
    from tradebus.study.results import best_runs, permutation_summary, walkforward_summary

    counts = frame["status"].value_counts()
    out_console.print(_settings_line(spec), markup=False, highlight=False, soft_wrap=True)
    console.print(f"{spec.study_id}: {counts.get('ok', 0)} ok, {counts.get('dead', 0)} dead, "
                  f"{counts.get('pending', 0)} pending of {len(frame)}")
    headline = ["net_pnl", "sharpe", "return_pct", "max_drawdown_pct", "total_trades"]
    if spec.kind == "sweep":
        best = best_runs(frame, spec.objective, top)
        out_console.print(_rich_table(f"best {len(best)} by {spec.objective}", best, list(spec.grid) + headline))
    elif spec.kind == "permutation":
        summary = permutation_summary(frame)
        if summary is not None:
            table = Table(title=f"permutation test, n = {summary.n}")
            for c in ("statistic", "real", "p-value"):
                table.add_column(c, justify="right")
            for key in dict.fromkeys([spec.objective, "net_pnl", "sharpe", "profit_factor"]):
                table.add_row(key, f"{summary.real[key]:,.4g}", f"{summary.p_values[key]:.4f}")
            out_console.print(table)
    else:
        folds = walkforward_summary(frame, spec)
        out_console.print(_rich_table("walk-forward folds", folds, list(folds.columns)))
    dead = frame[frame["status"] == "dead"]
    for error, jobs in list(dead.groupby("error", sort=False)["job_id"])[:5]:  # a bad rule kills every job alike
        more = f" and {len(jobs) - 1} more" if len(jobs) > 1 else ""
        console.print(f"[red]dead[/] {jobs.iloc[0]}{more}: {escape(str(error))}", highlight=False, soft_wrap=True)


async def _status(args) -> int:
    bus = await _connect(args)
    try:
        spec = await load_spec(bus, args.study_id)
        counts = await stored_counts(bus, spec.study_id)
        running = max(0, spec.total_jobs - counts.results - counts.dead - counts.queued)
        row = {"study": spec.study_id, "kind": spec.kind, "strategy": spec.strategy, "total": spec.total_jobs,
               "results": counts.results, "dead": counts.dead, "queued": counts.queued, "running": running}
        if args.json:
            out_console.print_json(json.dumps(row))
        else:
            out_console.print(f"{spec.study_id} ({spec.kind}, {spec.strategy}): {counts.results + counts.dead} of "
                              f"{spec.total_jobs} done ({counts.results} results, {counts.dead} dead), "
                              f"{counts.queued} queued, {running} running")
        return 0
    finally:
        await bus.close()


async def _results(args) -> int:
    bus = await _connect(args)
    try:
        spec = await load_spec(bus, args.study_id)
        collector = await Collector(bus, spec).catch_up()
        return await _finish(bus, spec, collector, args)
    finally:
        await bus.close()


async def _list(args) -> int:
    bus = await _connect(args)
    try:
        specs = await list_specs(bus)
    finally:
        await bus.close()
    table = Table(title="studies")
    for c in ("study", "kind", "strategy", "jobs", "created (UTC)"):
        table.add_column(c)
    for s in specs:
        table.add_row(s.study_id, s.kind, s.strategy, str(s.total_jobs),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s.created_ns / 1e9)))
    out_console.print(table)
    return 0


STUDY_KINDS = ("sweep", "permutation", "walkforward")


def start(args):
    """The coroutine that queues the study ``args.study_command`` and follows it to its results."""
    return _start(args, args.study_command)


def run(args) -> int:
    handlers = {"status": lambda: _status(args), "results": lambda: _results(args), "list": lambda: _list(args)}
    try:
        return asyncio.run(start(args) if args.study_command in STUDY_KINDS else handlers[args.study_command]())
    except (StudyError, DatasetError) as exc:
        console.print(f"[red]tradebus study: {exc}[/]")
        return 2
    except KeyboardInterrupt:
        return 130
    except (OSError, TimeoutError) as exc:
        console.print(f"[red]tradebus study: {type(exc).__name__}: {exc}[/]")
        return 1


def _common(p, run_options: bool) -> None:
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, then <state-dir>/nats-url")
    p.add_argument("--state-dir", default=".state", help="where `tradebus up` wrote nats-url")
    p.add_argument("--out", help="folder for results and report (default: studies/<study id>)")
    p.add_argument("--top", type=int, default=5, help="best runs shown and drawn")
    p.add_argument("--no-report", action="store_true", help="save the results table only")
    if not run_options:
        return
    p.add_argument("--strategy", help=f"registered name or package.module:function (default: {DEFAULT_STRATEGY}; "
                                      "with --rule: the name the study shows)")
    p.add_argument("--rule", metavar="FILE", help="the strategy as a signal rule: a YAML or JSON spec "
                                                  "(tradebus.study.rules); param(...) names take --param/--grid")
    p.add_argument("--param", nargs="+", metavar="NAME=VALUE", help="fixed strategy parameters")
    p.add_argument("--data", help=f"bars file (.csv, .csv.gz, .parquet, .npy) or a stored dataset id (bars-...); "
                                  f"default: {DEFAULT_BARS_FILE} in $TRADEBUS_DATA_DIR")
    p.add_argument("--start", help="first bar time (ISO, UTC) or ns")
    p.add_argument("--end", help="end time, exclusive (ISO, UTC) or ns")
    p.add_argument("--capital", type=float, default=100_000.0, help="initial cash")
    p.add_argument("--mode", choices=("batch", "event"), default="batch",
                   help="batch engine, or the event backtester (maker fees, latency)")
    p.add_argument("--venue", help="venue whose fees are the defaults (binance:spot, binance:usdm, ...); "
                                   "default: the one the data file name starts with, else binance:spot")
    p.add_argument("--fee-bps", type=float, help="fee per fill (taker fee), basis points of notional "
                                                 "(default: the venue's taker fee, 10 for Binance spot)")
    p.add_argument("--maker-fee-bps", type=float,
                   help="event mode: fee of resting limit fills (default: --fee-bps, else the venue's maker fee)")
    p.add_argument("--latency-ns", type=int, default=0, help="event mode: order entry latency")
    p.add_argument("--response-latency-ns", type=int, default=0, help="event mode: latency of reports back")
    p.add_argument("--slippage-bps", type=float, default=0.0, help="market/stop fill slippage, basis points")
    p.add_argument("--fill", choices=("close", "next_open"), default=DEFAULT_FILL,
                   help="market fill rule (default: the next bar's open)")
    p.add_argument("--objective", default="sharpe", choices=STAT_KEYS, help="statistic that ranks runs")
    p.add_argument("--id", help="study id (default: <kind>-<utc time>-<random>)")
    p.add_argument("--no-wait", action="store_true", help="queue the jobs and return")
    p.add_argument("--timeout", type=float, help="give up waiting after this many seconds")


def add_study_kinds(study) -> None:
    """The sub-commands that start a study (sweep, permutation, walkforward) with their options."""
    sweep = study.add_parser("sweep", help="one run per point of a parameter grid")
    _common(sweep, True)
    sweep.add_argument("--grid", nargs="+", required=True, metavar="NAME=SPEC",
                       help="start:stop[:step] (stop included), a,b,c, or one value")
    perm = study.add_parser("permutation", help="the strategy on the real bars and on N permuted markets")
    _common(perm, True)
    perm.add_argument("--n", type=int, default=1000, help="number of permutations")
    perm.add_argument("--seed", type=int, help="study seed (default: random, recorded in the spec)")
    wf = study.add_parser("walkforward", help="choose parameters in-sample, test them out-of-sample, per fold")
    _common(wf, True)
    wf.add_argument("--grid", nargs="+", required=True, metavar="NAME=SPEC", help="as for sweep")
    wf.add_argument("--folds", type=int, default=4, help="number of out-of-sample windows")
    wf.add_argument("--is-ratio", type=float, default=3.0, help="in-sample length / out-of-sample length")
    wf.add_argument("--anchored", action="store_true", help="in-sample windows all start at the first bar")


def register(sub) -> None:
    p = sub.add_parser("study", help="backtest studies on the farm: sweep, permutation, walkforward, results")
    study = p.add_subparsers(dest="study_command", metavar="STUDY_COMMAND", required=True)
    add_study_kinds(study)
    for name, help_ in (("status", "how far a study is"), ("results", "collect results, write table and report")):
        q = study.add_parser(name, help=help_)
        q.add_argument("study_id")
        _common(q, False)
        if name == "status":
            q.add_argument("--json", action="store_true")
    lst = study.add_parser("list", help="studies stored on the bus")
    lst.add_argument("--nats-url")
    lst.add_argument("--state-dir", default=".state")
    p.set_defaults(func=run)
