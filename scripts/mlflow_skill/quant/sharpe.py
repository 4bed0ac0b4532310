"""The probabilistic and deflated Sharpe ratios (Bailey & López de Prado), for ranking backtests
honestly: the best Sharpe ratio of many variants is inflated by the search itself.

- PSR(SR*) = Φ( (SR − SR*) · √(n − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) )
  (Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier", 2012), with SR the Sharpe
  ratio per bar (not annualised), n the number of bars, γ3 the skewness and γ4 the kurtosis
  (3 for a normal distribution; QuantStats logs the excess kurtosis, γ4 − 3).
- DSR = PSR(SR0), SR0 = √V · ((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))
  ("The Deflated Sharpe Ratio", 2014): SR0 is the Sharpe ratio the best of N unskilled trials
  is expected to reach, V the variance of the trials' Sharpe ratios, γ Euler-Mascheroni.
- MinTRL = 1 + (1 − γ3·SR + (γ4 − 1)/4 · SR²) · (Z_α / (SR − SR*))² bars (Bailey & López de Prado
  2012, the same paper): the minimum track record length, in bars, for PSR(SR*) to reach 1 − α;
  infinite when SR ≤ SR*. At 95 % here, against SR* = 0 (the PSR shown beside it).
Pure Python (math, statistics): no numpy on this path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def psr(sr: float, n: int, skew: float, kurtosis: float, sr_star: float = 0.0) -> float:
    """Probability that the true per-bar Sharpe ratio exceeds sr_star, given n bars."""
    if n < 2:
        return math.nan
    denominator = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not denominator > 0:
        return math.nan  # the moments make the estimate's variance meaningless
    return _NORMAL.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(denominator))


def min_track_record(sr: float, skew: float, kurtosis: float, sr_star: float = 0.0, level: float = 0.95) -> float:
    """Minimum track record length in bars (per-bar SR, non-excess kurtosis); inf when SR <= SR*,
    NaN when the moments make the estimate's variance meaningless."""
    if not all(math.isfinite(v) for v in (sr, skew, kurtosis)):
        return math.nan
    if sr <= sr_star:
        return math.inf
    spread = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not spread > 0:
        return math.nan
    return 1.0 + spread * (_NORMAL.inv_cdf(level) / (sr - sr_star)) ** 2


def expected_max_sharpe(trials: int, variance: float) -> float:
    """SR0: the per-bar Sharpe ratio the best of `trials` skill-less variants is expected to show."""
    if trials < 2 or not variance > 0:
        return 0.0
    a = _NORMAL.inv_cdf(1.0 - 1.0 / trials)
    b = _NORMAL.inv_cdf(1.0 - 1.0 / (trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def dsr(sr: float, n: int, skew: float, kurtosis: float, trials: int, variance: float) -> float:
    return psr(sr, n, skew, kurtosis, expected_max_sharpe(trials, variance))


@dataclass
class Trial:
    """One variant's Sharpe ratio and the moments the PSR needs."""

    label: str
    sharpe_annual: float
    periods_per_year: float
    bars: int
    skew: float
    excess_kurtosis: float

    @property
    def sr(self) -> float:
        """Per-bar Sharpe ratio: the annualised one divided by √(bars per year)."""
        return self.sharpe_annual / math.sqrt(self.periods_per_year)

    @property
    def min_trl_years(self) -> float:
        """MinTRL at 95 % against SR* = 0, in years (bars / bars a year); inf when SR <= 0."""
        bars = min_track_record(self.sr, self.skew, self.excess_kurtosis + 3.0)
        return bars / self.periods_per_year if math.isfinite(bars) else bars


@dataclass
class Ranking:
    trials: int  # N, as counted (see `trials_note`)
    variance: float  # V: variance of the per-bar Sharpe ratios across the trials
    sr0: float  # the expected maximum under no skill (per bar)
    psr: dict[str, float]
    dsr: dict[str, float]


def rank(trials: list[Trial], n_trials: int | None = None) -> Ranking:
    """PSR (against 0) and DSR (against SR0 for N trials) for every trial. N defaults to the
    number of trials given; V is the sample variance of their per-bar Sharpe ratios."""
    srs = [t.sr for t in trials if math.isfinite(t.sr)]
    count = n_trials if n_trials is not None else len(srs)
    variance = _sample_variance(srs)
    sr0 = expected_max_sharpe(count, variance)
    return Ranking(
        trials=count,
        variance=variance,
        sr0=sr0,
        psr={t.label: psr(t.sr, t.bars, t.skew, t.excess_kurtosis + 3.0) for t in trials},
        dsr={t.label: psr(t.sr, t.bars, t.skew, t.excess_kurtosis + 3.0, sr0) for t in trials},
    )


def _sample_variance(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def verdict(dsr_value: float, level: float = 0.95) -> str:
    if not math.isfinite(dsr_value):
        return "undefined (too few bars or degenerate moments)"
    if dsr_value >= level:
        return f"distinguishable from luck at {level:.0%} (DSR {dsr_value:.3f})"
    return f"not distinguishable from luck at {level:.0%} (DSR {dsr_value:.3f} < {level})"
