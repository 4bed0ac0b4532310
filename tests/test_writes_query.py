"""Finding stuck runs (issue 11): `query_experiments.py failed` also lists RUNNING runs with no
write for longer than --stale (default 1h), marked stale; `best`, `overfit` and `aggregate` skip
unfinished runs by default and say how many they skipped (--include-unfinished keeps them).

Runs are seeded with MLflow's own client (create_run accepts a start time in the past).
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import unique

SCRIPT = "query_experiments"
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def seeded(client):
    """One experiment: a FINISHED run, a FAILED run, a RUNNING run silent for 2 h, a fresh
    RUNNING run. The unfinished ones hold the best sharpe, and a big train/test gap."""
    name = unique("stuckq")
    exp_id = client.create_experiment(name)
    now = int(time.time() * 1000)
    runs = {}
    for label, status, start, sharpe in (
        ("done", "FINISHED", now - 3 * HOUR_MS, 1.0),
        ("broke", "FAILED", now - 3 * HOUR_MS, 3.0),
        ("stuck", "RUNNING", now - 2 * HOUR_MS, 5.0),
        ("busy", "RUNNING", now - 60_000, 4.0),
    ):
        run = client.create_run(exp_id, start_time=start, run_name=label, tags={"group": "a"})
        client.log_metric(run.info.run_id, "sharpe", sharpe, timestamp=start)
        client.log_metric(run.info.run_id, "train_sharpe", sharpe * 3, timestamp=start)
        if status == "FAILED":
            client.set_tag(run.info.run_id, "backtest.error", "boom")
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status=status)
        runs[label] = run.info.run_id
    return name, runs


def as_json(res) -> dict:
    assert res.code == 0, res.err
    return json.loads(res.out)


def test_failed_lists_stale_running_runs_marked_as_such(run_script, seeded):
    name, runs = seeded
    out = as_json(run_script(SCRIPT, "failed", "--experiment", name, "--format", "json"))
    by_id = {r["run_id"]: r for r in out["runs"]}
    assert set(by_id) == {runs["broke"], runs["stuck"]}  # fresh RUNNING and FINISHED are not listed
    assert by_id[runs["stuck"]]["stale"] is True and by_id[runs["stuck"]]["status"] == "RUNNING"
    assert by_id[runs["broke"]]["stale"] is False
    md = run_script(SCRIPT, "failed", "--experiment", name)
    assert md.code == 0, md.err
    line = next(line for line in md.out.splitlines() if line.startswith("|") and "| stuck" in line)
    assert "RUNNING (stale, no write for" in line
    # plain runs, no log_backtest writer tag: no hint about completing a backtest (issue 24.6)
    assert "log_backtest" not in md.out


def test_failed_stale_threshold(run_script, seeded):
    name, runs = seeded
    short = as_json(run_script(SCRIPT, "failed", "--experiment", name, "--stale", "30s", "--format", "json"))
    assert {r["run_id"] for r in short["runs"]} == {runs["broke"], runs["stuck"], runs["busy"]}
    long = as_json(run_script(SCRIPT, "failed", "--experiment", name, "--stale", "3h", "--format", "json"))
    assert {r["run_id"] for r in long["runs"]} == {runs["broke"]}
    bad = run_script(SCRIPT, "failed", "--experiment", name, "--stale", "soon")
    assert bad.code == 2 and "--stale" in bad.err


def test_best_skips_unfinished_and_says_how_many(run_script, seeded):
    name, runs = seeded
    out = as_json(run_script(SCRIPT, "best", "--metric", "sharpe", "--max", "--experiment", name, "--format", "json"))
    assert [r["run_id"] for r in out["runs"]] == [runs["done"]]
    assert out["skipped_unfinished"] == 3
    md = run_script(SCRIPT, "best", "--metric", "sharpe", "--max", "--experiment", name)
    assert "skipped 3 unfinished runs" in md.out and "--include-unfinished" in md.out
    every = as_json(
        run_script(
            SCRIPT,
            "best",
            "--metric",
            "sharpe",
            "--max",
            "--experiment",
            name,
            "--include-unfinished",
            "--top",
            "5",
            "--format",
            "json",
        )
    )
    assert [r["run_id"] for r in every["runs"]][:2] == [runs["stuck"], runs["busy"]]


def test_overfit_and_aggregate_skip_unfinished(run_script, seeded):
    name, _runs = seeded
    over = as_json(
        run_script(
            SCRIPT,
            "overfit",
            "--train",
            "train_sharpe",
            "--test",
            "sharpe",
            "--max",
            "--threshold",
            "0.5",
            "--experiment",
            name,
            "--format",
            "json",
        )
    )
    assert over["considered"] == 1 and over["skipped_unfinished"] == 3
    agg = as_json(
        run_script(
            SCRIPT,
            "aggregate",
            "--group-by",
            "tags.group",
            "--metric",
            "sharpe",
            "--experiment",
            name,
            "--format",
            "json",
        )
    )
    assert agg["runs"] == 1 and agg["skipped_unfinished"] == 3
    assert agg["groups"][0]["stats"]["sharpe"]["mean"] == pytest.approx(1.0)
    md = run_script(SCRIPT, "aggregate", "--group-by", "tags.group", "--metric", "sharpe", "--experiment", name)
    assert "skipped 3 unfinished runs" in md.out
    every = as_json(
        run_script(
            SCRIPT,
            "aggregate",
            "--group-by",
            "tags.group",
            "--metric",
            "sharpe",
            "--experiment",
            name,
            "--include-unfinished",
            "--format",
            "json",
        )
    )
    assert every["runs"] == 4 and every["skipped_unfinished"] == 0
