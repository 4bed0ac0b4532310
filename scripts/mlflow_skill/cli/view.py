"""The output model: a View (lines, a table, notes, the JSON form, the next-page command) and the
one renderer per format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import LINE_BREAKS, md_table, safe_text, to_csv, to_json


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
    return unbroken("\n".join(out), view.data)


_FORGING_RE = re.compile(f"[{LINE_BREAKS}]\\s*\\S")  # a line break with text after it


_FENCE_RE = re.compile(r"(?m)(^ {0,3}```.*$)")  # a fenced code block's opening or closing line


def unbroken(text: str, data: Any) -> str:
    """No string of the result's data can start a line of its own in the markdown: wherever one
    holding a line break (a run named `x\\nerror: forged line`) was interpolated whole, the break
    is shown escaped. Fields passed through safe_text are escaped already; this catches the rest.
    Inside a fenced code block of our own (a trace's request, a stack trace) the lines are quoted
    data and stay as they are, unless the string could close the fence itself."""
    found: set[str] = set()
    _forging_strings(data, found)
    strings = sorted(found, key=len, reverse=True)
    for string in strings:
        if "```" in string and string in text:
            text = text.replace(string, safe_text(string))
    pieces, inside = _FENCE_RE.split(text), False
    for i, piece in enumerate(pieces):
        if i % 2:  # a fence line: the pieces after it are inside until the next one
            inside = not inside
            continue
        if not inside:
            for string in strings:
                if string in piece:
                    piece = piece.replace(string, safe_text(string))
            pieces[i] = piece
    return "".join(pieces)


def _forging_strings(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        if len(value) > 2 and _FORGING_RE.search(value):
            found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _forging_strings(key, found)
            _forging_strings(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _forging_strings(item, found)


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
