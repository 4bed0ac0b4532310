"""How far a sweep's winner can be trusted: each variant's PSR and minimum track record length and
its out-of-sample figures (--oos-from), the trial ledger the deflated Sharpe ratio counts (this
sweep's variants plus every earlier trial of the research question, read by runs/ledger.py), the
probability of backtest overfitting by CSCV (quant/pbo.py), and the certificate logged on the
sweep's parent (backtest/certificate.json) that puts them together.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow_skill.backtest import sweep as sw
from mlflow_skill.backtest.job import FINGERPRINT_VERSION
from mlflow_skill.backtest.metrics import rf_per_bar
from mlflow_skill.core.errors import UsageError
from mlflow_skill.quant import ledger as ql
from mlflow_skill.quant import pbo as qpbo

CERTIFICATE = "certificate.json"


# ---------------------------------------------------------------------------------------------
# Per variant: out-of-sample figures (known when it is scored)
# ---------------------------------------------------------------------------------------------
def variant_figures(v: sw.Variant, ppy: float, rf: float) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) a sweep child carries besides a backtest's own: the oos_* figures with --oos-from."""
    if v.oos_returns is None:
        return {}, {}
    return {k: val for k, val in oos_figures(v.oos_returns, ppy, rf).items() if math.isfinite(val)}, {}


def oos_figures(returns, ppy: float, rf: float) -> dict[str, float]:
    """Sharpe, CAGR, max drawdown and cumulative return of the held-out bars, as QuantStats computes
    them (Sharpe on returns minus the per-bar risk-free rate, CAGR over bars / periods a year, the
    drawdown from the equity at the first held-out bar's start)."""
    import numpy as np

    r = returns.to_numpy(dtype=float)
    excess = r - rf_per_bar(rf, ppy)
    spread = float(np.std(excess, ddof=1))
    equity = np.cumprod(1.0 + r)
    peaks = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return {
        "oos_sharpe": float(np.mean(excess)) / spread * math.sqrt(ppy) if spread > 0 else math.nan,
        "oos_cagr": float(equity[-1]) ** (ppy / len(r)) - 1.0,
        "oos_max_drawdown": float(np.min(equity / peaks - 1.0)),
        "oos_cumulative_return": float(equity[-1]) - 1.0,
    }


# ---------------------------------------------------------------------------------------------
# The ledger, PBO
# ---------------------------------------------------------------------------------------------
def own_entries(children, experiment_id: str) -> list[ql.Entry]:
    """This sweep's variants as ledger entries (by their configuration fingerprint), so the ledger
    holds them whether or not the store has answered with them yet."""
    entries = []
    for child in children:
        m, params = child.result.metrics, child.params
        entries.append(
            ql.Entry(
                key=child.tags[ql.CONFIG_TAG],
                run_id=child.outcome.run_id or f"(this sweep) {child.run_name}",
                experiment_id=experiment_id,
                status="FINISHED",
                deleted=False,
                start_time=int(time.time() * 1000),
                sharpe_annual=m.get("sharpe"),
                periods_per_year=float(params["data.periods_per_year"]),
                bars=int(params["data.periods"]),
                skew=m.get("skew"),
                excess_kurtosis=m.get("kurtosis"),
            )
        )
    return entries


@dataclass(frozen=True)
class Overfitting:
    """PBO of a sweep, or why it was not computed."""

    result: qpbo.PBO | None
    reason: str | None

    def as_dict(self) -> dict:
        return self.result.as_dict() if self.result else {"pbo": None, "reason": self.reason}


def pbo_of(sweep: sw.Sweep, ppy: float, rf: float, blocks: int) -> Overfitting:
    """CSCV over the variants' returns on the window they were scored on (in sample with --oos-from)."""
    import numpy as np

    bars, count = len(sweep.variants[0].returns), len(sweep.variants)
    reason = qpbo.why_not(bars, count, blocks)
    if reason:
        return Overfitting(None, reason)
    matrix = np.column_stack([v.returns.to_numpy(dtype=float) for v in sweep.variants])
    return Overfitting(qpbo.cscv(matrix, blocks, rf_per_bar(rf, ppy)), None)


def check_blocks(blocks: int) -> None:
    if blocks % 2 or not 2 <= blocks <= qpbo.MAX_BLOCKS:
        raise UsageError(f"--pbo-blocks takes an even number from 2 to {qpbo.MAX_BLOCKS} (default 16)")


# ---------------------------------------------------------------------------------------------
# The certificate
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 (first 16 hex digits) of the code that computes the figures: quant/ and backtest/."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*package.glob("quant/*.py"), *package.glob("backtest/*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def certificate(job) -> dict:
    """backtest/certificate.json: the winner's deflated Sharpe with the N and V it rests on, PBO,
    MinTRL, the window (and the held-out bars), and the versions that computed them."""
    sweep, best, d = job.sweep, job.rows[0], job.deflated_sharpe
    window = {
        "start": sweep.start.isoformat(),
        "end": sweep.end.isoformat(),
        "bars": len(sweep.variants[0].returns),
        "periods_per_year": job.periods[0],
    }
    if sweep.oos:
        window["out_of_sample"] = {
            "start": sweep.oos.start.isoformat(),
            "end": sweep.oos.end.isoformat(),
            "bars": sweep.oos.bars,
            "how": sweep.oos.how,
        }
    trl = best.get("min_trl_years")
    return {
        "winner": best["variant"],
        "winner_run_id": best.get("run_id"),
        "sharpe": best.get("sharpe"),
        "psr": best.get("psr"),
        "trials": d.trials,
        "trials_counted_as": d.trials_counted_as,
        "variance": d.sharpe_variance_per_bar,
        "variance_annual": d.sharpe_variance_annual,
        "sr0_per_bar": d.sr0_per_bar,
        "dsr": d.winner_dsr,
        "pbo": job.overfitting.result.pbo if job.overfitting.result else None,
        "pbo_detail": job.overfitting.as_dict(),
        "min_trl_years": trl if trl is None or math.isfinite(trl) else "inf",
        "ledger": d.ledger,
        "window": window,
        "out_of_sample": {k: best.get(k) for k in sw.OOS_KEYS} if sweep.oos else None,
        "code_version": {
            "figures_sha256": code_version(),
            "quantstats": str(getattr(job.qs, "__version__", "unknown")),
            "fingerprint_version": FINGERPRINT_VERSION,
        },
    }
