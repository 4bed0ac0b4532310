"""The process side of writing a run (log_backtest.py): SIGTERM/SIGINT unwind the command so the
run can be marked FAILED; a process whose parent died (a killed `uv run`) sends itself SIGTERM
instead of logging on unseen; who is writing a run, and whether that writer is still alive.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from mlflow_skill.core.formatting import iso_time
from mlflow_skill.store import lookups

WRITER_TAG = "backtest.writer"  # host and pid of the process logging the run
STALE_MS = 3_600_000  # a RUNNING run from another host with no write for this long is abandoned


class Interrupted(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT; a BaseException so nothing swallows it."""

    def __init__(self, signame: str, why: str = ""):
        import signal

        super().__init__(signame)
        self.signame, self.why = signame, why
        self.exit_code = 128 + int(getattr(signal, signame, 15))


_PARENT_GONE: list[int] = []  # set by the watcher thread: the parent process it lost


@contextlib.contextmanager
def interruptible():
    """While the command runs, SIGTERM and SIGINT raise Interrupted (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        why = f" (its parent process {_PARENT_GONE[0]} is gone)" if _PARENT_GONE else ""
        raise Interrupted(signal.Signals(signum).name, why)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def uninterrupted():
    """While the run is being marked FAILED, further SIGTERM/SIGINT wait (they are ignored)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def watch_parent(interval: float = 0.5) -> None:
    """SIGKILL to `uv run` does not stop the Python child it started: when this process's parent
    changes (it died and we were re-parented), stop ourselves with SIGTERM, which marks the run."""
    import os
    import signal
    import threading

    parent = os.getppid()
    if parent <= 1:
        return

    def loop() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                _PARENT_GONE.append(parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


def writer_id() -> str:
    import os
    import socket

    return f"host={socket.gethostname()} pid={os.getpid()} started={iso_time(int(time.time() * 1000))}"


def writer_alive(run: dict) -> bool:
    """Whether the process that logs a RUNNING run may still be at it: on this host, whether its
    pid is a live log_backtest process; from another host, whether the run wrote in the last hour."""
    import os
    import socket

    fields = dict(part.split("=", 1) for part in lookups.run_tags(run).get(WRITER_TAG, "").split() if "=" in part)
    pid = fields.get("pid", "")
    if fields.get("host") == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False  # an earlier call in this same process (it returned, so it is done)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        cmdline = Path(f"/proc/{pid}/cmdline")
        return b"log_backtest" in cmdline.read_bytes() if cmdline.exists() else True
    return int(time.time() * 1000) - last_write_ms(run) < STALE_MS


def last_write_ms(run: dict) -> int:
    """The run's last known write: its start or its newest metric timestamp that is not in the future."""
    now = int(time.time() * 1000)
    stamps = [int(m.get("timestamp") or 0) for m in run.get("data", {}).get("metrics", []) or []]
    return max([int(run["info"].get("start_time") or 0), *(t for t in stamps if t <= now)])
