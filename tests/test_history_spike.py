"""Issue 13's history case through the script, against the real server fixture: a 50,000-step loss
that decays from 2.1 with one spike of 9.5 at step 31,337. The server's sample (every 20th row)
cannot hold the spike; the default view must still report it (the series is read whole in step
windows), and the sparkline must show it. The true extremes come from numpy on the values logged
and from MlflowClient.get_metric_history.

Also the paths where windows by step cannot work: many points at one step (get-history pages are
used), and repeated steps (the rows per sample gap are measured with one probe).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

from conftest import unique

N, SPIKE_STEP, SPIKE = 50_000, 31_337, 9.5
T0 = 1_700_000_000_000


def spike_values() -> np.ndarray:
    values = 2.1 * np.exp(-np.arange(N) / 10_000)
    values[SPIKE_STEP] = SPIKE
    return values


def log_rest(server, run_id: str, metrics: list[dict]) -> None:
    api = server.uri + "/api/2.0/mlflow/runs/log-batch"
    with requests.Session() as http:
        for start in range(0, len(metrics), 1000):
            http.post(
                api, json={"run_id": run_id, "metrics": metrics[start : start + 1000]}, timeout=60
            ).raise_for_status()


@pytest.fixture(scope="module")
def runs(server, client):
    exp = client.create_experiment(unique("spike"))
    ids = {name: client.create_run(exp, run_name=name).info.run_id for name in ("spike", "one-step", "pairs")}
    values = spike_values()
    log_rest(
        server,
        ids["spike"],
        [{"key": "loss", "value": float(v), "timestamp": T0 + i, "step": i} for i, v in enumerate(values)],
    )
    rng = np.random.default_rng(7)
    one_step = rng.normal(size=3000)
    one_step[1234] = 42.0
    log_rest(
        server,
        ids["one-step"],
        [{"key": "m", "value": float(v), "timestamp": T0 + i, "step": 0} for i, v in enumerate(one_step)],
    )
    pairs = rng.normal(size=8000)
    pairs[7777] = -33.0
    log_rest(
        server,
        ids["pairs"],
        [{"key": "m", "value": float(v), "timestamp": T0 + i, "step": i // 2} for i, v in enumerate(pairs)],
    )
    return {"ids": ids, "spike": values, "one-step": one_step, "pairs": pairs}


def only_series(res) -> dict:
    assert res.code == 0, res.both
    (s,) = json.loads(res.out)["series"]
    return s


def test_default_view_finds_the_spike(run_script, client, runs):
    rid = runs["ids"]["spike"]
    values = runs["spike"]
    history = client.get_metric_history(rid, "loss")  # MLflow's own reading of the series
    assert len(history) == N
    true_max = max(history, key=lambda m: m.value)
    true_min = min(history, key=lambda m: m.value)
    assert (true_max.step, true_max.value) == (int(values.argmax()), float(values.max())) == (SPIKE_STEP, SPIKE)

    res = run_script("get_metric_history", "--run-id", rid, "--metrics", "loss")
    assert res.code == 0, res.both
    assert f"exact: all {N:,} points" in res.out
    assert f"max {true_max.value:g} at step {true_max.step:,}" in res.out
    assert "sample max" not in res.out and "Exact:" not in res.out
    spark = next(line for line in res.out.splitlines() if line.startswith("- shape: `")).split("`")[1]
    assert spark.count("█") == 1 and spark.index("█") == SPIKE_STEP * len(spark) // (N - 1)
    assert any(f"| {SPIKE_STEP:,} |" in row and "max" in row for row in res.out.splitlines())
    assert len(res.out.encode()) <= 4096

    s = only_series(run_script("get_metric_history", "--run-id", rid, "--metrics", "loss", "--format", "json"))
    assert s["exact"] is True and s["extremes"] == "exact" and s["points"] == N
    assert s["max"] == {"step": true_max.step, "timestamp": true_max.timestamp, "value": true_max.value}
    assert (s["min"]["step"], s["min"]["value"]) == (true_min.step, true_min.value)
    assert "windowed reads" in s["method"] and "read whole" in s["method"]


def test_exact_agrees_with_mlflow_point_for_point(run_script, client, runs, tmp_path):
    rid = runs["ids"]["spike"]
    target = tmp_path / "loss.json"
    res = run_script("get_metric_history", "--run-id", rid, "--metrics", "loss", "--full", "--output", str(target))
    assert res.code == 0, res.both
    (entry,) = json.loads(target.read_text())
    ours = [(p["step"], p["timestamp"], p["value"]) for p in entry["points"]]
    theirs = sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(rid, "loss"))
    assert ours == theirs


def test_many_points_at_one_step_fall_back_to_pages(run_script, runs):
    rid, values = runs["ids"]["one-step"], runs["one-step"]
    sampled = only_series(run_script("get_metric_history", "--run-id", rid, "--metrics", "m", "--format", "json"))
    assert sampled["exact"] is False and sampled["extremes"] == "sample" and sampled["points"] == 2500
    assert "--exact" in sampled["exact_command"] and rid in sampled["exact_command"]
    md = run_script("get_metric_history", "--run-id", rid, "--metrics", "m")
    assert "extremes of the 2,500-point sample, not of the series" in md.out and "sample max" in md.out
    exact = only_series(
        run_script("get_metric_history", "--run-id", rid, "--metrics", "m", "--exact", "--format", "json")
    )
    assert exact["exact"] is True and exact["points"] == len(values) and "get-history pages" in exact["method"]
    assert exact["max"]["value"] == float(values.max()) and exact["min"]["value"] == float(values.min())
    assert exact["max"]["timestamp"] == T0 + int(values.argmax())


def test_repeated_steps_read_in_windows(run_script, runs):
    rid, values = runs["ids"]["pairs"], runs["pairs"]
    exact = only_series(
        run_script("get_metric_history", "--run-id", rid, "--metrics", "m", "--exact", "--format", "json")
    )
    assert exact["exact"] is True and exact["points"] == len(values) and "windowed reads" in exact["method"]
    assert (exact["min"]["step"], exact["min"]["value"]) == (int(values.argmin()) // 2, float(values.min()))
    assert (exact["max"]["step"], exact["max"]["value"]) == (int(values.argmax()) // 2, float(values.max()))
    window = only_series(
        run_script(
            "get_metric_history",
            "--run-id",
            rid,
            "--metrics",
            "m",
            "--exact",
            "--steps",
            "3000:3999",
            "--format",
            "json",
        )
    )
    assert window["points"] == 2000 and window["steps"] == [3000, 3999]
    part = values[6000:8000]
    assert (window["min"]["step"], window["min"]["value"]) == (3000 + int(part.argmin()) // 2, float(part.min()))
