"""What a newcomer pays on first use: every script's first `uv run` on an empty uv cache.

Usage (one command; downloads from PyPI, takes minutes):
  python bench/bench_cold_start.py                  # reference + all nine first calls + warm calls
  python bench/bench_cold_start.py --no-reference   # skip the one-environment reference
  python bench/bench_cold_start.py --scripts DIR    # measure a copy of scripts/ (other PEP 723 headers)
  python bench/bench_cold_start.py --first query_experiments.py --no-reference   # another first script

Measures, each on its own empty UV_CACHE_DIR in a temp folder (nothing shared with ~/.cache/uv):
  1. reference: the heaviest script's first call alone (log_backtest.py --dry-run: one environment
     built from nothing, downloads included);
  2. all nine scripts' first calls one after another, as a newcomer makes them (log_backtest first
     unless --first says otherwise), total and per script; then each script's second call (warm).
Every call runs in a fresh working folder with nothing configured (the embedded ./mlflow.db), so
each first call also imports what the embedded store needs. Targets (issue 14): total <= 1.5x the
reference; each first call after another script's <= 5 s; warm calls no slower than before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UV = shutil.which("uv") or "uv"


def calls(work: Path) -> list[tuple[str, list[str], tuple[int, ...]]]:
    """(script, args, accepted exit codes): one realistic first call per script."""
    returns = work / "returns.csv"
    return [
        ("log_backtest.py", ["--returns", str(returns), "--run-name", "cold", "--no-tearsheet"], (0,)),
        ("query_experiments.py", ["experiments"], (0,)),
        ("create_experiment.py", ["--name", "cold-start"], (0,)),
        ("get_metric_history.py", ["--run-id", "@RUN", "--metrics", "equity_curve"], (0,)),
        ("search_traces.py", ["--experiment", "cold-start"], (0,)),
        ("get_trace.py", ["--trace-id", "tr-0123456789abcdef0123456789abcdef"], (0, 3)),  # no such trace: exit 3
        ("tag_runs.py", ["--run-id", "@RUN", "--set", "reviewed=yes"], (0,)),
        ("promote_model.py", ["--model", "cold-start", "--run-id", "@RUN", "--alias", "champion"], (0,)),
        (
            "log_feedback.py",
            ["--trace-id", "tr-0123456789abcdef0123456789abcdef", "--name", "ok", "--value", "no"],
            (3,),
        ),
    ]


def write_returns(path: Path) -> None:
    """300 weekday returns: a smooth made-up series (the values do not matter here)."""
    import datetime as dt
    import math

    day, lines = dt.date(2023, 1, 2), ["date,returns"]
    while len(lines) <= 300:
        if day.weekday() < 5:
            lines.append(f"{day.isoformat()},{0.01 * math.sin(len(lines) / 7):.6f}")
        day += dt.timedelta(days=1)
    path.write_text("\n".join(lines) + "\n")


def env_for(cache: Path, envdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_", "UV_", "VIRTUAL_ENV"))}
    env.update(UV_CACHE_DIR=str(cache), UV_PYTHON_DOWNLOADS="never", MLFLOW_SKILL_ENV_DIR=str(envdir))
    return env


def run(
    scripts: Path, name: str, args: list[str], ok: tuple[int, ...], env: dict, cwd: Path
) -> tuple[float, float, str]:
    """(wall s, CPU s of uv and everything it started, output). CPU time is the figure to
    compare on a loaded machine: wall time there measures the other processes too."""
    out = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [UV, "run", "--quiet", str(scripts / name), *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out.seek(0)
    text = out.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise RuntimeError(f"{name} {' '.join(args)} exited {code}: {text[-1500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, text


def fresh(tmp: Path, label: str) -> tuple[Path, Path, dict]:
    cache, work, envdir = tmp / f"cache-{label}", tmp / f"work-{label}", tmp / f"envdir-{label}"
    for d in (cache, work, envdir):
        d.mkdir(parents=True)
    write_returns(work / "returns.csv")
    return cache, work, env_for(cache, envdir)


def size_mb(path: Path) -> float:
    """Disk used, each hard-linked file once (uv links environments to its cache)."""
    seen, total = set(), 0
    for f in path.rglob("*"):
        if f.is_file() and not f.is_symlink():
            st = f.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scripts", type=Path, default=ROOT / "scripts", help="folder of the scripts")
    ap.add_argument("--no-reference", action="store_true", help="skip the one-environment reference")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--first", default="log_backtest.py", help="the script a newcomer calls first (default log_backtest.py)"
    )
    args = ap.parse_args()
    scripts = args.scripts.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    result: dict = {"scripts": str(scripts), "load_before": os.getloadavg()[0]}
    try:
        if not args.no_reference:
            cache, work, env = fresh(tmp, "ref")
            name, cargs, ok = calls(work)[0]
            result["reference_s"], result["reference_cpu_s"], _ = run(scripts, name, cargs, ok, env, work)
            print(
                f"reference: {name} first call alone on an empty cache: {result['reference_s']:.1f} s "
                f"(CPU {result['reference_cpu_s']:.1f} s)",
                flush=True,
            )
        cache, work, env = fresh(tmp, "all")
        first, first_cpu, warm, warm_cpu, run_id = {}, {}, {}, {}, None
        order = sorted(
            calls(work), key=lambda call: call[0] != args.first
        )  # log_backtest stays before get_metric_history
        for name, cargs, ok in order:
            cargs = [run_id if a == "@RUN" else a for a in cargs]
            first[name], first_cpu[name], out = run(scripts, name, cargs, ok, env, work)
            if name == "log_backtest.py":
                run_id = _run_id(out)
            print(f"first call {name}: {first[name]:.1f} s (CPU {first_cpu[name]:.1f} s)", flush=True)
        for name, cargs, ok in order:
            cargs = [run_id if a == "@RUN" else a for a in cargs]
            if name == "log_backtest.py":
                cargs = [*cargs[:-1], "--dry-run", "--no-tearsheet"]
            warm[name], warm_cpu[name], _ = run(scripts, name, cargs, ok, env, work)
        result.update(
            first_s=first,
            first_cpu_s=first_cpu,
            warm_s=warm,
            warm_cpu_s=warm_cpu,
            total_first_s=sum(first.values()),
            total_first_cpu_s=sum(first_cpu.values()),
            cache_mb=round(size_mb(cache)),
            environments=sorted(p.name for p in (cache / "environments-v2").iterdir()),
        )
    finally:
        result["load_after"] = os.getloadavg()[0]
        shutil.rmtree(tmp, ignore_errors=True)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _run_id(out: str) -> str:
    import re

    found = re.findall(r"\b[0-9a-f]{32}\b", out)
    if not found:
        raise RuntimeError(f"log_backtest printed no run id:\n{out[-1500:]}")
    return found[0]


def report(r: dict) -> None:
    first, cpu, warm, wcpu = r["first_s"], r["first_cpu_s"], r["warm_s"], r["warm_cpu_s"]
    later = [k for k in first if k != next(iter(first))]
    print("\n| script | first call: wall s | CPU s | second call: wall s | CPU s |\n|---|---|---|---|---|")
    for name in first:
        print(f"| {name} | {first[name]:.1f} | {cpu[name]:.1f} | {warm[name]:.2f} | {wcpu[name]:.2f} |")
    print(
        f"| **all {len(first)}** | **{r['total_first_s']:.1f}** | **{r['total_first_cpu_s']:.1f}** | "
        f"{sum(warm.values()):.1f} | {sum(wcpu.values()):.1f} |"
    )
    if "reference_s" in r:
        print(
            f"\nreference (heaviest script alone, one environment): {r['reference_s']:.1f} s wall, "
            f"{r['reference_cpu_s']:.1f} s CPU; all {len(first)} / reference = "
            f"{r['total_first_s'] / r['reference_s']:.2f}x "
            f"wall, "
            f"{r['total_first_cpu_s'] / r['reference_cpu_s']:.2f}x CPU (target <= 1.5x)"
        )
    light = [k for k in later if k != "log_backtest.py"]
    print(
        f"slowest first call after another script's: {max(first[k] for k in light):.1f} s wall, "
        f"{max(cpu[k] for k in light):.1f} s CPU (target <= 5 s)"
    )
    if "log_backtest.py" in later:
        print(
            f"log_backtest.py after another script (adds QuantStats, pandas, SciPy, matplotlib): "
            f"{first['log_backtest.py']:.1f} s wall"
        )
    print(
        f"uv cache after: {r['cache_mb']} MB, {len(r['environments'])} environments; "
        f"load average {r['load_before']:.1f} before, {r['load_after']:.1f} after (2 cores)"
    )


if __name__ == "__main__":
    sys.exit(main())
