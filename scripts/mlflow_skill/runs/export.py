"""Exporting runs to CSV or JSON: compact rows built as runs stream past (no raw JSON kept, so
memory stays near one page), columns in a stable order. The shaping is pure; `cmd_export` (the
`export` command of query_experiments.py, at the end) fetches the runs and writes the file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlflow_skill.cli.frame import Context, check_output_target
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import fmt_bytes, iso_time
from mlflow_skill.core.values import to_float
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import search as rs
from mlflow_skill.runs.targets import query_for

EXPORT_FIXED = ["run_id", "run_name", "experiment_id", "experiment", "status", "start_time", "end_time"]


def export_kind(target: Path, fmt: str) -> str:
    suffix = target.suffix.lower()
    if suffix in (".csv", ".json"):
        return suffix[1:]
    if fmt in ("csv", "json"):
        return fmt
    raise UsageError(f"cannot tell the file format of {target}: name it .csv or .json, or pass --format csv|json")


def collect_rows(runs: Iterable[dict], names: dict[str, str], all_tags: bool) -> tuple[list[list], dict[str, int]]:
    """Runs -> compact rows: a list per run, values placed by a column index that grows as new
    metric/param/tag keys appear. No raw JSON is kept, so memory stays near one page."""
    columns: dict[str, int] = {name: i for i, name in enumerate(EXPORT_FIXED)}
    rows = []
    for run in runs:
        info = run["info"]
        data = run.get("data", {})
        row: list[Any] = [
            info["run_id"],
            info.get("run_name") or "",
            info.get("experiment_id"),
            names.get(info.get("experiment_id"), ""),
            info.get("status"),
            iso_time(info.get("start_time")),
            iso_time(info.get("end_time")),
        ]
        for kind, items in (
            ("metrics", data.get("metrics")),
            ("params", data.get("params")),
            ("tags", data.get("tags")),
        ):
            for item in items or ():
                key = item["key"]
                if kind == "tags" and not all_tags and key.startswith("mlflow."):
                    continue
                idx = columns.setdefault(f"{kind}.{key}", len(columns))
                if idx >= len(row):
                    row.extend([None] * (idx + 1 - len(row)))
                row[idx] = item.get("value", "")
        rows.append(row)
    return rows, columns


def ordered_columns(columns: dict[str, int]) -> list[tuple[str, int]]:
    """Fixed columns first, then metrics.*, params.*, tags.*, each sorted by key."""
    rank = {"metrics": 0, "params": 1, "tags": 2}
    fixed = [(name, columns[name]) for name in EXPORT_FIXED]
    rest = sorted((name, i) for name, i in columns.items() if name not in EXPORT_FIXED)
    rest.sort(key=lambda item: (rank[item[0].split(".", 1)[0]], item[0]))
    return fixed + rest


def render_csv(rows: list[list], columns: dict[str, int], spreadsheet_safe: bool = False) -> str:
    order = ordered_columns(columns)
    idxs = [i for _, i in order]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([defused(name) if spreadsheet_safe else name for name, _ in order])
    for row in rows:
        n = len(row)
        cells = [("" if (i >= n or row[i] is None) else row[i]) for i in idxs]
        writer.writerow([defused(c) for c in cells] if spreadsheet_safe else cells)
    return buf.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defused(cell: Any) -> Any:
    """--spreadsheet-safe: a text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR
    first) gets a leading ' (shown by no spreadsheet, kept by CSV readers); numbers such as -0.5
    stay numbers. Off by default: the file then matches MLflow's own export byte for byte."""
    if not isinstance(cell, str) or not cell.startswith(FORMULA_STARTS):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


def render_json_rows(rows: list[list], columns: dict[str, int]) -> str:
    records = []
    for row in rows:
        record: dict[str, Any] = {name: row[i] for name, i in columns.items() if name in EXPORT_FIXED}
        record.update(metrics={}, params={}, tags={})
        for name, i in columns.items():
            if name in EXPORT_FIXED or i >= len(row) or row[i] is None:
                continue
            kind, key = name.split(".", 1)
            record[kind][key] = _json_number(row[i]) if kind == "metrics" else row[i]
        records.append(record)
    return json.dumps(records, ensure_ascii=False, allow_nan=False)


def _json_number(value: Any) -> float | None:
    number = to_float(value)
    return None if math.isnan(number) or math.isinf(number) else number


# =============================================================================================
# The command
# =============================================================================================
EXPORT_DESCRIPTION = """Every matching run (all pages; --page-size runs per request, default 2000, max 50000) to a
CSV or JSON file, written atomically. The file format comes from the extension (.csv/.json),
else from --format csv|json. Columns: run_id, run_name, experiment_id, experiment, status,
start_time, end_time, metrics.*, params.*, tags.* (non-system; --all-tags for mlflow.*).
An existing file is never replaced without --force. Rows come in server order (per OR group).
Cells are written as the store holds them, as MLflow's own export does; --spreadsheet-safe (CSV
only) prefixes text cells that start with = + - @ with ' so Excel, LibreOffice or Google Sheets
show them instead of running them as formulas (numbers such as -0.5 are left alone).

Examples:
  uv run scripts/query_experiments.py export --experiment btc-momentum --output runs.csv
  uv run scripts/query_experiments.py export --filter "metrics.sharpe > 1" --output best.json --force
  uv run scripts/query_experiments.py export --experiment btc-momentum --output runs.csv --spreadsheet-safe"""


def cmd_export(ctx: Context) -> int:
    args = ctx.args
    target = Path(args.output)
    kind = export_kind(target, ctx.fmt)
    spreadsheet_safe = getattr(args, "spreadsheet_safe", False)
    if spreadsheet_safe and kind != "csv":
        raise UsageError("--spreadsheet-safe applies to CSV files: name the --output .csv, or leave the flag out")
    check_output_target(args)  # fail before fetching thousands of runs
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1 (leave it out for every run)")
    if not 1 <= args.page_size <= 50_000:
        raise UsageError("--page-size must be between 1 and 50000 (the server's maximum)")
    query = query_for(ctx, args.order_by)
    rows, index = collect_rows(
        rs.iter_runs(ctx.store, query, args.limit, args.page_size), rc.exp_name_map(query), args.all_tags
    )
    data = render_csv(rows, index, spreadsheet_safe) if kind == "csv" else render_json_rows(rows, index)
    count = len(rows)
    del rows
    write_atomic(target, data, force=args.force)
    summary = {
        "path": str(target),
        "format": kind,
        "runs": count,
        "columns": len(index),
        "bytes": target.stat().st_size,
        "client_side": query.notes(),
    }
    line = (
        f"Exported {count} runs {rc.scope_line(query)} to {target} ({kind.upper()}, {len(index)} columns, "
        f"{fmt_bytes(summary['bytes'])})"
    )
    headers = ["path", "format", "runs", "columns", "bytes"]
    table = Table(headers, [], [[summary[h] for h in headers]])  # CSV: the summary as one row
    ctx.emit(View(data=summary, lines=[line, *query.notes()], table=table))
    return 0
