"""Logging a sweep: the parent run first (incomplete until the end), each variant as a child run
under it (written by worker threads while the next variant is scored), then the parent's
ranking, picture and FINISHED. Re-running the same sweep writes nothing; an interrupted one is
completed, its finished children kept.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow_skill.backtest import overfitting as of
from mlflow_skill.backtest import runstore
from mlflow_skill.backtest import sweep as sw
from mlflow_skill.backtest.failure import Progress, failure
from mlflow_skill.backtest.logrun import log_into
from mlflow_skill.backtest.sweepjob import SweepJob, child_job, rank_children, score_children
from mlflow_skill.cli.frame import Context
from mlflow_skill.core.formatting import json_safe, to_json
from mlflow_skill.quant import ledger as ql
from mlflow_skill.runs import ledger as rl
from mlflow_skill.runs.ledger import parse_scope
from mlflow_skill.store.transport import API, HttpStore

SWEEP_WRITERS = 4  # children written at once over HTTP


def log_sweep(ctx: Context, job: SweepJob) -> None:
    """The parent run first (incomplete until the end), each child under it (complete children of
    an interrupted sweep are kept), then the parent's ranking, picture and FINISHED."""
    store, outcome = ctx.store, job.outcome
    scope = LedgerScope.of(ctx)  # a misnamed --ledger experiment is refused before anything is written
    experiment = runstore.resolve_experiment(store, ctx.args, outcome)
    outcome.experiment, outcome.experiment_id = experiment["name"], experiment["experiment_id"]
    existing = None if ctx.args.force_new else runstore.find_same(store, experiment["experiment_id"], job.fingerprint)
    if existing is not None and runstore.is_complete(existing):
        runstore.report_existing(ctx.settings, outcome, existing)
        score_children(job)  # the ranking, for the view; nothing is written
        rank_children(job, scope.ledger(ctx, job, experiment, existing["info"]["run_id"], logged=False))
        return
    runstore.refuse_live_writer(existing)
    progress = Progress(total=len(job.sweep.variants) + 3, points_total=0)
    parent = existing
    try:
        parent = runstore.start_run(ctx, experiment, existing, job.identity(), outcome, job.notes)
        parent_id = parent["info"]["run_id"]
        log_children(ctx, experiment, job, parent_id, new_parent=existing is None, progress=progress)
        rank_children(job, scope.ledger(ctx, job, experiment, parent_id))
        log_deflated(ctx, job)
        progress.step()
        finish_sweep(ctx, job, parent, progress)
    except BaseException as exc:
        parent = parent or getattr(exc, "run", None)
        if parent is None or outcome.finished:
            raise
        raise failure(store, parent, experiment["name"], exc, progress) from exc


@dataclass(frozen=True)
class LedgerScope:
    """The research question whose trials a sweep is deflated against (--ledger): this sweep, its
    experiment (default), or more experiments as well."""

    kind: str
    experiment_ids: tuple[str, ...] = ()
    words: str = ""

    @classmethod
    def of(cls, ctx: Context) -> LedgerScope:
        scope = parse_scope(ctx.args.ledger)
        if scope.kind != "experiments":
            return cls(scope.kind)
        ids, words = rl.experiment_ids(ctx.store, scope.refs)
        return cls(scope.kind, tuple(ids), words)

    def ledger(self, ctx: Context, job: SweepJob, experiment: dict, parent_id: str, logged: bool = True) -> ql.Ledger:
        """Every trial of the question in the store, and this sweep's own variants (just logged: in
        case the store's search does not show them yet; found already logged: the store's alone)."""
        exp_id = experiment["experiment_id"]
        own = of.own_entries(job.children, exp_id) if logged else []
        if self.kind == "sweep":
            return ql.build(f"this sweep ({parent_id})", rl.read_entries(ctx.store, [exp_id], parent_id) + own)
        ids = list(dict.fromkeys([exp_id, *self.experiment_ids]))
        words = f"experiment {experiment['name']!r}" + (f" and {self.words}" if self.experiment_ids else "")
        return ql.build(words, rl.read_entries(ctx.store, ids) + own)


def log_deflated(ctx: Context, job: SweepJob) -> None:
    """Each child's `dsr` against the ledger, known once every variant is scored and the ledger
    read; stamped now, so a completed sweep's newer figure is the run's latest value."""
    from concurrent.futures import ThreadPoolExecutor

    now = int(time.time() * 1000)
    dsr = {row["variant"]: row["dsr"] for row in job.rows}
    batches = [
        {"run_id": child.outcome.run_id, "metrics": [{"key": "dsr", "value": value, "timestamp": now, "step": 0}]}
        for child in job.children
        if child.outcome.run_id and (value := dsr.get(child.params["variant"])) is not None and math.isfinite(value)
    ]
    workers = SWEEP_WRITERS if isinstance(ctx.store, HttpStore) else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(lambda body: ctx.store.post(f"{API}/runs/log-batch", body, what="logging dsr"), batches):
            del done


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


def finish_sweep(ctx: Context, job: SweepJob, parent: dict, progress: Progress) -> None:
    """The parent's metrics, params and tags, its artifacts (the ranking, the picture), FINISHED."""
    store, outcome = ctx.store, job.outcome
    run_id = parent["info"]["run_id"]
    metrics = runstore.scalar_points(parent, job.metrics)
    runstore.log_batches(store, run_id, metrics, job.params, job.tags, progress)
    progress.scalars = True
    with tempfile.TemporaryDirectory(prefix="log-backtest-sweep-") as tmp:
        folder = Path(tmp)
        files = [folder / "ranking.csv", folder / "ranking.json", folder / "equity.png", folder / of.CERTIFICATE]
        files[0].write_text(sw.ranking_csv(job.rows))
        deflated = dataclasses.asdict(job.deflated_sharpe)
        pbo = job.overfitting.as_dict()
        files[1].write_text(to_json(json_safe({"ranking": job.rows, "deflated_sharpe": deflated, "pbo": pbo})))
        sw.equity_png(job.sweep, job.rows, files[2], outcome.run_name)
        files[3].write_text(to_json(json_safe(of.certificate(job))))
        outcome.artifacts = progress.artifacts = runstore.upload_artifacts(
            ctx, parent["info"].get("artifact_uri") or "", files
        )
    runstore.finish(store, run_id, outcome)
    progress.step()
