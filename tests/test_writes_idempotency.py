"""Writes that are never doubled or lost (issue 11): log_backtest.py's fingerprint, retries that
cannot create a second run, failed and abandoned runs completed by re-running, experiment names
that are refused when they look like a typo, and inputs too big to log in full.

Everything goes through the script's main() against the real `server` fixture, with the fault
proxy (tests/faultproxy.py) in front of it where a fault is needed. Expected values come from
MLflow's own client and numpy, never from the script's output.
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pandas as pd
import pytest

from mlflow_skill.backtest import periods

from conftest import unique
from reliability import assert_clean_error, error_lines

SCRIPT = "log_backtest"
FAST = ("--no-tearsheet",)
WRITES = ("/runs/create", "/runs/log-batch", "/runs/update", "/runs/set-tag", "/runs/delete-tag", "/experiments/create")


@pytest.fixture(scope="module")
def returns_file(tmp_path_factory):
    """120 daily bars, seeded."""
    folder = tmp_path_factory.mktemp("writes-data")
    days = pd.bdate_range("2023-01-02", periods=120)
    rng = np.random.default_rng(11)
    path = folder / "r.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": rng.normal(0.0006, 0.01, len(days))}).to_csv(
        path, index=False
    )
    return path


def runs_in(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    return client.search_runs([exp.experiment_id])


def assert_complete(client, run, bars: int, history: bool = True) -> None:
    """FINISHED, no error or incomplete tag, every scalar metric, each history point once."""
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED", run.info.status
    assert "backtest.incomplete" not in run.data.tags and "backtest.error" not in run.data.tags, run.data.tags
    assert len([k for k in run.data.metrics if k not in ("equity_curve", "drawdown")]) >= 70
    if history:
        for key in ("equity_curve", "drawdown"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(bars)), f"{key}: {len(steps)} points for {bars} bars"


def write_posts(proxy) -> list[tuple[str, str, int]]:
    return [r for r in proxy.requests if r[0] == "POST" and any(r[1].endswith(w) for w in WRITES)]


# ---------------------------------------------------------------------------------------------
# The same command twice
# ---------------------------------------------------------------------------------------------
def test_same_command_twice_yields_one_run_and_writes_nothing(run_script, via_proxy, client, returns_file):
    exp = unique("idem")
    args = ("--returns", returns_file, "--experiment", exp, "--param", "fast=20", *FAST)
    first = run_script(SCRIPT, *args, uri=via_proxy.uri)
    assert first.code == 0, first.err
    via_proxy.reset()
    second = run_script(SCRIPT, *args, "--format", "json", uri=via_proxy.uri)
    assert second.code == 0, second.err
    runs = runs_in(client, exp)
    assert len(runs) == 1
    out = json.loads(second.out)
    assert out["action"] == "already_logged" and out["run_id"] == runs[0].info.run_id
    assert write_posts(via_proxy) == [], write_posts(via_proxy)  # looked up, wrote nothing
    md = run_script(SCRIPT, *args)
    assert f"Already logged: run **{runs[0].info.run_name}** (id {runs[0].info.run_id})" in md.out
    assert runs[0].data.tags["backtest.fingerprint"] == out["fingerprint"]


def test_changed_param_or_force_new_logs_another_run(run_script, client, returns_file):
    exp = unique("idem2")
    base = ("--returns", returns_file, "--experiment", exp, "--no-history", *FAST)
    assert run_script(SCRIPT, *base, "--param", "fast=20").code == 0
    assert run_script(SCRIPT, *base, "--param", "fast=30").code == 0  # another backtest
    assert len(runs_in(client, exp)) == 2
    res = run_script(SCRIPT, *base, "--param", "fast=20", "--force-new")
    assert res.code == 0 and "Logged run" in res.out
    runs = runs_in(client, exp)
    assert len(runs) == 3
    assert sorted(r.data.params["fast"] for r in runs) == ["20", "20", "30"]


# ---------------------------------------------------------------------------------------------
# Lost answers to runs/create never make two runs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [502, 504, 0], ids=["502", "504", "dropped"])
def test_lost_create_answer_never_doubles(run_script, via_proxy, client, returns_file, status):
    exp = unique(f"lost{status}")
    client.create_experiment(exp)
    via_proxy.reset("after_upstream", fault_path="/runs/create", fault_count=1, status=status)
    res = run_script(SCRIPT, "--returns", returns_file, "--experiment", exp, *FAST, uri=via_proxy.uri)
    assert res.code == 0, res.err
    creates = [r for r in via_proxy.requests if r[1].endswith("/runs/create")]
    assert creates == [("POST", "/api/2.0/mlflow/runs/create", status)]  # sent once, answer lost
    runs = runs_in(client, exp)
    assert len(runs) == 1
    assert_complete(client, runs[0], 120)
    assert "answer to runs/create was lost" in res.out


def test_slow_create_past_timeout_is_found_and_used(run_script, via_proxy, client, returns_file):
    exp = unique("slowcreate")
    client.create_experiment(exp)
    via_proxy.reset("path_slow", fault_path="/runs/create", delay=2.5)
    res = run_script(
        SCRIPT,
        "--returns",
        returns_file,
        "--experiment",
        exp,
        "--no-history",
        *FAST,
        "--timeout",
        "1",
        uri=via_proxy.uri,
    )
    assert res.code == 0, res.err
    runs = runs_in(client, exp)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_create_that_never_answers_names_the_orphan_and_rerun_completes_it(run_script, via_proxy, client, returns_file):
    """runs/create reaches the server only after the script gave up waiting: exit 4 naming the
    request id tag and the fix; the orphan is visibly incomplete; re-running completes it."""
    exp = unique("orphan")
    client.create_experiment(exp)
    via_proxy.reset("path_slow", fault_path="/runs/create", delay=7.0)
    args = ("--returns", returns_file, "--experiment", exp, "--no-history", *FAST)
    res = run_script(SCRIPT, *args, "--timeout", "1", uri=via_proxy.uri)
    assert_clean_error(res, 4, "backtest.request_id=", "re-run the same command")
    deadline = time.time() + 30  # the delayed create reaches the server about 7 s after it was sent
    while not (orphan := runs_in(client, exp)) and time.time() < deadline:
        time.sleep(0.1)
    assert len(orphan) == 1 and orphan[0].info.status == "RUNNING"
    assert "backtest.incomplete" in orphan[0].data.tags
    via_proxy.reset()
    again = run_script(SCRIPT, *args, uri=via_proxy.uri)
    assert again.code == 0, again.err
    runs = runs_in(client, exp)
    assert [r.info.run_id for r in runs] == [orphan[0].info.run_id]
    assert_complete(client, runs[0], 120, history=False)
    assert "completed an earlier run" in again.out


# ---------------------------------------------------------------------------------------------
# A failing history log-batch: FAILED with the reason; the message tells what was written
# ---------------------------------------------------------------------------------------------
def test_history_log_batch_500s_fail_the_run_with_reason_then_rerun_completes(
    run_script, via_proxy, client, returns_file
):
    exp = unique("histfail")
    client.create_experiment(exp)
    # the first log-batch (scalars, params, tags) passes; every history batch answers 500
    via_proxy.reset("path_status", fault_path="/runs/log-batch", fault_skip=1, fault_count=100, status=500)
    args = ("--returns", returns_file, "--experiment", exp, *FAST)
    res = run_script(SCRIPT, *args, uri=via_proxy.uri)
    rolling = 120 - periods.rolling_window(252, 120) + 1  # rolling Sharpe and volatility: NaN until the window is full
    points = 2 * 120 + 2 * rolling  # equity and drawdown every bar, then the two rolling curves
    assert_clean_error(
        res, 6, "marked FAILED (reason in tag backtest.error)", f"0 of {points} history points", "no artifacts"
    )
    run = runs_in(client, exp)[0]
    assert run.info.status == "FAILED"
    assert "500" in run.data.tags["backtest.error"]
    assert "histories" in run.data.tags["backtest.incomplete"]
    assert len(run.data.metrics) >= 70 and client.get_metric_history(run.info.run_id, "equity_curve") == []
    via_proxy.reset()
    again = run_script(SCRIPT, *args, uri=via_proxy.uri)
    assert again.code == 0, again.err
    runs = runs_in(client, exp)
    assert len(runs) == 1 and runs[0].info.run_id == run.info.run_id
    assert_complete(client, runs[0], 120)
    assert "it was FAILED" in again.out


def test_error_tag_unwritable_is_said(run_script, via_proxy, client, returns_file):
    """set-tag keeps failing (the reason cannot be stored), runs/update works: the run is FAILED
    and the message says the reason tag could not be written, instead of claiming it."""
    exp = unique("notag")
    client.create_experiment(exp)
    via_proxy.reset("path_status", fault_path="/runs/set-tag", fault_count=100, status=500)
    res = run_script(SCRIPT, "--returns", returns_file, "--experiment", exp, "--no-history", *FAST, uri=via_proxy.uri)
    assert_clean_error(res, 6, "marked FAILED (the reason tag backtest.error could not be written)")
    run = runs_in(client, exp)[0]
    assert run.info.status == "FAILED" and "backtest.error" not in run.data.tags


# ---------------------------------------------------------------------------------------------
# Abandoned RUNNING runs
# ---------------------------------------------------------------------------------------------
def fingerprint_of(run_script, args) -> str:
    res = run_script(SCRIPT, *args, "--dry-run", "--format", "json")
    assert res.code == 0, res.err
    return json.loads(res.out)["fingerprint"]


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "writer,age_s,completes",
    [("here-dead", 0, True), ("elsewhere", 7200, True), ("elsewhere", 0, False)],
    ids=["dead-local-process", "stale-remote", "live-remote"],
)
def test_running_run_with_same_fingerprint(run_script, client, returns_file, writer, age_s, completes):
    exp = unique("stuck")
    exp_id = client.create_experiment(exp)
    args = ("--returns", returns_file, "--experiment", exp, "--no-history", *FAST)
    fp = fingerprint_of(run_script, args)
    who = f"host={socket.gethostname()} pid={dead_pid()}" if writer == "here-dead" else "host=other-box pid=1"
    start = int((time.time() - age_s) * 1000)
    stuck = client.create_run(
        exp_id,
        start_time=start,
        tags={"backtest.fingerprint": fp, "backtest.writer": who, "backtest.incomplete": "missing: metrics"},
    )
    res = run_script(SCRIPT, *args)
    runs = runs_in(client, exp)
    assert len(runs) == 1 and runs[0].info.run_id == stuck.info.run_id
    if completes:
        assert res.code == 0, res.err
        assert_complete(client, runs[0], 120, history=False)
        assert "it was RUNNING, left by a process that is gone" in res.out
    else:
        assert_clean_error(res, 10, "being logged right now", "--force-new")
        assert runs[0].info.status == "RUNNING"


# ---------------------------------------------------------------------------------------------
# Experiment resolution
# ---------------------------------------------------------------------------------------------
def test_near_miss_experiment_name_is_refused_with_candidates(run_script, client, returns_file):
    suffix = unique("x").split("-")[1]
    real = f"crypto-bt-{suffix}"
    client.create_experiment(real)
    for typo in (f"cryptobt{suffix}", f"Crypto-BT-{suffix}", f"crypto-bx-{suffix}"):
        res = run_script(SCRIPT, "--returns", returns_file, "--experiment", typo, "--no-history", *FAST)
        assert_clean_error(res, 3, repr(real), "--create-experiment")
        assert client.get_experiment_by_name(typo) is None
    typo = f"cryptobt{suffix}"
    res = run_script(
        SCRIPT, "--returns", returns_file, "--experiment", typo, "--create-experiment", "--no-history", *FAST
    )
    assert res.code == 0, res.err
    assert client.get_experiment_by_name(typo) is not None
    assert f"experiment **{typo}** created by this call" in res.out


def test_new_experiment_creation_is_said_and_deleted_names_restore_command(run_script, client, returns_file):
    fresh = unique("brand-new-study")
    res = run_script(
        SCRIPT, "--returns", returns_file, "--experiment", fresh, "--no-history", *FAST, "--format", "json"
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["experiment_status"] == "created"
    gone = unique("gone")
    client.delete_experiment(client.create_experiment(gone))
    res = run_script(SCRIPT, "--returns", returns_file, "--experiment", gone, "--no-history", *FAST)
    assert_clean_error(res, 2, f"uv run scripts/create_experiment.py --name {gone} --restore")
    assert "pass --restore" not in res.err


# ---------------------------------------------------------------------------------------------
# Big inputs
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minute_bars(tmp_path_factory):
    """1,000,000 one-minute bars (about 694 days, 24/7), seeded."""
    path = tmp_path_factory.mktemp("big") / "minutes.csv"
    stamps = pd.date_range("2023-01-01", periods=1_000_000, freq="min")
    rng = np.random.default_rng(5)
    pd.DataFrame({"time": stamps.strftime("%Y-%m-%dT%H:%M"), "r": rng.normal(0, 0.0004, len(stamps))}).to_csv(
        path, index=False
    )
    return path


def test_million_minute_bars_say_so_before_starting(run_script, client, minute_bars):
    exp = unique("big")
    start = time.time()
    res = run_script(SCRIPT, "--returns", minute_bars, "--experiment", exp, *FAST)
    assert_clean_error(res, 2, "1,000,000 bars", "2,000,000 history points", "min", "--history-points", "--no-history")
    assert time.time() - start < 60
    assert client.get_experiment_by_name(exp) is None  # nothing created


def test_history_points_resamples_the_curve_while_metrics_use_every_bar(run_script, client, tmp_path):
    n, k = 20_000, 400
    stamps = pd.date_range("2024-01-01", periods=n, freq="h")
    r = np.random.default_rng(9).normal(0, 0.003, n)
    path = tmp_path / "hourly.csv"
    pd.DataFrame({"time": stamps.strftime("%Y-%m-%dT%H:%M"), "r": r}).to_csv(path, index=False)
    exp = unique("resample")
    res = run_script(SCRIPT, "--returns", path, "--experiment", exp, "--history-points", k, *FAST)
    assert res.code == 0, res.err
    run = runs_in(client, exp)[0]
    equity = client.get_metric_history(run.info.run_id, "equity_curve")
    drawdown = client.get_metric_history(run.info.run_id, "drawdown")
    assert len(equity) == k and len(drawdown) == k
    curve = np.cumprod(1 + r)
    assert max(equity, key=lambda m: m.step).value == pytest.approx(curve[-1], rel=1e-12)
    import quantstats as qs

    dd = qs.stats.to_drawdown_series(pd.Series(r, index=stamps))
    assert min(m.value for m in drawdown) == pytest.approx(float(dd.min()), rel=1e-9)  # the worst point is kept
    assert run.data.params["data.periods"] == str(n)  # metrics from every bar
    assert "resampled: 400 of 20,000 bars" in run.data.tags["backtest.history"]
    assert "resampled" in res.out and error_lines(res.err) == []
