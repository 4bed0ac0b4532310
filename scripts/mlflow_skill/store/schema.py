"""The shape of every answer the skill reads, checked at the store boundary: a server that sends
`{"experiments": "not-a-list"}` or a run without its id gets exit 6 ("JSON of another shape")
here, instead of a KeyError deep inside a command (exit 1, "a bug").

Only what the code relies on is checked: the containers it iterates, the fields it indexes, and
that ids are single tokens (an id is printed raw in headers and commands, so one holding a
newline could forge a line). Fields MLflow may omit stay optional; extra fields are ignored.

A spec is a kind (ID, TEXT, NUM, BOOL, OBJ, ANY), a dict of fields (a name ending in "?" is
optional) or a one-item list (a list of such items).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ID, TEXT, NUM, BOOL, OBJ, ANY = "an id", "a string", "a number", "true or false", "an object", "anything"

_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]{1,512}")

KV = {"key": TEXT, "value?": ANY}
METRIC = {"key": TEXT, "value?": NUM, "step?": NUM, "timestamp?": NUM, "run_id?": ID}
EXPERIMENT = {"experiment_id": ID, "name": TEXT, "lifecycle_stage?": ID, "tags?": [KV], "artifact_location?": TEXT}
RUN = {
    "info": {
        "run_id": ID,
        "experiment_id": ID,
        "status?": ID,
        "lifecycle_stage?": ID,
        "run_name?": TEXT,
        "user_id?": TEXT,
        "start_time?": NUM,
        "end_time?": NUM,
        "artifact_uri?": TEXT,
    },
    "data?": {"metrics?": [METRIC], "params?": [KV], "tags?": [KV]},
    "inputs?": {"dataset_inputs?": [{"dataset?": OBJ, "tags?": [KV]}]},
    "outputs?": OBJ,
}
MODEL_VERSION = {"name": TEXT, "version": ID, "run_id?": TEXT, "source?": TEXT, "aliases?": [TEXT], "tags?": [KV]}
MODEL = {
    "name": TEXT,
    "latest_versions?": [MODEL_VERSION],
    "aliases?": [{"alias": TEXT, "version": ID}],
    "tags?": [KV],
}
TRACE_INFO = {
    "trace_id?": ID,
    "request_id?": ID,
    "trace_metadata?": OBJ,
    "tags?": OBJ,
    "trace_location?": {"mlflow_experiment?": OBJ},
    "assessments?": [OBJ],
}
PAGE = {"next_page_token?": TEXT}

SCHEMAS: dict[str, dict] = {  # path after /api/2.0/mlflow or /api/3.0/mlflow -> the answer's shape
    "experiments/search": {"experiments?": [EXPERIMENT], **PAGE},
    "experiments/get": {"experiment": EXPERIMENT},
    "experiments/get-by-name": {"experiment": EXPERIMENT},
    "experiments/create": {"experiment_id": ID},
    "runs/get": {"run": RUN},
    "runs/create": {"run": RUN},
    "runs/search": {"runs?": [RUN], **PAGE},
    "metrics/get-history": {"metrics?": [METRIC], **PAGE},
    "metrics/get-history-bulk-interval": {"metrics?": [METRIC]},
    "artifacts/list": {"files?": [{"path": TEXT, "is_dir?": BOOL, "file_size?": NUM}], "root_uri?": TEXT, **PAGE},
    "registered-models/search": {"registered_models?": [MODEL], **PAGE},
    "registered-models/get": {"registered_model": MODEL},
    "registered-models/create": {"registered_model?": MODEL},
    "registered-models/alias": {"model_version?": MODEL_VERSION},
    "model-versions/search": {"model_versions?": [MODEL_VERSION], **PAGE},
    "model-versions/get": {"model_version": MODEL_VERSION},
    "model-versions/create": {"model_version": MODEL_VERSION},
    "logged-models/search": {"models?": [OBJ], **PAGE},
    "traces/search": {"traces?": [TRACE_INFO], **PAGE},
    "traces/metrics": {"data_points?": [OBJ], **PAGE},
    "traces/link-to-run": {},  # log_feedback.py: answers {} (not a trace id under traces/)
    "traces/{trace_id}": {"trace": {"trace_info": TRACE_INFO}},
}

_PREFIXES = ("/api/2.0/mlflow/", "/api/3.0/mlflow/")


def endpoint(path: str) -> str | None:
    """The SCHEMAS key of an API path, or None for paths the table does not know."""
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if prefix == "/api/3.0/mlflow/" and rest.startswith("traces/tr-") and rest.count("/") == 1:
                return "traces/{trace_id}"  # GET one trace (MLflow 3's ids start with tr-)
            return rest
    return None


def problem(path: str, payload: dict) -> str | None:
    """What is wrong with an answer's shape (e.g. "experiments[1] is 17, not an object"), or None.
    A compiled check runs first (a page of 1,000 runs in milliseconds); only a failure is walked
    again to say where."""
    key = endpoint(path)
    if key not in SCHEMAS:
        return None
    if key not in _COMPILED:
        _COMPILED[key] = _compile(SCHEMAS[key])
    if _COMPILED[key](payload):
        return None
    return _check(payload, SCHEMAS[key], "the answer") or "it does not match"


def is_mlflow_answer(path: str, payload: dict) -> bool:
    """An answer of a known endpoint, in MLflow's shape, with content (`{}` has none): proof
    enough that the server speaks MLflow."""
    key = endpoint(path)
    return key in SCHEMAS and any(payload.get(name.rstrip("?")) for name in SCHEMAS[key] if name != "next_page_token?")


_COMPILED: dict[str, Callable[[Any], bool]] = {}
_MISSING = object()


def _compile(spec: Any) -> Callable[[Any], bool]:
    if isinstance(spec, dict):
        required = [(name, _compile(sub)) for name, sub in spec.items() if not name.endswith("?")]
        optional = [
            (name[:-1], _compile(sub), isinstance(sub, (dict, list)))
            for name, sub in spec.items()
            if name.endswith("?") and sub is not ANY
        ]

        def check_object(value: Any) -> bool:
            if type(value) is not dict:
                return False
            for name, check in required:
                if name not in value or not check(value[name]):
                    return False
            for name, check, container in optional:
                found = value.get(name, _MISSING)
                if found is _MISSING or (found is None and not container):
                    continue
                if not check(found):
                    return False
            return True

        return check_object
    if isinstance(spec, list):
        item = _compile(spec[0])
        return lambda value: type(value) is list and all(map(item, value))
    return _FAST[spec]


_NUMBER_TYPES = (int, float, str)  # MLflow writes int64 and NaN as strings in some versions
_FAST: dict[str, Callable[[Any], bool]] = {
    ID: lambda v: type(v) is str and _ID_RE.fullmatch(v) is not None,
    TEXT: lambda v: type(v) is str,
    NUM: lambda v: type(v) in _NUMBER_TYPES,
    BOOL: lambda v: type(v) is bool,
    OBJ: lambda v: type(v) is dict,
    ANY: lambda v: True,
}


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "a list" if isinstance(value, list) else "an object"
    text = repr(value)
    return text if len(text) <= 30 else text[:29] + "…"


def _check(value: Any, spec: Any, where: str) -> str | None:
    if isinstance(spec, dict):
        if type(value) is not dict:
            return f"{where} is {_describe(value)}, not an object"
        for name, sub in spec.items():
            optional = name.endswith("?")
            field = name[:-1] if optional else name
            if field not in value:
                if optional:
                    continue
                return f"{where} lacks {field!r}"
            found = value[field]
            if optional and found is None and not isinstance(sub, (dict, list)):
                continue
            bad = _check(found, sub, field if where == "the answer" else f"{where}.{field}")
            if bad:
                return bad
        return None
    if isinstance(spec, list):
        if type(value) is not list:
            return f"{where} is {_describe(value)}, not a list"
        item = spec[0]
        if item is ANY:
            return None
        for i, entry in enumerate(value):
            bad = _check(entry, item, f"{where}[{i}]")
            if bad:
                return bad
        return None
    return _check_kind(value, spec, where)


def _check_kind(value: Any, kind: str, where: str) -> str | None:
    if kind is ANY or (kind is TEXT and type(value) is str):
        return None
    ok = (
        (kind is TEXT and isinstance(value, str))
        or (kind is ID and isinstance(value, str) and _ID_RE.fullmatch(value) is not None)
        or (kind is NUM and isinstance(value, (int, float, str)) and not isinstance(value, bool))
        or (kind is BOOL and isinstance(value, bool))
        or (kind is OBJ and type(value) is dict)
    )
    return None if ok else f"{where} is {_describe(value)}, not {kind}"
