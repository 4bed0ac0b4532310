"""Logging a sweep: the parent run first (incomplete until the end), each variant as a child run
under it (written by worker threads while the next variant is scored), then the parent's
ranking, picture and FINISHED. Re-running the same sweep writes nothing; an interrupted one is
completed, its finished children kept.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from mlflow_skill.backtest import runstore
from mlflow_skill.backtest import sweep as sw
from mlflow_skill.backtest.failure import Progress, failure
from mlflow_skill.backtest.logrun import log_into
from mlflow_skill.backtest.sweepjob import SweepJob, child_job, rank_children, score_children
from mlflow_skill.cli.frame import Context
from mlflow_skill.core.formatting import json_safe, to_json
from mlflow_skill.store.transport import HttpStore

SWEEP_WRITERS = 4  # children written at once over HTTP


def log_sweep(ctx: Context, job: SweepJob) -> None:
    """The parent run first (incomplete until the end), each child under it (complete children of
    an interrupted sweep are kept), then the parent's ranking, picture and FINISHED."""
    store, outcome = ctx.store, job.outcome
    experiment = runstore.resolve_experiment(store, ctx.args, outcome)
    outcome.experiment, outcome.experiment_id = experiment["name"], experiment["experiment_id"]
    existing = None if ctx.args.force_new else runstore.find_same(store, experiment["experiment_id"], job.fingerprint)
    if existing is not None and runstore.is_complete(existing):
        runstore.report_existing(ctx.settings, outcome, existing)
        score_children(job)  # the ranking, for the view; nothing is written
        return
    runstore.refuse_live_writer(existing)
    progress = Progress(total=len(job.sweep.variants) + 2, points_total=0)
    parent = existing
    try:
        parent = runstore.start_run(ctx, experiment, existing, job.identity(), outcome, job.notes)
        log_children(ctx, experiment, job, parent["info"]["run_id"], new_parent=existing is None, progress=progress)
        finish_sweep(ctx, job, parent, progress)
    except BaseException as exc:
        parent = parent or getattr(exc, "run", None)
        if parent is None or outcome.finished:
            raise
        raise failure(store, parent, experiment["name"], exc, progress) from exc


def log_children(
    ctx: Context, experiment: dict, job: SweepJob, parent_id: str, new_parent: bool, progress: Progress
) -> None:
    """Score each variant (here, CPU) while the ones before it are written (worker threads, waiting
    on the server): over HTTP the two overlap; in-process stores write one child at a time. An
    interrupt lets the children being written finish and starts no more; the parent ends FAILED."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=SWEEP_WRITERS if isinstance(ctx.store, HttpStore) else 1)
    futures = []
    try:
        for v in job.sweep.variants:
            child = child_job(job, v)
            child.tags[runstore.PARENT_TAG] = parent_id
            child.new_parent = new_parent
            job.children.append(child)
            futures.append(pool.submit(log_into, ctx, experiment, child))
            for future in [f for f in futures if f.done()]:
                future.result()  # a failed child stops the sweep now, not at the end
        for future in futures:
            future.result()
            progress.step()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    rank_children(job)


def finish_sweep(ctx: Context, job: SweepJob, parent: dict, progress: Progress) -> None:
    """The parent's metrics, params and tags, its artifacts (the ranking, the picture), FINISHED."""
    store, outcome = ctx.store, job.outcome
    run_id = parent["info"]["run_id"]
    metrics = runstore.scalar_points(parent, job.metrics)
    runstore.log_batches(store, run_id, metrics, job.params, job.tags, progress)
    progress.scalars = True
    with tempfile.TemporaryDirectory(prefix="log-backtest-sweep-") as tmp:
        folder = Path(tmp)
        files = [folder / "ranking.csv", folder / "ranking.json", folder / "equity.png"]
        files[0].write_text(sw.ranking_csv(job.rows))
        deflated = dataclasses.asdict(job.deflated_sharpe)
        files[1].write_text(to_json(json_safe({"ranking": job.rows, "deflated_sharpe": deflated})))
        sw.equity_png(job.sweep, job.rows, files[2], outcome.run_name)
        outcome.artifacts = progress.artifacts = runstore.upload_artifacts(
            ctx, parent["info"].get("artifact_uri") or "", files
        )
    runstore.finish(store, run_id, outcome)
    progress.step()
