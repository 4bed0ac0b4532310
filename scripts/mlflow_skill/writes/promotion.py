"""promote_model.py's command: which action the flags ask for, the gate before it, and the answer
(what each alias pointed at before, and the commands that put everything back)."""

from __future__ import annotations

import argparse

from mlflow_skill.cli.frame import Context
from mlflow_skill.core.errors import EXIT_OK, RefusedError, UsageError
from mlflow_skill.store import lookups
from mlflow_skill.writes import gate as gates
from mlflow_skill.writes import promote
from mlflow_skill.writes.common import WriteReport, audit_value, command_line, refuse_if_read_only

SCRIPT = "promote_model.py"


def action_of(args: argparse.Namespace) -> str:
    """The one action the flags ask for; contradictions are usage errors before any request."""
    gated = bool(args.require or args.require_dsr is not None or args.require_pbo_below is not None)
    if args.unset_alias:
        if args.run_id or args.version or args.alias or args.delete_version or gated:
            raise UsageError("--unset-alias takes only --model NAME: remove the other flags")
        return f"unset alias {args.unset_alias}"
    if args.delete_version:
        if not args.version or args.run_id or args.alias or gated:
            raise UsageError("--delete-version takes --model NAME --version N and nothing else")
        return f"delete version {args.version}"
    if args.run_id:
        if args.version:
            raise UsageError("--run-id registers a new version (or finds the run's): drop --version")
        return "register" + (f" and alias {args.alias}" if args.alias else "")
    if args.version:
        if not args.alias:
            raise UsageError("--version N needs --alias NAME (or --delete-version)")
        return f"alias {args.alias}"
    raise UsageError(
        "what to do? --run-id ID (register a version, optionally --alias A), --version N --alias A, "
        "--unset-alias A, or --version N --delete-version"
    )


def gate_of(args: argparse.Namespace) -> gates.Gate:
    for flag, value in (("--require-dsr", args.require_dsr), ("--require-pbo-below", args.require_pbo_below)):
        if value is not None and not 0 <= value <= 1:
            raise UsageError(f"{flag} takes a probability between 0 and 1, got {value:g}")
    return gates.Gate((args.require or "").strip() or None, args.require_dsr, args.require_pbo_below)


def cmd_promote(ctx: Context) -> int:
    args = ctx.args
    action = action_of(args)
    gate = gate_of(args)
    refuse_if_read_only(ctx.settings, f"{SCRIPT} ({action} on model {args.model})")
    store, name = ctx.store, args.model.strip()
    audit = audit_value(SCRIPT, action)
    outcome = promote.Outcome()
    passed: list[str] = []
    run = None
    notes: list[str] = []
    if args.unset_alias:
        promote.unset_alias(store, name, args.unset_alias, audit, outcome)
    elif args.delete_version:
        promote.delete_version(store, name, args.version, audit, outcome)
        if outcome.changes[-1].written and not outcome.undo:
            notes.append("the version had no source run: MLflow cannot restore it; register its source again")
    elif args.run_id:
        run = lookups.get_run(store, args.run_id)
        passed = gates.check(store, run, gate)
        outcome.version = promote.register(store, name, run, audit, outcome)
        if args.alias:
            promote.set_alias(store, name, args.alias, str(outcome.version["version"]), audit, outcome)
    else:
        outcome.version, run = promote.version_run(store, name, args.version)
        if run is None:
            if gate.asked:
                raise RefusedError(
                    f"refused by the gate: version {args.version} of {name!r} has no source run, so "
                    f"{', '.join(gate.asked)} cannot be checked; nothing was moved"
                )
            notes.append(f"version {args.version} has no source run: no gate to check")
        else:
            passed = gates.check(store, run, gate)
        promote.set_alias(store, name, args.alias, str(outcome.version["version"]), audit, outcome)
    ctx.emit(report(ctx, name, run, outcome, passed, notes).view())
    return EXIT_OK


def report(
    ctx: Context, name: str, run: dict | None, outcome: promote.Outcome, passed: list[str], notes: list[str]
) -> WriteReport:
    version = outcome.version
    headline = f"Model **{name}**"
    if version is not None:
        headline += f" v{version['version']}"
    if run is not None:
        headline += f" from run **{lookups.run_name(run) or '(unnamed)'}** ({run['info']['run_id']})"
    lines = []
    if passed:
        lines.append("gate passed: " + " · ".join(passed))
    if outcome.source is not None:
        lines.append(f"source: {outcome.source.uri} ({outcome.source.how})")
    elif version is not None and version.get("source"):
        lines.append(f"source: {version['source']}")
    extra = {
        "model": name,
        "version": version and str(version["version"]),
        "run_id": run and run["info"]["run_id"],
        "source": (outcome.source.uri if outcome.source else version and version.get("source")),
        "source_how": outcome.source.how if outcome.source else None,
        "model_id": outcome.source.model_id if outcome.source else None,
        "gate": passed,
    }
    return WriteReport(
        headline=headline,
        changes=outcome.changes,
        undo=[command_line(ctx, SCRIPT, argv) for argv in outcome.undo],
        notes=lines + notes,
        extra=extra,
    )
