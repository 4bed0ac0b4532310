"""Metric directions (issue 13): a known direction for every metric log_backtest.py logs, the same
in references/quantstats-metrics.md, and `query_experiments.py best` using it on seeded runs
(max_drawdown is stored negative: the highest is the shallowest; volatility: the lowest wins),
with a guessed direction said as guessed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlflow_skill.quant import catalog as dirs

from conftest import unique

REFERENCE = Path(__file__).resolve().parent.parent / "references" / "quantstats-metrics.md"


def test_every_logged_metric_has_a_known_direction(run_script, tmp_path):
    rng = np.random.default_rng(1)
    days = pd.bdate_range("2019-01-02", periods=800)
    r = rng.normal(0.0005, 0.01, len(days))
    path = tmp_path / "pair.csv"
    pd.DataFrame(
        {"date": days.strftime("%Y-%m-%d"), "s": r, "b": rng.normal(0.0003, 0.009, len(days)) + 0.3 * r}
    ).to_csv(path, index=False)
    res = run_script(
        "log_backtest",
        "--returns",
        str(path),
        "--column",
        "s",
        "--benchmark-column",
        "b",
        "--dry-run",
        "--format",
        "json",
    )
    assert res.code == 0, res.err
    out = json.loads(res.out)
    keys = (
        set(out["metrics"])
        | set(out["undefined_metrics"])
        | {"equity_curve", "drawdown", "rolling_sharpe", "rolling_volatility"}
    )
    assert len(keys) > 150
    unknown = sorted(k for k in keys if dirs.known(k) is None)
    assert not unknown, unknown
    for key in keys:
        assert dirs.direction(key)[1].startswith(dirs.KNOWN), key


def test_reference_table_states_the_same_direction():
    """Every metric row of the reference has a `better` cell equal to _directions' table."""
    seen = {}
    for line in REFERENCE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`") or cells[0] == "`benchmark_<key>`":
            continue
        for key in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            seen[key] = cells[4]
    expected = {
        k: v
        for k, v in dirs.DIRECTIONS.items()
        if k not in ("equity_curve", "drawdown", "rolling_sharpe", "rolling_volatility", "benchmark_equity_curve")
    }
    assert seen == expected
    assert dirs.direction("max_drawdown") == (True, dirs.KNOWN)
    assert dirs.direction("volatility") == (False, dirs.KNOWN)
    assert dirs.direction("benchmark_volatility") == (False, dirs.KNOWN)


def test_reference_tables_are_generated_from_the_registry():
    """The metric tables of the reference are the registry's (quant/reference.py renders them)."""
    from mlflow_skill.quant import reference

    text = REFERENCE.read_text()
    assert reference.rewrite(text) == text, "regenerate: uv run python tests/metrics_reference.py"
    tabled = {key for line in text.splitlines() for key in re.findall(r"^\| `([a-z0-9_]+)` \|", line)}
    logged = {m.key for m in dirs.METRICS if m.group != dirs.HISTORIES}
    assert logged <= tabled


def test_former_metric_lists_are_views_of_the_registry():
    """Units, headline labels and compare presets come from the one registry."""
    from mlflow_skill.backtest import metrics as bm

    assert bm.PCT_KEYS == dirs.PERCENT_KEYS and "cagr" in bm.PCT_KEYS and "sharpe" not in bm.PCT_KEYS
    headline = [(m.key, m.label) for m in dirs.preset(dirs.HEADLINE)]
    assert headline[:3] == [("cagr", "CAGR"), ("cumulative_return", "Cumulative return"), ("sharpe", "Sharpe")]
    assert all(label for _, label in headline)
    assert dirs.COMPARE_PRESETS["backtest"][:3] == ["sharpe", "sortino", "cagr"]


@pytest.fixture(scope="module")
def backtests(client):
    """Three logged-looking backtest runs: the shallowest drawdown and the lowest volatility are
    different runs, and neither is the run a name-guess would pick."""
    exp = unique("numbers-directions")
    exp_id = client.create_experiment(exp)
    runs = {"calm": (-0.08, 0.25, 0.61), "steady": (-0.20, 0.09, 0.72), "wild": (-0.35, 0.40, 0.55)}
    for name, (dd, vol, f1) in runs.items():
        run = client.create_run(exp_id, run_name=name)
        for key, value in (("max_drawdown", dd), ("volatility", vol), ("val_f1", f1), ("latency_ms", vol * 100)):
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id)
    return exp, runs


def best(run_script, exp: str, metric: str) -> tuple[list[str], str]:
    res = run_script("query_experiments", "best", "-e", exp, "--metric", metric, "--top", "3", "--format", "json")
    assert res.code == 0, res.err
    names = [r["run_name"] for r in json.loads(res.out)["runs"]]
    md = run_script("query_experiments", "best", "-e", exp, "--metric", metric, "--top", "1")
    assert md.code == 0, md.err
    return names, md.out


def test_best_picks_the_shallowest_drawdown_and_lowest_volatility(run_script, backtests):
    exp, runs = backtests
    names, md = best(run_script, exp, "max_drawdown")
    assert names == sorted(runs, key=lambda n: runs[n][0], reverse=True)  # -0.08 first: drawdowns are negative
    assert names[0] == "calm" and "known" in md and "guessed" not in md
    names, md = best(run_script, exp, "volatility")
    assert names == sorted(runs, key=lambda n: runs[n][1])
    assert names[0] == "steady" and "known" in md and "guessed" not in md


def test_a_name_not_in_the_table_is_said_to_be_guessed(run_script, backtests):
    exp, runs = backtests
    names, md = best(run_script, exp, "val_f1")
    assert names[0] == max(runs, key=lambda n: runs[n][2])
    assert "guessed from the name 'val_f1'" in md and "--max or --min" in md
    names, md = best(run_script, exp, "latency_ms")
    assert names[0] == min(runs, key=lambda n: runs[n][1]) and "guessed" in md and "min" in md
