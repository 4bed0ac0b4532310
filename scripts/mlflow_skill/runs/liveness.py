"""Whether a RUNNING run is still being written: the one rule behind `failed`, `health` and the
writers' refusal to touch a run another process is logging.

A run is judged by two facts:
- its writer tag (`backtest.writer`: host, pid and start of the process logging it). On this host
  a pid that no longer runs a writer is known dead at once: the run was killed, whatever its age.
- its last write: the start time or the newest metric timestamp, ignoring stamps in the future
  (a skewed client clock must not keep a run alive). No write for longer than the threshold is stale.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow_skill.core.formatting import fmt_duration, fmt_time

WRITER_TAG = "backtest.writer"  # "host=H pid=P started=ISO" of the process logging the run
DEFAULT_STALE_MS = 3_600_000  # a RUNNING run with no write for this long is abandoned
WRITER_WORDS = (b"log_backtest",)  # what a live writer's command line holds on this host

ALIVE = "alive"
STALE = "stale"
WRITER_GONE = "writer gone"


@dataclass(frozen=True)
class Liveness:
    state: str  # ALIVE, STALE or WRITER_GONE
    last_write_ms: int
    idle_ms: int
    reason: str  # one sentence for people, empty when alive

    @property
    def abandoned(self) -> bool:
        return self.state != ALIVE


def now_ms() -> int:
    return int(time.time() * 1000)


def last_write_ms(run: dict, now: int) -> int:
    """The run's last known write: its start or its newest metric timestamp not in the future."""
    stamps = [int(m.get("timestamp") or 0) for m in run.get("data", {}).get("metrics", []) or []]
    return max([int(run.get("info", {}).get("start_time") or 0), *(t for t in stamps if t <= now)])


def writer_fields(run: dict) -> dict[str, str]:
    tags = {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", []) or []}
    return dict(part.split("=", 1) for part in tags.get(WRITER_TAG, "").split() if "=" in part)


def local_writer_alive(run: dict) -> bool | None:
    """True or False when the writer tag names a process on this host; None when it cannot be told
    from here (no tag, or another host)."""
    fields = writer_fields(run)
    pid = fields.get("pid", "")
    if fields.get("host") != socket.gethostname() or not pid.isdigit():
        return None
    if int(pid) == os.getpid():
        return False  # an earlier call in this same process: it returned, so it is done
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return any(word in cmdline.read_bytes() for word in WRITER_WORDS)
    except OSError:
        return True  # no /proc here: the pid runs, assume it is the writer


def judge(run: dict, stale_ms: int = DEFAULT_STALE_MS, now: int | None = None) -> Liveness:
    """The liveness of a RUNNING run (runs in other states are ALIVE here: they are not abandoned)."""
    now = now_ms() if now is None else now
    last = last_write_ms(run, now)
    idle = max(0, now - last)
    if run.get("info", {}).get("status") != "RUNNING":
        return Liveness(ALIVE, last, idle, "")
    local = local_writer_alive(run)
    if local is False:
        pid = writer_fields(run).get("pid")
        reason = f"RUNNING, but its writer (pid {pid} on this host) is gone: killed before it could end the run"
        return Liveness(WRITER_GONE, last, idle, reason)
    if local is None and idle > stale_ms:
        reason = (
            f"RUNNING, no write for {fmt_duration(idle)} (last at {fmt_time(last)} UTC; "
            f"threshold {fmt_duration(stale_ms)}): the process likely died without ending the run"
        )
        return Liveness(STALE, last, idle, reason)
    return Liveness(ALIVE, last, idle, "")
