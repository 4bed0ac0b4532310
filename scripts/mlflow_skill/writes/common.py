"""What every write of tag_runs.py, promote_model.py and log_feedback.py shares: the read-only
refusal, the audit tag, the exact command that undoes a change, the request helper for the HTTP
methods the Store has no shortcut for (DELETE, PATCH), and one view of changes (before -> after,
"already so").

The rules they keep: look before writing (the same command twice writes once; the second says
"already so"), refuse in read-only mode before anything is sent, say what changed and how to
undo it, and stamp what the skill wrote with which script wrote it and when (never a value that
could be a secret: the audit names keys and actions, not the values written).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.config import Settings
from mlflow_skill.core.errors import RefusedError
from mlflow_skill.core.formatting import truncate
from mlflow_skill.core.secrets import scrub, uri_without_secrets
from mlflow_skill.store.transport import Store

AUDIT_KEY = "mlflow_skill.audit"  # tag (or assessment metadata) naming the script and the time of a write
READ_ONLY_VAR = "MLFLOW_SKILL_READ_ONLY"
ALREADY = "already so"
CHANGED = "changed"
UNSET = "(unset)"
ROWS_SHOWN = 50  # changes listed in markdown; JSON has them all


def refuse_if_read_only(settings: Settings, what: str) -> None:
    """Every write calls this first: in read-only mode nothing is sent, not even a read."""
    if settings.read_only:
        where = settings.origin(READ_ONLY_VAR)
        raise RefusedError(
            f"refused: read-only mode ({where}): {what} was not written and nothing was sent; "
            f"to write, unset {READ_ONLY_VAR} where it is set"
        )


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def audit_value(script: str, action: str) -> str:
    """'tag_runs.py 2026-12-05T10:11:12Z: set reviewed': which script, when, what (keys only)."""
    return f"{script} {utc_now()}: {truncate(scrub(action), 300)}"


def send(store: Store, method: str, path: str, body: dict, what: str = "") -> dict:
    """A JSON request with any method (MLflow's DELETE and PATCH endpoints take a JSON body, which
    Store.get/post do not cover); errors are mapped like every other request."""
    return store._call(method, path, body=body, what=what)  # the Store's one request path, on purpose


def command_line(ctx: Context, script: str, argv: list[str]) -> str:
    """The exact command for `argv`, aimed at the same store when --tracking-uri was given (never
    with credentials: a re-run takes them from the same environment)."""
    words = ["uv", "run", f"scripts/{script}", *argv]
    flag_uri = getattr(ctx.args, "tracking_uri", None)
    if flag_uri:
        words += ["--tracking-uri", uri_without_secrets(flag_uri)]
    return shlex.join(words)


@dataclass
class Change:
    """One field of one target: what it was, what it is now, and whether this call wrote it."""

    target: str  # a run id, a trace id, a model name
    label: str  # what people call the target: the run name, "model fraud", ...
    field: str  # tags.reviewed, note, lifecycle, alias champion, feedback correct, ...
    before: Any
    after: Any
    written: bool  # False: it already was so, nothing was sent

    def record(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "field": self.field,
            "before": self.before,
            "after": self.after,
            "status": CHANGED if self.written else ALREADY,
        }


@dataclass
class WriteReport:
    """What a write command shows: a headline, its changes, the commands that undo them, notes."""

    headline: str
    changes: list[Change] = field(default_factory=list)
    undo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # more JSON fields (the version, the gate's checks, ...)

    @property
    def written(self) -> int:
        return sum(c.written for c in self.changes)

    def summary(self) -> str:
        done, already = self.written, len(self.changes) - self.written
        if not self.changes:
            return "nothing to change"
        if not done:
            return f"{ALREADY}: nothing written ({already} unchanged)"
        return f"{done} change{'s' * (done > 1)} written" + (f", {already} {ALREADY}" if already else "")

    def view(self) -> View:
        data = {
            **self.extra,
            "summary": self.summary(),
            "written": self.written,
            "already_so": len(self.changes) - self.written,
            "changes": [c.record() for c in self.changes],
            "undo": self.undo,
            "notes": self.notes,
        }
        lines = [self.headline, "", self.summary() + ":"]
        rows = [
            [truncate(c.label, 30), c.target, c.field, show(c.before), show(c.after), CHANGED if c.written else ALREADY]
            for c in self.changes[:ROWS_SHOWN]
        ]
        after = []
        if len(self.changes) > ROWS_SHOWN:
            after.append(f"… {len(self.changes) - ROWS_SHOWN} more changes (--format json lists them all)")
        after += [f"- {note}" for note in self.notes]
        if self.undo:
            after += ([""] if after else []) + ["undo:"] + [f"- `{cmd}`" for cmd in self.undo]
        table = Table(["target", "id", "field", "before", "after", "result"], rows)
        return View(data=data, lines=lines, table=table, after=[""] + after if after else [])


def show(value: Any, width: int = 60) -> str:
    if value is None:
        return UNSET
    return truncate(value if isinstance(value, str) else repr(value), width)
