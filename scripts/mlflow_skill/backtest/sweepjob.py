"""A sweep as a job: every variant read and checked, the common window found, the parent run's
params, tags and fingerprint; each variant becomes a child BacktestJob (scored when it is logged,
or all at once for --dry-run), and the children's ranking gives the parent its metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_skill.backtest import annualisation, checks
from mlflow_skill.backtest import job as bj
from mlflow_skill.backtest import metrics as bm
from mlflow_skill.backtest import overfitting as of
from mlflow_skill.backtest import sweep as sw
from mlflow_skill.backtest.data import Inputs, sha256
from mlflow_skill.backtest.outcome import RunIdentity, RunOutcome
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import truncate
from mlflow_skill.core.values import parse_key_values
from mlflow_skill.quant import ledger as ql
from mlflow_skill.quant import sharpe as sharpe_stats
from mlflow_skill.runs.ledger import parse_scope

SWEEP_HISTORY_POINTS = 250  # a sweep child's curves, resampled: N full histories would take minutes


@dataclass
class DeflatedSharpe:
    """The winner's deflated Sharpe ratio and the facts it rests on (N trials, their variance)."""

    trials: int
    trials_counted_as: str
    sharpe_variance_per_bar: float
    sr0_per_bar: float
    winner: str
    winner_dsr: float | None
    verdict: str
    sharpe_variance_annual: float = 0.0
    ledger: dict = field(default_factory=dict)  # quant.ledger.Ledger.as_dict()


@dataclass
class SweepJob:
    """A sweep ready to log: the parent run's params, tags and fingerprint, and its children."""

    args: argparse.Namespace
    sweep: sw.Sweep
    qs: Any  # the quantstats module
    params: dict[str, str]  # the parent's
    tags: dict[str, str]  # the parent's
    periods: tuple[float, str]
    child_history: int | None  # history steps per child curve; None: no histories
    notes: list[str]
    run_name: str
    fingerprint: str
    outcome: RunOutcome
    children: list[bj.BacktestJob] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # the ranking, best first
    metrics: dict[str, float] = field(default_factory=dict)  # the parent's, from the ranking
    deflated_sharpe: DeflatedSharpe | None = None
    overfitting: of.Overfitting | None = None  # PBO by CSCV, or why not
    ledger: ql.Ledger | None = None

    def identity(self) -> RunIdentity:
        return RunIdentity(self.run_name, self.fingerprint, self.tags, histories=False)


def is_sweep(args) -> bool:
    return len(args.returns) > 1 or bool(args.columns)


def prepare_sweep(args) -> SweepJob:
    """Every variant read and checked, the common window found; nothing sent to the server. The
    variants are scored as they are logged (sweeplog.log_children), or all at once for --dry-run."""
    bj.check_args(args)
    if args.column and args.columns:
        raise UsageError("--column names one series and --columns a sweep: pass one of them")
    if args.trials is not None and args.trials < len(args.returns):
        raise UsageError("--trials counts every variant tried: at least the number of variants")
    of.check_blocks(args.pbo_blocks)
    scope = parse_scope(args.ledger)
    if scope.kind == "sweep" and scope.refs:
        raise UsageError("--ledger sweep counts this sweep's variants only; it takes no run id here")
    notes: list[str] = []
    sweep = sw.load(args, notes)
    if args.trials is not None and args.trials < len(sweep.variants):
        raise UsageError(f"--trials counts every variant tried: at least the {len(sweep.variants)} variants given")
    bars = len(sweep.variants[0].returns)
    explicit = args.no_history or args.history_points or args.full_history
    history = bj.history_plan(args, bars) if explicit else min(SWEEP_HISTORY_POINTS, bars)
    periods = annualisation.periods_per_year(args, sweep.local_index, notes)
    notes += filter(None, [checks.small_sample_note(bars, periods[0])])
    name = args.run_name or bj.default_run_name(f"sweep {sweep.files[0].stem}")
    job = SweepJob(
        args=args,
        sweep=sweep,
        qs=bm.import_quantstats(),
        params=parent_params(args, sweep, periods[0]),
        tags=parent_tags(args, sweep, periods),
        periods=periods,
        child_history=history,
        notes=notes,
        run_name=name,
        fingerprint=sweep_fingerprint(args, sweep, periods[0]),
        outcome=RunOutcome(run_name=name, experiment=args.experiment),
    )
    if args.dry_run:
        score_children(job)
    return job


def parent_params(args, sweep: sw.Sweep, ppy: float) -> dict[str, str]:
    files = ", ".join(sorted({f.name for f in sweep.files}))
    params = {
        "data.files": truncate(files, 5000),
        "data.columns": args.columns or "(one per file)",
        "data.start": sweep.start.isoformat(),
        "data.end": sweep.end.isoformat(),
        "data.periods": str(len(sweep.variants[0].returns)),
        "data.periods_per_year": f"{ppy:g}",
        "data.risk_free": f"{args.risk_free:g}",
        "sweep.variants": str(len(sweep.variants)),
        "sweep.trials": str(args.trials) if args.trials else f"the trial ledger ({args.ledger or 'experiment'})",
        "sweep.pbo_blocks": str(args.pbo_blocks),
    }
    params.update(oos_params(sweep))
    if sweep.benchmark is not None:
        params["data.benchmark"] = args.benchmark and Path(args.benchmark).name or args.benchmark_column
    return params


def oos_params(sweep: sw.Sweep) -> dict[str, str]:
    """data.oos_* params: the held-out bars (--oos-from)."""
    if sweep.oos is None:
        return {}
    return {
        "data.oos_start": sweep.oos.start.isoformat(),
        "data.oos_end": sweep.oos.end.isoformat(),
        "data.oos_periods": str(sweep.oos.bars),
    }


def parent_tags(args, sweep: sw.Sweep, periods: tuple[float, str]) -> dict[str, str]:
    return {
        **parse_key_values(args.tag, "--tag"),
        "backtest.sweep": f"{len(sweep.variants)} variants",
        "backtest.periods_per_year": f"{periods[0]:g} ({periods[1]})",
    }


def sweep_fingerprint(args, sweep: sw.Sweep, ppy: float) -> str:
    """The sweep's identity: every variant's data (file hash, column, params), the window,
    periods, risk-free, the benchmark, the run name if given."""
    spec = {
        "v": bj.FINGERPRINT_VERSION,
        "sweep": True,
        "run_name": args.run_name,
        "ppy": ppy,
        "rf": args.risk_free,
        "window": [str(sweep.start), str(sweep.end)],
        "oos": [str(sweep.oos.start), str(sweep.oos.end)] if sweep.oos else None,
        "pbo_blocks": args.pbo_blocks,
        "percent": bool(args.percent),
        "prices": bool(args.prices),
        "variants": [[v.name, sha256(v.file), v.column, v.params] for v in sweep.variants],
        "benchmark": [sha256(Path(args.benchmark)) if args.benchmark else None, args.benchmark_column],
        "params": parse_key_values(args.param, "--param"),
        "json": args.params,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


def child_job(job: SweepJob, v: sw.Variant) -> bj.BacktestJob:
    """One variant as a backtest job (metrics computed here), its fingerprint derived from the sweep's."""
    args, sweep = job.args, job.sweep
    inputs = Inputs(
        v.returns,
        v.file,
        v.column,
        benchmark=sweep.benchmark,
        benchmark_file=Path(args.benchmark) if args.benchmark else None,
        benchmark_column=args.benchmark_column or "auto",
        dated=True,
        local_index=sweep.local_index,
    )
    child_args = argparse.Namespace(**{**vars(args), "no_tearsheet": True, "run_name": v.name})
    fp = hashlib.sha256(f"{job.fingerprint}/{v.name}".encode()).hexdigest()[:32]
    variant_params = {"variant": v.name, **v.params, **oos_params(job.sweep)}
    child = bj.build(child_args, inputs, job.periods, job.qs, job.child_history, [], v.name, variant_params, fp)
    v.result = child.result
    figures, tags = of.variant_figures(v, job.periods[0], args.risk_free)
    child.result.metrics.update(figures)
    child.tags.update(tags)
    return child


def score_children(job: SweepJob) -> None:
    """Every variant's metrics not yet computed, then the ranking."""
    done = {child.params["variant"] for child in job.children}
    job.children += [child_job(job, v) for v in job.sweep.variants if v.name not in done]
    rank_children(job)


def rank_children(job: SweepJob, ledger: ql.Ledger | None = None) -> None:
    """The ranking rows (with each child's run id), the parent's metrics and the winner's deflated
    Sharpe against `ledger` (None: this sweep's variants alone, as for --dry-run), and PBO."""
    alone = ledger is None
    if alone:
        ledger = ql.build("this sweep", of.own_entries(job.children, job.outcome.experiment_id or ""))
    job.ledger = ledger
    rows, ranked = sw.ranking(job.sweep, job.periods[0], ledger, job.args.trials)
    ids = {child.params["variant"]: child.outcome.run_id for child in job.children}
    for row in rows:
        row["run_id"] = ids.get(row["variant"])
    if job.overfitting is None:
        job.overfitting = of.pbo_of(job.sweep, job.periods[0], job.args.risk_free, job.args.pbo_blocks)
    job.rows = rows
    job.metrics = parent_metrics(rows, ranked, job.overfitting)
    job.deflated_sharpe = deflated_sharpe(rows[0], ranked, job.args.trials, ledger)
    if alone and not job.args.trials:
        job.deflated_sharpe.trials_counted_as = (
            f"N = {ranked.trials}: this sweep's variants (a dry run reads no store; logging counts the experiment's "
            "trial ledger)"
        )


def parent_metrics(rows: list[dict], ranked: sharpe_stats.Ranking, overfitting: of.Overfitting) -> dict[str, float]:
    """The parent's metrics: the variants, the trials, the winner's Sharpe, PSR, DSR and MinTRL,
    PBO, and the winner's out-of-sample figures."""
    best = rows[0]
    metrics = {"sweep_variants": float(len(rows)), "sweep_trials": float(ranked.trials)}
    for key in ("sharpe", "psr", "dsr", "min_trl_years"):
        if best.get(key) is not None and math.isfinite(best[key]):
            metrics[f"best_{key}"] = float(best[key])
    metrics.update({k: float(best[k]) for k in sw.OOS_KEYS if best.get(k) is not None and math.isfinite(best[k])})
    if overfitting.result:
        result = overfitting.result
        metrics["pbo"] = result.pbo
        metrics["pbo_prob_oos_loss"] = result.prob_oos_loss
        if math.isfinite(result.degradation_slope):
            metrics["pbo_degradation_slope"] = result.degradation_slope
    return metrics


def deflated_sharpe(
    best: dict, ranked: sharpe_stats.Ranking, trials_flag: int | None, ledger: ql.Ledger
) -> DeflatedSharpe:
    trials_how = (
        f"N = {ranked.trials} given by --trials (the ledger of {ledger.scope} has {ledger.trials}); V from the ledger"
        if trials_flag
        else f"N = {ranked.trials}: the trial ledger of {ledger.scope}: {ledger.describe()}"
    )
    return DeflatedSharpe(
        trials=ranked.trials,
        trials_counted_as=trials_how,
        sharpe_variance_per_bar=ranked.variance,
        sr0_per_bar=ranked.sr0,
        winner=best["variant"],
        winner_dsr=best.get("dsr"),
        verdict=sharpe_stats.verdict(best.get("dsr") if best.get("dsr") is not None else math.nan),
        sharpe_variance_annual=ledger.variance_annual,
        ledger=ledger.as_dict(),
    )
