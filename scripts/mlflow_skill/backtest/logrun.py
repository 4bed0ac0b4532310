"""Logging one backtest job: find its run by fingerprint (already logged: write nothing) or create
it, then write it in an order that leaves a killed run visibly incomplete; interrupts and
failures end the run FAILED with what was written said.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow_skill.backtest import histories, runstore
from mlflow_skill.backtest import metrics as bm
from mlflow_skill.backtest import periods as bp
from mlflow_skill.backtest import runwriter as rw
from mlflow_skill.backtest.failure import Progress, failure
from mlflow_skill.backtest.job import BacktestJob
from mlflow_skill.backtest.params import BATCH_METRICS
from mlflow_skill.cli.frame import Context
from mlflow_skill.core.errors import SkillError
from mlflow_skill.core.formatting import json_safe, to_json
from mlflow_skill.store import lookups


def log_run(ctx: Context, job: BacktestJob) -> None:
    """Find this backtest's run (same fingerprint) or create it, and write it."""
    experiment = runstore.resolve_experiment(ctx.store, ctx.args, job.outcome)
    log_into(ctx, experiment, job)


def log_into(ctx: Context, experiment: dict, job: BacktestJob) -> None:
    """log_run once the experiment is known (a sweep logs each child this way)."""
    store, outcome = ctx.store, job.outcome
    outcome.experiment, outcome.experiment_id = experiment["name"], experiment["experiment_id"]
    fresh = job.args.force_new or job.new_parent  # a new sweep's children cannot exist yet
    existing = None if fresh else runstore.find_same(store, experiment["experiment_id"], job.fingerprint)
    if existing is not None and runstore.is_complete(existing):
        return runstore.report_existing(ctx.settings, outcome, existing)
    runstore.refuse_live_writer(existing)
    points = job_points(job)
    scalars = len(job.result.metrics) + len(job.params) + len(job.tags)
    progress = Progress(
        total=max(1, -(-scalars // BATCH_METRICS)) + -(-len(points) // BATCH_METRICS) + 2, points_total=len(points)
    )
    run = existing
    try:
        run = runstore.start_run(ctx, experiment, existing, job.identity(), outcome, job.notes)
        outcome.run_name = lookups.run_name(run) or outcome.run_name
        write_run(ctx, job, run, progress, points)
    except BaseException as exc:
        run = run or getattr(exc, "run", None)
        if run is None:
            raise
        if outcome.finished:  # complete: an interrupt now must not mark it FAILED
            if isinstance(exc, rw.Interrupted):
                raise SkillError(
                    f"interrupted by {exc.signame} after run {run['info']['run_id']} was FINISHED (complete)",
                    exit_code=exc.exit_code,
                ) from None
            raise
        raise failure(store, run, experiment["name"], exc, progress) from exc


def job_points(job: BacktestJob) -> list[dict]:
    """The history points to log: equity and drawdown, and (same bars) rolling Sharpe and
    volatility and the benchmark's equity curve."""
    if job.history is None:
        return []
    return histories.points(job.inputs, job.result.facts["drawdown_series"], job.ppy, job.history)


def write_run(ctx: Context, job: BacktestJob, run: dict, progress: Progress, points: list[dict]) -> None:
    """Order: (at creation: the incomplete tag) scalars+params+tags, histories, artifacts, then the
    incomplete tag removed, then FINISHED. Metric timestamps are the run's start so a re-run
    writes identical points, which MLflow stores once."""
    store, outcome = ctx.store, job.outcome
    run_id = run["info"]["run_id"]
    metric_list = runstore.scalar_points(run, job.result.metrics)
    outcome.requests["scalars"] = runstore.log_batches(store, run_id, metric_list, job.params, job.tags, progress)
    progress.scalars = True
    if points:
        runstore.set_tag(store, run_id, runstore.INCOMPLETE_TAG, f"missing: histories, artifacts {runstore.RERUN_HINT}")
        runstore.log_histories(store, run_id, points, progress)
        outcome.histories = histories.counts(points)
        outcome.requests["histories"] = -(-len(points) // BATCH_METRICS)
    runstore.set_tag(store, run_id, runstore.INCOMPLETE_TAG, f"missing: artifacts {runstore.RERUN_HINT}")
    outcome.artifacts = progress.artifacts = write_artifacts(ctx, job, run)
    progress.step()
    runstore.finish(store, run_id, outcome)
    progress.step()


def write_artifacts(ctx: Context, job: BacktestJob, run: dict) -> list[str]:
    """backtest/returns.csv, metrics.json, periods.json and (unless --no-tearsheet) tearsheet.html."""
    args, inputs = job.args, job.inputs
    with tempfile.TemporaryDirectory(prefix="log-backtest-") as tmp:
        folder = Path(tmp)
        files = [folder / "returns.csv", folder / "metrics.json", folder / bp.PERIODS_ARTIFACT]
        files[0].write_text(normalised_csv(inputs))
        periods = bp.periods_document(job.qs, bm.local_axis(inputs)[0], job.ppy)
        files[2].write_text(to_json(json_safe(periods)))
        files[1].write_text(to_json(metrics_document(job)))
        if not args.no_tearsheet:
            files.append(folder / "tearsheet.html")
            bm.write_tearsheet(job.qs, inputs, args.risk_free, job.ppy, job.outcome.run_name, files[-1])
        return runstore.upload_artifacts(ctx, run["info"].get("artifact_uri") or "", files)


def metrics_document(job: BacktestJob) -> dict:
    """backtest/metrics.json: every metric, the undefined ones, and what they were computed with."""
    return {
        "metrics": job.result.metrics,
        "undefined_metrics": job.result.undefined,
        "periods_per_year": job.ppy,
        "periods_per_year_how": job.periods[1],
        "risk_free": job.args.risk_free,
        "params": job.params,
        "notes": job.notes,
    }


def normalised_csv(inputs) -> str:
    frame = inputs.returns.to_frame("returns")
    if inputs.benchmark is not None:
        frame["benchmark"] = inputs.benchmark
    frame.index.name = "date"
    return frame.to_csv(float_format="%.12g", date_format="%Y-%m-%dT%H:%M:%S")
