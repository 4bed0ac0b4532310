"""When writing a run fails or is interrupted: what had been written (Progress), the run marked
FAILED with the reason in a tag (best effort: the server may be what failed), and one error that
says truly what was written and what was not.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from mlflow_skill.backtest import runstore
from mlflow_skill.backtest import runwriter as rw
from mlflow_skill.core.errors import EXIT_ERROR, SkillError
from mlflow_skill.core.secrets import scrub
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store


@dataclass
class Progress:
    """What has been written to a run so far, for the FAILED message."""

    total: int  # steps: log-batch requests, then artifacts, then FINISHED
    points_total: int  # history points to write
    done: int = 0
    scalars: bool = False  # metrics, params and tags written
    points: int = 0
    artifacts: list[str] = field(default_factory=list)

    def step(self) -> None:
        self.done += 1

    def written(self) -> str:
        parts = ["metrics, params and tags" if self.scalars else "no metrics or params"]
        if self.points_total:
            parts.append(f"{self.points:,} of {self.points_total:,} history points")
        parts.append(f"artifacts {', '.join(self.artifacts)}" if self.artifacts else "no artifacts")
        return "; ".join(parts)


def failure(store: Store, run: dict, experiment: str, exc: BaseException, progress: Progress) -> SkillError:
    """Mark the run FAILED with the reason; the error says truly what was written and what was not."""
    run_id = run["info"]["run_id"]
    with rw.uninterrupted():
        message, code = describe(exc, progress)
        tagged, marked = mark_failed(store, run_id, message)
    if marked:
        state = (
            f"marked FAILED (reason in tag {runstore.ERROR_TAG})"
            if tagged
            else f"marked FAILED (the reason tag {runstore.ERROR_TAG} could not be written)"
        )
    else:
        state = (
            "left RUNNING, never FINISHED (the server could not be told it failed; "
            f"tag {runstore.INCOMPLETE_TAG} says what is missing)"
        )
    return SkillError(
        f"run {run_id} in experiment {experiment!r} {state}: {message}. Written: {progress.written()}. "
        "Re-run the same command to complete it",
        exit_code=code,
    )


def describe(exc: BaseException, progress: Progress) -> tuple[str, int]:
    """(the reason, one line without secrets; the exit code): 143/130 for SIGTERM/SIGINT."""
    if isinstance(exc, (rw.Interrupted, KeyboardInterrupt)):
        signame, why = (exc.signame, exc.why) if isinstance(exc, rw.Interrupted) else ("SIGINT", "")
        return (
            f"interrupted by {signame}{why} after {progress.done} of {progress.total} steps",
            128 + (15 if signame == "SIGTERM" else 2),
        )
    message = str(exc) if isinstance(exc, SkillError) else f"{type(exc).__name__}: {exc}"
    message = scrub(" ".join(message.split()))[:500] or type(exc).__name__
    return message, exc.exit_code if isinstance(exc, SkillError) else EXIT_ERROR


def mark_failed(store: Store, run_id: str, message: str) -> tuple[bool, bool]:
    """Best effort: the error in a tag (runs/set-tag, not log-batch, which may be what fails),
    then the run FAILED. Never raises; says (tag written, status set)."""
    tagged = marked = False
    with contextlib.suppress(Exception):
        runstore.set_tag(store, run_id, runstore.ERROR_TAG, message)
        tagged = True
    with contextlib.suppress(Exception):
        store.post(
            f"{lookups.API}/runs/update", {"run_id": run_id, "status": "FAILED", "end_time": int(time.time() * 1000)}
        )
        marked = True
    return tagged, marked
