"""QuantStats' metric set for a returns series (and a benchmark), computed once, with the
values QuantStats answers for undefined cases left out and named; the HTML tearsheet.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow_skill.backtest import periods as bp
from mlflow_skill.quant import catalog

# Metrics whose value is a fraction shown as percent (the rest are ratios, counts or days): a
# view of the metric registry
PCT_KEYS = catalog.PERCENT_KEYS


@dataclass
class MetricSet:
    """One series' metrics: the defined values, the undefined keys (named, not logged), why
    some were left out, notes saying so, and facts for the histories and tags."""

    metrics: dict[str, float]
    undefined: list[str]
    reasons: dict[str, str]
    notes: list[str]
    facts: dict[str, Any]  # the drawdown series; the worst drawdown's start, valley and end


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


def _safe(fn, *args, **kwargs) -> Any:
    """A QuantStats call; a division by zero inside it (all-zero returns, ...) is NaN: undefined."""
    try:
        return fn(*args, **kwargs)
    except (ZeroDivisionError, FloatingPointError):
        return math.nan


def rf_per_bar(rf: float, ppy: float) -> float:
    """QuantStats' de-annualisation of the risk-free rate (utils._prepare_returns)."""
    return (1.0 + rf) ** (1.0 / ppy) - 1.0


def series_metrics(qs, s, rf: float, ppy: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Every single-series QuantStats metric, computed as reports.metrics(mode="full",
    compounded=True) computes it (same functions, same arguments) but unrounded, plus the stats
    functions that report leaves out; where QuantStats' own definition is wrong for the data
    (references/quantstats-metrics.md, "Deviations"), the corrected figure. -> (metrics, drawdown facts)."""
    import numpy as np

    out: dict[str, Any] = {}
    out.update(_ratios(qs.stats, s, rf, ppy))
    out.update(_distribution(qs.stats, s))
    out.update(_trades(qs.stats, s, rf, ppy))
    out.update(_windows(qs.stats, s, ppy))
    drawdowns, facts = _drawdowns(qs.stats, s, rf)
    out.update(drawdowns)
    return {k: _scalar(v, np) for k, v in out.items()}, facts


def _ratios(st, s, rf: float, ppy: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["time_in_market"] = _safe(st.exposure, s, prepare_returns=False)
    out["cumulative_return"] = _safe(st.comp, s)
    out["cagr"] = _safe(st.cagr, s, rf, True, ppy)
    out["sharpe"] = _safe(st.sharpe, s, rf, ppy, True)
    out["probabilistic_sharpe_ratio"] = _safe(st.probabilistic_sharpe_ratio, s, rf, ppy, False)
    out["smart_sharpe"] = _safe(st.smart_sharpe, s, rf, ppy, True)
    out["sortino"] = _safe(st.sortino, s, rf, ppy, True)
    out["smart_sortino"] = _safe(st.smart_sortino, s, rf, ppy, True)
    out["sortino_sqrt2"] = out["sortino"] / math.sqrt(2)
    out["smart_sortino_sqrt2"] = out["smart_sortino"] / math.sqrt(2)
    out["probabilistic_sortino_ratio"] = _safe(st.probabilistic_sortino_ratio, s, rf, ppy, False)
    out["probabilistic_adjusted_sortino_ratio"] = _safe(st.probabilistic_adjusted_sortino_ratio, s, rf, ppy, False)
    out["omega"] = _safe(st.omega, s, rf, 0.0, ppy)
    out["volatility"] = _safe(st.volatility, s, ppy, True, prepare_returns=False)
    out["volatility_per_period"] = _safe(st.volatility, s, ppy, False, prepare_returns=False)
    out["calmar"] = _safe(st.calmar, s, prepare_returns=False, compounded=True, periods=ppy)
    out["autocorr_penalty"] = _safe(st.autocorr_penalty, s)
    out["ulcer_performance_index"] = _safe(st.ulcer_performance_index, s, rf)
    # stats.rar annualises with 252 whatever the data: CAGR of the excess returns for these
    # periods, over the share of bars in the market (of the returns themselves)
    exposure = out["time_in_market"]
    excess_cagr = _safe(st.cagr, s - rf_per_bar(rf, ppy), 0.0, True, ppy)
    out["risk_adjusted_return"] = excess_cagr / exposure if exposure and math.isfinite(exposure) else math.nan
    out["risk_return_ratio"] = _safe(st.risk_return_ratio, s, prepare_returns=False)
    return out


def _distribution(st, s) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["skew"] = _safe(st.skew, s, prepare_returns=False)
    out["kurtosis"] = _safe(st.kurtosis, s, prepare_returns=False)
    out["avg_return"] = _safe(st.avg_return, s, prepare_returns=False)
    out["avg_win"] = _safe(st.avg_win, s, prepare_returns=False)
    out["avg_loss"] = _safe(st.avg_loss, s, prepare_returns=False)
    # VaR and cVaR are returns at the tail: negative for a loss, positive when even the tail gains
    # (reports.metrics forces -abs(), turning an all-positive series' tail gain into a loss)
    out["value_at_risk"] = _safe(st.var, s, prepare_returns=False)
    out["cvar"] = _safe(st.cvar, s, prepare_returns=False)
    out["value_at_risk_99"] = _safe(st.var, s, confidence=0.99, prepare_returns=False)
    out["cvar_99"] = _safe(st.cvar, s, confidence=0.99, prepare_returns=False)
    out["cvar_historical"] = _safe(st.cvar, s, prepare_returns=False, method="historical")
    out["tail_ratio"] = _safe(st.tail_ratio, s, prepare_returns=False)
    out["outlier_win_ratio"] = _safe(st.outlier_win_ratio, s, prepare_returns=False)
    out["outlier_loss_ratio"] = _safe(st.outlier_loss_ratio, s, prepare_returns=False)
    return out


def _trades(st, s, rf: float, ppy: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["win_loss_ratio"] = _safe(st.win_loss_ratio, s, prepare_returns=False)
    out["profit_ratio"] = _safe(st.profit_ratio, s, prepare_returns=False)
    out["kelly_criterion"] = _safe(st.kelly_criterion, s, prepare_returns=False)
    out["risk_of_ruin"] = _safe(st.risk_of_ruin, s, prepare_returns=False)
    out["max_consecutive_wins"] = _safe(st.consecutive_wins, s)
    out["max_consecutive_losses"] = _safe(st.consecutive_losses, s)
    # stats.gain_to_pain_ratio takes rf and ignores it: the excess returns over --risk-free here
    excess = s - rf_per_bar(rf, ppy) if rf else s
    for key, resolution in (
        ("gain_to_pain_ratio", "D"),
        ("gain_to_pain_1m", "ME"),
        ("gain_to_pain_3m", "QE"),
        ("gain_to_pain_1y", "YE"),
    ):
        out[key] = _safe(st.gain_to_pain_ratio, excess, 0.0, resolution)
    out["payoff_ratio"] = _safe(st.payoff_ratio, s, prepare_returns=False)
    out["profit_factor"] = _safe(st.profit_factor, s, prepare_returns=False)
    out["common_sense_ratio"] = _safe(st.common_sense_ratio, s, prepare_returns=False)
    out["cpc_index"] = _safe(st.cpc_index, s, prepare_returns=False)
    out["win_rate"] = _safe(st.win_rate, s, prepare_returns=False)
    for key, agg in (("win_rate_month", "ME"), ("win_rate_quarter", "QE"), ("win_rate_year", "YE")):
        out[key] = _safe(st.win_rate, s, compounded=True, aggregate=agg, prepare_returns=False)
    out["avg_up_month"] = _safe(st.avg_win, s, compounded=True, aggregate="ME", prepare_returns=False)
    out["avg_down_month"] = _safe(st.avg_loss, s, compounded=True, aggregate="ME", prepare_returns=False)
    return out


def _windows(st, s, ppy: float) -> dict[str, Any]:
    """Expected, trailing and best/worst figures over calendar windows, anchored at the last bar
    as reports.metrics does (QuantStats' 3Y/5Y/10Y windows are 35/59/119 months)."""
    import pandas as pd
    from dateutil.relativedelta import relativedelta

    out: dict[str, Any] = {}
    out["expected_return_period"] = _safe(st.expected_return, s, compounded=True, prepare_returns=False)
    out["expected_return_month"] = _safe(st.expected_return, s, compounded=True, aggregate="ME", prepare_returns=False)
    out["expected_return_year"] = _safe(st.expected_return, s, compounded=True, aggregate="YE", prepare_returns=False)
    today = s.index[-1]
    out["return_mtd"] = _safe(st.comp, s[s.index >= pd.Timestamp(today.year, today.month, 1)])
    out["return_3m"] = _safe(st.comp, s[s.index >= today - relativedelta(months=3)])
    out["return_6m"] = _safe(st.comp, s[s.index >= today - relativedelta(months=6)])
    out["return_ytd"] = _safe(st.comp, s[s.index >= pd.Timestamp(today.year, 1, 1)])
    out["return_1y"] = _safe(st.comp, s[s.index >= today - relativedelta(years=1)])
    for key, months in (("cagr_3y", 35), ("cagr_5y", 59), ("cagr_10y", 119)):
        out[key] = _safe(st.cagr, s[s.index >= today - relativedelta(months=months)], 0.0, True, ppy)
    out["best_period"] = _safe(st.best, s, compounded=True, prepare_returns=False)
    out["worst_period"] = _safe(st.worst, s, prepare_returns=False)
    out["best_month"] = _safe(st.best, s, compounded=True, aggregate="ME", prepare_returns=False)
    out["worst_month"] = _safe(st.worst, s, aggregate="ME", prepare_returns=False)
    for name, agg in (("quarter", "QE"), ("year", "YE")):
        out[f"best_{name}"] = _safe(st.best, s, compounded=True, aggregate=agg, prepare_returns=False)
        out[f"worst_{name}"] = _safe(st.worst, s, compounded=True, aggregate=agg, prepare_returns=False)
    return out


def _drawdowns(st, s, rf: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One drawdown series, one details table (reports._calc_dd's figures)."""
    out: dict[str, Any] = {}
    dd = st.to_drawdown_series(s)
    details = bp.drawdown_details(st, dd)  # a first bar below the start opens a drawdown
    facts: dict[str, Any] = {"drawdown_series": dd}
    if len(details):
        worst = details.sort_values(by="max drawdown", ascending=True).iloc[0]
        out["max_drawdown"] = float(worst["max drawdown"]) / 100.0
        out["max_drawdown_days"] = int(worst["days"])
        out["longest_drawdown_days"] = int(details["days"].max())
        out["avg_drawdown"] = float(details["max drawdown"].mean()) / 100.0
        out["avg_drawdown_days"] = float(details["days"].mean())
        facts.update(
            max_drawdown_start=str(worst["start"]),
            max_drawdown_valley=str(worst["valley"]),
            max_drawdown_end=str(worst["end"]),
        )
    else:  # never below a peak: no drawdown at all (averages over no drawdowns are undefined)
        out.update(
            max_drawdown=0.0,
            max_drawdown_days=0,
            longest_drawdown_days=0,
            avg_drawdown=math.nan,
            avg_drawdown_days=math.nan,
        )
    out["drawdown_count"] = len(details)
    out["current_drawdown"] = float(dd.iloc[-1]) if len(dd) else math.nan
    # stats.recovery_factor takes abs() of the summed returns: a losing series would recover.
    # Signed here: sum of returns / abs(max drawdown), negative when the series lost.
    out["recovery_factor"] = float(s.sum()) / abs(out["max_drawdown"]) if out["max_drawdown"] else math.nan
    out["ulcer_index"] = _safe(st.ulcer_index, s)
    out["serenity_index"] = _safe(st.serenity_index, s, rf)
    return out, facts


def _scalar(value: Any, np) -> float:
    try:
        value = (
            float(np.asarray(value, dtype=float).reshape(-1)[0])
            if not isinstance(value, (int, float))
            else float(value)
        )
    except (TypeError, ValueError, IndexError):
        return math.nan
    return value


def benchmark_metrics(qs, s, b, rf: float, ppy: float) -> dict[str, float]:
    """Metrics relative to the benchmark, as reports.metrics(mode="full") computes them, except
    information_ratio, annualised here (stats.information_ratio is per bar), and alpha: Jensen's
    alpha on excess returns over --risk-free (stats.greeks ignores rf)."""
    import numpy as np

    st = qs.stats
    out: dict[str, float] = {}
    flat = float(np.var(b.to_numpy(), ddof=1)) == 0.0
    greeks = st.greeks(s, b, ppy, prepare_returns=False)  # fills NaN with 0: not for a flat benchmark
    out["beta"] = math.nan if flat else float(greeks["beta"])
    out["alpha"] = math.nan if flat else jensen_alpha(s, b, out["beta"], rf, ppy)
    out["correlation"] = float(b.corr(s))
    out["r_squared"] = _scalar(_safe(st.r_squared, s, b, prepare_returns=False), np)
    # QuantStats answers 0 where these are undefined (identical series, zero beta): not logged
    same = float(np.std((s - b).to_numpy(), ddof=1)) == 0.0
    per_bar = math.nan if same else _scalar(_safe(st.information_ratio, s, b, prepare_returns=False), np)
    out["information_ratio"] = per_bar * math.sqrt(ppy)
    zero_beta = flat or out["beta"] == 0.0
    out["treynor_ratio"] = math.nan if zero_beta else _scalar(_safe(st.treynor_ratio, s, b, ppy, rf), np)
    return out


def jensen_alpha(s, b, beta: float, rf: float, ppy: float) -> float:
    """Jensen's alpha, annualised as QuantStats annualises it (x periods per year, not compounded):
    (mean(r - rf) - beta * mean(b - rf)) * ppy, rf per bar as QuantStats de-annualises it. Equal to
    stats.greeks' alpha for --risk-free 0; empyrical's alpha is the same per-bar figure compounded,
    (1 + alpha_per_bar)^ppy - 1 (references/quantstats-metrics.md, Deviations)."""
    rf_bar = rf_per_bar(rf, ppy)
    return (float((s - rf_bar).mean()) - beta * float((b - rf_bar).mean())) * ppy


# Metrics that need the returns to vary (a ratio over their spread, their shape)
SPREAD_KEYS = (
    "sharpe",
    "smart_sharpe",
    "probabilistic_sharpe_ratio",
    "sortino",
    "smart_sortino",
    "sortino_sqrt2",
    "smart_sortino_sqrt2",
    "probabilistic_sortino_ratio",
    "probabilistic_adjusted_sortino_ratio",
    "risk_return_ratio",
    "autocorr_penalty",
    "skew",
    "kurtosis",
    "serenity_index",
)
# Metrics that count winning and losing bars
NO_TRADE_KEYS = (
    "win_rate",
    "win_rate_month",
    "win_rate_quarter",
    "win_rate_year",
    "profit_factor",
    "risk_of_ruin",
    "kelly_criterion",
    "payoff_ratio",
    "win_loss_ratio",
    "profit_ratio",
    "common_sense_ratio",
    "cpc_index",
)
# Calendar windows (months) a metric needs the data to span; QuantStats otherwise answers the
# whole period's figure under the window's name
WINDOW_MONTHS = {
    "cagr_3y": 35,
    "cagr_5y": 59,
    "cagr_10y": 119,
    "return_1y": 12,
    "return_6m": 6,
    "return_3m": 3,
    "best_year": 12,
    "worst_year": 12,
    "expected_return_year": 12,
    "win_rate_year": 12,
    "gain_to_pain_1y": 12,
    "best_quarter": 3,
    "worst_quarter": 3,
    "win_rate_quarter": 3,
    "gain_to_pain_3m": 3,
    "best_month": 1,
    "worst_month": 1,
    "expected_return_month": 1,
    "win_rate_month": 1,
    "gain_to_pain_1m": 1,
    "avg_up_month": 1,
    "avg_down_month": 1,
}
CALENDAR_KEYS = (
    *WINDOW_MONTHS,
    "return_mtd",
    "return_ytd",
    "max_drawdown_days",
    "longest_drawdown_days",
    "avg_drawdown_days",
)
WINDOW_SLACK = 0.95  # a window counts as covered when the data spans 95 % of it


def is_flat(s) -> bool:
    """Constant returns (to 1e-12 of their size): every spread is rounding noise."""
    import numpy as np

    vals = s.to_numpy(dtype=float)
    return float(np.ptp(vals)) <= 1e-12 * max(float(np.abs(vals).max()), 1e-300)


def omissions(s, metrics: dict[str, float], dated: bool) -> dict[str, str]:
    """{key: why it is numerically meaningless for this series} (the key is left out)."""
    reasons: dict[str, str] = {}
    if is_flat(s):
        why = "all returns are 0: zero variance" if not s.to_numpy().any() else "constant returns: zero variance"
        reasons.update({k: why for k in SPREAD_KEYS})
    if not s.to_numpy().any():  # QuantStats counts 0 wins of 0 bars as a 0 % win rate, ruin as certain
        reasons.update({k: "all returns are 0: no winning or losing bar to count" for k in NO_TRADE_KEYS})
    if not dated:
        reasons.update({k: "no dates in the data" for k in CALENDAR_KEYS})
    else:
        span = float((s.index[-1] - s.index[0]).total_seconds()) / 86400.0
        for key, months in WINDOW_MONTHS.items():
            if span < WINDOW_SLACK * months * 30.4375:
                reasons[key] = f"the data spans {span:.0f} days, less than the metric's window"
    ruin, wins = metrics.get("risk_of_ruin"), metrics.get("win_rate")
    if ruin == 0.0 and wins is not None and 0 <= wins < 1:
        exponent = s.count() * math.log10((1 - wins) / (1 + wins))
        reasons["risk_of_ruin"] = (
            f"underflow: ((1 - win rate)/(1 + win rate))^bars = 10^{exponent:.0f}, below the smallest float"
        )
    return {k: v for k, v in reasons.items() if k in metrics}


def compute(qs, data, rf: float, ppy: float) -> MetricSet:
    """Every metric of `data` (a data.Inputs), the undefined ones named and the reasons given."""
    s, b = local_axis(data)
    dated = data.dated
    with warnings.catch_warnings(), _np_quiet():
        warnings.simplefilter("ignore")
        metrics, facts = series_metrics(qs, s, rf, ppy)
        reasons = omissions(s, metrics, dated)
        if is_flat(s):  # the true spread and tail, not 1e-18 of rounding
            metrics.update(_flat_values(s))
        if b is not None:
            metrics.update(benchmark_metrics(qs, s, b, rf, ppy))
            bench_metrics, _ = series_metrics(qs, b, rf, ppy)
            metrics.update({f"benchmark_{k}": v for k, v in bench_metrics.items()})
            reasons.update({f"benchmark_{k}": v for k, v in omissions(b, bench_metrics, dated).items()})
            if is_flat(b):
                metrics.update({f"benchmark_{k}": v for k, v in _flat_values(b).items()})
    for key in reasons:
        metrics[key] = math.nan
    defined = {k: v for k, v in metrics.items() if math.isfinite(v)}
    undefined = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    return MetricSet(defined, undefined, reasons, reason_notes(reasons), facts)


def _flat_values(s) -> dict[str, float]:
    """Constant returns: no spread, and every tail return is the constant itself."""
    value = float(s.iloc[0])
    tails = ("value_at_risk", "value_at_risk_99", "cvar", "cvar_99", "cvar_historical")
    return {"volatility": 0.0, "volatility_per_period": 0.0, **{k: value for k in tails}}


def reason_notes(reasons: dict[str, str]) -> list[str]:
    """One line per reason: 'left out (constant returns: zero variance): sharpe, sortino, ...'."""
    grouped: dict[str, list[str]] = {}
    for key, why in reasons.items():
        grouped.setdefault(why, []).append(key)
    return [f"left out ({why}): {', '.join(sorted(keys))}" for why, keys in grouped.items()]


def local_axis(data):
    """The series of `data` (a data.Inputs) on the file's own wall-clock times (months and years as
    the data states them), when those are usable as an index; else on UTC instants."""
    s, b = data.returns, data.benchmark
    local = data.local_index
    if local is None or len(local) != len(s) or local.equals(s.index):
        return s, b
    if not (local.is_unique and local.is_monotonic_increasing):
        return s, b
    return s.set_axis(local), (b.set_axis(local) if b is not None else None)


@contextlib.contextmanager
def _np_quiet():
    import numpy as np

    with np.errstate(all="ignore"):
        yield


def write_tearsheet(qs, data, rf: float, ppy: float, title: str, path: Path) -> None:
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
            data.returns.copy(),
            benchmark=data.benchmark.copy() if data.benchmark is not None else None,
            rf=rf,
            title=title,
            output=str(path),
            compounded=True,
            periods_per_year=ppy,
        )
    fonts.setLevel(level)
    import matplotlib.pyplot as plt

    plt.close("all")
