"""A trace's spans (OTLP JSON, as `mlflow traces get` prints them) as a tree of typed nodes:
depth, timing, own time, type, status, error, inputs, outputs and token usage, and the failed
span where an error started."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.traces.api import parse_token_usage


@dataclass
class SpanNode:
    """One span, read. `key`/`parent_key` are the ids as the server sent them (for linking);
    `span_id`/`parent_id` are the hex ids people see."""

    span_id: str
    parent_id: str | None
    key: str
    parent_key: str | None
    name: str
    type: str
    start_ns: int
    duration_ms: float | None
    status: str
    error: str | None
    inputs: Any
    outputs: Any
    tokens: dict | None
    span: dict = field(repr=False)
    children: list[SpanNode] = field(default_factory=list, repr=False)
    depth: int = 0
    self_ms: float | None = None  # duration minus direct children


def span_attr(span: dict, key: str, default: Any = None) -> Any:
    """A span attribute, JSON-decoded (MLflow stores every attribute value as a JSON string)."""
    attrs = span.get("attributes") or {}
    if key not in attrs:
        return default
    value = attrs[key]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def span_hex_id(value: Any) -> str:
    """Span ids arrive base64-encoded (OTLP JSON); show them as the 16-hex-digit ids of the UI."""
    if not value:
        return ""
    text = str(value)
    if len(text) == 16 and all(ch in "0123456789abcdefABCDEF" for ch in text):
        return text.lower()
    import base64
    import binascii

    try:
        return base64.b64decode(text).hex()
    except (binascii.Error, ValueError):
        return text


def span_error(span: dict) -> str | None:
    """A failed span's message: its exception events ('Type: message'), else its status message."""
    for event in span.get("events") or []:
        if event.get("name") == "exception":
            attrs = event.get("attributes") or {}
            etype, msg = attrs.get("exception.type"), attrs.get("exception.message")
            if etype or msg:
                return f"{etype}: {msg}" if etype and msg and not str(msg).startswith(str(etype)) else str(msg or etype)
    status = span.get("status") or {}
    if status.get("message"):
        return str(status["message"])
    return None


def span_status(span: dict) -> str:
    code = str((span.get("status") or {}).get("code") or "")
    return {"STATUS_CODE_OK": "OK", "STATUS_CODE_ERROR": "ERROR", "STATUS_CODE_UNSET": "UNSET", "": "UNSET"}.get(
        code, code.replace("STATUS_CODE_", "")
    )


def read_span(span: dict) -> SpanNode:
    start, end = int(span.get("start_time_unix_nano") or 0), span.get("end_time_unix_nano")
    end = int(end) if end not in (None, "") else None
    status = span_status(span)
    return SpanNode(
        span_id=span_hex_id(span.get("span_id")),
        parent_id=span_hex_id(span.get("parent_span_id")) or None,
        key=str(span.get("span_id")),
        parent_key=str(span.get("parent_span_id")) if span.get("parent_span_id") else None,
        name=span.get("name", ""),
        type=span_attr(span, "mlflow.spanType") or "",
        start_ns=start,
        duration_ms=(end - start) / 1e6 if end else None,
        status=status,
        error=span_error(span) if status == "ERROR" else None,
        inputs=span_attr(span, "mlflow.spanInputs"),
        outputs=span_attr(span, "mlflow.spanOutputs"),
        tokens=parse_token_usage(span_attr(span, "mlflow.chat.tokenUsage")),
        span=span,
    )


def span_nodes(spans: list[dict]) -> list[SpanNode]:
    """Spans as a depth-first list (children by start time) with depth and own time set."""
    nodes = {str(span.get("span_id")): read_span(span) for span in spans}
    roots = []
    for node in sorted(nodes.values(), key=lambda n: n.start_ns):
        parent = nodes.get(node.parent_key) if node.parent_key else None
        (parent.children if parent else roots).append(node)
    ordered: list[SpanNode] = []

    def walk(node: SpanNode, depth: int) -> None:
        node.depth = depth
        child_ms = sum(ch.duration_ms or 0 for ch in node.children)
        node.self_ms = max(0.0, (node.duration_ms or 0) - child_ms) if node.duration_ms is not None else None
        ordered.append(node)
        for child in node.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return ordered


def root_cause(nodes: list[SpanNode]) -> SpanNode | None:
    """The deepest failed span (where the exception started), or None."""
    failed = [n for n in nodes if n.status == "ERROR"]
    if not failed:
        return None
    return max(failed, key=lambda n: (n.depth, bool(n.error)))


def cause_text(cause: SpanNode) -> str:
    """A root cause as one line: 'span: message'."""
    return f"{cause.name}: {cause.error or 'ERROR'}"
