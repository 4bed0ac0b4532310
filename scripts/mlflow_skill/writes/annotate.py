"""log_feedback.py's command: per trace, an assessment (or its deletion) and tags, then the link
to a run; one answer with every change, the commands that undo them, and what cannot be undone."""

from __future__ import annotations

from mlflow_skill.cli.frame import Context
from mlflow_skill.core.errors import EXIT_OK, UsageError
from mlflow_skill.traces import api as traces
from mlflow_skill.writes import feedback as fb
from mlflow_skill.writes.common import Change, WriteReport, audit_value, command_line, refuse_if_read_only

SCRIPT = "log_feedback.py"


def describe(wanted: fb.Wanted | None, tags: dict, untag: list[str], args) -> str:
    """Names and actions, never values (this goes into the audit stamp)."""
    parts = []
    if wanted is not None:
        parts.append(f"{wanted.kind} {wanted.name}")
    if args.delete_assessment:
        parts.append(f"delete assessment {args.delete_assessment}")
    if tags:
        parts.append("tag " + ", ".join(tags))
    if untag:
        parts.append("untag " + ", ".join(untag))
    if args.run_id:
        parts.append(f"link to run {args.run_id}")
    return "; ".join(parts)


def cmd_log_feedback(ctx: Context) -> int:
    args = ctx.args
    trace_ids = list(dict.fromkeys(t.strip() for t in args.trace_id or [] if t.strip()))
    if not trace_ids:
        raise UsageError(
            "which trace? pass --trace-id ID (find ids: uv run scripts/search_traces.py --experiment NAME)"
        )
    wanted = fb.Wanted.from_args(args)
    tags, untag = fb.tag_args(args)
    if wanted is not None and args.delete_assessment:
        raise UsageError("--delete-assessment undoes one assessment: pass it without --name/--value")
    action = describe(wanted, tags, untag, args)
    if not action:
        raise UsageError(
            "nothing to do: pass --name NAME --value V (feedback), --tag KEY=VALUE, --untag KEY, --run-id ID "
            "(link the traces to a run) or --delete-assessment ID"
        )
    refuse_if_read_only(ctx.settings, f"{SCRIPT} ({action})")
    audit = audit_value(SCRIPT, action)
    infos = [traces.get_trace_info(ctx.store, t) for t in trace_ids]  # every trace exists before any write
    changes: list[Change] = []
    undo: list[str] = []
    for info in infos:
        flags: list[str] = []
        if wanted is not None:
            change, back = fb.log_assessment(ctx, info, wanted, audit)
            changes.append(change)
            flags += back
        if args.delete_assessment:
            change, back = fb.delete_assessment(ctx, info, args.delete_assessment)
            changes.append(change)
            flags += back
        if tags or untag:
            tag_changes, back = fb.set_trace_tags(ctx, info, tags, untag, audit)
            changes += tag_changes
            flags += back
        if flags:
            undo.append(command_line(ctx, SCRIPT, ["--trace-id", info["trace_id"], *flags]))
    notes = []
    if args.run_id:
        links = fb.link_to_run(ctx, infos, args.run_id)
        changes += links
        if any(c.written for c in links):
            notes.append("MLflow has no endpoint that unlinks a trace from a run: the link cannot be undone here")
    if wanted is not None:
        notes.append(f"see it: uv run scripts/get_trace.py --trace-id {trace_ids[0]}")
    report = WriteReport(
        headline=f"{len(infos)} trace{'s' * (len(infos) > 1)}: {action}",
        changes=changes,
        undo=undo,
        notes=notes,
        extra={"trace_ids": trace_ids, "run_id": args.run_id},
    )
    ctx.emit(report.view())
    return EXIT_OK
