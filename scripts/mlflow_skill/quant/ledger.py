"""The trial ledger: every variant ever tried for one research question, so the number of trials N
and the variance V of their Sharpe ratios in the deflated Sharpe ratio (quant/sharpe.py) never
depend on what a display filter happens to show.

A research question is, by default, one experiment (an option narrows it to one sweep or widens it
to several experiments; runs/ledger.py reads the runs). Every backtest run in it counts, FAILED,
KILLED and deleted ones included, once per configuration: runs with the same configuration
fingerprint (tag backtest.config: data, params, periods, risk-free, without the run name; else
backtest.fingerprint) are one trial however often they were logged (--force-new, a repeated sweep).
A run logged by other means, without either tag, is its own configuration. N counts
configurations; V is the sample variance of their annualised Sharpe ratios, turned into per-bar
units for the run being deflated (V / bars a year), so daily and hourly trials can share a ledger.
Pure Python: `best` uses it without numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlflow_skill.quant import sharpe as sharpe_stats

CONFIG_TAG = "backtest.config"  # configuration fingerprint: the same value is the same trial
FINGERPRINT_TAG = "backtest.fingerprint"  # a run's identity for re-runs (includes the run name)
SWEEP_TAG = "backtest.sweep"  # a sweep's parent: not a trial itself
PARENT_TAG = "mlflow.parentRunId"
UNFINISHED = ("FAILED", "KILLED", "RUNNING", "SCHEDULED")


@dataclass(frozen=True)
class Entry:
    """One run as a trial: its configuration key, where it lives, and its Sharpe figures (None when
    it failed before they were logged)."""

    key: str
    run_id: str
    experiment_id: str
    status: str
    deleted: bool
    start_time: int
    sharpe_annual: float | None = None
    periods_per_year: float | None = None
    bars: int | None = None
    skew: float | None = None
    excess_kurtosis: float | None = None

    def trial(self) -> sharpe_stats.Trial | None:
        """As a Sharpe trial (label: the run id), or None without usable figures."""
        values = (self.sharpe_annual, self.periods_per_year, self.bars, self.skew, self.excess_kurtosis)
        if any(v is None or not math.isfinite(v) for v in values) or not self.periods_per_year > 0:
            return None
        return sharpe_stats.Trial(
            self.run_id, self.sharpe_annual, self.periods_per_year, int(self.bars), self.skew, self.excess_kurtosis
        )


@dataclass
class Ledger:
    """The configurations of one research question (one Entry each) and how they were counted."""

    scope: str  # in words: "experiment 'x'", "sweep 3f2a...", "experiments 'a', 'b'"
    entries: list[Entry] = field(default_factory=list)  # one per configuration
    runs: int = 0  # trial runs read, before de-duplication
    unfinished: int = 0  # of those: FAILED, KILLED or still RUNNING
    deleted: int = 0

    @property
    def trials(self) -> int:
        return len(self.entries)

    @property
    def duplicates(self) -> int:
        return self.runs - self.trials

    @property
    def sharpes(self) -> list[float]:
        """Annualised Sharpe ratios of the configurations that have one."""
        return [e.sharpe_annual for e in self.entries if e.sharpe_annual is not None and math.isfinite(e.sharpe_annual)]

    @property
    def without_sharpe(self) -> int:
        return self.trials - len(self.sharpes)

    @property
    def variance_annual(self) -> float:
        """Sample variance of the annualised Sharpe ratios (0 with fewer than two)."""
        values = self.sharpes
        if len(values) < 2:
            return 0.0
        mean = sum(values) / len(values)
        return sum((v - mean) ** 2 for v in values) / (len(values) - 1)

    def variance_per_bar(self, periods_per_year: float) -> float:
        return self.variance_annual / periods_per_year

    def describe(self) -> str:
        """'104 runs, 100 configurations (4 re-logged duplicates; 3 FAILED/KILLED/RUNNING, 1 deleted)'."""
        extras = [f"{self.duplicates} re-logged duplicate{'s' * (self.duplicates != 1)}"] if self.duplicates else []
        counted = [f"{self.unfinished} unfinished"] if self.unfinished else []
        counted += [f"{self.deleted} deleted"] if self.deleted else []
        if counted:
            extras.append(", ".join(counted) + " counted")
        if self.without_sharpe:
            extras.append(f"{self.without_sharpe} without a Sharpe ratio (in N, not in V)")
        tail = f" ({'; '.join(extras)})" if extras else ""
        return f"{self.runs} run{'s' * (self.runs != 1)}, {self.trials} configurations{tail}"

    def as_dict(self) -> dict:
        return {
            "scope": self.scope,
            "trials": self.trials,
            "runs": self.runs,
            "duplicates": self.duplicates,
            "unfinished": self.unfinished,
            "deleted": self.deleted,
            "without_sharpe": self.without_sharpe,
            "sharpe_variance_annual": self.variance_annual,
        }


def build(scope: str, entries: list[Entry]) -> Ledger:
    """One Entry per configuration: the newest FINISHED, active run with a Sharpe ratio when there is
    one, else the newest run with a Sharpe ratio, else the newest run."""
    by_key: dict[str, list[Entry]] = {}
    seen: set[str] = set()
    for entry in entries:
        if entry.run_id in seen:  # the same run from two reads (the store and this call's own)
            continue
        seen.add(entry.run_id)
        by_key.setdefault(entry.key, []).append(entry)
    chosen = [max(group, key=_preference) for group in by_key.values()]
    runs = [e for group in by_key.values() for e in group]
    return Ledger(
        scope=scope,
        entries=sorted(chosen, key=lambda e: e.start_time),
        runs=len(runs),
        unfinished=sum(1 for e in runs if e.status in UNFINISHED),
        deleted=sum(1 for e in runs if e.deleted),
    )


def _preference(entry: Entry) -> tuple:
    has_sharpe = entry.sharpe_annual is not None and math.isfinite(entry.sharpe_annual)
    return (has_sharpe, entry.status == "FINISHED" and not entry.deleted, entry.start_time)


@dataclass(frozen=True)
class Deflated:
    """A run's PSR, DSR and MinTRL against a ledger (or --trials N with the ledger's variance)."""

    psr: float
    dsr: float
    sr0_per_bar: float
    min_trl_years: float


def deflate(trial: sharpe_stats.Trial, trials: int, variance_annual: float) -> Deflated:
    """PSR (SR > 0), DSR (SR > SR0 for `trials` trials of variance V) and MinTRL at 95 % in years."""
    kurtosis = trial.excess_kurtosis + 3.0
    sr0 = sharpe_stats.expected_max_sharpe(trials, variance_annual / trial.periods_per_year)
    return Deflated(
        psr=sharpe_stats.psr(trial.sr, trial.bars, trial.skew, kurtosis),
        dsr=sharpe_stats.psr(trial.sr, trial.bars, trial.skew, kurtosis, sr0),
        sr0_per_bar=sr0,
        min_trl_years=trial.min_trl_years,
    )
