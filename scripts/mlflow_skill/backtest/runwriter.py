"""The process side of writing a run (log_backtest.py): SIGTERM/SIGINT unwind the command so the
run can be marked FAILED; a process whose parent died (a killed `uv run`) sends itself SIGTERM
instead of logging on unseen; who is writing a run, and whether that writer is still alive.
"""

from __future__ import annotations

import contextlib
import time

from mlflow_skill.core.formatting import iso_time
from mlflow_skill.runs import liveness

WRITER_TAG = liveness.WRITER_TAG  # host and pid of the process logging the run


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
    """Whether the process that logs a RUNNING run may still be at it (runs.liveness: on this host,
    whether its pid is a live log_backtest process; from another host, whether it wrote lately)."""
    return not liveness.judge(run, liveness.DEFAULT_STALE_MS).abandoned
