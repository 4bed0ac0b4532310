"""The probabilistic and deflated Sharpe ratios: scripts/sharpe_stats.py against a direct implementation
of the published formulas (scipy's normal distribution), and `best --metric sharpe` on seeded
backtest runs reporting the same numbers, with the number of trials said."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from mlflow_skill.quant import sharpe as sharpe_stats

from conftest import unique


def reference_psr(sr, n, skew, kurt, sr_star):
    """Bailey & López de Prado (2012), eq. for PSR; kurt is the (non-excess) kurtosis."""
    return norm.cdf((sr - sr_star) * np.sqrt(n - 1) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))


def reference_sr0(n_trials, var):
    """Bailey & López de Prado (2014): expected maximum Sharpe ratio of N unskilled trials."""
    g = 0.5772156649015329
    return np.sqrt(var) * ((1 - g) * norm.ppf(1 - 1 / n_trials) + g * norm.ppf(1 - 1 / (n_trials * np.e)))


@pytest.mark.parametrize(
    "sr,n,skew,kurt,star",
    [
        (0.1, 1250, -0.3, 5.0, 0.0),
        (0.05, 252, 0.0, 3.0, 0.02),
        (0.2, 60, 1.2, 9.0, 0.1),
        (-0.05, 500, -1.0, 4.0, 0.0),
    ],
)
def test_psr_equals_the_published_formula(sr, n, skew, kurt, star):
    assert sharpe_stats.psr(sr, n, skew, kurt, star) == pytest.approx(reference_psr(sr, n, skew, kurt, star), rel=1e-9)


@pytest.mark.parametrize("trials,var", [(2, 0.001), (10, 0.0004), (100, 0.0025), (1000, 0.01)])
def test_expected_max_sharpe_equals_the_published_formula(trials, var):
    assert sharpe_stats.expected_max_sharpe(trials, var) == pytest.approx(reference_sr0(trials, var), rel=1e-9)


def test_more_trials_deflate_more():
    values = [sharpe_stats.dsr(0.08, 1000, 0.0, 3.0, n, 0.001) for n in (2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    assert sharpe_stats.expected_max_sharpe(1, 0.001) == 0.0  # one trial: nothing to deflate


def test_rank_uses_per_bar_sharpe_and_sample_variance():
    trials = [sharpe_stats.Trial(f"t{i}", s, 252.0, 1000, -0.2, 1.5) for i, s in enumerate([0.5, 1.0, 1.5, 2.0])]
    ranking = sharpe_stats.rank(trials)
    per_bar = np.array([0.5, 1.0, 1.5, 2.0]) / np.sqrt(252)
    assert ranking.trials == 4 and ranking.variance == pytest.approx(per_bar.var(ddof=1))
    sr0 = reference_sr0(4, per_bar.var(ddof=1))
    assert ranking.dsr["t3"] == pytest.approx(reference_psr(per_bar[3], 1000, -0.2, 4.5, sr0), rel=1e-9)
    assert sharpe_stats.rank(trials, n_trials=50).dsr["t3"] < ranking.dsr["t3"]


def test_best_by_sharpe_reports_psr_and_dsr(run_script, client):
    """Seeded runs shaped like log_backtest's (sharpe, skew, kurtosis, data.periods, data.periods_per_year)."""
    from mlflow.entities import Metric, Param

    exp_name = unique("dsr")
    exp = client.create_experiment(exp_name)
    sharpes = [0.2, 0.6, 0.9, 1.1, 1.4, 0.4, 0.8, 1.0]
    ids = []
    for i, s in enumerate(sharpes):
        run = client.create_run(exp, run_name=f"sma-{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("sharpe", s, 0, 0), Metric("skew", -0.1 * i, 0, 0), Metric("kurtosis", 0.5 + i / 10, 0, 0)],
            params=[Param("data.periods", "1500"), Param("data.periods_per_year", "252")],
        )
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    res = run_script(
        "query_experiments", "best", "-e", exp_name, "--metric", "sharpe", "--top", "3", "--format", "json"
    )
    assert res.code == 0, res.err
    data = json.loads(res.out)
    winner = data["runs"][0]["run_id"]
    assert winner == ids[4]
    per_bar = np.array(sharpes) / np.sqrt(252)
    sr0 = reference_sr0(len(sharpes), per_bar.var(ddof=1))
    expected = reference_psr(per_bar[4], 1500, -0.4, 0.9 + 3, sr0)
    deflated = data["deflated_sharpe"]
    assert deflated["trials"] == len(sharpes) and deflated["dsr"][winner] == pytest.approx(expected, rel=1e-9)
    assert deflated["psr"][winner] == pytest.approx(reference_psr(per_bar[4], 1500, -0.4, 3.9, 0.0), rel=1e-9)
    md = run_script("query_experiments", "best", "-e", exp_name, "--metric", "sharpe", "--top", "3", "--trials", "200")
    assert md.code == 0 and "N = 200 given by --trials" in md.out and "DSR" in md.out
    assert "distinguishable from luck" in md.out
    assert not math.isnan(expected)
