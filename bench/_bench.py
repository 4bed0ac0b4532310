"""What the benchmarks share: timing a command in a fresh process, medians, the project root."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB of the child and its descendants, stdout); raises if it fails."""
    out = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    out.seek(0)
    text = out.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} exited {code}: {err[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, text


def median_time(cmd: list[str], env: dict[str, str], repeat: int, warm_up: bool = True) -> tuple[float, str]:
    """Median wall time of `repeat` runs (after one warm-up run: uv's cache, the OS page cache),
    and the last run's stdout."""
    if warm_up:
        timed(cmd, env)
    times, out = [], ""
    for _ in range(repeat):
        elapsed, _, out = timed(cmd, env)
        times.append(elapsed)
    return statistics.median(times), out
