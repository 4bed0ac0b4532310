"""tag_runs.py's work: tags, notes and soft delete/restore on runs named by id or selected with
the run filter grammar of query_experiments.py (runs/search.py: OR, numeric params, IN).

Every run is read first and planned (which of its fields already are as asked); only what differs
is sent, so the same command twice writes once. Runs that need a change are counted before
anything is written, and more than CONFIRM_ABOVE of them need --yes. REST: runs/set-tag,
runs/delete-tag, runs/delete, runs/restore (soft: MLflow's garbage collector is what purges).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from mlflow_skill.cli.frame import Context, diag, run_ids
from mlflow_skill.core.errors import EXIT_OK, NotFoundError, UsageError
from mlflow_skill.core.values import parse_key_values
from mlflow_skill.runs import search
from mlflow_skill.store import lookups
from mlflow_skill.writes.common import AUDIT_KEY, Change, WriteReport, audit_value, command_line, refuse_if_read_only

SCRIPT = "tag_runs.py"
NOTE_TAG = "mlflow.note.content"  # what the MLflow UI shows as the run's description
CONFIRM_ABOVE = 20  # runs to change before --yes is required
API = lookups.API


@dataclass(frozen=True)
class TagOps:
    """What the command asks of every selected run."""

    sets: dict[str, str]
    unsets: tuple[str, ...]
    delete: bool
    restore: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TagOps:
        sets = parse_key_values(args.set, "--set")
        if args.note is not None:
            if NOTE_TAG in sets:
                raise UsageError(f"--note and --set {NOTE_TAG}=... say the same thing: pass one")
            sets[NOTE_TAG] = args.note
        unsets = tuple(dict.fromkeys(k.strip() for k in args.unset or [] if k.strip()))
        both = sorted(set(sets) & set(unsets))
        if both:
            raise UsageError(f"--set and --unset both name {', '.join(both)}: pass one of them")
        if args.delete and args.restore:
            raise UsageError("--delete and --restore undo each other: pass one")
        if not (sets or unsets or args.delete or args.restore):
            raise UsageError("nothing to do: pass --set KEY=VALUE, --unset KEY, --note TEXT, --delete or --restore")
        return cls(sets, unsets, bool(args.delete), bool(args.restore))

    def describe(self) -> str:
        """Keys and actions, never values: this goes into the audit tag."""
        parts = []
        if self.restore:
            parts.append("restore")
        if self.sets:
            parts.append("set " + ", ".join(field_name(k) for k in self.sets))
        if self.unsets:
            parts.append("unset " + ", ".join(field_name(k) for k in self.unsets))
        if self.delete:
            parts.append("delete")
        return "; ".join(parts)


def field_name(key: str) -> str:
    return "note" if key == NOTE_TAG else f"tags.{key}"


@dataclass
class RunPlan:
    """One run: its changes (written or already so), what to send, and the ops that undo it."""

    run: dict
    changes: list[Change] = field(default_factory=list)
    restore: bool = False
    sets: dict[str, str] = field(default_factory=dict)
    unsets: list[str] = field(default_factory=list)
    delete: bool = False
    undo: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run["info"]["run_id"]

    @property
    def needed(self) -> bool:
        return any(c.written for c in self.changes)


def plan_run(run: dict, ops: TagOps) -> RunPlan:
    info = run["info"]
    run_id, name = info["run_id"], lookups.run_name(run) or "(unnamed)"
    tags = lookups.run_tags(run)
    stage = info.get("lifecycle_stage", "active")
    plan = RunPlan(run)

    def note(field_: str, before, after, written: bool) -> None:
        plan.changes.append(Change(run_id, name, field_, before, after, written))

    if ops.restore:
        plan.restore = stage == "deleted"
        note("lifecycle", stage, "active", plan.restore)
    for key, value in ops.sets.items():
        before = tags.get(key)
        note(field_name(key), before, value, before != value)
        if before != value:
            plan.sets[key] = value
            plan.undo += restore_ops(key, before)
    for key in ops.unsets:
        before = tags.get(key)
        note(field_name(key), before, None, before is not None)
        if before is not None:
            plan.unsets.append(key)
            plan.undo += restore_ops(key, before)
    if ops.delete:
        plan.delete = stage != "deleted"
        note("lifecycle", stage, "deleted", plan.delete)
    if plan.restore:
        plan.undo.append("--delete")
    if plan.delete:
        plan.undo.insert(0, "--restore")
    if stage == "deleted" and not ops.restore and (plan.sets or plan.unsets):
        raise UsageError(
            f"run {name} ({run_id}) is deleted: MLflow changes no tags on a deleted run; add --restore "
            "(and --delete after, if it should stay deleted)"
        )
    return plan


def restore_ops(key: str, before: str | None) -> list[str]:
    """The flags that put one tag back as it was."""
    if before is None:
        return ["--unset", key]
    if key == NOTE_TAG:
        return ["--note", before]
    return ["--set", f"{key}={before}"]


def apply_plan(ctx: Context, plan: RunPlan, audit: str) -> None:
    """Send what the plan needs, in an order MLflow accepts: restore, tags, audit, delete."""
    store, run_id = ctx.store, plan.run_id
    if plan.restore:
        store.post(f"{API}/runs/restore", {"run_id": run_id}, what="restoring a run")
    for key, value in plan.sets.items():
        store.post(f"{API}/runs/set-tag", {"run_id": run_id, "key": key, "value": value}, what="setting a run tag")
    for key in plan.unsets:
        try:
            store.post(f"{API}/runs/delete-tag", {"run_id": run_id, "key": key}, what="deleting a run tag")
        except NotFoundError:  # a retried request whose first try had deleted it: look, do not fail
            if key in lookups.run_tags(lookups.get_run(store, run_id)):
                raise
    if plan.needed:
        store.post(f"{API}/runs/set-tag", {"run_id": run_id, "key": AUDIT_KEY, "value": audit}, what="audit tag")
    if plan.delete:
        store.post(f"{API}/runs/delete", {"run_id": run_id}, what="deleting a run")


def select_runs(ctx: Context, ops: TagOps) -> tuple[list[dict], str, list[str]]:
    """(runs, how they were selected, notes): --run-id ids, or --experiment with --filter."""
    args = ctx.args
    ids = run_ids(args)
    if ids and (args.experiment or args.filter):
        raise UsageError("pass run ids, or --experiment with --filter, not both")
    if ids:
        return [lookups.get_run(ctx.store, i) for i in ids], f"{len(ids)} run id{'s' * (len(ids) > 1)} given", []
    if not args.experiment:
        raise UsageError('which runs? pass --run-id ID (repeatable), or --experiment NAME with --filter "..."')
    view = "all" if (ops.delete or ops.restore) else "active"
    query = search.build_query(ctx.store, args.experiment, args.filter, view=view)
    runs = search.fetch_all(ctx.store, query)
    names = ", ".join(f"**{e['name']}**" for e in query.experiments)
    how = f"experiment {names}" + (f", filter `{args.filter}`" if args.filter else ", every run")
    return runs, how + ("" if view == "active" else f" ({view} runs)"), query.notes()


def group_undo(ctx: Context, plans: list[RunPlan]) -> list[str]:
    """One undo command per distinct set of undo flags, naming every run it applies to."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for plan in plans:
        if plan.needed and plan.undo:
            groups.setdefault(tuple(plan.undo), []).append(plan.run_id)
    return [
        command_line(ctx, SCRIPT, [*(w for rid in ids for w in ("--run-id", rid)), *ops]) for ops, ids in groups.items()
    ]


def cmd_tag_runs(ctx: Context) -> int:
    ops = TagOps.from_args(ctx.args)
    refuse_if_read_only(ctx.settings, f"tag_runs.py ({ops.describe()})")
    runs, how, notes = select_runs(ctx, ops)
    plans = [plan_run(run, ops) for run in runs]
    needed = [p for p in plans if p.needed]
    if len(needed) > CONFIRM_ABOVE and not ctx.args.yes:
        raise UsageError(
            f"{len(needed)} runs would change ({len(runs)} selected by {how.replace('**', '')}), more than "
            f"{CONFIRM_ABOVE}: check the selection, then add --yes to write to all of them"
        )
    if not run_ids(ctx.args):  # a filter's count, said before the first write (ids given are counted already)
        diag(f"{SCRIPT}: {len(runs)} runs selected ({how.replace('**', '')}); {len(needed)} to change")
    audit = audit_value(SCRIPT, ops.describe())
    for plan in needed:
        apply_plan(ctx, plan, audit)
    report = WriteReport(
        headline=f"{len(runs)} run{'s' * (len(runs) != 1)} selected by {how}",
        changes=[c for p in plans for c in p.changes],
        undo=group_undo(ctx, plans),
        notes=notes + ([] if runs else ["no run matched: nothing to do"]),
        extra={"selected": len(runs), "runs_changed": len(needed), "audit_tag": AUDIT_KEY if needed else None},
    )
    ctx.emit(report.view())
    return EXIT_OK
