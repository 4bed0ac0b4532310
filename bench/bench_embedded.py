"""Warm calls on the embedded store (./mlflow.db, the default with nothing configured) against
MLflow's own tools on the same file, in one run.

Usage (one command; a minute or two):
  uv run python bench/bench_embedded.py              # 1,000 runs, 7 samples each
  uv run python bench/bench_embedded.py --runs 300 --repeat 3

A fresh folder gets ./mlflow.db made by MLflow's client and N runs bulk-written into it
(tests/bulk_seed.py). Then, in that folder with nothing configured, interleaved so that load
changes hit every command alike, after one warm-up call each:
  - `uv run scripts/query_experiments.py experiments` and `... runs` (the interface agents use);
  - `mlflow experiments search` (MLflow's CLI, from this venv: no uv overhead);
  - `MlflowClient("sqlite:///mlflow.db").search_runs(...)` in a fresh `python -c` (this venv).
Medians of wall time and of CPU time (the process and its children: comparable on a loaded
machine), the ratios, and whether the scripts printed anything on stderr beyond the `store:` line.
Target (issue 14): both script calls <= 1.0x MlflowClient's fresh-process search_runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from bulk_seed import seed  # noqa: E402

PY = sys.executable
UV = shutil.which("uv") or "uv"
CLIENT = (
    "from mlflow.tracking import MlflowClient; "
    "print(len(MlflowClient('sqlite:///mlflow.db').search_runs(['1'], max_results=1000)))"
)


def commands() -> dict[str, list[str]]:
    script = str(ROOT / "scripts" / "query_experiments.py")
    return {
        "script experiments": [UV, "run", "--quiet", script, "experiments"],
        "script runs": [UV, "run", "--quiet", script, "runs", "--experiment", "bench"],
        "mlflow experiments search": [str(Path(PY).parent / "mlflow"), "experiments", "search"],
        "MlflowClient search_runs": [PY, "-c", CLIENT],
    }


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its children, stderr)."""
    err = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err.seek(0)
    text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:5])} failed: {text[-1500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, text


def make_store(folder: Path, runs: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment_id = client.create_experiment("bench")
    assert experiment_id == "1", experiment_id  # CLIENT searches experiment 1
    seed(folder / "mlflow.db", experiment_id, runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    try:
        folder, envdir = tmp / "work", tmp / "envdir"
        folder.mkdir()
        envdir.mkdir()
        make_store(folder, args.runs)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_", "VIRTUAL_ENV"))}
        env.update(MLFLOW_SKILL_ENV_DIR=str(envdir), UV_PYTHON_DOWNLOADS="never")
        cmds = commands()
        stderr = {name: timed(cmd, env, folder)[2] for name, cmd in cmds.items()}  # warm-up
        wall: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.repeat):
            for name, cmd in cmds.items():
                w, c, err = timed(cmd, env, folder)
                wall[name].append(w)
                cpu[name].append(c)
                if name.startswith("script"):
                    stderr[name] += err
        report(args, wall, cpu, stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(args, wall: dict, cpu: dict, stderr: dict) -> None:
    med = {name: statistics.median(v) for name, v in wall.items()}
    mcpu = {name: statistics.median(v) for name, v in cpu.items()}
    base, cli = "MlflowClient search_runs", "mlflow experiments search"
    print(
        f"embedded store with {args.runs} runs; medians of {args.repeat}; load average {os.getloadavg()[0]:.1f} (2 "
        f"cores)\n"
    )
    print("| command | wall s | CPU s | wall vs MlflowClient | CPU vs MlflowClient | wall vs mlflow CLI |")
    print("|---|---|---|---|---|---|")
    for name in wall:
        print(
            f"| {name} | {med[name]:.2f} | {mcpu[name]:.2f} | {med[name] / med[base]:.2f}x | "
            f"{mcpu[name] / mcpu[base]:.2f}x | {med[name] / med[cli]:.2f}x |"
        )
    for name, text in stderr.items():
        if name.startswith("script"):
            extra = [line for line in text.splitlines() if line.strip() and not line.startswith("store: ")]
            print(f"\n{name}: stderr beyond the store line: {extra[:3] if extra else 'nothing'}")


if __name__ == "__main__":
    sys.exit(main())
