"""Hostile conditions that need real processes (issue 22): a log_backtest writer killed by
SIGKILL is listed by `failed` at once; two identical log_backtest commands started together end
with documented codes (0, or 10 for the one that finds the other writing); and a 1 GiB gzip bomb
costs what the answer cap allows, measured as the peak memory of a real script process.

The scripts run as `python scripts/<name>.py` with the project's Python (a uv start-up per call
would cost more than the test), so the pid in a run's writer tag is the process the test kills.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hostile import API, Hostile, bomb_route

from conftest import SCRIPTS, clean_env, unique


@pytest.fixture(scope="module")
def long_returns(tmp_path_factory) -> Path:
    """3,000 daily bars: enough history batches that a writer is still at work a few seconds in."""
    days = pd.bdate_range("2012-01-02", periods=3000)
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("hostile-data") / "r.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": rng.normal(0.0004, 0.01, 3000)}).to_csv(
        path, index=False
    )
    return path


def start_script(name: str, args: list, uri: str, env_dir: Path) -> subprocess.Popen:
    env = clean_env(env_dir=env_dir)
    env["MLFLOW_TRACKING_URI"] = uri
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / f"{name}.py"), *[str(a) for a in args]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_runs(client, exp_id: str, count: int, procs: list[subprocess.Popen], timeout: float = 120.0) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = client.search_runs([exp_id])
        if len(runs) >= count or all(p.poll() is not None for p in procs):
            return runs
        time.sleep(0.05)
    raise AssertionError("no run appeared")


# ---------------------------------------------------------------------------------------------
# 8. A killed writer on this host is listed by `failed` at once (not after --stale, 1 h)
# ---------------------------------------------------------------------------------------------
def test_sigkilled_writer_is_listed_by_failed_at_once(server, client, run_script, empty_env_dir, long_returns):
    exp = unique("killed")
    exp_id = client.create_experiment(exp)
    proc = start_script("log_backtest", ["--returns", long_returns, "--experiment", exp], server.uri, empty_env_dir)
    runs = wait_for_runs(client, exp_id, 1, [proc])
    assert runs and proc.poll() is None, "the writer ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "RUNNING"
    assert f"pid={proc.pid}" in run.data.tags["backtest.writer"]
    start = time.monotonic()
    res = run_script("query_experiments", "failed", "-e", exp, "--format", "json")  # default --stale: 1 h
    assert res.code == 0, res.err
    listed = {row["run_id"]: row for row in json.loads(res.out)["runs"]}
    assert run.info.run_id in listed, res.out
    assert listed[run.info.run_id]["abandoned"] == "writer gone"
    assert time.monotonic() - start < 10
    health = run_script("query_experiments", "health", "-e", exp, "--format", "json")
    assert health.code == 0, health.err
    assert run.info.run_id in health.out


# ---------------------------------------------------------------------------------------------
# 7. Two identical log_backtest commands at once: documented codes, never exit 1
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # a 3,000-bar backtest logged to the end: about 25 s
def test_second_identical_writer_gets_exit_10_while_the_first_writes(
    server, client, empty_env_dir, long_returns, run_script
):
    exp = unique("twins")
    exp_id = client.create_experiment(exp)
    args = ["--returns", long_returns, "--experiment", exp]
    first = start_script("log_backtest", args, server.uri, empty_env_dir)
    wait_for_runs(client, exp_id, 1, [first])
    assert first.poll() is None, "the first writer ended before the second started"
    res = run_script("log_backtest", *args)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert res.code == 10, res.err
    assert "is being logged right now" in res.err and "--force-new" in res.err
    assert "Traceback" not in res.err


@pytest.mark.slow
def test_identical_writers_started_together_never_exit_1(server, client, empty_env_dir, long_returns):
    exp = unique("twins-together")
    exp_id = client.create_experiment(exp)
    args = ["--returns", long_returns, "--experiment", exp]
    procs = [start_script("log_backtest", args, server.uri, empty_env_dir) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert set(codes) <= {0, 10}, results
    for _, err in results:
        assert "Traceback" not in err and "unexpected" not in err, err
    finished = [r for r in client.search_runs([exp_id]) if r.info.status == "FINISHED"]
    assert finished, "neither writer finished"


# ---------------------------------------------------------------------------------------------
# 1. The 1 GiB gzip bomb, measured: peak memory of the script process and its time
# ---------------------------------------------------------------------------------------------
def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, seconds, peak RSS in MB of that child alone, from a fresh fork's rusage)."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(f'{p.returncode}\\n{time.monotonic() - start}\\n'"
        "f'{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n' + p.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, env=env, timeout=300)
    code, seconds, rss_kb, *err = done.stdout.split("\n")
    result = subprocess.CompletedProcess(cmd, int(code), "", "\n".join(err))
    return result, float(seconds), int(rss_kb) / 1024


@pytest.mark.slow
def test_one_gib_gzip_bomb_costs_what_the_cap_allows(empty_env_dir):
    srv = Hostile({f"{API}/experiments/search": bomb_route(1024)})
    try:
        env = clean_env(env_dir=empty_env_dir)
        env["MLFLOW_TRACKING_URI"] = srv.uri
        cmd = [sys.executable, str(SCRIPTS / "query_experiments.py"), "experiments"]
        res, seconds, peak_mb = run_measured(cmd, env)
    finally:
        srv.close()
    print(f"1 GiB gzip bomb: exit {res.returncode}, {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")
    assert res.returncode == 6, res.stderr
    assert "sent more than 256 MiB" in res.stderr
    assert peak_mb < 700 and seconds < 30
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < 4000  # the test itself stayed small
