"""The HTML report of a study: PNG charts (matplotlib, Agg backend) and tables in one folder.

* sweep: equity curves of the best runs (re-run locally with equity curves on), the objective
  over the first two grid parameters as a heatmap (a line for a one-parameter grid), the top runs.
* permutation: the permuted distribution of each headline statistic with the real run's value
  and p-value, the real equity curve against a sample of permuted runs.
* walkforward: the parameters chosen in-sample per fold, in- vs out-of-sample objective, and the
  stitched out-of-sample equity curve of the chosen parameters.

Dead jobs are listed with their errors in every report.
"""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib
import msgspec

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tradebus.engine import STAT_KEYS  # noqa: E402

from .execution import run_job, window  # noqa: E402
from .jobs import PlannedJob, StudySpec, build_jobs  # noqa: E402
from .results import best_runs, permutation_summary, walkforward_summary  # noqa: E402
from .settings import settings_rows  # noqa: E402

__all__ = ["write_report"]

HEADLINE = ("net_pnl", "sharpe", "return_pct", "max_drawdown_pct", "total_trades", "win_rate", "profit_factor")
# Statistics drawn for a permutation test: all "higher is better", like the p-value's direction.
PERMUTATION_STATS = ("net_pnl", "sharpe", "profit_factor", "win_rate")
_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td.l, th.l { text-align: left; } img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
"""


def _dates(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, dtype="datetime64[ns]")


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    frame = frame if columns is None else frame[[c for c in columns if c in frame]]
    return frame.to_html(index=False, float_format=lambda x: f"{x:,.4g}", na_rep="", border=0, escape=True)


def _jobs_by_id(planned: list[PlannedJob]) -> dict:
    return {p.job.job_id: p.job for p in planned}


def _market_curve(bars: np.ndarray, settings) -> tuple[np.ndarray, np.ndarray]:
    part = window(bars, settings)
    close = part["close"]
    return part["timestamp_ns"], settings.initial_cash * close / close[0]


def _equity_chart(path: Path, curves: list[tuple[str, np.ndarray, np.ndarray]], title: str,
                  market: tuple[np.ndarray, np.ndarray] | None = None, faint: list | None = None) -> str:
    fig, ax = plt.subplots(figsize=(11, 5))
    for ts, eq in faint or []:
        ax.plot(_dates(ts), eq, color="0.75", linewidth=0.6, alpha=0.6)
    if faint:
        ax.plot([], [], color="0.75", linewidth=0.8, label=f"{len(faint)} permuted runs")
    if market is not None:
        ax.plot(_dates(market[0]), market[1], color="0.35", linestyle="--", linewidth=0.9,
                label="market (close, scaled to initial cash)")
    for label, ts, eq in curves:
        ax.plot(_dates(ts), eq, linewidth=1.3, label=label)
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _params_label(job, names: list[str]) -> str:
    return ", ".join(f"{n}={job.params[n]}" for n in names if n in job.params) or "default params"


def _sweep_charts(out: Path, spec: StudySpec, frame: pd.DataFrame, planned, bars, top: int) -> list[str]:
    parts = []
    ok = frame[frame["status"] == "ok"]
    names = list(spec.grid)
    numeric = [n for n in names if pd.api.types.is_numeric_dtype(ok[n]) and ok[n].nunique() > 1] if len(ok) else []
    if len(numeric) >= 2:
        x, y = numeric[0], numeric[1]
        pivot = ok.pivot_table(index=y, columns=x, values=spec.objective, aggfunc="max")
        fig, ax = plt.subplots(figsize=(min(14, 3 + 0.45 * pivot.shape[1]), min(10, 2.5 + 0.35 * pivot.shape[0])))
        values = pivot.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        span = float(np.max(np.abs(finite))) if finite.size else 1.0
        im = ax.imshow(values, origin="lower", aspect="auto", cmap="RdYlGn", vmin=-span, vmax=span)
        ax.set_xticks(range(pivot.shape[1]), [f"{v:g}" for v in pivot.columns], rotation=90, fontsize=7)
        ax.set_yticks(range(pivot.shape[0]), [f"{v:g}" for v in pivot.index], fontsize=7)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        best = ok.loc[ok[spec.objective].idxmax()] if ok[spec.objective].notna().any() else None
        others = [n for n in names if n not in (x, y)]
        title = f"{spec.objective} by {x} and {y}" + (f" (best over {', '.join(others)})" if others else "")
        if best is not None:
            ax.plot(list(pivot.columns).index(best[x]), list(pivot.index).index(best[y]), marker="*", color="blue",
                    markersize=14)
            title += f"\n\u2605 best: {x}={best[x]:g}, {y}={best[y]:g}, {spec.objective} {best[spec.objective]:.3g}"
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label=spec.objective)
        parts.append(f'<h2>Parameter heatmap</h2><img src="{_save(fig, out / "heatmap.png")}">')
    elif len(numeric) == 1:
        x = numeric[0]
        line = ok.groupby(x)[spec.objective].max()
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.plot(line.index, line.to_numpy(), marker="o")
        ax.set_xlabel(x)
        ax.set_ylabel(spec.objective)
        ax.set_title(f"{spec.objective} by {x}")
        ax.grid(alpha=0.3)
        parts.append(f'<h2>Objective by parameter</h2><img src="{_save(fig, out / "objective.png")}">')
    best = best_runs(frame, spec.objective, top)
    if bars is not None and len(best):
        jobs = _jobs_by_id(planned)
        curves = []
        for _, row in best.iterrows():
            job = jobs[row["job_id"]]
            run = run_job(bars, job, equity=True)
            curves.append((f"{_params_label(job, names)}  ({spec.objective} {row[spec.objective]:.3g})",
                           run["timestamps"], run["equity"]))
        name = _equity_chart(out / "equity.png", curves, f"Equity of the {len(curves)} best runs by {spec.objective}",
                             market=_market_curve(bars, spec.settings))
        parts.insert(0, f'<h2>Equity curves of the best runs</h2><img src="{name}">')
    parts.append(f"<h2>Top {len(best)} runs by {spec.objective}</h2>" + _table(best, ["job_id", *names, *HEADLINE]))
    return parts


def _permutation_charts(out: Path, spec: StudySpec, frame: pd.DataFrame, planned, bars, top: int) -> list[str]:
    summary = permutation_summary(frame)
    if summary is None:
        return ['<p class="note">The real run has no result yet: no permutation statistics.</p>']
    stats = list(dict.fromkeys([spec.objective, *PERMUTATION_STATS]))[:4]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, key in zip(axes.flat, stats):
        values = summary.distribution[key]
        finite = values[np.isfinite(values)]
        ax.hist(finite, bins=min(60, max(10, len(finite) // 15)), color="#8fb4d9", edgecolor="white")
        real = summary.real[key]
        if np.isfinite(real):
            ax.axvline(real, color="crimson", linewidth=2, label=f"real {real:.4g}")
        ax.set_title(f"{key}: p = {summary.p_values[key]:.4f}  (n = {summary.n})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Permuted distribution vs the real strategy ({spec.strategy})")
    parts = [f"<h2>Permutation distribution</h2><img src=\"{_save(fig, out / 'distribution.png')}\">"]
    table = pd.DataFrame([{"statistic": k, "real": summary.real[k], "p_value": summary.p_values[k],
                           "permuted_mean": float(np.nanmean(summary.distribution[k])) if summary.n else np.nan,
                           "permuted_p95": float(np.nanpercentile(summary.distribution[k], 95)) if summary.n else np.nan}
                          for k in STAT_KEYS])
    parts.append(f"<h2>p-values (n = {summary.n} permutations, {summary.failed} dead)</h2>"
                 '<p class="note">p = (1 + #{permuted &ge; real}) / (n + 1): the share of shuffled markets on '
                 "which the strategy did at least as well.</p>" + _table(table))
    if bars is not None:
        jobs = _jobs_by_id(planned)
        real_id = frame.loc[frame["segment"] == "real", "job_id"].iloc[0]
        real_run = run_job(bars, jobs[real_id], equity=True)
        sample = frame[(frame["segment"] == "permuted") & (frame["status"] == "ok")].head(max(top * 4, 20))
        faint = []
        for job_id in sample["job_id"]:
            run = run_job(bars, jobs[job_id], equity=True)
            faint.append((run["timestamps"], run["equity"]))
        name = _equity_chart(out / "equity.png", [("real market", real_run["timestamps"], real_run["equity"])],
                             "Equity: the strategy on the real market and on permuted markets", faint=faint)
        parts.insert(0, f'<h2>Equity curves</h2><img src="{name}">')
    return parts


def _walkforward_charts(out: Path, spec: StudySpec, frame: pd.DataFrame, planned, bars, top: int) -> list[str]:
    summary = walkforward_summary(frame, spec)
    if summary.empty:
        return ['<p class="note">No fold has an in-sample result yet.</p>']
    parts = []
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.38
    xs = summary["fold"].to_numpy()
    ax.bar(xs - width / 2, summary[f"is_{spec.objective}"], width, label="in-sample (best)")
    ax.bar(xs + width / 2, summary[f"oos_{spec.objective}"], width, label="out-of-sample (same params)")
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks(xs, [f"fold {f}" for f in xs])
    ax.set_ylabel(spec.objective)
    ax.set_title(f"Walk-forward: {spec.objective} in and out of sample")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    parts.append(f'<h2>In-sample vs out-of-sample</h2><img src="{_save(fig, out / "folds.png")}">')
    if bars is not None and "oos_job_id" in summary:
        jobs = _jobs_by_id(planned)
        ts_all, eq_all, offset = [], [], 0.0
        for job_id in summary["oos_job_id"].dropna():
            run = run_job(bars, jobs[job_id], equity=True)
            pnl = run["equity"] - spec.settings.initial_cash
            ts_all.append(run["timestamps"])
            eq_all.append(spec.settings.initial_cash + offset + pnl)
            offset += float(pnl[-1])
        if ts_all:
            name = _equity_chart(out / "equity.png",
                                 [("out-of-sample, parameters chosen in-sample", np.concatenate(ts_all),
                                   np.concatenate(eq_all))],
                                 "Stitched out-of-sample equity",
                                 market=_market_curve(bars, msgspec.structs.replace(
                                     spec.settings, start=spec.windows[0][2], end=spec.windows[-1][3])))
            parts.insert(0, f'<h2>Out-of-sample equity</h2><img src="{name}">')
    parts.append("<h2>Folds</h2>" + _table(summary))
    return parts


def write_report(spec: StudySpec, frame: pd.DataFrame, out_dir: str | Path, bars: np.ndarray | None = None,
                 top: int = 5, planned: list[PlannedJob] | None = None) -> Path:
    """Write ``report.html`` and its PNGs into ``out_dir``; return the HTML path. Without
    ``bars`` the equity charts are left out (the rest needs only the results)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    planned = build_jobs(spec) if planned is None else planned
    builders = {"sweep": _sweep_charts, "permutation": _permutation_charts, "walkforward": _walkforward_charts}
    body = builders[spec.kind](out, spec, frame, planned, bars, top)
    counts = frame["status"].value_counts()
    workers = sorted(w for w in frame["worker"].dropna().unique())
    settings_html = "".join(f'<tr><th class="l">{html.escape(k)}</th><td class="l">{html.escape(v)}</td></tr>'
                            for k, v in settings_rows(spec))
    facts = {
        "study": spec.study_id, "kind": spec.kind, "strategy": spec.strategy,
        "rule": msgspec.json.encode(spec.rule).decode() if spec.rule is not None else "- (Python signal function)",
        "engine settings": ", ".join(f"{k}={v}" for k, v in msgspec.structs.asdict(spec.settings).items()),
        "grid": ", ".join(f"{k}: {len(v)} values ({v[0]}..{v[-1]})" for k, v in spec.grid.items()) or "-",
        "fixed params": ", ".join(f"{k}={v}" for k, v in spec.params.items()) or "-",
        "jobs": f"{len(frame)} ({counts.get('ok', 0)} ok, {counts.get('dead', 0)} dead, {counts.get('pending', 0)} pending)",
        "objective": spec.objective, "workers": ", ".join(workers) or "-",
    }
    if spec.kind == "walkforward":
        facts["folds"] = str(len(spec.windows))
    facts_html = "".join(f'<tr><th class="l">{html.escape(k)}</th><td class="l">{html.escape(str(v))}</td></tr>'
                         for k, v in facts.items())
    dead = frame[frame["status"] == "dead"]
    if len(dead):
        body.append(f"<h2>Dead jobs ({len(dead)})</h2>" + _table(dead, ["job_id", "attempts", "worker", "error"]))
    if bars is None:
        body.append('<p class="note">Equity curves left out: the dataset was not available to the report.</p>')
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.study_id)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Study {html.escape(spec.study_id)}</h1>"
            f'<h2>Settings</h2><table class="settings">{settings_html}</table>'
            f"<h2>Study</h2><table>{facts_html}</table>{''.join(body)}"
            '<p class="note">Results: results.parquet, results.csv in this folder.</p></body></html>')
    path = out / "report.html"
    path.write_text(page)
    return path
