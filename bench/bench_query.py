"""Benchmark query_experiments.py against MLflow's own tools on a local tracking server.

Usage:
  uv run python bench/bench_query.py              # 20,000 runs for the export comparison
  uv run python bench/bench_query.py --runs 5000  # quicker
  uv run python bench/bench_query.py --repeat 3   # fewer start-up samples (default 5)

Measures, in one run against one local `mlflow server` (sqlite, 1 worker):
  1. start-up: `uv run scripts/query_experiments.py experiments` and `runs --max-results 25`
     against `mlflow experiments search` (the venv's CLI, no uv overhead: the baseline's best
     case) and a Python + requests floor; medians, after one warm-up call each.
  2. export of N runs: `query_experiments.py export` against `mlflow.search_runs()` + `to_csv`
     and the raw REST floor (one search request of 50,000 runs); wall time and peak RSS of the
     child process (os.wait4), same rows checked.
  3. `run` output characters against `mlflow runs describe` for the same run.

Seeding writes the runs straight into the server's sqlite file with bulk SQL (5 metrics,
5 params, and the 4 system tags plus 1 user tag that `mlflow.start_run` from a script
writes): creating 20,000 runs through the API would take minutes and is not
what is being measured.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _bench import median_time, timed  # noqa: E402
from bulk_seed import seed  # noqa: E402  (shared with tests/test_load.py)
from conftest import clean_env, start_server  # noqa: E402

PY = sys.executable
MLFLOW_CLI = str(Path(PY).parent / "mlflow")
SCRIPT = str(ROOT / "scripts" / "query_experiments.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-query-"))
    server = start_server(tmp / "server")
    try:
        return run_bench(server, tmp, args)
    finally:
        server.stop()


def run_bench(server, tmp: Path, args) -> int:
    uri = server.uri
    env = clean_env({"MLFLOW_TRACKING_URI": uri, "UV_PYTHON_DOWNLOADS": "never"}, env_dir=tmp)
    exp_id = requests.post(
        f"{uri}/api/2.0/mlflow/experiments/create", json={"name": "bench-export"}, timeout=30
    ).json()["experiment_id"]
    small = requests.post(f"{uri}/api/2.0/mlflow/experiments/create", json={"name": "bench-small"}, timeout=30).json()[
        "experiment_id"
    ]
    t = time.perf_counter()
    seed(server.tmp / "mlflow.db", small, 200)
    run_id = seed(server.tmp / "mlflow.db", exp_id, args.runs)
    print(f"seeded {args.runs} + 200 runs in {time.perf_counter() - t:.1f}s; server {uri}", flush=True)

    # 1. start-up
    uv = ["uv", "run", "--quiet", SCRIPT]
    floor_code = (
        "import requests,sys; r=requests.post(sys.argv[1]+'/api/2.0/mlflow/experiments/search',"
        "json={'max_results':25}); r.raise_for_status(); print(len(r.json()['experiments']))"
    )
    t_cli, _ = median_time([MLFLOW_CLI, "experiments", "search"], env, args.repeat)
    t_exp, _ = median_time([*uv, "experiments"], env, args.repeat)
    t_runs, _ = median_time([*uv, "runs", "--experiment", "bench-small", "--max-results", "25"], env, args.repeat)
    t_floor, _ = median_time([PY, "-c", floor_code, uri], env, args.repeat)

    # 2. export
    ours_csv, theirs_csv = tmp / "ours.csv", tmp / "theirs.csv"
    t_ours, m_ours, _ = timed([PY, SCRIPT, "export", "--experiment", exp_id, "--output", str(ours_csv)], env)
    theirs_code = (
        "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
        "df = mlflow.search_runs(experiment_ids=[sys.argv[2]]); df.to_csv(sys.argv[3], index=False)"
    )
    t_theirs, m_theirs, _ = timed([PY, "-c", theirs_code, uri, exp_id, str(theirs_csv)], env)
    raw_code = (
        "import requests,sys; r=requests.post(sys.argv[1]+'/api/2.0/mlflow/runs/search',"
        "json={'experiment_ids':[sys.argv[2]],'max_results':50000}); print(len(r.json()['runs']))"
    )
    t_raw, m_raw, raw_out = timed([PY, "-c", raw_code, uri, exp_id], env)
    ours_ids = {row["run_id"] for row in csv.DictReader(ours_csv.open())}
    theirs_ids = {row["run_id"] for row in csv.DictReader(theirs_csv.open())}
    same_rows = ours_ids == theirs_ids and len(ours_ids) == args.runs and int(raw_out) == args.runs

    # 3. run output size
    _, _, ours_run = timed([*uv, "run", run_id], env)
    _, _, theirs_run = timed([MLFLOW_CLI, "runs", "describe", "--run-id", run_id], env)

    print(f"\n### query_experiments.py vs MLflow ({args.runs} runs to export; medians of {args.repeat} for start-up)\n")
    print("| measure | ours | MLflow | ratio (ours/MLflow) | target |")
    print("|---|---|---|---|---|")
    print(
        f"| `experiments` wall time | {t_exp:.2f} s | {t_cli:.2f} s (`mlflow experiments search`) | "
        f"{t_exp / t_cli:.2f}x | <= 0.5x |"
    )
    print(
        f"| `runs --max-results 25` wall time | {t_runs:.2f} s | {t_cli:.2f} s (`mlflow experiments search`) | "
        f"{t_runs / t_cli:.2f}x | <= 0.5x |"
    )
    print(f"| Python + requests floor (one search, no uv) | {t_floor:.2f} s | | | |")
    print(
        f"| export {args.runs} runs, wall time | {t_ours:.2f} s | {t_theirs:.2f} s (`search_runs` + `to_csv`) | "
        f"{t_ours / t_theirs:.2f}x ({t_theirs / t_ours:.2f}x faster) | >= 1.5x faster |"
    )
    print(
        f"| export {args.runs} runs, peak RSS | {m_ours:.0f} MB | {m_theirs:.0f} MB | {m_ours / m_theirs:.2f}x | <= "
        f"0.5x |"
    )
    print(f"| raw REST floor: one search of 50,000/page | {t_raw:.2f} s, {m_raw:.0f} MB | | | |")
    print(f"| same rows (run ids) | {'yes' if same_rows else 'NO'} ({len(ours_ids)} vs {len(theirs_ids)}) | | | |")
    print(
        f"| `run` output characters | {len(ours_run)} | {len(theirs_run)} (`mlflow runs describe`) | "
        f"{len(ours_run) / len(theirs_run):.2f}x | <= 0.35x |"
    )
    return 0 if same_rows else 1


if __name__ == "__main__":
    sys.exit(main())
