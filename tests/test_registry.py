"""The model registry, read-only (`models`, `model NAME`, models:/ URIs wherever a run id is taken),
against a real server seeded with MLflow's own client: versions, aliases, legacy stages, tags and a
deleted version; a READ-only user on the basic-auth server; the embedded sqlite store. Expected
values come from MlflowClient, never from the script.
"""

from __future__ import annotations

import json
import shlex
import warnings

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import assert_clean_error, credentials_env

READER = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}


def seed_registry(cl, prefix: str) -> dict:
    """Model PREFIX-main: v1 (champion, Production), v2 (deleted), v3 (challenger), each from its
    own run; model PREFIX-other (tag team=risk, one version); three runs with params and metrics."""
    from mlflow.entities import Metric, Param

    exp = cl.create_experiment(prefix)
    runs = []
    for i in range(3):
        rid = cl.create_run(exp, run_name=f"train-{i}", start_time=1_700_000_000_000 + i).info.run_id
        cl.log_batch(
            rid,
            metrics=[Metric("val_acc", 0.80 + 0.05 * i, 0, 0), Metric("val_loss", 0.5 - 0.1 * i, 0, 0)],
            params=[Param("lr", str(0.1 / (i + 1))), Param("depth", str(3 + i))],
        )
        cl.set_terminated(rid)
        runs.append(rid)
    main, other = f"{prefix}-main", f"{prefix}-other"
    cl.create_registered_model(main, tags={"team": "fraud", "owner": "ana"}, description="fraud detector")
    for i, rid in enumerate(runs):
        cl.create_model_version(main, f"runs:/{rid}/model", run_id=rid, description=f"version from train-{i}")
    cl.set_registered_model_alias(main, "champion", "1")
    cl.set_registered_model_alias(main, "challenger", "3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated, and still stored: the legacy case
        cl.transition_model_version_stage(main, "1", "Production")
    cl.delete_model_version(main, "2")
    cl.create_registered_model(other, tags={"team": "risk"})
    cl.create_model_version(other, f"runs:/{runs[0]}/model", run_id=runs[0])
    return {"prefix": prefix, "main": main, "other": other, "runs": runs, "exp": exp}


@pytest.fixture(scope="module")
def reg(server, client):
    return seed_registry(client, unique("reg"))


def ok_json(res) -> dict:
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_models_lists_latest_aliases_stages_tags(run_script, reg, client):
    data = ok_json(
        run_script("query_experiments", "models", "--filter", f"name LIKE '{reg['prefix']}%'", "--format", "json")
    )
    expected = {m.name: m for m in client.search_registered_models(f"name LIKE '{reg['prefix']}%'")}
    assert [m["name"] for m in data["models"]] == sorted(expected)
    main = next(m for m in data["models"] if m["name"] == reg["main"])
    rm = expected[reg["main"]]
    assert main["aliases"] == {k: str(v) for k, v in rm.aliases.items()} == {"champion": "1", "challenger": "3"}
    assert main["tags"] == rm.tags and main["description"] == rm.description
    assert main["latest_version"] == str(max(int(v.version) for v in rm.latest_versions)) == "3"
    assert {v["version"]: v["stage"] for v in main["latest_versions"]} == {
        v.version: (None if v.current_stage == "None" else v.current_stage) for v in rm.latest_versions
    }
    md = run_script("query_experiments", "models", "--filter", f"name LIKE '{reg['prefix']}%'")
    assert md.code == 0, md.err
    row = next(line for line in md.out.splitlines() if line.startswith(f"| {reg['main']} "))
    assert "champion→v1" in row and "challenger→v3" in row and "Production: v1" in row and "team=fraud" in row


def test_models_filter_on_tags_and_paging(run_script, reg):
    data = ok_json(run_script("query_experiments", "models", "--filter", "tags.team = 'risk'", "--format", "json"))
    assert reg["other"] in [m["name"] for m in data["models"]] and reg["main"] not in [
        m["name"] for m in data["models"]
    ]
    first = run_script("query_experiments", "models", "--filter", f"name LIKE '{reg['prefix']}%'", "--max-results", "1")
    assert first.code == 0, first.err
    assert f"| {reg['main']} " in first.out and reg["other"] not in first.out
    command = first.out.split("next page: `")[1].split("`")[0]
    argv = shlex.split(command)[3:]  # uv run scripts/query_experiments.py ...
    second = run_script("query_experiments", *argv)
    assert second.code == 0, second.err
    assert f"| {reg['other']} " in second.out and "next page" not in second.out


def test_model_versions_newest_first_without_the_deleted_one(run_script, reg, client):
    data = ok_json(run_script("query_experiments", "model", reg["main"], "--format", "json"))
    versions = client.search_model_versions(f"name = '{reg['main']}'")
    assert (
        [v["version"] for v in data["versions"]]
        == sorted((v.version for v in versions), key=int, reverse=True)
        == ["3", "1"]
    )
    for v in data["versions"]:
        run = client.get_run(v["run_id"])
        assert v["run_name"] == run.info.run_name
        assert v["metrics"] == {k: run.data.metrics[k] for k in data["metric_keys"]}
        assert v["aliases"] == {"1": ["champion"], "3": ["challenger"]}[v["version"]]
    assert {v["version"]: v["stage"] for v in data["versions"]} == {"3": None, "1": "Production"}
    md = run_script("query_experiments", "model", reg["main"])
    assert md.code == 0, md.err
    assert "| v2 " not in md.out and md.out.index("| v3 ") < md.out.index("| v1 ")
    assert f"query_experiments.py run {reg['runs'][2]}" in md.out  # the newest version's run, one step away
    assert f"compare models:/{reg['main']}@champion models:/{reg['main']}@challenger" in md.out


def test_model_one_version_by_alias_and_number(run_script, reg, client):
    data = ok_json(run_script("query_experiments", "model", reg["main"], "--alias", "champion", "--format", "json"))
    mv = client.get_model_version_by_alias(reg["main"], "champion")
    run = client.get_run(mv.run_id)
    assert data["version"] == mv.version == "1" and data["run_id"] == reg["runs"][0]
    assert data["params"] == run.data.params and data["metrics"] == run.data.metrics
    assert data["source"] == mv.source and data["stage"] == "Production" and data["aliases"] == ["champion"]
    md = run_script("query_experiments", "model", reg["main"], "--version", "3")
    assert md.code == 0, md.err
    assert "version **3** (@challenger)" in md.out and f"query_experiments.py run {reg['runs'][2]}" in md.out
    assert "depth=5" in md.out and "val_acc=0.9" in md.out and f"runs:/{reg['runs'][2]}/model" in md.out


@pytest.mark.parametrize(
    "args, needles",
    [
        (("model", "{main}x"), ("no registered model", "did you mean", "{main}")),
        (("model", "{main}", "--alias", "champoin"), ("no alias 'champoin'", "champion")),
        (("model", "{main}", "--version", "2"), ("no version 2", "versions: 3, 1")),
        (("compare", "models:/{main}@nope", "models:/{main}/1"), ("no alias 'nope'", "challenger")),
        (("run", "models:/{main}/7"), ("no version 7",)),
    ],
)
def test_unknown_model_alias_version_exit_3_with_close_names(run_script, reg, args, needles):
    res = run_script("query_experiments", *[a.format(main=reg["main"]) for a in args])
    assert_clean_error(res, 3, *[n.format(main=reg["main"]) for n in needles])


def test_bad_registry_filter_is_usage_error(run_script, reg):
    res = run_script("query_experiments", "models", "--filter", "nme = 'x'")
    assert_clean_error(res, 2, "rejected")
    res = run_script("query_experiments", "model", reg["main"], "--version", "latest")
    assert_clean_error(res, 2, "not a number")


def test_compare_champion_with_challenger(run_script, reg, client):
    main = reg["main"]
    data = ok_json(
        run_script(
            "query_experiments", "compare", f"models:/{main}@champion", f"models:/{main}@challenger", "--format", "json"
        )
    )
    assert [r["run_id"] for r in data["runs"]] == [
        client.get_model_version_by_alias(main, a).run_id for a in ("champion", "challenger")
    ]
    assert {row["field"] for row in data["rows"]} >= {"params.lr", "metrics.val_acc"}
    assert [r["model_version"] for r in data["runs"]] == [f"{main}@champion v1", f"{main}@challenger v3"]
    md = run_script("query_experiments", "compare", f"models:/{main}@champion", f"models:/{main}/3", reg["runs"][1])
    assert md.code == 0, md.err
    header = next(line for line in md.out.splitlines() if line.startswith("| field |"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "field",
        f"train-0 ({main}@champion v1)",
        f"train-2 ({main} v3)",
        "train-1",
    ]


@pytest.mark.parametrize("suffix, run_index", [("/3", 2), ("@champion", 0), ("/Production", 0), ("/latest", 2)])
def test_run_takes_a_version_uri(run_script, reg, suffix, run_index):
    data = ok_json(run_script("query_experiments", "run", f"models:/{reg['main']}{suffix}", "--format", "json"))
    assert data["run_id"] == reg["runs"][run_index] and data["run_name"] == f"train-{run_index}"


def test_a_stage_nobody_is_in_is_not_found(run_script, reg):
    assert_clean_error(
        run_script("query_experiments", "run", f"models:/{reg['main']}/Staging"), 3, "no version in stage", "Production"
    )


def test_reader_lists_models_and_reads_versions(run_script, auth_server):
    from mlflow.tracking import MlflowClient

    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        seeded = seed_registry(MlflowClient(auth_server.uri, registry_uri=auth_server.uri), unique("reg-ro"))
    as_reader = {"uri": auth_server.uri, "env": READER}
    data = ok_json(
        run_script(
            "query_experiments",
            "models",
            "--filter",
            f"name LIKE '{seeded['prefix']}%'",
            "--format",
            "json",
            **as_reader,
        )
    )
    assert sorted(m["name"] for m in data["models"]) == sorted([seeded["main"], seeded["other"]])
    one = ok_json(
        run_script(
            "query_experiments", "model", seeded["main"], "--alias", "challenger", "--format", "json", **as_reader
        )
    )
    assert one["run_id"] == seeded["runs"][2] and one["params"] == {"lr": str(0.1 / 3), "depth": "5"}
    cmp = ok_json(
        run_script(
            "query_experiments",
            "compare",
            f"models:/{seeded['main']}@champion",
            f"models:/{seeded['main']}@challenger",
            "--format",
            "json",
            **as_reader,
        )
    )
    assert [r["run_id"] for r in cmp["runs"]] == [seeded["runs"][0], seeded["runs"][2]]


def test_embedded_store_answers_the_registry(run_script, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    seeded = seed_registry(MlflowClient(uri, registry_uri=uri), unique("reg-local"))
    data = ok_json(run_script("query_experiments", "models", "--format", "json", uri=uri, cwd=tmp_path))
    assert sorted(m["name"] for m in data["models"]) == sorted([seeded["main"], seeded["other"]])
    versions = ok_json(
        run_script("query_experiments", "model", seeded["main"], "--format", "json", uri=uri, cwd=tmp_path)
    )
    assert [v["version"] for v in versions["versions"]] == ["3", "1"]
    res = run_script("query_experiments", "model", seeded["main"], "--alias", "nope", uri=uri, cwd=tmp_path)
    assert_clean_error(res, 3, "champion")
