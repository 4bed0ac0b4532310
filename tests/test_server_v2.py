"""The read path speaks MLflow's 2.0 REST API, which MLflow 2 servers answer too: every read command
passes against an MLflow 2.22 server (its own environment, tests/mlflow_envs.py) and, with the very
same assertions, against the current 3.x one (the `server` fixture), on data each server's own
client logged. The GenAI trace features need MLflow 3's API: against 2.22 they answer in one line
naming the server's version and what it lacks, exit 9 (references/troubleshooting.md).
"""

from __future__ import annotations

import csv
import json
import sys

import pytest

from conftest import call_script, clean_env, unique
from mlflow_envs import mlflow2_python, seed
from reliability import assert_clean_error, present

pytestmark = pytest.mark.slow  # MLflow 2.22's environment (built once, cached) and server


@pytest.fixture(scope="module", params=["2.22", "3.x"])
def seeded(request, tmp_path_factory):
    """(server, what was logged, env dir) for an MLflow 2.22 and a current 3.x server."""
    if request.param == "2.22":
        srv = request.getfixturevalue("v2_server")
        python = mlflow2_python()
    else:
        srv = request.getfixturevalue("server")
        python = sys.executable  # the suite's MLflow 3 client
    data = seed(python, srv.uri, unique(f"v{request.param[0]}-reads"))
    return srv, data, tmp_path_factory.mktemp("v2-envdir")


def read(seeded, script: str, *args):
    srv, _, env_dir = seeded
    env = clean_env({"MLFLOW_TRACKING_URI": srv.uri}, env_dir=env_dir)
    return call_script(script, args, env, cwd=env_dir)


def ok_json(seeded, script: str, *args):
    res = read(seeded, script, *args, "--format", "json")
    assert res.code == 0, (args, res.err)
    assert "Traceback" not in res.err
    return json.loads(res.out)


def run_names(payload) -> list[str]:
    return sorted(r.get("run_name") or r.get("name") for r in payload["runs"])


def test_experiments_and_runs_with_or_and_numeric_filters(seeded):
    _, data, _ = seeded
    experiments = ok_json(seeded, "query_experiments", "experiments")["experiments"]
    name = next(e["name"] for e in experiments if e["id"] == data["experiment_id"])
    either = ok_json(
        seeded, "query_experiments", "runs", "-e", name, "--filter", "metrics.sharpe > 1.2 OR params.opt = 'adam'"
    )
    assert run_names(either) == ["v-0", "v-1", "v-3"]
    numeric = ok_json(seeded, "query_experiments", "runs", "-e", name, "--filter", "params.lr > 0.025")
    assert run_names(numeric) == ["v-2", "v-3"]  # 0.03 and 0.04: compared as numbers on the client
    best = ok_json(seeded, "query_experiments", "best", "-e", name, "--metric", "sharpe", "--top", "2")
    assert [r["run_id"] for r in best["runs"]] == [data["runs"][3], data["runs"][2]]


def test_run_compare_and_export(seeded, tmp_path):
    _, data, _ = seeded
    runs = data["runs"]
    res = read(seeded, "query_experiments", "run", runs[1])
    assert res.code == 0, res.err
    assert "lr=0.02" in res.out and "sharpe=0.5" in res.out and "backtest/" in res.out
    res = read(seeded, "query_experiments", "compare", runs[0], runs[3])
    assert res.code == 0, res.err
    assert "params.lr" in res.out and "0.04" in res.out and "metrics.sharpe" in res.out
    out = tmp_path / "runs.csv"
    res = read(seeded, "query_experiments", "export", "-e", data["experiment_id"], "--output", out)
    assert res.code == 0, res.err
    rows = {r["run_id"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == set(runs)
    assert [float(rows[r]["metrics.sharpe"]) for r in runs] == [0.0, 0.5, 1.0, 1.5]


def test_metric_history_and_artifacts(seeded):
    _, data, _ = seeded
    run = data["runs"][2]
    history = read(seeded, "get_metric_history", "--run-id", run, "--metrics", "loss", "--full")
    assert history.code == 0, history.err
    assert "all 10 points" in history.out and "last 0.08333" in history.out  # 1/(9+1+2)
    top = ok_json(seeded, "query_experiments", "artifacts", run)
    assert [(a["path"], a["is_dir"]) for a in top["artifacts"]] == [("backtest", True)]
    inside = ok_json(seeded, "query_experiments", "artifacts", run, "--path", "backtest")
    assert [(a["path"], a["size"]) for a in inside["artifacts"]] == [("backtest/returns.csv", 29)]


def test_registry_reads(seeded):
    _, data, _ = seeded
    res = read(seeded, "query_experiments", "models")
    assert res.code == 0, res.err
    assert data["model"] in res.out and "champion" in res.out
    res = read(seeded, "query_experiments", "model", data["model"], "--alias", "champion")
    assert res.code == 0, res.err
    assert data["runs"][-1] in res.out


TRACE_COMMANDS = [
    (("search_traces", "--experiment", "Default"), "traces"),
    (("search_traces", "--experiment", "Default", "--every", "1d", "--since", "7d"), "trace metrics"),
    (("get_trace", "--trace-id", "tr-0123456789abcdef"), "traces"),
    (("get_trace", "--session", "sess-1", "--experiment", "Default"), "traces"),
    (("log_feedback", "--trace-id", "tr-0123456789abcdef", "--name", "correct", "--value", "true"), "traces"),
]


@pytest.mark.parametrize("args,feature", TRACE_COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_trace_features_name_the_server_version(v2_server, tmp_path, args, feature):
    if not present(args[0]):
        pytest.skip(f"{args[0]}.py is not in this tree yet")
    env = clean_env({"MLFLOW_TRACKING_URI": v2_server.uri}, env_dir=tmp_path)
    res = call_script(args[0], args[1:], env, cwd=tmp_path)
    assert_clean_error(res, 9, f"{v2_server.uri} runs MLflow 2.22.", f"lacks {feature}", "upgrade the tracking server")
