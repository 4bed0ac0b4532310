"""Benchmark: get_metric_history.py's default view vs MlflowClient().get_metric_history.

One run with a 200,000-step metric on a local tracking server (sqlite, started here):
- wall time of `uv run scripts/get_metric_history.py --run-id ID --metrics loss` (warm uv cache),
  against a subprocess running `MlflowClient().get_metric_history(run_id, "loss")`
  (target: at least 10x faster);
- size of the default markdown output for one metric (target: at most 4 KB);
- for reference, `--exact` (reads every point through the REST API, no `import mlflow`).

Usage:
  cd /work/main && uv run python bench/bench_metric_history.py [--points 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402
from _bench import timed  # noqa: E402

SCRIPT = ROOT / "scripts" / "get_metric_history.py"
BASELINE = (
    "import sys\n"
    "from mlflow import MlflowClient\n"
    "history = MlflowClient().get_metric_history(sys.argv[1], 'loss')\n"
    "print(len(history), min(m.value for m in history), max(m.value for m in history))\n"
)


def seed(uri: str, n: int) -> str:
    api = uri + "/api/2.0/mlflow"
    with requests.Session() as http:
        exp = http.post(f"{api}/experiments/create", json={"name": f"bench-history-{time.time_ns()}"}).json()["experiment_id"]
        run = http.post(f"{api}/runs/create", json={"experiment_id": exp, "run_name": "long"}).json()["run"]["info"]["run_id"]
        for start in range(0, n, 1000):
            batch = [
                {"key": "loss", "value": math.exp(-3 * i / n) + 0.01 * math.sin(i), "timestamp": 1_700_000_000_000 + i, "step": i}
                for i in range(start, min(n, start + 1000))
            ]
            http.post(f"{api}/runs/log-batch", json={"run_id": run, "metrics": batch}, timeout=60).raise_for_status()
    return run


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    server = conftest.start_server(tmp / "server")
    try:
        t0 = time.perf_counter()
        run_id = seed(server.uri, opts.points)
        print(f"seeded {opts.points:,} points in {time.perf_counter() - t0:.0f}s on {server.uri}", flush=True)
        env = conftest.clean_env({"MLFLOW_TRACKING_URI": server.uri, "UV_COMPILE_BYTECODE": "1", "UV_PYTHON_DOWNLOADS": "never"})
        env["MLFLOW_SKILL_ENV_DIR"] = str(tmp)  # no .env files
        uv = shutil.which("uv") or "uv"
        ours = [uv, "run", "--quiet", str(SCRIPT), "--run-id", run_id, "--metrics", "loss"]
        timed(ours, env)  # warm uv's cache for the script's environment

        ours_times, output = [], ""
        for _ in range(opts.repeat):
            elapsed, _, output = timed(ours, env)
            ours_times.append(elapsed)
        exact_times = [timed(ours + ["--exact"], env)[0] for _ in range(max(1, opts.repeat - 2))]
        base_times, base_out = [], ""
        for _ in range(max(1, opts.repeat - 1)):
            elapsed, _, base_out = timed([sys.executable, "-c", BASELINE, run_id], env)
            base_times.append(elapsed)

        ours_med, base_med, exact_med = (statistics.median(x) for x in (ours_times, base_times, exact_times))
        size = len(output.encode("utf-8"))
        print()
        print(f"One run, one metric of {opts.points:,} steps; medians of {opts.repeat} (ours) / {len(base_times)} (MlflowClient)")
        print()
        print("| what | wall time | vs MlflowClient | target |")
        print("|---|---|---|---|")
        print(f"| MlflowClient().get_metric_history (subprocess) | {base_med:.2f} s | 1x | |")
        print(f"| get_metric_history.py default view (uv run) | {ours_med:.2f} s | {base_med / ours_med:.1f}x faster | >= 10x |")
        print(f"| get_metric_history.py --exact (uv run) | {exact_med:.2f} s | {base_med / exact_med:.1f}x faster | |")
        print()
        print(f"| default markdown output, one metric | {size:,} bytes | | <= 4,096 bytes |")
        print()
        print(f"MlflowClient read {base_out.strip()} (count, min, max); our label: "
              + next((line for line in output.splitlines() if line.startswith("### ")), "?"))
        ok = base_med / ours_med >= 10 and size <= 4096
        print(f"\ntargets {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
