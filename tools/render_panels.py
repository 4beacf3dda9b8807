"""Render panels of the services dashboard to PNG from a Prometheus server's HTTP API (matplotlib).

    python tools/render_panels.py --prometheus http://127.0.0.1:9090 --minutes 10 --out docs/monitoring

Each panel's queries (deploy/monitoring/grafana/dashboards/tradebus-services.json) are run as
range queries over the last ``--minutes``; an overview grid of them is written to
``--out``/dashboard.png (``--each``: one PNG per panel too). ``--panels`` picks panels by id
(default: the main ones).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy/monitoring/grafana/dashboards/tradebus-services.json"
MAIN_PANELS = [1, 2, 3, 5, 6, 9, 10, 11, 12, 13]
STYLES = ["-", "--"]  # every other series dashed: one lying on another stays visible
UNIT_LABELS = {"short/s": "per second", "s": "seconds", "percentunit": "fraction of limit", "short": ""}


def range_query(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus.rstrip('/')}/api/v1/query_range?{params}", timeout=30) as reply:
        body = json.loads(reply.read())
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body}")
    return body["data"]["result"]


def legend(template: str, labels: dict[str, str]) -> str:
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return " ".join(part for part in text.split() if not part.startswith("{{")) or "value"


def draw(ax, panel: dict, prometheus: str, start: float, end: float, step: float) -> int:
    """Plot ``panel`` on ``ax``; returns how many series had data."""
    drawn = 0
    for target in panel["targets"]:
        for series in range_query(prometheus, target["expr"], start, end, step):
            points = [(datetime.fromtimestamp(float(t)), float(v)) for t, v in series["values"]
                      if not math.isnan(float(v))]
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=legend(target.get("legendFormat", ""), series["metric"]), linewidth=1.4,
                    linestyle=STYLES[drawn % len(STYLES)])
            drawn += 1
    ax.set_title(panel["title"], fontsize=10)
    ax.set_ylabel(UNIT_LABELS.get(panel["fieldConfig"]["defaults"].get("unit", ""), ""), fontsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if drawn > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return drawn


def render(prometheus: str, out: Path, minutes: float, panel_ids: list[int], end: float | None = None,
           each: bool = False) -> list[Path]:
    panels = {p["id"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    chosen = [panels[i] for i in panel_ids]
    end = end or time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    cols = 2
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, chosen):
        draw(ax, panel, prometheus, start, end, step)
    for ax in list(axes.flat)[len(chosen):]:
        ax.set_visible(False)
    fig.suptitle("tradebus: services (Prometheus)", fontsize=12)
    fig.tight_layout()
    overview = out / "dashboard.png"
    fig.savefig(overview, dpi=90)
    plt.close(fig)
    written.append(overview)
    for panel in chosen if each else []:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        draw(ax, panel, prometheus, start, end, step)
        fig.tight_layout()
        path = out / f"panel-{panel['id']:02d}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=10.0, help="time range to draw")
    parser.add_argument("--end", type=float, help="end of the range, Unix seconds (default: now)")
    parser.add_argument("--out", default="docs/monitoring")
    parser.add_argument("--panels", help="comma-separated panel ids (default: the main panels)")
    parser.add_argument("--each", action="store_true", help="also one PNG per panel")
    args = parser.parse_args(argv)
    ids = [int(i) for i in args.panels.split(",")] if args.panels else MAIN_PANELS
    for path in render(args.prometheus, Path(args.out), args.minutes, ids, end=args.end, each=args.each):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
