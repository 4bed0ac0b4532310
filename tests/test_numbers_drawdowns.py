"""True drawdowns (issue 23, item 1): a strategy whose first bar is a loss and that never gets back
above its start has a max drawdown of -69.0 % everywhere it appears (the dry run's metrics, the
logged run, its tags, its drawdown history, `returns`' worst drawdowns, a sweep's ranking, `best
--metric max_drawdown`, `compare --preset backtest`), equal to QuantStats' own `max_drawdown` and to
a hand computation on the equity curve; every figure derived from drawdowns agrees with it."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import unique

DEPTH = -0.69  # the loser's deepest point below its starting equity


def loser_returns(bars: int = 500) -> np.ndarray:
    """First bar -1.2 %, always below the start, trough exactly 31 % of the start mid-way, then a
    partial recovery (so the valley is not the last bar)."""
    rng = np.random.default_rng(2)
    steps = np.concatenate([rng.normal(-0.004, 0.01, 300), rng.normal(0.002, 0.01, bars - 301)])
    path = np.cumsum(steps)
    scale = (math.log(1 + DEPTH) - math.log(0.988)) / path.min()
    equity = np.exp(math.log(0.988) + np.concatenate([[0.0], path * scale]))
    assert equity.max() < 1 and equity.argmin() < bars - 50
    return np.diff(np.concatenate([[1.0], equity])) / np.concatenate([[1.0], equity[:-1]])


def hand_max_drawdown(r: np.ndarray) -> float:
    """Peak-to-trough on the equity curve, the starting equity of 1 included as the first peak."""
    equity = np.concatenate([[1.0], np.cumprod(1 + r)])
    return float(np.min(equity / np.maximum.accumulate(equity) - 1))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loser")
    days = pd.bdate_range("2021-01-04", periods=500)
    loser = loser_returns()
    steady = np.random.default_rng(9).normal(0.0006, 0.006, len(days))
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": loser}).to_csv(folder / "loser.csv", index=False)
    both = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "loser": loser, "steady": steady})
    both.to_csv(folder / "pair.csv", index=False)
    return folder, pd.Series(loser, index=days), pd.Series(steady, index=days)


def test_the_loser_is_69_percent_down_in_the_metrics(run_script, files):
    import quantstats as qs

    folder, loser, _ = files
    res = run_script("log_backtest", "--returns", folder / "loser.csv", "--dry-run", "--format", "json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    m = out["metrics"]
    assert round(m["max_drawdown"] * 100, 1) == -69.0
    assert m["max_drawdown"] == pytest.approx(hand_max_drawdown(loser.to_numpy()), abs=1e-12)
    assert m["max_drawdown"] == pytest.approx(float(qs.stats.max_drawdown(loser)), abs=1e-12)
    days = (loser.index[-1] - loser.index[0]).days + 1  # one drawdown, from the first bar, never recovered
    assert m["longest_drawdown_days"] == m["max_drawdown_days"] == days
    assert m["drawdown_count"] == 1 and m["avg_drawdown"] == pytest.approx(m["max_drawdown"])
    assert m["avg_drawdown_days"] == days
    assert m["recovery_factor"] == pytest.approx(float(loser.sum()) / 0.69, rel=1e-9)
    with np.errstate(all="ignore"):
        assert m["calmar"] == pytest.approx(float(qs.stats.calmar(loser, periods=252)), rel=1e-9)
        assert m["ulcer_index"] == pytest.approx(float(qs.stats.ulcer_index(loser)), rel=1e-9)
        dd = qs.stats.to_drawdown_series(loser)
    assert m["current_drawdown"] == pytest.approx(float(dd.iloc[-1]))
    assert out["tags"]["backtest.max_drawdown_start"] == "2021-01-04"
    assert out["tags"]["backtest.max_drawdown_valley"] == str(dd.idxmin().date())


def test_worst_drawdowns_table_starts_at_the_first_bar():
    import quantstats as qs

    from mlflow_skill.backtest import periods as bp

    r = pd.Series(loser_returns(), index=pd.bdate_range("2021-01-04", periods=500))
    rows = bp.worst_drawdowns(qs, r)
    assert len(rows) == 1 and rows[0]["start"] == "2021-01-04" and rows[0]["end"] is None
    assert rows[0]["depth"] == pytest.approx(DEPTH, abs=1e-12)
    # a series that starts with a gain is unchanged: QuantStats' own table
    winner = pd.Series(np.r_[0.01, r.to_numpy()[1:]], index=r.index)
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(winner))
    assert [d["depth"] for d in bp.worst_drawdowns(qs, winner)] == pytest.approx(
        sorted(details["max drawdown"] / 100)[:10]
    )


@pytest.fixture(scope="module")
def sweep(module_run_script, files):
    folder, _, _ = files
    exp = unique("loser-sweep")
    res = module_run_script(
        "log_backtest", "--returns", folder / "pair.csv", "--columns", "*", "--experiment", exp, "--format", "json"
    )
    assert res.code == 0, res.err
    return exp, json.loads(res.out)


def test_the_loser_is_69_percent_down_everywhere_it_appears(module_run_script, client, sweep):
    exp, summary = sweep
    rows = {r["variant"]: r for r in summary["ranking"]}
    assert round(rows["loser"]["max_drawdown"] * 100, 1) == -69.0
    loser_id, steady_id = rows["loser"]["run_id"], rows["steady"]["run_id"]
    run = client.get_run(loser_id)
    assert round(run.data.metrics["max_drawdown"] * 100, 1) == -69.0
    history = client.get_metric_history(loser_id, "drawdown")  # resampled: each bucket's deepest bar kept
    assert round(min(p.value for p in history) * 100, 1) == -69.0
    res = module_run_script("query_experiments", "returns", loser_id, "--format", "json")
    assert res.code == 0, res.err
    worst = json.loads(res.out)["worst_drawdowns"]
    assert round(worst[0]["depth"] * 100, 1) == -69.0 and worst[0]["end"] is None
    md = module_run_script("query_experiments", "returns", loser_id)
    assert "-69.0%" in md.out and "not recovered" in md.out
    # the shallower drawdown wins, in `best` and in `compare`
    best = module_run_script("query_experiments", "best", "-e", exp, "--metric", "max_drawdown", "--format", "json")
    assert best.code == 0, best.err
    assert [r["run_id"] for r in json.loads(best.out)["runs"]][:2] == [steady_id, loser_id]
    cmp = module_run_script(
        "query_experiments", "compare", steady_id, loser_id, "--preset", "backtest", "--format", "json"
    )
    assert cmp.code == 0, cmp.err
    row = {r["field"]: r for r in json.loads(cmp.out)["rows"]}["metrics.max_drawdown"]
    assert row["better"] == [0] and round(row["values"][1] * 100, 1) == -69.0
