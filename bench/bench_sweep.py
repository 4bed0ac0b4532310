"""Benchmark: a sweep of N variants logged in one `log_backtest.py` call against N separate calls.

Ten years of daily bars (2,520), N moving-average-like variants (seeded) as columns of one file,
a local tracking server (sqlite, proxied artifacts) started here. Both sides log the same runs:
metrics, params, histories resampled to 250 points, returns/metrics/periods artifacts, no
tearsheet. The sweep also does what separate calls cannot: it reads the experiment's trial ledger,
computes PBO (CSCV, 16 blocks) and every child's DSR and MinTRL, logs `dsr` on each child and the
certificate on the parent (--oos-from holds bars out as well). Target: the sweep at most 0.3x the N
separate calls (exit 1 above it). One round (separate calls take minutes); pass --repeat for medians.

Usage:
  uv run python bench/bench_sweep.py [--variants 20] [--bars 2520] [--repeat 1] [--oos-from 0.8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import conftest  # noqa: E402
from _bench import timed  # noqa: E402

SCRIPT = ROOT / "scripts" / "log_backtest.py"


def write_sweep(folder: Path, variants: int, bars: int) -> Path:
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2015-01-02", periods=bars)
    market = rng.normal(0.0003, 0.011, bars)
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d")})
    for i in range(variants):
        held = rng.random(bars) < 0.4 + 0.4 * i / max(1, variants - 1)
        frame[f"v_{i}"] = np.where(held, market, 0.0)
    path = folder / "sweep.csv"
    frame.to_csv(path, index=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", type=int, default=20)
    parser.add_argument("--bars", type=int, default=2520)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--oos-from", help="hold out bars in the sweep (DATE or FRACTION), e.g. 0.8")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    csv = write_sweep(tmp, opts.variants, opts.bars)
    server = conftest.start_server(tmp / "server")
    try:
        env = conftest.clean_env({"MLFLOW_TRACKING_URI": server.uri, "UV_PYTHON_DOWNLOADS": "never"}, env_dir=tmp)
        uv = [conftest.UV, "run", "--quiet", str(SCRIPT)]
        timed([*uv, "--help"], env)  # warm uv's environment outside the timings
        sweeps, separates = [], []
        for round_no in range(opts.repeat):
            exp = f"bench-sweep-{round_no}"
            held_out = ["--oos-from", opts.oos_from] if opts.oos_from else []
            elapsed, _, out = timed(
                [*uv, "--returns", str(csv), "--columns", "v_*", "--experiment", exp, "--force-new", *held_out], env
            )
            sweeps.append(elapsed)
            assert "probability of backtest overfitting" in out, out[-2000:]
            total = 0.0
            for i in range(opts.variants):
                elapsed, _, _ = timed(
                    [
                        *uv,
                        "--returns",
                        str(csv),
                        "--column",
                        f"v_{i}",
                        "--experiment",
                        f"{exp}-separate",
                        "--history-points",
                        "250",
                        "--no-tearsheet",
                        "--force-new",
                    ],
                    env,
                )
                total += elapsed
            separates.append(total)
        sweep, separate = statistics.median(sweeps), statistics.median(separates)
        print("| measure | seconds | ratio | target |\n|---|---|---|---|")
        print(f"| sweep of {opts.variants} variants, one call | {sweep:.1f} | {sweep / separate:.2f}x | <= 0.3x |")
        print(f"| {opts.variants} separate calls | {separate:.1f} | 1 | |")
        print(f"| per variant in the sweep | {sweep / opts.variants:.2f} | | |")
    finally:
        server.stop()
    return 0 if sweep / separate <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
