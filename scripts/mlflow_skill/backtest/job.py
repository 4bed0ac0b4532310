"""One backtest as a job: the command's inputs read and checked, its metrics computed, its params,
tags and fingerprint decided, and how much history to log; everything that needs no server, so
every refusal comes before a run exists. Logging it is logrun.py's part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from mlflow_skill.backtest import annualisation, checks
from mlflow_skill.backtest import data as bd
from mlflow_skill.backtest import metrics as bm
from mlflow_skill.backtest import periods as bp
from mlflow_skill.backtest.outcome import RunIdentity, RunOutcome
from mlflow_skill.backtest.params import BATCH_METRICS, MAX_TAG_VALUE, collect_params
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import truncate
from mlflow_skill.quant import ledger as ql
from mlflow_skill.quant import sharpe as sharpe_stats

FINGERPRINT_VERSION = "1"  # bump when what a run holds changes for the same inputs
UNDEFINED_TAG = "backtest.undefined_metrics"
ROLLING_TAG = "backtest.rolling_window"  # bars in the rolling Sharpe/volatility window
HISTORY_TAG = "backtest.history"  # set when the histories are resampled
BIG_HISTORY_BARS = 100_000  # above this, full histories take minutes: ask first
SECONDS_PER_1000_POINTS = 0.33  # README performance table (bench/bench_backtest.py)
MAX_HISTORY_POINTS = 100_000


@dataclass
class BacktestJob:
    """One backtest, computed and ready to log; `outcome` records what logging it did."""

    args: argparse.Namespace
    inputs: bd.Inputs
    qs: Any  # the quantstats module
    result: bm.MetricSet
    params: dict[str, str]
    tags: dict[str, str]
    history: int | None  # history steps to log per curve; None: no histories
    periods: tuple[float, str]  # (periods per year, how they were decided)
    notes: list[str]
    run_name: str  # as asked for (--run-name, or the file and the time); the outcome has the run's own
    fingerprint: str
    outcome: RunOutcome
    new_parent: bool = False  # a child of a sweep's new parent run: it cannot exist yet

    @property
    def ppy(self) -> float:
        return self.periods[0]

    def identity(self) -> RunIdentity:
        return RunIdentity(self.run_name, self.fingerprint, self.tags, self.history is not None)


def check_args(args) -> None:
    if args.periods_per_year is not None and not (args.periods_per_year > 0 and math.isfinite(args.periods_per_year)):
        raise UsageError("--periods-per-year must be a positive number, e.g. 252")
    if not math.isfinite(args.risk_free) or not -1 < args.risk_free < 1:
        raise UsageError("--risk-free is an annual rate as a fraction, e.g. 0.04 for 4 %")
    if args.benchmark_prices and not (args.benchmark or args.benchmark_column):
        raise UsageError("--benchmark-prices needs --benchmark FILE or --benchmark-column NAME")
    if args.history_points is not None and not 2 <= args.history_points <= MAX_HISTORY_POINTS:
        raise UsageError(f"--history-points must be between 2 and {MAX_HISTORY_POINTS:,}, e.g. 5000")
    if args.no_history and (args.history_points or args.full_history):
        raise UsageError("--no-history logs no histories: drop --history-points/--full-history, or drop --no-history")


def history_plan(args, bars: int) -> int | None:
    """How many history steps to log per curve (None: none). Refuses, before any work, a full
    history that would take minutes, naming the choices."""
    if args.no_history:
        return None
    if args.history_points:
        return min(args.history_points, bars)
    if bars > BIG_HISTORY_BARS and not args.full_history:
        points = 2 * bars
        minutes = points / 1000 * SECONDS_PER_1000_POINTS / 60
        raise UsageError(
            f"{bars:,} bars make {points:,} history points: about {minutes:.0f} min of logging "
            f"({-(-points // BATCH_METRICS):,} log-batch requests at ~{SECONDS_PER_1000_POINTS} s per 1,000 points). "
            "Pass --history-points 5000 (a resampled curve; the metrics still use every bar), --no-history, "
            "or --full-history to log every bar anyway"
        )
    return bars


def default_run_name(stem: str) -> str:
    return f"{stem} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}"


def prepare(args) -> BacktestJob:
    """Everything that needs no server: inputs, metrics, params, tags, the fingerprint."""
    check_args(args)
    for flag, value in (("--oos-from", args.oos_from), ("--ledger", args.ledger), ("--trials", args.trials)):
        if value is not None:
            raise UsageError(f"{flag} is for a sweep (several --returns files, or --columns): drop it for one backtest")
    notes: list[str] = []
    inputs = bd.load_inputs(args, notes)
    history = history_plan(args, len(inputs.returns))
    periods = annualisation.periods_per_year(args, inputs.local_index, notes)
    if not (args.prices or args.percent):
        checks.check_scale(inputs.returns, periods[0], notes, "returns")
    notes += filter(None, [checks.small_sample_note(len(inputs.returns), periods[0])])
    qs = bm.import_quantstats()
    run_name = args.run_name or default_run_name(inputs.file.stem)
    return build(args, inputs, periods, qs, history, notes, run_name)


def build(
    args,
    inputs: bd.Inputs,
    periods: tuple[float, str],
    qs,
    history: int | None,
    notes: list[str],
    run_name: str,
    extra_params: dict[str, str] | None = None,
    fingerprint: str | None = None,
) -> BacktestJob:
    """One backtest's metrics, params (yours, the data's facts, a sweep variant's) and tags."""
    ppy = periods[0]
    params, user_tags = collect_params(args, inputs, ppy, str(getattr(qs, "__version__", "unknown")))
    params.update(extra_params or {})
    result = bm.compute(qs, inputs, args.risk_free, ppy)
    tags = run_tags(user_tags, result, periods, len(inputs.returns), history)
    tags[ql.CONFIG_TAG] = config_fingerprint(args, inputs, params)
    record, why = track_record(result.metrics, ppy, len(inputs.returns))
    result.metrics.update(record)
    tags.update(why)
    return BacktestJob(
        args=args,
        inputs=inputs,
        qs=qs,
        result=result,
        params=params,
        tags=tags,
        history=history,
        periods=periods,
        notes=[*notes, *result.notes],
        run_name=run_name,
        fingerprint=fingerprint or fingerprint_of(args, inputs, params),
        outcome=RunOutcome(run_name=run_name, experiment=args.experiment),
    )


MIN_TRL_TAG = "backtest.min_trl_years"  # why min_trl_years is not logged (infinite or undefined)


def track_record(metrics: dict[str, float], ppy: float, bars: int) -> tuple[dict[str, float], dict[str, str]]:
    """psr (Bailey & López de Prado's PSR against SR = 0) and min_trl_years (the minimum track record
    length at 95 %, in years), and a tag saying why when MinTRL is infinite or undefined."""
    if not all(k in metrics for k in ("sharpe", "skew", "kurtosis")):
        return {}, {}
    trial = sharpe_stats.Trial("", metrics["sharpe"], ppy, bars, metrics["skew"], metrics["kurtosis"])
    record = {"psr": sharpe_stats.psr(trial.sr, bars, trial.skew, trial.excess_kurtosis + 3.0)}
    years = trial.min_trl_years
    if math.isfinite(years):
        record["min_trl_years"] = years
        return {k: v for k, v in record.items() if math.isfinite(v)}, {}
    why = (
        "inf: a Sharpe ratio at or below 0 is never significantly above 0, however long the record"
        if math.isinf(years)
        else "undefined: the skew and kurtosis make the Sharpe ratio's variance meaningless"
    )
    return {k: v for k, v in record.items() if math.isfinite(v)}, {MIN_TRL_TAG: why}


def run_tags(
    user_tags: dict[str, str], result: bm.MetricSet, periods: tuple[float, str], bars: int, history: int | None
) -> dict[str, str]:
    """Your tags, then the backtest's: periods per year, the worst drawdown's dates, the undefined
    metrics, the rolling window and how the histories were resampled."""
    ppy, how = periods
    tags = dict(user_tags)
    tags["backtest.periods_per_year"] = f"{ppy:g} ({how})"
    for key in ("max_drawdown_start", "max_drawdown_valley", "max_drawdown_end"):
        if key in result.facts:
            tags[f"backtest.{key}"] = result.facts[key]
    if result.undefined:
        tags[UNDEFINED_TAG] = truncate(", ".join(result.undefined), MAX_TAG_VALUE)
    if history is not None:
        tags[ROLLING_TAG] = f"{bp.rolling_window(ppy, bars)} bars (rolling_sharpe, rolling_volatility: annualised)"
    if history is not None and history < bars:
        tags[HISTORY_TAG] = (
            f"resampled: {history:,} of {bars:,} bars "
            "(equity at each bucket's last bar, each bucket's deepest drawdown)"
        )
    return tags


def config_fingerprint(args, inputs: bd.Inputs, params: dict[str, str]) -> str:
    """The backtest's configuration for the trial ledger (tag backtest.config): the fingerprint
    without the run name, so the same data and params logged under another name are one trial."""
    return fingerprint_of(argparse.Namespace(**{**vars(args), "run_name": None}), inputs, params)


def fingerprint_of(args, inputs: bd.Inputs, params: dict[str, str]) -> str:
    """What defines the result: the data (sha256 of returns and benchmark, their columns, how they
    are read), the strategy params, periods per year, risk-free, the run name if given, QuantStats'
    version (all in `params`) and this fingerprint's own version. Not: tags, histories, tearsheet."""
    spec = {
        "v": FINGERPRINT_VERSION,
        "params": params,
        "run_name": args.run_name,
        "date_column": inputs.date_column,
        "percent": bool(args.percent),
        "benchmark_prices": bool(args.benchmark_prices),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]
