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
"""Read one MLflow trace (or several) as a span tree: what happened, how long, what failed.

Usage:
  uv run scripts/get_trace.py --trace-id ID [ID ...] [--full] [--span NAME_OR_ID]
                              [--max-spans N] [--output FILE [--force]] [--format markdown|json]

Shows a header (status, start time, duration, session, user, tags, token usage, request and
response previews, root-cause error), the span tree indented by nesting (name, span type,
duration and share of the trace, status, inputs -> outputs previews; failed spans show their
exception or status message), the slowest spans by own time (duration minus child spans),
and the assessments (feedback and expectations with value, source and rationale).

  --full            inputs and outputs whole instead of short previews
  --span NAME_OR_ID one span completely: attributes, inputs, outputs, events (stack traces)
  --max-spans N     spans listed in the tree (default 200; the rest are counted)
  --output FILE     write the complete trace JSON ({"info": ..., "data": {"spans": ...}}, the
                    shape `mlflow traces get` prints; a list for several ids) and print only
                    the summary, without the tree

An unknown trace id is an error (exit 3). Find ids with scripts/search_traces.py.

Examples:
  uv run scripts/get_trace.py --trace-id tr-8d3f0c1e2b4a4f5e9d7c6b5a4f3e2d1c
  uv run scripts/get_trace.py --trace-id tr-8d3f... --span retriever
  uv run scripts/get_trace.py --trace-id tr-8d3f... tr-19ab... --output traces.json
  uv run scripts/get_trace.py --trace-id tr-8d3f... --format json
"""

from __future__ import annotations

import json
import sys

import _cli as cli
import _common as c
import _traces as tr

SCRIPT = "get_trace.py"
PREVIEW = 60  # characters of a span's inputs/outputs in the tree


def build_parser():
    parser = cli.make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    parser.add_argument("--trace-id", nargs="+", action="extend", required=True, metavar="ID", help="trace id(s)")
    parser.add_argument("--full", action="store_true", help="show inputs and outputs whole")
    parser.add_argument("--span", metavar="NAME_OR_ID", help="show one span completely (attributes, events)")
    parser.add_argument("--max-spans", type=int, default=200, help="spans listed in the tree (default 200)")
    parser.add_argument("--output", metavar="FILE", help="write the complete trace JSON; print only the summary")
    parser.add_argument("--force", action="store_true", help="let --output replace an existing file")
    return parser


def command(ctx: cli.Context) -> int:
    args = ctx.args
    ids = list(dict.fromkeys(t.strip() for t in args.trace_id if t.strip()))
    if not ids:
        raise c.UsageError("pass --trace-id ID (find ids: uv run scripts/search_traces.py --experiment NAME)")
    if args.max_spans < 1:
        raise c.UsageError("--max-spans must be at least 1")
    traces = []
    for trace_id in ids:
        info = tr.get_trace_info(ctx.store, trace_id)
        spans = tr.get_trace_spans(ctx.store, info.get("trace_id") or trace_id)
        traces.append((info, spans))
    if args.output:
        full = [{"info": info, "data": {"spans": spans}} for info, spans in traces]
        path = c.write_atomic(args.output, c.to_json(full[0] if len(full) == 1 else full), force=args.force)
        cli.diag(f"wrote {len(full)} complete trace(s) to {path}")
    views = [shape(info, spans, args) for info, spans in traces]
    if ctx.fmt == "json":
        ctx.emit(c.to_json(c.json_safe(views[0] if len(views) == 1 else views)))
        return c.EXIT_OK
    parts = [render(v, args) for v in views]
    if args.output:
        parts.append(f"Complete trace JSON written to {args.output}.")
    ctx.emit("\n\n".join(parts))
    return c.EXIT_OK


def find_span(nodes: list[dict], ref: str) -> list[dict]:
    ref = ref.strip()
    hex_ref = tr.span_hex_id(ref) if ref else ref
    by_id = [n for n in nodes if n["span_id"] == hex_ref or n["_key"] == ref]
    return by_id or [n for n in nodes if n["name"] == ref] or [n for n in nodes if n["name"].lower() == ref.lower()]


def shape(info: dict, spans: list[dict], args) -> dict:
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
            view["inputs"], view["outputs"] = c.preview(n["inputs"], PREVIEW), c.preview(n["outputs"], PREVIEW)
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
        "time": c.fmt_time(summary["timestamp_ms"]),
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
    if args.full:
        result["request"] = tr.span_attr(nodes[0]["_span"], "mlflow.spanInputs") if nodes else summary["request_preview"]
        result["response"] = tr.span_attr(nodes[0]["_span"], "mlflow.spanOutputs") if nodes else summary["response_preview"]
    if args.span:
        matches = find_span(nodes, args.span)
        if not matches:
            names = ", ".join(list(dict.fromkeys(n["name"] for n in nodes))[:15])
            raise c.NotFoundError(f"no span {args.span!r} in trace {summary['trace_id']}; its spans: {names}")
        result["span_detail"] = [span_detail(m, total_ms) for m in matches[:5]]
        result["span_matches"] = len(matches)
    return result


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
        "start": c.iso_time(node["start_ns"] // 1_000_000) if node["start_ns"] else None,
        "duration_ms": node["duration_ms"],
        "share": (node["duration_ms"] / total_ms) if (node["duration_ms"] is not None and total_ms) else None,
        "inputs": node["inputs"],
        "outputs": node["outputs"],
        "attributes": {k: v for k, v in attrs.items() if k not in ("mlflow.spanInputs", "mlflow.spanOutputs")},
        "events": [
            {"name": e.get("name"), "time": c.iso_time(int(e.get("time_unix_nano") or 0) // 1_000_000), "attributes": e.get("attributes") or {}}
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
        c.fmt_duration(view["duration_ms"]),
        f"{view['span_count']} spans",
        f"experiment {view['experiment_id']}" if view["experiment_id"] else "",
    ]
    lines.append("- " + " · ".join(h for h in head if h))
    who = [f"session {view['session']}" if view["session"] else "", f"user {view['user']}" if view["user"] else ""]
    if any(who):
        lines.append("- " + " · ".join(w for w in who if w))
    if view["tokens"]:
        lines.append(f"- tokens: {tr.fmt_tokens(view['tokens'])}")
    if view["tags"]:
        lines.append("- tags: " + ", ".join(f"{k}={c.truncate(v, 40)}" for k, v in sorted(view["tags"].items())))
    if view["metadata"]:
        lines.append("- metadata: " + ", ".join(f"{k}={c.truncate(v, 40)}" for k, v in sorted(view["metadata"].items())))
    if view["run_id"]:
        lines.append(f"- run: {view['run_id']}")
    if args.full:
        lines.append(f"- request:\n\n```\n{whole(view.get('request'))}\n```\n")
        lines.append(f"- response:\n\n```\n{whole(view.get('response'))}\n```\n")
    else:
        lines.append(f"- request: {c.truncate(view['request_preview'], 150) or '—'}")
        lines.append(f"- response: {c.truncate(view['response_preview'], 150) or '—'}")
    if view["error"]:
        lines.append(f"- error: {c.truncate(view['error'], 300)}")
    if view["slowest"]:
        lines.append(
            "- slowest (own time): "
            + ", ".join(f"{s['name']} {c.fmt_duration(s['self_ms'])} ({pct(s['share'])})" for s in view["slowest"])
        )

    if not args.output:
        lines += ["", f"### Spans ({view['span_count']})", ""]
        lines += tree_lines(view["spans"], args)

    if view["assessments"]:
        lines += ["", f"### Assessments ({len(view['assessments'])})", ""]
        rows = []
        for a in view["assessments"]:
            value = a["value"] if a["value"] is not None else (f"error: {a['error']}" if a["error"] else "")
            rows.append(
                [
                    a["name"],
                    a["kind"],
                    c.truncate(value if isinstance(value, str) else json.dumps(value, default=str), 60),
                    a["source"],
                    c.truncate(a["rationale"] or "", 100),
                ]
            )
        lines.append(c.md_table(["name", "kind", "value", "source", "rationale"], rows))

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
        timing = c.fmt_duration(v["duration_ms"])
        if v["share"] is not None and v["depth"] > 0:
            timing += f" {pct(v['share'])}"
        bits.append(timing)
        if v["status"] == "ERROR":
            bits.append("ERROR " + c.truncate(v["error_display"] or "", 160))
        elif v["status"] not in ("OK", "UNSET"):
            bits.append(v["status"])
        if v["tokens"]:
            bits.append(f"{c.fmt_num(v['tokens'].get('total_tokens'))} tok")
        line = "  " * v["depth"] + "- " + " · ".join(b for b in bits if b)
        if args.full:
            out.append(line)
            indent = "  " * (v["depth"] + 1)
            out.append(f"{indent}in: {c.md_escape(whole(v['inputs']))}")
            out.append(f"{indent}out: {c.md_escape(whole(v['outputs']))}")
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
                c.fmt_duration(d["duration_ms"]) + (f" ({pct(d['share'])} of trace)" if d["share"] is not None else ""),
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


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
