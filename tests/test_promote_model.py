"""promote_model.py (issue 25) through its main() against the real `server` fixture: a version
registered from a run and `champion` moved (the answer shows what it pointed at before and the
commands that put it back, which do), the same command twice registers once, a lost answer never
registers twice, and the gate: a run below --require, a run from an overfit sweep below
--require-dsr or above --require-pbo-below, a run without the figure, and an unfinished run are
refused (exit 8) with nothing written. On the basic-auth server a READ-only user gets the 403.

Sweeps are stood for by runs whose metrics MLflow's own client logs as the sweep contract says
(`dsr` on a child, `best_dsr` and `pbo` on its parent, the child tagged mlflow.parentRunId); one
test uses a real sweep logged by log_backtest.py when it logs those metrics.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import assert_clean_error, credentials_env

SCRIPT = "promote_model"
AUDIT = "mlflow_skill.audit"
REGISTRY_WRITES = ("/registered-models/create", "/model-versions/create", "/registered-models/alias")


def finished_run(client, exp: str, name: str, metrics: dict, tags: dict | None = None, status: str = "FINISHED"):
    run = client.create_run(exp, run_name=name, tags=tags or {})
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    return run.info.run_id


@pytest.fixture(scope="module")
def runs(client):
    """A strong and a weak run, an unfinished one, and two sweeps: an overfit one and a good one."""
    exp = client.create_experiment(unique("promote"))
    ids = {
        "strong": finished_run(client, exp, "strong", {"sharpe": 1.6}),
        "steady": finished_run(client, exp, "steady", {"sharpe": 1.2}),
        "weak": finished_run(client, exp, "weak", {"sharpe": 0.5}),
        "running": finished_run(client, exp, "running", {"sharpe": 3.0}, status="RUNNING"),
    }
    for label, best_dsr, pbo, dsr in (("overfit", 0.41, 0.72, 0.31), ("robust", 0.97, 0.08, 0.97)):
        parent = finished_run(client, exp, f"{label}-sweep", {"best_sharpe": 2.1, "best_dsr": best_dsr, "pbo": pbo})
        child = finished_run(client, exp, f"{label}-best", {"sharpe": 2.1, "dsr": dsr}, {"mlflow.parentRunId": parent})
        ids[f"{label}_parent"], ids[f"{label}_child"] = parent, child
    return ids


def undo_argv(out: str) -> list[list[str]]:
    return [shlex.split(c)[3:] for c in re.findall(r"^- `(uv run scripts/promote_model\.py [^`]+)`$", out, re.M)]


def versions(client, model: str) -> list:
    return client.search_model_versions(f"name = '{model}'")


def test_register_and_move_champion_then_put_it_back(run_script, client, runs):
    model = unique("champ")
    first = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--alias", "champion")
    assert first.code == 0, first.err
    v1 = client.get_model_version_by_alias(model, "champion")
    assert v1.version == "1" and v1.run_id == runs["strong"]
    assert v1.source == client.get_run(runs["strong"]).info.artifact_uri  # no model logged: the artifact root
    assert v1.tags[AUDIT].startswith("promote_model.py ")
    assert "| (unset) | v1 | changed |" in first.out and "gate passed: status FINISHED" in first.out

    again = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--alias", "champion", "--format", "json")
    assert again.code == 0, again.err
    data = json.loads(again.out)
    assert data["written"] == 0 and data["version"] == "1" and data["undo"] == []
    assert len(versions(client, model)) == 1

    moved = run_script(SCRIPT, "--model", model, "--run-id", runs["steady"], "--alias", "champion")
    assert moved.code == 0, moved.err
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert "| alias champion | v1 | v2 | changed |" in moved.out  # what it pointed at before
    undos = undo_argv(moved.out)
    assert undos == [
        ["--model", model, "--version", "1", "--alias", "champion"],
        ["--model", model, "--version", "2", "--delete-version"],
    ]
    assert run_script(SCRIPT, *undos[0]).code == 0
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert "alias champion v2 -> v1" in client.get_registered_model(model).tags[AUDIT]
    assert run_script(SCRIPT, *undos[1]).code == 0
    assert [v.version for v in versions(client, model)] == ["1"]


def test_gate_refuses_a_run_below_require_and_registers_nothing(run_script, client, runs, via_proxy):
    model = unique("gated")
    res = run_script(
        SCRIPT,
        "--model",
        model,
        "--run-id",
        runs["weak"],
        "--alias",
        "champion",
        "--require",
        "metrics.sharpe > 1",
        uri=via_proxy.uri,
    )
    assert_clean_error(res, 8, "refused by the gate", "metrics.sharpe > 1", "metrics.sharpe = 0.5", "nothing was")
    assert not [r for r in via_proxy.requests if r[0] != "GET" and r[1].endswith(REGISTRY_WRITES)]
    assert client.search_registered_models(f"name = '{model}'") == []
    ok = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--require", "metrics.sharpe > 1")
    assert ok.code == 0 and "metrics.sharpe = 1.6" in ok.out


def test_gate_refuses_an_overfit_sweep(run_script, client, runs):
    model = unique("sweep")
    low_dsr = run_script(SCRIPT, "--model", model, "--run-id", runs["overfit_child"], "--require-dsr", "0.95")
    assert_clean_error(low_dsr, 8, "dsr = 0.31", "below --require-dsr 0.95")
    high_pbo = run_script(SCRIPT, "--model", model, "--run-id", runs["overfit_child"], "--require-pbo-below", "0.5")
    assert_clean_error(high_pbo, 8, "pbo = 0.72", runs["overfit_parent"])
    parent = run_script(SCRIPT, "--model", model, "--run-id", runs["overfit_parent"], "--require-dsr", "0.95")
    assert_clean_error(parent, 8, "best_dsr = 0.41")
    assert client.search_registered_models(f"name = '{model}'") == []

    ok = run_script(
        SCRIPT,
        "--model",
        model,
        "--run-id",
        runs["robust_child"],
        "--alias",
        "champion",
        "--require-dsr",
        "0.95",
        "--require-pbo-below",
        "0.5",
        "--format",
        "json",
    )
    assert ok.code == 0, ok.err
    gate = json.loads(ok.out)["gate"]
    assert gate[1] == "dsr 0.97 >= 0.95" and gate[2].startswith("pbo 0.08 < 0.5 (its sweep's parent")
    assert client.get_model_version_by_alias(model, "champion").run_id == runs["robust_child"]


def test_gate_refuses_missing_figures_and_unfinished_runs(run_script, runs):
    model = unique("missing")
    no_dsr = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--require-dsr", "0.9")
    assert_clean_error(no_dsr, 8, "no deflated Sharpe ratio", "log the variants as a sweep")
    no_pbo = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--require-pbo-below", "0.5")
    assert_clean_error(no_pbo, 8, "no probability of backtest overfitting", "--columns")
    running = run_script(SCRIPT, "--model", model, "--run-id", runs["running"], "--alias", "champion")
    assert_clean_error(running, 8, "is RUNNING, not FINISHED")
    bad = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--require", "metrics.sharpe >")
    assert bad.code == 2 and "Traceback" not in bad.both


def test_existing_version_alias_unset_and_delete(run_script, client, runs):
    model = unique("alias")
    assert run_script(SCRIPT, "--model", model, "--run-id", runs["strong"]).code == 0
    assert run_script(SCRIPT, "--model", model, "--run-id", runs["steady"]).code == 0
    gated = run_script(
        SCRIPT, "--model", model, "--version", "2", "--alias", "challenger", "--require", "metrics.sharpe > 1.5"
    )
    assert_clean_error(gated, 8, "metrics.sharpe = 1.2")  # the gate reads the version's source run
    res = run_script(SCRIPT, "--model", model, "--version", "2", "--alias", "challenger")
    assert res.code == 0 and client.get_model_version_by_alias(model, "challenger").version == "2"
    assert f"--model {model} --unset-alias challenger" in res.out
    held = run_script(SCRIPT, "--model", model, "--version", "2", "--delete-version")
    assert_clean_error(held, 2, "holds the alias challenger")
    unset = run_script(SCRIPT, "--model", model, "--unset-alias", "challenger")
    assert unset.code == 0 and "challenger" not in client.get_registered_model(model).aliases
    assert f"--model {model} --version 2 --alias challenger" in unset.out
    assert "already so" in run_script(SCRIPT, "--model", model, "--unset-alias", "challenger").out


def test_source_is_the_runs_model_when_it_has_one(run_script, client, runs):
    exp = client.get_run(runs["strong"]).info.experiment_id
    with_folder = finished_run(client, exp, "with-mlmodel", {"sharpe": 1.1})
    client.log_text(with_folder, "flavors: {}\n", "model/MLmodel")
    logged = finished_run(client, exp, "with-logged-model", {"sharpe": 1.1})
    logged_model = client.create_logged_model(exp, name="clf", source_run_id=logged)
    model = unique("source")
    res = run_script(SCRIPT, "--model", model, "--run-id", with_folder, "--format", "json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["source"] == client.get_run(with_folder).info.artifact_uri + "/model"
    res = run_script(SCRIPT, "--model", model, "--run-id", logged, "--format", "json")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["model_id"] == logged_model.model_id and "logged model clf" in data["source_how"]
    assert client.get_model_version(model, data["version"]).source == logged_model.artifact_location
    registered = json.loads(client.get_logged_model(logged_model.model_id).tags["mlflow.modelVersions"])
    assert registered == [{"name": model, "version": int(data["version"])}]  # the server linked the two


@pytest.mark.parametrize("status", [0, 502], ids=["connection-cut", "gateway-502"])
def test_a_lost_answer_never_registers_twice(run_script, client, runs, via_proxy, status):
    model = unique("lost")
    via_proxy.reset("after_upstream", fault_path="/model-versions/create", fault_count=1, status=status)
    res = run_script(SCRIPT, "--model", model, "--run-id", runs["strong"], "--alias", "champion", uri=via_proxy.uri)
    assert res.code == 0, res.err
    assert len([r for r in via_proxy.requests if r[1].endswith("/model-versions/create")]) == 1
    assert [v.version for v in versions(client, model)] == ["1"]
    assert client.get_model_version_by_alias(model, "champion").version == "1"


def test_read_only_user_gets_the_403(run_script, auth_server):
    from mlflow.tracking import MlflowClient

    model = unique("ro-model")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):  # the admin's model: the reader may only read it
        admin = MlflowClient(auth_server.uri, registry_uri=auth_server.uri)  # not a registry another test set
        rid = finished_run(admin, admin.create_experiment(unique("promote-auth")), "r", {"sharpe": 2.0})
        admin.create_registered_model(model)
    env = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    res = run_script(SCRIPT, "--model", model, "--run-id", rid, "--alias", "champion", uri=auth_server.uri, env=env)
    assert_clean_error(res, 5, "permission denied (403)", "registering a version")
    assert READER_PASSWORD not in res.both
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        reader_view = MlflowClient(auth_server.uri, registry_uri=auth_server.uri)
        assert reader_view.search_model_versions(f"name = '{model}'") == []


def test_a_real_overfit_sweep_is_refused(run_script, client, tmp_path):
    """log_backtest.py's sweep, when it logs the contract's figures: noise variants have a low DSR."""
    import numpy as np
    import pandas as pd

    days = pd.bdate_range("2022-01-03", periods=260)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d")})
    for i in range(8):
        frame[f"noise_{i}"] = rng.normal(0.0002, 0.01, len(days))
    path = tmp_path / "sweep.csv"
    frame.to_csv(path, index=False)
    exp = unique("real-sweep")
    logged = run_script(
        "log_backtest", "--returns", path, "--columns", "noise_*", "--experiment", exp, "--create-experiment"
    )
    assert logged.code == 0, logged.err
    experiment = client.get_experiment_by_name(exp)
    children = client.search_runs([experiment.experiment_id], "tags.`mlflow.parentRunId` != ''")
    if not children or "dsr" not in children[0].data.metrics:
        pytest.skip("log_backtest.py does not log dsr on sweep children yet (issue 23)")
    best = max(children, key=lambda r: r.data.metrics.get("sharpe", -1e9))
    res = run_script(SCRIPT, "--model", unique("noise"), "--run-id", best.info.run_id, "--require-dsr", "0.95")
    assert_clean_error(res, 8, "below --require-dsr 0.95")
