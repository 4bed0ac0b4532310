"""Per-period returns as data (scripts/_backtest_periods.py), checked against independent
computations: calendar groupby for months and years, numpy for rolling statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlflow_skill.backtest import periods


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(7)
    index = pd.bdate_range("2021-03-15", "2023-08-10")
    return pd.Series(rng.normal(0.0004, 0.012, len(index)), index=index, name="returns")


def test_monthly_grid_equals_calendar_groupby(returns):
    grid = periods.monthly_grid(returns)
    by_month = returns.groupby([returns.index.year, returns.index.month]).apply(lambda r: float(np.prod(1 + r) - 1))
    by_year = returns.groupby(returns.index.year).apply(lambda r: float(np.prod(1 + r) - 1))
    assert sum(len([k for k in row if k != "year"]) for row in grid.values()) == len(by_month)
    for (year, month), value in by_month.items():
        assert grid[str(year)][f"{month:02d}"] == pytest.approx(value, rel=1e-12, abs=1e-15)
    for year, value in by_year.items():
        assert grid[str(year)]["year"] == pytest.approx(value, rel=1e-12, abs=1e-15)
    assert "01" not in grid["2021"] and "09" not in grid["2023"]  # months without bars are absent, not 0


def test_worst_drawdowns_match_quantstats_and_are_sorted(returns):
    import quantstats as qs

    rows = periods.worst_drawdowns(qs, returns, limit=3)
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(returns)).sort_values("max drawdown")
    assert [r["depth"] for r in rows] == pytest.approx((details["max drawdown"].head(3) / 100).tolist())
    assert rows == sorted(rows, key=lambda r: r["depth"]) and all(r["depth"] < 0 for r in rows)
    equity = (1 + returns).cumprod()
    worst = float((equity / equity.cummax() - 1).min())
    assert rows[0]["depth"] == pytest.approx(worst, rel=1e-6)


def test_rolling_sharpe_and_volatility_equal_numpy(returns):
    window = periods.rolling_window(252, len(returns))
    assert window == 126
    sharpe, vol = periods.rolling_sharpe_and_volatility(returns, 252, window)
    tail = returns.to_numpy()[-window:]
    assert vol.iloc[-1] == pytest.approx(np.std(tail, ddof=1) * math.sqrt(252), rel=1e-9)
    assert sharpe.iloc[-1] == pytest.approx(np.mean(tail) / np.std(tail, ddof=1) * math.sqrt(252), rel=1e-9)
    assert sharpe.iloc[: window - 1].isna().all()
    assert periods.rolling_window(12, 30) == 15  # never more than half the data
