"""Start-up cost of a warm call: `query_experiments.py runs` against its floor, a bare Python
process that imports requests and sends the same one search. Both run with the script's own uv
environment's interpreter (no uv in between), paired A B A B so machine drift cancels out; the
figure is the median of the pair ratios. An agent pays this on every call: the package must not
make it grow (lazy imports, no work at import time).

    uv run python bench/bench_startup.py [--pairs 15] [--runs 20]

Also prints the same pair through `uv run` (uv's own resolution adds the same to both) and the
modules that dominate the script's import time (`python -X importtime`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from _bench import ROOT, timed

sys.path.insert(0, str(ROOT / "tests"))
from conftest import clean_env, start_server  # noqa: E402 (tests/ is on the path only from here)

SCRIPT = ROOT / "scripts" / "query_experiments.py"
UV = shutil.which("uv") or "uv"
FLOOR = (
    "import sys, requests\n"
    "r = requests.post(sys.argv[1] + '/api/2.0/mlflow/runs/search',\n"
    "                  json={'experiment_ids': [sys.argv[2]], 'max_results': 25}, timeout=30)\n"
    "r.raise_for_status(); print(len(r.json().get('runs', [])))\n"
)


def script_python() -> str:
    """The interpreter of the script's own uv environment (built on first use)."""
    subprocess.run([UV, "run", "--quiet", str(SCRIPT), "--help"], check=True, capture_output=True)
    out = subprocess.run([UV, "python", "find", "--script", str(SCRIPT)], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def seed(uri: str, runs: int) -> str:
    api = f"{uri}/api/2.0/mlflow"
    exp_id = requests.post(f"{api}/experiments/create", json={"name": "bench-startup"}, timeout=30).json()
    exp_id = exp_id["experiment_id"]
    for i in range(runs):
        run = requests.post(f"{api}/runs/create", json={"experiment_id": exp_id, "run_name": f"r{i}"}, timeout=30)
        run_id = run.json()["run"]["info"]["run_id"]
        batch = {"run_id": run_id, "metrics": [{"key": "loss", "value": 1 / (i + 1), "timestamp": 0, "step": 0}]}
        requests.post(f"{api}/runs/log-batch", json={**batch, "params": [{"key": "lr", "value": str(i)}]}, timeout=30)
    return exp_id


def paired(a: list[str], b: list[str], env: dict[str, str], pairs: int) -> tuple[float, float, float]:
    """(median seconds of a, of b, median of the pair ratios a/b), after one warm-up of each."""
    timed(a, env)
    timed(b, env)
    times_a, times_b, ratios = [], [], []
    for _ in range(pairs):
        ta, _, _ = timed(a, env)
        tb, _, _ = timed(b, env)
        times_a.append(ta)
        times_b.append(tb)
        ratios.append(ta / tb)
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


def import_profile(python: str, env: dict[str, str], argv: list[str], top: int = 8) -> list[str]:
    """The slowest top-level imports of one call (cumulative microseconds, from -X importtime)."""
    proc = subprocess.run([python, "-X", "importtime", *argv], env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:  # top level only
            rows.append((int(m.group(1)), m.group(3)))
    return [f"{name} {us / 1000:.0f} ms" for us, name in sorted(rows, reverse=True)[:top]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20, help="runs seeded in the experiment searched")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    server = start_server(tmp / "server")
    try:
        exp_id = seed(server.uri, args.runs)
        env = clean_env({"MLFLOW_TRACKING_URI": server.uri, "UV_PYTHON_DOWNLOADS": "never"}, env_dir=tmp)
        python = script_python()
        ours = [str(SCRIPT), "runs", "--experiment", "bench-startup", "--max-results", "25"]
        floor = ["-c", FLOOR, server.uri, exp_id]
        direct = paired([python, *ours], [python, *floor], env, args.pairs)
        via_uv = paired(
            [UV, "run", "--quiet", *ours],
            [UV, "run", "--quiet", "--no-project", "--python", python, "python", *floor],
            env,
            5,
        )
        profile = import_profile(python, env, ours)
    finally:
        server.stop()
    load = os.getloadavg()[0]
    print(f"\n### Start-up of a warm `runs` call (medians of {args.pairs} pairs; load average {load:.1f})\n")
    print("| measure | ours | floor (Python + requests, one search) | ratio (median of pairs) | target |")
    print("|---|---|---|---|---|")
    target = "≤ 1.73x, aim 1.3x"
    print(f"| script's interpreter, no uv | {direct[0]:.3f} s | {direct[1]:.3f} s | **{direct[2]:.2f}x** | {target} |")
    print(f"| through `uv run` (5 pairs) | {via_uv[0]:.3f} s | {via_uv[1]:.3f} s | {via_uv[2]:.2f}x | |")
    print("\nslowest top-level imports of the script: " + ", ".join(profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
