"""Benchmark: get_metric_history.py's default view and --exact vs MlflowClient.get_metric_history,
and the two ways of reading every point over REST.

One run on a local tracking server (sqlite, started here) with issue 13's series: `loss` decaying
from 2.1 over --points steps (default 50,000), one spike of 9.5 at step 31,337 (scaled to the
length), which the server's 2,500-point sample cannot hold.

- wall time of `uv run scripts/get_metric_history.py --run-id ID --metrics loss` (warm uv cache)
  and of the same with --exact, against a subprocess running
  `MlflowClient().get_metric_history(run_id, "loss")`; the max each of them reports;
- in-process, without start-up: every point through get-history's pages (25,000 per page, what
  MlflowClient and the script's old --exact do) against the sample + step windows of
  get-history-bulk-interval (what the script does now), serially and with 4 threads;
- size of the default markdown output (target: at most 4 KB).
Targets: the default view finds the spike when the series is at most 50,000 points (else labels
its extremes as the sample's); with a sampled series (--points above 50,000) the default view is
at least 10x faster than MlflowClient.

Usage:
  cd /work/main && .venv/bin/python bench/bench_metric_history.py [--points 50000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
from mlflow_skill.history import load  # noqa: E402 (scripts/ and tests/ are on the path only from here)
from mlflow_skill.history.series import STEP_MAX, STEP_MIN  # noqa: E402

import conftest  # noqa: E402
from _bench import timed  # noqa: E402

SCRIPT = ROOT / "scripts" / "get_metric_history.py"
BASELINE = (
    "import sys\n"
    "from mlflow import MlflowClient\n"
    "history = MlflowClient().get_metric_history(sys.argv[1], 'loss')\n"
    "top = max(history, key=lambda m: m.value)\n"
    "print(len(history), top.value, top.step)\n"
)


def spike_step(n: int) -> int:
    return 31_337 * n // 50_000


def seed(uri: str, n: int) -> str:
    api = uri + "/api/2.0/mlflow"
    with requests.Session() as http:
        exp = http.post(f"{api}/experiments/create", json={"name": f"bench-history-{time.time_ns()}"}).json()[
            "experiment_id"
        ]
        run = http.post(f"{api}/runs/create", json={"experiment_id": exp, "run_name": "long"}).json()["run"]["info"][
            "run_id"
        ]
        for start in range(0, n, 1000):
            batch = [
                {
                    "key": "loss",
                    "value": 9.5 if i == spike_step(n) else 2.1 * math.exp(-5 * i / n),
                    "timestamp": 1_700_000_000_000 + i,
                    "step": i,
                }
                for i in range(start, min(n, start + 1000))
            ]
            http.post(f"{api}/runs/log-batch", json={"run_id": run, "metrics": batch}, timeout=60).raise_for_status()
    return run


def read_pages(uri: str, run_id: str) -> int:
    params = {"run_id": run_id, "metric_key": "loss", "max_results": load.HISTORY_PAGE}
    total = 0
    with requests.Session() as http:
        while True:
            page = http.get(uri + load.HISTORY, params=params, timeout=300).json()
            total += len(page.get("metrics", []))
            if not page.get("next_page_token"):
                return total
            params["page_token"] = page["next_page_token"]


def read_windows(uri: str, run_id: str, workers: int) -> int:
    def get(params):
        return requests.get(uri + load.BULK_INTERVAL, params=params, timeout=300).json().get("metrics", [])

    base = {"run_ids": run_id, "metric_key": "loss", "max_results": load.SAMPLE_SIZE}
    sample = [load.parse_point(m) for m in get(base)]
    windows = load.plan_windows(sample, load.estimate_total(sample) / len(sample), STEP_MIN, STEP_MAX)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda w: get({**base, "start_step": w[0], "end_step": w[1]}), windows))
    assert all(len(p) < load.SAMPLE_SIZE for p in parts)
    return sum(len(p) for p in parts)


def median_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def script_max(output: str) -> str:
    data = json.loads(output)["series"][0]
    return f"{data['max']['value']} @{data['max']['step']} ({data['extremes']})"


def measure(uri: str, run_id: str, tmp: Path, repeat: int) -> dict:
    env = conftest.clean_env({"MLFLOW_TRACKING_URI": uri, "UV_PYTHON_DOWNLOADS": "never"})
    env["MLFLOW_SKILL_ENV_DIR"] = str(tmp)  # no .env files
    uv = shutil.which("uv") or "uv"
    ours = [uv, "run", "--quiet", str(SCRIPT), "--run-id", run_id, "--metrics", "loss"]
    timed(ours, env)  # warm uv's cache for the script's environment
    r = {}
    r["default"], r["default_out"] = median_of(lambda: timed(ours, env)[2], repeat)
    r["default_max"] = script_max(timed(ours + ["--format", "json"], env)[2])
    r["exact"], out = median_of(lambda: timed(ours + ["--exact", "--format", "json"], env)[2], repeat)
    r["exact_max"] = script_max(out)
    r["client"], r["client_out"] = median_of(lambda: timed([sys.executable, "-c", BASELINE, run_id], env)[2], repeat)
    r["pages"], r["pages_n"] = median_of(lambda: read_pages(uri, run_id), repeat)
    r["windows1"], r["windows_n"] = median_of(lambda: read_windows(uri, run_id, 1), repeat)
    r["windows4"], _ = median_of(lambda: read_windows(uri, run_id, 4), repeat)
    return r


def report(r: dict, n: int, repeat: int) -> bool:
    print(f"\nOne run, `loss` of {n:,} steps with one spike (9.5 at step {spike_step(n):,}); medians of {repeat}\n")
    print("| what | wall time | vs MlflowClient | max reported |")
    print("|---|---|---|---|")
    _c_n, c_max, c_step = r["client_out"].split()
    print(f"| MlflowClient().get_metric_history (subprocess) | {r['client']:.2f} s | 1x | {float(c_max):g} @{c_step} |")
    print(
        f"| get_metric_history.py default view (uv run) | {r['default']:.2f} s | {r['client'] / r['default']:.1f}x "
        f"faster | {r['default_max']} |"
    )
    print(
        f"| get_metric_history.py --exact (uv run) | {r['exact']:.2f} s | {r['client'] / r['exact']:.1f}x faster | "
        f"{r['exact_max']} |"
    )
    print("\nReading every point over REST, in-process (no start-up):\n")
    print("| how | time | points |")
    print("|---|---|---|")
    print(f"| get-history pages of 25,000 (MlflowClient, old --exact) | {r['pages']:.2f} s | {r['pages_n']:,} |")
    print(
        f"| sample + bulk-interval step windows, 1 thread (--exact now) | {r['windows1']:.2f} s | {r['windows_n']:,} |"
    )
    print(f"| sample + bulk-interval step windows, 4 threads | {r['windows4']:.2f} s | {r['windows_n']:,} |")
    size = len(r["default_out"].encode("utf-8"))
    print(f"\n| default markdown output, one metric | {size:,} bytes | target <= 4,096 |")
    found = r["default_max"].startswith("9.5 ") and "(exact)" in r["default_max"]
    labelled = "(sample)" in r["default_max"]
    ok = size <= 4096 and (found if n <= load.AUTO_EXACT else labelled and r["client"] / r["default"] >= 10)
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-history-"))
    server = conftest.start_server(tmp / "server")
    try:
        t0 = time.perf_counter()
        run_id = seed(server.uri, opts.points)
        print(f"seeded {opts.points:,} points in {time.perf_counter() - t0:.0f}s on {server.uri}", flush=True)
        return 0 if report(measure(server.uri, run_id, tmp, opts.repeat), opts.points, opts.repeat) else 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
