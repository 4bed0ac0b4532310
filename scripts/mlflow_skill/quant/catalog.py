"""The metric registry: every metric log_backtest.py logs, once, with what the skill needs to know
about it: its unit (and whether it is shown as a percent), which way is better, what QuantStats
calls it and what it means, its label in log_backtest.py's headline table, and the presets it
belongs to (`query_experiments.py compare --preset backtest`, the headline). Every other list of
metrics is a view of this one (DIRECTIONS, PERCENT_KEYS, COMPARE_PRESETS, preset()), and the
tables of references/quantstats-metrics.md are rendered from it (quant/reference.py).

Which way is better is known for every metric here, guessed from the name for anything else, and
always said which of the two it is. No heavy imports: query_experiments.py uses it on every `best`.

direction("max_drawdown") -> (True, "known (references/quantstats-metrics.md)"): drawdowns are
stored negative, so the higher (closer to 0) one is better.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

KNOWN = "known (references/quantstats-metrics.md)"

HIGHER = "higher"
LOWER = "lower"
NEITHER = "neither"  # a description of the data, not a score: ranked highest first, said as such


@dataclass(frozen=True)
class Unit:
    name: str  # as the reference's `unit` column says it
    percent: bool  # shown x100 with " %" (as QuantStats' report shows it); else a plain number


PERCENT = Unit("fraction", percent=True)  # 0.12, shown as 12 %
FRACTION = Unit("fraction", percent=False)  # a fraction QuantStats shows plain (ulcer index, a probability)
RATIO = Unit("ratio", percent=False)
RATIO_AS_PERCENT = Unit("ratio", percent=True)  # correlation: QuantStats' report shows it as a percent
BARS = Unit("bars", percent=False)
DAYS = Unit("days", percent=False)
COUNT = Unit("count", percent=False)
YEARS = Unit("years", percent=False)

# Groups: the reference's sections (each table there is one group); histories are prose there
RETURNS = "returns"
RATIOS = "ratios"
RISK = "risk"
TRADES = "trades"
DRAWDOWNS = "drawdowns"
BENCHMARK = "benchmark"
TRUST = "trust"  # PSR, DSR, MinTRL, PBO, out-of-sample: how far a winner can be trusted
HISTORIES = "histories"

HEADLINE = "headline"  # log_backtest.py's markdown table (the benchmark group's only with a benchmark)
COMPARE_PRESET_NAMES = ("backtest",)  # `query_experiments.py compare --preset NAME`


@dataclass(frozen=True)
class Metric:
    key: str
    unit: Unit
    better: str  # HIGHER, LOWER or NEITHER
    quantstats: str  # the QuantStats figure it is (the reference's `QuantStats` column)
    meaning: str
    label: str = ""  # its row label in log_backtest.py's headline table
    presets: tuple[tuple[str, int], ...] = ()  # (preset, position in it)
    group: str = ""  # the reference's section that lists it (set by _in)


def _m(key: str, unit: Unit, better: str, quantstats: str, meaning: str, label: str = "", **presets: int) -> Metric:
    """One entry; presets as keywords with the position in each: headline=2 is the headline's 2nd row."""
    return Metric(key, unit, better, quantstats, meaning, label, tuple(presets.items()))


def _in(group: str, metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    return tuple(dataclasses.replace(m, group=group) for m in metrics)


# In the reference's order. benchmark_<key> (every single-series key again, for the benchmark)
# takes <key>'s unit and direction.
_RETURNS = (
    _m(
        "cumulative_return",
        PERCENT,
        HIGHER,
        "Cumulative Return (`stats.comp`)",
        "total compounded return over the whole series",
        label="Cumulative return",
        headline=2,
        backtest=4,
    ),
    _m(
        "cagr",
        PERCENT,
        HIGHER,
        "CAGR﹪, All-time (ann.) (`stats.cagr`)",
        "compound annual growth rate",
        label="CAGR",
        headline=1,
        backtest=3,
    ),
    _m(
        "time_in_market",
        PERCENT,
        NEITHER,
        "Time in Market (`stats.exposure`)",
        "share of bars with a non-zero return, rounded up to a whole percent",
    ),
    _m(
        "risk_adjusted_return",
        PERCENT,
        HIGHER,
        "Risk-Adjusted Return (`stats.rar`)",
        "CAGR of the excess returns divided by time in market, annualised with the data's periods (see Deviations)",
    ),
    _m("avg_return", PERCENT, HIGHER, "Avg. Return (`stats.avg_return`)", "mean return of the non-zero bars"),
    _m("avg_win", PERCENT, HIGHER, "Avg. Win (`stats.avg_win`)", "mean return of winning bars"),
    _m("avg_loss", PERCENT, HIGHER, "Avg. Loss (`stats.avg_loss`)", "mean return of losing bars (negative)"),
    _m(
        "expected_return_period",
        PERCENT,
        HIGHER,
        "Expected Daily (`stats.expected_return`)",
        "geometric mean return per bar",
    ),
    _m("expected_return_month", PERCENT, HIGHER, "Expected Monthly", "geometric mean of monthly returns"),
    _m("expected_return_year", PERCENT, HIGHER, "Expected Yearly", "geometric mean of calendar-year returns"),
    _m("return_mtd", PERCENT, HIGHER, "MTD", "return since the first day of the last bar's month"),
    _m("return_3m", PERCENT, HIGHER, "3M", "return over the 3 months up to the last bar"),
    _m("return_6m", PERCENT, HIGHER, "6M", "return over the 6 months up to the last bar"),
    _m("return_ytd", PERCENT, HIGHER, "YTD", "return since 1 January of the last bar's year"),
    _m("return_1y", PERCENT, HIGHER, "1Y", "return over the year up to the last bar"),
    _m("cagr_3y", PERCENT, HIGHER, "3Y (ann.)", "CAGR of the last 35 months (QuantStats' window)"),
    _m("cagr_5y", PERCENT, HIGHER, "5Y (ann.)", "CAGR of the last 59 months"),
    _m("cagr_10y", PERCENT, HIGHER, "10Y (ann.)", "CAGR of the last 119 months"),
    _m("best_period", PERCENT, HIGHER, "Best Day (`stats.best`)", "best single bar"),
    _m("worst_period", PERCENT, HIGHER, "Worst Day (`stats.worst`)", "worst single bar"),
    _m("best_month", PERCENT, HIGHER, "Best Month", "best calendar month"),
    _m("worst_month", PERCENT, HIGHER, "Worst Month", "worst calendar month"),
    _m("best_quarter", PERCENT, HIGHER, "`stats.best`, aggregate QE", "best calendar quarter"),
    _m("worst_quarter", PERCENT, HIGHER, "`stats.worst`, aggregate QE", "worst calendar quarter"),
    _m("best_year", PERCENT, HIGHER, "Best Year", "best calendar year"),
    _m("worst_year", PERCENT, HIGHER, "Worst Year", "worst calendar year"),
    _m("avg_up_month", PERCENT, HIGHER, "Avg. Up Month", "mean return of winning months"),
    _m("avg_down_month", PERCENT, HIGHER, "Avg. Down Month", "mean return of losing months"),
)
_RATIOS = (
    _m(
        "sharpe",
        RATIO,
        HIGHER,
        "Sharpe (`stats.sharpe`)",
        "annualised mean excess return / standard deviation",
        label="Sharpe",
        headline=3,
        backtest=1,
    ),
    _m("smart_sharpe", RATIO, HIGHER, "Smart Sharpe", "Sharpe with QuantStats' autocorrelation penalty"),
    _m(
        "probabilistic_sharpe_ratio",
        PERCENT,
        HIGHER,
        "Prob. Sharpe Ratio",
        "probability that the true (per-bar) Sharpe exceeds 0",
    ),
    _m(
        "sortino",
        RATIO,
        HIGHER,
        "Sortino (`stats.sortino`)",
        "annualised mean excess return / downside deviation",
        label="Sortino",
        headline=4,
        backtest=2,
    ),
    _m("smart_sortino", RATIO, HIGHER, "Smart Sortino", "Sortino with the autocorrelation penalty"),
    _m("sortino_sqrt2", RATIO, HIGHER, "Sortino/√2", "Sortino / √2, comparable with Sharpe (`stats.adjusted_sortino`)"),
    _m("smart_sortino_sqrt2", RATIO, HIGHER, "Smart Sortino/√2", "Smart Sortino / √2"),
    _m(
        "probabilistic_sortino_ratio",
        PERCENT,
        HIGHER,
        "`stats.probabilistic_sortino_ratio`",
        "probability that the true Sortino exceeds 0",
    ),
    _m(
        "probabilistic_adjusted_sortino_ratio",
        PERCENT,
        HIGHER,
        "`stats.probabilistic_adjusted_sortino_ratio`",
        "the same for Sortino/√2",
    ),
    _m(
        "autocorr_penalty",
        RATIO,
        NEITHER,
        "`stats.autocorr_penalty`",
        "the divisor the smart ratios apply (1 = no autocorrelation)",
    ),
    _m("omega", RATIO, HIGHER, "Omega (`stats.omega`)", "probability-weighted gains over losses above a 0 threshold"),
    _m(
        "calmar",
        RATIO,
        HIGHER,
        "Calmar (`stats.calmar`)",
        "CAGR / abs(max drawdown)",
        label="Calmar",
        headline=8,
        backtest=7,
    ),
    _m("ulcer_performance_index", RATIO, HIGHER, "Ulcer Performance Index", "(cumulative return − rf) / ulcer index"),
    _m(
        "serenity_index",
        RATIO,
        HIGHER,
        "Serenity Index",
        "QuantStats' serenity index (sum of returns over ulcer index × pitfall)",
    ),
    _m(
        "recovery_factor",
        RATIO,
        HIGHER,
        "Recovery Factor",
        "sum of returns / abs(max drawdown), negative for a losing series (QuantStats takes abs: see Deviations)",
    ),
    _m("risk_return_ratio", RATIO, HIGHER, "Risk-Return Ratio", "mean / standard deviation per bar, not annualised"),
    _m(
        "gain_to_pain_ratio",
        RATIO,
        HIGHER,
        "Gain/Pain Ratio",
        "sum of excess returns per day / abs(sum of the losing days), excess over `--risk-free` (see Deviations)",
    ),
    _m("gain_to_pain_1m", RATIO, HIGHER, "Gain/Pain (1M)", "the same on monthly sums"),
    _m("gain_to_pain_3m", RATIO, HIGHER, "`stats.gain_to_pain_ratio`, QE", "the same on quarterly sums"),
    _m(
        "gain_to_pain_1y",
        RATIO,
        HIGHER,
        "`stats.gain_to_pain_ratio`, YE",
        "the same on yearly sums (undefined with no losing year)",
    ),
)
_RISK = (
    _m(
        "volatility",
        PERCENT,
        LOWER,
        "Volatility (ann.) (`stats.volatility`)",
        "annualised standard deviation of returns",
        label="Volatility (ann.)",
        headline=5,
        backtest=6,
    ),
    _m("volatility_per_period", PERCENT, LOWER, "`stats.volatility(annualize=False)`", "standard deviation per bar"),
    _m("skew", RATIO, NEITHER, "Skew", "skewness of the returns"),
    _m("kurtosis", RATIO, NEITHER, "Kurtosis", "excess kurtosis of the returns"),
    _m(
        "value_at_risk",
        PERCENT,
        HIGHER,
        "Daily Value-at-Risk (`stats.var`)",
        "parametric VaR at 95 %, per bar: the 5 % quantile return, negative for a loss (signed: see Deviations)",
        label="VaR 95 % (per bar)",
        headline=11,
    ),
    _m(
        "cvar",
        PERCENT,
        HIGHER,
        "Expected Shortfall (cVaR) (`stats.cvar`)",
        "parametric expected shortfall at 95 %, per bar, negative for a loss (signed)",
    ),
    _m("value_at_risk_99", PERCENT, HIGHER, "`stats.var(confidence=0.99)`", "parametric VaR at 99 %, per bar"),
    _m("cvar_99", PERCENT, HIGHER, "`stats.cvar(confidence=0.99)`", "parametric expected shortfall at 99 %, per bar"),
    _m("cvar_historical", PERCENT, HIGHER, '`stats.cvar(method="historical")`', "mean of the worst 5 % of bars"),
    _m("tail_ratio", RATIO, HIGHER, "Tail Ratio", "abs(95th percentile / 5th percentile)"),
    _m("outlier_win_ratio", RATIO, NEITHER, "Outlier Win Ratio", "99th percentile / mean of non-negative bars"),
    _m("outlier_loss_ratio", RATIO, NEITHER, "Outlier Loss Ratio", "1st percentile / mean of negative bars"),
)
_TRADES = (
    _m(
        "win_rate",
        PERCENT,
        HIGHER,
        "Win Days (`stats.win_rate`)",
        "share of non-zero bars that won",
        label="Win rate (bars)",
        headline=9,
        backtest=8,
    ),
    _m("win_rate_month", PERCENT, HIGHER, "Win Month", "share of winning months"),
    _m("win_rate_quarter", PERCENT, HIGHER, "Win Quarter", "share of winning quarters"),
    _m("win_rate_year", PERCENT, HIGHER, "Win Year", "share of winning years"),
    _m("payoff_ratio", RATIO, HIGHER, "Payoff Ratio", "average win / abs(average loss)"),
    _m("win_loss_ratio", RATIO, HIGHER, "Win/Loss Ratio", "the same figure, as QuantStats reports it twice"),
    _m(
        "profit_ratio",
        RATIO,
        HIGHER,
        "Profit Ratio",
        "(mean win / wins) / (mean loss / losses), QuantStats' definition",
    ),
    _m(
        "profit_factor",
        RATIO,
        HIGHER,
        "Profit Factor",
        "sum of winning bars / abs(sum of losing bars)",
        label="Profit factor",
        headline=10,
        backtest=9,
    ),
    _m("common_sense_ratio", RATIO, HIGHER, "Common Sense Ratio", "profit factor × tail ratio"),
    _m("cpc_index", RATIO, HIGHER, "CPC Index", "profit factor × win rate × win/loss ratio"),
    _m("max_consecutive_wins", BARS, HIGHER, "Max Consecutive Wins", "longest run of winning bars"),
    _m("max_consecutive_losses", BARS, LOWER, "Max Consecutive Losses", "longest run of losing bars"),
    _m(
        "kelly_criterion",
        PERCENT,
        HIGHER,
        "Kelly Criterion",
        "Kelly fraction p − q/b from win rate and payoff ratio",
        label="Kelly criterion",
        headline=12,
    ),
    _m(
        "risk_of_ruin",
        FRACTION,
        LOWER,
        "Risk of Ruin (`stats.risk_of_ruin`)",
        "((1 − win rate)/(1 + win rate))^bars: a probability, not a percent; left out when it underflows to 0",
    ),
)
_DRAWDOWNS = (
    _m(
        "max_drawdown",
        PERCENT,
        HIGHER,
        "Max Drawdown",
        "deepest peak-to-trough fall (negative; 0 when never below a peak)",
        label="Max drawdown",
        headline=6,
        backtest=5,
    ),
    _m(
        "max_drawdown_days",
        DAYS,
        LOWER,
        "drawdown details `days` of the worst drawdown",
        "length of the deepest drawdown, start to recovery (or end of data)",
    ),
    _m(
        "longest_drawdown_days",
        DAYS,
        LOWER,
        "Longest DD Days",
        "longest drawdown",
        label="Longest drawdown (days)",
        headline=7,
    ),
    _m("avg_drawdown", PERCENT, HIGHER, "Avg. Drawdown", "mean depth of all drawdowns"),
    _m(
        "avg_drawdown_days",
        DAYS,
        LOWER,
        "Avg. Drawdown Days",
        "mean length of all drawdowns (QuantStats shows it truncated to an integer)",
    ),
    _m("drawdown_count", COUNT, NEITHER, "rows of drawdown details", "number of drawdowns"),
    _m("current_drawdown", PERCENT, HIGHER, "last value of the drawdown series", "drawdown at the last bar"),
    _m("ulcer_index", FRACTION, LOWER, "Ulcer Index", "root-mean-square of the drawdown series"),
)
_BENCHMARK = (
    _m(
        "alpha",
        PERCENT,
        HIGHER,
        "Alpha (`stats.greeks`)",
        "Jensen's alpha: mean excess return over --risk-free not explained by beta, × periods (see Deviations)",
        label="Alpha (ann.)",
        headline=13,
        backtest=10,
    ),
    _m(
        "beta",
        RATIO,
        NEITHER,
        "Beta (`stats.greeks`)",
        "covariance with the benchmark / benchmark variance",
        label="Beta",
        headline=14,
        backtest=11,
    ),
    _m("correlation", RATIO_AS_PERCENT, NEITHER, "Correlation", "Pearson correlation of bar returns"),
    _m(
        "r_squared",
        RATIO,
        NEITHER,
        "R^2 (`stats.r_squared`)",
        "coefficient of determination of a linear fit on the benchmark",
    ),
    _m(
        "information_ratio",
        RATIO,
        HIGHER,
        "Information Ratio × √periods",
        "mean / standard deviation of (returns − benchmark), annualised (QuantStats' is per bar: see Deviations)",
        label="Information ratio",
        headline=15,
    ),
    _m(
        "treynor_ratio",
        RATIO,
        HIGHER,
        "Treynor Ratio",
        "(cumulative return − rf) / beta; the report shows it ×100 with a % sign",
    ),
)
_P = "a sweep's parent: "  # the keys only a sweep's parent run holds
_OOS = " on the held-out bars (--oos-from; a parent: the winner's)"
_TRUST = (
    _m("psr", FRACTION, HIGHER, "(the published formula)", "probabilistic Sharpe ratio: P(true Sharpe > 0)"),
    _m("dsr", FRACTION, HIGHER, "(not in QuantStats)", "deflated Sharpe ratio, N and V from the trial ledger"),
    _m("min_trl_years", YEARS, LOWER, "(not in QuantStats)", "minimum track record length at 95 % (inf: not logged)"),
    _m("oos_sharpe", RATIO, HIGHER, "Sharpe", "Sharpe ratio" + _OOS),
    _m("oos_cagr", PERCENT, HIGHER, "CAGR﹪", "CAGR" + _OOS),
    _m("oos_max_drawdown", PERCENT, HIGHER, "Max Drawdown", "max drawdown" + _OOS),
    _m("oos_cumulative_return", PERCENT, HIGHER, "Cumulative Return", "cumulative return" + _OOS),
    _m("best_sharpe", RATIO, HIGHER, "Sharpe", _P + "the winner's Sharpe ratio"),
    _m("best_psr", FRACTION, HIGHER, "(see `psr`)", _P + "the winner's PSR"),
    _m("best_dsr", FRACTION, HIGHER, "(see `dsr`)", _P + "the winner's deflated Sharpe ratio"),
    _m("best_min_trl_years", YEARS, LOWER, "(see `min_trl_years`)", _P + "the winner's MinTRL"),
    _m("sweep_variants", COUNT, NEITHER, "(not in QuantStats)", _P + "variants in the sweep"),
    _m("sweep_trials", COUNT, NEITHER, "(not in QuantStats)", _P + "N: the ledger's configurations, or --trials"),
    _m("pbo", FRACTION, LOWER, "(not in QuantStats)", _P + "probability of backtest overfitting (CSCV)"),
    _m("pbo_degradation_slope", RATIO, HIGHER, "(not in QuantStats)", _P + "slope of OOS on IS Sharpe (CSCV)"),
    _m("pbo_prob_oos_loss", FRACTION, LOWER, "(not in QuantStats)", _P + "share of CSCV splits lost out of sample"),
)
_HISTORIES = (
    _m("equity_curve", RATIO, HIGHER, "", "growth of 1, compounded, one step per bar"),
    _m("drawdown", FRACTION, HIGHER, "`stats.to_drawdown_series`", "drawdown at each bar (<= 0)"),
    _m("rolling_sharpe", RATIO, HIGHER, "", "annualised Sharpe over the rolling window"),
    _m("rolling_volatility", FRACTION, LOWER, "", "annualised volatility over the rolling window"),
    _m("benchmark_equity_curve", RATIO, HIGHER, "", "the benchmark's growth of 1"),
)

METRICS: tuple[Metric, ...] = (
    *_in(RETURNS, _RETURNS),
    *_in(RATIOS, _RATIOS),
    *_in(RISK, _RISK),
    *_in(TRADES, _TRADES),
    *_in(DRAWDOWNS, _DRAWDOWNS),
    *_in(BENCHMARK, _BENCHMARK),
    *_in(TRUST, _TRUST),
    *_in(HISTORIES, _HISTORIES),
)
BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------
def preset(name: str) -> list[Metric]:
    """A preset's metrics, in its order."""
    members = [(dict(m.presets)[name], m) for m in METRICS if name in dict(m.presets)]
    return [m for _, m in sorted(members, key=lambda pair: pair[0])]


DIRECTIONS: dict[str, str] = {m.key: m.better for m in METRICS}
PERCENT_KEYS: frozenset[str] = frozenset(m.key for m in METRICS if m.unit.percent)
COMPARE_PRESETS: dict[str, list[str]] = {name: [m.key for m in preset(name)] for name in COMPARE_PRESET_NAMES}


def shown_as_percent(key: str) -> bool:
    """Whether a logged key (benchmark_<key> too) is a fraction shown as a percent."""
    return key.removeprefix("benchmark_") in PERCENT_KEYS


# Guessing, for names the table does not know (ML metrics and the like)
LOWER_IS_BETTER_WORDS = (
    "loss",
    "error",
    "err",
    "mse",
    "mae",
    "rmse",
    "mape",
    "smape",
    "drawdown",
    "perplexity",
    "latency",
    "wer",
    "cer",
    "volatility",
    "ruin",
    "duration",
    "seconds",
    "latency",
    "ms",
    "regret",
    "cost",
    "nll",
)


def known(metric: str) -> str | None:
    """'higher' / 'lower' / 'neither' for a metric the skill logs, None for any other name."""
    name = metric.strip()
    if name in DIRECTIONS:
        return DIRECTIONS[name]
    if name.startswith("benchmark_") and name.removeprefix("benchmark_") in DIRECTIONS:
        return DIRECTIONS[name.removeprefix("benchmark_")]
    return None


def guess(metric: str) -> bool:
    """Higher is better unless a word of the name says loss/error/latency/..."""
    lowered = metric.lower()
    words = [w for w in re.split(r"[^a-z]+", lowered) if w]
    lower = any(w in LOWER_IS_BETTER_WORDS for w in words) or lowered.endswith(("loss", "error"))
    return not lower


def direction(metric: str) -> tuple[bool, str]:
    """(higher_is_better, how): `how` says whether the direction is known or guessed."""
    side = known(metric)
    if side == HIGHER:
        return True, KNOWN
    if side == LOWER:
        return False, KNOWN
    if side == NEITHER:
        return (
            True,
            f"{KNOWN}: {metric!r} describes the data, neither side is better; ranked highest first, pass --max or "
            f"--min",
        )
    higher = guess(metric)
    return (
        higher,
        f"guessed from the name {metric!r} ({'higher' if higher else 'lower'} is better); pass --max or --min",
    )
