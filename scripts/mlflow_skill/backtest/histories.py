"""A backtest's histories as MLflow metric points: equity_curve and drawdown, and at the same bars
rolling_sharpe, rolling_volatility and benchmark_equity_curve; one step per bar stamped with the
bar's time, or resampled into N buckets (--history-points N, a sweep's children).
"""

from __future__ import annotations

import itertools
import math

from mlflow_skill.backtest import periods as bp
from mlflow_skill.backtest.data import Inputs
from mlflow_skill.quant import catalog

KEYS = tuple(m.key for m in catalog.METRICS if m.group == catalog.HISTORIES)  # in the registry's order


def points(inputs: Inputs, drawdown, ppy: float, limit: int | None) -> list[dict]:
    """Every history point to log: `limit` steps per curve (None: one per bar)."""
    return curve_points(inputs.returns, drawdown, limit) + analysis_points(inputs, ppy, limit)


def counts(history: list[dict]) -> dict[str, int]:
    """Steps per history key, in KEYS order, for the keys present."""
    return {k: n for k in KEYS if (n := sum(1 for p in history if p["key"] == k))}


def curve_points(returns, drawdown, limit: int | None) -> list[dict]:
    """equity_curve and drawdown points, one per bar stamped with the bar's time; with `limit`
    (fewer than the bars) resampled into `limit` buckets: equity at each bucket's last bar and the
    bucket's deepest drawdown at its own bar, so the curve's end and the worst drawdown are exact."""
    import numpy as np

    stamps = returns.index.values.astype("datetime64[ms]").astype(np.int64)
    equity = (1.0 + returns).cumprod().to_numpy()
    dd = drawdown.to_numpy()
    n = len(equity)
    if limit is None or limit >= n:
        e_idx = d_idx = np.arange(n)
    else:
        edges = np.linspace(0, n, limit + 1).astype(np.int64)
        e_idx = edges[1:] - 1
        d_idx = np.array(
            [
                a + int(np.nanargmin(dd[a:b])) if np.isfinite(dd[a:b]).any() else b - 1
                for a, b in itertools.pairwise(edges)
            ]
        )
    found = []
    for key, values, idx in (("equity_curve", equity, e_idx), ("drawdown", dd, d_idx)):
        for i in idx.tolist():
            if math.isfinite(values[i]):
                found.append({"key": key, "value": float(values[i]), "timestamp": int(stamps[i]), "step": int(i)})
    return found


def analysis_points(inputs: Inputs, ppy: float, limit: int | None) -> list[dict]:
    """Rolling Sharpe ratio and volatility (annualised, window in tag backtest.rolling_window) and
    the benchmark's equity curve, at the bars equity_curve uses (each bucket's last bar)."""
    import numpy as np

    returns = inputs.returns
    n = len(returns)
    idx = np.arange(n) if limit is None or limit >= n else np.linspace(0, n, limit + 1).astype(np.int64)[1:] - 1
    stamps = returns.index.values.astype("datetime64[ms]").astype(np.int64)
    sharpe, vol = bp.rolling_sharpe_and_volatility(returns, ppy, bp.rolling_window(ppy, n))
    series = [("rolling_sharpe", sharpe.to_numpy()), ("rolling_volatility", vol.to_numpy())]
    if inputs.benchmark is not None:
        series.append(("benchmark_equity_curve", (1.0 + inputs.benchmark).cumprod().to_numpy()))
    return [
        {"key": key, "value": float(values[i]), "timestamp": int(stamps[i]), "step": int(i)}
        for key, values in series
        for i in idx.tolist()
        if math.isfinite(values[i])
    ]
