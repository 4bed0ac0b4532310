"""Exporting runs to CSV or JSON: compact rows built as runs stream past (no raw JSON kept, so
memory stays near one page), columns in a stable order. Pure: the caller fetches and writes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import iso_time
from mlflow_skill.core.values import to_float

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


def render_csv(rows: list[list], columns: dict[str, int]) -> str:
    order = ordered_columns(columns)
    idxs = [i for _, i in order]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name for name, _ in order])
    for row in rows:
        n = len(row)
        writer.writerow([("" if (i >= n or row[i] is None) else row[i]) for i in idxs])
    return buf.getvalue()


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
