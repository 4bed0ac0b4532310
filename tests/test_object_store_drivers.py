"""Artifact roots in Google Cloud Storage and Azure that the server does not proxy (an experiment
whose artifact location is gs:// or wasbs://): the scripts' environments carry neither library,
so a backtest is refused before any run is created and a listing the server cannot make is refused,
each in one line naming the package to add (`uv run --with ...`). No bucket is contacted: the
refusal comes first. S3 itself, with a real S3-compatible server, is tests/test_object_store.py."""

from __future__ import annotations

import pytest

from conftest import unique
from reliability import assert_clean_error, write_returns_csv

STORES = [
    ("gs://skill-tests-bucket/mlflow", "Google Cloud Storage", "google-cloud-storage"),
    ("wasbs://skill@tests.blob.core.windows.net/mlflow", "Azure Blob Storage", "azure-storage-blob"),
]


@pytest.mark.parametrize(("root", "store", "package"), STORES, ids=["gs", "wasbs"])
def test_backtest_refused_before_any_run_naming_the_package(run_script, client, tmp_path, root, store, package):
    name = unique("bucket")
    experiment_id = client.create_experiment(name, artifact_location=root)
    returns = write_returns_csv(tmp_path / "returns.csv")
    res = run_script("log_backtest", "--returns", str(returns), "--experiment", name, "--run-name", "b")
    assert_clean_error(res, 2, f"keeps its artifacts in {store}", f"uv run --with {package} scripts/log_backtest.py")
    assert client.search_runs([experiment_id]) == []  # nothing was created


@pytest.mark.parametrize(("root", "store", "package"), STORES, ids=["gs", "wasbs"])
def test_listing_the_server_cannot_make_is_refused_naming_the_package(run_script, client, root, store, package):
    experiment_id = client.create_experiment(unique("bucket"), artifact_location=root)
    run_id = client.create_run(experiment_id).info.run_id
    res = run_script("query_experiments", "artifacts", run_id)
    assert_clean_error(res, 2, store, f"uv run --with {package} scripts/query_experiments.py")
