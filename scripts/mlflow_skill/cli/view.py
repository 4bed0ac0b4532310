"""The output model: a View (lines, a table, notes, the JSON form, the next-page command) and the
one renderer per format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import md_table, to_csv, to_json


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]  # cells as people read them (markdown)
    raw: list[list[Any]] | None = None  # cells as machines read them (CSV); default: rows
    raw_headers: list[str] | None = None  # CSV headers when they differ (units: duration_ms)


@dataclass
class View:
    """What a command shows. `data` is the complete JSON form; markdown is `lines`, then the
    table, then `after`; CSV is the table's raw rows. `next_command` continues a paged result."""

    data: Any
    lines: list[str] = field(default_factory=list)
    table: Table | None = None
    after: list[str] = field(default_factory=list)
    next_command: str | None = None
    next_token: str | None = None
    more_label: str = "more results exist"
    empty: str = ""  # markdown in place of an empty table


def render_markdown(view: View) -> str:
    out = list(view.lines)
    if view.table is not None:
        if view.table.rows:
            out.append(md_table(view.table.headers, view.table.rows))
        elif view.empty:
            out.append(view.empty)
    out += view.after
    if view.next_command:
        out += ["", f"{view.more_label}; next page: `{view.next_command}`"]
    return "\n".join(out)


def render_json(view: View) -> str:
    data = view.data
    if view.next_command is not None or view.next_token is not None:
        data = {**data, "next_page_token": view.next_token, "next_page_command": view.next_command}
    return to_json(data)


def render_csv(view: View) -> str:
    if view.table is None:
        raise UsageError("this command has no table to write as CSV: use --format markdown or json")
    headers = view.table.raw_headers or view.table.headers
    return to_csv(headers, view.table.raw if view.table.raw is not None else view.table.rows)
