"""The scripts against a production-shaped server: PostgreSQL backend, proxied artifact serving
(--serve-artifacts, the default with --artifacts-destination), two workers (conftest.pg_server).
Where PostgreSQL behaves differently from sqlite: LIKE is case-sensitive (ILIKE is not), NaN is
a real float value that sorts above every number, ordering with missing values and ties, plus
export, artifacts through the proxy and create_experiment.

Start-up of the PostgreSQL cluster and the server costs once per session (about 30-45 s here).
The scripts' integration suites also run against this server: `backend` in tests/conftest.py.
"""

from __future__ import annotations

import csv
import json
import math

import pytest

from conftest import unique

Q = "query_experiments"
pytestmark = pytest.mark.slow  # PostgreSQL


@pytest.fixture(scope="module")
def pg(pg_server):
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    cl = MlflowClient(pg_server.uri)
    prefix = unique("PgCase")
    exp = cl.create_experiment(prefix + "-Runs")
    cl.create_experiment(prefix.lower() + "-lower")
    ids = {}
    rows = [  # name, model param, score metric (None: not logged), tie metric
        ("upper", "Alpha", 0.5, 1.0),
        ("lower", "alpha", 0.9, 1.0),
        ("shout", "ALPHA", float("nan"), 1.0),
        ("other", "beta", None, 2.0),
        ("neg", "alphabet", -1.0, 1.0),
    ]
    for i, (name, model, score, tie) in enumerate(rows):
        rid = cl.create_run(exp, run_name=name, start_time=1_700_000_000_000 + i * 1000).info.run_id
        metrics = [Metric("tie", tie, 0, 0)]
        if score is not None:
            metrics.append(Metric("score", score, 0, 0))
        cl.log_batch(rid, metrics=metrics, params=[Param("model", model)], tags=[RunTag("Team", model.upper())])
        cl.set_terminated(rid)
        ids[name] = rid
    # a history with NaN inside
    hist = [1.0, 2.0, float("nan"), 0.5, 3.0]
    cl.log_batch(ids["upper"], metrics=[Metric("curve", v, 1_700_000_000_000 + s, s) for s, v in enumerate(hist)])
    cl.log_text(ids["upper"], "hello from postgres", "reports/summary.txt")
    cl.log_dict(ids["upper"], {"a": 1}, "config.json")
    return {"uri": pg_server.uri, "exp": exp, "name": prefix + "-Runs", "prefix": prefix, "ids": ids}


def run_pg(run_script, pg, *args):
    res = run_script(*args, uri=pg["uri"])
    assert res.code == 0, res.err
    return res


def names(res) -> list[str]:
    return [r["run_name"] for r in json.loads(res.out)["runs"]]


def test_like_is_case_sensitive_and_ilike_is_not(run_script, pg):
    like = run_pg(
        run_script, pg, Q, "runs", "-e", pg["name"], "--filter", "params.model LIKE 'alpha%'", "--format", "json"
    )
    assert sorted(names(like)) == ["lower", "neg"]
    ilike = run_pg(
        run_script, pg, Q, "runs", "-e", pg["name"], "--filter", "params.model ILIKE 'alpha%'", "--format", "json"
    )
    assert sorted(names(ilike)) == ["lower", "neg", "shout", "upper"]
    eq = run_pg(run_script, pg, Q, "runs", "-e", pg["name"], "--filter", "tags.Team = 'ALPHA'", "--format", "json")
    assert sorted(names(eq)) == ["lower", "shout", "upper"]
    # OR of a LIKE and an ILIKE group: merged without duplicates
    both = run_pg(
        run_script,
        pg,
        Q,
        "runs",
        "-e",
        pg["name"],
        "--filter",
        "params.model LIKE 'Al%' OR params.model ILIKE 'beta'",
        "--format",
        "json",
    )
    assert sorted(names(both)) == ["other", "upper"]


def test_experiment_name_filters_and_name_like(run_script, pg):
    like = run_pg(run_script, pg, Q, "experiments", "--filter", f"name LIKE '{pg['prefix']}%'", "--format", "json")
    assert [e["name"] for e in json.loads(like.out)["experiments"]] == [pg["name"]]
    ilike = run_pg(run_script, pg, Q, "experiments", "--name-like", pg["prefix"].upper(), "--format", "json")
    assert sorted(e["name"] for e in json.loads(ilike.out)["experiments"]) == sorted(
        [pg["name"], pg["prefix"].lower() + "-lower"]
    )


def test_nan_metric_search_order_and_display(run_script, pg):
    # PostgreSQL stores NaN as a float greater than every number; MLflow keeps is_nan beside it.
    desc = run_pg(run_script, pg, Q, "runs", "-e", pg["name"], "--order-by", "metrics.score DESC", "--format", "json")
    order = names(desc)
    assert order.index("lower") < order.index("upper") < order.index("neg")  # numbers in order
    assert order[-1] == "other"  # a run without the metric comes last
    shout = next(r for r in json.loads(desc.out)["runs"] if r["run_name"] == "shout")
    assert shout["metrics"]["score"] is None  # NaN is not JSON: shown as null
    md = run_pg(run_script, pg, Q, "run", pg["ids"]["shout"])
    assert "score=NaN" in md.out
    gt = run_pg(run_script, pg, Q, "runs", "-e", pg["name"], "--filter", "metrics.score > 0", "--format", "json")
    assert "lower" in names(gt) and "upper" in names(gt) and "neg" not in names(gt)
    best = run_pg(run_script, pg, Q, "best", "-e", pg["name"], "--metric", "score", "--max", "--format", "json")
    assert names(best)[0] == "lower"  # NaN never wins
    best_min = run_pg(run_script, pg, Q, "best", "-e", pg["name"], "--metric", "score", "--min", "--format", "json")
    assert names(best_min)[0] == "neg" and "shout" not in names(best_min)


def test_metric_history_with_nan(run_script, pg):
    res = run_pg(
        run_script, pg, "get_metric_history", "--run-id", pg["ids"]["upper"], "--metrics", "curve", "--format", "json"
    )
    (s,) = json.loads(res.out)["series"]
    assert s["points"] == 5 and s["nan_count"] == 1
    assert (s["min"]["value"], s["min"]["step"]) == (0.5, 3) and (s["max"]["value"], s["max"]["step"]) == (3.0, 4)
    md = run_pg(run_script, pg, "get_metric_history", "--run-id", pg["ids"]["upper"], "--metrics", "curve")
    assert "NaN" in md.out


def test_ties_and_missing_values_order_like_sqlite(run_script, pg):
    """Ties on the order key fall back to start time (newest first), then run id: the same on
    the server (one group) and in the client's merge of OR groups."""
    server = run_pg(run_script, pg, Q, "runs", "-e", pg["name"], "--order-by", "metrics.tie ASC", "--format", "json")
    assert names(server) == ["neg", "shout", "lower", "upper", "other"]
    merged = run_pg(
        run_script,
        pg,
        Q,
        "runs",
        "-e",
        pg["name"],
        "--order-by",
        "metrics.tie ASC",
        "--filter",
        "metrics.tie = 1 OR metrics.tie = 2",
        "--format",
        "json",
    )
    assert names(merged) == names(server)


def test_export_with_nan_and_missing(run_script, pg, tmp_path):
    target = tmp_path / "pg.csv"
    run_pg(run_script, pg, Q, "export", "-e", pg["name"], "--output", str(target), "--page-size", "2")
    rows = {r["run_name"]: r for r in csv.DictReader(target.open())}
    assert set(rows) == {"upper", "lower", "shout", "other", "neg"}
    assert float(rows["lower"]["metrics.score"]) == 0.9 and rows["other"]["metrics.score"] == ""
    assert math.isnan(float(rows["shout"]["metrics.score"]))
    target_json = tmp_path / "pg.json"
    run_pg(run_script, pg, Q, "export", "-e", pg["name"], "--output", str(target_json))
    records = {r["run_name"]: r for r in json.loads(target_json.read_text())}
    assert records["shout"]["metrics"]["score"] is None and records["lower"]["params"]["model"] == "alpha"


def test_artifacts_through_proxied_serving(run_script, pg):
    res = run_pg(run_script, pg, Q, "artifacts", pg["ids"]["upper"], "--format", "json")
    data = json.loads(res.out)
    assert data["root_uri"].startswith("mlflow-artifacts:")
    assert [(a["path"], a["is_dir"]) for a in data["artifacts"]] == [("reports", True), ("config.json", False)]
    inner = json.loads(
        run_pg(run_script, pg, Q, "artifacts", pg["ids"]["upper"], "--path", "reports", "--format", "json").out
    )
    assert [(a["path"], a["size"]) for a in inner["artifacts"]] == [("reports/summary.txt", len("hello from postgres"))]


def test_create_experiment_idempotent_and_restore(run_script, pg):
    from mlflow.tracking import MlflowClient

    name = unique("pg-create")
    first = run_pg(run_script, pg, "create_experiment", "--name", name, "--tag", "team=quant", "--format", "json")
    created = json.loads(first.out)
    assert created["status"] == "created" and created["tags"] == {"team": "quant"}
    again = json.loads(run_pg(run_script, pg, "create_experiment", "--name", name, "--format", "json").out)
    assert again["status"] == "exists" and again["experiment_id"] == created["experiment_id"]
    MlflowClient(pg["uri"]).delete_experiment(created["experiment_id"])
    refused = run_script("create_experiment", "--name", name, uri=pg["uri"])
    assert refused.code == 2 and "--restore" in refused.err
    restored = json.loads(
        run_pg(run_script, pg, "create_experiment", "--name", name, "--restore", "--format", "json").out
    )
    assert restored["status"] == "restored" and restored["lifecycle_stage"] == "active"
