"""The pure statistics behind a sweep's verdict: PBO by CSCV (quant/pbo.py) against a straightforward
implementation written here from the paper (Bailey, Borwein, López de Prado & Zhu 2014: one loop
per split, pandas Sharpe ratios), the minimum track record length against Bailey & López de Prado's
(2012) formula, and the trial ledger's counting rules (quant/ledger.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from mlflow_skill.quant import ledger as ql
from mlflow_skill.quant import pbo as qpbo
from mlflow_skill.quant import sharpe as sharpe_stats


def reference_cscv(frame: pd.DataFrame, blocks: int = 16) -> dict:
    """CSCV as the paper states it: S contiguous blocks, every choice of S/2 of them in sample, the
    in-sample best by Sharpe ratio, its out-of-sample relative rank w = rank / (N + 1), logit
    ln(w / (1 - w)); PBO = share of logits <= 0. Slope: OLS of OOS on IS Sharpe of the pick; loss:
    share of splits where the pick's OOS Sharpe is negative."""
    parts = np.array_split(np.arange(len(frame)), blocks)
    logits, is_sr, oos_sr = [], [], []
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        inside = frame.iloc[np.concatenate([parts[i] for i in chosen])]
        outside = frame.iloc[np.concatenate([parts[i] for i in range(blocks) if i not in chosen])]
        sharpe_in = inside.mean() / inside.std()
        sharpe_out = outside.mean() / outside.std()
        pick = sharpe_in.idxmax()
        rank = sharpe_out.rank(method="average")[pick]
        w = rank / (len(frame.columns) + 1)
        logits.append(math.log(w / (1 - w)))
        is_sr.append(sharpe_in[pick])
        oos_sr.append(sharpe_out[pick])
    slope = np.polyfit(is_sr, oos_sr, 1)[0]
    return {
        "pbo": float(np.mean(np.array(logits) <= 0)),
        "slope": float(slope),
        "loss": float(np.mean(np.array(oos_sr) < 0)),
    }


@pytest.mark.parametrize(
    "skill,bars,variants,blocks",
    [(0.0, 400, 12, 16), (0.0015, 400, 12, 10), (0.0004, 300, 8, 10), (0.0, 120, 5, 8)],
    ids=["noise", "skill", "some-skill", "short"],
)
def test_pbo_equals_the_reference_cscv(skill, bars, variants, blocks):
    rng = np.random.default_rng(bars + variants)
    frame = pd.DataFrame(rng.normal(0.0002, 0.01, (bars, variants)) + np.linspace(0, skill, variants))
    ours = qpbo.cscv(frame.to_numpy(), blocks)
    ref = reference_cscv(frame, blocks)
    assert ours.pbo == pytest.approx(ref["pbo"], abs=1e-12)
    assert ours.degradation_slope == pytest.approx(ref["slope"], rel=1e-9)
    assert ours.prob_oos_loss == pytest.approx(ref["loss"], abs=1e-12)
    assert ours.splits == math.comb(blocks, blocks // 2) and ours.variants == variants and ours.bars == bars


def test_pbo_separates_skill_from_luck():
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.01, (1000, 20))
    skilled = noise + np.linspace(0, 0.002, 20)  # the best variant truly is best
    assert qpbo.cscv(skilled).pbo < 0.15
    assert qpbo.cscv(noise).pbo > 0.3  # the pick of pure noise is as likely below the median as not, or worse


def test_pbo_of_pure_noise_averages_a_half_but_one_sweep_varies_widely():
    """What docs/honest-numbers.md says of PBO on noise: over 20 sweeps of 20 variants x 1,000
    bars with no skill, PBO averages about 0.5 (the pick lands below the median out of sample as
    often as not), yet single sweeps range from about 0.2 to 0.9: one PBO is a noisy figure."""
    values = [qpbo.cscv(np.random.default_rng(seed).normal(0.0, 0.01, (1000, 20))).pbo for seed in range(20)]
    assert 0.4 < np.mean(values) < 0.6
    assert min(values) < 0.3 and max(values) > 0.8


def test_pbo_risk_free_and_flat_variants():
    rng = np.random.default_rng(4)
    frame = rng.normal(0.0004, 0.01, (400, 6))
    frame[:, 5] = 0.0  # a variant that never trades: never the pick, the worst out of sample
    with_rf = qpbo.cscv(frame, 16, rf_per_bar=0.0001)
    assert with_rf == qpbo.cscv(frame - 0.0001, 16)  # the Sharpe ratio is on excess returns
    assert 0 <= with_rf.pbo <= 1 and math.isfinite(with_rf.degradation_slope) and with_rf.variants == 6
    assert qpbo.cscv(frame[:, :5], 16).splits == with_rf.splits


def test_pbo_refuses_shapes_it_cannot_split():
    assert "at least 2 variants" in qpbo.why_not(500, 1)
    assert "at least 32 bars" in qpbo.why_not(31, 5)
    assert "even number" in qpbo.why_not(500, 5, blocks=15)
    with pytest.raises(ValueError):
        qpbo.cscv(np.zeros((10, 3)))


def reference_min_trl(sr, skew, kurt, sr_star=0.0, level=0.95):
    """Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", eq. (11):
    MinTRL = 1 + [1 - skew * SR + (kurt - 1) / 4 * SR^2] * (Z_alpha / (SR - SR*))^2 (kurt not excess)."""
    return 1 + (1 - skew * sr + (kurt - 1) / 4 * sr**2) * (norm.ppf(level) / (sr - sr_star)) ** 2


@pytest.mark.parametrize(
    "sr,skew,kurt,star",
    [(0.1, -0.3, 5.0, 0.0), (0.05, 0.0, 3.0, 0.0), (0.2, 1.2, 9.0, 0.1), (0.03, -1.0, 12.0, 0.0)],
)
def test_min_trl_equals_the_published_formula(sr, skew, kurt, star):
    bars = sharpe_stats.min_track_record(sr, skew, kurt, star)
    assert bars == pytest.approx(reference_min_trl(sr, skew, kurt, star), rel=1e-12)
    # by construction PSR reaches 95 % exactly at n = MinTRL bars
    assert sharpe_stats.psr(sr, bars, skew, kurt, star) == pytest.approx(0.95, abs=1e-9)
    assert sharpe_stats.psr(sr, bars * 0.8, skew, kurt, star) < 0.95


def test_min_trl_years_and_the_never_case():
    trial = sharpe_stats.Trial("t", 1.2, 252.0, 1000, -0.2, 1.5)
    bars = reference_min_trl(1.2 / math.sqrt(252), -0.2, 4.5)
    assert trial.min_trl_years == pytest.approx(bars / 252, rel=1e-12)
    assert math.isinf(sharpe_stats.Trial("t", -0.3, 252.0, 1000, 0.0, 0.0).min_trl_years)
    assert math.isinf(sharpe_stats.min_track_record(0.0, 0.0, 3.0))


def entry(key, run_id, sharpe=None, status="FINISHED", deleted=False, start=0, ppy=252.0):
    return ql.Entry(key, run_id, "1", status, deleted, start, sharpe, ppy, 1000, 0.0, 0.0)


def test_ledger_counts_configurations_not_runs():
    entries = [
        entry("a", "r1", 1.0, start=1),
        entry("a", "r2", 1.0, start=2),  # --force-new: the same configuration again
        entry("b", "r3", 0.5, status="FAILED"),
        entry("c", "r4", None, status="FAILED"),  # failed before its metrics: in N, not in V
        entry("d", "r5", -0.2, deleted=True),
        entry("d", "r5", -0.2, deleted=True),  # the same run read twice
    ]
    ledger = ql.build("experiment 'x'", entries)
    assert ledger.trials == 4 and ledger.runs == 5 and ledger.duplicates == 1
    assert ledger.unfinished == 2 and ledger.deleted == 1 and ledger.without_sharpe == 1
    assert ledger.variance_annual == pytest.approx(np.var([1.0, 0.5, -0.2], ddof=1))
    assert ledger.variance_per_bar(252) == pytest.approx(np.var([1.0, 0.5, -0.2], ddof=1) / 252)
    assert "5 runs, 4 configurations" in ledger.describe() and "1 re-logged duplicate" in ledger.describe()
    assert [e.run_id for e in ledger.entries if e.key == "a"] == ["r2"]  # the newest finished one


def test_deflate_equals_the_published_dsr():
    trial = sharpe_stats.Trial("t", 1.5, 252.0, 1250, -0.3, 2.0)
    variance_annual = 0.4
    deflated = ql.deflate(trial, 100, variance_annual)
    g = 0.5772156649015329
    sr0 = math.sqrt(variance_annual / 252) * ((1 - g) * norm.ppf(1 - 1 / 100) + g * norm.ppf(1 - 1 / (100 * math.e)))
    sr = 1.5 / math.sqrt(252)
    expected = norm.cdf((sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 0.3 * sr + (5.0 - 1) / 4 * sr**2))
    assert deflated.sr0_per_bar == pytest.approx(sr0, rel=1e-12)
    assert deflated.dsr == pytest.approx(expected, rel=1e-9)
    assert deflated.min_trl_years == pytest.approx(trial.min_trl_years)
