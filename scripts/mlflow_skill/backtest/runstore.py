"""A backtest's run on the tracking server: the experiment, the run found by its fingerprint (or,
when runs/create's answer was lost, by its request id), created or reopened, and the writes that
fill it (log-batch, histories, artifacts, tags, FINISHED). Used for one backtest and for a
sweep's parent and children alike.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

from mlflow_skill.backtest import runwriter as rw
from mlflow_skill.backtest.outcome import Action, Previous, RunIdentity, RunOutcome, Status
from mlflow_skill.backtest.params import BATCH_METRICS, BATCH_PARAMS_TAGS, MAX_TAG_VALUE
from mlflow_skill.cli.frame import Context
from mlflow_skill.core.config import Settings
from mlflow_skill.core.errors import EXIT_BUSY, ConnectionFailure, NotFoundError, ServerError, SkillError
from mlflow_skill.store import lookups, objectstore
from mlflow_skill.store.database import quiet_mlflow_logging
from mlflow_skill.store.transport import HttpStore, RequestUnanswered, Store

ARTIFACT_DIR = "backtest"
ERROR_TAG = "backtest.error"
FINGERPRINT_TAG = "backtest.fingerprint"  # what defines the result: the same value means the same backtest
REQUEST_TAG = "backtest.request_id"  # set at runs/create: finds the run when the create's answer is lost
INCOMPLETE_TAG = "backtest.incomplete"  # set at creation, removed just before FINISHED: what is missing
PARENT_TAG = "mlflow.parentRunId"  # a sweep's children, under their parent in MLflow's UI
RERUN_HINT = "(re-run the same log_backtest.py command to complete it)"


# ---------------------------------------------------------------------------------------------
# Finding, creating and reopening the run
# ---------------------------------------------------------------------------------------------
def resolve_experiment(store: Store, args, outcome: RunOutcome) -> dict:
    """The experiment by its exact name. A missing one whose name is close to an existing one is
    refused (exit 3) with the candidates unless --create-experiment; any creation is reported."""
    name = args.experiment.strip()
    if name and lookups._experiment_by_name(store, name) is None and not args.create_experiment:
        near = lookups.near_experiment_names(store, name)
        if near:
            listed = ", ".join(
                repr(e["name"]) + (" (deleted)" if e.get("lifecycle_stage") == "deleted" else "") for e in near
            )
            raise NotFoundError(
                f"no experiment named {name!r}; close names exist: {listed}: pass --experiment with the one you mean, "
                f"or add --create-experiment to create {name!r}"
            )
    experiment, status = lookups.ensure_experiment(store, name)
    experiment.pop("_unapplied", None)
    outcome.experiment_status = status
    return experiment


def find_same(store: Store, experiment_id: str, fp: str) -> dict | None:
    """This backtest's run: the newest complete FINISHED one, else the newest other (to complete)."""
    body = {
        "experiment_ids": [experiment_id],
        "filter": f"tags.`{FINGERPRINT_TAG}` = '{fp}'",
        "run_view_type": "ACTIVE_ONLY",
        "order_by": ["attributes.start_time DESC"],
    }
    runs = list(lookups.paged(store, f"{lookups.API}/runs/search", body, "runs", limit=50))
    complete = [r for r in runs if is_complete(r)]
    return (complete or runs or [None])[0]


def is_complete(run: dict) -> bool:
    return run["info"].get("status") == "FINISHED" and INCOMPLETE_TAG not in lookups.run_tags(run)


def refuse_live_writer(existing: dict | None) -> None:
    if existing is not None and existing["info"]["status"] == "RUNNING" and rw.writer_alive(existing):
        raise SkillError(
            f"run {existing['info']['run_id']} with the same fingerprint is being logged right now "
            f"({lookups.run_tags(existing).get(rw.WRITER_TAG, 'another process')}): wait for it to finish and re-run, "
            "or pass --force-new to log a separate run",
            exit_code=EXIT_BUSY,
        )


def report_existing(settings: Settings, outcome: RunOutcome, run: dict) -> None:
    """Already logged: report the run, write nothing."""
    info = run["info"]
    outcome.action = Action.ALREADY_LOGGED
    outcome.run_id, outcome.run_name, outcome.status = info["run_id"], lookups.run_name(run), Status(info["status"])
    outcome.url = lookups.run_url(settings, outcome.experiment_id, info["run_id"])
    outcome.histories, outcome.artifacts = {}, []


def find_by_request(store: Store, experiment_id: str, request_id: str, wait_s: float) -> dict | None:
    """The run a lost runs/create made, by its request id; polls up to wait_s for a slow create."""
    body = {
        "experiment_ids": [experiment_id],
        "filter": f"tags.`{REQUEST_TAG}` = '{request_id}'",
        "run_view_type": "ALL",
    }
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(ConnectionFailure, ServerError):
            runs = store.post(f"{lookups.API}/runs/search", body, what="finding the created run").get("runs") or []
            if runs:
                return runs[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def missing_note(identity: RunIdentity) -> str:
    missing = ["metrics", "params", *(["histories"] if identity.histories else []), "artifacts"]
    return "missing: " + ", ".join(missing) + " " + RERUN_HINT


def creation_tags(identity: RunIdentity, request_id: str) -> dict[str, str]:
    return {
        INCOMPLETE_TAG: missing_note(identity),
        FINGERPRINT_TAG: identity.fingerprint,
        REQUEST_TAG: request_id,
        rw.WRITER_TAG: rw.writer_id(),
        **identity.tags,
    }


def create_run(store: Store, experiment: dict, identity: RunIdentity, outcome: RunOutcome, notes: list[str]) -> dict:
    """runs/create is sent once. When its answer is lost (timeout, 502/504, dropped connection),
    the run it may have made is found by the request id tag and used, never created twice."""
    import uuid

    exp_id = experiment["experiment_id"]
    request_id = uuid.uuid4().hex
    tags = creation_tags(identity, request_id)
    body = {
        "experiment_id": exp_id,
        "run_name": identity.run_name,
        "start_time": int(time.time() * 1000),
        "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
    }
    outcome.action = Action.CREATED
    try:
        return store.post(f"{lookups.API}/runs/create", body, what="creating a run")["run"]
    except RequestUnanswered as exc:
        wait_s = max(5.0, 2 * store.settings.timeout)
        run = find_by_request(store, exp_id, request_id, wait_s)
        if run is None:
            raise ConnectionFailure(
                f"{exc}. No run with tag {REQUEST_TAG}={request_id} appeared in experiment {experiment['name']!r} "
                f"within {wait_s:g}s; if the server still creates it, it stays RUNNING and tagged {INCOMPLETE_TAG}: "
                "re-run the same command to complete it (it finds the run by its fingerprint), or see it with "
                f"`uv run scripts/query_experiments.py failed --experiment {lookups.shlex_quote(experiment['name'])}`"
            ) from exc
        notes.append(
            f"the answer to runs/create was lost ({exc.path}); "
            "continued with the run it created, found by its request id"
        )
        return run
    except rw.Interrupted as exc:
        exc.run = find_by_request(store, exp_id, request_id, 0)
        raise


def reopen(store: Store, run: dict, identity: RunIdentity, outcome: RunOutcome) -> dict:
    """Continue a FAILED, KILLED or abandoned RUNNING run with the same fingerprint: mark it
    incomplete and RUNNING again; the writes then log everything (MLflow skips identical metric
    points and params), and FINISHED comes last."""
    info, tags = run["info"], lookups.run_tags(run)
    outcome.action = Action.COMPLETED
    outcome.previous = Previous(info["status"], tags.get(ERROR_TAG), tags.get(INCOMPLETE_TAG))
    set_tag(store, info["run_id"], INCOMPLETE_TAG, missing_note(identity))
    set_tag(store, info["run_id"], rw.WRITER_TAG, rw.writer_id())
    delete_tag(store, info["run_id"], ERROR_TAG)
    if info["status"] != "RUNNING":
        store.post(
            f"{lookups.API}/runs/update", {"run_id": info["run_id"], "status": "RUNNING"}, what="reopening the run"
        )
    return run


def start_run(
    ctx: Context, experiment: dict, existing: dict | None, identity: RunIdentity, outcome: RunOutcome, notes: list[str]
) -> dict:
    """The run to write: `existing` reopened, or a new one; the outcome says which, RUNNING."""
    root = (existing or {}).get("info", {}).get("artifact_uri") or experiment.get("artifact_location")
    where = f"experiment {experiment.get('name')!r}"
    objectstore.require_driver(root, "log_backtest.py", where, "no run was started")  # before any run is touched
    if existing is not None:
        run = reopen(ctx.store, existing, identity, outcome)
    else:
        run = create_run(ctx.store, experiment, identity, outcome, notes)
    outcome.run_id, outcome.status = run["info"]["run_id"], Status.RUNNING
    outcome.url = lookups.run_url(ctx.settings, experiment["experiment_id"], outcome.run_id)
    return run


# ---------------------------------------------------------------------------------------------
# Writing into the run
# ---------------------------------------------------------------------------------------------
def set_tag(store: Store, run_id: str, key: str, value: str) -> None:
    store.post(
        f"{lookups.API}/runs/set-tag",
        {"run_id": run_id, "key": key, "value": value[:MAX_TAG_VALUE]},
        what=f"setting tag {key}",
    )


def delete_tag(store: Store, run_id: str, key: str) -> None:
    with contextlib.suppress(NotFoundError):  # absent already: nothing to do
        store.post(f"{lookups.API}/runs/delete-tag", {"run_id": run_id, "key": key}, what=f"deleting tag {key}")


def log_batches(store: Store, run_id: str, metrics: list[dict], params: dict, tags: dict, progress=None) -> int:
    """Scalar metrics, params and tags in as few log-batch requests as MLflow's limits allow
    (two for up to 1000 entities with <= 200 params and tags). Returns the request count."""
    plist = [{"key": k, "value": str(v)} for k, v in params.items()]
    tlist = [{"key": k, "value": str(v)} for k, v in tags.items()]
    requests_made = 0
    while metrics or plist or tlist:
        p, plist = plist[:BATCH_PARAMS_TAGS], plist[BATCH_PARAMS_TAGS:]
        t, tlist = tlist[:BATCH_PARAMS_TAGS], tlist[BATCH_PARAMS_TAGS:]
        room = BATCH_METRICS - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        store.post(
            f"{lookups.API}/runs/log-batch",
            {"run_id": run_id, "metrics": m, "params": p, "tags": t},
            what="logging metrics",
        )
        requests_made += 1
        if progress is not None:
            progress.step()
    return requests_made


def scalar_points(run: dict, metrics: dict[str, float]) -> list[dict]:
    """Scalar metrics stamped with the run's start, so a re-run writes identical points (stored once)."""
    start_ms = int(run["info"].get("start_time") or time.time() * 1000)
    return [{"key": k, "value": v, "timestamp": start_ms, "step": 0} for k, v in metrics.items()]


def log_histories(store: Store, run_id: str, points: list[dict], progress=None) -> int:
    for start in range(0, len(points), BATCH_METRICS):
        batch = points[start : start + BATCH_METRICS]
        store.post(f"{lookups.API}/runs/log-batch", {"run_id": run_id, "metrics": batch}, what="logging histories")
        if progress is not None:
            progress.points += len(batch)
            progress.step()
    return len(points)


def upload_artifacts(ctx: Context, artifact_uri: str, files: list[Path]) -> list[str]:
    """Proxied artifacts (mlflow-artifacts:) go over HTTP PUT like MLflow's HttpArtifactRepository;
    anything else (local paths, s3, ...) through MLflow's own artifact repository."""
    from urllib.parse import quote, urlsplit

    done = []
    store = ctx.store
    if artifact_uri.startswith("mlflow-artifacts:") and isinstance(store, HttpStore):
        path = urlsplit(artifact_uri).path
        base = "/api/2.0/mlflow-artifacts/artifacts/" + path.strip("/")
        for file in files:
            store.put_file(re.sub(r"//+", "/", f"{base}/{ARTIFACT_DIR}/{quote(file.name)}"), file)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
        return done
    with quiet_mlflow_logging():
        from mlflow.store.artifact.artifact_repository_registry import (
            get_artifact_repository,
        )

        # mlflow-artifacts: URIs resolve against the tracking server
        repo = get_artifact_repository(
            artifact_uri, tracking_uri=ctx.settings.tracking_uri if ctx.settings.is_http else None
        )
        for file in files:
            repo.log_artifact(str(file), ARTIFACT_DIR)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
    return done


def finish(store: Store, run_id: str, outcome: RunOutcome) -> None:
    """The last writes: the incomplete tag removed, then FINISHED."""
    delete_tag(store, run_id, INCOMPLETE_TAG)
    store.post(
        f"{lookups.API}/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
    )
    outcome.status = Status.FINISHED
