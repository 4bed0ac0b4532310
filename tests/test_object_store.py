"""Artifact roots in S3 without the server's artifact proxy (`mlflow server --default-artifact-root
s3://... --no-serve-artifacts`), the layout of teams on PostgreSQL plus a bucket: log_backtest.py
writes its artifacts into the bucket itself and `artifacts`/`run` list them, the server having no
credentials to list them. The scripts' locked environments carry no boto3: a backtest is refused
before any run is created, with the fix (`uv run --with boto3 scripts/...`), which then works
exactly as printed. The S3 server is moto's server mode on 127.0.0.1 (tests/conftest.py)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import S3_SECRET, SCRIPTS, call_script, clean_env, run_uv, unique
from reliability import assert_clean_error, write_returns_csv

pytestmark = pytest.mark.slow  # a second MLflow server, moto, and the scripts' own environments

ARTIFACTS = {"returns.csv", "metrics.json", "periods.json", "tearsheet.html"}


def run_artifacts(object_store, run_id: str) -> dict[str, int]:
    """backtest/<file> -> size, as the bucket holds them for this run."""
    marker = f"/{run_id}/artifacts/"
    return {k.split(marker, 1)[1]: size for k, size in object_store.keys("mlflow/").items() if marker in k}


def test_backtest_artifacts_go_to_the_bucket_and_are_listed(s3_server, object_store, tmp_path):
    env = clean_env({"MLFLOW_TRACKING_URI": s3_server.uri, **object_store.client_env}, env_dir=tmp_path)
    returns = write_returns_csv(tmp_path / "returns.csv")
    name = unique("s3")
    args = ["--returns", returns, "--experiment", name, "--create-experiment", "--format", "json"]
    res = call_script("log_backtest", args, env, cwd=tmp_path)
    assert res.code == 0, res.err
    run_id = json.loads(res.out)["run_id"]
    stored = run_artifacts(object_store, run_id)
    assert {k.split("/", 1)[1] for k in stored} == ARTIFACTS and all(k.startswith("backtest/") for k in stored)
    assert all(size > 0 for size in stored.values()), stored

    listed = call_script("query_experiments", ["artifacts", run_id, "--path", "backtest", "--format", "json"], env)
    assert listed.code == 0, listed.err
    assert {a["path"]: a["size"] for a in json.loads(listed.out)["artifacts"]} == stored  # sizes as the bucket says
    described = call_script("query_experiments", ["run", run_id], env)
    assert described.code == 0, described.err
    assert "artifacts: backtest/" in described.out
    for text in (res.both, listed.both, described.both):
        assert S3_SECRET not in text


def test_without_boto3_refused_before_any_run_and_the_printed_fix_works(s3_server, object_store, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=s3_server.uri)
    name = unique("s3-uv")
    experiment_id = client.create_experiment(name)
    env = {"MLFLOW_TRACKING_URI": s3_server.uri, **object_store.client_env}
    returns = write_returns_csv(tmp_path / "returns.csv")
    log = SCRIPTS / "log_backtest.py"
    args = ["--returns", returns, "--experiment", name, "--format", "json"]

    refused = run_uv(log, *args, env=env, cwd=tmp_path)
    assert_clean_error(refused, 2, f"experiment '{name}' keeps its artifacts in S3 (s3://", "no run was started")
    assert not client.search_runs([experiment_id], run_view_type=3)  # ALL: not even a FAILED one
    package = re.search(r"`uv run --with (\S+) scripts/log_backtest.py", refused.err).group(1)
    assert package == "boto3"

    res = run_uv(log, *args, uv_args=("--with", package), env=env, cwd=tmp_path)
    assert res.code == 0, res.err
    run_id = json.loads(res.out)["run_id"]
    assert {k.split("/", 1)[1] for k in run_artifacts(object_store, run_id)} == ARTIFACTS

    query = SCRIPTS / "query_experiments.py"
    refused = run_uv(query, "artifacts", run_id, env=env, cwd=tmp_path)
    assert_clean_error(refused, 2, f"run {run_id} keeps its artifacts in S3", "uv run --with boto3 scripts/query_")
    listed = run_uv(query, "artifacts", run_id, "--format", "json", uv_args=("--with", package), env=env, cwd=tmp_path)
    assert listed.code == 0, listed.err
    assert [(a["path"], a["is_dir"]) for a in json.loads(listed.out)["artifacts"]] == [("backtest", True)]
    for text in (refused.both, res.both, listed.both):
        assert S3_SECRET not in text
