"""query_experiments.py against the real tracking server fixture (and the embedded store).

One module-scoped seed: two experiments with runs carrying metrics, params (numeric and text,
keys with spaces and dashes), tags, a dataset, artifacts, nested runs, failed/killed runs and a
deleted run. Each test drives the script through main() (or `uv run`) and checks which runs,
which order, which values.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
import time
from types import SimpleNamespace

import pytest

from conftest import ADMIN_PASSWORD, READER_PASSWORD, READER_USER, unique
from reliability import error_lines

T0 = 1_700_000_000_000  # fixed start times make the default order (start_time DESC) predictable

# name: (params, metrics, tags, status)
A_RUNS = {
    "alpha": (
        {"lr": "0.01", "learning rate": "0.1", "batch-size": "32", "opt": "adam", "model": "cnn"},
        {"acc": 0.90, "loss": 0.30, "train_loss": 0.10, "val_loss": 0.35, "sharpe": 1.5},
        {"team": "quant"},
        "FINISHED",
    ),
    "beta": (
        {"lr": "0.001", "learning rate": "0.01", "batch-size": "64", "opt": "sgd", "model": "cnn"},
        {"acc": 0.80, "loss": 0.50, "train_loss": 0.40, "val_loss": 0.42, "sharpe": 0.7},
        {"team": "research"},
        "FINISHED",
    ),
    "gamma": (
        {"lr": "0.1", "learning rate": "1", "batch-size": "32", "opt": "adam", "model": "mlp"},
        {"acc": 0.95, "loss": 0.20, "train_loss": 0.05, "val_loss": 0.50, "sharpe": 2.1},
        {"team": "quant", "note": "buy OR sell"},
        "FINISHED",
    ),
    "delta": (
        {"lr": "0.0005", "learning rate": "0.5", "batch-size": "128", "opt": "adam", "model": "mlp"},
        {"acc": 0.85, "loss": 0.40, "train_loss": 0.38, "val_loss": 0.39, "sharpe": 1.1},
        {"team": "ops"},
        "FINISHED",
    ),
    "broken": (
        {"lr": "0.02", "opt": "adam"},
        {"acc": 0.10},
        {"backtest.error": "ValueError: no prices for 2020-01-01"},
        "FAILED",
    ),
    "stopped": ({"lr": "0.03"}, {}, {}, "KILLED"),
}


def _make_run(client, exp_id, name, i, params, metrics, tags, status):
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(exp_id, start_time=T0 + i * 1000, run_name=name)
    rid = run.info.run_id
    client.log_batch(
        rid,
        metrics=[Metric(k, v, T0 + i * 1000, 3) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(rid, status=status, end_time=T0 + i * 1000 + 65_000)
    return rid


@pytest.fixture(scope="module")
def seed(server, client):
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    exp_a = client.create_experiment(unique("qe-alpha"), tags={"team": "quant", "mlflow.note.content": "Seeded A"})
    exp_b = client.create_experiment(unique("qe-beta"))
    ids = {}
    for i, (name, (params, metrics, tags, status)) in enumerate(A_RUNS.items()):
        ids[name] = _make_run(client, exp_a, name, i, params, metrics, tags, status)
    ids["deleted"] = _make_run(client, exp_a, "deleted", 10, {"lr": "0.5"}, {"acc": 0.99}, {}, "FINISHED")
    client.delete_run(ids["deleted"])
    # Dataset and artifacts on alpha.
    dataset = mlflow.data.from_pandas(pd.DataFrame({"close": [1.0, 2.0, 3.0]}), name="btc-prices")
    client.log_inputs(
        ids["alpha"], [DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "train")])]
    )
    client.log_text(ids["alpha"], "hello world", "summary.txt")
    client.log_text(ids["alpha"], "inner", "model/weights.txt")
    # Experiment B: nested runs and a text-valued lr.
    ids["parent"] = _make_run(client, exp_b, "sweep", 20, {"lr": "0.01"}, {"acc": 0.5}, {}, "FINISHED")
    for j in (1, 2):
        ids[f"child{j}"] = _make_run(
            client,
            exp_b,
            f"child-{j}",
            20 + j,
            {"lr": str(0.01 * j)},
            {"acc": 0.5 + j / 10},
            {"mlflow.parentRunId": ids["parent"]},
            "FINISHED",
        )
    ids["textlr"] = _make_run(client, exp_b, "auto-lr", 30, {"lr": "auto"}, {"acc": 0.6}, {}, "FINISHED")
    names = {
        "a": client.get_experiment(exp_a).name,
        "b": client.get_experiment(exp_b).name,
    }
    return SimpleNamespace(a=exp_a, b=exp_b, ids=ids, names=names)


def names_in(out: str) -> list[str]:
    """Run names from the first column of a markdown table."""
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| run |")]
    return [row.split("|")[1].strip() for row in rows]


def as_json(res):
    assert res.code == 0, res.err
    return json.loads(res.out)


# ---------------------------------------------------------------------------------------------
# experiments
# ---------------------------------------------------------------------------------------------
def test_experiments_name_filter_and_columns(run_script, seed):
    res = run_script("query_experiments", "experiments", "--name-like", seed.names["a"][3:], "--count-runs")
    assert res.code == 0, res.err
    assert res.out.startswith("store: http://127.0.0.1:")
    assert "| name | id | lifecycle | last update | runs | description | tags |" in res.out
    row = next(line for line in res.out.splitlines() if seed.names["a"] in line)
    cells = [x.strip() for x in row.split("|")[1:-1]]
    assert cells[1] == seed.a and cells[2] == "active"
    assert cells[4] == "6"  # active runs: the deleted one is not counted
    assert cells[5] == "Seeded A" and cells[6] == "team=quant"
    assert seed.names["b"] not in res.out


def test_experiments_paging_next_command_works(run_script, seed, client):
    for _ in range(3):
        client.create_experiment(unique("qe-page"))
    first = run_script("query_experiments", "experiments", "--name-like", "qe-page", "--max-results", "2")
    assert first.code == 0, first.err
    line = next(line for line in first.out.splitlines() if "next page:" in line)
    cmd = shlex.split(line.split("`")[1])
    assert cmd[:3] == ["uv", "run", "scripts/query_experiments.py"]
    second = run_script("query_experiments", *cmd[3:])
    assert second.code == 0, second.err
    seen1 = {line.split("|")[1].strip() for line in first.out.splitlines() if "qe-page-" in line}
    seen2 = {line.split("|")[1].strip() for line in second.out.splitlines() if "qe-page-" in line}
    assert len(seen1) == 2 and seen2 and not (seen1 & seen2)


def test_experiments_deleted_view(run_script, client):
    name = unique("qe-gone")
    client.delete_experiment(client.create_experiment(name))
    active = run_script("query_experiments", "experiments", "--name-like", name)
    deleted = as_json(
        run_script("query_experiments", "experiments", "--name-like", name, "--view", "deleted", "--format", "json")
    )
    assert (
        active.code == 0
        and f"| {name} |" not in active.out
        and active.out.rstrip().endswith("0 active experiments matching `name ILIKE '%" + name + "%'`")
    )
    assert [(e["name"], e["lifecycle"]) for e in deleted["experiments"]] == [(name, "deleted")]


def test_experiments_via_uv_run_subprocess(uv_run, seed):
    res = uv_run("query_experiments", "experiments", "--name-like", seed.names["b"])
    assert res.code == 0, res.err
    assert seed.names["b"] in res.out and f"| {seed.b} |" in res.out


def test_embedded_store_with_nothing_configured(uv_run, tmp_path):
    res = uv_run("query_experiments", "experiments", uri=None, cwd=tmp_path)
    assert res.code == 0, res.err
    assert (
        res.out.splitlines()[0]
        == f"store: sqlite:///{tmp_path.resolve() / 'mlflow.db'} (embedded default, nothing configured)"
    )
    assert "| Default | 0 | active |" in res.out


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------
def test_runs_default_order_and_deleted_hidden(run_script, seed):
    res = run_script("query_experiments", "runs", "--experiment", seed.names["a"])
    assert res.code == 0, res.err
    assert names_in(res.out) == ["stopped", "broken", "delta", "gamma", "beta", "alpha"]  # newest first
    deleted = run_script("query_experiments", "runs", "--experiment", seed.a, "--view", "deleted")
    assert names_in(deleted.out) == ["deleted"]


def test_runs_server_filter_order_and_named_columns(run_script, seed):
    res = run_script(
        "query_experiments",
        "runs",
        "-e",
        seed.names["a"],
        "--filter",
        "metrics.acc > 0.8 AND params.opt = 'adam'",
        "--order-by",
        "metrics.sharpe DESC",
    )
    assert res.code == 0, res.err
    assert names_in(res.out) == ["gamma", "alpha", "delta"]
    header = next(line for line in res.out.splitlines() if line.startswith("| run |"))
    assert "metrics.acc" in header and "params.opt" in header and "metrics.sharpe" in header
    assert "client-side" not in res.out  # nothing ran on the client


def test_runs_quoted_keys_with_space_and_dash(run_script, seed):
    res = run_script(
        "query_experiments",
        "runs",
        "-e",
        seed.a,
        "--filter",
        "params.\"learning rate\" = '0.1' OR params.`batch-size` = '64'",
        "--format",
        "json",
    )
    data = as_json(res)
    assert sorted(r["run_name"] for r in data["runs"]) == ["alpha", "beta"]
    assert data["server_filters"] == ["params.\"learning rate\" = '0.1'", "params.`batch-size` = '64'"]


def test_runs_or_merges_dedups_and_resorts(run_script, seed):
    res = run_script(
        "query_experiments",
        "runs",
        "-e",
        seed.a,
        "--filter",
        "params.model = 'cnn' OR tags.team = 'quant'",
        "--order-by",
        "metrics.acc ASC",
    )
    assert res.code == 0, res.err
    # cnn: alpha, beta; quant: alpha, gamma -> alpha once; re-sorted by acc ascending
    assert names_in(res.out) == ["beta", "alpha", "gamma"]
    assert "OR: 2 AND-groups" in res.out and "merged by run id" in res.out


def test_or_inside_quotes_is_not_split(run_script, seed):
    res = run_script(
        "query_experiments", "runs", "-e", seed.a, "--filter", "tags.note = 'buy OR sell' AND params.lr >= 0.1"
    )
    assert res.code == 0, res.err
    assert names_in(res.out) == ["gamma"]
    assert "OR:" not in res.out and "server filter: `tags.note = 'buy OR sell'`" in res.out


def test_runs_numeric_param_comparison_client_side(run_script, seed):
    res = run_script(
        "query_experiments",
        "runs",
        "-e",
        seed.a,
        "--filter",
        "params.lr > 0.001 AND metrics.acc >= 0.5",
        "--order-by",
        "params.lr ASC",
    )
    assert res.code == 0, res.err
    assert names_in(res.out) == ["alpha", "gamma"]  # 0.01 and 0.1 (beta is 0.001, delta 0.0005; broken has acc 0.1)
    assert "evaluated client-side" in res.out and "`params.lr > 0.001`" in res.out
    assert "server filter" not in res.out or "`metrics.acc >= 0.5`" in res.out
    data = as_json(
        run_script("query_experiments", "runs", "-e", seed.a, "--filter", "params.lr = 0.001", "--format", "json")
    )
    assert [r["run_name"] for r in data["runs"]] == ["beta"] and data["client_side"] == ["params.lr = 0.001"]


def test_runs_numeric_param_with_text_value_is_clear_error(run_script, seed):
    res = run_script("query_experiments", "runs", "-e", seed.b, "--filter", "params.lr > 0.001")
    assert res.code == 2
    assert "auto-lr" in res.err and seed.ids["textlr"] in res.err and "'auto'" in res.err
    assert "Traceback" not in res.err and len(error_lines(res.err)) == 1


def test_runs_client_side_paging_by_offset(run_script, seed):
    args = ["runs", "-e", seed.a, "--filter", "params.lr >= 0.001", "--max-results", "2"]
    first = run_script("query_experiments", *args)
    assert first.code == 0, first.err
    assert names_in(first.out) == ["stopped", "broken"] and "runs 1–2 of 5" in first.out
    cmd = shlex.split(next(line for line in first.out.splitlines() if "next page:" in line).split("`")[1])
    second = run_script("query_experiments", *cmd[3:])
    assert names_in(second.out) == ["gamma", "beta"] and "runs 3–4 of 5" in second.out


def test_runs_server_paging_next_command(run_script, seed):
    first = run_script("query_experiments", "runs", "-e", seed.a, "--max-results", "4")
    assert names_in(first.out) == ["stopped", "broken", "delta", "gamma"]
    cmd = shlex.split(next(line for line in first.out.splitlines() if "next page:" in line).split("`")[1])
    second = run_script("query_experiments", *cmd[3:])
    assert second.code == 0, second.err
    assert names_in(second.out) == ["beta", "alpha"] and "next page" not in second.out


def test_runs_columns_and_csv(run_script, seed):
    res = run_script(
        "query_experiments",
        "runs",
        "-e",
        seed.a,
        "--filter",
        "attributes.run_name = 'alpha'",
        "--columns",
        "params.batch-size,tags.team,duration",
        "--format",
        "csv",
    )
    assert res.code == 0, res.err
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert len(rows) == 1
    assert rows[0]["run"] == "alpha" and rows[0]["params.batch-size"] == "32" and rows[0]["tags.team"] == "quant"
    assert rows[0]["duration"] == "65000" and rows[0]["start"].startswith("2023-11-14T22:13:20")


def test_runs_all_experiments_by_default(run_script, seed):
    data = as_json(
        run_script(
            "query_experiments", "runs", "--filter", f"attributes.run_id = '{seed.ids['child1']}'", "--format", "json"
        )
    )
    assert [r["run_name"] for r in data["runs"]] == ["child-1"]
    assert any(e["id"] == seed.a for e in data["experiments"]) and any(e["id"] == seed.b for e in data["experiments"])


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["runs", "--experiment", "qe-alpha"], 3, "did you mean"),
        (["runs", "--filter", "metrics.acc >>> 1"], 2, "the server rejected the request"),
        (["runs", "--filter", "params.lr = 'x"], 2, "unclosed '"),
        (["runs", "--order-by", "metrics.acc SIDEWAYS"], 2, "--order-by"),
        (["run", "0123456789abcdef0123456789abcdef"], 3, "no run with id"),
        (["compare", "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"], 3, "no run with id"),
    ],
)
def test_bad_input_one_line_errors(run_script, seed, args, code, needle):
    res = run_script("query_experiments", *args)
    assert res.code == code, res.err
    assert needle in res.err and error_lines(res.err)[0].startswith("error: ")
    assert len(error_lines(res.err)) == 1 and "Traceback" not in res.err


def test_no_server_fails_fast(run_script):
    start = time.time()
    res = run_script("query_experiments", "runs", uri="http://127.0.0.1:9")
    assert res.code == 4 and "not reachable" in res.err
    assert time.time() - start < 5


# ---------------------------------------------------------------------------------------------
# run, compare
# ---------------------------------------------------------------------------------------------
def test_run_describes_everything_compactly(run_script, seed):
    res = run_script("query_experiments", "run", seed.ids["alpha"])
    assert res.code == 0, res.err
    out = res.out
    assert f"**alpha** · {seed.ids['alpha']} · FINISHED · 1m05s" in out
    assert f"experiment {seed.names['a']} ({seed.a}) · 2023-11-14 22:13:20" in out
    for k, v in A_RUNS["alpha"][0].items():
        assert f"{k}={v}" in out
    assert "metrics (step 3): acc=0.9; loss=0.3; sharpe=1.5; train_loss=0.1; val_loss=0.35" in out
    assert "tags: team=quant (+" in out and "mlflow.user" not in out and "--all-tags" in out
    assert "btc-prices (train, code, digest " in out
    assert "summary.txt (11 B)" in out and "model/" in out
    full = as_json(run_script("query_experiments", "run", seed.ids["alpha"], "--all-tags", "--format", "json"))
    assert full["tags"]["mlflow.runName"] == "alpha" and full["metrics"]["acc"] == {"value": 0.9, "step": 3}
    assert full["datasets"][0]["name"] == "btc-prices" and full["datasets"][0]["context"] == "train"


def test_run_parent_and_children(run_script, seed):
    parent = run_script("query_experiments", "run", seed.ids["parent"], "--format", "json")
    data = as_json(parent)
    assert sorted(ch["run_name"] for ch in data["children"]) == ["child-1", "child-2"] and data["parent"] is None
    child = as_json(run_script("query_experiments", "run", seed.ids["child1"], "--format", "json"))
    assert child["parent"] == {"run_id": seed.ids["parent"], "run_name": "sweep"} and child["children"] == []


def test_compare_shows_only_differences(run_script, seed):
    res = run_script("query_experiments", "compare", seed.ids["alpha"], seed.ids["gamma"])
    assert res.code == 0, res.err
    fields = [line.split("|")[1].strip() for line in res.out.splitlines() if line.startswith("| ")][1:]
    assert "params.lr" in fields and "metrics.acc" in fields and "params.model" in fields
    assert "params.opt" not in fields and "tags.team" not in fields and "status" not in fields
    assert "identical in every run (" in res.out and "params.opt adam" in res.out.split("identical in every run (")[1]
    row = next(line for line in res.out.splitlines() if line.startswith("| params.lr |"))
    assert [x.strip() for x in row.split("|")[2:4]] == ["0.01", "0.1"]
    full = as_json(
        run_script("query_experiments", "compare", seed.ids["alpha"], seed.ids["gamma"], "--all", "--format", "json")
    )
    same = {r["field"]: r["same"] for r in full["rows"]}
    assert same["params.opt"] is True and same["params.lr"] is False and full["identical"] >= 3


# ---------------------------------------------------------------------------------------------
# best, overfit, failed, aggregate
# ---------------------------------------------------------------------------------------------
def test_best_max_and_min_with_filter(run_script, seed):
    res = run_script("query_experiments", "best", "-e", seed.a, "--metric", "sharpe", "--top", "2")
    assert res.code == 0, res.err
    assert names_in(res.out) == ["gamma", "alpha"] and "**gamma**" in res.out
    low = as_json(
        run_script(
            "query_experiments",
            "best",
            "-e",
            seed.a,
            "--metric",
            "loss",
            "--top",
            "3",
            "--filter",
            "params.lr > 0.0006",
            "--format",
            "json",
        )
    )
    assert [r["run_name"] for r in low["runs"]] == ["gamma", "alpha", "beta"]  # min guessed from "loss"


def test_overfit_direction_aware(run_script, seed):
    loss = run_script(
        "query_experiments",
        "overfit",
        "-e",
        seed.a,
        "--train",
        "train_loss",
        "--test",
        "val_loss",
        "--threshold",
        "0.1",
    )
    assert loss.code == 0, loss.err
    assert names_in(loss.out) == ["gamma", "alpha"]  # gaps 0.45 and 0.25; beta 0.02, delta 0.01
    assert "test − train" in loss.out and "lower is better" in loss.out
    rel = as_json(
        run_script(
            "query_experiments",
            "overfit",
            "-e",
            seed.a,
            "--train",
            "train_loss",
            "--test",
            "val_loss",
            "--threshold",
            "3",
            "--relative",
            "--format",
            "json",
        )
    )
    assert [r["run_name"] for r in rel["runs"]] == ["gamma"]  # 0.45/0.05 = 9; alpha 2.5
    acc = as_json(
        run_script(
            "query_experiments",
            "overfit",
            "-e",
            seed.a,
            "--train",
            "acc",
            "--test",
            "sharpe",
            "--max",
            "--format",
            "json",
        )
    )
    assert acc["rule"].startswith("gap = train − test") and [r["run_name"] for r in acc["runs"]] == ["beta"]


def test_failed_shows_error_tags(run_script, seed):
    res = run_script("query_experiments", "failed", "-e", seed.a)
    assert res.code == 0, res.err
    assert names_in(res.out) == ["stopped", "broken"]
    assert "backtest.error: ValueError: no prices for 2020-01-01" in res.out
    data = as_json(run_script("query_experiments", "failed", "-e", seed.a, "--format", "json"))
    assert {r["run_name"]: r["status"] for r in data["runs"]} == {"stopped": "KILLED", "broken": "FAILED"}


def test_aggregate_numbers(run_script, seed):
    data = as_json(
        run_script(
            "query_experiments",
            "aggregate",
            "-e",
            seed.a,
            "--group-by",
            "params.model",
            "--metric",
            "acc",
            "--include-unfinished",
            "--format",
            "json",
        )
    )
    groups = {g["group"]["params.model"]: g for g in data["groups"]}
    assert set(groups) == {"cnn", "mlp", None}
    assert groups["mlp"]["runs"] == 2 and groups["mlp"]["stats"]["acc"]["mean"] == pytest.approx(0.9)
    assert groups["cnn"]["stats"]["acc"]["min"] == pytest.approx(0.8) and groups["cnn"]["stats"]["acc"][
        "max"
    ] == pytest.approx(0.9)
    assert groups[None]["runs"] == 2 and groups[None]["stats"]["acc"]["n"] == 1  # broken has acc, stopped has none
    assert [g["group"]["params.model"] for g in data["groups"]] == ["mlp", "cnn", None]  # by mean acc
    md = run_script("query_experiments", "aggregate", "-e", seed.a, "-g", "tags.team", "-m", "sharpe")
    row = next(line for line in md.out.splitlines() if line.startswith("| quant |"))
    assert [x.strip() for x in row.split("|")[1:-1]] == ["quant", "2", "2", "1.8", "1.5", "2.1"]


# ---------------------------------------------------------------------------------------------
# export, artifacts
# ---------------------------------------------------------------------------------------------
def test_export_csv_json_and_force(run_script, seed, tmp_path):
    out = tmp_path / "runs.csv"
    res = run_script("query_experiments", "export", "-e", seed.a, "--output", out, "--page-size", "2")
    assert res.code == 0, res.err
    assert "Exported 6 runs" in res.out
    rows = list(csv.DictReader(out.open()))
    assert [r["run_name"] for r in rows] == ["stopped", "broken", "delta", "gamma", "beta", "alpha"]
    alpha = rows[-1]
    assert alpha["metrics.acc"] == "0.9" and alpha["params.learning rate"] == "0.1" and alpha["tags.team"] == "quant"
    assert "tags.mlflow.runName" not in alpha and rows[0]["metrics.acc"] == ""
    again = run_script("query_experiments", "export", "-e", seed.a, "--output", out)
    assert again.code == 2 and "--force" in again.err
    js = tmp_path / "runs.json"
    res = run_script("query_experiments", "export", "-e", seed.a, "--filter", "params.lr > 0.005", "--output", js)
    assert res.code == 0, res.err and "evaluated client-side" in res.out
    records = json.loads(js.read_text())
    assert sorted(r["run_name"] for r in records) == ["alpha", "broken", "gamma", "stopped"]
    gamma = next(r for r in records if r["run_name"] == "gamma")
    assert gamma["metrics"]["sharpe"] == 2.1 and gamma["params"]["batch-size"] == "32" and gamma["status"] == "FINISHED"
    forced = run_script(
        "query_experiments", "export", "-e", seed.a, "--output", js, "--force", "--filter", "params.opt = 'sgd'"
    )
    assert forced.code == 0 and [r["run_name"] for r in json.loads(js.read_text())] == ["beta"]


def test_artifacts_listing(run_script, seed):
    res = run_script("query_experiments", "artifacts", seed.ids["alpha"], "--format", "json")
    data = as_json(res)
    assert [(a["path"], a["is_dir"], a["size"]) for a in data["artifacts"]] == [
        ("model", True, None),
        ("summary.txt", False, 11),
    ]
    inner = as_json(
        run_script("query_experiments", "artifacts", seed.ids["alpha"], "--path", "model", "--format", "json")
    )
    assert [(a["path"], a["size"]) for a in inner["artifacts"]] == [("model/weights.txt", 5)]
    md = run_script("query_experiments", "artifacts", seed.ids["alpha"])
    assert "| summary.txt | 11 B |  |" in md.out and "| model/ |  | yes |" in md.out


def test_query_commands_never_write(run_script, seed, client):
    before = client.get_run(seed.ids["alpha"])
    for args in (["runs", "-e", seed.a], ["run", seed.ids["alpha"]], ["best", "-e", seed.a, "-m", "acc"]):
        assert run_script("query_experiments", *args).code == 0
    after = client.get_run(seed.ids["alpha"])
    assert after.data.tags == before.data.tags and after.data.params == before.data.params


# ---------------------------------------------------------------------------------------------
# authentication
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_seed(auth_server):
    from mlflow.tracking import MlflowClient

    from reliability import credentials_env

    with credentials_env(*auth_server.admin):
        client = MlflowClient(tracking_uri=auth_server.uri)
        name = unique("qe-auth")
        exp = client.create_experiment(name)
        run = client.create_run(exp, run_name="secured")
        client.log_metric(run.info.run_id, "acc", 0.75)
    return name


def test_reader_can_query_and_wrong_password_exits_5(run_script, auth_server, auth_seed):
    ok = run_script(
        "query_experiments",
        "runs",
        "-e",
        auth_seed,
        uri=auth_server.uri,
        env={"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD},
    )
    assert ok.code == 0, ok.err
    assert names_in(ok.out) == ["secured"] and "0.75" in ok.out
    assert READER_PASSWORD not in ok.both
    bad = run_script(
        "query_experiments",
        "experiments",
        uri=auth_server.uri,
        env={"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": "wrong-" + READER_PASSWORD},
    )
    assert bad.code == 5 and "401" in bad.err
    assert READER_PASSWORD not in bad.both and ADMIN_PASSWORD not in bad.both
