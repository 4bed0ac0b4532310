"""Artifact roots in an object store (s3://, gs://, wasbs://, abfss://) that the tracking server does
not proxy: MLflow's clients read and write them directly, with the store's client library and the
credentials of the environment (AWS_* and MLFLOW_S3_ENDPOINT_URL for S3, read by boto3 and MLflow).

The scripts' environments carry no object-store library: a write that needs one is refused before
any run is created, naming the command that adds it (`uv run --with boto3 scripts/...`), as for
database drivers. A listing the server cannot make (it has no credentials for the bucket) is made
here, with the same library, like MLflow's own client does.
"""

from __future__ import annotations

from mlflow_skill.core.errors import ServerError, SkillError, UsageError
from mlflow_skill.core.secrets import scrub
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

OBJECT_STORES = {  # URI scheme -> (the store, the module MLflow imports for it, the package that provides it)
    "s3": ("S3", "boto3", "boto3"),
    "gs": ("Google Cloud Storage", "google.cloud.storage", "google-cloud-storage"),
    "wasbs": ("Azure Blob Storage", "azure.storage.blob", "azure-storage-blob"),
    "abfss": ("Azure Data Lake Storage", "azure.storage.filedatalake", "azure-storage-file-datalake"),
}


def object_store(artifact_uri: str | None) -> tuple[str, str, str] | None:
    scheme = (artifact_uri or "").split(":", 1)[0].lower()
    return OBJECT_STORES.get(scheme) if "://" in (artifact_uri or "") else None


def missing_driver(artifact_uri: str | None) -> str | None:
    """The package to add when `artifact_uri` is an object store whose library is not installed."""
    store = object_store(artifact_uri)
    if store is None:
        return None
    import importlib.util

    try:
        found = importlib.util.find_spec(store[1]) is not None
    except ModuleNotFoundError:  # a parent package (google.cloud) is missing
        found = False
    return None if found else store[2]


def require_driver(artifact_uri: str | None, script: str, what: str, outcome: str) -> None:
    """Refuse (exit 2) before anything is written when the artifacts go to an object store this
    environment cannot reach."""
    package = missing_driver(artifact_uri)
    if package is not None:
        name = object_store(artifact_uri)[0]
        raise UsageError(
            f"{what} keeps its artifacts in {name} ({artifact_uri}), which the server does not proxy: this "
            f"script's environment lacks {package}, so {outcome}: run it as "
            f"`uv run --with {package} scripts/{script} ...` with the store's credentials in the environment, or "
            "serve artifacts through the server (`mlflow server --artifacts-destination ...`)"
        )


def list_run_artifacts(store: Store, run_id: str, path: str | None = None) -> dict:
    """GET artifacts/list as the server answers it; when the server fails to list an object-store
    root it does not proxy, the same listing made here with the store's library."""
    params = {"run_id": run_id, **({"path": path} if path else {})}
    try:
        return store.get(f"{lookups.API}/artifacts/list", params)
    except ServerError as exc:
        run = lookups.get_run(store, run_id)
        root = run["info"].get("artifact_uri")
        if object_store(root) is None:
            raise
        require_driver(
            root, "query_experiments.py", f"run {run_id}", "the server cannot list them and nor can this script"
        )
        return list_here(root, path, exc)


def list_here(root: str, path: str | None, server_error: SkillError) -> dict:
    from mlflow_skill.store.database import quiet_mlflow_logging

    with quiet_mlflow_logging():
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            entries = get_artifact_repository(root).list_artifacts(path)
        except Exception as exc:
            raise ServerError(
                f"the server could not list {root} ({server_error}), nor could this script "
                f"({type(exc).__name__}: {' '.join(scrub(str(exc)).split())[:200]}): check the store's credentials "
                "and endpoint in the environment (AWS_* and MLFLOW_S3_ENDPOINT_URL for S3)"
            ) from None
    files = [{"path": e.path, "is_dir": e.is_dir, **({} if e.is_dir else {"file_size": e.file_size})} for e in entries]
    return {"root_uri": root, "files": files}
