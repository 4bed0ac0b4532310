"""MLflow 3's trace REST API (search_traces.py, get_trace.py), parsed into plain dicts: trace
infos, spans as a tree, assessments, token usage, and the quoting MLflow's trace filter needs.

Trace infos come from POST /api/3.0/mlflow/traces/search and GET /api/3.0/mlflow/traces/{id}
(what MlflowClient.search_traces/get_trace_info call). Spans come from the endpoint MLflow's
UI uses, GET /ajax-api/2.0/mlflow/get-trace-artifact: the server reads them from its database
(spansLocation TRACKING_STORE), the archive or the trace's artifact file, whichever holds
them, and answers in the same span JSON that `mlflow traces get` prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mlflow_skill.core.errors import NotFoundError, ServerError, UsageError
from mlflow_skill.core.formatting import fmt_num, truncate
from mlflow_skill.store.transport import Store

API3_TRACES = "/api/3.0/mlflow/traces"
TRACE_ARTIFACT_PATH = "/ajax-api/2.0/mlflow/get-trace-artifact"
TRACE_SESSION_KEY = "mlflow.trace.session"
TRACE_USER_KEY = "mlflow.trace.user"
TRACE_TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
TRACE_NAME_TAG = "mlflow.traceName"
TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")
TRACE_PAGE_MAX = 500  # the server rejects larger pages


def trace_locations(experiment_ids: Iterable[str]) -> list[dict]:
    return [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(e)}} for e in experiment_ids]


def search_trace_infos(
    store: Store,
    experiment_ids: list[str],
    filter_string: str | None = None,
    max_results: int = 25,
    order_by: list[str] | None = None,
    page_token: str | None = None,
) -> tuple[list[dict], str | None]:
    """One page of trace infos (no spans) and the next page token."""
    body: dict[str, Any] = {"locations": trace_locations(experiment_ids), "max_results": max_results}
    if filter_string:
        body["filter"] = filter_string
    if order_by:
        body["order_by"] = order_by
    if page_token:
        body["page_token"] = page_token
    page = store.post(f"{API3_TRACES}/search", body, what="searching traces")
    return page.get("traces", []) or [], page.get("next_page_token") or None


def get_trace_info(store: Store, trace_id: str) -> dict:
    trace_id = trace_id.strip()
    try:
        return store.get(f"{API3_TRACES}/{quote(trace_id, safe='')}", what="reading a trace", expect="trace")["trace"][
            "trace_info"
        ]
    except NotFoundError:
        raise NotFoundError(
            f"no trace with id {trace_id!r} (find ids: uv run scripts/search_traces.py --experiment NAME)"
        ) from None


def get_trace_spans(store: Store, trace_id: str) -> list[dict]:
    """The trace's spans, wherever the server keeps them. The endpoint answers with a file
    (not a JSON content type), so the body is decoded here for both store kinds."""
    payload = store.raw("GET", TRACE_ARTIFACT_PATH, {"request_id": trace_id}, what="reading a trace's spans")
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload or "{}")
        except ValueError:
            raise ServerError(f"the spans of trace {trace_id} are not valid JSON") from None
    return (payload or {}).get("spans", []) if isinstance(payload, dict) else []


def pb_duration_ms(value: Any) -> float | None:
    """Protobuf JSON Duration ('0.415s') -> milliseconds."""
    if value in (None, ""):
        return None
    try:
        return float(str(value).rstrip("s")) * 1000.0
    except ValueError:
        return None


def pb_timestamp_ms(value: Any) -> int | None:
    """Protobuf JSON Timestamp ('2026-11-23T15:11:30.574Z') or epoch ms -> epoch milliseconds."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or str(value).isdigit():
        return int(value)
    text = str(value).replace("Z", "+00:00")
    frac = ""
    if "." in text:  # Python < 3.11 parsers dislike >6 fraction digits; keep milliseconds
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        frac, text = "." + (digits + "000000")[:6], head + tz
    try:
        dt = datetime.fromisoformat(text[:19] + frac + text[19:])
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(round(dt.timestamp() * 1000))


def parse_token_usage(value: Any) -> dict | None:
    """{'input_tokens', 'output_tokens', 'total_tokens'} from a JSON string or dict, else None."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    usage = {k: value.get(k) for k in ("input_tokens", "output_tokens", "total_tokens") if value.get(k) is not None}
    if usage and "total_tokens" not in usage:
        usage["total_tokens"] = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
    return usage or None


def fmt_tokens(usage: dict | None) -> str:
    if not usage:
        return ""
    parts = []
    if "input_tokens" in usage or "output_tokens" in usage:
        parts.append(f"{fmt_num(usage.get('input_tokens', 0))} in / {fmt_num(usage.get('output_tokens', 0))} out")
    if usage.get("total_tokens") is not None:
        parts.append(f"{fmt_num(usage['total_tokens'])} total")
    return ", ".join(parts)


def trace_summary(info: dict) -> dict:
    """The fields people read from a trace info, flattened."""
    meta = info.get("trace_metadata", {}) or {}
    tags = info.get("tags", {}) or {}
    location = info.get("trace_location", {}) or {}
    return {
        "trace_id": info.get("trace_id") or info.get("request_id"),
        "experiment_id": (location.get("mlflow_experiment") or {}).get("experiment_id"),
        "timestamp_ms": pb_timestamp_ms(info.get("request_time")),
        "status": info.get("state") or info.get("status") or "",
        "duration_ms": pb_duration_ms(info.get("execution_duration")),
        "name": tags.get(TRACE_NAME_TAG, ""),
        "session": meta.get(TRACE_SESSION_KEY),
        "user": meta.get(TRACE_USER_KEY),
        "request_preview": info.get("request_preview") or meta.get("mlflow.traceInputs") or "",
        "response_preview": info.get("response_preview") or meta.get("mlflow.traceOutputs") or "",
        "tokens": parse_token_usage(meta.get(TRACE_TOKEN_USAGE_KEY)),
        "run_id": meta.get("mlflow.sourceRun"),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        "assessments": [assessment_view(a) for a in info.get("assessments", []) or []],
    }


def assessment_view(a: dict) -> dict:
    """Feedback or expectation -> {name, kind, value, source, rationale, error}."""
    kind = "feedback" if "feedback" in a else "expectation" if "expectation" in a else "assessment"
    body = a.get(kind, {}) or {}
    value = body.get("value")
    if value is None and isinstance(body.get("serialized_value"), dict):
        raw = body["serialized_value"].get("value")
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = raw
    error = body.get("error") or {}
    source = a.get("source", {}) or {}
    return {
        "name": a.get("assessment_name", ""),
        "kind": kind,
        "value": value,
        "source": ":".join(x for x in (source.get("source_type"), source.get("source_id")) if x),
        "rationale": a.get("rationale"),
        "error": error.get("error_message") or error.get("error_code"),
        "span_id": a.get("span_id"),
        "valid": a.get("valid", True),
    }


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


def span_nodes(spans: list[dict]) -> list[dict]:
    """Spans as a depth-first list (children by start time) of flat dicts with depth, timing,
    type, status, error, token usage and own time (duration minus direct children)."""
    nodes: dict[str, dict] = {}
    for span in spans:
        start, end = int(span.get("start_time_unix_nano") or 0), span.get("end_time_unix_nano")
        end = int(end) if end not in (None, "") else None
        status = span_status(span)
        nodes[str(span.get("span_id"))] = {
            "span_id": span_hex_id(span.get("span_id")),
            "parent_id": span_hex_id(span.get("parent_span_id")) or None,
            "_key": str(span.get("span_id")),
            "_parent": str(span.get("parent_span_id")) if span.get("parent_span_id") else None,
            "name": span.get("name", ""),
            "type": span_attr(span, "mlflow.spanType") or "",
            "start_ns": start,
            "duration_ms": (end - start) / 1e6 if end else None,
            "status": status,
            "error": span_error(span) if status == "ERROR" else None,
            "inputs": span_attr(span, "mlflow.spanInputs"),
            "outputs": span_attr(span, "mlflow.spanOutputs"),
            "tokens": parse_token_usage(span_attr(span, "mlflow.chat.tokenUsage")),
            "children": [],
            "_span": span,
        }
    roots = []
    for node in sorted(nodes.values(), key=lambda n: n["start_ns"]):
        parent = nodes.get(node["_parent"]) if node["_parent"] else None
        (parent["children"] if parent else roots).append(node)
    ordered: list[dict] = []

    def walk(node: dict, depth: int) -> None:
        node["depth"] = depth
        child_ms = sum(ch["duration_ms"] or 0 for ch in node["children"])
        node["self_ms"] = max(0.0, (node["duration_ms"] or 0) - child_ms) if node["duration_ms"] is not None else None
        ordered.append(node)
        for child in node["children"]:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return ordered


def root_cause(nodes: list[dict]) -> dict | None:
    """The deepest failed span (where the exception started), or None."""
    failed = [n for n in nodes if n["status"] == "ERROR"]
    if not failed:
        return None
    return max(failed, key=lambda n: (n["depth"], bool(n["error"])))


# ---------------------------------------------------------------------------------------------
# Paged search, assessments, conversation text, cost
# ---------------------------------------------------------------------------------------------
def search_all_trace_infos(
    store: Store, experiment_ids: list[str], filter_string: str | None, limit: int, order_by: list[str] | None
) -> tuple[list[dict], bool]:
    """Every matching trace info up to `limit` (500 per request); True when more exist."""
    infos: list[dict] = []
    token = None
    while True:
        size = min(TRACE_PAGE_MAX, limit - len(infos))
        page, token = search_trace_infos(store, experiment_ids, filter_string, size, order_by, token)
        infos += page
        if not token:
            return infos, False
        if len(infos) >= limit:
            return infos, True


def parse_assessment(spec: str) -> tuple[str, str | None, str | None]:
    """--assessment NAME, NAME=VALUE, NAME!=VALUE, 'NAME>=0.8' -> (name, operator, value)."""
    import re

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


PASS_WORDS = {
    "true": True,
    "yes": True,
    "pass": True,
    "passed": True,
    "false": False,
    "no": False,
    "fail": False,
    "failed": False,
}


def verdict(value: Any) -> bool | None:
    """A feedback value as pass/fail: booleans and yes/no, pass/fail, true/false words; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return PASS_WORDS.get(value.strip().lower())
    return None


def summarize_assessments(traces: list[dict]) -> dict[str, dict]:
    """Per feedback name over trace summaries: n, errors, and pass rate or mean (valid ones only)."""
    acc: dict[str, dict] = {}
    for t in traces:
        for a in t.get("assessments") or []:
            if a["kind"] != "feedback" or a.get("valid") is False:
                continue
            s = acc.setdefault(
                a["name"], {"n": 0, "errors": 0, "passed": 0, "judged": 0, "numbers": [], "sources": set()}
            )
            s["n"] += 1
            s["sources"].add((a.get("source") or "").split(":")[0])
            if a["error"] and a["value"] is None:
                s["errors"] += 1
                continue
            v = verdict(a["value"])
            if v is not None:
                s["judged"] += 1
                s["passed"] += int(v)
            elif isinstance(a["value"], (int, float)):
                s["numbers"].append(float(a["value"]))
    out = {}
    for name, s in sorted(acc.items()):
        out[name] = {
            "n": s["n"],
            "errors": s["errors"],
            "pass_rate": s["passed"] / s["judged"] if s["judged"] else None,
            "passed": s["passed"] if s["judged"] else None,
            "mean": sum(s["numbers"]) / len(s["numbers"]) if s["numbers"] else None,
            "sources": sorted(x for x in s["sources"] if x),
        }
    return out


def fmt_assessment_summary(s: dict | None) -> str:
    if not s:
        return ""
    parts = []
    if s["pass_rate"] is not None:
        parts.append(f"{s['pass_rate'] * 100:.0f}% pass")
    if s["mean"] is not None:
        parts.append(f"mean {fmt_num(s['mean'], 3)}")
    text = " · ".join(parts) or "—"
    text += f" (n={s['n']}"
    return text + (f", {s['errors']} err)" if s["errors"] else ")")


def assessment_value_text(a: dict, width: int = 40) -> str:
    if a["value"] is None and a["error"]:
        return "error: " + truncate(a["error"], width)
    value = a["value"]
    return truncate(value if isinstance(value, str) else json.dumps(value, default=str), width)


def message_text(value: Any, role: str) -> str | None:
    """The text a person reads from a request (role 'user') or response (role 'assistant'):
    the last chat message of that role, a completion's message, or the first string field."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in '{["':
            try:
                return message_text(json.loads(stripped), role) or value
            except ValueError:
                return value
        return value
    if isinstance(value, list):
        msgs = [m for m in value if isinstance(m, dict) and m.get("role") == role and m.get("content")]
        if msgs:
            return content_text(msgs[-1]["content"])
        return next((t for t in (message_text(v, role) for v in value) if t), None)
    if isinstance(value, dict):
        for key in ("messages", "input", "inputs", "choices", "output", "outputs"):
            if key in value:
                text = message_text(value[key], role)
                if text:
                    return text
        if isinstance(value.get("message"), dict):
            return content_text(value["message"].get("content"))
        for key in ("content", "question", "query", "prompt", "text", "answer", "response", "result"):
            if isinstance(value.get(key), str):
                return value[key]
        return next((v for v in value.values() if isinstance(v, str)), None)
    return None if value is None else str(value)


def content_text(content: Any) -> str:
    if isinstance(content, list):  # [{"type": "text", "text": ...}]
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict)) or json.dumps(content)
    return str(content)


MODEL_ATTRS = ("mlflow.llm.model", "gen_ai.response.model", "gen_ai.request.model")


def span_model(node: dict) -> str | None:
    for key in MODEL_ATTRS:
        value = span_attr(node["_span"], key)
        if value:
            return str(value)
    inputs = node.get("inputs")
    if isinstance(inputs, dict) and isinstance(inputs.get("model"), str):
        return inputs["model"]
    return None


def load_prices(path: str | None) -> dict[str, dict] | None:
    """--prices FILE: {"MODEL": {"input_per_1m": USD, "output_per_1m": USD}, ...} (or the same
    under a "models" key). Model names match exactly, then case-insensitively, then by prefix."""
    if not path:
        return None
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--prices {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"--prices {path}: not valid JSON ({exc})") from None
    models = data.get("models", data) if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise UsageError(f'--prices {path}: expected {{"MODEL": {{"input_per_1m": 0.15, "output_per_1m": 0.6}}}}')
    prices = {}
    for model, p in models.items():
        try:
            prices[str(model)] = {"input": float(p["input_per_1m"]) / 1e6, "output": float(p["output_per_1m"]) / 1e6}
        except (TypeError, KeyError, ValueError):
            raise UsageError(
                f"--prices {path}: model {model!r} needs numeric input_per_1m and output_per_1m (USD per million "
                f"tokens)"
            ) from None
    return prices


def price_for(prices: dict, model: str) -> dict | None:
    if model in prices:
        return prices[model]
    lower = {k.lower(): v for k, v in prices.items()}
    if model.lower() in lower:
        return lower[model.lower()]
    prefixes = [k for k in lower if model.lower().startswith(k)]
    return lower[max(prefixes, key=len)] if prefixes else None


def trace_cost(nodes: list[dict], prices: dict) -> dict:
    """USD from the spans that carry token usage (a span whose descendants also carry usage is
    skipped, so nothing is counted twice) priced by their model; the rest reported as unpriced."""
    has_usage = {n["_key"] for n in nodes if n["tokens"]}
    cost, priced_tokens, unpriced_tokens, unpriced = 0.0, 0, 0, set()

    def below(node: dict) -> bool:
        return any(ch["_key"] in has_usage or below(ch) for ch in node["children"])

    for n in nodes:
        if not n["tokens"] or below(n):
            continue
        model = span_model(n)
        price = price_for(prices, model) if model else None
        total = n["tokens"].get("total_tokens") or 0
        if price is None:
            unpriced_tokens += total
            unpriced.add(model or "(no model name)")
            continue
        cost += (n["tokens"].get("input_tokens") or 0) * price["input"] + (
            n["tokens"].get("output_tokens") or 0
        ) * price["output"]
        priced_tokens += total
    return {
        "cost_usd": cost if priced_tokens else None,
        "priced_tokens": priced_tokens,
        "unpriced_tokens": unpriced_tokens,
        "unpriced_models": sorted(unpriced),
    }


def fmt_usd(value: float | None) -> str:
    """Dollars with enough decimals to show small per-trace costs (two significant digits)."""
    import math

    if value is None:
        return ""
    if value == 0 or value >= 1:
        return f"${value:,.2f}"
    decimals = min(10, max(2, 1 - math.floor(math.log10(value))))
    return f"${value:.{decimals}f}"


def resolve_experiments(store: Store, settings, refs: list[str] | None, run_id: str | None = None) -> list[dict]:
    """The experiments to search: --experiment (repeatable), else the configured default
    (MLFLOW_EXPERIMENT_ID, then _NAME), else the experiment of --run-id."""
    from mlflow_skill.store import lookups

    refs = list(refs or [])
    default = settings.experiment_id or settings.experiment_name
    if not refs and default:
        refs = [default]
    experiments = [lookups.get_experiment(store, ref) for ref in refs]
    if run_id:
        run_exp = lookups.get_run(store, run_id)["info"]["experiment_id"]
        if not experiments:
            experiments = [lookups.get_experiment(store, run_exp)]
        elif run_exp not in {e["experiment_id"] for e in experiments}:
            raise UsageError(
                f"run {run_id} belongs to experiment {run_exp}, not to the --experiment given: drop --experiment or "
                f"add that one"
            )
    if not experiments:
        raise UsageError(
            "which experiment? pass --experiment NAME_OR_ID (or set MLFLOW_EXPERIMENT_ID / MLFLOW_EXPERIMENT_NAME); "
            "list them: uv run scripts/query_experiments.py experiments"
        )
    return experiments
