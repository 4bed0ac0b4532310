"""log_backtest.py killed at random points (SIGKILL, SIGTERM, SIGINT, a killed `uv run`): every
kill leaves either a complete FINISHED run, or one that `query_experiments.py failed` lists
(FAILED with the reason, or RUNNING and stale), and re-running the same command completes that
run without a duplicate (issue 11).

The script runs as a real subprocess (the project's Python, so a trial costs seconds, not a uv
start-up) against the `server` fixture; 3,000 daily bars make 6 history batches, so a kill soon
after the run appears lands in the middle of the logging. Checks use MLflow's own client.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SCRIPTS, UV, clean_env, unique

pytestmark = pytest.mark.slow  # kills: SIGTERM, SIGINT and SIGKILL at random moments of real writes

SCRIPT = "log_backtest"
BARS = 3000


@pytest.fixture(scope="module")
def returns_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kill-data")
    days = pd.bdate_range("2012-01-02", periods=BARS)
    rng = np.random.default_rng(17)
    path = folder / "r.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": rng.normal(0.0004, 0.01, BARS)}).to_csv(
        path, index=False
    )
    return path


def script_env(server, empty_env_dir) -> dict[str, str]:
    env = clean_env(env_dir=empty_env_dir)
    env["MLFLOW_TRACKING_URI"] = server.uri
    return env


def wait_for_run(client, exp_id: str, proc: subprocess.Popen, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = client.search_runs([exp_id])
        if runs:
            return runs[0]
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    raise AssertionError("the run never appeared")


def failed_listing(run_script, experiment: str) -> dict[str, dict]:
    """query_experiments.py failed --stale 1s: run id -> row."""
    res = run_script("query_experiments", "failed", "--experiment", experiment, "--stale", "1s", "--format", "json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)["runs"]
    return {row["run_id"]: row for row in rows}


def assert_complete(client, run_id: str) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED", run.info.status
    assert "backtest.incomplete" not in run.data.tags and "backtest.error" not in run.data.tags
    assert len([k for k in run.data.metrics if k not in ("equity_curve", "drawdown")]) >= 70
    for key in ("equity_curve", "drawdown"):
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert steps == list(range(BARS)), f"{key}: {len(steps)} points"
    assert {a.path for a in client.list_artifacts(run_id, "backtest")} == {
        "backtest/returns.csv",
        "backtest/metrics.json",
        "backtest/periods.json",
    }


def check_after_kill(client, run_script, exp: str, exp_id: str, sig: int, rc: int) -> str:
    """What a kill left; asserts it is complete or listed by `failed`. Returns the outcome."""
    runs = client.search_runs([exp_id])
    assert len(runs) <= 1, [r.info.run_id for r in runs]
    if sig == signal.SIGTERM and rc != 0:
        assert rc in (143, -signal.SIGTERM), rc  # -15: killed before Python installed its handler
    if not runs:
        return "no run yet"
    run = runs[0]
    if run.info.status == "FINISHED":
        assert_complete(client, run.info.run_id)
        return "finished"
    assert rc != 0, "exit 0 but the run is not FINISHED"
    if sig == signal.SIGTERM:
        assert rc == 143
        assert run.info.status == "FAILED"
        assert re.search(r"interrupted by SIGTERM after \d+ of \d+ steps", run.data.tags["backtest.error"])
    else:
        assert run.info.status == "RUNNING"
    deadline = time.time() + 15  # listed once its writer is gone, or after --stale 1s without a write
    while run.info.run_id not in (listed := failed_listing(run_script, exp)) and time.time() < deadline:
        time.sleep(0.2)
    assert run.info.run_id in listed, listed
    return run.info.status.lower()


def test_ten_random_kills_leave_complete_or_listed_runs_and_rerun_completes(
    server, empty_env_dir, client, run_script, returns_file
):
    rng = random.Random(20261124)
    args = ["--returns", str(returns_file), "--no-tearsheet"]
    outcomes = []
    for trial in range(10):
        exp = unique(f"kill{trial}")
        exp_id = client.create_experiment(exp)
        sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGTERM
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / f"{SCRIPT}.py"), *args, "--experiment", exp],
            env=script_env(server, empty_env_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            if trial < 2:  # anywhere from start-up on
                time.sleep(rng.uniform(0.2, 2.0))
            else:  # somewhere in the logging
                wait_for_run(client, exp_id, proc)
                time.sleep(rng.uniform(0.0, 0.8))
            proc.send_signal(sig)  # a no-op when it has just exited (then exit 0 and a FINISHED run)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        outcome = check_after_kill(client, run_script, exp, exp_id, sig, proc.returncode)
        if sig == signal.SIGTERM and proc.returncode == 143:
            assert "interrupted by SIGTERM" in err and "Traceback" not in err
        again = run_script(SCRIPT, *args, "--experiment", exp)
        assert again.code == 0, again.err
        runs = client.search_runs([exp_id])
        assert len(runs) == 1, f"trial {trial} ({outcome}): {len(runs)} runs"
        assert_complete(client, runs[0].info.run_id)
        if outcome == "finished":
            assert "Already logged" in again.out
        elif outcome != "no run yet":
            assert "completed an earlier run" in again.out
        outcomes.append((signal.Signals(sig).name, outcome))
    print("kill outcomes:", outcomes)
    interrupted = [o for o in outcomes if o[1] in ("running", "failed")]
    assert len(interrupted) >= 3, outcomes  # the kills did land in the middle of logging


def test_sigint_marks_failed_and_exits_130(server, empty_env_dir, client, returns_file):
    exp = unique("sigint")
    exp_id = client.create_experiment(exp)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPTS / f"{SCRIPT}.py"),
            "--returns",
            str(returns_file),
            "--no-tearsheet",
            "--experiment",
            exp,
        ],
        env=script_env(server, empty_env_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = wait_for_run(client, exp_id, proc)
    assert run is not None
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    run = client.get_run(run.info.run_id)
    if run.info.status == "FINISHED":
        pytest.skip("the run finished before SIGINT arrived")
    assert proc.returncode == 130
    assert run.info.status == "FAILED"
    assert re.search(r"interrupted by SIGINT after \d+ of \d+ steps", run.data.tags["backtest.error"])
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 1


def children_of(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        kids += [int(x) for x in text.split()]
    return kids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_sigkill_to_uv_run_stops_the_python_child(server, empty_env_dir, client, returns_file):
    """SIGKILL to `uv run` does not reach its Python child; the script notices its parent is gone,
    stops itself with SIGTERM and marks the run FAILED, instead of logging on unseen."""
    exp = unique("uvkill")
    exp_id = client.create_experiment(exp)
    env = script_env(server, empty_env_dir)
    env.update(UV_PYTHON_DOWNLOADS="never")
    uv = subprocess.Popen(
        [
            UV,
            "run",
            "--quiet",
            str(SCRIPTS / f"{SCRIPT}.py"),
            "--returns",
            str(returns_file),
            "--no-tearsheet",
            "--experiment",
            exp,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = wait_for_run(client, exp_id, uv, timeout=300)  # the first uv run may install the environment
        assert run is not None
        kids = children_of(uv.pid)
        assert kids, "uv run has no child process"
        os.kill(uv.pid, signal.SIGKILL)
        uv.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(alive(k) for k in kids):
            time.sleep(0.1)
        assert not any(alive(k) for k in kids), "the script kept running after uv run was killed"
    finally:
        with_group = uv.pid
        if uv.poll() is None:
            os.killpg(with_group, signal.SIGKILL)
    run = client.get_run(run.info.run_id)
    if run.info.status == "FINISHED":
        pytest.skip("the run finished before uv run was killed")
    assert run.info.status == "FAILED"
    assert "interrupted by SIGTERM (its parent process" in run.data.tags["backtest.error"]
