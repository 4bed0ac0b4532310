"""`health`: one experiment seeded with each kind of anomaly (a stale RUNNING run, FAILED and KILLED
runs, a NaN last value, a diverging loss, an outlier, two runs with identical params and different
results) is listed kind by kind with the right runs and reasons; a clean experiment lists nothing.
Expected sets are computed here with numpy from the values logged, not taken from the script.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from conftest import unique
from reliability import assert_clean_error

HOUR_MS = 3_600_000
NORMAL_ACC = [0.86, 0.87, 0.88, 0.89, 0.90, 0.91, 0.92, 0.93]


def make_run(cl, exp, name, params, acc=None, loss=None, status="FINISHED", start=None, tags=None):
    from mlflow.entities import Metric, Param, RunTag

    start = start or int(time.time() * 1000)
    rid = cl.create_run(exp, run_name=name, start_time=start).info.run_id
    metrics = [Metric("val_acc", acc, start, 0)] if acc is not None else []
    metrics += [Metric("loss", v, start + s, s) for s, v in enumerate(loss or [])]
    cl.log_batch(
        rid,
        metrics=metrics,
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    if status != "RUNNING":
        cl.set_terminated(rid, status=status)
    return rid


def seed_clean(cl, name: str) -> dict:
    exp = cl.create_experiment(name)
    runs = {}
    for i, acc in enumerate(NORMAL_ACC):
        loss = [1 / (s + 1) + 0.05 * i for s in range(10)]
        runs[f"ok{i}"] = (
            make_run(cl, exp, f"ok{i}", {"lr": str(0.001 * (i + 1)), "opt": "adam"}, acc, loss),
            acc,
            loss,
        )
    return {"exp": exp, "name": name, "runs": runs}


@pytest.fixture(scope="module")
def anomalies(server, client):
    seeded = seed_clean(client, unique("health-bad"))
    exp, runs, now = seeded["exp"], seeded["runs"], int(time.time() * 1000)
    plain = [1 / (s + 1) for s in range(10)]
    specs = {
        "outlier": ({"lr": "0.5"}, 0.30, plain),
        "nan": ({"lr": "0.6"}, 0.90, plain[:9] + [math.nan]),
        "diverge": ({"lr": "0.7"}, 0.90, plain[:6] + [2.0, 5.0, 8.0, 10.0]),
        "dup-a": ({"lr": "0.05", "opt": "sgd"}, 0.885, plain),
        "dup-b": ({"lr": "0.05", "opt": "sgd"}, 0.915, plain),
    }
    for name, (params, acc, loss) in specs.items():
        runs[name] = (make_run(client, exp, name, params, acc, loss), acc, loss)
    runs["stale"] = (
        make_run(client, exp, "stale", {"lr": "0.8"}, loss=[0.5], status="RUNNING", start=now - 3 * HOUR_MS),
        None,
        [0.5],
    )
    runs["fresh"] = (make_run(client, exp, "fresh", {"lr": "0.9"}, loss=[0.5], status="RUNNING"), None, [0.5])
    runs["failed"] = (
        make_run(client, exp, "failed", {"lr": "1.0"}, status="FAILED", tags={"train.error": "CUDA out of memory"}),
        None,
        None,
    )
    runs["killed"] = (make_run(client, exp, "killed", {"lr": "1.1"}, status="KILLED"), None, None)
    return seeded


@pytest.fixture(scope="module")
def clean(server, client):
    return seed_clean(client, unique("health-ok"))


def health(run_script, name, *extra):
    res = run_script("query_experiments", "health", "--experiment", name, "--format", "json", *extra)
    assert res.code == 0, res.err
    return json.loads(res.out)


def flagged(data, kind) -> set[str]:
    return {rid for f in data["findings"] if f["kind"] == kind for rid in f["run_ids"]}


def ids(seeded, *names) -> set[str]:
    return {seeded["runs"][n][0] for n in names}


def expected_outliers(values: dict[str, float], limit: float = 3.5) -> set[str]:
    """Modified z-score (Iglewicz & Hoaglin), computed with numpy."""
    arr = np.array(list(values.values()))
    med = np.median(arr)
    mad = np.median(np.abs(arr - med))
    z = 0.6745 * (arr - med) / mad
    return {name for name, score in zip(values, z, strict=False) if abs(score) > limit}


def test_each_anomaly_listed_with_its_reason(run_script, anomalies):
    data = health(run_script, anomalies["name"], "--top", "10")
    runs = anomalies["runs"]
    assert flagged(data, "stale") == ids(anomalies, "stale")
    assert data["statuses"]["FAILED"] == 1 and data["statuses"]["KILLED"] == 1
    assert flagged(data, "failed") == ids(anomalies, "failed", "killed")
    assert flagged(data, "non_finite") == ids(anomalies, "nan")
    # divergence from the logged series: last - min > max(first - min, |min|)
    diverging = {
        n
        for n, (_, _, loss) in runs.items()
        if loss
        and len(loss) > 2
        and np.isfinite(loss[-1])
        and loss[-1] - min(loss) > max(loss[0] - min(loss), abs(min(loss)))
    }
    assert diverging == {"diverge"} and flagged(data, "diverging") == ids(anomalies, *diverging)
    # outliers: val_acc and the last loss value, per metric, among runs with a finite value
    accs = {n: acc for n, (_, acc, _) in runs.items() if acc is not None}
    losses = {n: loss[-1] for n, (_, _, loss) in runs.items() if loss and np.isfinite(loss[-1])}
    want = expected_outliers(accs) | expected_outliers(losses)
    assert want == {"outlier", "diverge"} and flagged(data, "outlier") == ids(anomalies, *want)
    assert flagged(data, "duplicate") == ids(anomalies, "dup-a", "dup-b")
    by_kind = {f["kind"]: f for f in data["findings"]}
    assert "no write for 3h" in by_kind["stale"]["reason"]
    assert (
        next(f for f in data["findings"] if f["run_name"] == "failed")["reason"]
        == "FAILED: train.error: CUDA out of memory"
    )
    assert (
        "loss = NaN" in by_kind["non_finite"]["reason"] and "get_metric_history.py" in by_kind["non_finite"]["command"]
    )
    assert by_kind["diverging"]["last"] == 10.0 and by_kind["diverging"]["min"] == pytest.approx(1 / 6)
    acc_outlier = next(f for f in data["findings"] if f["kind"] == "outlier" and f["metric"] == "val_acc")
    assert acc_outlier["value"] == 0.30 and acc_outlier["worse"] and "below the median" in acc_outlier["reason"]
    assert acc_outlier["median"] == pytest.approx(np.median(list(accs.values())))
    dup = by_kind["duplicate"]
    assert (dup["metric"], dup["min"], dup["max"]) == ("val_acc", 0.885, 0.915) and dup["params"] == {
        "lr": "0.05",
        "opt": "sgd",
    }
    assert "compare" in dup["command"] and set(dup["command"].split()[-2:]) == ids(anomalies, "dup-a", "dup-b")


def test_markdown_is_bounded_and_points_to_the_rest(run_script, anomalies):
    res = run_script("query_experiments", "health", "--experiment", anomalies["name"], "--top", "1")
    assert res.code == 0, res.err
    table = [line for line in res.out.splitlines() if line.startswith("| ") and not line.startswith("| kind")]
    kinds = [line.split(" | ")[0][2:] for line in table]
    assert len(kinds) == len(set(kinds)) == 6  # one per kind
    data = health(run_script, anomalies["name"])
    hidden = len(data["findings"]) - 6
    assert hidden > 0 and f"{hidden} more findings not shown" in res.out
    assert f"failed --experiment {anomalies['name']}" in res.out
    assert len(res.out.encode()) < 4096


def test_clean_experiment_lists_nothing(run_script, clean):
    data = health(run_script, clean["name"])
    assert data["findings"] == [] and data["runs_checked"] == len(NORMAL_ACC)
    assert set(data["key_metrics"][clean["name"]]) == {"val_acc", "loss"}  # the checks did run
    res = run_script("query_experiments", "health", "--experiment", clean["name"])
    assert res.code == 0 and "nothing to flag" in res.out and "| kind |" not in res.out


def test_stale_threshold_is_a_flag(run_script, anomalies):
    assert flagged(health(run_script, anomalies["name"], "--stale", "4h"), "stale") == set()
    # 10 ms: even a run written a moment ago counts as idle
    flagged_now = flagged(health(run_script, anomalies["name"], "--stale", "0.01s"), "stale")
    assert flagged_now == ids(anomalies, "stale", "fresh")


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (("--stale", "soon"), 2, "not a duration"),
        (("--z", "0"), 2, "positive"),
        (("--top", "0"), 2, "at least 1"),
    ],
)
def test_bad_flags(run_script, anomalies, args, code, needle):
    assert_clean_error(
        run_script("query_experiments", "health", "--experiment", anomalies["name"], *args), code, needle
    )


def test_every_experiment_by_default_each_against_its_own_runs(run_script, anomalies, clean):
    res = run_script("query_experiments", "health", "--format", "json", "--top", "100")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert {anomalies["name"], clean["name"]} <= {e["name"] for e in data["experiments"]}
    assert not flagged(data, "outlier") & ids(clean, *clean["runs"])  # the anomalies' outliers stay theirs
    assert ids(anomalies, "outlier") <= flagged(data, "outlier")


def test_needs_a_known_experiment(run_script, anomalies):
    assert_clean_error(
        run_script("query_experiments", "health", "--experiment", anomalies["name"] + "x"), 3, "did you mean"
    )


def test_embedded_store_samples_histories_too(run_script, tmp_path):
    """The in-process store answers the bulk-interval endpoint (an /ajax-api path) like a server."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cl = MlflowClient(uri)
    exp = cl.create_experiment("local-health")
    steady = make_run(cl, exp, "steady", {"lr": "0.1"}, loss=[1 / (s + 1) for s in range(10)])
    blown = make_run(cl, exp, "blown", {"lr": "9"}, loss=[1.0, 0.5, 0.4, 3.0, 9.0])
    res = run_script(
        "query_experiments", "health", "--experiment", "local-health", "--format", "json", uri=uri, cwd=tmp_path
    )
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert flagged(data, "diverging") == {blown} and steady not in flagged(data, "diverging")
    assert any("1 request)" in note for note in data["notes"])


def test_read_only_user_runs_health(run_script, auth_server):
    from mlflow.tracking import MlflowClient

    from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER
    from reliability import credentials_env

    name = unique("health-ro")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        cl = MlflowClient(auth_server.uri)
        exp = cl.create_experiment(name)
        make_run(cl, exp, "steady", {"lr": "0.1"}, loss=[1 / (s + 1) for s in range(10)])
        blown = make_run(cl, exp, "blown", {"lr": "9"}, loss=[1.0, 0.5, 0.4, 3.0, 9.0])
    env = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    res = run_script(
        "query_experiments", "health", "--experiment", name, "--format", "json", uri=auth_server.uri, env=env
    )
    assert res.code == 0, res.err
    assert flagged(json.loads(res.out), "diverging") == {blown}
