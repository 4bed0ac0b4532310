# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = false  # a first call compiles only what it imports, or borrows it (_embedded)
# ///
# Dependencies: MLflow's client and tracking store without its ML stack (mlflow-skinny plus the
# database and server-handler packages full `mlflow` adds for the embedded sqlite store). Not
# compiled at install: compiling all of it took most of each script's first call, six times over;
# see _store.bytecode_cache and _embedded.borrow_bytecode for what happens instead.
"""Find GenAI traces (LLM apps, agents) in MLflow: one compact table, per-group quality and
cost summaries, or metrics over time.

Usage:
  uv run scripts/search_traces.py [--experiment NAME_OR_ID ...] [--run-id ID] [--filter EXPR]
                                  [--status OK|ERROR|IN_PROGRESS] [--session ID] [--user ID]
                                  [--slower-than MS] [--since WHEN] [--until WHEN]
                                  [--tag K=V ...] [--metadata K=V ...] [--text SUBSTRING]
                                  [--span-name NAME] [--assessment NAME[OP VALUE] ...]
                                  [--order-by EXPR ...] [--max-results N] [--page-token TOKEN]
                                  [--group-by KEY [--max-groups N]] [--every DURATION]
                                  [--prices prices.json] [--output FILE [--force]]
                                  [--format markdown|json|csv]

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
  --assessment correct=yes  feedback.correct = 'yes' (booleans match 'true'/'false');
  --assessment "score>=0.8" numeric feedback: > >= < <= (MLflow's feedback.* grammar);
  --assessment helpful      has that feedback at all (IS NOT NULL); repeatable, ANDed

Table: trace id, time (UTC), status, duration, name (root span), session, user, request
preview, tokens (when recorded) and, for failed traces, the root-cause error: the message of
the deepest failed span. Only that column needs spans, so spans are fetched for the ERROR
traces on the shown page only (--no-errors skips it). Empty columns are left out.

--group-by KEY pages through ALL matching traces (up to --limit, default 10000, 500 per
request) and shows per group: traces, errors, error rate, p50/p95 latency, tokens, each
feedback's pass rate (booleans, yes/no, pass/fail) or mean (numbers), and trace ids to open
(failed first, then slowest). KEY: session, user, status, name, tag.NAME or metadata.NAME
(e.g. --group-by tag.app_version: "is version B better than A on feedback?" in one call).

--every 1h: metrics over time (with --since, default 7d): traces, errors, error rate,
p50/p95 latency and tokens per bucket, a sparkline per series (each character keeps its
bucket's min and max, never a mean), per group with --group-by. Uses the server's
POST /api/3.0/mlflow/traces/metrics (MLflow 3.x) when the flags fit it (status, session, user,
tag and metadata equality; --group-by name or status); otherwise, or with --client-side, it
aggregates a bounded search here and says so.

--prices prices.json adds a cost column (USD) from the models named on the spans that carry
token usage: {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}, ...}. Costs need
spans, fetched for every trace counted. Nothing is priced without this file.

Newest first by default; --order-by takes MLflow's keys (timestamp_ms, execution_time_ms,
status, name) with ASC/DESC.

Examples:
  uv run scripts/search_traces.py --experiment my-agent --status ERROR --since 1d
  uv run scripts/search_traces.py --experiment my-agent --session sess-42 --order-by "timestamp_ms ASC"
  uv run scripts/search_traces.py --experiment my-agent --slower-than 2000 --since 2026-11-20
  uv run scripts/search_traces.py --experiment 3 --assessment correct=false --user alice
  uv run scripts/search_traces.py --experiment my-agent --group-by tag.app_version --since 7d
  uv run scripts/search_traces.py --experiment my-agent --every 1d --since 7d
  uv run scripts/search_traces.py --experiment my-agent --group-by session --prices prices.json
  uv run scripts/search_traces.py --experiment my-agent --max-results 200 --output traces.json
Next: uv run scripts/get_trace.py --trace-id TRACE_ID   (span tree, errors, assessments)
      uv run scripts/get_trace.py --session SESSION_ID --experiment NAME   (a conversation)
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from mlflow_skill.cli.frame import (
    Context,
    check_output_target,
    diag,
    make_parser,
    run_main,
)
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import EXIT_OK, SkillError, UsageError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import (
    fmt_duration,
    fmt_num,
    fmt_time,
    iso_time,
    json_safe,
    md_table,
    to_json,
    truncate,
)
from mlflow_skill.core.values import (
    parse_duration_ms,
    parse_key_values,
    parse_since,
    percentile,
)
from mlflow_skill.store.transport import InProcessStore, Store
from mlflow_skill.traces import api as tr
from mlflow_skill.traces import metrics as tm

SCRIPT = "search_traces.py"
GROUP_KEYS = ("session", "user", "status", "name")
DEFAULT_ORDER = ["timestamp_ms DESC"]
IDS_PER_GROUP = 5  # in JSON; markdown shows 2


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}", formats=("markdown", "json", "csv"))
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
    flt.add_argument(
        "--assessment",
        action="append",
        metavar="NAME[OP VALUE]",
        help="feedback filter: NAME, NAME=VALUE, NAME!=VALUE, 'NAME>=0.8'; repeatable",
    )
    out = parser.add_argument_group("paging and output")
    out.add_argument("--order-by", action="append", metavar="EXPR", help='e.g. "execution_time_ms DESC"; repeatable')
    out.add_argument("--max-results", type=int, default=25, help="traces per page (default 25, at most 500)")
    out.add_argument("--page-token", help="token printed by the previous page")
    out.add_argument(
        "--group-by", metavar="KEY", help="session|user|status|name|tag.NAME|metadata.NAME: summarise per group"
    )
    out.add_argument(
        "--max-groups", type=int, default=10, help="groups shown in markdown (default 10; all in json/csv)"
    )
    out.add_argument(
        "--every", metavar="DURATION", help="metrics per time bucket, e.g. 1h or 1d (with --since, default 7d)"
    )
    out.add_argument("--client-side", action="store_true", help="--every: aggregate here even if the server could")
    out.add_argument(
        "--limit", type=int, default=10000, help="--group-by/--every: at most this many traces (default 10000)"
    )
    out.add_argument(
        "--prices", metavar="FILE", help="prices.json: adds a cost column (USD per million tokens per model)"
    )
    out.add_argument("--no-errors", action="store_true", help="do not fetch spans for the error column")
    out.add_argument("--output", metavar="FILE", help="also write the full result (complete trace infos) as JSON")
    out.add_argument("--force", action="store_true", help="let --output replace an existing file")
    return parser


def resolve_experiments(ctx: Context) -> list[dict]:
    return tr.resolve_experiments(ctx.store, ctx.settings, ctx.args.experiment, ctx.args.run_id)


def build_filter(args, window: bool = True) -> tuple[str, list[str]]:
    """The user's --filter ANDed with the convenience flags; notes say what was approximated.
    window=False leaves --since/--until out (--every takes them as its time window)."""
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
    if args.since and window:
        parts.append(f"trace.timestamp_ms >= {parse_since(args.since)}")
    if args.until and window:
        parts.append(f"trace.timestamp_ms < {parse_since(args.until)}")
    for key, value in parse_key_values(args.tag, "--tag").items():
        eq(tr.backtick_key("tag", key), value, "--tag")
    for key, value in parse_key_values(args.metadata, "--metadata").items():
        eq(tr.backtick_key("metadata", key), value, "--metadata")
    if args.text:
        literal, _ = tr.sql_literal("%" + args.text + "%")
        parts.append(f"trace.text LIKE {literal}")
        if "%" in args.text or "_" in args.text:
            notes.append("--text: % and _ in the text act as wildcards")
    if args.span_name is not None:
        eq("span.name", args.span_name, "--span-name")
    for spec in args.assessment or []:
        parts.append(tr.assessment_clause(spec))
    if args.run_id:
        parts.append(tr.filter_eq("trace.run_id", args.run_id.strip()))
    return " AND ".join(parts), notes


def check_args(args) -> None:
    if not 1 <= args.max_results <= tr.TRACE_PAGE_MAX:
        raise UsageError(f"--max-results must be 1..{tr.TRACE_PAGE_MAX} (the server's page limit)")
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.max_groups < 1:
        raise UsageError("--max-groups must be at least 1")
    if (args.group_by or args.every) and args.page_token:
        raise UsageError("--group-by and --every cover all matching traces: drop --page-token")
    if args.group_by:
        group_label(args.group_by)  # validates
    if args.every is not None:
        every = parse_duration_ms(args.every, "--every")
        if every < 1000 or every % 1000:
            raise UsageError(f"--every {args.every}: use whole seconds or more, e.g. 30m, 1h, 1d")
    check_output_target(args)


def group_label(key: str) -> str:
    """Validate --group-by: a built-in key, tag.NAME or metadata.NAME."""
    if key in GROUP_KEYS:
        return key
    prefix, _, name = key.partition(".")
    if prefix in ("tag", "tags", "metadata") and name:
        return key
    raise UsageError(
        f"--group-by {key!r}: use session, user, status, name, tag.NAME or metadata.NAME (e.g. tag.app_version)"
    )


def group_value(info: dict, row: dict, key: str) -> str | None:
    if key in GROUP_KEYS:
        value = row[key]
    else:
        prefix, _, name = key.partition(".")
        source = info.get("tags") if prefix.startswith("tag") else info.get("trace_metadata")
        value = (source or {}).get(name)
    return None if value in (None, "") else str(value)


def command(ctx: Context) -> int:
    args = ctx.args
    check_args(args)
    prices = tr.load_prices(args.prices)
    filter_string, notes = build_filter(args, window=not args.every)
    experiments = resolve_experiments(ctx)
    exp_ids = [e["experiment_id"] for e in experiments]
    scope = {
        "experiments": [{"experiment_id": e["experiment_id"], "name": e["name"]} for e in experiments],
        "filter": filter_string or None,
        "order_by": args.order_by or DEFAULT_ORDER,
        "notes": notes,
    }
    if args.every:
        view = metrics_view(ctx, exp_ids, scope)
    elif args.group_by:
        view = group_view(ctx, exp_ids, scope, prices)
    else:
        view = list_view(ctx, exp_ids, scope, prices)
    ctx.emit(view)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# The list of traces
# ---------------------------------------------------------------------------------------------
def list_view(ctx: Context, exp_ids: list[str], scope: dict, prices: dict | None) -> View:
    args = ctx.args
    infos, token = tr.search_trace_infos(
        ctx.store, exp_ids, scope["filter"], args.max_results, scope["order_by"], args.page_token
    )
    rows = [tr.trace_summary(i) for i in infos]
    if not args.no_errors or prices:
        add_span_facts(ctx.store, rows, errors=not args.no_errors, prices=prices)
    next_cmd = ctx.next_page(token) if token else None
    result = {**scope, "traces": rows, "count": len(rows), "next_page_token": token, "next_page_command": next_cmd}
    if args.output:
        full = {**result, "trace_infos": infos}
        path = write_atomic(args.output, to_json(json_safe(full)), force=args.force)
        diag(f"wrote {len(rows)} traces to {path}")
    headers, table = table_rows(rows, args, csv=False)
    raw_headers, raw = table_rows(rows, args, csv=True)
    lines = [scope_line(scope), ""]
    for note in scope["notes"]:
        lines += [f"note: {note}", ""]
    tail = f"{len(rows)} traces shown"
    if args.output:
        tail += f"; full trace infos written to {args.output}"
    if next_cmd:
        tail += f"; more match. Next page: {next_cmd}"
    elif rows:
        tail += " (all that match)"
    after = ["", tail] + (["One trace in detail: uv run scripts/get_trace.py --trace-id TRACE_ID"] if rows else [])
    return View(
        data=json_safe(result),
        lines=lines,
        table=Table(headers, table, raw=raw, raw_headers=raw_headers),
        after=after,
        empty="No traces match. Widen the filter (e.g. drop --since/--status) or check the experiment.",
    )


def add_span_facts(store: Store, rows: list[dict], errors: bool = True, prices: dict | None = None) -> None:
    """Root-cause message for each failed trace (spans fetched for those only) and, with
    prices, each trace's cost (spans fetched for every row)."""
    wanted = [r for r in rows if prices or (errors and r["status"] == "ERROR")]
    if not wanted:
        return

    def one(row: dict) -> None:
        try:
            nodes = tr.span_nodes(tr.get_trace_spans(store, row["trace_id"]))
        except SkillError as exc:
            if row["status"] == "ERROR":
                row["error"] = f"(spans unavailable: {truncate(str(exc), 60)})"
            return
        if errors and row["status"] == "ERROR":
            cause = tr.root_cause(nodes)
            row["error"] = f"{cause['name']}: {cause['error'] or 'ERROR'}" if cause else None
            row["error_span_id"] = cause["span_id"] if cause else None
        if prices:
            row["cost"] = tr.trace_cost(nodes, prices)

    if len(wanted) == 1 or isinstance(store, InProcessStore):
        for row in wanted:
            one(row)
    else:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, wanted))


def feedback_cell(row: dict, names: set[str]) -> str:
    items = [
        a for a in row["assessments"] if a["kind"] == "feedback" and a["name"] in names and a.get("valid") is not False
    ]
    return ", ".join(f"{a['name']}={tr.assessment_value_text(a, 12)}" for a in items)


def table_rows(rows: list[dict], args, csv: bool = False) -> tuple[list[str], list[list]]:
    asked = {tr.parse_assessment(spec)[0] for spec in (args.assessment or [])}
    cols = [
        ("trace id", lambda r: r["trace_id"]),
        ("time (UTC)", lambda r: fmt_time(r["timestamp_ms"])),
        ("status", lambda r: r["status"]),
        ("duration", lambda r: r["duration_ms"] if csv else fmt_duration(r["duration_ms"])),
        ("name", lambda r: r["name"]),
        ("session", lambda r: r["session"] or ""),
        ("user", lambda r: r["user"] or ""),
        ("request", lambda r: r["request_preview"] if csv else truncate(r["request_preview"], 50)),
        ("tokens", lambda r: (r["tokens"] or {}).get("total_tokens", "") if csv else tokens_cell(r["tokens"])),
        ("feedback", lambda r: feedback_cell(r, asked)),
        ("cost", lambda r: cost_cell(r.get("cost"), csv)),
        ("error", lambda r: (r.get("error") or "") if csv else truncate(r.get("error") or "", 70)),
    ]
    always = {"trace id", "time (UTC)", "status", "duration", "name", "request"}
    values = [[get(r) for _, get in cols] for r in rows]
    optional = {"feedback": bool(asked), "cost": bool(args.prices)}
    keep = [
        i
        for i, (name, _) in enumerate(cols)
        if optional.get(name, True) and (name in always or csv or any(v[i] not in ("", None) for v in values))
    ]
    headers = [
        (
            "duration_ms"
            if csv and cols[i][0] == "duration"
            else "cost_usd"
            if csv and cols[i][0] == "cost"
            else cols[i][0]
        )
        for i in keep
    ]
    return headers, [[v[i] for i in keep] for v in values]


def cost_cell(cost: dict | None, csv: bool = False) -> str | float:
    if not cost:
        return ""
    if csv:
        return cost["cost_usd"] if cost["cost_usd"] is not None else ""
    text = tr.fmt_usd(cost["cost_usd"])
    if cost["unpriced_tokens"]:
        text += f" (+{fmt_num(cost['unpriced_tokens'])} tok unpriced)"
    return text


def tokens_cell(usage: dict | None) -> str:
    if not usage:
        return ""
    total = usage.get("total_tokens")
    if "input_tokens" in usage or "output_tokens" in usage:
        return f"{fmt_num(total)} ({fmt_num(usage.get('input_tokens', 0))}+{fmt_num(usage.get('output_tokens', 0))})"
    return fmt_num(total)


def scope_line(result: dict) -> str:
    names = ", ".join(f"{e['name']} ({e['experiment_id']})" for e in result["experiments"])
    line = f"Traces in {names}"
    if result["filter"]:
        line += f" where `{result['filter']}`"
    if result["order_by"] != DEFAULT_ORDER:
        line += f", ordered by {', '.join(result['order_by'])}"
    return line


# ---------------------------------------------------------------------------------------------
# Groups: quality, latency, tokens and cost per session, user, version tag...
# ---------------------------------------------------------------------------------------------
def fetch_all(ctx: Context, exp_ids: list[str], scope: dict) -> tuple[list[dict], list[dict], bool]:
    infos, truncated = tr.search_all_trace_infos(ctx.store, exp_ids, scope["filter"], ctx.args.limit, scope["order_by"])
    return infos, [tr.trace_summary(i) for i in infos], truncated


def group_stats(key: str, value: str | None, members: list[dict]) -> dict:
    durations = [m["duration_ms"] for m in members if m["duration_ms"] is not None]
    errors = sum(1 for m in members if m["status"] == "ERROR")
    with_tokens = [m["tokens"] for m in members if m["tokens"]]
    total_tokens = sum((t.get("total_tokens") or 0) for t in with_tokens)
    costs = [m["cost"] for m in members if m.get("cost")]
    priced = [x["cost_usd"] for x in costs if x["cost_usd"] is not None]
    # The ids worth opening: failed ones first, then the slowest.
    ranked = sorted(members, key=lambda m: (m["status"] != "ERROR", -(m["duration_ms"] or 0)))
    return {
        key: value,
        "traces": len(members),
        "errors": errors,
        "error_rate": errors / len(members),
        "p50_ms": percentile(durations, 50),
        "p95_ms": percentile(durations, 95),
        "total_tokens": total_tokens if with_tokens else None,
        "tokens_per_trace": total_tokens / len(with_tokens) if with_tokens else None,
        "cost_usd": sum(priced) if priced else None,
        "unpriced_tokens": sum(x["unpriced_tokens"] for x in costs) if costs else None,
        "assessments": tr.summarize_assessments(members),
        "first_ms": min((m["timestamp_ms"] or 0) for m in members) or None,
        "last_ms": max((m["timestamp_ms"] or 0) for m in members) or None,
        "trace_ids": [
            {"trace_id": m["trace_id"], "status": m["status"], "duration_ms": m["duration_ms"]}
            for m in ranked[:IDS_PER_GROUP]
        ],
    }


def group_view(ctx: Context, exp_ids: list[str], scope: dict, prices: dict | None) -> View:
    args = ctx.args
    key = args.group_by
    infos, rows, truncated = fetch_all(ctx, exp_ids, scope)
    if prices:
        add_span_facts(ctx.store, rows, errors=False, prices=prices)
    groups: dict[str | None, list[dict]] = {}
    for info, row in zip(infos, rows, strict=False):
        groups.setdefault(group_value(info, row, key), []).append(row)
    stats = [group_stats(key, value, members) for value, members in groups.items()]
    stats.sort(key=lambda s: (-s["traces"], str(s[key] or "")))
    result = {**scope, "group_by": key, "traces_counted": len(rows), "truncated_at_limit": truncated, "groups": stats}
    if prices:
        result["cost_note"] = "USD from --prices; tokens on spans whose model has no price are counted as unpriced"
    if args.output:
        path = write_atomic(args.output, to_json(json_safe({**result, "trace_infos": infos})), force=args.force)
        diag(f"wrote {len(stats)} groups and {len(infos)} trace infos to {path}")
    names = list(dict.fromkeys(n for s in stats for n in s["assessments"]))
    shown = stats[: args.max_groups]
    headers, table = group_table(key, shown, names[:4], bool(prices))
    raw_headers, raw = group_csv(key, stats, names, bool(prices))
    lines = [scope_line(scope) + f", grouped by {key}", ""]
    for note in scope["notes"]:
        lines += [f"note: {note}", ""]
    total_err = sum(s["errors"] for s in stats)
    tail = f"{len(stats)} groups over {len(rows)} traces ({total_err} error{'' if total_err == 1 else 's'})"
    if len(shown) < len(stats):
        tail += f"; largest {len(shown)} groups shown (--max-groups N, or all in --format json/csv)"
    if truncated:
        tail += f"; stopped at --limit {args.limit}: more traces match, raise --limit for all"
    after = ["", tail]
    if len(names) > 4:
        after.append(f"feedback not shown here: {', '.join(names[4:])} (--format json)")
    if rows:
        after.append("open: failed first, then slowest · a trace: uv run scripts/get_trace.py --trace-id ID")
    if key == "session" and rows:
        after.append("a session as a conversation: uv run scripts/get_trace.py --session ID --experiment " + exp_ids[0])
    return View(
        data=json_safe(result),
        lines=lines,
        table=Table(headers, table, raw=raw, raw_headers=raw_headers),
        after=after if rows else [],
        empty="No traces match.",
    )


def feedback_short(s: dict | None) -> str:
    if not s:
        return ""
    value = (
        f"{s['pass_rate'] * 100:.0f}%"
        if s["pass_rate"] is not None
        else fmt_num(s["mean"], 3)
        if s["mean"] is not None
        else "—"
    )
    return f"{value} ({s['n']}{', ' + str(s['errors']) + ' err' if s['errors'] else ''})"


def feedback_header(name: str, stats: list[dict]) -> str:
    kinds = {
        ("pass" if s["assessments"][name]["pass_rate"] is not None else "mean")
        for s in stats
        if name in s["assessments"]
    }
    return f"{name} {'pass' if kinds == {'pass'} else 'mean' if kinds == {'mean'} else 'pass/mean'} (n)"


def group_table(key: str, stats: list[dict], names: list[str], priced: bool) -> tuple[list[str], list[list]]:
    headers = [key, "traces", "errors", "error rate", "p50", "p95", "tokens"]
    headers += ["cost"] if priced else []
    headers += [feedback_header(n, stats) for n in names] + ["open"]
    table = []
    for s in stats:
        row = [
            truncate(s[key] if s[key] is not None else "(none)", 40),
            s["traces"],
            s["errors"],
            f"{s['error_rate'] * 100:.1f}%",
            fmt_duration(s["p50_ms"]),
            fmt_duration(s["p95_ms"]),
            fmt_num(s["total_tokens"]) if s["total_tokens"] is not None else "",
        ]
        if priced:
            row.append(
                tr.fmt_usd(s["cost_usd"])
                + (f" (+{fmt_num(s['unpriced_tokens'])} tok unpriced)" if s["unpriced_tokens"] else "")
            )
        row += [feedback_short(s["assessments"].get(n)) for n in names]
        row.append(" ".join(t["trace_id"] for t in s["trace_ids"][:2]))
        table.append(row)
    return headers, table


def group_csv(key: str, stats: list[dict], names: list[str], priced: bool) -> tuple[list[str], list[list]]:
    headers = [
        key,
        "traces",
        "errors",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "total_tokens",
        "tokens_per_trace",
        "first_ms",
        "last_ms",
    ]
    headers += ["cost_usd"] if priced else []
    for n in names:
        headers += [f"{n}.n", f"{n}.pass_rate", f"{n}.mean", f"{n}.errors"]
    headers.append("trace_ids")
    rows = []
    for s in stats:
        row = [
            s[key],
            s["traces"],
            s["errors"],
            s["error_rate"],
            s["p50_ms"],
            s["p95_ms"],
            s["total_tokens"],
            s["tokens_per_trace"],
            s["first_ms"],
            s["last_ms"],
        ]
        row += [s["cost_usd"]] if priced else []
        for n in names:
            a = s["assessments"].get(n) or {}
            row += [a.get("n"), a.get("pass_rate"), a.get("mean"), a.get("errors")]
        row.append(" ".join(t["trace_id"] for t in s["trace_ids"]))
        rows.append(row)
    return headers, rows


# ---------------------------------------------------------------------------------------------
# Metrics over time (--every)
# ---------------------------------------------------------------------------------------------
SERIES = (  # key, label, how a value reads, how the total reads
    ("traces", "traces", fmt_num),
    ("errors", "errors", fmt_num),
    ("error_rate", "error rate", lambda v: "" if v is None else f"{v * 100:.1f}%"),
    ("p50_ms", "p50 latency", fmt_duration),
    ("p95_ms", "p95 latency", fmt_duration),
    ("tokens", "tokens", fmt_num),
)


def metrics_window(args) -> tuple[int, int, int]:
    every = parse_duration_ms(args.every, "--every")
    since = parse_since(args.since or "7d")
    until = parse_since(args.until) - 1 if args.until else parse_since("0s")
    if until < since:
        raise UsageError("--until is before --since: nothing to count")
    return every, since, until


def fetch_series(ctx: Context, exp_ids: list[str], scope: dict, window) -> tuple[dict, str, list[str]]:
    """{group: buckets}, where they were computed ('server' or 'client'), and notes."""
    args = ctx.args
    every, since, until = window
    starts = tm.bucket_starts(since, until, every)
    group = args.group_by
    notes: list[str] = []
    filters = tm.server_filters(args, parse_key_values)
    if not args.client_side and filters is not None and group in tm.SERVER_GROUPS:
        try:
            series = tm.server_buckets(ctx.store, exp_ids, filters, window, starts, group)
            return series, "server", notes
        except tm.MetricsUnavailable as exc:
            notes.append(f"the server has no usable trace metrics endpoint ({truncate(str(exc), 80)}); aggregated here")
    elif not args.client_side:
        why = "--group-by " + group if filters is not None else "a filter the metrics endpoint cannot apply"
        notes.append(f"aggregated here over a search ({why}; the server endpoint splits by name or status only)")
    flt = " AND ".join(
        x for x in (scope["filter"], f"trace.timestamp_ms >= {since}", f"trace.timestamp_ms <= {until}") if x
    )
    infos, truncated = tr.search_all_trace_infos(ctx.store, exp_ids, flt, args.limit, ["timestamp_ms DESC"])
    rows = [tr.trace_summary(i) for i in infos]
    if truncated:
        oldest = min(r["timestamp_ms"] or 0 for r in rows)
        notes.append(
            f"stopped at --limit {args.limit} traces: buckets before {fmt_time(oldest)} are incomplete; raise --limit"
        )
    members: dict[str, list[dict]] = {}
    for info, row in zip(infos, rows, strict=False):
        gkey = group_value(info, row, group) if group else ""
        members.setdefault(gkey if gkey is not None else "(none)", []).append(row)
    series = {g: tm.client_buckets(m, starts, every) for g, m in members.items()}
    return series or {"": tm.client_buckets([], starts, every)}, "client", notes


def metrics_view(ctx: Context, exp_ids: list[str], scope: dict) -> View:
    args = ctx.args
    window = metrics_window(args)
    every, since, until = window
    series, source, notes = fetch_series(ctx, exp_ids, scope, window)
    series = series or {"": tm.client_buckets([], tm.bucket_starts(since, until, every), every)}
    groups = sorted(series, key=lambda g: (-tm.totals(series[g])["traces"], g))
    how = (
        "server-side (POST /api/3.0/mlflow/traces/metrics)"
        if source == "server"
        else f"client-side over a search of at most {args.limit} traces"
    )
    result = {
        **scope,
        "every_ms": every,
        "since_ms": since,
        "until_ms": until,
        "computed": source,
        "notes": scope["notes"] + notes,
        "group_by": args.group_by,
        "series": [{"group": g or None, "totals": tm.totals(series[g]), "buckets": series[g]} for g in groups],
    }
    nb = len(next(iter(series.values())))
    head = (
        f"{scope_line(scope)}: every {args.every} from {fmt_time(since)} to {fmt_time(until)} UTC ({nb} buckets), {how}"
    )
    lines = [head, ""] + [f"note: {n}" for n in result["notes"]] + ([""] if result["notes"] else [])
    width = 24 if args.group_by else tm.SPARK_WIDTH
    lines.append(f"sparklines: {tm.per_char(nb, every, width)}; blank = no traces in the bucket")
    lines.append("")
    raw = [
        [s["group"], iso_time(b["start_ms"]), *(b[k] for k, _, _ in SERIES)]
        for s in result["series"]
        for b in s["buckets"]
    ]
    raw_headers = ["group", "bucket_start", *(k for k, _, _ in SERIES)]
    if args.group_by:
        headers, table, after = group_series_table(result["series"], args)
    else:
        headers, table, after = one_series_table(result["series"][0]["buckets"])
    return View(
        data=json_safe(result),
        lines=lines,
        table=Table(headers, table, raw=raw, raw_headers=raw_headers),
        after=after,
        empty="No traces in this window.",
    )


def one_series_table(buckets: list[dict]) -> tuple[list[str], list[list], list[str]]:
    total = tm.totals(buckets)
    headers = ["series", "total", "min", "max (bucket start, UTC)", "shape"]
    table = []
    for key, label, fmt in SERIES:
        values = [b[key] for b in buckets]
        if key in ("traces", "errors"):
            agg = fmt(total[key])
        elif key == "error_rate":
            agg = fmt(total["error_rate"])
        elif key == "tokens":
            agg = fmt(total["tokens"])
        else:
            agg = ""
        present = [(v, b["start_ms"]) for v, b in zip(values, buckets, strict=False) if v is not None]
        if not present:
            continue
        lo = min(present, key=lambda p: p[0])
        hi = max(present, key=lambda p: p[0])
        where = f" ({fmt_time(hi[1])[:16]})" if hi[0] != lo[0] else ""
        table.append([label, agg, fmt(lo[0]), f"{fmt(hi[0])}{where}", f"`{tm.sparkline(values)}`"])
    busy = [b for b in buckets if b["traces"]][-6:]
    after = ["", f"latest {len(busy)} non-empty buckets:"] if busy else []
    if busy:
        after.append(
            md_table(
                ["bucket (UTC)", "traces", "errors", "p50", "p95", "tokens"],
                [
                    [
                        fmt_time(b["start_ms"])[:16],
                        b["traces"],
                        b["errors"],
                        fmt_duration(b["p50_ms"]),
                        fmt_duration(b["p95_ms"]),
                        fmt_num(b["tokens"]),
                    ]
                    for b in busy
                ],
            )
        )
        after.append("every bucket: --format json or csv")
    return headers, table if total["traces"] else [], after


def group_series_table(series: list[dict], args) -> tuple[list[str], list[list], list[str]]:
    key = args.group_by
    shown = [s for s in series if s["totals"]["traces"]][: args.max_groups]
    headers = [key, "traces", "errors", "error rate", "max p95", "traces shape", "error rate shape"]
    table = []
    for s in shown:
        t = s["totals"]
        table.append(
            [
                truncate(s["group"] or "(all)", 30),
                t["traces"],
                t["errors"],
                "" if t["error_rate"] is None else f"{t['error_rate'] * 100:.1f}%",
                fmt_duration(t["p95_max_ms"]),
                f"`{tm.sparkline([b['traces'] for b in s['buckets']], 24)}`",
                f"`{tm.sparkline([b['error_rate'] for b in s['buckets']], 24)}`",
            ]
        )
    after = []
    if len(shown) < len(series):
        after = ["", f"{len(shown)} of {len(series)} groups shown (--max-groups N, or all in --format json/csv)"]
    return headers, table, after


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
