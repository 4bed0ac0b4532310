"""get_trace.py --trace-id: one trace shaped for reading. Its header fields, the span tree with
each span's share of the trace and the error it raised (or the span that raised it), the slowest
spans by own time, assessments with the span each points at, the cost, and one span in full."""

from __future__ import annotations

from mlflow_skill.cli.frame import Context, diag
from mlflow_skill.cli.view import View
from mlflow_skill.core.errors import NotFoundError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import fmt_time, iso_time, json_safe, preview, to_json
from mlflow_skill.store.transport import Store
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.cost import trace_cost
from mlflow_skill.traces.spans import SpanNode, cause_text, root_cause, span_attr, span_hex_id, span_nodes
from mlflow_skill.traces.tree_text import render

PREVIEW = 60  # characters of a span's inputs/outputs in the tree
SLOWEST = 3
SPAN_DETAILS = 5  # spans shown in full when --span matches several
KEPT_METADATA = ("mlflow.sourceRun", "mlflow.modelId")  # the mlflow.* metadata worth showing


def traces_view(ctx: Context, ids: list[str], prices: dict | None) -> View:
    """Read each trace, write them whole to --output if asked, and show each shaped."""
    args = ctx.args
    traces = fetch_traces(ctx.store, ids)
    if args.output:
        full = [{"info": info, "data": {"spans": spans}} for info, spans in traces]
        path = write_atomic(args.output, to_json(full[0] if len(full) == 1 else full), force=args.force)
        diag(f"wrote {len(full)} complete trace(s) to {path}")
    views = [shape(info, spans, args.full, args.span, prices) for info, spans in traces]
    parts = [render(v, full=args.full, tree=not args.output, max_spans=args.max_spans) for v in views]
    if args.output:
        parts.append(f"Complete trace JSON written to {args.output}.")
    data = json_safe(views[0] if len(views) == 1 else views)
    return View(data=data, lines=["\n\n".join(parts)])


def fetch_traces(store: Store, ids: list[str]) -> list[tuple[dict, list[dict]]]:
    traces = []
    for trace_id in ids:
        info = tr.get_trace_info(store, trace_id)
        spans = tr.get_trace_spans(store, info.get("trace_id") or trace_id)
        traces.append((info, spans))
    return traces


def shape(info: dict, spans: list[dict], full: bool, span_ref: str | None, prices: dict | None = None) -> dict:
    """The trace as its JSON form: summary fields, then the span tree and what stands out."""
    summary = tr.trace_summary(info)
    nodes = span_nodes(spans)
    total_ms = summary["duration_ms"]
    if not total_ms and nodes and nodes[0].duration_ms:
        total_ms = nodes[0].duration_ms
    cause = root_cause(nodes)
    errors = error_displays(nodes)
    span_views = [span_view(n, total_ms, errors, full) for n in nodes]
    result = {
        **summary,
        "assessments": with_span_names(summary["assessments"], nodes),
        "time": fmt_time(summary["timestamp_ms"]),
        "metadata": {
            k: v
            for k, v in (info.get("trace_metadata") or {}).items()
            if not k.startswith("mlflow.") or k in KEPT_METADATA
        },
        "span_count": len(nodes),
        "error": cause_text(cause) if cause else None,
        "slowest": slowest_spans(span_views, total_ms),
        "spans": span_views,
    }
    if prices:
        result["cost"] = trace_cost(nodes, prices)
    if full:
        result["request"] = nodes[0].inputs if nodes else summary["request_preview"]
        result["response"] = nodes[0].outputs if nodes else summary["response_preview"]
    if span_ref:
        matches = find_span(nodes, span_ref)
        if not matches:
            names = ", ".join(list(dict.fromkeys(n.name for n in nodes))[:15])
            raise NotFoundError(f"no span {span_ref!r} in trace {summary['trace_id']}; its spans: {names}")
        result["span_detail"] = [span_detail(m, total_ms) for m in matches[:SPAN_DETAILS]]
        result["span_matches"] = len(matches)
    return result


def share(ms: float | None, total_ms: float | None) -> float | None:
    return (ms / total_ms) if (ms is not None and total_ms) else None


def error_displays(nodes: list[SpanNode]) -> dict[str, str]:
    """What each failed span shows. An exception passes up through every ancestor: its message
    shows where it was raised, and the ancestors that only re-raised it point to that span."""
    origin: dict[str, SpanNode] = {}
    displays: dict[str, str] = {}
    for node in reversed(nodes):  # children before parents
        if node.status != "ERROR":
            continue
        same = next((ch for ch in node.children if ch.key in origin and ch.error == node.error), None)
        origin[node.key] = origin[same.key] if same else node
        source = origin[node.key]
        displays[node.key] = f"(raised in {source.name})" if source is not node else (node.error or "")
    return displays


def span_view(node: SpanNode, total_ms: float | None, errors: dict[str, str], full: bool) -> dict:
    """A span as one line of the tree: timing, share, status, error, tokens, inputs/outputs."""
    return {
        "span_id": node.span_id,
        "parent_id": node.parent_id,
        "depth": node.depth,
        "name": node.name,
        "type": node.type,
        "status": node.status,
        "duration_ms": node.duration_ms,
        "share": share(node.duration_ms, total_ms),
        "self_ms": node.self_ms,
        "error": node.error,
        "error_display": errors.get(node.key) if node.status == "ERROR" else None,
        "tokens": node.tokens,
        "inputs": node.inputs if full else preview(node.inputs, PREVIEW),
        "outputs": node.outputs if full else preview(node.outputs, PREVIEW),
    }


def slowest_spans(span_views: list[dict], total_ms: float | None) -> list[dict]:
    """The spans with the most own time (below the root); under 1% of the trace is not worth
    calling out, but one is always named."""
    slowest = sorted(
        (v for v in span_views if v["self_ms"] is not None and v["depth"] > 0),
        key=lambda v: -v["self_ms"],
    )[:SLOWEST]
    slowest = [v for v in slowest if total_ms and v["self_ms"] >= 0.01 * total_ms] or slowest[:1]
    if not slowest and span_views:
        slowest = span_views[:1]
    return [
        {"name": v["name"], "span_id": v["span_id"], "self_ms": v["self_ms"], "share": share(v["self_ms"], total_ms)}
        for v in slowest
    ]


def with_span_names(assessments: list[dict], nodes: list[SpanNode]) -> list[dict]:
    """Each assessment with the name of the span it points at (None for the whole trace)."""
    names = {n.span_id: n.name for n in nodes}
    return [{**a, "span_name": names.get(span_hex_id(a["span_id"])) if a.get("span_id") else None} for a in assessments]


def find_span(nodes: list[SpanNode], ref: str) -> list[SpanNode]:
    """Spans by id (hex or as stored), else by name, else by name in any case."""
    ref = ref.strip()
    hex_ref = span_hex_id(ref) if ref else ref
    by_id = [n for n in nodes if n.span_id == hex_ref or n.key == ref]
    return by_id or [n for n in nodes if n.name == ref] or [n for n in nodes if n.name.lower() == ref.lower()]


def span_detail(node: SpanNode, total_ms: float | None) -> dict:
    """One span in full: status message, start, attributes (decoded) and events."""
    span = node.span
    attrs = {k: span_attr(span, k) for k in (span.get("attributes") or {})}
    return {
        "span_id": node.span_id,
        "parent_id": node.parent_id,
        "name": node.name,
        "type": node.type,
        "status": node.status,
        "status_message": (span.get("status") or {}).get("message") or None,
        "start": iso_time(node.start_ns // 1_000_000) if node.start_ns else None,
        "duration_ms": node.duration_ms,
        "share": share(node.duration_ms, total_ms),
        "inputs": node.inputs,
        "outputs": node.outputs,
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
