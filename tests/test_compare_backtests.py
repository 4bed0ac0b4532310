"""`compare --metrics/--preset`: the asked-for metrics, the params that differ, and the better value
marked by each metric's direction (drawdowns are stored negative, volatility is better low)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import unique

RUNS = {  # name -> (metrics, params)
    "sma-20": (
        {"sharpe": 1.2, "max_drawdown": -0.31, "volatility": 0.22, "cagr": 0.15, "foo": 1.0, "val_loss": 0.4},
        {"lookback": "20", "asset": "BTC"},
    ),
    "sma-50": (
        {"sharpe": 0.9, "max_drawdown": -0.12, "volatility": 0.18, "cagr": 0.11, "foo": 2.0, "val_loss": 0.3},
        {"lookback": "50", "asset": "BTC"},
    ),
    "sma-100": (
        {"sharpe": 1.0, "max_drawdown": -0.20, "volatility": 0.25, "cagr": 0.19, "foo": 3.0, "val_loss": 0.5},
        {"lookback": "100", "asset": "BTC"},
    ),
}


@pytest.fixture(scope="module")
def seeded(client):
    from mlflow.entities import Metric, Param

    exp = client.create_experiment(unique("compare-bt"))
    ids = {}
    for name, (metrics, params) in RUNS.items():
        run = client.create_run(exp, run_name=name)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
        )
        client.set_terminated(run.info.run_id)
        ids[name] = run.info.run_id
    return ids


def test_metrics_pick_rows_and_mark_the_better_value(run_script, seeded):
    ids = list(seeded.values())
    res = run_script(
        "query_experiments", "compare", *ids, "--metrics", "sharpe,max_drawdown,volatility,val_loss", "--format", "json"
    )
    assert res.code == 0, res.err
    rows = {row["field"]: row for row in json.loads(res.out)["rows"]}
    assert "metrics.foo" not in rows and "metrics.cagr" not in rows
    assert "params.lookback" in rows and "params.asset" not in rows  # the params that differ, only
    values = {
        k: np.array([RUNS[n][0][k] for n in seeded]) for k in ("sharpe", "max_drawdown", "volatility", "val_loss")
    }
    assert rows["metrics.sharpe"]["better"] == [int(np.argmax(values["sharpe"]))]
    assert rows["metrics.max_drawdown"]["better"] == [int(np.argmax(values["max_drawdown"]))]  # shallowest
    assert rows["metrics.volatility"]["better"] == [int(np.argmin(values["volatility"]))]
    assert rows["metrics.val_loss"]["better"] == [int(np.argmin(values["val_loss"]))]
    assert (
        rows["metrics.val_loss"]["direction"] == "lower (guessed)" and rows["metrics.sharpe"]["direction"] == "higher"
    )


def test_preset_backtest_in_markdown(run_script, seeded):
    ids = list(seeded.values())
    res = run_script(
        "query_experiments",
        "compare",
        "--run-id",
        ids[0],
        "--run-id",
        ids[1],
        "--run-id",
        ids[2],
        "--preset",
        "backtest",
    )
    assert res.code == 0, res.err
    table = [line for line in res.out.splitlines() if line.startswith("| metrics.") or line.startswith("| params.")]
    fields = [line.split("|")[1].strip() for line in table]
    assert fields == ["params.lookback", "metrics.sharpe", "metrics.cagr", "metrics.max_drawdown", "metrics.volatility"]
    sharpe_row = next(line for line in table if line.startswith("| metrics.sharpe"))
    assert "**1.2**" in sharpe_row and "**0.9**" not in sharpe_row
    assert "the better value" in res.out and len(res.out) < 2000
