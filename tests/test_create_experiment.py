"""create_experiment.py against the real tracking server fixture."""

import json

from conftest import unique
from reliability import error_lines


def test_creates_with_description_and_tags(run_script, client):
    name = unique("create")
    res = run_script(
        "create_experiment",
        "--name",
        name,
        "--description",
        "Momentum on BTC",
        "--tag",
        "team=quant",
        "--tag",
        "asset=BTC",
    )
    assert res.code == 0, res.err
    assert res.out.startswith("store: http://127.0.0.1:")
    assert f"Created experiment **{name}**" in res.out
    exp = client.get_experiment_by_name(name)
    assert exp.tags["mlflow.note.content"] == "Momentum on BTC"
    assert exp.tags["team"] == "quant" and exp.tags["asset"] == "BTC"
    assert f"(id {exp.experiment_id})" in res.out


def test_idempotent_existing_is_reported_not_changed(run_script, client):
    name = unique("idem")
    first = run_script("create_experiment", "--name", name, "--tag", "a=1", "--format", "json")
    second = run_script("create_experiment", "--name", name, "--tag", "a=2", "--format", "json")
    assert first.code == second.code == 0
    one, two = json.loads(first.out), json.loads(second.out)
    assert one["status"] == "created" and two["status"] == "exists"
    assert one["experiment_id"] == two["experiment_id"]
    assert two["unapplied"] == ["a"]
    assert client.get_experiment_by_name(name).tags["a"] == "1"
    third = run_script("create_experiment", "--name", name, "--tag", "a=2", "--update", "--format", "json")
    assert json.loads(third.out)["status"] == "updated"
    assert client.get_experiment_by_name(name).tags["a"] == "2"


def test_deleted_needs_restore(run_script, client):
    name = unique("deleted")
    exp_id = client.create_experiment(name)
    client.delete_experiment(exp_id)
    res = run_script("create_experiment", "--name", name)
    assert res.code == 2
    assert "--restore" in res.err and "Traceback" not in res.err
    assert len(error_lines(res.err)) == 1
    res = run_script("create_experiment", "--name", name, "--restore")
    assert res.code == 0, res.err
    assert "Restored experiment" in res.out
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_bad_tag_is_usage_error(run_script):
    res = run_script("create_experiment", "--name", unique("x"), "--tag", "novalue")
    assert res.code == 2
    assert res.err.startswith("error: --tag takes KEY=VALUE")


def test_no_server_fails_fast(run_script):
    import time

    start = time.time()
    res = run_script(
        "create_experiment", "--name", "x", uri="http://127.0.0.1:9", env={"MLFLOW_SKILL_HTTP_RETRIES": "1"}
    )
    assert res.code == 4
    assert "not reachable" in res.err
    assert time.time() - start < 10


def test_uv_run_subprocess(uv_run, client):
    name = unique("uvrun")
    res = uv_run("create_experiment", "--name", name)
    assert res.code == 0, res.err
    assert client.get_experiment_by_name(name) is not None
