"""Which traces a search covers: the quoting MLflow's trace filter grammar needs, --assessment as
feedback.* clauses, the filter search_traces.py's flags make, and the scope (experiments, filter,
order) every search view starts from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlflow_skill.cli.frame import Context
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_time
from mlflow_skill.core.values import parse_key_values, parse_since
from mlflow_skill.traces import api as tr

DEFAULT_ORDER = ["timestamp_ms DESC"]
EPOCH_MS_RE = re.compile(r"timestamp_ms\s*(?:>=|<=|!=|=|>|<)\s*(\d{11,14})\b")  # a time in epoch ms


def filter_times(filter_text: str | None) -> str:
    """The epoch-millisecond times a filter compares with, as UTC times: '1796409014989 = 2026-12-04
    10:30:14 UTC' ('' when there are none): the filter itself keeps the number MLflow takes."""
    stamps = dict.fromkeys(EPOCH_MS_RE.findall(filter_text or ""))
    return "; ".join(f"{ms} = {fmt_time(ms)} UTC" for ms in stamps)


def sql_literal(value: str) -> tuple[str, bool]:
    """Quote a value for MLflow's search grammar, which has no escape character: single quotes,
    or double quotes if the value holds a single quote. A value holding both kinds cannot be
    written exactly; it becomes a LIKE pattern with `_` in place of each single quote, and the
    second item is False so callers use LIKE (and say so)."""
    value = str(value)
    if "'" not in value:
        return f"'{value}'", True
    if '"' not in value:
        return f'"{value}"', True
    return "'" + value.replace("'", "_") + "'", False


def filter_eq(key: str, value: str) -> str:
    literal, exact = sql_literal(value)
    return f"{key} {'=' if exact else 'LIKE'} {literal}"


def backtick_key(prefix: str, key: str) -> str:
    """metadata.`mlflow.trace.session`: backticks whenever the key is not a plain identifier."""
    if "`" in key:
        raise UsageError(f"key {key!r} contains a backtick, which MLflow's filter grammar cannot quote")
    plain = key.replace("_", "a").isalnum() and not key[:1].isdigit()
    return f"{prefix}.{key}" if plain else f"{prefix}.`{key}`"


def parse_assessment(spec: str) -> tuple[str, str | None, str | None]:
    """--assessment NAME, NAME=VALUE, NAME!=VALUE, 'NAME>=0.8' -> (name, operator, value)."""
    text = str(spec).strip()
    m = re.match(r"^\s*(.+?)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$", text)
    name, op, value = (m.group(1), m.group(2), m.group(3)) if m else (text, None, None)
    if not name:
        raise UsageError(f"--assessment {spec!r}: give a name, e.g. --assessment correctness=yes or 'score>=0.8'")
    return name, op, value


def assessment_clause(spec: str) -> str:
    """The --assessment spec as MLflow's feedback.* filter clause."""
    name, op, value = parse_assessment(spec)
    key = backtick_key("feedback", name)
    if op is None:
        return f"{key} IS NOT NULL"
    if op in ("<", "<=", ">", ">="):
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"--assessment {spec!r}: {op} needs a number, e.g. 'score>=0.8'") from None
        return f"{key} {op} {value if value.lstrip('-').replace('.', '', 1).isdigit() else number}"
    if value == "":
        raise UsageError(f"--assessment {spec!r}: give a value after {op}, e.g. correctness=yes")
    literal, exact = sql_literal(value)
    if not exact:
        raise UsageError(f"--assessment {spec!r}: a value with both quote kinds cannot be matched exactly")
    return f"{key} {op} {literal}"


@dataclass
class Clauses:
    """A filter being built: its clauses (ANDed) and notes on what was approximated."""

    parts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def equals(self, key: str, value: str, flag: str) -> None:
        clause = filter_eq(key, value)
        if " LIKE " in clause:
            self.notes.append(f"{flag} value has both quote kinds; matched with LIKE, ' as any character")
        self.parts.append(clause)

    def text(self, substring: str) -> None:
        literal, _ = sql_literal("%" + substring + "%")
        self.parts.append(f"trace.text LIKE {literal}")
        if "%" in substring or "_" in substring:
            self.notes.append("--text: % and _ in the text act as wildcards")


def build_filter(args, window: bool = True) -> tuple[str, list[str]]:
    """The user's --filter ANDed with the convenience flags; notes say what was approximated.
    window=False leaves --since/--until out (--every takes them as its time window)."""
    clauses = Clauses()
    if args.filter and args.filter.strip():
        clauses.parts.append(args.filter.strip())
    if args.status:
        clauses.parts.append(f"trace.status = '{args.status}'")
    if args.session is not None:
        clauses.equals(backtick_key("metadata", tr.TRACE_SESSION_KEY), args.session, "--session")
    if args.user is not None:
        clauses.equals(backtick_key("metadata", tr.TRACE_USER_KEY), args.user, "--user")
    if args.slower_than is not None:
        clauses.parts.append(f"trace.execution_time_ms > {int(args.slower_than)}")
    if args.since and window:
        clauses.parts.append(f"trace.timestamp_ms >= {parse_since(args.since)}")
    if args.until and window:
        clauses.parts.append(f"trace.timestamp_ms < {parse_since(args.until)}")
    for key, value in parse_key_values(args.tag, "--tag").items():
        clauses.equals(backtick_key("tag", key), value, "--tag")
    for key, value in parse_key_values(args.metadata, "--metadata").items():
        clauses.equals(backtick_key("metadata", key), value, "--metadata")
    if args.text:
        clauses.text(args.text)
    if args.span_name is not None:
        clauses.equals("span.name", args.span_name, "--span-name")
    for spec in args.assessment or []:
        clauses.parts.append(assessment_clause(spec))
    if args.run_id:
        clauses.parts.append(filter_eq("trace.run_id", args.run_id.strip()))
    return " AND ".join(clauses.parts), clauses.notes


@dataclass
class SearchScope:
    """What a search covers; every search view's JSON starts with these four keys."""

    experiments: list[dict]  # {"experiment_id", "name"}
    filter: str | None
    order_by: list[str]
    notes: list[str]

    @property
    def experiment_ids(self) -> list[str]:
        return [e["experiment_id"] for e in self.experiments]

    def as_dict(self) -> dict:
        return {"experiments": self.experiments, "filter": self.filter, "order_by": self.order_by, "notes": self.notes}

    def line(self) -> str:
        """'Traces in NAME (ID) where `FILTER`, ordered by ...': the first line of every view."""
        names = ", ".join(f"{e['name']} ({e['experiment_id']})" for e in self.experiments)
        line = f"Traces in {names}"
        if self.filter:
            line += f" where `{self.filter}`"
            times = filter_times(self.filter)
            line += f" ({times})" if times else ""
        if self.order_by != DEFAULT_ORDER:
            line += f", ordered by {', '.join(self.order_by)}"
        return line

    def heading(self, suffix: str = "") -> list[str]:
        """The scope line and its notes, as the list and group views open."""
        lines = [self.line() + suffix, ""]
        for note in self.notes:
            lines += [f"note: {note}", ""]
        return lines


def search_scope(ctx: Context) -> SearchScope:
    """The experiments and filter search_traces.py's flags ask for (--since/--until are the
    window of --every, not part of its filter)."""
    args = ctx.args
    filter_string, notes = build_filter(args, window=not args.every)
    experiments = tr.resolve_experiments(ctx.store, ctx.settings, args.experiment, args.run_id)
    return SearchScope(
        experiments=[{"experiment_id": e["experiment_id"], "name": e["name"]} for e in experiments],
        filter=filter_string or None,
        order_by=args.order_by or DEFAULT_ORDER,
        notes=notes,
    )
