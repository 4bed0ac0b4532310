"""get_metric_history.py against the real tracking server fixture (and the embedded store).

One module-scoped seed (the 100,000-point series takes ~15 s to log):
- run "long": `loss` over steps 0..99,999, a parabola with its minimum 0.5 at step 61,237 and
  its largest value at step 0, plus a one-point spike (1000 at step 40,001) that the server's
  even sample (every 40th row) cannot contain: the default view must say "sampled", --exact
  must find the spike;
- run "backtest": `equity` on 1,500 daily bars (2020-01-01 + i days), max 1150 at step 500,
  min 850 at step 1,000; `const` = 0.25 at 300 steps; `with_nan` with NaN at steps 5 and 17;
- runs "cmp-a" and "cmp-b": `val_loss` on steps 0..199, 1/(i+1) and 2/(i+1).
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import requests

from conftest import free_port, unique

N_LONG = 100_000
MIN_STEP, SPIKE_STEP = 61_237, 40_001
DAY = 86_400_000
T0 = 1_577_836_800_000  # 2020-01-01 00:00:00 UTC


def loss_value(i: int) -> float:
    if i == SPIKE_STEP:
        return 1000.0
    return (i - MIN_STEP) ** 2 / 1e8 + 0.5


def equity_value(i: int) -> float:
    if i <= 500:
        return 1000 + 0.3 * i  # up to 1150 at step 500
    if i <= 1000:
        return 1150 - 0.6 * (i - 500)  # down to 850 at step 1000
    return 850 + 0.1 * (i - 1000)  # ends at 899.9


@pytest.fixture(scope="module")
def seed(server, client):
    from mlflow.entities import Metric

    exp = client.create_experiment(unique("gmh"))
    ids = {}
    for name in ("long", "backtest", "cmp-a", "cmp-b"):
        ids[name] = client.create_run(exp, run_name=name).info.run_id

    # 100,000 points over plain REST (1,000 per log-batch, the server's limit): fastest way in.
    api = server.uri + "/api/2.0/mlflow/runs/log-batch"
    with requests.Session() as http:
        for start in range(0, N_LONG, 1000):
            batch = [
                {"key": "loss", "value": loss_value(i), "timestamp": 1_700_000_000_000 + i, "step": i}
                for i in range(start, min(N_LONG, start + 1000))
            ]
            http.post(api, json={"run_id": ids["long"], "metrics": batch}, timeout=60).raise_for_status()

    bt = [Metric("equity", equity_value(i), T0 + i * DAY, i) for i in range(1500)]
    bt += [Metric("const", 0.25, T0, i) for i in range(300)]
    bt += [Metric("with_nan", math.nan if i in (5, 17) else float(i), T0 + i, i) for i in range(40)]
    for start in range(0, len(bt), 1000):
        client.log_batch(ids["backtest"], metrics=bt[start : start + 1000])
    client.log_batch(ids["cmp-a"], metrics=[Metric("val_loss", 1 / (i + 1), T0 + i, i) for i in range(200)])
    client.log_batch(ids["cmp-b"], metrics=[Metric("val_loss", 2 / (i + 1), T0 + i, i) for i in range(200)])
    return ids


def series_of(result, metric=None) -> list[dict]:
    assert result.code == 0, result.both
    data = json.loads(result.out)
    return [s for s in data["series"] if metric is None or s["metric"] == metric]


def test_long_series_default_view_is_sampled_and_honest(run_script, seed):
    res = run_script("get_metric_history", "--run-id", seed["long"], "--metrics", "loss")
    assert res.code == 0, res.both
    out = res.out
    assert "sampled: 2,500 of ~100,000 points" in out
    assert "min 0.5 at step 61,237" in out  # refined around the sample's minimum: exact value and step
    assert "max 38 at step 0" in out  # the spike at 40,001 is between samples: not claimed
    assert "sample max 38 at step 0" in out and "extremes of the 2,500-point sample, not of the series" in out
    assert f"Exact: `uv run scripts/get_metric_history.py --run-id {seed['long']} --metrics loss --exact`" in out
    assert "the true extremes may lie" in out or "a spike between other samples can be missed" in out
    assert "--exact" in out
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert len(table) <= 50
    assert table[0].startswith("| 0 |") and "first" in table[0]
    assert table[-1].startswith("| 99,999 |") and "last" in table[-1]
    assert any("| 61,237 |" in row and "min" in row for row in table)
    assert "shape: `" in out
    assert len(out.encode()) <= 4096


def test_long_series_json_sample_bound_and_endpoints(run_script, seed):
    (s,) = series_of(
        run_script("get_metric_history", "--run-id", seed["long"], "--metrics", "loss", "--format", "json")
    )
    assert s["exact"] is False and s["label"].startswith("sampled") and s["extremes"] == "sample"
    assert s["points"] == 2500 and s["estimated_total"] == N_LONG
    assert s["first"] == {"step": 0, "timestamp": 1_700_000_000_000, "value": loss_value(0)}
    assert s["last"]["step"] == N_LONG - 1 and s["last"]["value"] == pytest.approx(loss_value(N_LONG - 1))
    assert (s["min"]["step"], s["min"]["value"]) == (MIN_STEP, 0.5)
    steps = [p["step"] for p in s["shown_points"]]
    assert len(steps) <= 50 and steps[0] == 0 and steps[-1] == N_LONG - 1 and steps == sorted(steps)


def test_exact_reads_every_point_and_finds_the_spike(run_script, seed):
    (s,) = series_of(
        run_script("get_metric_history", "--run-id", seed["long"], "--metrics", "loss", "--exact", "--format", "json")
    )
    assert s["exact"] is True and s["points"] == N_LONG
    assert (s["max"]["step"], s["max"]["value"]) == (SPIKE_STEP, 1000.0)
    assert (s["min"]["step"], s["min"]["value"]) == (MIN_STEP, 0.5)


def test_step_window_is_honoured_and_exact(run_script, seed):
    res = run_script("get_metric_history", "--run-id", seed["long"], "--metrics", "loss", "--steps", "61000:62000")
    assert res.code == 0, res.both
    assert "exact: all 1,001 points in the step window" in res.out
    assert "steps 61,000 → 62,000" in res.out
    assert "min 0.5 at step 61,237" in res.out
    (s,) = series_of(
        run_script(
            "get_metric_history",
            "--run-id",
            seed["long"],
            "--metrics",
            "loss",
            "--steps",
            "39990:40010",
            "--format",
            "json",
        )
    )
    assert s["steps"] == [39990, 40010] and s["points"] == 21
    assert (s["max"]["step"], s["max"]["value"]) == (SPIKE_STEP, 1000.0)
    assert all(39990 <= p["step"] <= 40010 for p in s["shown_points"])


def test_backtest_timestamps_dates_and_extremes(run_script, seed):
    res = run_script("get_metric_history", "--run-id", seed["backtest"], "--metrics", "equity")
    assert res.code == 0, res.both
    out = res.out
    assert "exact: all 1,500 points" in out
    assert "time 2020-01-01 → 2024-02-08" in out  # daily bars: dates, no clock
    assert "min 850 at step 1,000" in out and "max 1150 at step 500" in out
    assert "first 1000 (step 0)" in out and "last 899.9 (step 1,499)" in out
    assert "| step | value | time |" in out
    assert "| 500 | 1150 | 2021-05-15 | max |" in out


def test_constant_and_nan_metrics(run_script, seed):
    res = run_script("get_metric_history", "--run-id", seed["backtest"], "--metrics", "const,with_nan")
    assert res.code == 0, res.both
    assert "constant: 0.25 at every non-NaN point" in res.out
    assert "NaN: 2 points (steps 5, 17), excluded from min/max" in res.out
    data = series_of(
        run_script("get_metric_history", "--run-id", seed["backtest"], "--metrics", "with_nan", "--format", "json")
    )
    (s,) = data
    assert s["nan_count"] == 2 and s["nan_steps"] == [5, 17]
    assert (s["min"]["step"], s["min"]["value"]) == (0, 0.0) and (s["max"]["step"], s["max"]["value"]) == (39, 39.0)
    assert "·" in s["sparkline"]  # the NaN slices


def test_default_shows_every_metric_of_the_run(run_script, seed):
    res = run_script("get_metric_history", "--run-id", seed["backtest"])
    assert res.code == 0, res.both
    for key in ("const", "equity", "with_nan"):
        assert f"### {key} — exact" in res.out


def test_full_output_writes_every_point_atomically(run_script, seed, tmp_path):
    target = tmp_path / "equity.csv"
    args = ["--run-id", seed["backtest"], "--metrics", "equity,with_nan", "--full", "--output", str(target)]
    res = run_script("get_metric_history", *args)
    assert res.code == 0, res.both
    assert "Wrote every point (1,540 rows)" in res.out
    assert "| step |" not in res.out  # only the summary is printed
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 1540
    equity = [r for r in rows if r["metric"] == "equity"]
    assert [int(r["step"]) for r in equity] == list(range(1500))
    assert float(equity[500]["value"]) == 1150 and int(equity[1]["timestamp"]) == T0 + DAY
    assert [r["step"] for r in rows if r["value"] == "NaN"] == ["5", "17"]
    again = run_script("get_metric_history", *args)
    assert again.code == 2 and "--force" in again.err and "Traceback" not in again.err
    assert run_script("get_metric_history", *args, "--force").code == 0

    as_json = tmp_path / "equity.json"
    res = run_script(
        "get_metric_history", "--run-id", seed["backtest"], "--metrics", "with_nan", "--full", "--output", str(as_json)
    )
    assert res.code == 0, res.both
    (entry,) = json.loads(as_json.read_text())
    assert entry["metric"] == "with_nan" and len(entry["points"]) == 40 and entry["points"][5]["value"] is None


def test_several_runs_aligned_by_step(run_script, seed):
    res = run_script(
        "get_metric_history", "--run-id", seed["cmp-a"], seed["cmp-b"], "--metrics", "val_loss", "--max-points", "10"
    )
    assert res.code == 0, res.both
    out = res.out
    assert "| step | cmp-a | cmp-b |" in out
    assert "| 0 | 1 | 2 |" in out and "| 199 | 0.005 | 0.01 |" in out
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert len(table) == 10
    assert "- **cmp-a**: exact: all 200 points" in out and "- **cmp-b**: exact: all 200 points" in out
    assert "max 2 @0" in out  # cmp-b's summary


def test_csv_format(run_script, seed):
    res = run_script(
        "get_metric_history", "--run-id", seed["cmp-a"], "--metrics", "val_loss", "--format", "csv", "--full"
    )
    assert res.code == 0, res.both
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert len(rows) == 200 and rows[0]["step"] == "0" and float(rows[199]["value"]) == pytest.approx(1 / 200)


def test_errors(run_script, seed):
    res = run_script("get_metric_history", "--run-id", "0" * 32)
    assert res.code == 3 and "no run with id" in res.err and "Traceback" not in res.err
    res = run_script("get_metric_history", "--run-id", seed["backtest"], "--metrics", "equty")
    assert res.code == 3 and "'equity'" in res.err and "const" in res.err and "with_nan" in res.err
    res = run_script("get_metric_history", "--run-id", seed["backtest"], "--steps", "9:1")
    assert res.code == 2 and "--steps" in res.err
    res = run_script("get_metric_history", "--run-id", seed["backtest"], "--output", "x.txt", "--full")
    assert res.code == 2 and ".csv or .json" in res.err
    dead = f"http://127.0.0.1:{free_port()}"
    res = run_script("get_metric_history", "--run-id", seed["backtest"], "--timeout", "2", uri=dead)
    assert res.code == 4 and "not reachable" in res.err and "Traceback" not in res.err


def test_uv_run_subprocess(uv_run, seed):
    res = uv_run("get_metric_history", "--run-id", seed["backtest"], "--metrics", "equity", "--format", "json")
    (s,) = series_of(res)
    assert s["exact"] and s["points"] == 1500 and s["max"]["step"] == 500
    assert "store: http://127.0.0.1" in res.err


def test_embedded_store(run_script, tmp_path):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    local = MlflowClient(tracking_uri=uri)
    rid = local.create_run(local.create_experiment("local"), run_name="local-long").info.run_id
    n = 12_000  # more than one sample (2,500): read whole in step windows, in-process like a server
    points = [Metric("acc", i / n, T0 + i, i) for i in range(n)]
    for start in range(0, n, 1000):
        local.log_batch(rid, metrics=points[start : start + 1000])
    res = run_script(
        "get_metric_history",
        "--run-id",
        rid,
        "--format",
        "json",
        uri=None,
        env={"MLFLOW_TRACKING_URI": uri},
        cwd=tmp_path,
    )
    (s,) = series_of(res)
    assert s["exact"] is True and s["points"] == n and "windowed reads" in s["method"]
    assert s["first"]["step"] == 0 and s["last"]["step"] == n - 1 and s["max"]["step"] == n - 1
    res = run_script(
        "get_metric_history",
        "--run-id",
        rid,
        "--steps",
        "100:200",
        uri=None,
        env={"MLFLOW_TRACKING_URI": uri},
        cwd=tmp_path,
    )
    assert res.code == 0, res.both
    assert "exact: all 101 points in the step window" in res.out and "store: sqlite:///" in res.out
