"""Benchmark: the probability of backtest overfitting (CSCV, 16 blocks: 12,870 splits) on 100 variants
x 1,250 bars, in process (quant/pbo.py) and inside a `log_backtest.py --dry-run` sweep of the same
shape (reading the file, QuantStats metrics for 100 variants, PBO, MinTRL, the ranking). Target: PBO
under 10 s. No server: a dry run writes nothing.

Usage:
  uv run python bench/bench_pbo.py [--variants 100] [--bars 1250] [--blocks 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))
from mlflow_skill.quant import pbo  # noqa: E402

import conftest  # noqa: E402
from _bench import timed  # noqa: E402

TARGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--bars", type=int, default=1250)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    rng = np.random.default_rng(5)
    matrix = rng.normal(0.0003, 0.01, (opts.bars, opts.variants)) + np.linspace(0, 0.0004, opts.variants)
    times = []
    for _ in range(opts.repeat):
        start = time.perf_counter()
        result = pbo.cscv(matrix, opts.blocks)
        times.append(time.perf_counter() - start)
    in_process = statistics.median(times)
    tmp = Path(tempfile.mkdtemp(prefix="bench-pbo-"))
    days = pd.bdate_range("2019-01-02", periods=opts.bars)
    frame = pd.DataFrame(matrix, columns=[f"v_{i}" for i in range(opts.variants)])
    frame.insert(0, "date", days.strftime("%Y-%m-%d"))
    csv = tmp / "sweep.csv"
    frame.to_csv(csv, index=False)
    env = conftest.clean_env({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/unused.db"}, env_dir=tmp)
    cmd = [conftest.UV, "run", "--quiet", str(ROOT / "scripts" / "log_backtest.py"), "--returns", str(csv)]
    cmd += ["--columns", "v_*", "--dry-run", "--format", "json", "--pbo-blocks", str(opts.blocks)]
    elapsed, _, out = timed(cmd, env)
    answer = json.loads(out)["pbo"]
    print("| measure | seconds | target |\n|---|---|---|")
    print(
        f"| PBO, {opts.variants} variants x {opts.bars} bars, {result.splits:,} splits (in process, median of "
        f"{opts.repeat}) | {in_process:.2f} | < {TARGET_S:g} |"
    )
    print(f"| the whole `log_backtest.py --dry-run` sweep of that shape (PBO {answer['pbo']:.3f}) | {elapsed:.1f} | |")
    return 0 if in_process < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
