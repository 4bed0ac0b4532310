"""What leaves the command: the View (markdown lines, JSON data, CSV rows) and the --output file
of every point."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import json_safe, to_csv, to_json
from mlflow_skill.history.markdown import md_footer, md_several_runs, md_single_run
from mlflow_skill.history.shape import Shaped
from mlflow_skill.history.summary import point_dict

SUMMARY_FIELDS = [
    "run_id",
    "run_name",
    "metric",
    "exact",
    "label",
    "points",
    "first",
    "last",
    "min",
    "max",
    "extremes",
    "nan_count",
]

POINT_FIELDS = ["run_id", "run_name", "metric", "step", "timestamp", "value"]


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict):
        return f"{value.get('value')}@{value.get('step')}"
    return value


def csv_table(sh: Shaped) -> Table:
    """CSV: the points shown (every point with --full); with --output, one summary row per series.
    The markdown tables are per metric and live in the view's lines, so rows stay empty."""
    if sh.output:
        raw = [[_csv_cell(getattr(summ, f)) for f in SUMMARY_FIELDS] for summ in sh.summaries]
        return Table(SUMMARY_FIELDS, [], raw=raw)
    raw = []
    for summ in sh.summaries:
        s = sh.series_of(summ)
        raw += [
            [s.run_id, summ.run_name, s.key, p[0], p[1], "" if math.isnan(p[2]) else repr(p[2])]
            for p in sh.points_for(summ)
        ]
    return Table(POINT_FIELDS, [], raw=raw)


def json_data(sh: Shaped, store_uri: str, plot: str | None) -> dict:
    series = []
    for summ in sh.summaries:
        series.append({**summ.as_dict(), "shown_points": [point_dict(p) for p in sh.points_for(summ)]})
    return json_safe(
        {
            "store": store_uri,
            "window": list(sh.window) if sh.window else None,
            "output": sh.output,
            "plot": plot,
            "hidden_metrics": sh.hidden,
            "series": series,
        }
    )


def build_view(ctx: Context, sh: Shaped, plot: str | None) -> View:
    body = md_single_run(sh) if len(sh.runs) == 1 else md_several_runs(sh)
    return View(
        data=json_data(sh, ctx.settings.display_uri, plot),
        lines=body,
        table=csv_table(sh),
        after=md_footer(sh, plot),
    )


def write_points(path: str, sh: Shaped, force: bool) -> None:
    """--full --output: every point of every series, as .json or .csv, written atomically."""
    target = Path(path)
    pairs = [(summ, sh.series_of(summ)) for summ in sh.summaries]
    if target.suffix.lower() == ".json":
        entries = [
            {
                "run_id": summ.run_id,
                "run_name": summ.run_name,
                "metric": summ.metric,
                "points": [{"step": p[0], "timestamp": p[1], "value": p[2]} for p in s.points],
            }
            for summ, s in pairs
        ]
        data = to_json(json_safe(entries))
    else:
        rows = (
            [summ.run_id, summ.run_name, summ.metric, p[0], p[1], "NaN" if math.isnan(p[2]) else repr(p[2])]
            for summ, s in pairs
            for p in s.points
        )
        data = to_csv(POINT_FIELDS, rows)
    write_atomic(target, data, force=force)
