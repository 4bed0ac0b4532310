"""Benchmark: log_backtest.py against a fresh-process QuantStats baseline.

Ten years of daily returns (2,520 bars, seeded), a local tracking server (sqlite, proxied
artifacts) started here. Medians of --repeat runs, each a fresh process:
- baseline: `python -c "import quantstats; quantstats.reports.metrics(r, mode='full', display=False)"`
  (r read from the same CSV);
- ours, `uv run scripts/log_backtest.py --no-history --no-tearsheet` (warm uv cache): target at
  most 1.6x the baseline; also through the project's Python directly (no uv start-up);
- ours with histories (equity_curve + drawdown, 5,040 points): cost per 1,000 points;
- ours with the tearsheet: cost per run.

Usage:
  cd /work/main && uv run python bench/bench_backtest.py [--repeat 3] [--bars 2520]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402
from _bench import median_time, timed  # noqa: E402

SCRIPT = ROOT / "scripts" / "log_backtest.py"
BASELINE = (
    "import sys\n"
    "import pandas as pd\n"
    "import quantstats\n"
    "f = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)\n"
    "r = f['returns']\n"
    "m = quantstats.reports.metrics(r, mode='full', display=False)\n"
    "print(len(m))\n"
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bars", type=int, default=2520)
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2015-01-02", periods=opts.bars)
    csv = tmp / "returns.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": rng.normal(0.0004, 0.01, len(days))}).to_csv(
        csv, index=False
    )

    server = conftest.start_server(tmp / "server")
    try:
        env = conftest.clean_env({"MLFLOW_TRACKING_URI": server.uri, "UV_PYTHON_DOWNLOADS": "never"})
        env["MLFLOW_SKILL_ENV_DIR"] = str(tmp)  # no .env files
        uv = shutil.which("uv") or "uv"
        # --force-new: every timed call logs a run (the same command again finds it and writes nothing)
        common = ["--returns", str(csv), "--experiment", "bench-backtest", "--force-new"]
        uv_ours = [uv, "run", "--quiet", str(SCRIPT), *common]
        py_ours = [sys.executable, str(SCRIPT), *common]
        timed(uv_ours + ["--no-history", "--no-tearsheet"], env)  # warm uv's cache for the script's environment
        timed([sys.executable, "-c", BASELINE, str(csv)], env)  # warm the OS file cache

        rows = []
        base, _ = median_time([sys.executable, "-c", BASELINE, str(csv)], env, opts.repeat, warm_up=False)
        lean_uv, _ = median_time(uv_ours + ["--no-history", "--no-tearsheet"], env, opts.repeat, warm_up=False)
        lean_py, out = median_time(
            py_ours + ["--no-history", "--no-tearsheet", "--format", "json"], env, opts.repeat, warm_up=False
        )
        logged = json.loads(out)
        hist, out = median_time(py_ours + ["--no-tearsheet", "--format", "json"], env, opts.repeat, warm_up=False)
        points = sum(json.loads(out)["histories"].values())
        sheet, _ = median_time(py_ours + ["--no-history"], env, opts.repeat, warm_up=False)
        again_cmd = [c for c in py_ours if c != "--force-new"] + ["--no-history", "--no-tearsheet", "--format", "json"]
        again, out = median_time(again_cmd, env, opts.repeat, warm_up=False)
        assert json.loads(out)["action"] == "already_logged", out[:300]

        rows.append(("QuantStats baseline: import + reports.metrics(full), fresh process", base, 1.0))
        rows.append(("`uv run scripts/log_backtest.py --no-history --no-tearsheet`", lean_uv, lean_uv / base))
        rows.append(("same, project Python (no uv start-up)", lean_py, lean_py / base))
        rows.append((f"with histories ({points:,} points)", hist, hist / base))
        rows.append(("with tearsheet (no histories)", sheet, sheet / base))
        rows.append(("same command again: already logged, nothing written (project Python)", again, again / base))
        print(
            f"\n{opts.bars:,} daily bars, {len(logged['metrics'])} metrics logged, median of {opts.repeat}, server "
            f"{server.uri}\n"
        )
        print("| command | wall s | vs baseline |")
        print("|---|---|---|")
        for name, seconds, ratio in rows:
            print(f"| {name} | {seconds:.2f} | {ratio:.2f}x |")
        per_k = (hist - lean_py) / (points / 1000)
        print()
        print(f"- scalar metrics+params+tags: {logged['requests'].get('scalars')} log-batch request(s)")
        print(
            f"- histories cost: {hist - lean_py:.2f} s for {points:,} points = {per_k:.2f} s per 1,000 points "
            f"({-(-points // 1000)} log-batch requests)"
        )
        print(f"- tearsheet cost: {sheet - lean_py:.2f} s per run")
        verdict = "PASS" if lean_uv / base <= 1.6 else "FAIL"
        print(f"- target uv run --no-history --no-tearsheet <= 1.6x baseline: {lean_uv / base:.2f}x {verdict}")
        return 0 if verdict == "PASS" else 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
