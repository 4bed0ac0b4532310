# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow>=3.7",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = true  # MLflow is imported for non-server stores: compile once, not per call
# ///
"""Find GenAI traces (LLM apps, agents) in MLflow and show them as one compact table.

Usage:
  uv run scripts/search_traces.py [--experiment NAME_OR_ID ...] [--run-id ID] [--filter EXPR]
                                  [--status OK|ERROR|IN_PROGRESS] [--session ID] [--user ID]
                                  [--slower-than MS] [--since WHEN] [--until WHEN]
                                  [--tag K=V ...] [--metadata K=V ...] [--text SUBSTRING]
                                  [--span-name NAME] [--order-by EXPR ...] [--max-results N]
                                  [--page-token TOKEN] [--group-by session|user|status|name]
                                  [--output FILE [--force]] [--format markdown|json|csv]

Scope: --experiment (default: MLFLOW_EXPERIMENT_ID, then MLFLOW_EXPERIMENT_NAME), and/or
--run-id (traces logged under that run; its experiment is used when none is given).

--filter takes MLflow's trace filter grammar as is (AND only): trace.status,
trace.timestamp_ms, trace.execution_time_ms, trace.name, tag.K, metadata.`K`, span.name,
span.type, span.status, span.attributes.K, feedback.NAME, expectation.NAME,
trace.text LIKE '%x%'; comparators = != < > LIKE ILIKE RLIKE IN IS NULL. The convenience
flags below are ANDed to it:
  --status ERROR            trace.status = 'ERROR'
  --session ID / --user ID  metadata.`mlflow.trace.session` / metadata.`mlflow.trace.user`
  --slower-than 2000        trace.execution_time_ms > 2000
  --since 1h --until 2026-11-20   trace.timestamp_ms window (durations ago: 30m 1h 2d 1w,
                            or ISO dates/times, UTC unless an offset is given)
  --tag k=v --metadata k=v  exact match (repeatable)
  --text refund             trace.text LIKE '%refund%' (inputs/outputs of spans)
  --span-name retriever     span.name = 'retriever' (some span of the trace)

Table: trace id, time (UTC), status, duration, name (root span), session, user, request
preview, tokens (when recorded) and, for failed traces, the root-cause error: the message of
the deepest failed span. Only that column needs spans, so spans are fetched for the ERROR
traces on the shown page only (--no-errors skips it). Empty columns are left out.

--group-by session|user|status|name pages through ALL matching traces (up to --limit, default
10000, 500 per request) and shows per group: traces, errors, error rate, p50/p95 latency and
tokens. Newest first by default; --order-by takes MLflow's keys (timestamp_ms,
execution_time_ms, status, name) with ASC/DESC.

Examples:
  uv run scripts/search_traces.py --experiment my-agent --status ERROR --since 1d
  uv run scripts/search_traces.py --experiment my-agent --session sess-42 --order-by "timestamp_ms ASC"
  uv run scripts/search_traces.py --experiment my-agent --slower-than 2000 --since 2026-11-20
  uv run scripts/search_traces.py --experiment 3 --filter "feedback.correctness = 'no'" --user alice
  uv run scripts/search_traces.py --experiment my-agent --group-by session --since 7d
  uv run scripts/search_traces.py --experiment my-agent --max-results 200 --output traces.json
Next: uv run scripts/get_trace.py --trace-id TRACE_ID   (span tree, errors, assessments)
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import _cli as cli
import _common as c
import _store as st
import _traces as tr

SCRIPT = "search_traces.py"
GROUP_KEYS = ("session", "user", "status", "name")
DEFAULT_ORDER = ["timestamp_ms DESC"]


def build_parser():
    parser = cli.make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}", formats=("markdown", "json", "csv"))
    scope = parser.add_argument_group("scope")
    scope.add_argument("--experiment", action="append", metavar="NAME_OR_ID", help="experiment name or id; repeatable")
    scope.add_argument("--run-id", help="only traces logged under this run")
    flt = parser.add_argument_group("filters (ANDed)")
    flt.add_argument("--filter", help="MLflow trace filter expression, passed as is")
    flt.add_argument("--status", type=str.upper, choices=tr.TRACE_STATES, help="trace status")
    flt.add_argument("--session", help="session id (metadata mlflow.trace.session)")
    flt.add_argument("--user", help="user id (metadata mlflow.trace.user)")
    flt.add_argument("--slower-than", type=float, metavar="MS", help="execution time above MS milliseconds")
    flt.add_argument("--since", metavar="WHEN", help="started at or after: 30m, 1h, 2d, 1w ago, or an ISO date/time")
    flt.add_argument("--until", metavar="WHEN", help="started before: same forms as --since")
    flt.add_argument("--tag", action="append", metavar="K=V", help="trace tag equals; repeatable")
    flt.add_argument("--metadata", action="append", metavar="K=V", help="trace metadata equals; repeatable")
    flt.add_argument("--text", metavar="SUBSTRING", help="text anywhere in span inputs/outputs (trace.text LIKE)")
    flt.add_argument("--span-name", metavar="NAME", help="has a span with this name")
    out = parser.add_argument_group("paging and output")
    out.add_argument("--order-by", action="append", metavar="EXPR", help='e.g. "execution_time_ms DESC"; repeatable')
    out.add_argument("--max-results", type=int, default=25, help="traces per page (default 25, at most 500)")
    out.add_argument("--page-token", help="token printed by the previous page")
    out.add_argument("--group-by", choices=GROUP_KEYS, help="summarise all matching traces per group")
    out.add_argument("--limit", type=int, default=10000, help="--group-by: at most this many traces (default 10000)")
    out.add_argument("--no-errors", action="store_true", help="do not fetch spans for the error column")
    out.add_argument("--output", metavar="FILE", help="also write the full result (complete trace infos) as JSON")
    out.add_argument("--force", action="store_true", help="let --output replace an existing file")
    return parser


def resolve_experiments(ctx: cli.Context) -> list[dict]:
    refs = ctx.args.experiment or []
    default = ctx.settings.experiment_id or ctx.settings.experiment_name
    if not refs and default:
        refs = [default]
    experiments = [st.get_experiment(ctx.store, ref) for ref in refs]
    if ctx.args.run_id:
        run = st.get_run(ctx.store, ctx.args.run_id)
        run_exp = run["info"]["experiment_id"]
        if not experiments:
            experiments = [st.get_experiment(ctx.store, run_exp)]
        elif run_exp not in {e["experiment_id"] for e in experiments}:
            raise c.UsageError(
                f"run {ctx.args.run_id} belongs to experiment {run_exp}, not to the --experiment given: "
                "drop --experiment or add that one"
            )
    if not experiments:
        raise c.UsageError(
            "which experiment? pass --experiment NAME_OR_ID (or set MLFLOW_EXPERIMENT_ID / MLFLOW_EXPERIMENT_NAME); "
            "list them: uv run scripts/query_experiments.py experiments"
        )
    return experiments


def build_filter(args) -> tuple[str, list[str]]:
    """The user's --filter ANDed with the convenience flags; notes say what was approximated."""
    parts: list[str] = []
    notes: list[str] = []
    if args.filter and args.filter.strip():
        parts.append(args.filter.strip())

    def eq(key: str, value: str, flag: str) -> None:
        clause = tr.filter_eq(key, value)
        if " LIKE " in clause:
            notes.append(f"{flag} value has both quote kinds; matched with LIKE, ' as any character")
        parts.append(clause)

    if args.status:
        parts.append(f"trace.status = '{args.status}'")
    if args.session is not None:
        eq(tr.backtick_key("metadata", tr.TRACE_SESSION_KEY), args.session, "--session")
    if args.user is not None:
        eq(tr.backtick_key("metadata", tr.TRACE_USER_KEY), args.user, "--user")
    if args.slower_than is not None:
        parts.append(f"trace.execution_time_ms > {int(args.slower_than)}")
    if args.since:
        parts.append(f"trace.timestamp_ms >= {c.parse_since(args.since)}")
    if args.until:
        parts.append(f"trace.timestamp_ms < {c.parse_since(args.until)}")
    for key, value in c.parse_key_values(args.tag, "--tag").items():
        eq(tr.backtick_key("tag", key), value, "--tag")
    for key, value in c.parse_key_values(args.metadata, "--metadata").items():
        eq(tr.backtick_key("metadata", key), value, "--metadata")
    if args.text:
        literal, _ = tr.sql_literal("%" + args.text + "%")
        parts.append(f"trace.text LIKE {literal}")
        if "%" in args.text or "_" in args.text:
            notes.append("--text: % and _ in the text act as wildcards")
    if args.span_name is not None:
        eq("span.name", args.span_name, "--span-name")
    if args.run_id:
        parts.append(tr.filter_eq("trace.run_id", args.run_id.strip()))
    return " AND ".join(parts), notes


def command(ctx: cli.Context) -> int:
    args = ctx.args
    if not 1 <= args.max_results <= tr.TRACE_PAGE_MAX:
        raise c.UsageError(f"--max-results must be 1..{tr.TRACE_PAGE_MAX} (the server's page limit)")
    if args.limit < 1:
        raise c.UsageError("--limit must be at least 1")
    if args.group_by and args.page_token:
        raise c.UsageError("--group-by covers all matching traces: drop --page-token")
    filter_string, notes = build_filter(args)
    experiments = resolve_experiments(ctx)
    exp_ids = [e["experiment_id"] for e in experiments]
    order_by = args.order_by or DEFAULT_ORDER
    scope = {
        "experiments": [{"experiment_id": e["experiment_id"], "name": e["name"]} for e in experiments],
        "filter": filter_string or None,
        "order_by": order_by,
        "notes": notes,
    }
    if args.group_by:
        return group_command(ctx, exp_ids, filter_string, scope)

    infos, token = tr.search_trace_infos(ctx.store, exp_ids, filter_string, args.max_results, order_by, args.page_token)
    rows = [tr.trace_summary(i) for i in infos]
    if not args.no_errors:
        add_error_previews(ctx.store, rows)
    next_cmd = ctx.next_page(token) if token else None
    result = {**scope, "traces": rows, "count": len(rows), "next_page_token": token, "next_page_command": next_cmd}
    if args.output:
        full = {**result, "trace_infos": infos}
        path = c.write_atomic(args.output, c.to_json(c.json_safe(full)), force=args.force)
        cli.diag(f"wrote {len(rows)} traces to {path}")
    if ctx.fmt == "json":
        ctx.emit(c.to_json(c.json_safe(result)))
    elif ctx.fmt == "csv":
        headers, table = table_rows(rows, csv=True)
        ctx.emit(c.to_csv(headers, table))
        if next_cmd:
            cli.diag(f"more traces: {next_cmd}")
    else:
        ctx.emit(render(result, args.output))
    return c.EXIT_OK


def add_error_previews(store: st.Store, rows: list[dict]) -> None:
    """Root-cause message for each failed trace on the page (spans fetched for those only)."""
    failed = [r for r in rows if r["status"] == "ERROR"]
    if not failed:
        return

    def one(row: dict) -> None:
        try:
            nodes = tr.span_nodes(tr.get_trace_spans(store, row["trace_id"]))
        except c.SkillError as exc:
            row["error"] = f"(spans unavailable: {c.truncate(str(exc), 60)})"
            return
        cause = tr.root_cause(nodes)
        row["error"] = f"{cause['name']}: {cause['error'] or 'ERROR'}" if cause else None
        row["error_span_id"] = cause["span_id"] if cause else None

    if len(failed) == 1 or isinstance(store, st.InProcessStore):
        for row in failed:
            one(row)
    else:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, failed))


def table_rows(rows: list[dict], csv: bool = False) -> tuple[list[str], list[list]]:
    cols = [
        ("trace id", lambda r: r["trace_id"]),
        ("time (UTC)", lambda r: c.fmt_time(r["timestamp_ms"])),
        ("status", lambda r: r["status"]),
        ("duration", lambda r: (r["duration_ms"] if csv else c.fmt_duration(r["duration_ms"]))),
        ("name", lambda r: r["name"]),
        ("session", lambda r: r["session"] or ""),
        ("user", lambda r: r["user"] or ""),
        ("request", lambda r: r["request_preview"] if csv else c.truncate(r["request_preview"], 50)),
        ("tokens", lambda r: (r["tokens"] or {}).get("total_tokens", "") if csv else tokens_cell(r["tokens"])),
        ("error", lambda r: (r.get("error") or "") if csv else c.truncate(r.get("error") or "", 70)),
    ]
    always = {"trace id", "time (UTC)", "status", "duration", "name", "request"}
    values = [[get(r) for _, get in cols] for r in rows]
    keep = [i for i, (name, _) in enumerate(cols) if name in always or csv or any(v[i] not in ("", None) for v in values)]
    headers = [("duration_ms" if csv and cols[i][0] == "duration" else cols[i][0]) for i in keep]
    return headers, [[v[i] for i in keep] for v in values]


def tokens_cell(usage: dict | None) -> str:
    if not usage:
        return ""
    total = usage.get("total_tokens")
    if "input_tokens" in usage or "output_tokens" in usage:
        return f"{c.fmt_num(total)} ({c.fmt_num(usage.get('input_tokens', 0))}+{c.fmt_num(usage.get('output_tokens', 0))})"
    return c.fmt_num(total)


def scope_line(result: dict) -> str:
    names = ", ".join(f"{e['name']} ({e['experiment_id']})" for e in result["experiments"])
    line = f"Traces in {names}"
    if result["filter"]:
        line += f" where `{result['filter']}`"
    if result["order_by"] != DEFAULT_ORDER:
        line += f", ordered by {', '.join(result['order_by'])}"
    return line


def render(result: dict, output: str | None) -> str:
    lines = [scope_line(result), ""]
    for note in result["notes"]:
        lines += [f"note: {note}", ""]
    if not result["traces"]:
        lines.append("No traces match. Widen the filter (e.g. drop --since/--status) or check the experiment.")
    else:
        headers, table = table_rows(result["traces"])
        lines.append(c.md_table(headers, table))
    lines.append("")
    tail = f"{result['count']} traces shown"
    if output:
        tail += f"; full trace infos written to {output}"
    if result["next_page_command"]:
        tail += f"; more match. Next page: {result['next_page_command']}"
    elif result["count"]:
        tail += " (all that match)"
    lines.append(tail)
    if result["traces"]:
        lines.append("One trace in detail: uv run scripts/get_trace.py --trace-id TRACE_ID")
    return "\n".join(lines)


def group_command(ctx: cli.Context, exp_ids: list[str], filter_string: str, scope: dict) -> int:
    args = ctx.args
    order_by = scope["order_by"]
    rows: list[dict] = []
    infos_all: list[dict] = []
    token = None
    truncated = False
    while True:
        size = min(tr.TRACE_PAGE_MAX, args.limit - len(rows))
        infos, token = tr.search_trace_infos(ctx.store, exp_ids, filter_string, size, order_by, token)
        rows += [tr.trace_summary(i) for i in infos]
        if args.output:
            infos_all += infos
        if not token:
            break
        if len(rows) >= args.limit:
            truncated = True
            break
    groups: dict[str, list[dict]] = {}
    for row in rows:
        key = row[args.group_by]
        groups.setdefault("" if key is None else str(key), []).append(row)
    stats = []
    for key, members in groups.items():
        durations = [m["duration_ms"] for m in members if m["duration_ms"] is not None]
        errors = sum(1 for m in members if m["status"] == "ERROR")
        with_tokens = [m["tokens"] for m in members if m["tokens"]]
        total_tokens = sum((t.get("total_tokens") or 0) for t in with_tokens)
        stats.append(
            {
                args.group_by: key or None,
                "traces": len(members),
                "errors": errors,
                "error_rate": errors / len(members),
                "p50_ms": c.percentile(durations, 50),
                "p95_ms": c.percentile(durations, 95),
                "total_tokens": total_tokens if with_tokens else None,
                "tokens_per_trace": total_tokens / len(with_tokens) if with_tokens else None,
                "first_ms": min((m["timestamp_ms"] or 0) for m in members) or None,
                "last_ms": max((m["timestamp_ms"] or 0) for m in members) or None,
            }
        )
    stats.sort(key=lambda s: (-s["traces"], str(s[args.group_by] or "")))
    result = {
        **scope,
        "group_by": args.group_by,
        "traces_counted": len(rows),
        "truncated_at_limit": truncated,
        "groups": stats,
    }
    if args.output:
        path = c.write_atomic(args.output, c.to_json(c.json_safe({**result, "trace_infos": infos_all})), force=args.force)
        cli.diag(f"wrote {len(stats)} groups and {len(infos_all)} trace infos to {path}")
    key = args.group_by
    headers = [key, "traces", "errors", "error rate", "p50", "p95", "tokens", "tokens/trace", "first (UTC)", "last (UTC)"]
    if ctx.fmt == "json":
        ctx.emit(c.to_json(c.json_safe(result)))
        return c.EXIT_OK
    if ctx.fmt == "csv":
        ctx.emit(c.to_csv(headers, [[s[key], s["traces"], s["errors"], s["error_rate"], s["p50_ms"], s["p95_ms"], s["total_tokens"], s["tokens_per_trace"], s["first_ms"], s["last_ms"]] for s in stats]))
        return c.EXIT_OK
    shown = stats[:100] if len(stats) > 100 else stats
    table = [
        [
            c.truncate(s[key] if s[key] is not None else "(none)", 40),
            s["traces"],
            s["errors"],
            f"{s['error_rate'] * 100:.1f}%",
            c.fmt_duration(s["p50_ms"]),
            c.fmt_duration(s["p95_ms"]),
            c.fmt_num(s["total_tokens"]) if s["total_tokens"] is not None else "",
            c.fmt_num(s["tokens_per_trace"]) if s["tokens_per_trace"] is not None else "",
            c.fmt_time(s["first_ms"]),
            c.fmt_time(s["last_ms"]),
        ]
        for s in shown
    ]
    lines = [scope_line(scope) + f", grouped by {key}", ""]
    for note in scope["notes"]:
        lines += [f"note: {note}", ""]
    if not rows:
        lines.append("No traces match.")
        ctx.emit("\n".join(lines))
        return c.EXIT_OK
    lines.append(c.md_table(headers, table))
    lines.append("")
    total_err = sum(s["errors"] for s in stats)
    tail = f"{len(stats)} groups over {len(rows)} traces ({total_err} error{'' if total_err == 1 else 's'})"
    if len(shown) < len(stats):
        tail += f"; largest {len(shown)} groups shown (all in --format json/csv)"
    if truncated:
        tail += f"; stopped at --limit {args.limit}: more traces match, raise --limit for all"
    lines.append(tail)
    ctx.emit("\n".join(lines))
    return c.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
