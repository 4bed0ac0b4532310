"""The records of logging a backtest (or a sweep's parent): what its run is created with
(RunIdentity), and what logging did to the store (RunOutcome): which run, created, completed or
found already logged, in which experiment, and what was written. The outcome is filled in as the
run is written; nothing for a dry run. The JSON output is built from both at render time (render.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunIdentity:
    """What a run is created with: its name, fingerprint and tags, and whether it will hold
    histories (named as missing until they are written)."""

    run_name: str
    fingerprint: str
    tags: dict[str, str]
    histories: bool


class Action(enum.StrEnum):
    CREATED = "created"  # a new run
    COMPLETED = "completed"  # an earlier FAILED, KILLED or abandoned run of the same backtest, finished in place
    ALREADY_LOGGED = "already_logged"  # the same backtest is FINISHED: nothing written


class Status(enum.StrEnum):
    """The run's MLflow status as this call leaves it."""

    RUNNING = "RUNNING"  # created or reopened, being written
    FINISHED = "FINISHED"  # complete: an interrupt from now on must not mark it FAILED


@dataclass
class Previous:
    """The earlier run a re-run completed: its status, error tag and what it missed."""

    status: str
    error: str | None
    missing: str | None

    def as_dict(self) -> dict:
        return {"status": self.status, "error": self.error, "missing": self.missing}


@dataclass
class RunOutcome:
    run_name: str
    experiment: str
    action: Action | None = None
    experiment_id: str | None = None
    experiment_status: str | None = None  # lookups.ensure_experiment: exists, created or restored
    run_id: str | None = None
    status: Status | None = None
    url: str | None = None
    previous: Previous | None = None
    histories: dict[str, int] = field(default_factory=dict)  # history key -> steps logged
    artifacts: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)  # log-batch requests per kind

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED
