"""promote_model.py's work: register a model version from a run, point an alias at a version,
remove an alias, delete a version (the undo of a registration). The gate (writes/gate.py) runs
before a version is registered or an alias is moved.

Looked up before every write: a version already registered from the run is reused, an alias
already on the version is left alone, a model that exists is not created again; after a request
whose answer was lost (a timeout, a dropped connection) the version is looked for before anything
is sent again. REST: registered-models/get|create|set-tag|alias (POST, DELETE), model-versions/
search|create|delete, logged-models/search (MLflow 3) and artifacts/list to find the run's model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mlflow_skill.core.errors import ConnectionFailure, NotFoundError, SkillError, UsageError
from mlflow_skill.registry import read as registry
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store
from mlflow_skill.writes.common import AUDIT_KEY, Change, send

RM, MV = registry.RM, registry.MV
MODEL_FILE = "MLmodel"
DIRS_SCANNED = 10  # top-level artifact folders looked into for an MLmodel file


@dataclass
class Source:
    """Where a new version's files are, and how that was decided."""

    uri: str
    how: str
    model_id: str | None = None  # an MLflow 3 logged model


@dataclass
class Outcome:
    """What a promotion did: changes, undo commands (argv, newest first), the version it is about."""

    changes: list[Change] = field(default_factory=list)
    undo: list[list[str]] = field(default_factory=list)
    version: dict | None = None
    source: Source | None = None


def get_model(store: Store, name: str) -> dict | None:
    try:
        return store.get(f"{RM}/get", {"name": name}, what=f"model {name!r}", expect="registered_model")[
            "registered_model"
        ]
    except NotFoundError:
        return None


def versions_from_run(store: Store, name: str, run_id: str) -> list[dict]:
    """The model's versions registered from this run, newest first."""
    body = {
        "filter": f"name = {registry.quote_value(name)} AND run_id = '{run_id}'",
        "order_by": ["version_number DESC"],
    }
    return list(lookups.paged(store, f"{MV}/search", body, "model_versions", 50, 50, method="GET"))


def model_source(store: Store, run: dict) -> Source:
    """The run's model when it has one (an MLflow 3 logged model, the mlflow.log-model.history tag,
    or a folder holding an MLmodel file), else the run's artifact root."""
    info = run["info"]
    root = info["artifact_uri"].rstrip("/")
    logged = logged_model(store, info)
    if logged is not None:
        return logged
    history = lookups.run_tags(run).get("mlflow.log-model.history")
    if history:
        try:
            path = json.loads(history)[-1]["artifact_path"]
            return Source(f"{root}/{path}", f"the model artifact {path}/, named by the tag mlflow.log-model.history")
        except (ValueError, LookupError, TypeError):
            pass  # an unreadable tag: look at the files instead
    try:
        files = artifact_list(store, info["run_id"], None)
        if any(f["path"] == MODEL_FILE for f in files):
            return Source(root, "the run's artifact root, which holds an MLmodel file")
        for folder in [f["path"] for f in files if f.get("is_dir")][:DIRS_SCANNED]:
            if any(f["path"].endswith("/" + MODEL_FILE) for f in artifact_list(store, info["run_id"], folder)):
                return Source(f"{root}/{folder}", f"the model artifact {folder}/, which holds an MLmodel file")
    except (NotFoundError, ConnectionFailure):
        return Source(root, "the run's artifact root: its artifacts could not be listed to find a model")
    return Source(root, "the run's artifact root: the run logged no model")


def artifact_list(store: Store, run_id: str, path: str | None) -> list[dict]:
    params = {"run_id": run_id, **({"path": path} if path else {})}
    return store.get(f"{lookups.API}/artifacts/list", params, what="listing artifacts").get("files", []) or []


def logged_model(store: Store, info: dict) -> Source | None:
    """The newest MLflow 3 logged model whose source run is this one (servers before 3 have none)."""
    body = {"experiment_ids": [info["experiment_id"]], "filter": f"source_run_id = '{info['run_id']}'"}
    try:
        models = store.post(f"{lookups.API}/logged-models/search", body, what="searching logged models").get(
            "models", []
        )
    except (NotFoundError, UsageError):
        return None
    models = [m.get("info", {}) for m in models or [] if m.get("info", {}).get("artifact_uri")]
    if not models:
        return None
    newest = max(models, key=lambda m: int(m.get("creation_timestamp_ms") or 0))
    label = f"{newest.get('name')} " if newest.get("name") else ""
    return Source(newest["artifact_uri"], f"the run's logged model {label}{newest['model_id']}", newest["model_id"])


def ensure_model(store: Store, name: str, audit: str, outcome: Outcome) -> None:
    """The registered model, created when missing (and looked for again when the create failed)."""
    if get_model(store, name) is not None:
        return
    body = {"name": name, "tags": [{"key": AUDIT_KEY, "value": audit}]}
    try:
        store.post(f"{RM}/create", body, what=f"creating registered model {name!r}")
    except (UsageError, ConnectionFailure) as exc:  # created meanwhile, or our answer was lost
        if get_model(store, name) is None:
            raise exc
        if isinstance(exc, UsageError):
            return
    outcome.changes.append(Change(name, f"model {name}", "registered model", None, "created", True))


def register(store: Store, name: str, run: dict, audit: str, outcome: Outcome) -> dict:
    """A version of `name` from `run`: the existing one, or a new one."""
    run_id = run["info"]["run_id"]
    label = f"model {name}"
    existing = versions_from_run(store, name, run_id) if get_model(store, name) is not None else []
    if existing:
        version = existing[0]
        outcome.changes.append(
            Change(name, label, f"version from run {run_id}", f"v{version['version']}", f"v{version['version']}", False)
        )
        return version
    ensure_model(store, name, audit, outcome)
    source = outcome.source = model_source(store, run)
    body = {"name": name, "source": source.uri, "run_id": run_id, "tags": [{"key": AUDIT_KEY, "value": audit}]}
    if source.model_id:
        body["model_id"] = source.model_id
    try:
        version = store.post(f"{MV}/create", body, what=f"registering a version of {name!r}", expect="model_version")[
            "model_version"
        ]
    except ConnectionFailure:  # the answer was lost: the version may exist; never register it twice
        found = versions_from_run(store, name, run_id)
        if not found:
            raise
        version = found[0]
    outcome.changes.append(Change(name, label, f"version from run {run_id}", None, f"v{version['version']}", True))
    outcome.undo.insert(0, ["--model", name, "--version", str(version["version"]), "--delete-version"])
    return version


def set_alias(store: Store, name: str, alias: str, version: str, audit: str, outcome: Outcome) -> None:
    model = get_model(store, name)
    if model is None:
        raise NotFoundError(
            f"no registered model named {name!r} (list them: uv run scripts/query_experiments.py models)"
        )
    before = registry.alias_map(model).get(alias)
    written = before != version
    outcome.changes.append(
        Change(name, f"model {name}", f"alias {alias}", before and f"v{before}", f"v{version}", written)
    )
    if not written:
        return
    store.post(f"{RM}/alias", {"name": name, "alias": alias, "version": version}, what=f"setting alias {alias!r}")
    tag_model(store, name, f"{audit}; alias {alias} v{before or '-'} -> v{version}")
    back = ["--version", before, "--alias", alias] if before else ["--unset-alias", alias]
    outcome.undo.insert(0, ["--model", name, *back])


def unset_alias(store: Store, name: str, alias: str, audit: str, outcome: Outcome) -> None:
    model = get_model(store, name)
    if model is None:
        raise NotFoundError(
            f"no registered model named {name!r} (list them: uv run scripts/query_experiments.py models)"
        )
    before = registry.alias_map(model).get(alias)
    outcome.changes.append(Change(name, f"model {name}", f"alias {alias}", before and f"v{before}", None, bool(before)))
    if not before:
        return
    send(store, "DELETE", f"{RM}/alias", {"name": name, "alias": alias}, what=f"removing alias {alias!r}")
    tag_model(store, name, f"{audit}; alias {alias} v{before} -> -")
    outcome.undo.insert(0, ["--model", name, "--version", before, "--alias", alias])


def delete_version(store: Store, name: str, version: str, audit: str, outcome: Outcome) -> None:
    """Delete one version (MLflow keeps no deleted versions: the undo registers the run again)."""
    model = get_model(store, name)
    try:
        mv = registry.get_version(store, model, version) if model is not None else None
    except NotFoundError:
        mv = None
    if mv is None:
        outcome.changes.append(Change(name, f"model {name}", f"version {version}", None, None, False))
        return
    held = sorted(a for a, v in registry.alias_map(model).items() if v == str(version))
    if held:
        raise UsageError(
            f"version {version} of {name!r} holds the alias{'es' * (len(held) > 1)} {', '.join(held)}: move or "
            f"remove {'them' if len(held) > 1 else 'it'} first (--unset-alias {held[0]})"
        )
    send(store, "DELETE", f"{MV}/delete", {"name": name, "version": str(version)}, what=f"deleting {name} v{version}")
    tag_model(store, name, f"{audit}; deleted v{version}")
    outcome.changes.append(Change(name, f"model {name}", f"version {version}", f"v{version}", "deleted", True))
    if mv.get("run_id"):
        outcome.undo.insert(0, ["--run-id", mv["run_id"], "--model", name])


def tag_model(store: Store, name: str, value: str) -> None:
    store.post(f"{RM}/set-tag", {"name": name, "key": AUDIT_KEY, "value": value[:5000]}, what="audit tag")


def version_run(store: Store, name: str, version: str) -> tuple[dict, dict | None]:
    """(model version, its source run or None) for --model NAME --version N."""
    model = get_model(store, name)
    if model is None:
        raise NotFoundError(
            f"no registered model named {name!r} (list them: uv run scripts/query_experiments.py models)"
        )
    mv = registry.get_version(store, model, version)
    run = None
    if mv.get("run_id"):
        try:
            run = lookups.get_run(store, mv["run_id"])
        except SkillError as exc:
            raise NotFoundError(
                f"version {version} of {name!r} names run {mv['run_id']}, which cannot be read ({exc}): "
                "the gate cannot check it"
            ) from None
    return mv, run
