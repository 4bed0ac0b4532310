"""Answers that say exactly what they are (issue 24), through query_experiments.py's entry point
against the real server: every statistic counts the values it skipped, NaN apart from never
logged (aggregate, overfit, best, compare, health); compare shows only the fields that differ and
names the identical ones with their value; health compares FINISHED duplicates only and lists
unfinished twins apart; `runs` shows a backtest experiment's headline metrics; percents, sizes and
child runs read right; `failed` hints at re-running log_backtest.py only for its runs.

Expected values are computed here from the seeded tables, not taken from the scripts.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from conftest import unique

NAN = math.nan
HOUR_MS = 3_600_000

# name: (params, metrics (a key absent = never logged), status)
TRAIN = {
    "r-a": ({"model": "cnn", "seed": "1"}, {"acc": 0.9, "train_loss": 0.1, "val_loss": 0.35}, "FINISHED"),
    "r-b": ({"model": "cnn", "seed": "2"}, {"acc": NAN, "train_loss": NAN, "val_loss": 0.4}, "FINISHED"),
    "r-c": ({"model": "cnn", "seed": "3"}, {"train_loss": 0.2}, "FINISHED"),
    "r-d": ({"model": "mlp", "seed": "4"}, {"acc": 0.8, "train_loss": 0.3, "val_loss": 0.32}, "FINISHED"),
    "r-e": ({"model": "mlp", "seed": "5"}, {"acc": NAN, "train_loss": 0.2, "val_loss": 0.5}, "FINISHED"),
    "r-f": ({"model": "mlp", "seed": "6"}, {"acc": 0.1}, "FAILED"),
}


def make_run(cl, exp, name, params, metrics, status="FINISHED", tags=None, start=None):
    from mlflow.entities import Metric, Param, RunTag

    start = start or int(time.time() * 1000)
    rid = cl.create_run(exp, run_name=name, start_time=start).info.run_id
    cl.log_batch(
        rid,
        metrics=[Metric(k, v, start, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )
    if status != "RUNNING":
        cl.set_terminated(rid, status=status)
    return rid


@pytest.fixture(scope="module")
def train(server, client):
    name = unique("answers-train")
    exp = client.create_experiment(name)
    ids = {n: make_run(client, exp, n, p, m, s) for n, (p, m, s) in TRAIN.items()}
    return {"name": name, "exp": exp, "ids": ids}


def ok(res):
    assert res.code == 0, res.err
    return res


def as_json(res):
    return json.loads(ok(res).out)


def qe(run_script, *args):
    return run_script("query_experiments", *args)


def skipped(metric: str, names) -> dict:
    """{"nan": n, "missing": m} of a metric over the named seeded runs."""
    values = [TRAIN[n][1].get(metric) for n in names]
    return {"nan": sum(v is not None and math.isnan(v) for v in values), "missing": sum(v is None for v in values)}


FINISHED = [n for n, (_, _, s) in TRAIN.items() if s == "FINISHED"]


# ---------------------------------------------------------------------------------------------
# Item 2: NaN and missing counted apart wherever values are skipped
# ---------------------------------------------------------------------------------------------
def test_aggregate_counts_nan_and_missing_apart(run_script, train):
    data = as_json(
        qe(
            run_script,
            "aggregate",
            "-e",
            train["name"],
            "--group-by",
            "params.model",
            "--metric",
            "acc",
            "--format",
            "json",
        )
    )
    groups = {g["group"]["params.model"]: g for g in data["groups"]}
    for model in ("cnn", "mlp"):
        members = [n for n in FINISHED if TRAIN[n][0]["model"] == model]
        values = [TRAIN[n][1]["acc"] for n in members if not math.isnan(TRAIN[n][1].get("acc", NAN))]
        stats = groups[model]["stats"]["acc"]
        assert groups[model]["runs"] == len(members)
        assert {k: stats[k] for k in ("nan", "missing")} == skipped("acc", members)
        assert stats["n"] == len(values) and stats["mean"] == pytest.approx(sum(values) / len(values))
    md = ok(qe(run_script, "aggregate", "-e", train["name"], "--group-by", "params.model", "--metric", "acc")).out
    header = next(line for line in md.splitlines() if line.startswith("| params.model"))
    assert "| acc n | acc NaN | acc missing | acc mean |" in header
    total = skipped("acc", FINISHED)
    assert f"skipped in mean/min/max: acc {total['nan']} NaN, {total['missing']} without a value" in md
    csv_head = ok(
        qe(
            run_script,
            "aggregate",
            "-e",
            train["name"],
            "--group-by",
            "params.model",
            "--metric",
            "acc",
            "--format",
            "csv",
        )
    ).out.splitlines()[0]
    assert csv_head == "params.model,runs,acc n,acc nan,acc missing,acc mean,acc min,acc max"


def test_overfit_says_nan_is_not_missing(run_script, train):
    args = ["overfit", "-e", train["name"], "--train", "train_loss", "--test", "val_loss", "--threshold", "0"]
    data = as_json(qe(run_script, *args, "--format", "json"))
    usable = [n for n in FINISHED if all(not math.isnan(TRAIN[n][1].get(k, NAN)) for k in ("train_loss", "val_loss"))]
    assert data["considered"] == len(usable) and data["skipped_runs"] == len(FINISHED) - len(usable)
    assert data["skipped_values"] == {k: skipped(k, FINISHED) for k in ("train_loss", "val_loss")}
    md = ok(qe(run_script, *args)).out
    assert "2 runs skipped, without two usable values: train_loss 1 NaN; val_loss 1 without a value" in md


def test_best_counts_the_runs_it_could_not_rank(run_script, train):
    data = as_json(qe(run_script, "best", "-e", train["name"], "--metric", "acc", "--top", "5", "--format", "json"))
    ranked = [r["run_name"] for r in data["runs"]]
    expected = sorted(
        (n for n in FINISHED if not math.isnan(TRAIN[n][1].get("acc", NAN))), key=lambda n: -TRAIN[n][1]["acc"]
    )
    assert ranked == expected
    assert data["unranked"] == skipped("acc", FINISHED)
    md = ok(qe(run_script, "best", "-e", train["name"], "--metric", "acc")).out
    assert "not ranked, no usable acc: 2 NaN, 1 without a value" in md


def test_compare_counts_skipped_metric_values_and_names_absent_ones(run_script, train):
    ids = [train["ids"][n] for n in ("r-a", "r-b", "r-c")]
    data = as_json(qe(run_script, "compare", *ids, "--metrics", "acc,val_loss,not_logged", "--format", "json"))
    rows = {row["field"]: row for row in data["rows"]}
    assert rows["metrics.acc"]["skipped"] == skipped("acc", ["r-a", "r-b", "r-c"])
    assert rows["metrics.val_loss"]["skipped"] == skipped("val_loss", ["r-a", "r-b", "r-c"])
    assert data["metrics_in_no_run"] == ["not_logged"]
    md = ok(qe(run_script, "compare", *ids, "--metrics", "acc,not_logged")).out
    assert "not compared (NaN, or not logged by that run): metrics.acc 1 NaN, 1 without a value" in md
    assert "asked for, logged by no run: not_logged" in md


def test_health_counts_values_left_out_of_the_outlier_check(run_script, train):
    data = as_json(qe(run_script, "health", "-e", train["name"], "--metric", "acc", "--format", "json"))
    everyone = list(TRAIN)  # health looks at runs of every status
    assert data["outlier_skipped"]["acc"] == skipped("acc", everyone)
    md = ok(qe(run_script, "health", "-e", train["name"], "--metric", "acc")).out
    assert "skipped in the outlier check: acc 2 NaN, 1 without a value" in md


# ---------------------------------------------------------------------------------------------
# Item 4: compare shows only the rows that differ
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--preset", "backtest"], ["--metrics", "acc,val_loss"]])
def test_compare_shows_and_counts_only_differing_rows(run_script, train, extra):
    ids = [train["ids"]["r-a"], train["ids"]["r-d"]]  # same status, same experiment
    data = as_json(qe(run_script, "compare", *ids, *extra, "--format", "json"))
    assert all(not row["same"] for row in data["rows"])
    assert {"status", "experiment"} <= set(data["identical_fields"])
    md = ok(qe(run_script, "compare", *ids, *extra)).out
    fields = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")][1:]
    assert "status" not in fields and "experiment" not in fields
    assert f"Comparing 2 runs: {len(fields)} fields differ, {data['identical']} identical" in md
    assert "identical in every run" in md and "status FINISHED" in md
    every = as_json(qe(run_script, "compare", *ids, *extra, "--all", "--format", "json"))
    assert {"status", "experiment"} <= {row["field"] for row in every["rows"]}


# ---------------------------------------------------------------------------------------------
# Item 7: health's duplicates are FINISHED runs; unfinished twins are listed apart
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def twins(server, client):
    name = unique("answers-twins")
    exp = client.create_experiment(name)
    same = {"lr": "0.1", "opt": "adam"}
    ids = {
        "fin-1": make_run(client, exp, "fin-1", same, {"acc": 0.6875}),
        "fin-2": make_run(client, exp, "fin-2", same, {"acc": 1.3125}),
        "crashed": make_run(client, exp, "crashed", same, {"acc": 0.01}, status="FAILED"),
        "alone": make_run(client, exp, "alone", {"lr": "0.2"}, {"acc": 0.9}),
        "alone-running": make_run(client, exp, "alone-running", {"lr": "0.2"}, {"acc": 0.3}, status="RUNNING"),
    }
    return {"name": name, "ids": ids}


def test_health_duplicates_hold_finished_runs_only(run_script, twins):
    ids = twins["ids"]
    data = as_json(qe(run_script, "health", "-e", twins["name"], "--format", "json"))
    dups = [f for f in data["findings"] if f["kind"] == "duplicate"]
    assert len(dups) == 1 and set(dups[0]["run_ids"]) == {ids["fin-1"], ids["fin-2"]}
    lo, hi = 0.6875, 1.3125
    assert dups[0]["relative_spread"] == pytest.approx((hi - lo) / ((hi + lo) / 2))  # 62.5 %, not 310 %
    listed = {u["run_id"]: u["status"] for t in data["unfinished_twins"] for u in t["unfinished"]}
    assert listed == {ids["crashed"]: "FAILED", ids["alone-running"]: "RUNNING"}
    md = ok(qe(run_script, "health", "-e", twins["name"])).out
    assert "2 FINISHED runs with identical params" in md and "(spread 0.625, 62.5% of \\|median\\|)" in md
    assert "1 unfinished twin left out" in md
    assert "unfinished runs with the params of other runs (2 configurations; not compared):" in md
    assert f"crashed FAILED ({ids['crashed']})" in md
    assert "| same params, different results | fin-" in md  # named by a finished run


# ---------------------------------------------------------------------------------------------
# Item 8: a backtest experiment shows its headline figures, a training one its common metrics
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backtests(server, client):
    from mlflow_skill.quant import catalog

    name = unique("answers-bt")
    exp = client.create_experiment(name)
    every = [m.key for m in catalog.METRICS]
    for i in range(3):
        metrics = {k: 0.01 * (i + 1) + j / 1000 for j, k in enumerate(every)}
        make_run(client, exp, f"bt-{i}", {"fast": str(10 + i)}, metrics, tags={"backtest.periods_per_year": "252"})
    headline = [m.key for m in catalog.preset(catalog.HEADLINE)]
    return {"name": name, "headline": headline, "logged": len(every)}


def header_of(md: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith("| run |"))
    return [h.strip() for h in line.strip("|").split("|")]


def test_runs_on_a_backtest_experiment_shows_its_headline(run_script, backtests):
    md = ok(qe(run_script, "runs", "-e", backtests["name"])).out
    shown = [h.removeprefix("metrics.") for h in header_of(md) if h.startswith("metrics.")]
    assert shown == backtests["headline"][: len(shown)] and len(shown) == 6
    assert {"sharpe", "cagr", "max_drawdown"} <= set(shown) and "autocorr_penalty" not in shown
    assert f"(metrics: the backtest headline, 6 of {backtests['logged']} logged; --columns" in md


def test_runs_on_a_training_experiment_shows_its_most_common_metrics(run_script, train):
    md = ok(qe(run_script, "runs", "-e", train["name"])).out
    counts = {}
    for _, metrics, _ in TRAIN.values():
        for k in metrics:
            counts[k] = counts.get(k, 0) + 1
    expected = sorted(counts, key=lambda k: (-counts[k], k))[:4]
    assert [h.removeprefix("metrics.") for h in header_of(md) if h.startswith("metrics.")] == expected


# ---------------------------------------------------------------------------------------------
# Item 9: sizes in KiB, children sorted
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family(server, client, tmp_path_factory):
    exp = client.create_experiment(unique("answers-family"))
    parent = make_run(client, exp, "sweep", {}, {"acc": 0.5})
    for name in ("child-0", "child-2", "child-1", "child-10"):
        make_run(client, exp, name, {}, {"acc": 0.5}, tags={"mlflow.parentRunId": parent})
    blob = tmp_path_factory.mktemp("blob") / "weights.bin"
    blob.write_bytes(b"\0" * 123_456)
    client.log_artifact(parent, str(blob))
    return {"parent": parent}


def test_children_listed_in_name_order_and_sizes_in_kib(run_script, family):
    data = as_json(qe(run_script, "run", family["parent"], "--format", "json"))
    assert [c["run_name"] for c in data["children"]] == ["child-0", "child-1", "child-2", "child-10"]
    md = ok(qe(run_script, "run", family["parent"])).out
    children = next(line for line in md.splitlines() if line.startswith("children"))
    assert children.index("child-1 ") < children.index("child-2 ") < children.index("child-10 ")
    assert f"weights.bin ({123_456 / 1024:.1f} KiB)" in md  # 120.6 KiB: binary steps, binary name
    listing = ok(qe(run_script, "artifacts", family["parent"])).out
    assert "| weights.bin | 120.6 KiB |" in listing and " KB" not in listing


# ---------------------------------------------------------------------------------------------
# Item 6: the log_backtest.py hint only where a log_backtest.py writer left the run
# ---------------------------------------------------------------------------------------------
HINT = "A log_backtest.py run is completed by re-running the same command"


@pytest.mark.parametrize("writer", [False, True])
def test_failed_hints_at_log_backtest_only_for_its_runs(run_script, client, writer):
    name = unique("answers-stale")
    exp = client.create_experiment(name)
    tags = {"backtest.writer": "host=another-host pid=4242 started=2026-01-01T00:00:00Z"} if writer else {}
    make_run(
        client,
        exp,
        "stale",
        {},
        {"loss": 1.0},
        status="RUNNING",
        tags=tags,
        start=int(time.time() * 1000) - 3 * HOUR_MS,
    )
    md = ok(qe(run_script, "failed", "-e", name)).out
    assert "RUNNING (stale" in md
    assert (HINT in md) == writer
