"""log_feedback.py's work: feedback and expectations (MLflow 3 assessments) on traces, tags on
traces, and traces linked to a run.

Each trace is read first: an assessment with the same name, kind, value, source and rationale
that is still valid is "already so" and not logged again (also after a create whose answer was
lost: the trace is read again before anything is resent); a tag already at its value is not set.
REST: POST /api/3.0/mlflow/traces/{id}/assessments, DELETE .../assessments/{assessment_id},
PATCH|DELETE /api/3.0/mlflow/traces/{id}/tags, POST /api/2.0/mlflow/traces/link-to-run (MLflow 3;
MLflow has no endpoint that unlinks, which the answer says).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mlflow_skill.cli.frame import Context
from mlflow_skill.core.errors import ConnectionFailure, NotFoundError, UsageError
from mlflow_skill.core.values import parse_key_values
from mlflow_skill.store import lookups
from mlflow_skill.traces import api as traces
from mlflow_skill.writes.common import AUDIT_KEY, Change, send

SOURCES = {"human": "HUMAN", "llm": "LLM_JUDGE", "code": "CODE"}
SOURCE_FLAGS = {v: k for k, v in SOURCES.items()}
DEFAULT_SOURCE_ID = "mlflow-python-skill"
LINK_PATH = f"{lookups.API}/traces/link-to-run"
LINK_MAX = 100  # the server links at most 100 traces per request


def parse_value(text: str) -> Any:
    """--value as JSON when it is JSON (true, 0.8, {"a": 1}, "quoted"), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def value_arg(value: Any) -> str:
    """The --value text that gives back `value` (a string that reads as JSON gets quoted)."""
    if isinstance(value, str) and parse_value(value) == value:
        return value
    return json.dumps(value)


@dataclass(frozen=True)
class Wanted:
    """The assessment a call asks for."""

    name: str
    value: Any
    kind: str  # feedback or expectation
    source_type: str  # HUMAN, LLM_JUDGE, CODE
    source_id: str
    rationale: str | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Wanted | None:
        if args.name is None and args.value is None:
            if args.rationale or args.expectation:
                raise UsageError("--rationale and --expectation go with --name NAME --value V")
            return None
        if not (args.name and args.name.strip()) or args.value is None:
            raise UsageError("feedback needs both --name NAME and --value V (e.g. --name correct --value false)")
        kind = "expectation" if args.expectation else "feedback"
        rationale = (args.rationale or "").strip() or None
        source_id = (args.source_id or DEFAULT_SOURCE_ID).strip()
        return cls(args.name.strip(), parse_value(args.value), kind, SOURCES[args.source], source_id, rationale)

    @property
    def source(self) -> str:
        return f"{self.source_type}:{self.source_id}"

    def matches(self, raw: dict) -> bool:
        seen = traces.assessment_view(raw)
        return (
            seen["valid"] is not False
            and seen["kind"] == self.kind
            and seen["name"] == self.name
            and seen["source"] == self.source
            and (seen["rationale"] or None) == self.rationale
            and same_value(seen["value"], self.value)
        )

    def body(self, trace_id: str, audit: str) -> dict:
        assessment = {
            "assessment_name": self.name,
            "trace_id": trace_id,
            "source": {"source_type": self.source_type, "source_id": self.source_id},
            self.kind: {"value": self.value},
            "metadata": {AUDIT_KEY: audit},
        }
        if self.rationale:
            assessment["rationale"] = self.rationale
        return {"assessment": assessment}

    def argv(self) -> list[str]:
        """The flags that log this assessment again (the undo of a deletion)."""
        words = ["--name", self.name, "--value", value_arg(self.value), "--source", SOURCE_FLAGS[self.source_type]]
        words += ["--source-id", self.source_id] + (["--rationale", self.rationale] if self.rationale else [])
        return words + (["--expectation"] if self.kind == "expectation" else [])


def same_value(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
        isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) and a == b
    )


def wanted_from_raw(raw: dict) -> Wanted:
    seen = traces.assessment_view(raw)
    source = raw.get("source", {}) or {}
    return Wanted(
        seen["name"],
        seen["value"],
        seen["kind"],
        source.get("source_type") or "HUMAN",
        source.get("source_id") or DEFAULT_SOURCE_ID,
        seen["rationale"] or None,
    )


def trace_path(trace_id: str) -> str:
    return f"{traces.API3_TRACES}/{quote(trace_id, safe='')}"


def read_assessments(store, trace_id: str) -> list[dict]:
    return traces.get_trace_info(store, trace_id).get("assessments", []) or []


def log_assessment(ctx: Context, info: dict, wanted: Wanted, audit: str) -> tuple[Change, list[str]]:
    """(the change, the flags that undo it). Looks before creating, and again after a lost answer."""
    trace_id = info["trace_id"]
    field = f"{wanted.kind} {wanted.name}"
    existing = info.get("assessments", []) or []
    same = next((a for a in existing if wanted.matches(a)), None)
    if same is not None:
        return Change(trace_id, "trace", field, shown(same), shown(same), False), []
    before = [shown(a) for a in existing if traces.assessment_view(a)["name"] == wanted.name]
    path = f"{trace_path(trace_id)}/assessments"
    try:
        created = ctx.store.post(path, wanted.body(trace_id, audit), what=f"logging {field}")["assessment"]
    except ConnectionFailure:
        created = next((a for a in read_assessments(ctx.store, trace_id) if wanted.matches(a)), None)
        if created is None:
            raise
    after = shown(created)
    return Change(trace_id, "trace", field, "; ".join(before) or None, after, True), [
        "--delete-assessment",
        created["assessment_id"],
    ]


def shown(raw: dict) -> str:
    seen = traces.assessment_view(raw)
    value = seen["value"] if isinstance(seen["value"], str) else json.dumps(seen["value"])
    return f"{value} ({seen['source']})"


def delete_assessment(ctx: Context, info: dict, assessment_id: str) -> tuple[Change, list[str]]:
    trace_id = info["trace_id"]
    raw = next((a for a in info.get("assessments", []) or [] if a.get("assessment_id") == assessment_id), None)
    if raw is None:
        return Change(trace_id, "trace", f"assessment {assessment_id}", None, None, False), []
    seen = traces.assessment_view(raw)
    field = f"{seen['kind']} {seen['name']}"
    try:
        send(ctx.store, "DELETE", f"{trace_path(trace_id)}/assessments/{quote(assessment_id, safe='')}", {}, field)
    except NotFoundError:  # a retried request whose first try had deleted it
        if any(a.get("assessment_id") == assessment_id for a in read_assessments(ctx.store, trace_id)):
            raise
    return Change(trace_id, "trace", field, shown(raw), None, True), wanted_from_raw(raw).argv()


def set_trace_tags(
    ctx: Context, info: dict, tags: dict[str, str], untag: list[str], audit: str
) -> tuple[list[Change], list[str]]:
    trace_id = info["trace_id"]
    current = info.get("tags", {}) or {}
    changes, undo = [], []
    path = f"{trace_path(trace_id)}/tags"
    for key, value in tags.items():
        before = current.get(key)
        changes.append(Change(trace_id, "trace", f"tags.{key}", before, value, before != value))
        if before != value:
            send(ctx.store, "PATCH", path, {"key": key, "value": value}, what="setting a trace tag")
            undo += ["--untag", key] if before is None else ["--tag", f"{key}={before}"]
    for key in untag:
        before = current.get(key)
        changes.append(Change(trace_id, "trace", f"tags.{key}", before, None, before is not None))
        if before is not None:
            send(ctx.store, "DELETE", path, {"key": key}, what="deleting a trace tag")
            undo += ["--tag", f"{key}={before}"]
    if any(c.written for c in changes):
        send(ctx.store, "PATCH", path, {"key": AUDIT_KEY, "value": audit}, what="audit tag")
    return changes, undo


def tag_args(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    tags = parse_key_values(args.tag, "--tag")
    untag = list(dict.fromkeys(k.strip() for k in args.untag or [] if k.strip()))
    both = sorted(set(tags) & set(untag))
    if both:
        raise UsageError(f"--tag and --untag both name {', '.join(both)}: pass one of them")
    return tags, untag


def linked_already(ctx: Context, infos: list[dict], run_id: str) -> set[str]:
    """The traces among `infos` that a search for the run's traces already returns."""
    experiment_ids = sorted({traces.trace_summary(i)["experiment_id"] for i in infos} - {None})
    wanted = {i["trace_id"] for i in infos}
    try:
        found, _ = traces.search_all_trace_infos(
            ctx.store, experiment_ids, f"attribute.run_id = '{run_id}'", 5_000, None
        )
    except UsageError:  # a server whose trace search cannot filter by run: link and let it decide
        return set()
    return wanted & {i.get("trace_id") for i in found}


def link_to_run(ctx: Context, infos: list[dict], run_id: str) -> list[Change]:
    run = lookups.get_run(ctx.store, run_id)
    done = linked_already(ctx, infos, run_id)
    label = f"run {lookups.run_name(run) or run_id}"
    todo = [i["trace_id"] for i in infos if i["trace_id"] not in done]
    for start in range(0, len(todo), LINK_MAX):
        try:
            ctx.store.post(LINK_PATH, {"trace_ids": todo[start : start + LINK_MAX], "run_id": run_id}, what="linking")
        except NotFoundError as exc:
            if "lacks this endpoint" not in str(exc):
                raise
            raise NotFoundError(
                f"this server cannot link traces to a run (no {LINK_PATH}: MLflow 3 added it); the traces were "
                "not linked (any feedback or tags above this step were written)"
            ) from None
    return [
        Change(
            i["trace_id"],
            "trace",
            f"linked to {label}",
            None if i["trace_id"] in todo else run_id,
            run_id,
            i["trace_id"] in todo,
        )
        for i in infos
    ]
