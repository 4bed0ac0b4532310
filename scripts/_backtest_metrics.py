"""QuantStats' metric set for a returns series (and a benchmark), computed once, with the
values QuantStats answers for undefined cases left out and named; the HTML tearsheet.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from pathlib import Path
from typing import Any

# Metrics whose value is a fraction shown as percent (the rest are ratios, counts or days).
# Metrics whose value is a fraction shown as percent (the rest are ratios, counts or days).
PCT_KEYS = {
    "time_in_market", "cumulative_return", "cagr", "probabilistic_sharpe_ratio",
    "probabilistic_sortino_ratio", "probabilistic_adjusted_sortino_ratio", "max_drawdown",
    "volatility", "volatility_per_period", "risk_adjusted_return", "avg_return", "avg_win", "avg_loss",
    "expected_return_period", "expected_return_month", "expected_return_year", "kelly_criterion",
    "value_at_risk", "cvar", "value_at_risk_99", "cvar_99", "cvar_historical", "return_mtd", "return_3m",
    "return_6m", "return_ytd", "return_1y", "cagr_3y", "cagr_5y", "cagr_10y", "best_period",
    "worst_period", "best_month", "worst_month", "best_quarter", "worst_quarter", "best_year",
    "worst_year", "avg_drawdown", "current_drawdown", "avg_up_month", "avg_down_month", "win_rate",
    "win_rate_month", "win_rate_quarter", "win_rate_year", "alpha", "correlation",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# QuantStats
# ---------------------------------------------------------------------------------------------
def import_quantstats():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import matplotlib

        matplotlib.use("Agg", force=True)  # no display, no GUI backend probing
        import quantstats as qs
    return qs


def series_metrics(qs, s, rf: float, ppy: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Every single-series QuantStats metric, computed exactly as reports.metrics(mode="full",
    compounded=True) computes it (same functions, same arguments) but unrounded, plus the
    stats functions that report leaves out. Returns (metrics, drawdown facts)."""
    import numpy as np
    import pandas as pd
    from dateutil.relativedelta import relativedelta

    st = qs.stats
    out: dict[str, Any] = {}
    out["time_in_market"] = st.exposure(s, prepare_returns=False)
    out["cumulative_return"] = st.comp(s)
    out["cagr"] = st.cagr(s, rf, True, ppy)
    out["sharpe"] = st.sharpe(s, rf, ppy, True)
    out["probabilistic_sharpe_ratio"] = st.probabilistic_sharpe_ratio(s, rf, ppy, False)
    out["smart_sharpe"] = st.smart_sharpe(s, rf, ppy, True)
    out["sortino"] = st.sortino(s, rf, ppy, True)
    out["smart_sortino"] = st.smart_sortino(s, rf, ppy, True)
    out["sortino_sqrt2"] = out["sortino"] / math.sqrt(2)
    out["smart_sortino_sqrt2"] = out["smart_sortino"] / math.sqrt(2)
    out["probabilistic_sortino_ratio"] = st.probabilistic_sortino_ratio(s, rf, ppy, False)
    out["probabilistic_adjusted_sortino_ratio"] = st.probabilistic_adjusted_sortino_ratio(s, rf, ppy, False)
    out["omega"] = st.omega(s, rf, 0.0, ppy)
    out["volatility"] = st.volatility(s, ppy, True, prepare_returns=False)
    out["volatility_per_period"] = st.volatility(s, ppy, False, prepare_returns=False)
    out["calmar"] = st.calmar(s, prepare_returns=False, compounded=True, periods=ppy)
    out["skew"] = st.skew(s, prepare_returns=False)
    out["kurtosis"] = st.kurtosis(s, prepare_returns=False)
    out["autocorr_penalty"] = st.autocorr_penalty(s)
    out["ulcer_performance_index"] = st.ulcer_performance_index(s, rf)
    out["risk_adjusted_return"] = st.rar(s, rf, periods=ppy, compounded=True)
    out["risk_return_ratio"] = st.risk_return_ratio(s, prepare_returns=False)
    out["avg_return"] = st.avg_return(s, prepare_returns=False)
    out["avg_win"] = st.avg_win(s, prepare_returns=False)
    out["avg_loss"] = st.avg_loss(s, prepare_returns=False)
    out["win_loss_ratio"] = st.win_loss_ratio(s, prepare_returns=False)
    out["profit_ratio"] = st.profit_ratio(s, prepare_returns=False)
    out["expected_return_period"] = st.expected_return(s, compounded=True, prepare_returns=False)
    out["expected_return_month"] = st.expected_return(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["expected_return_year"] = st.expected_return(s, compounded=True, aggregate="YE", prepare_returns=False)
    out["kelly_criterion"] = st.kelly_criterion(s, prepare_returns=False)
    out["risk_of_ruin"] = st.risk_of_ruin(s, prepare_returns=False)
    out["value_at_risk"] = -abs(st.var(s, prepare_returns=False))
    out["cvar"] = -abs(st.cvar(s, prepare_returns=False))
    out["value_at_risk_99"] = -abs(st.var(s, confidence=0.99, prepare_returns=False))
    out["cvar_99"] = -abs(st.cvar(s, confidence=0.99, prepare_returns=False))
    out["cvar_historical"] = -abs(st.cvar(s, prepare_returns=False, method="historical"))
    out["max_consecutive_wins"] = st.consecutive_wins(s)
    out["max_consecutive_losses"] = st.consecutive_losses(s)
    out["gain_to_pain_ratio"] = st.gain_to_pain_ratio(s, rf)
    out["gain_to_pain_1m"] = st.gain_to_pain_ratio(s, rf, "ME")
    out["gain_to_pain_3m"] = st.gain_to_pain_ratio(s, rf, "QE")
    out["gain_to_pain_1y"] = st.gain_to_pain_ratio(s, rf, "YE")
    out["payoff_ratio"] = st.payoff_ratio(s, prepare_returns=False)
    out["profit_factor"] = st.profit_factor(s, prepare_returns=False)
    out["common_sense_ratio"] = st.common_sense_ratio(s, prepare_returns=False)
    out["cpc_index"] = st.cpc_index(s, prepare_returns=False)
    out["tail_ratio"] = st.tail_ratio(s, prepare_returns=False)
    out["outlier_win_ratio"] = st.outlier_win_ratio(s, prepare_returns=False)
    out["outlier_loss_ratio"] = st.outlier_loss_ratio(s, prepare_returns=False)
    # Trailing windows, anchored at the last bar as reports.metrics does
    today = s.index[-1]
    out["return_mtd"] = st.comp(s[s.index >= pd.Timestamp(today.year, today.month, 1)])
    out["return_3m"] = st.comp(s[s.index >= today - relativedelta(months=3)])
    out["return_6m"] = st.comp(s[s.index >= today - relativedelta(months=6)])
    out["return_ytd"] = st.comp(s[s.index >= pd.Timestamp(today.year, 1, 1)])
    out["return_1y"] = st.comp(s[s.index >= today - relativedelta(years=1)])
    out["cagr_3y"] = st.cagr(s[s.index >= today - relativedelta(months=35)], 0.0, True, ppy)
    out["cagr_5y"] = st.cagr(s[s.index >= today - relativedelta(months=59)], 0.0, True, ppy)
    out["cagr_10y"] = st.cagr(s[s.index >= today - relativedelta(months=119)], 0.0, True, ppy)
    out["best_period"] = st.best(s, compounded=True, prepare_returns=False)
    out["worst_period"] = st.worst(s, prepare_returns=False)
    out["best_month"] = st.best(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["worst_month"] = st.worst(s, aggregate="ME", prepare_returns=False)
    out["best_quarter"] = st.best(s, compounded=True, aggregate="QE", prepare_returns=False)
    out["worst_quarter"] = st.worst(s, compounded=True, aggregate="QE", prepare_returns=False)
    out["best_year"] = st.best(s, compounded=True, aggregate="YE", prepare_returns=False)
    out["worst_year"] = st.worst(s, compounded=True, aggregate="YE", prepare_returns=False)
    # Drawdowns: one drawdown series, one details table (reports._calc_dd's figures)
    dd = st.to_drawdown_series(s)
    details = st.drawdown_details(dd)
    facts: dict[str, Any] = {"drawdown_series": dd}
    if len(details):
        worst = details.sort_values(by="max drawdown", ascending=True).iloc[0]
        out["max_drawdown"] = float(worst["max drawdown"]) / 100.0
        out["max_drawdown_days"] = int(worst["days"])
        out["longest_drawdown_days"] = int(details["days"].max())
        out["avg_drawdown"] = float(details["max drawdown"].mean()) / 100.0
        out["avg_drawdown_days"] = float(details["days"].mean())
        facts.update(max_drawdown_start=str(worst["start"]), max_drawdown_valley=str(worst["valley"]), max_drawdown_end=str(worst["end"]))
    else:  # never below a peak: no drawdown at all (averages over no drawdowns are undefined)
        out.update(max_drawdown=0.0, max_drawdown_days=0, longest_drawdown_days=0, avg_drawdown=math.nan, avg_drawdown_days=math.nan)
    out["drawdown_count"] = len(details)
    out["current_drawdown"] = float(dd.iloc[-1]) if len(dd) else math.nan
    out["recovery_factor"] = st.recovery_factor(s)
    out["ulcer_index"] = st.ulcer_index(s)
    out["serenity_index"] = st.serenity_index(s, rf)
    out["avg_up_month"] = st.avg_win(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["avg_down_month"] = st.avg_loss(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["win_rate"] = st.win_rate(s, prepare_returns=False)
    out["win_rate_month"] = st.win_rate(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["win_rate_quarter"] = st.win_rate(s, compounded=True, aggregate="QE", prepare_returns=False)
    out["win_rate_year"] = st.win_rate(s, compounded=True, aggregate="YE", prepare_returns=False)
    return {k: _scalar(v, np) for k, v in out.items()}, facts


def _scalar(value: Any, np) -> float:
    try:
        value = float(np.asarray(value, dtype=float).reshape(-1)[0]) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError, IndexError):
        return math.nan
    return value


def benchmark_metrics(qs, s, b, rf: float, ppy: float) -> dict[str, float]:
    """Metrics relative to the benchmark, as reports.metrics(mode="full") computes them."""
    import numpy as np

    st = qs.stats
    out: dict[str, float] = {}
    flat = float(np.var(b.to_numpy(), ddof=1)) == 0.0
    greeks = st.greeks(s, b, ppy, prepare_returns=False)  # fills NaN with 0: not for a flat benchmark
    out["alpha"] = math.nan if flat else float(greeks["alpha"])
    out["beta"] = math.nan if flat else float(greeks["beta"])
    out["correlation"] = float(b.corr(s))
    out["r_squared"] = _scalar(st.r_squared(s, b, prepare_returns=False), np)
    # QuantStats answers 0 where these are undefined (identical series, zero beta): not logged
    same = float(np.std((s - b).to_numpy(), ddof=1)) == 0.0
    out["information_ratio"] = math.nan if same else _scalar(st.information_ratio(s, b, prepare_returns=False), np)
    zero_beta = flat or out["beta"] == 0.0
    out["treynor_ratio"] = math.nan if zero_beta else _scalar(st.treynor_ratio(s, b, ppy, rf), np)
    return out


def compute(qs, data: dict, rf: float, ppy: float) -> dict:
    s, b = data["returns"], data["benchmark"]
    with warnings.catch_warnings(), _np_quiet():
        warnings.simplefilter("ignore")
        metrics, facts = series_metrics(qs, s, rf, ppy)
        if b is not None:
            metrics.update(benchmark_metrics(qs, s, b, rf, ppy))
            bench_metrics, _ = series_metrics(qs, b, rf, ppy)
            metrics.update({f"benchmark_{k}": v for k, v in bench_metrics.items()})
    defined = {k: v for k, v in metrics.items() if math.isfinite(v)}
    undefined = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    return {"metrics": defined, "undefined": undefined, "facts": facts}


@contextlib.contextmanager
def _np_quiet():
    import numpy as np

    with np.errstate(all="ignore"):
        yield


def write_tearsheet(qs, data: dict, rf: float, ppy: float, title: str, path: Path) -> None:
    """QuantStats' HTML tearsheet, offline: benchmark passed as a Series (never a ticker to
    download), Agg backend, output to a file (never a browser download)."""
    import logging

    import matplotlib

    matplotlib.use("Agg", force=True)
    fonts = logging.getLogger("matplotlib.font_manager")  # "findfont: Font family 'Arial' not found" x100
    level = fonts.level
    fonts.setLevel(logging.ERROR)
    with warnings.catch_warnings(), _np_quiet(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        qs.reports.html(
            data["returns"].copy(),
            benchmark=data["benchmark"].copy() if data["benchmark"] is not None else None,
            rf=rf,
            title=title,
            output=str(path),
            compounded=True,
            periods_per_year=ppy,
        )
    fonts.setLevel(level)
    import matplotlib.pyplot as plt

    plt.close("all")


