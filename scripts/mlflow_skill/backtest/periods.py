"""Per-period views of a backtest's returns, logged as data rather than locked in the tearsheet:
compounded monthly and yearly returns, the worst drawdowns, rolling Sharpe ratio and volatility.

Pure pandas on a returns Series with a DatetimeIndex (log_backtest.py's normalised returns);
QuantStats' own drawdown table is used for the drawdowns so the figures match its tearsheet, with a
first bar below the starting equity counted as the start of a drawdown (drawdown_details).
"""

from __future__ import annotations

import math
from typing import Any

PERIODS_ARTIFACT = "periods.json"  # under the run's backtest/ artifact folder
WORST_DRAWDOWNS = 10


def compounded(returns, rule: str):
    """Compounded return per calendar period ('ME' month end, 'YE' year end) of a returns Series."""
    return (1.0 + returns).resample(rule).prod() - 1.0


def monthly_grid(returns) -> dict[str, dict[str, float]]:
    """{year: {"01": r, ..., "12": r, "year": r}}: months with no bar are absent, not zero."""
    monthly = compounded(returns, "ME")
    counts = returns.resample("ME").count()
    yearly = compounded(returns, "YE")
    year_counts = returns.resample("YE").count()
    grid: dict[str, dict[str, float]] = {}
    for stamp, value in monthly.items():
        if counts[stamp]:
            grid.setdefault(str(stamp.year), {})[f"{stamp.month:02d}"] = float(value)
    for stamp, value in yearly.items():
        if year_counts[stamp]:
            grid.setdefault(str(stamp.year), {})["year"] = float(value)
    return grid


def drawdown_details(stats, drawdown):
    """QuantStats' drawdown table (start, valley, end, days, depth) of a drawdown series measured
    from the starting equity, a first bar below the start included. `stats.drawdown_details` only
    opens a drawdown after a bar AT its peak, so a series under water from its first bar (a loss on
    bar 1 never recovered) gave an empty table: max drawdown 0. A zero one instant before the first
    bar (the equity at the start, which to_drawdown_series already measures from) opens it."""
    import pandas as pd

    if not len(drawdown) or not float(drawdown.iloc[0]) < 0:
        return stats.drawdown_details(drawdown)
    start = pd.Series([0.0], index=[drawdown.index[0] - pd.Timedelta(microseconds=1)])
    return stats.drawdown_details(pd.concat([start, drawdown]))


def worst_drawdowns(qs, returns, limit: int = WORST_DRAWDOWNS) -> list[dict[str, Any]]:
    """The deepest drawdowns: start, valley, end (None while still under water), depth, days."""
    drawdown = qs.stats.to_drawdown_series(returns)
    details = drawdown_details(qs.stats, drawdown)
    if not len(details):
        return []
    details = details.sort_values(by="max drawdown", ascending=True).head(limit)
    under_water_at_end = float(drawdown.iloc[-1]) < 0
    last_day = str(returns.index[-1])[:10]
    rows = []
    for _, row in details.iterrows():
        recovered = not (under_water_at_end and str(row["end"])[:10] == last_day)
        rows.append(
            {
                "start": str(row["start"])[:10],
                "valley": str(row["valley"])[:10],
                "end": str(row["end"])[:10] if recovered else None,
                "depth": float(row["max drawdown"]) / 100.0,
                "days": int(row["days"]),
            }
        )
    return rows


def rolling_window(periods_per_year: float, bars: int) -> int:
    """About six months of bars, at least 20, and never more than half the data."""
    return max(2, min(max(20, int(round(periods_per_year / 2))), bars // 2))


def rolling_sharpe_and_volatility(returns, periods_per_year: float, window: int):
    """(rolling Sharpe, rolling volatility), both annualised, NaN until the window is full."""
    mean = returns.rolling(window).mean()
    std = returns.rolling(window).std(ddof=1)
    factor = math.sqrt(periods_per_year)
    sharpe = (mean / std.where(std > 0)) * factor
    return sharpe, std * factor


def periods_document(qs, returns, periods_per_year: float) -> dict[str, Any]:
    """What log_backtest.py writes to backtest/periods.json and `query_experiments.py returns` shows."""
    return {
        "monthly": monthly_grid(returns),
        "worst_drawdowns": worst_drawdowns(qs, returns),
        "first": returns.index[0].isoformat(),
        "last": returns.index[-1].isoformat(),
        "bars": int(len(returns)),
        "periods_per_year": periods_per_year,
    }
