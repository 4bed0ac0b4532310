"""Honest numbers from log_backtest.py (issue 13): periods per year from the calendar as the file
states it, degenerate series, foreign CSV formats, and the QuantStats figures corrected for the
data. Every check runs the script (`--dry-run --format json`, nothing is logged) and compares with
a value computed here with numpy/pandas (or QuantStats with explicit periods).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reliability import assert_clean_error

SCRIPT = "log_backtest"


@pytest.fixture()
def dry(run_script):
    """dry(path, *flags) -> the JSON summary (exit 0 asserted, never an 'unexpected' error)."""

    def run(path: Path, *flags: str) -> dict:
        res = run_script(SCRIPT, "--returns", str(path), *flags, "--dry-run", "--format", "json")
        assert res.code == 0, res.err
        assert "unexpected" not in res.err
        return json.loads(res.out)

    return run


def vol(values, ppy: float) -> float:
    return float(np.std(np.asarray(values, dtype=float), ddof=1) * math.sqrt(ppy))


def cagr_by_count(values, ppy: float) -> float:
    """QuantStats' CAGR: years = bars / periods per year."""
    values = np.asarray(values, dtype=float)
    return float(np.prod(1 + values) ** (ppy / len(values)) - 1)


# ---------------------------------------------------------------------------------------------
# Periods per year from the calendar as it is
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ["Europe/Paris", "Asia/Tokyo"])
def test_daily_bars_east_of_utc_are_trading_days(dry, tmp_path, zone):
    """Midnight bars in Paris/Tokyo fall on Sunday in UTC; weekdays are read on local dates."""
    rng = np.random.default_rng(7)
    days = pd.bdate_range("2021-01-04", periods=750, tz=zone)
    r = rng.normal(0.0004, 0.0104, len(days))
    assert (days.tz_convert("UTC").day_of_week == 6).any()  # the trap is real: UTC dates include Sundays
    csv = tmp_path / "local.csv"
    pd.DataFrame({"date": days.astype(str), "returns": r}).to_csv(csv, index=False)
    pq = tmp_path / "local.parquet"
    pd.DataFrame({"date": days, "returns": r}).to_parquet(pq)
    for path in (csv, pq):
        out = dry(path)
        assert out["periods_per_year"] == 252, out["periods_per_year_how"]
        assert out["metrics"]["volatility"] == pytest.approx(vol(r, 252), rel=1e-9)
        assert not any(n.startswith("periods per year") for n in out["notes"])
        # months as the file states them: the bar of 1 Feb (local) belongs to February
        local = pd.Series(r, index=days.tz_localize(None))
        monthly = (1 + local).groupby([local.index.year, local.index.month]).prod() - 1
        assert out["metrics"]["best_month"] == pytest.approx(float(monthly.max()), rel=1e-9)


def test_irregular_days_use_the_measured_rate_with_a_warning(dry, run_script, tmp_path):
    rng = np.random.default_rng(11)
    calendar = pd.date_range("2019-01-01", periods=1500, freq="D")
    dates = calendar[np.sort(rng.choice(len(calendar), 900, replace=False))]
    r = rng.normal(0.0009, 0.012, len(dates))
    path = tmp_path / "irregular.csv"
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "returns": r}).to_csv(path, index=False)
    out = dry(path)
    years = (dates[-1] - dates[0]).days / 365.25
    measured = (len(dates) - 1) / years
    assert out["periods_per_year"] == pytest.approx(measured, rel=1e-3)
    warning = [n for n in out["notes"] if n.startswith("periods per year")]
    assert len(warning) == 1 and "--periods-per-year 365" in warning[0]
    md = run_script(SCRIPT, "--returns", str(path), "--dry-run")  # the warning is visible to people too
    assert md.code == 0 and "- note: periods per year: the data has" in md.out
    true_cagr = float(np.prod(1 + r) ** (1 / years) - 1)  # growth over the elapsed time
    assert out["metrics"]["cagr"] == pytest.approx(true_cagr, rel=0.01)
    assert out["metrics"]["volatility"] == pytest.approx(vol(r, out["periods_per_year"]), rel=1e-9)
    forced = dry(path, "--periods-per-year", "365")
    assert forced["periods_per_year"] == 365 and not any(n.startswith("periods per year") for n in forced["notes"])
    assert forced["metrics"]["cagr"] == pytest.approx(cagr_by_count(r, 365), rel=1e-9)


def test_weekly_bars_with_missing_weeks(dry, tmp_path):
    rng = np.random.default_rng(5)
    weeks = pd.date_range("2016-01-04", periods=400, freq="W-MON")
    dates = weeks[np.sort(rng.choice(len(weeks), 280, replace=False))]  # 30 % of weeks missing
    r = rng.normal(0.002, 0.02, len(dates))
    path = tmp_path / "weekly.csv"
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "returns": r}).to_csv(path, index=False)
    out = dry(path)
    measured = (len(dates) - 1) / ((dates[-1] - dates[0]).days / 365.25)
    assert out["periods_per_year"] == pytest.approx(measured, rel=1e-3) and out["periods_per_year"] < 45
    assert any("--periods-per-year 52" in n for n in out["notes"])
    complete = tmp_path / "weekly_full.csv"
    pd.DataFrame({"date": weeks.strftime("%Y-%m-%d"), "returns": rng.normal(0, 0.02, len(weeks))}).to_csv(
        complete, index=False
    )
    full = dry(complete)
    assert full["periods_per_year"] == 52 and not any(n.startswith("periods per year") for n in full["notes"])


def test_returns_without_dates_need_periods_per_year(dry, run_script, tmp_path):
    rng = np.random.default_rng(3)
    r = rng.normal(0.01, 0.04, 60)
    path = tmp_path / "undated.csv"
    pd.DataFrame({"returns": r}).to_csv(path, index=False)
    res = run_script(SCRIPT, "--returns", str(path), "--dry-run")
    assert_clean_error(res, 2, "--periods-per-year")
    out = dry(path, "--periods-per-year", "12")
    assert out["periods_per_year"] == 12
    assert out["metrics"]["volatility"] == pytest.approx(vol(r, 12), rel=1e-9)
    assert out["metrics"]["cagr"] == pytest.approx(cagr_by_count(r, 12), rel=1e-9)
    assert out["metrics"]["cumulative_return"] == pytest.approx(float(np.prod(1 + r) - 1), rel=1e-9)
    for key in ("best_year", "return_ytd", "max_drawdown_days", "cagr_3y"):
        assert key not in out["metrics"] and out["undefined_reasons"][key] == "no dates in the data"
    assert any(n.startswith("no date column") for n in out["notes"])


# ---------------------------------------------------------------------------------------------
# Degenerate series
# ---------------------------------------------------------------------------------------------
def test_constant_and_zero_returns_name_what_is_left_out(dry, run_script, tmp_path):
    days = pd.bdate_range("2023-01-02", periods=400)
    for name, value in (("constant", 0.001), ("zero", 0.0)):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": value}).to_csv(path, index=False)
        out = dry(path)
        metrics, reasons = out["metrics"], out["undefined_reasons"]
        for key in (
            "sharpe",
            "smart_sharpe",
            "sortino",
            "probabilistic_sharpe_ratio",
            "risk_return_ratio",
            "skew",
            "kurtosis",
        ):
            assert key not in metrics and "zero variance" in reasons[key], key
            assert key in out["undefined_metrics"]
        assert metrics["volatility"] == 0.0 and metrics["volatility_per_period"] == 0.0  # the true spread
        assert metrics["value_at_risk"] == value and metrics["cvar"] == value  # the tail is the constant
        assert all(abs(v) < 1e6 for v in metrics.values()), {k: v for k, v in metrics.items() if abs(v) >= 1e6}
        assert metrics["cumulative_return"] == pytest.approx(float((1 + value) ** len(days) - 1), rel=1e-9)
        if value == 0.0:  # no bar won or lost: no win rate, no risk of ruin (QuantStats: 0 % and 100 %)
            assert metrics["time_in_market"] == 0.0
            for key in ("win_rate", "win_rate_month", "risk_of_ruin", "profit_factor"):
                assert key not in metrics and "no winning or losing bar" in reasons[key], key
        else:
            assert metrics["win_rate"] == 1.0 and metrics["time_in_market"] == 1.0
        md = run_script(SCRIPT, "--returns", str(path), "--dry-run")
        assert md.code == 0 and "left out (" in md.out and "zero variance" in md.out


def test_risk_of_ruin_underflow_is_left_out(dry, tmp_path):
    rng = np.random.default_rng(2)
    for n, underflows in ((2000, True), (60, False)):
        days = pd.bdate_range("2015-01-02", periods=n)
        r = rng.normal(0.0005, 0.01, n)
        path = tmp_path / f"ruin{n}.csv"
        pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": r}).to_csv(path, index=False)
        out = dry(path)
        wins = float((r > 0).sum() / (r != 0).sum())
        exponent = n * math.log10((1 - wins) / (1 + wins))
        if underflows:
            assert exponent < -308
            assert "risk_of_ruin" not in out["metrics"] and "underflow" in out["undefined_reasons"]["risk_of_ruin"]
            assert f"10^{exponent:.0f}" in out["undefined_reasons"]["risk_of_ruin"]
        else:
            assert out["metrics"]["risk_of_ruin"] == pytest.approx(10**exponent, rel=1e-9)


def test_windows_longer_than_the_data_are_left_out(dry, tmp_path):
    rng = np.random.default_rng(9)
    days = pd.bdate_range("2024-01-01", periods=126)  # six months
    r = rng.normal(0.001, 0.01, len(days))
    path = tmp_path / "six_months.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": r}).to_csv(path, index=False)
    out = dry(path)
    for key in ("cagr_3y", "cagr_5y", "cagr_10y", "best_year", "worst_year", "return_1y", "expected_return_year"):
        assert key not in out["metrics"] and "less than the metric's window" in out["undefined_reasons"][key], key
    s = pd.Series(r, index=days)
    monthly = (1 + s).groupby([s.index.year, s.index.month]).prod() - 1
    assert out["metrics"]["best_month"] == pytest.approx(float(monthly.max()), rel=1e-9)
    assert out["metrics"]["return_3m"] == pytest.approx(
        float(np.prod(1 + s[s.index >= days[-1] - pd.DateOffset(months=3)]) - 1), rel=1e-9
    )


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------
def european(prices) -> list[str]:
    return [f"{p:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") for p in prices]


def test_european_csv_semicolons_decimal_commas_bom(dry, tmp_path):
    rng = np.random.default_rng(4)
    days = pd.bdate_range("2022-01-03", periods=500)
    prices = np.round(1000 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, len(days)))), 2)
    r = prices[1:] / prices[:-1] - 1
    eu = tmp_path / "kurse.csv"
    with open(eu, "w", encoding="utf-8-sig") as fh:  # Excel's "CSV UTF-8": a BOM, ';' and ','
        fh.write("Datum;Schlusskurs\n")
        fh.writelines(
            f"{day};{price}\n" for day, price in zip(days.strftime("%d.%m.%Y"), european(prices), strict=False)
        )
    out = dry(eu, "--prices")
    assert out["data"]["data.column"] == "Schlusskurs" and out["data"]["data.start"].startswith("2022-01-04")
    assert out["metrics"]["volatility"] == pytest.approx(vol(r, 252), rel=1e-9)
    # the same prices quoted in a comma-separated file, chosen with --column
    quoted = tmp_path / "quoted.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "close": european(prices), "volume": 5}).to_csv(
        quoted, index=False
    )
    out = dry(quoted, "--prices", "--column", "close")
    assert out["metrics"]["volatility"] == pytest.approx(vol(r, 252), rel=1e-9)
    returns = tmp_path / "returns_eu.csv"
    with open(returns, "w") as fh:
        fh.write(
            "date;returns\n"
            + "".join(
                f"{d};{str(v).replace('.', ',')}\n" for d, v in zip(days.strftime("%Y-%m-%d")[1:], r, strict=False)
            )
        )
    assert dry(returns)["metrics"]["volatility"] == pytest.approx(vol(r, 252), rel=1e-9)
    assert dry(returns, "--sep", ";", "--decimal", ",")["metrics"]["volatility"] == pytest.approx(vol(r, 252), rel=1e-9)


def test_wrong_reading_names_the_right_flag(run_script, tmp_path):
    unquoted = tmp_path / "unquoted.csv"
    unquoted.write_text("date,returns\n2024-01-02,0,01\n2024-01-03,-0,02\n2024-01-04,0,015\n")
    assert_clean_error(run_script(SCRIPT, "--returns", str(unquoted), "--dry-run"), 2, "--sep ';'")
    semi = tmp_path / "semi.csv"
    semi.write_text("date;returns\n2024-01-02;0,01\n2024-01-03;-0,02\n2024-01-04;0,015\n")
    assert_clean_error(run_script(SCRIPT, "--returns", str(semi), "--sep", ",", "--dry-run"), 2, "--sep ';'")
    assert_clean_error(run_script(SCRIPT, "--returns", str(semi), "--decimal", ".", "--dry-run"), 2, "--decimal ,")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text('date,returns\n2024-01-02,0.0123\n2024-01-03,"0,0456"\n2024-01-04,0.01\n')
    assert_clean_error(run_script(SCRIPT, "--returns", str(mixed), "--dry-run"), 2, "mixes decimal marks", "--decimal")


def test_percent_scaled_returns_are_flagged(dry, tmp_path):
    rng = np.random.default_rng(6)
    days = pd.bdate_range("2022-01-03", periods=500)
    pct = rng.normal(0.04, 0.15, len(days))  # percent numbers: 0.15 means 0.15 %
    path = tmp_path / "pct.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": pct}).to_csv(path, index=False)
    out = dry(path)
    assert float(np.median(np.abs(pct))) < 0.2  # the old median rule stayed silent
    assert vol(pct, 252) > 1.0
    assert any("--percent" in n and "implausible" in n for n in out["notes"])
    fixed = dry(path, "--percent")
    assert fixed["metrics"]["volatility"] == pytest.approx(vol(pct / 100, 252), rel=1e-9)
    assert not any("implausible" in n for n in fixed["notes"])
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": pct / 100}).to_csv(plain, index=False)
    assert not any("implausible" in n for n in dry(plain)["notes"])


# ---------------------------------------------------------------------------------------------
# QuantStats' definitions corrected for the data
# ---------------------------------------------------------------------------------------------
def test_risk_adjusted_return_uses_the_datas_periods(dry, tmp_path):
    rng = np.random.default_rng(8)
    months = pd.date_range("2014-01-31", periods=120, freq="ME")
    r = rng.normal(0.01, 0.04, len(months))
    r[rng.choice(len(r), 30, replace=False)] = 0.0  # out of the market 25 % of the months
    path = tmp_path / "monthly.csv"
    pd.DataFrame({"date": months.strftime("%Y-%m-%d"), "returns": r}).to_csv(path, index=False)
    out = dry(path)
    assert out["periods_per_year"] == 12
    exposure = math.ceil((r != 0).mean() * 100) / 100  # QuantStats rounds exposure up to a percent
    assert out["metrics"]["time_in_market"] == pytest.approx(exposure)
    assert out["metrics"]["risk_adjusted_return"] == pytest.approx(cagr_by_count(r, 12) / exposure, rel=1e-9)
    rf = 0.03
    with_rf = dry(path, "--risk-free", str(rf))
    excess = r - ((1 + rf) ** (1 / 12) - 1)
    assert with_rf["metrics"]["risk_adjusted_return"] == pytest.approx(cagr_by_count(excess, 12) / exposure, rel=1e-9)


def test_tail_and_recovery_signs(dry, tmp_path):
    from scipy.stats import norm

    rng = np.random.default_rng(12)
    days = pd.bdate_range("2023-01-02", periods=300)
    gains = rng.uniform(0.004, 0.012, len(days))  # every bar gains: the 5 % tail is a gain
    path = tmp_path / "gains.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": gains}).to_csv(path, index=False)
    out = dry(path)["metrics"]
    mu, sigma = gains.mean(), gains.std(ddof=1)
    assert (
        out["value_at_risk"] == pytest.approx(float(norm.ppf(0.05, mu, sigma)), rel=1e-9) and out["value_at_risk"] > 0
    )
    assert (
        out["cvar"] == pytest.approx(float(mu - sigma * norm.pdf(norm.ppf(0.05)) / 0.05), rel=1e-9) and out["cvar"] > 0
    )
    tail = gains[gains <= np.quantile(gains, 0.05)]
    assert out["cvar_historical"] == pytest.approx(float(tail.mean()), rel=1e-9)
    losing = rng.normal(-0.002, 0.01, len(days))
    path = tmp_path / "losing.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": losing}).to_csv(path, index=False)
    out = dry(path)["metrics"]
    equity = np.cumprod(1 + losing)
    max_dd = float(np.min(equity / np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:] - 1))
    assert out["max_drawdown"] == pytest.approx(max_dd, rel=1e-9)
    assert (
        out["recovery_factor"] == pytest.approx(float(losing.sum()) / abs(max_dd), rel=1e-9)
        and out["recovery_factor"] < 0
    )


def test_information_ratio_annualised_and_gain_to_pain_with_risk_free(dry, tmp_path):
    rng = np.random.default_rng(13)
    days = pd.bdate_range("2020-01-02", periods=756)
    r = rng.normal(0.0006, 0.01, len(days))
    b = rng.normal(0.0003, 0.009, len(days)) + 0.4 * r
    path = tmp_path / "pair.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "strategy": r, "spy": b}).to_csv(path, index=False)
    rf = 0.04
    out = dry(path, "--column", "strategy", "--benchmark-column", "spy", "--risk-free", str(rf))["metrics"]
    active = r - b
    assert out["information_ratio"] == pytest.approx(
        float(active.mean() / active.std(ddof=1) * math.sqrt(252)), rel=1e-9
    )
    excess = pd.Series(r - ((1 + rf) ** (1 / 252) - 1), index=days)
    assert out["gain_to_pain_ratio"] == pytest.approx(float(excess.sum() / abs(excess[excess < 0].sum())), rel=1e-9)
    monthly = excess.groupby([days.year, days.month]).sum()
    assert out["gain_to_pain_1m"] == pytest.approx(float(monthly.sum() / abs(monthly[monthly < 0].sum())), rel=1e-9)
    without = dry(path, "--column", "strategy", "--benchmark-column", "spy")["metrics"]
    raw = pd.Series(r)
    assert without["gain_to_pain_ratio"] == pytest.approx(float(raw.sum() / abs(raw[raw < 0].sum())), rel=1e-9)
    assert out["gain_to_pain_ratio"] < without["gain_to_pain_ratio"]
