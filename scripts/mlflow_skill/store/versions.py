"""The tracking server's MLflow version, asked only when an endpoint is missing, and the one line
that names it and the feature an older server lacks (exit 9).

MLflow's server answers `GET /version` with its version as plain text (2.x and 3.x alike). The
read path (experiments, runs, metrics, artifacts, the registry) is MLflow's 2.0 REST API, which
MLflow 2 servers answer; the GenAI trace features use the 3.0 API, which they do not.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mlflow_skill.core.errors import ServerTooOld, SkillError

if TYPE_CHECKING:
    from mlflow_skill.store.transport import Store

MLFLOW_3_FEATURES = (  # endpoint (path contains) -> the feature, as the docs call it; all need MLflow 3
    ("/api/3.0/mlflow/traces/metrics", "trace metrics"),
    ("/assessments", "assessments (feedback and expectations on traces)"),
    ("/api/3.0/mlflow/traces", "traces (MLflow 3's trace API: search, read, sessions)"),
)
VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)(\.\d+)?\S*\s*$")


_VERSIONS: dict[str, str | None] = {}  # tracking URI -> the version its server reported (None: did not say)


def server_version(store: Store) -> str | None:
    """The server's MLflow version from GET /version, asked once per URI; None if it does not say."""
    uri = store.settings.tracking_uri
    if uri not in _VERSIONS:
        version = None
        try:
            status, payload = store._request("GET", "/version", None, None)
            if status == 200 and isinstance(payload, str) and VERSION_RE.match(payload):
                version = payload.strip()
        except SkillError:
            pass
        _VERSIONS[uri] = version
    return _VERSIONS[uri]


def too_old_error(store: Store, path: str, status: int) -> ServerTooOld | None:
    """For a missing MLflow 3 endpoint on a server that says it runs MLflow 2 (or older): the
    error naming both. None where that is not the case (the caller's own message then applies)."""
    feature = next((name for prefix, name in MLFLOW_3_FEATURES if prefix in path), None)
    if feature is None or not path.startswith("/api/3.0/"):
        return None
    version = server_version(store)
    match = VERSION_RE.match(version or "")
    if match is None or int(match.group(1)) >= 3:
        return None
    return ServerTooOld(
        f"{store.settings.display_uri} runs MLflow {version}, which lacks {feature}, an MLflow 3 feature "
        f"({path} answered {status}): upgrade the tracking server to MLflow 3; the commands that read runs, "
        "metrics, artifacts and models work with MLflow 2"
    )
