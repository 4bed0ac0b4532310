"""One shaped trace (traces/tree.py) as markdown: the header, the indented span tree, the
assessments table and any span shown in full."""

from __future__ import annotations

import json
from typing import Any

from mlflow_skill.core.formatting import fmt_duration, fmt_num, md_escape, md_table, truncate
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.assessments import assessment_value_text
from mlflow_skill.traces.cost import cost_text
from mlflow_skill.traces.spans import span_hex_id


def pct(share: float | None) -> str:
    if share is None:
        return ""
    value = share * 100
    return f"{value:.0f}%" if value >= 10 or value == 0 else f"{value:.1f}%"


def whole(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str)


def render(view: dict, full: bool, tree: bool, max_spans: int) -> str:
    """The trace as markdown; tree=False leaves the span tree out (it went to --output)."""
    title = view["name"] or "(unnamed)"
    lines = [f"## Trace {view['trace_id']} — {title}", ""]
    lines += header_lines(view, full)
    if tree:
        lines += ["", f"### Spans ({view['span_count']})", ""]
        lines += tree_lines(view["spans"], full, max_spans)
    if view["assessments"]:
        lines += ["", f"### Assessments ({len(view['assessments'])})", ""]
        lines.append(assessments_table(view["assessments"]))
    for detail in view.get("span_detail", []):
        lines += ["", *span_detail_lines(detail)]
    if view.get("span_matches", 0) > len(view.get("span_detail", [])):
        lines.append(f"\n({view['span_matches']} spans match; first {len(view['span_detail'])} shown: pass a span id)")
    return "\n".join(lines)


def header_lines(view: dict, full: bool) -> list[str]:
    """Status and timing, who, tokens, cost, tags, metadata, run, request/response, error, slowest."""
    head = [
        f"**{view['status']}**",
        f"started {view['time']} UTC" if view["time"] else "",
        fmt_duration(view["duration_ms"]),
        f"{view['span_count']} spans",
        f"experiment {view['experiment_id']}" if view["experiment_id"] else "",
    ]
    lines = ["- " + " · ".join(h for h in head if h)]
    who = [f"session {view['session']}" if view["session"] else "", f"user {view['user']}" if view["user"] else ""]
    if any(who):
        lines.append("- " + " · ".join(w for w in who if w))
    if view["tokens"]:
        lines.append(f"- tokens: {tr.fmt_tokens(view['tokens'])}")
    if view.get("cost"):
        cost = view["cost"]
        lines.append(f"- cost: {cost_text(cost['cost_usd'], cost['unpriced_tokens'], cost['unpriced_models'])}")
    if view["tags"]:
        lines.append("- tags: " + ", ".join(f"{k}={truncate(v, 40)}" for k, v in sorted(view["tags"].items())))
    if view["metadata"]:
        lines.append("- metadata: " + ", ".join(f"{k}={truncate(v, 40)}" for k, v in sorted(view["metadata"].items())))
    if view["run_id"]:
        lines.append(f"- run: {view['run_id']}")
    if full:
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
    return lines


def assessments_table(assessments: list[dict]) -> str:
    rows = [
        [
            a["name"],
            a["kind"],
            assessment_value_text(a, 60),
            a["source"],
            truncate(a["rationale"] or "", 100),
            f"{a['span_name'] or '?'} ({span_hex_id(a['span_id'])})" if a.get("span_id") else "(trace)",
        ]
        for a in assessments
    ]
    return md_table(["name", "kind", "value", "source", "rationale", "span"], rows)


def span_line(v: dict) -> str:
    """A span's line in the tree, without its inputs and outputs."""
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
    return "  " * v["depth"] + "- " + " · ".join(b for b in bits if b)


def tree_lines(spans: list[dict], full: bool, max_spans: int) -> list[str]:
    """The span tree indented by depth: inputs → outputs previews on the line, or whole below it."""
    out = []
    for v in spans[:max_spans]:
        line = span_line(v)
        if full:
            indent = "  " * (v["depth"] + 1)
            out += [
                line,
                f"{indent}in: {md_escape(whole(v['inputs']))}",
                f"{indent}out: {md_escape(whole(v['outputs']))}",
            ]
            continue
        io_bits = []
        if v["inputs"]:
            io_bits.append(f"in {v['inputs']}")
        if v["outputs"]:
            io_bits.append(f"out {v['outputs']}")
        if io_bits:
            line += " · " + " → ".join(io_bits)
        out.append(line)
    if len(spans) > max_spans:
        out.append(f"… {len(spans) - max_spans} more spans (raise --max-spans, or --output FILE for all)")
    return out


def attribute_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def span_detail_lines(d: dict) -> list[str]:
    """One span in full: a summary line, inputs, outputs, attributes and events (stack traces)."""
    facts = (
        d["type"],
        d["status"] + (f": {d['status_message']}" if d["status_message"] else ""),
        f"started {d['start']}" if d["start"] else "",
        fmt_duration(d["duration_ms"]) + (f" ({pct(d['share'])} of trace)" if d["share"] is not None else ""),
        f"parent {d['parent_id']}" if d["parent_id"] else "root span",
    )
    lines = [f"### Span {d['name']} ({d['span_id']})", "", "- " + " · ".join(x for x in facts if x)]
    lines += ["", "Inputs:", "```", whole(d["inputs"]), "```", "Outputs:", "```", whole(d["outputs"]), "```"]
    if d["attributes"]:
        lines += ["", "Attributes:"]
        for k, v in sorted(d["attributes"].items()):
            lines.append(f"- {k}: {attribute_text(v)}")
    if d["events"]:
        lines += ["", "Events:"]
        for e in d["events"]:
            lines.append(f"- {e['name']} at {e['time']}")
            for k, v in e["attributes"].items():
                text = attribute_text(v)
                if "\n" in text:
                    lines += [f"  - {k}:", "```", text.rstrip(), "```"]
                else:
                    lines.append(f"  - {k}: {text}")
    return lines
