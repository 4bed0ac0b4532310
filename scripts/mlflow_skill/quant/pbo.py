"""The probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV;
Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting", 2014/2017).

The T bars of N variants (a T x N matrix of returns on one window) are cut into S contiguous
blocks (default 16; np.array_split, so block sizes differ by at most one bar and no bar is
dropped). Every way of choosing S/2 blocks is one split: those blocks are in sample (IS), the
other S/2 out of sample (OOS); C(16, 8) = 12,870 splits. In each split the variant with the best
IS Sharpe ratio is the one a researcher would pick; its OOS Sharpe ratio is ranked among all N
(average ranks for ties, 1 = worst), ω = rank / (N + 1), λ = ln(ω / (1 − ω)). Then

- PBO = the share of splits with λ ≤ 0: the IS winner at or below the OOS median;
- the performance-degradation slope: least-squares slope of the winner's OOS Sharpe on its IS
  Sharpe across splits (negative or near 0: IS excellence does not carry OOS);
- the probability of loss: the share of splits where the winner's OOS Sharpe is below 0.

The Sharpe ratio here is per bar, on returns minus the per-bar risk-free rate (the ranking does not
depend on annualising). Each split's mean and variance come from per-block sums, so the cost is a
few matrix products, not 12,870 passes over the data. numpy only, imported where used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_BLOCKS = 16
MAX_BLOCKS = 20  # C(20, 10) = 184,756 splits; more is minutes of arithmetic for little gain
MIN_BARS_PER_BLOCK = 2  # a Sharpe ratio needs a spread
CHUNK = 8192  # splits per matrix product: bounded memory for any S and N


@dataclass(frozen=True)
class PBO:
    """CSCV's answer for one matrix of variants (see the module docstring)."""

    pbo: float
    degradation_slope: float
    prob_oos_loss: float
    splits: int
    blocks: int
    variants: int
    bars: int
    median_logit: float

    def as_dict(self) -> dict:
        return {
            "pbo": self.pbo,
            "degradation_slope": self.degradation_slope,
            "prob_oos_loss": self.prob_oos_loss,
            "splits": self.splits,
            "blocks": self.blocks,
            "variants": self.variants,
            "bars": self.bars,
            "median_logit": self.median_logit,
            "method": "CSCV (Bailey, Borwein, López de Prado & Zhu 2014), Sharpe ratio per bar",
        }


def why_not(bars: int, variants: int, blocks: int = DEFAULT_BLOCKS) -> str | None:
    """Why PBO cannot be computed for this shape, or None."""
    if variants < 2:
        return "PBO needs at least 2 variants"
    if blocks % 2 or not 2 <= blocks <= MAX_BLOCKS:
        return f"PBO needs an even number of blocks between 2 and {MAX_BLOCKS}"
    if bars < blocks * MIN_BARS_PER_BLOCK:
        return f"PBO with {blocks} blocks needs at least {blocks * MIN_BARS_PER_BLOCK} bars ({bars} given)"
    return None


def cscv(returns, blocks: int = DEFAULT_BLOCKS, rf_per_bar: float = 0.0) -> PBO:
    """PBO of a T x N array of returns (rows: bars in time order; columns: variants)."""
    import itertools

    import numpy as np

    matrix = np.asarray(returns, dtype=float) - rf_per_bar
    bars, variants = matrix.shape
    reason = why_not(bars, variants, blocks)
    if reason:
        raise ValueError(reason)
    parts = np.array_split(np.arange(bars), blocks)
    counts = np.array([len(p) for p in parts], dtype=float)
    sums = np.stack([matrix[p].sum(axis=0) for p in parts])  # S x N
    squares = np.stack([(matrix[p] ** 2).sum(axis=0) for p in parts])
    total = (counts.sum(), sums.sum(axis=0), squares.sum(axis=0))
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)), dtype=np.int64)
    logits, is_best, oos_best = [], [], []
    for start in range(0, len(combos), CHUNK):
        chosen = np.zeros((len(combos[start : start + CHUNK]), blocks))
        np.put_along_axis(chosen, combos[start : start + CHUNK], 1.0, axis=1)
        n_is, s_is, q_is = chosen @ counts, chosen @ sums, chosen @ squares
        sr_is = _sharpe(n_is, s_is, q_is)
        sr_oos = _sharpe(total[0] - n_is, total[1] - s_is, total[2] - q_is)
        winner = np.argmax(sr_is, axis=1)
        rows = np.arange(len(winner))
        w_oos = sr_oos[rows, winner]
        below = (sr_oos < w_oos[:, None]).sum(axis=1)
        ties = (sr_oos == w_oos[:, None]).sum(axis=1)  # the winner itself included
        omega = (below + (ties + 1) / 2.0) / (variants + 1)
        logits.append(np.log(omega / (1.0 - omega)))
        is_best.append(sr_is[rows, winner])
        oos_best.append(w_oos)
    logit, x, y = (np.concatenate(a) for a in (logits, is_best, oos_best))
    return PBO(
        pbo=float(np.mean(logit <= 0)),
        degradation_slope=_slope(x, y),
        prob_oos_loss=float(np.mean(y < 0)),
        splits=len(combos),
        blocks=blocks,
        variants=variants,
        bars=bars,
        median_logit=float(np.median(logit)),
    )


def _sharpe(n, s, q):
    """Per-bar Sharpe ratios from counts (splits), sums and sums of squares (splits x variants);
    a zero spread is -inf (never the pick, the worst OOS)."""
    import numpy as np

    n = n[:, None]
    mean = s / n
    var = (q - n * mean * mean) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / np.sqrt(var)
    spread_zero = ~(var > 1e-30 * np.maximum(q / n, 1e-300))
    return np.where(spread_zero | ~np.isfinite(sr), -np.inf, sr)


def _slope(x, y) -> float:
    import numpy as np

    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or float(np.var(x)) == 0.0:
        return math.nan
    return float(np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1))
