"""Faults between the scripts and the server: 5xx, slowness, refusal, auth; bounded and explained.

A loopback proxy (tests/faultproxy.py) in front of the real server fixture injects the faults.
"""

import json
import time

import pytest

from conftest import ADMIN_USER, unique
from faultproxy import FaultProxy
from reliability import error_lines


def test_transient_503_is_retried_and_succeeds(run_script, via_proxy, client):
    name = unique("retry")
    via_proxy.reset("status", status=503, fault_count=2)
    res = run_script("create_experiment", "--name", name, uri=via_proxy.uri)
    assert res.code == 0, res.err
    assert [s for _, _, s in via_proxy.requests][:2] == [503, 503]
    assert client.get_experiment_by_name(name) is not None


def test_persistent_500_gives_server_error_after_bounded_tries(run_script, via_proxy):
    via_proxy.reset("status", status=500, fault_count=100)
    start = time.time()
    res = run_script("create_experiment", "--name", unique("x"), uri=via_proxy.uri)
    assert res.code == 6
    assert "answered 500" in res.err and len(error_lines(res.err)) == 1
    assert len(via_proxy.requests) == 3  # one try + MLFLOW_SKILL_HTTP_RETRIES=2 (default)
    assert time.time() - start < 10


def test_slow_server_times_out_within_bound(run_script, via_proxy):
    via_proxy.reset("slow", delay=5.0)
    start = time.time()
    res = run_script(
        "create_experiment",
        "--name",
        unique("x"),
        "--timeout",
        "0.5",
        uri=via_proxy.uri,
        env={"MLFLOW_SKILL_HTTP_RETRIES": "1"},
    )
    elapsed = time.time() - start
    assert res.code == 4
    assert "timed out" in res.err and "--timeout" in res.err
    assert elapsed < 6


def test_server_that_stops_answering_mid_command(run_script, via_proxy):
    via_proxy.reset("refuse_after", fault_count=1)  # the look-up passes, the create is cut off
    res = run_script("create_experiment", "--name", unique("x"), uri=via_proxy.uri)
    assert res.code == 4
    assert "not reachable" in res.err and "Traceback" not in res.err


def test_no_server_at_all_fails_fast(run_script):
    start = time.time()
    res = run_script("create_experiment", "--name", "x", uri="http://127.0.0.1:9")
    assert res.code == 4
    assert time.time() - start < 5  # default retries, refused connections answer at once


def test_401_is_not_retried(run_script, auth_server):
    proxy = FaultProxy(auth_server.uri)
    try:
        res = run_script(
            "create_experiment",
            "--name",
            "x",
            uri=proxy.uri,
            env={"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": "nope-wrong"},
        )
        assert res.code == 5
        assert [s for _, _, s in proxy.requests] == [401]
    finally:
        proxy.close()


def test_server_stops_in_the_middle_of_log_backtest(run_script, via_proxy, client, tmp_path):
    """The server goes away after the run was created: a clear error, and the run never looks
    FINISHED (it stays RUNNING, as the server could not be told otherwise)."""
    from reliability import write_returns_csv

    name = unique("midlog")
    exp_id = client.create_experiment(name)
    returns = write_returns_csv(tmp_path / "r.csv")
    # get-by-name (twice), experiments/get, runs/search (same fingerprint?), runs/create pass;
    # the first log-batch is cut off.
    via_proxy.reset("refuse_after", fault_count=5)
    start = time.time()
    res = run_script("log_backtest", "--returns", returns, "--experiment", name, "--no-tearsheet", uri=via_proxy.uri)
    assert res.code == 4, res.err
    assert time.time() - start < 60
    assert len(error_lines(res.err)) == 1 and "Traceback" not in res.err
    assert "left RUNNING, never FINISHED" in res.err
    runs = client.search_runs([exp_id])
    assert len(runs) == 1
    assert runs[0].info.status == "RUNNING"
    assert runs[0].data.metrics == {}


def test_server_error_during_log_backtest_marks_run_failed(run_script, via_proxy, client, tmp_path):
    """The metrics batch keeps failing with 500 (beyond the retries), the rest of the server works:
    the run ends FAILED with the error in a tag, never FINISHED."""
    from reliability import write_returns_csv

    name = unique("midfail")
    exp_id = client.create_experiment(name)
    returns = write_returns_csv(tmp_path / "r.csv")
    via_proxy.reset("path_status", status=500, fault_path="/runs/log-batch", fault_count=3)
    res = run_script("log_backtest", "--returns", returns, "--experiment", name, "--no-tearsheet", uri=via_proxy.uri)
    assert res.code == 6, res.err
    assert "marked FAILED" in res.err and len(error_lines(res.err)) == 1
    run = client.search_runs([exp_id])[0]
    assert run.info.status == "FAILED"
    assert "500" in run.data.tags["backtest.error"]


@pytest.mark.parametrize("status", [502, 504, 0], ids=["502", "504", "dropped"])
def test_lost_experiment_create_answer_creates_once(run_script, via_proxy, client, status):
    """experiments/create reaches the server, its answer is lost: not sent again; the look-up
    finds what it created and the output says it was created."""
    name = unique("lostexp")
    via_proxy.reset("after_upstream", fault_path="/experiments/create", fault_count=1, status=status)
    res = run_script("create_experiment", "--name", name, "--format", "json", uri=via_proxy.uri)
    assert res.code == 0, res.err
    creates = [r for r in via_proxy.requests if r[1].endswith("/experiments/create")]
    assert len(creates) == 1
    assert json.loads(res.out)["status"] == "created"
    assert json.loads(res.out)["experiment_id"] == client.get_experiment_by_name(name).experiment_id
