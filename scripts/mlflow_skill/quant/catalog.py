"""Which way is better for a metric: known for every metric log_backtest.py logs (the table in
references/quantstats-metrics.md), guessed from the name for anything else, and always said
which of the two it is. No heavy imports: query_experiments.py uses it on every `best`.

direction("max_drawdown") -> (True, "known (references/quantstats-metrics.md)"): drawdowns are
stored negative, so the higher (closer to 0) one is better.
"""

from __future__ import annotations

import re

KNOWN = "known (references/quantstats-metrics.md)"

HIGHER = "higher"
LOWER = "lower"
NEITHER = "neither"  # a description of the data, not a score: ranked highest first, said as such

# Every scalar key log_backtest.py logs (benchmark_<key> takes <key>'s direction) and its histories.
DIRECTIONS: dict[str, str] = {
    # returns and growth
    "cumulative_return": HIGHER,
    "cagr": HIGHER,
    "time_in_market": NEITHER,
    "risk_adjusted_return": HIGHER,
    "avg_return": HIGHER,
    "avg_win": HIGHER,
    "avg_loss": HIGHER,
    "expected_return_period": HIGHER,
    "expected_return_month": HIGHER,
    "expected_return_year": HIGHER,
    "return_mtd": HIGHER,
    "return_3m": HIGHER,
    "return_6m": HIGHER,
    "return_ytd": HIGHER,
    "return_1y": HIGHER,
    "cagr_3y": HIGHER,
    "cagr_5y": HIGHER,
    "cagr_10y": HIGHER,
    "best_period": HIGHER,
    "worst_period": HIGHER,
    "best_month": HIGHER,
    "worst_month": HIGHER,
    "best_quarter": HIGHER,
    "worst_quarter": HIGHER,
    "best_year": HIGHER,
    "worst_year": HIGHER,
    "avg_up_month": HIGHER,
    "avg_down_month": HIGHER,
    # risk-adjusted ratios
    "sharpe": HIGHER,
    "smart_sharpe": HIGHER,
    "probabilistic_sharpe_ratio": HIGHER,
    "sortino": HIGHER,
    "smart_sortino": HIGHER,
    "sortino_sqrt2": HIGHER,
    "smart_sortino_sqrt2": HIGHER,
    "probabilistic_sortino_ratio": HIGHER,
    "probabilistic_adjusted_sortino_ratio": HIGHER,
    "autocorr_penalty": NEITHER,
    "omega": HIGHER,
    "calmar": HIGHER,
    "ulcer_performance_index": HIGHER,
    "serenity_index": HIGHER,
    "recovery_factor": HIGHER,
    "risk_return_ratio": HIGHER,
    "gain_to_pain_ratio": HIGHER,
    "gain_to_pain_1m": HIGHER,
    "gain_to_pain_3m": HIGHER,
    "gain_to_pain_1y": HIGHER,
    # volatility, tails, distribution (VaR/cVaR are returns, negative for losses: higher is better)
    "volatility": LOWER,
    "volatility_per_period": LOWER,
    "skew": NEITHER,
    "kurtosis": NEITHER,
    "value_at_risk": HIGHER,
    "cvar": HIGHER,
    "value_at_risk_99": HIGHER,
    "cvar_99": HIGHER,
    "cvar_historical": HIGHER,
    "tail_ratio": HIGHER,
    "outlier_win_ratio": NEITHER,
    "outlier_loss_ratio": NEITHER,
    # trade-style statistics
    "win_rate": HIGHER,
    "win_rate_month": HIGHER,
    "win_rate_quarter": HIGHER,
    "win_rate_year": HIGHER,
    "payoff_ratio": HIGHER,
    "win_loss_ratio": HIGHER,
    "profit_ratio": HIGHER,
    "profit_factor": HIGHER,
    "common_sense_ratio": HIGHER,
    "cpc_index": HIGHER,
    "max_consecutive_wins": HIGHER,
    "max_consecutive_losses": LOWER,
    "kelly_criterion": HIGHER,
    "risk_of_ruin": LOWER,
    # drawdowns (stored negative: higher = shallower)
    "max_drawdown": HIGHER,
    "max_drawdown_days": LOWER,
    "longest_drawdown_days": LOWER,
    "avg_drawdown": HIGHER,
    "avg_drawdown_days": LOWER,
    "drawdown_count": NEITHER,
    "current_drawdown": HIGHER,
    "ulcer_index": LOWER,
    # relative to a benchmark
    "alpha": HIGHER,
    "beta": NEITHER,
    "correlation": NEITHER,
    "r_squared": NEITHER,
    "information_ratio": HIGHER,
    "treynor_ratio": HIGHER,
    # histories
    "equity_curve": HIGHER,
    "drawdown": HIGHER,
    "rolling_sharpe": HIGHER,
    "rolling_volatility": LOWER,
    "benchmark_equity_curve": HIGHER,
}

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
