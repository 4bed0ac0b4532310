"""search_traces.py's plain view: one page of traces as a compact table (time, status, duration,
name, session, user, request, tokens, feedback, cost, root-cause error), and the facts that need
spans (root cause, cost), fetched only for the traces that need them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mlflow_skill.cli.frame import Context, diag
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import SkillError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import fmt_duration, fmt_num, fmt_time, json_safe, to_json, truncate
from mlflow_skill.store.database import InProcessStore
from mlflow_skill.store.transport import Store
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.assessments import assessment_value_text
from mlflow_skill.traces.cost import cost_brief, trace_cost
from mlflow_skill.traces.filters import SearchScope, parse_assessment
from mlflow_skill.traces.spans import cause_text, root_cause, span_nodes

ALWAYS_SHOWN = {"trace id", "time (UTC)", "status", "duration", "name", "request"}
FOLDABLE = ("status", "name", "session", "user")  # a value every row shares goes above the table
REQUEST_WIDTH, ERROR_WIDTH = 32, 48  # markdown cells: ten rows stay under 2 KB (JSON and CSV: whole)
CSV_HEADERS = {"duration": "duration_ms", "cost": "cost_usd"}  # the unit where CSV cells are numbers


def add_span_facts(store: Store, rows: list[dict], errors: bool = True, prices: dict | None = None) -> None:
    """Root-cause message for each failed trace (spans fetched for those only) and, with
    prices, each trace's cost (spans fetched for every row). Adds keys to the rows."""
    wanted = [r for r in rows if prices or (errors and r["status"] == "ERROR")]
    if not wanted:
        return

    def one(row: dict) -> None:
        try:
            nodes = span_nodes(tr.get_trace_spans(store, row["trace_id"]))
        except SkillError as exc:
            if row["status"] == "ERROR":
                row["error"] = f"(spans unavailable: {truncate(str(exc), 60)})"
            return
        if errors and row["status"] == "ERROR":
            cause = root_cause(nodes)
            row["error"] = cause_text(cause) if cause else None
            row["error_span_id"] = cause.span_id if cause else None
        if prices:
            row["cost"] = trace_cost(nodes, prices)

    if len(wanted) == 1 or isinstance(store, InProcessStore):
        for row in wanted:
            one(row)
    else:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, wanted))


def list_view(ctx: Context, scope: SearchScope, prices: dict | None) -> View:
    args = ctx.args
    infos, token = tr.search_trace_infos(
        ctx.store, scope.experiment_ids, scope.filter, args.max_results, scope.order_by, args.page_token
    )
    rows = [tr.trace_summary(i) for i in infos]
    if not args.no_errors or prices:
        add_span_facts(ctx.store, rows, errors=not args.no_errors, prices=prices)
    next_cmd = ctx.next_page(token) if token else None
    result = {
        **scope.as_dict(),
        "traces": rows,
        "count": len(rows),
        "next_page_token": token,
        "next_page_command": next_cmd,
    }
    if args.output:
        path = write_atomic(args.output, to_json(json_safe({**result, "trace_infos": infos})), force=args.force)
        diag(f"wrote {len(rows)} traces to {path}")
    headers, table = table_rows(rows, args, csv=False)
    headers, table, shared = fold_shared(headers, table)
    raw_headers, raw = table_rows(rows, args, csv=True)
    return View(
        data=json_safe(result),
        lines=scope.heading() + ([f"every trace shown: {shared}", ""] if shared else []),
        table=Table(headers, table, raw=raw, raw_headers=raw_headers),
        after=list_tail(rows, args.output, next_cmd),
        empty="No traces match. Widen the filter (e.g. drop --since/--status) or check the experiment.",
    )


def list_tail(rows: list[dict], output: str | None, next_cmd: str | None) -> list[str]:
    tail = f"{len(rows)} traces shown"
    if output:
        tail += f"; full trace infos written to {output}"
    if next_cmd:
        tail += f"; more match. Next page: {next_cmd}"
    elif rows:
        tail += " (all that match)"
    return ["", tail] + (["One trace in detail: uv run scripts/get_trace.py --trace-id TRACE_ID"] if rows else [])


def table_rows(rows: list[dict], args, csv: bool = False) -> tuple[list[str], list[list]]:
    """The table's headers and cells; columns empty on every row are left out (CSV keeps them),
    feedback only with --assessment, cost only with --prices."""
    asked = {parse_assessment(spec)[0] for spec in (args.assessment or [])}
    cols = [
        ("trace id", lambda r: r["trace_id"]),
        ("time (UTC)", lambda r: fmt_time(r["timestamp_ms"])),
        ("status", lambda r: r["status"]),
        ("duration", lambda r: r["duration_ms"] if csv else fmt_duration(r["duration_ms"])),
        ("name", lambda r: r["name"]),
        ("session", lambda r: r["session"] or ""),
        ("user", lambda r: r["user"] or ""),
        ("request", lambda r: r["request_preview"] if csv else truncate(r["request_preview"], REQUEST_WIDTH)),
        ("tokens", lambda r: (r["tokens"] or {}).get("total_tokens", "") if csv else tokens_cell(r["tokens"])),
        ("feedback", lambda r: feedback_cell(r, asked)),
        ("cost", lambda r: cost_cell(r.get("cost"), csv)),
        ("error", lambda r: (r.get("error") or "") if csv else truncate(r.get("error") or "", ERROR_WIDTH)),
    ]
    values = [[get(r) for _, get in cols] for r in rows]
    optional = {"feedback": bool(asked), "cost": bool(args.prices)}
    keep = [
        i
        for i, (name, _) in enumerate(cols)
        if optional.get(name, True) and (name in ALWAYS_SHOWN or csv or any(v[i] not in ("", None) for v in values))
    ]
    headers = [CSV_HEADERS.get(cols[i][0], cols[i][0]) if csv else cols[i][0] for i in keep]
    return headers, [[v[i] for i in keep] for v in values]


def fold_shared(headers: list[str], table: list[list]) -> tuple[list[str], list[list], str]:
    """Markdown only: a status, name, session or user every row shares, said once above the
    table instead of on each row."""
    if len(table) < 2:
        return headers, table, ""
    shared = []
    for name in FOLDABLE:
        if name not in headers:
            continue
        at = headers.index(name)
        values = {row[at] for row in table}
        if len(values) == 1 and values != {""}:
            shared.append(f"{name} {values.pop()}")
            headers = headers[:at] + headers[at + 1 :]
            table = [row[:at] + row[at + 1 :] for row in table]
    return headers, table, ", ".join(shared)


def feedback_cell(row: dict, names: set[str]) -> str:
    items = [
        a for a in row["assessments"] if a["kind"] == "feedback" and a["name"] in names and a.get("valid") is not False
    ]
    return ", ".join(f"{a['name']}={assessment_value_text(a, 12)}" for a in items)


def cost_cell(cost: dict | None, csv: bool = False) -> str | float:
    if not cost:
        return ""
    if csv:
        return cost["cost_usd"] if cost["cost_usd"] is not None else ""
    return cost_brief(cost["cost_usd"], cost["unpriced_tokens"])


def tokens_cell(usage: dict | None) -> str:
    if not usage:
        return ""
    total = usage.get("total_tokens")
    if "input_tokens" in usage or "output_tokens" in usage:
        return f"{fmt_num(total)} ({fmt_num(usage.get('input_tokens', 0))}+{fmt_num(usage.get('output_tokens', 0))})"
    return fmt_num(total)
