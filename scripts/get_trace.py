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
"""Read one MLflow trace (or several) as a span tree, or a whole session as a conversation.

Usage:
  uv run scripts/get_trace.py --trace-id ID [ID ...] [--full] [--span NAME_OR_ID]
                              [--max-spans N] [--prices prices.json] [--output FILE [--force]]
                              [--format markdown|json]
  uv run scripts/get_trace.py --session ID [--experiment NAME_OR_ID ...] [--max-turns N]
                              [--prices prices.json] [--format markdown|json]

A trace: a header (status, start time, duration, session, user, tags, token usage, request and
response previews, root-cause error), the span tree indented by nesting (name, span type,
duration and share of the trace, status, inputs -> outputs previews; failed spans show their
exception or status message), the slowest spans by own time (duration minus child spans),
and the assessments: feedback and expectations with value, source (HUMAN, LLM_JUDGE, CODE and
who), rationale (bounded) and the span each points at.

  --full            inputs and outputs whole instead of short previews
  --span NAME_OR_ID one span completely: attributes, inputs, outputs, events (stack traces)
  --max-spans N     spans listed in the tree (default 200; the rest are counted)
  --output FILE     write the complete trace JSON ({"info": ..., "data": {"spans": ...}}, the
                    shape `mlflow traces get` prints; a list for several ids) and print only
                    the summary, without the tree

A session (--session ID, metadata mlflow.trace.session): its traces oldest first, each turn as
user input -> response (previews), with status, latency, tokens, feedback and, for failed
turns, the root-cause error inline; then the totals (turns, errors, time, tokens, feedback
pass rates or means, cost with --prices) and the trace id of every turn to open. Scope:
--experiment (default MLFLOW_EXPERIMENT_ID / _NAME). --max-turns N turns shown (default 8;
all in --format json); failed turns beyond them are still listed.

--prices prices.json: cost in USD from the models named on spans with token usage,
{"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}; no file, no cost.

An unknown trace id or an empty session is an error (exit 3). Find ids with
scripts/search_traces.py (sessions: search_traces.py --group-by session).

Examples:
  uv run scripts/get_trace.py --trace-id tr-8d3f0c1e2b4a4f5e9d7c6b5a4f3e2d1c
  uv run scripts/get_trace.py --trace-id tr-8d3f... --span retriever
  uv run scripts/get_trace.py --trace-id tr-8d3f... tr-19ab... --output traces.json
  uv run scripts/get_trace.py --trace-id tr-8d3f... --format json
  uv run scripts/get_trace.py --session sess-42 --experiment my-agent
"""

from __future__ import annotations

import json
import sys

from mlflow_skill.cli.frame import (
    Context,
    check_output_target,
    diag,
    make_parser,
    run_main,
)
from mlflow_skill.cli.view import View
from mlflow_skill.core.errors import EXIT_OK, NotFoundError, SkillError, UsageError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import (
    fmt_duration,
    fmt_num,
    fmt_time,
    iso_time,
    json_safe,
    md_escape,
    md_table,
    preview,
    to_json,
    truncate,
)
from mlflow_skill.traces import api as tr

SCRIPT = "get_trace.py"
PREVIEW = 60  # characters of a span's inputs/outputs in the tree


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    parser.add_argument("--trace-id", nargs="+", action="extend", metavar="ID", help="trace id(s)")
    parser.add_argument("--session", metavar="ID", help="a session's traces as a conversation")
    parser.add_argument(
        "--experiment", action="append", metavar="NAME_OR_ID", help="--session: experiment(s) to look in"
    )
    parser.add_argument("--max-turns", type=int, default=8, help="--session: turns shown (default 8; all in json)")
    parser.add_argument(
        "--limit", type=int, default=1000, help="--session: at most this many traces read (default 1000)"
    )
    parser.add_argument("--full", action="store_true", help="show inputs and outputs whole")
    parser.add_argument("--span", metavar="NAME_OR_ID", help="show one span completely (attributes, events)")
    parser.add_argument("--max-spans", type=int, default=200, help="spans listed in the tree (default 200)")
    parser.add_argument("--prices", metavar="FILE", help="prices.json: cost in USD per model (see above)")
    parser.add_argument("--output", metavar="FILE", help="write the complete trace JSON; print only the summary")
    parser.add_argument("--force", action="store_true", help="let --output replace an existing file")
    return parser


def command(ctx: Context) -> int:
    args = ctx.args
    if args.max_spans < 1:
        raise UsageError("--max-spans must be at least 1")
    if args.session is not None:
        if args.trace_id:
            raise UsageError("pass --trace-id or --session, not both")
        if args.max_turns < 1 or args.limit < 1:
            raise UsageError("--max-turns and --limit must be at least 1")
        if args.output or args.span or args.full:
            raise UsageError(
                "--output, --span and --full read one trace: open a turn with --trace-id ID (or --format json for the session)"
            )
        ctx.emit(session_view(ctx, tr.load_prices(args.prices)))
        return EXIT_OK
    ids = list(dict.fromkeys(t.strip() for t in args.trace_id or [] if t.strip()))
    if not ids:
        raise UsageError(
            "pass --trace-id ID (find ids: uv run scripts/search_traces.py --experiment NAME), "
            "or --session ID for a conversation"
        )
    check_output_target(args)
    prices = tr.load_prices(args.prices)
    traces = []
    for trace_id in ids:
        info = tr.get_trace_info(ctx.store, trace_id)
        spans = tr.get_trace_spans(ctx.store, info.get("trace_id") or trace_id)
        traces.append((info, spans))
    if args.output:
        full = [{"info": info, "data": {"spans": spans}} for info, spans in traces]
        path = write_atomic(args.output, to_json(full[0] if len(full) == 1 else full), force=args.force)
        diag(f"wrote {len(full)} complete trace(s) to {path}")
    views = [shape(info, spans, args, prices) for info, spans in traces]
    parts = [render(v, args) for v in views]
    if args.output:
        parts.append(f"Complete trace JSON written to {args.output}.")
    data = json_safe(views[0] if len(views) == 1 else views)
    ctx.emit(View(data=data, lines=["\n\n".join(parts)]))
    return EXIT_OK


def find_span(nodes: list[dict], ref: str) -> list[dict]:
    ref = ref.strip()
    hex_ref = tr.span_hex_id(ref) if ref else ref
    by_id = [n for n in nodes if n["span_id"] == hex_ref or n["_key"] == ref]
    return by_id or [n for n in nodes if n["name"] == ref] or [n for n in nodes if n["name"].lower() == ref.lower()]


def shape(info: dict, spans: list[dict], args, prices: dict | None = None) -> dict:
    summary = tr.trace_summary(info)
    nodes = tr.span_nodes(spans)
    total_ms = summary["duration_ms"]
    if not total_ms and nodes and nodes[0]["duration_ms"]:
        total_ms = nodes[0]["duration_ms"]
    cause = tr.root_cause(nodes)
    # An exception passes up through every ancestor: show its message where it was raised and
    # point to that span from the ancestors that only re-raised it.
    origin: dict[str, dict] = {}
    errors_by_key: dict[str, str] = {}
    for node in reversed(nodes):  # children before parents
        if node["status"] != "ERROR":
            continue
        same = next((ch for ch in node["children"] if ch["_key"] in origin and ch["error"] == node["error"]), None)
        origin[node["_key"]] = origin[same["_key"]] if same else node
        src = origin[node["_key"]]
        errors_by_key[node["_key"]] = f"(raised in {src['name']})" if src is not node else (node["error"] or "")

    def share(ms):
        return (ms / total_ms) if (ms is not None and total_ms) else None

    span_views = []
    for n in nodes:
        view = {
            "span_id": n["span_id"],
            "parent_id": n["parent_id"],
            "depth": n["depth"],
            "name": n["name"],
            "type": n["type"],
            "status": n["status"],
            "duration_ms": n["duration_ms"],
            "share": share(n["duration_ms"]),
            "self_ms": n["self_ms"],
            "error": n["error"],
            "error_display": errors_by_key.get(n["_key"]) if n["status"] == "ERROR" else None,
            "tokens": n["tokens"],
        }
        if args.full:
            view["inputs"], view["outputs"] = n["inputs"], n["outputs"]
        else:
            view["inputs"], view["outputs"] = preview(n["inputs"], PREVIEW), preview(n["outputs"], PREVIEW)
        span_views.append(view)
    slowest = sorted(
        (v for v in span_views if v["self_ms"] is not None and v["depth"] > 0),
        key=lambda v: -v["self_ms"],
    )[:3]
    # Spans taking under 1% of the trace are not worth calling out.
    slowest = [v for v in slowest if total_ms and v["self_ms"] >= 0.01 * total_ms] or slowest[:1]
    if not slowest and span_views:
        slowest = span_views[:1]
    result = {
        **summary,
        "time": fmt_time(summary["timestamp_ms"]),
        "metadata": {
            k: v
            for k, v in (info.get("trace_metadata") or {}).items()
            if not k.startswith("mlflow.") or k in ("mlflow.sourceRun", "mlflow.modelId")
        },
        "span_count": len(nodes),
        "error": (f"{cause['name']}: {cause['error'] or 'ERROR'}" if cause else None),
        "slowest": [
            {"name": v["name"], "span_id": v["span_id"], "self_ms": v["self_ms"], "share": share(v["self_ms"])}
            for v in slowest
        ],
        "spans": span_views,
    }
    add_assessment_spans_and_cost(result, nodes, prices)
    if args.full:
        result["request"] = (
            tr.span_attr(nodes[0]["_span"], "mlflow.spanInputs") if nodes else summary["request_preview"]
        )
        result["response"] = (
            tr.span_attr(nodes[0]["_span"], "mlflow.spanOutputs") if nodes else summary["response_preview"]
        )
    if args.span:
        matches = find_span(nodes, args.span)
        if not matches:
            names = ", ".join(list(dict.fromkeys(n["name"] for n in nodes))[:15])
            raise NotFoundError(f"no span {args.span!r} in trace {summary['trace_id']}; its spans: {names}")
        result["span_detail"] = [span_detail(m, total_ms) for m in matches[:5]]
        result["span_matches"] = len(matches)
    return result


def add_assessment_spans_and_cost(result: dict, nodes: list[dict], prices: dict | None) -> None:
    """Name the span each assessment points at; price the trace when --prices is given."""
    names = {n["span_id"]: n["name"] for n in nodes}
    for a in result["assessments"]:
        a["span_name"] = names.get(tr.span_hex_id(a["span_id"])) if a.get("span_id") else None
    if prices:
        result["cost"] = tr.trace_cost(nodes, prices)


def span_detail(node: dict, total_ms: float | None) -> dict:
    span = node["_span"]
    attrs = {k: tr.span_attr(span, k) for k in (span.get("attributes") or {})}
    return {
        "span_id": node["span_id"],
        "parent_id": node["parent_id"],
        "name": node["name"],
        "type": node["type"],
        "status": node["status"],
        "status_message": (span.get("status") or {}).get("message") or None,
        "start": iso_time(node["start_ns"] // 1_000_000) if node["start_ns"] else None,
        "duration_ms": node["duration_ms"],
        "share": (node["duration_ms"] / total_ms) if (node["duration_ms"] is not None and total_ms) else None,
        "inputs": node["inputs"],
        "outputs": node["outputs"],
        "attributes": {k: v for k, v in attrs.items() if k not in ("mlflow.spanInputs", "mlflow.spanOutputs")},
        "events": [
            {
                "name": e.get("name"),
                "time": iso_time(int(e.get("time_unix_nano") or 0) // 1_000_000),
                "attributes": e.get("attributes") or {},
            }
            for e in span.get("events") or []
        ],
    }


def pct(share) -> str:
    if share is None:
        return ""
    value = share * 100
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def whole(value) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str)


def render(view: dict, args) -> str:
    title = view["name"] or "(unnamed)"
    lines = [f"## Trace {view['trace_id']} — {title}", ""]
    head = [
        f"**{view['status']}**",
        f"started {view['time']} UTC" if view["time"] else "",
        fmt_duration(view["duration_ms"]),
        f"{view['span_count']} spans",
        f"experiment {view['experiment_id']}" if view["experiment_id"] else "",
    ]
    lines.append("- " + " · ".join(h for h in head if h))
    who = [f"session {view['session']}" if view["session"] else "", f"user {view['user']}" if view["user"] else ""]
    if any(who):
        lines.append("- " + " · ".join(w for w in who if w))
    if view["tokens"]:
        lines.append(f"- tokens: {tr.fmt_tokens(view['tokens'])}")
    if view.get("cost"):
        lines.append(f"- cost: {cost_text(view['cost'])}")
    if view["tags"]:
        lines.append("- tags: " + ", ".join(f"{k}={truncate(v, 40)}" for k, v in sorted(view["tags"].items())))
    if view["metadata"]:
        lines.append("- metadata: " + ", ".join(f"{k}={truncate(v, 40)}" for k, v in sorted(view["metadata"].items())))
    if view["run_id"]:
        lines.append(f"- run: {view['run_id']}")
    if args.full:
        lines.append(f"- request:\n\n```\n{whole(view.get('request'))}\n```\n")
        lines.append(f"- response:\n\n```\n{whole(view.get('response'))}\n```\n")
    else:
        lines.append(f"- request: {truncate(view['request_preview'], 150) or '—'}")
        lines.append(f"- response: {truncate(view['response_preview'], 150) or '—'}")
    if view["error"]:
        lines.append(f"- error: {truncate(view['error'], 300)}")
    if view["slowest"]:
        lines.append(
            "- slowest (own time): "
            + ", ".join(f"{s['name']} {fmt_duration(s['self_ms'])} ({pct(s['share'])})" for s in view["slowest"])
        )

    if not args.output:
        lines += ["", f"### Spans ({view['span_count']})", ""]
        lines += tree_lines(view["spans"], args)

    if view["assessments"]:
        lines += ["", f"### Assessments ({len(view['assessments'])})", ""]
        rows = [
            [
                a["name"],
                a["kind"],
                tr.assessment_value_text(a, 60),
                a["source"],
                truncate(a["rationale"] or "", 100),
                f"{a['span_name'] or '?'} ({tr.span_hex_id(a['span_id'])})" if a.get("span_id") else "(trace)",
            ]
            for a in view["assessments"]
        ]
        lines.append(md_table(["name", "kind", "value", "source", "rationale", "span"], rows))

    for detail in view.get("span_detail", []):
        lines += ["", *span_detail_lines(detail)]
    if view.get("span_matches", 0) > len(view.get("span_detail", [])):
        lines.append(f"\n({view['span_matches']} spans match; first {len(view['span_detail'])} shown: pass a span id)")
    return "\n".join(lines)


def tree_lines(spans: list[dict], args) -> list[str]:
    out = []
    for v in spans[: args.max_spans]:
        bits = [f"**{v['name']}**" if v["depth"] == 0 else v["name"]]
        if v["type"] and v["type"] != "UNKNOWN":
            bits.append(v["type"])
        timing = fmt_duration(v["duration_ms"])
        if v["share"] is not None and v["depth"] > 0:
            timing += f" {pct(v['share'])}"
        bits.append(timing)
        if v["status"] == "ERROR":
            bits.append(("ERROR " + truncate(v["error_display"] or "", 160)).strip())
        elif v["status"] not in ("OK", "UNSET"):
            bits.append(v["status"])
        if v["tokens"]:
            bits.append(f"{fmt_num(v['tokens'].get('total_tokens'))} tok")
        line = "  " * v["depth"] + "- " + " · ".join(b for b in bits if b)
        if args.full:
            out.append(line)
            indent = "  " * (v["depth"] + 1)
            out.append(f"{indent}in: {md_escape(whole(v['inputs']))}")
            out.append(f"{indent}out: {md_escape(whole(v['outputs']))}")
            continue
        io_bits = []
        if v["inputs"]:
            io_bits.append(f"in {v['inputs']}")
        if v["outputs"]:
            io_bits.append(f"out {v['outputs']}")
        if io_bits:
            line += " · " + " → ".join(io_bits)
        out.append(line)
    if len(spans) > args.max_spans:
        out.append(f"… {len(spans) - args.max_spans} more spans (raise --max-spans, or --output FILE for all)")
    return out


def span_detail_lines(d: dict) -> list[str]:
    lines = [f"### Span {d['name']} ({d['span_id']})", ""]
    lines.append(
        "- "
        + " · ".join(
            x
            for x in (
                d["type"],
                d["status"] + (f": {d['status_message']}" if d["status_message"] else ""),
                f"started {d['start']}" if d["start"] else "",
                fmt_duration(d["duration_ms"]) + (f" ({pct(d['share'])} of trace)" if d["share"] is not None else ""),
                f"parent {d['parent_id']}" if d["parent_id"] else "root span",
            )
            if x
        )
    )
    lines += ["", "Inputs:", "```", whole(d["inputs"]), "```", "Outputs:", "```", whole(d["outputs"]), "```"]
    if d["attributes"]:
        lines += ["", "Attributes:"]
        for k, v in sorted(d["attributes"].items()):
            text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
            lines.append(f"- {k}: {text}")
    if d["events"]:
        lines += ["", "Events:"]
        for e in d["events"]:
            lines.append(f"- {e['name']} at {e['time']}")
            for k, v in e["attributes"].items():
                text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
                if "\n" in text:
                    lines += [f"  - {k}:", "```", text.rstrip(), "```"]
                else:
                    lines.append(f"  - {k}: {text}")
    return lines


# ---------------------------------------------------------------------------------------------
# A session as a conversation
# ---------------------------------------------------------------------------------------------
TURN_TEXT = 110  # characters of each side of a turn


def cost_text(cost: dict) -> str:
    text = tr.fmt_usd(cost["cost_usd"]) or "$0 priced"
    if cost["unpriced_tokens"]:
        text += f" (+{fmt_num(cost['unpriced_tokens'])} tokens unpriced: {', '.join(cost['unpriced_models'][:3])})"
    return text


def fetch_session(ctx: Context) -> tuple[list[dict], list[dict], bool]:
    args = ctx.args
    experiments = tr.resolve_experiments(ctx.store, ctx.settings, args.experiment)
    flt = tr.filter_eq(tr.backtick_key("metadata", tr.TRACE_SESSION_KEY), args.session)
    infos, truncated = tr.search_all_trace_infos(
        ctx.store, [e["experiment_id"] for e in experiments], flt, args.limit, ["timestamp_ms ASC"]
    )
    if not infos:
        names = ", ".join(e["name"] for e in experiments)
        raise NotFoundError(
            f"no traces in session {args.session!r} in {names} (list sessions: uv run scripts/search_traces.py "
            f"--experiment {shlex_quote(experiments[0]['name'])} --group-by session)"
        )
    return experiments, infos, truncated


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def turn_of(number: int, info: dict, nodes: list[dict] | None, prices: dict | None) -> dict:
    s = tr.trace_summary(info)
    cause = tr.root_cause(nodes) if nodes else None
    return {
        "turn": number,
        "trace_id": s["trace_id"],
        "timestamp_ms": s["timestamp_ms"],
        "status": s["status"],
        "duration_ms": s["duration_ms"],
        "user": s["user"],
        "tokens": s["tokens"],
        "input": tr.message_text(s["request_preview"], "user") or "",
        "response": tr.message_text(s["response_preview"], "assistant") or "",
        "error": (
            f"{cause['name']}: {cause['error'] or 'ERROR'}" if cause else ("ERROR" if s["status"] == "ERROR" else None)
        ),
        "assessments": s["assessments"],
        "cost": tr.trace_cost(nodes, prices) if prices and nodes is not None else None,
    }


def session_view(ctx: Context, prices: dict | None) -> View:
    args = ctx.args
    experiments, infos, truncated = fetch_session(ctx)
    need = [i for i in infos if prices or (i.get("state") or i.get("status")) == "ERROR"]
    nodes = {}
    for info in need:  # spans only where a root cause or a cost needs them
        try:
            nodes[info["trace_id"]] = tr.span_nodes(tr.get_trace_spans(ctx.store, info["trace_id"]))
        except SkillError:
            nodes[info["trace_id"]] = None
    turns = [turn_of(n + 1, info, nodes.get(info["trace_id"]), prices) for n, info in enumerate(infos)]
    totals = session_totals(turns, prices)
    result = {
        "session": args.session,
        "experiments": [{"experiment_id": e["experiment_id"], "name": e["name"]} for e in experiments],
        "truncated_at_limit": truncated,
        "totals": totals,
        "turns": turns,
    }
    return View(data=json_safe(result), lines=session_lines(result, args))


def session_totals(turns: list[dict], prices: dict | None) -> dict:
    tokens = [t["tokens"] for t in turns if t["tokens"]]
    costs = [t["cost"] for t in turns if t["cost"]]
    last = turns[-1]
    return {
        "turns": len(turns),
        "errors": sum(1 for t in turns if t["status"] == "ERROR"),
        "users": sorted({t["user"] for t in turns if t["user"]}),
        "first_ms": turns[0]["timestamp_ms"],
        "last_end_ms": (last["timestamp_ms"] or 0) + int(last["duration_ms"] or 0),
        "duration_ms": sum(t["duration_ms"] or 0 for t in turns),
        "input_tokens": sum(t.get("input_tokens") or 0 for t in tokens) if tokens else None,
        "output_tokens": sum(t.get("output_tokens") or 0 for t in tokens) if tokens else None,
        "total_tokens": sum(t.get("total_tokens") or 0 for t in tokens) if tokens else None,
        "cost_usd": sum(x["cost_usd"] or 0 for x in costs) if prices else None,
        "unpriced_tokens": sum(x["unpriced_tokens"] for x in costs) if prices else None,
        "unpriced_models": sorted({m for x in costs for m in x["unpriced_models"]}) if prices else None,
        "assessments": tr.summarize_assessments(turns),
    }


def session_lines(result: dict, args) -> list[str]:
    t = result["totals"]
    where = ", ".join(f"{e['name']} ({e['experiment_id']})" for e in result["experiments"])
    errs = f" ({t['errors']} failed)" if t["errors"] else ""
    lines = [f"## Session {result['session']}: {t['turns']} turns{errs} in {where}", ""]
    head = [
        f"{fmt_time(t['first_ms'])} → {fmt_time(t['last_end_ms'])[11:]} UTC",
        f"{fmt_duration(t['duration_ms'])} in traces",
    ]
    if t["users"]:
        head.append("user " + ", ".join(t["users"][:3]) + (" …" if len(t["users"]) > 3 else ""))
    if t["total_tokens"] is not None:
        head.append(
            f"tokens {fmt_num(t['total_tokens'])} ({fmt_num(t['input_tokens'])} in / {fmt_num(t['output_tokens'])} out)"
        )
    if t["cost_usd"] is not None:
        head.append(
            "cost "
            + cost_text(
                {
                    "cost_usd": t["cost_usd"],
                    "unpriced_tokens": t["unpriced_tokens"],
                    "unpriced_models": t["unpriced_models"],
                }
            )
        )
    lines.append("- " + " · ".join(head))
    if t["assessments"]:
        lines.append(
            "- feedback: " + " · ".join(f"{n} {tr.fmt_assessment_summary(s)}" for n, s in t["assessments"].items())
        )
    if result["truncated_at_limit"]:
        lines.append(f"- stopped at --limit {args.limit} traces: the session has more (raise --limit)")
    shown = result["turns"][: args.max_turns]
    for turn in shown:
        lines += ["", *turn_lines(turn)]
    hidden = result["turns"][args.max_turns :]
    if hidden:
        lines += ["", f"turns {len(shown) + 1}–{t['turns']} not shown: --max-turns {t['turns']} (or --format json)"]
        failed = [h for h in hidden if h["status"] == "ERROR"][:5]
        if failed:
            lines.append("failed among them: " + ", ".join(f"#{h['turn']} {h['trace_id']}" for h in failed))
    lines += ["", "a turn in full: uv run scripts/get_trace.py --trace-id TRACE_ID"]
    return lines


def turn_lines(turn: dict) -> list[str]:
    bits = [
        f"**{turn['turn']}**",
        fmt_time(turn["timestamp_ms"])[11:],
        turn["status"],
        fmt_duration(turn["duration_ms"]),
    ]
    if turn["tokens"]:
        bits.append(f"{fmt_num(turn['tokens'].get('total_tokens'))} tok")
    if turn["cost"] and turn["cost"]["cost_usd"] is not None:
        bits.append(tr.fmt_usd(turn["cost"]["cost_usd"]))
    bits.append(turn["trace_id"])
    out = [" · ".join(b for b in bits if b)]
    out.append(f"> user: {md_escape(truncate(turn['input'], TURN_TEXT)) or '—'}")
    if turn["error"]:
        out.append(f"> **error**: {md_escape(truncate(turn['error'], TURN_TEXT))}")
    else:
        out.append(f"> response: {md_escape(truncate(turn['response'], TURN_TEXT)) or '—'}")
    fb = [a for a in turn["assessments"] if a["kind"] == "feedback" and a.get("valid") is not False]
    if fb:
        text = ", ".join(f"{a['name']}={tr.assessment_value_text(a, 16)} ({a['source'].split(':')[0]})" for a in fb)
        out.append(f"> feedback: {md_escape(truncate(text, 140))}")
    return out


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
