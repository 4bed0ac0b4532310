"""MLflow 3's trace REST API (search_traces.py, get_trace.py): searching and reading trace infos
and spans, the experiments a search covers, and trace infos parsed into plain dicts (the fields
people read, assessments, token usage). Spans as a tree: traces/spans.py.

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
from mlflow_skill.core.formatting import fmt_num
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


def search_all_trace_infos(
    store: Store, experiment_ids: list[str], filter_string: str | None, limit: int, order_by: list[str] | None
) -> tuple[list[dict], bool]:
    """Every matching trace info up to `limit` (500 per request); True when more exist."""
    from mlflow_skill.store.lookups import PageGuard

    infos: list[dict] = []
    token = None
    guard = PageGuard(store, f"{API3_TRACES}/search")  # a server whose pages never end: exit 6
    while True:
        size = min(TRACE_PAGE_MAX, limit - len(infos))
        page, token = search_trace_infos(store, experiment_ids, filter_string, size, order_by, token)
        guard.check(page, token, size)
        infos += page
        if not token:
            return infos, False
        if len(infos) >= limit:
            return infos, True


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
