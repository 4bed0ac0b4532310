"""Inputs that cannot be returns, and figures that must say what they rest on (issue 23, items 3-5
and 7): price levels and all-positive percent numbers refused before anything is created, naming
the flag that reads them right; Jensen's alpha on excess returns over --risk-free (checked against
the formula empyrical implements); a small-sample note for a handful of bars."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import unique
from reliability import assert_clean_error

SCRIPT = "log_backtest"


def write(path, **columns) -> str:
    days = pd.bdate_range("2021-01-04", periods=len(next(iter(columns.values()))))
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), **columns}).to_csv(path, index=False)
    return str(path)


def prices(n: int = 300, seed: int = 1) -> np.ndarray:
    return 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.0005, 0.01, n)))


def test_price_levels_are_refused_naming_prices(run_script, client, tmp_path):
    path = write(tmp_path / "close.csv", close=prices())
    exp = unique("levels")
    res = run_script(SCRIPT, "--returns", path, "--experiment", exp)
    assert_clean_error(res, 2, "looks like price levels", "--prices")
    assert client.get_experiment_by_name(exp) is None  # refused before anything was created
    ok = run_script(SCRIPT, "--returns", path, "--prices", "--dry-run", "--format", "json")
    assert ok.code == 0, ok.err
    p = prices()
    assert json.loads(ok.out)["metrics"]["cumulative_return"] == pytest.approx(p[-1] / p[0] - 1, rel=1e-9)


def test_all_positive_percent_numbers_are_refused_naming_percent(run_script, tmp_path):
    pct = np.abs(np.random.default_rng(2).normal(0.8, 0.6, 300)) + 0.01  # percent returns, never a losing bar
    path = write(tmp_path / "pct.csv", r=pct)
    assert_clean_error(run_script(SCRIPT, "--returns", path, "--dry-run"), 2, "only positive numbers", "--percent")
    ok = run_script(SCRIPT, "--returns", path, "--percent", "--dry-run", "--format", "json")
    assert ok.code == 0, ok.err
    expected = float(np.prod(1 + pct / 100) - 1)
    assert json.loads(ok.out)["metrics"]["cumulative_return"] == pytest.approx(expected, rel=1e-9)
    # small all-positive fractions are plausible returns: accepted as they are
    small = write(tmp_path / "gains.csv", r=pct / 100)
    assert run_script(SCRIPT, "--returns", small, "--dry-run").code == 0


def test_benchmark_levels_name_benchmark_prices_and_sweeps_refuse_too(run_script, tmp_path):
    rng = np.random.default_rng(3)
    r = rng.normal(0.0004, 0.01, 300)
    path = write(tmp_path / "pair.csv", strategy=r, spy=prices(seed=4))
    res = run_script(SCRIPT, "--returns", path, "--column", "strategy", "--benchmark-column", "spy", "--dry-run")
    assert_clean_error(res, 2, "column 'spy' looks like price levels", "--benchmark-prices")
    ok = run_script(
        SCRIPT,
        "--returns",
        path,
        "--column",
        "strategy",
        "--benchmark-column",
        "spy",
        "--benchmark-prices",
        "--dry-run",
    )
    assert ok.code == 0, ok.err
    sweep = write(tmp_path / "sweep.csv", a=r, b=prices(seed=5))
    assert_clean_error(run_script(SCRIPT, "--returns", sweep, "--columns", "a,b", "--dry-run"), 2, "--prices")


def test_alpha_is_jensens_on_excess_returns(run_script, tmp_path):
    rng = np.random.default_rng(13)
    b = rng.normal(0.0004, 0.009, 756)
    r = 0.0003 + 0.6 * b + rng.normal(0, 0.006, 756)
    path = write(tmp_path / "pair.csv", strategy=r, spy=b)
    rf = 0.03

    def alpha(*flags):
        pair = ["--column", "strategy", "--benchmark-column", "spy"]
        res = run_script(SCRIPT, "--returns", path, *pair, *flags, "--dry-run", "--format", "json")
        assert res.code == 0, res.err
        return json.loads(res.out)["metrics"]

    m = alpha("--risk-free", str(rf))
    beta = np.cov(r, b, ddof=1)[0, 1] / np.var(b, ddof=1)
    rf_bar = (1 + rf) ** (1 / 252) - 1
    per_bar = np.mean(r - rf_bar) - beta * np.mean(b - rf_bar)
    assert m["beta"] == pytest.approx(beta, rel=1e-9)
    assert m["alpha"] == pytest.approx(per_bar * 252, rel=1e-9)
    # empyrical.alpha(returns, factor_returns, risk_free=rf per bar): the same per-bar alpha, compounded
    # (empyrical/stats.py alpha_aligned: (nanmean(adj_returns - beta * adj_factor_returns) + 1) ** 252 - 1)
    empyrical = (np.mean((r - rf_bar) - beta * (b - rf_bar)) + 1) ** 252 - 1
    assert (1 + m["alpha"] / 252) ** 252 - 1 == pytest.approx(empyrical, rel=1e-9)
    without = alpha()  # --risk-free 0: QuantStats' own greeks alpha
    assert without["alpha"] == pytest.approx((np.mean(r) - beta * np.mean(b)) * 252, rel=1e-9)
    assert without["alpha"] != pytest.approx(m["alpha"], rel=1e-3)  # the risk-free rate matters when beta != 1


def test_two_or_three_bars_get_a_small_sample_note(run_script, tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("date,returns\n2024-01-02,0.01\n2024-01-03,-0.02\n2024-01-04,0.015\n")
    res = run_script(SCRIPT, "--returns", path, "--dry-run", "--format", "json")
    assert res.code == 0, res.err
    notes = [n for n in json.loads(res.out)["notes"] if n.startswith("small sample")]
    assert len(notes) == 1 and "3 bars" in notes[0] and "annualised" in notes[0]
    md = run_script(SCRIPT, "--returns", path, "--dry-run")
    assert "small sample: 3 bars" in md.out
    long = tmp_path / "long.csv"
    days = pd.bdate_range("2024-01-02", periods=60)
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "r": np.random.default_rng(1).normal(0, 0.01, 60)}).to_csv(
        long, index=False
    )
    assert "small sample" not in run_script(SCRIPT, "--returns", long, "--dry-run").out


def test_sweep_flags_are_refused_for_one_backtest(run_script, tmp_path):
    path = write(tmp_path / "one.csv", r=np.random.default_rng(1).normal(0, 0.01, 60))
    assert_clean_error(run_script(SCRIPT, "--returns", path, "--oos-from", "0.7", "--dry-run"), 2, "is for a sweep")
    rng = np.random.default_rng(2)
    sweep = write(tmp_path / "sweep.csv", a=rng.normal(0, 0.01, 60), b=rng.normal(0, 0.01, 60))
    flags = ["--returns", sweep, "--columns", "a,b", "--dry-run"]
    assert_clean_error(run_script(SCRIPT, *flags, "--oos-from", "1.5"), 2, "a fraction is between 0 and 1")
    assert_clean_error(run_script(SCRIPT, *flags, "--oos-from", "2030-01-01"), 2, "0 out of sample")
    assert_clean_error(run_script(SCRIPT, *flags, "--pbo-blocks", "15"), 2, "--pbo-blocks takes an even number")
    assert_clean_error(run_script(SCRIPT, *flags, "--ledger", "sweep:abc"), 2, "takes no run id here")
