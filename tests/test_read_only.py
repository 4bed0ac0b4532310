"""Read-only proof: on a basic-auth server where `reader` has only READ permission (the server's
default_permission), every query subcommand, get_metric_history, search_traces and get_trace
work on the data the admin created, with the right data; the write scripts fail with a clear
permission message (exit 5) and change nothing.
"""

from __future__ import annotations

import csv
import json

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import assert_clean_error, credentials_env, make_trace, present, write_returns_csv

READER = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}


@pytest.fixture(scope="module")
def admin_data(auth_server):
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    name = unique("ro-admin")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        cl = MlflowClient(auth_server.uri)
        exp = cl.create_experiment(name, tags={"owner": "admin"})
        ids = {}
        for i, (run_name, status) in enumerate((("good", "FINISHED"), ("better", "FINISHED"), ("crashed", "FAILED"))):
            rid = cl.create_run(exp, run_name=run_name, start_time=1_700_000_000_000 + i * 1000).info.run_id
            cl.log_batch(
                rid,
                metrics=[Metric("loss", 1.0 / (s + 1) + i, 0, s) for s in range(10)]
                + [Metric("train_loss", 0.1 * i, 0, 0)],
                params=[Param("lr", str(10 ** -(i + 1))), Param("opt", "adam" if i < 2 else "sgd")],
                tags=[RunTag("backtest.error", "ValueError: boom")] if status == "FAILED" else [],
            )
            cl.set_terminated(rid, status=status)
            ids[run_name] = rid
        cl.log_text(ids["good"], "hello", "notes/readme.txt")
    trace_id = None
    if present("search_traces") or present("get_trace"):
        _, trace_id = make_trace(auth_server.uri, name, auth=(ADMIN_USER, ADMIN_PASSWORD))
    return {"name": name, "exp": exp, "ids": ids, "trace": trace_id}


@pytest.fixture
def as_reader(run_script, auth_server):
    def run(script, *args):
        return run_script(script, *args, uri=auth_server.uri, env=READER)

    return run


def ok_json(res):
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_reader_lists_experiments(as_reader, admin_data):
    data = ok_json(
        as_reader(
            "query_experiments", "experiments", "--name-like", admin_data["name"], "--count-runs", "--format", "json"
        )
    )
    assert [(e["id"], e["runs"], e["tags"]) for e in data["experiments"]] == [
        (admin_data["exp"], "3", {"owner": "admin"})
    ]


def test_reader_searches_runs_with_or_and_client_side(as_reader, admin_data):
    ids = admin_data["ids"]
    data = ok_json(
        as_reader(
            "query_experiments",
            "runs",
            "-e",
            admin_data["name"],
            "--filter",
            "params.lr < 0.05 OR attributes.status = 'FAILED'",
            "--order-by",
            "metrics.loss ASC",
            "--format",
            "json",
        )
    )
    assert [r["run_id"] for r in data["runs"]] == [ids["better"], ids["crashed"]]


def test_reader_describes_and_compares(as_reader, admin_data):
    ids = admin_data["ids"]
    run = ok_json(as_reader("query_experiments", "run", ids["good"], "--format", "json"))
    assert run["params"] == {"lr": "0.1", "opt": "adam"} and run["metrics"]["loss"]["value"] == pytest.approx(0.1)
    assert [a["path"] for a in run["artifacts"]] == ["notes"]
    cmp = ok_json(as_reader("query_experiments", "compare", ids["good"], ids["better"], "--format", "json"))
    assert {row["field"] for row in cmp["rows"]} >= {"params.lr", "metrics.loss"}


def test_reader_best_overfit_failed_aggregate(as_reader, admin_data):
    ids, exp = admin_data["ids"], admin_data["name"]
    best = ok_json(
        as_reader("query_experiments", "best", "-e", exp, "--metric", "loss", "--top", "1", "--format", "json")
    )
    assert [r["run_id"] for r in best["runs"]] == [ids["good"]]
    over = ok_json(
        as_reader(
            "query_experiments",
            "overfit",
            "-e",
            exp,
            "--train",
            "train_loss",
            "--test",
            "loss",
            "--include-unfinished",
            "--format",
            "json",
        )
    )
    assert over["considered"] == 3 and over["flagged_total"] == 3
    failed = ok_json(as_reader("query_experiments", "failed", "-e", exp, "--format", "json"))
    assert [(r["run_id"], r["error_tags"]) for r in failed["runs"]] == [
        (ids["crashed"], {"backtest.error": "ValueError: boom"})
    ]
    agg = ok_json(
        as_reader(
            "query_experiments",
            "aggregate",
            "-e",
            exp,
            "-g",
            "params.opt",
            "-m",
            "loss",
            "--include-unfinished",
            "--format",
            "json",
        )
    )
    assert {g["group"]["params.opt"]: g["runs"] for g in agg["groups"]} == {"adam": 2, "sgd": 1}


def test_reader_exports_and_lists_artifacts(as_reader, admin_data, tmp_path):
    target = tmp_path / "runs.csv"
    res = as_reader("query_experiments", "export", "-e", admin_data["name"], "--output", str(target))
    assert res.code == 0, res.err
    rows = list(csv.DictReader(target.open()))
    assert sorted(r["run_id"] for r in rows) == sorted(admin_data["ids"].values())
    arts = ok_json(
        as_reader("query_experiments", "artifacts", admin_data["ids"]["good"], "--path", "notes", "--format", "json")
    )
    assert [(a["path"], a["size"]) for a in arts["artifacts"]] == [("notes/readme.txt", 5)]


def test_reader_reads_metric_history(as_reader, admin_data, tmp_path):
    rid = admin_data["ids"]["good"]
    data = ok_json(as_reader("get_metric_history", "--run-id", rid, "--metrics", "loss", "--format", "json"))
    (series,) = data["series"]
    assert series["points"] == 10 and series["exact"]
    assert series["max"]["value"] == pytest.approx(1.0) and series["max"]["step"] == 0
    assert series["min"]["value"] == pytest.approx(0.1) and series["min"]["step"] == 9
    res = as_reader(
        "get_metric_history", "--run-id", rid, "--metrics", "loss", "--full", "--output", str(tmp_path / "h.csv")
    )
    assert res.code == 0, res.err
    assert (tmp_path / "h.csv").read_text().count("\n") == 11


@pytest.mark.skipif(not present("search_traces"), reason="search_traces.py is not written yet")
def test_reader_searches_traces(as_reader, admin_data):
    res = as_reader("search_traces", "--experiment", admin_data["name"], "--format", "json")
    assert res.code == 0, res.err
    assert admin_data["trace"] in res.out


@pytest.mark.skipif(not present("get_trace"), reason="get_trace.py is not written yet")
def test_reader_reads_a_trace(as_reader, admin_data):
    res = as_reader("get_trace", "--trace-id", admin_data["trace"])
    assert res.code == 0, res.err
    assert "agent" in res.out and "tool" in res.out


def test_reader_cannot_update_the_admins_experiment(as_reader, admin_data, auth_server):
    res = as_reader("create_experiment", "--name", admin_data["name"], "--description", "mine now", "--update")
    assert_clean_error(res, 5, "permission denied")
    from mlflow.tracking import MlflowClient

    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        tags = MlflowClient(auth_server.uri).get_experiment(admin_data["exp"]).tags
    assert "mlflow.note.content" not in tags


@pytest.mark.skipif(not present("log_backtest"), reason="log_backtest.py is not written yet")
def test_reader_cannot_log_a_backtest_into_the_admins_experiment(as_reader, admin_data, auth_server, tmp_path):
    returns = write_returns_csv(tmp_path / "r.csv")
    res = as_reader("log_backtest", "--returns", str(returns), "--experiment", admin_data["name"], "--no-tearsheet")
    assert_clean_error(res, 5, "permission denied")
    from mlflow.tracking import MlflowClient

    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        runs = MlflowClient(auth_server.uri).search_runs([admin_data["exp"]])
    assert sorted(r.info.run_id for r in runs) == sorted(admin_data["ids"].values())  # no run was left behind


def test_reader_through_uv_run(uv_run, admin_data, auth_server):
    res = uv_run(
        "query_experiments",
        "best",
        "-e",
        admin_data["name"],
        "--metric",
        "loss",
        "--format",
        "json",
        uri=auth_server.uri,
        env=READER,
    )
    assert res.code == 0, res.err
    assert json.loads(res.out)["runs"][0]["run_id"] == admin_data["ids"]["good"]
