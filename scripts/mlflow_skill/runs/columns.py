"""The column model of query_experiments.py: runs as table rows (markdown and CSV cells, JSON
records), the default columns of a query, and the shared view of a page of runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import (
    fmt_duration,
    fmt_num,
    fmt_time,
    fmt_value,
    iso_time,
    json_safe,
    safe_text,
    truncate,
)
from mlflow_skill.quant import catalog
from mlflow_skill.runs.search import ATTRIBUTES, Page, Query, sort_value, split_key
from mlflow_skill.store import lookups

ERROR_WORDS = ("error", "exception", "traceback", "failure", "fail_reason")


def error_tags(run: dict) -> dict[str, str]:
    return {k: v for k, v in lookups.run_tags(run).items() if any(w in k.lower() for w in ERROR_WORDS)}


# =============================================================================================
# Shaping runs into rows
# =============================================================================================
@dataclass(frozen=True)
class Column:
    kind: str  # metrics, params, tags, attr, experiment, duration
    key: str

    @property
    def label(self) -> str:
        if self.kind == "attr":
            return {"run_name": "run", "run_id": "id", "start_time": "start", "end_time": "end"}.get(self.key, self.key)
        if self.kind in ("experiment", "duration", "error"):
            return self.kind
        return f"{self.kind}.{self.key}"


def parse_columns(text: str | None) -> list[Column]:
    cols = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part in ("experiment", "duration"):
            cols.append(Column(part, part))
            continue
        ident = split_key(part)
        if ident is None or ident[0] == "datasets":
            raise UsageError(
                f"--columns: unknown column {part!r}; use metrics.KEY, params.KEY, tags.KEY, experiment, duration "
                f"or one of {', '.join(sorted(ATTRIBUTES))}"
            )
        cols.append(Column(*ident))
    return cols


def cell(run: dict, col: Column, exp_names: dict[str, str]) -> Any:
    """The raw value of a column for a run (None when absent)."""
    info = run.get("info", {})
    if col.kind == "metrics":
        return lookups.run_metrics(run).get(col.key)
    if col.kind == "params":
        return lookups.run_params(run).get(col.key)
    if col.kind == "tags":
        return lookups.run_tags(run).get(col.key)
    if col.kind == "error":
        return "; ".join(f"{k}: {v}" for k, v in error_tags(run).items()) or None
    if col.kind == "experiment":
        return exp_names.get(info.get("experiment_id"), info.get("experiment_id"))
    if col.kind == "duration":
        start, end = info.get("start_time"), info.get("end_time")
        return int(end) - int(start) if start and end else None
    if col.key == "run_name":
        return lookups.run_name(run)
    return sort_value(run, "attr", col.key)


def show_cell(value: Any, col: Column) -> str:
    if value is None:
        return ""
    if col.kind == "metrics":
        return fmt_num(value)
    if col.kind == "duration":
        return fmt_duration(value)
    if col.kind == "error":
        return truncate(value, 80)
    if col.kind == "attr" and col.key in ("start_time", "end_time"):
        return fmt_time(value)
    if col.kind == "attr" and col.key == "run_name":
        return truncate(value, 40)
    if col.kind == "attr":
        return str(value)
    return fmt_value(value, 30)


def raw_cell(value: Any, col: Column) -> Any:
    if col.kind == "attr" and col.key in ("start_time", "end_time"):
        return iso_time(value)
    if isinstance(value, float):
        return json_safe(value)
    return value


DEFAULT_METRICS = 4  # metric columns of a page of training runs: the most common ones
HEADLINE_METRICS = 6  # of a page of backtests: the first of log_backtest.py's headline figures
BACKTEST_SIGNATURE = ("sharpe", "cagr", "max_drawdown")  # metrics every log_backtest.py run has


def is_backtest(run: dict) -> bool:
    """A run logged by log_backtest.py: its backtest.* tags, or failing those its QuantStats metrics."""
    if any(key.startswith("backtest.") for key in lookups.run_tags(run)):
        return True
    return set(BACKTEST_SIGNATURE) <= set(lookups.run_metrics(run))


def default_metrics(runs: list[dict]) -> tuple[list[Column], str]:
    """The metric columns of a page nobody asked columns of, and a line saying which they are:
    backtests show their headline figures (quant.catalog), other runs their most common metrics."""
    counts = Counter(m["key"] for r in runs for m in r.get("data", {}).get("metrics", []) or [])
    if not counts:
        return [], ""
    if sum(is_backtest(r) for r in runs) * 2 > len(runs):
        headline = [m.key for m in catalog.preset(catalog.HEADLINE) if m.key in counts][:HEADLINE_METRICS]
        if headline:
            return [Column("metrics", k) for k in headline], (
                f"metrics: the backtest headline, {len(headline)} of {len(counts)} logged; --columns metrics.KEY adds "
                "others"
            )
    common = [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:DEFAULT_METRICS]]
    if len(counts) <= len(common):
        return [Column("metrics", k) for k in common], ""
    return [Column("metrics", k) for k in common], (
        f"metrics: the {len(common)} most common of {len(counts)} logged; --columns metrics.KEY adds others"
    )


def table_columns(
    query: Query, runs: list[dict], extra: list[Column], with_experiment: bool
) -> tuple[list[Column], str]:
    """The table's columns, and a line saying which metrics were chosen when nobody named any."""
    note = ""
    cols = [
        Column("attr", "run_name"),
        Column("attr", "run_id"),
        Column("attr", "status"),
        Column("attr", "start_time"),
    ]
    if with_experiment:
        cols.append(Column("experiment", "experiment"))
    named = [Column(kind, key) for kind, key in query.refs if kind in ("metrics", "params", "tags")]
    named += [Column(o.kind, o.key) for o in query.order if o.kind in ("metrics", "params", "tags")]
    named += [Column("attr", key) for kind, key in query.refs if kind == "attr" and key in ATTRIBUTES]
    if not named and not extra:  # nothing asked for: headline figures of backtests, else the common metrics
        named, note = default_metrics(runs)
    for col in [*named, *extra]:
        if col not in cols:
            cols.append(col)
    return cols, note


def run_record(run: dict, exp_names: dict[str, str], all_tags: bool = False) -> dict:
    """A run as compact JSON: ids, name, status, times, metrics, params, (non-system) tags."""
    info = run.get("info", {})
    tags = lookups.run_tags(run)
    return {
        "run_id": info.get("run_id"),
        "run_name": lookups.run_name(run),
        "experiment_id": info.get("experiment_id"),
        "experiment": exp_names.get(info.get("experiment_id")),
        "status": info.get("status"),
        "lifecycle_stage": info.get("lifecycle_stage"),
        "start_time": iso_time(info.get("start_time")),
        "end_time": iso_time(info.get("end_time")),
        "metrics": json_safe(lookups.run_metrics(run)),
        "params": lookups.run_params(run),
        "tags": tags if all_tags else user_tags(tags),
    }


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.")}


def exp_name_map(query: Query) -> dict[str, str]:
    return {e["experiment_id"]: e["name"] for e in query.experiments}


def scope_line(query: Query) -> str:
    exps = query.experiments
    if not exps:
        return "no experiments to search"
    if len(exps) <= 3:
        scope = ", ".join(f"**{safe_text(e['name'])}** (id {e['experiment_id']})" for e in exps)
    else:
        scope = f"{len(exps)} experiments"
    view = {"ACTIVE_ONLY": "", "DELETED_ONLY": ", deleted runs", "ALL": ", active and deleted runs"}[query.view]
    return f"in {scope}{view}"


def runs_table(cols: list[Column], runs: list[dict], exp_names: dict[str, str]) -> Table:
    return Table(
        [col.label for col in cols],
        [[show_cell(cell(r, col, exp_names), col) for col in cols] for r in runs],
        [[raw_cell(cell(r, col, exp_names), col) for col in cols] for r in runs],
    )


def runs_view(
    query: Query,
    page: Page,
    title: str,
    extra_cols: list[Column],
    after: list[str] | None = None,
    next_command: str | None = None,
    record=run_record,
) -> View:
    """A page of runs (shared by runs, best and failed): the table, what ran where, the next page."""
    names = exp_name_map(query)
    cols, columns_note = table_columns(query, page.runs, extra_cols, len(query.experiments) > 1)
    data = {
        "experiments": [{"id": e["experiment_id"], "name": e["name"]} for e in query.experiments],
        "server_filters": [g.server_filter for g in query.groups],
        "client_side": [cmp.text for g in query.groups for cmp in g.client],
        "notes": query.notes(),
        "order_by": [o.raw for o in query.order],
        "total": page.total,
        "runs": [record(r, names) for r in page.runs],
    }
    lines = [
        f"{title} {scope_line(query)}" + (f", order {', '.join(o.raw for o in query.order)}" if query.order else "")
    ]
    filters = [g.server_filter for g in query.groups if g.server_filter]
    if len(query.groups) == 1 and filters:
        lines.append(f"server filter: `{filters[0]}`")
    lines += [*query.notes(), ""]
    if page.runs:
        last = page.first + len(page.runs) - 1
        lines.append(
            f"runs {page.first}–{last}{f' of {page.total}' if page.total is not None else ''}"
            + (f" ({columns_note})" if columns_note else "")
            + ":"
        )
    return View(
        data=data,
        lines=lines,
        table=runs_table(cols, page.runs, names),
        after=list(after or []),
        next_command=next_command,
        next_token=page.next_token,
        more_label="more runs exist",
        empty="no runs match" + (" on this page" if page.first > 1 else ""),
    )
