"""Shared plumbing for the mlflow-python skill's scripts.

Configuration and credentials, the tracking-store client, errors and exit codes, and the
markdown/JSON/CSV rendering every script uses. Kept free of heavy imports: `import mlflow`
costs seconds, so talking to a tracking server goes over MLflow's REST API with `requests`,
and MLflow itself is imported only for stores that are not servers (the embedded sqlite store,
a database URI, Databricks credentials, auth plugins).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import io
import json
import math
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote, unquote, urlsplit, urlunsplit

SKILL_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# Exit codes (documented in references/troubleshooting.md and every script's --help epilog)
# ---------------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_ERROR = 1  # unexpected failure (a bug): run again with --debug
EXIT_USAGE = 2  # bad arguments, bad filter, bad input data
EXIT_NOT_FOUND = 3  # unknown experiment, run, metric, trace
EXIT_CONNECTION = 4  # server unreachable or too slow
EXIT_AUTH = 5  # 401 wrong/missing credentials, 403 missing permission
EXIT_SERVER = 6  # the server failed (5xx) or answered something unexpected

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 2 usage or bad input, 3 not found, 4 cannot reach the server, "
    "5 authentication or permission, 6 server error, 1 unexpected (rerun with --debug)"
)


class SkillError(Exception):
    """An error with a one-line message that names the fix, and its exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(SkillError):
    exit_code = EXIT_USAGE


class NotFoundError(SkillError):
    exit_code = EXIT_NOT_FOUND


class ConnectionFailure(SkillError):
    exit_code = EXIT_CONNECTION


class AuthError(SkillError):
    exit_code = EXIT_AUTH


class ServerError(SkillError):
    exit_code = EXIT_SERVER


# ---------------------------------------------------------------------------------------------
# Secrets: every value registered here is masked in anything the scripts print or write.
# ---------------------------------------------------------------------------------------------
_SECRETS: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    if value:
        _SECRETS.add(value)
        # A password inside a URI may appear percent-encoded.
        encoded = quote(value, safe="")
        if encoded != value:
            _SECRETS.add(encoded)


def scrub(text: str) -> str:
    """Mask every registered secret in text (longest first, so overlapping secrets mask fully)."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _ScrubbingStream(io.TextIOBase):
    """Wraps stdout/stderr so that no registered secret can be printed, whatever the code path."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, text):  # type: ignore[override]
        return self._inner.write(scrub(text))

    def flush(self):
        return self._inner.flush()

    def isatty(self):
        return self._inner.isatty()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
CREDENTIAL_VARS = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_PASSWORD",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
)
EMBEDDED_SOURCE = "embedded default, nothing configured"


def env_dir() -> Path:
    """Folder holding .env.local and .env: the skill's root unless MLFLOW_SKILL_ENV_DIR says."""
    override = os.environ.get("MLFLOW_SKILL_ENV_DIR")
    return Path(override) if override else SKILL_ROOT


def load_dotenv_files() -> dict[str, str]:
    """Load .env.local then .env into os.environ without overriding anything already set.

    Returns {variable: file name} for what the files supplied, so outputs can say where a
    setting came from. python-dotenv is imported only when such a file exists.
    """
    supplied: dict[str, str] = {}
    for name in (".env.local", ".env"):
        path = env_dir() / name
        if not path.is_file():
            continue
        from dotenv import dotenv_values

        for key, value in dotenv_values(path).items():
            if value is None or key in os.environ:
                continue
            os.environ[key] = value
            supplied[key] = name
    return supplied


@dataclass
class Settings:
    tracking_uri: str
    source: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    insecure_tls: bool = False
    server_cert_path: str | None = None
    client_cert_path: str | None = None
    timeout: float = 30.0
    retries: int = 2
    embedded: bool = False

    @property
    def scheme(self) -> str:
        return urlsplit(self.tracking_uri).scheme.lower()

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def display_uri(self) -> str:
        return redact_uri(self.tracking_uri)

    def store_line(self) -> str:
        return f"store: {self.display_uri} ({self.source})"


def redact_uri(uri: str) -> str:
    """Remove any user:password@ part and mask registered secrets."""
    try:
        return scrub(_strip_userinfo(uri))
    except ValueError:
        return scrub(uri)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def resolve_settings(flag_uri: str | None = None, timeout: float | None = None) -> Settings:
    """Work out the tracking store and credentials. First match wins:

    1. --tracking-uri; 2. the process environment; 3. .env.local, then .env (never overriding
    the environment); 4. atomic MLFLOW_HOST/MLFLOW_PORT/MLFLOW_USERNAME/MLFLOW_PASSWORD;
    5. MLflow's embedded default store.
    """
    from_files = load_dotenv_files()
    for var in CREDENTIAL_VARS:
        register_secret(os.environ.get(var))

    def origin(var: str) -> str:
        return f"{var} from {from_files[var]}" if var in from_files else f"{var} from environment"

    uri = source = None
    if flag_uri:
        uri, source = flag_uri, "--tracking-uri"
    elif os.environ.get("MLFLOW_TRACKING_URI"):
        uri, source = os.environ["MLFLOW_TRACKING_URI"], origin("MLFLOW_TRACKING_URI")
    elif os.environ.get("MLFLOW_HOST"):
        uri = compose_atomic_uri()
        source = "MLFLOW_HOST/MLFLOW_PORT " + (
            f"from {from_files['MLFLOW_HOST']}" if "MLFLOW_HOST" in from_files else "from environment"
        )

    embedded = uri is None
    if embedded:
        uri, source = embedded_store_uri(), EMBEDDED_SOURCE

    username = os.environ.get("MLFLOW_TRACKING_USERNAME") or os.environ.get("MLFLOW_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or os.environ.get("MLFLOW_PASSWORD")
    # Credentials written into the URI travel with it: split them out, never show them.
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        username = unquote(parts.username or "") or username
        password = unquote(parts.password or "") or password
        register_secret(parts.password and unquote(parts.password))
        register_secret(parts.password)
        uri = _strip_userinfo(uri)
    register_secret(password)

    env_timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    if timeout is None:
        timeout = _number_setting(env_timeout, "MLFLOW_HTTP_REQUEST_TIMEOUT", float) if env_timeout else 30.0
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    retries_env = os.environ.get("MLFLOW_SKILL_HTTP_RETRIES")
    if retries_env and not (_number_setting(retries_env, "MLFLOW_SKILL_HTTP_RETRIES", int) >= 0):
        raise UsageError(f"MLFLOW_SKILL_HTTP_RETRIES must be 0 or more, got {retries_env!r}")
    return Settings(
        tracking_uri=uri,
        source=source or "",
        username=username or None,
        password=password or None,
        token=os.environ.get("MLFLOW_TRACKING_TOKEN") or None,
        insecure_tls=_truthy(os.environ.get("MLFLOW_TRACKING_INSECURE_TLS")),
        server_cert_path=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None,
        client_cert_path=os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
        timeout=timeout,
        retries=int(retries_env) if retries_env else 2,
        embedded=embedded,
    )


def _number_setting(text: str, name: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number: fix or unset it") from None


def _strip_userinfo(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def compose_atomic_uri() -> str:
    """MLFLOW_HOST (may carry a scheme) + MLFLOW_PORT + MLFLOW_SCHEME -> tracking URI."""
    host = os.environ["MLFLOW_HOST"].strip().rstrip("/")
    scheme = os.environ.get("MLFLOW_SCHEME", "").strip().lower()
    if "://" in host:
        scheme_in_host, host = host.split("://", 1)
        scheme = scheme or scheme_in_host.lower()
    port = os.environ.get("MLFLOW_PORT", "").strip()
    if not scheme:
        scheme = "https" if port == "443" else "http"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def embedded_store_uri() -> str:
    """MLflow's own default: ./mlruns when it already holds experiments (old file store),
    else sqlite:///mlflow.db in the working directory (MLflow >= 3.7)."""
    mlruns = Path("mlruns")
    if mlruns.is_dir() and any(p.name.isdigit() and (p / "meta.yaml").exists() for p in mlruns.iterdir()):
        return "file:" + str(mlruns.resolve())
    return "sqlite:///mlflow.db"


# ---------------------------------------------------------------------------------------------
# Tracking-store client: MLflow's REST JSON API, over HTTP or in-process
# ---------------------------------------------------------------------------------------------
class Store:
    """Speaks MLflow's REST API (JSON in, JSON out) and maps its errors to SkillErrors."""

    def __init__(self, settings: Settings):
        self.settings = settings

    # Subclasses implement _request(method, path, params, body) -> (status, json_or_text)
    def _request(self, method: str, path: str, params: dict | None, body: dict | None):
        raise NotImplementedError

    def get(self, path: str, params: dict | None = None, what: str = "") -> dict:
        return self._call("GET", path, params=params, what=what)

    def post(self, path: str, body: dict | None = None, what: str = "") -> dict:
        return self._call("POST", path, body=body or {}, what=what)

    def _call(self, method, path, params=None, body=None, what=""):
        status, payload = self._request(method, path, params, body)
        if 200 <= status < 300:
            return payload if isinstance(payload, dict) else {}
        raise self._error(status, payload, what)

    def _error(self, status: int, payload: Any, what: str) -> SkillError:
        code = message = ""
        if isinstance(payload, dict):
            code = str(payload.get("error_code", ""))
            message = str(payload.get("message", ""))
        else:
            message = str(payload or "").strip().splitlines()[0] if payload else ""
        message = " ".join(scrub(message).split())[:400]  # one line: server messages may hold SQL over lines
        where = self.settings.display_uri
        if status == 401:
            return AuthError(
                f"{where} refused the credentials (401): check MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            )
        if status == 403 or code == "PERMISSION_DENIED":
            return AuthError(
                f"permission denied (403) on {where}{' for ' + what if what else ''}: the user "
                "is known but lacks the permission; ask an admin to grant it"
            )
        if status == 404 or code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return NotFoundError(message or f"not found on {where}")
        if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "RESOURCE_ALREADY_EXISTS") or status == 400:
            return UsageError(f"the server rejected the request: {message}" if message else f"bad request (400) to {where}")
        return ServerError(f"{where} answered {status}{' ' + code if code else ''}: {message or 'no detail'}")


class HttpStore(Store):
    """Plain HTTP(S) to a tracking server, with bounded retries and a short connect timeout."""

    RETRY_STATUSES = (429, 500, 502, 503, 504)

    def __init__(self, settings: Settings, base_url: str | None = None, token: str | None = None):
        super().__init__(settings)
        import requests

        self._requests = requests
        self.base_url = (base_url or settings.tracking_uri).rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "mlflow-python-skill"
        bearer = token or settings.token
        if bearer:
            self.session.headers["Authorization"] = f"Bearer {bearer}"
        elif settings.username or settings.password:
            self.session.auth = (settings.username or "", settings.password or "")
        if settings.insecure_tls:
            self.session.verify = False
            import urllib3

            urllib3.disable_warnings()
        elif settings.server_cert_path:
            self.session.verify = settings.server_cert_path
        if settings.client_cert_path:
            self.session.cert = settings.client_cert_path

    def _request(self, method, path, params, body):
        url = self.base_url + path
        connect_timeout = min(5.0, self.settings.timeout)
        attempts = 1 + max(0, self.settings.retries)
        last_exc: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(4.0, 0.5 * 2 ** (attempt - 1)))
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body if method != "GET" else None,
                    timeout=(connect_timeout, self.settings.timeout),
                )
            except self._requests.exceptions.SSLError as exc:
                raise ConnectionFailure(
                    f"TLS error talking to {self.settings.display_uri}: set MLFLOW_TRACKING_SERVER_CERT_PATH "
                    "to the server's CA bundle (or MLFLOW_TRACKING_INSECURE_TLS=true for a test server)"
                ) from exc
            except self._requests.exceptions.ReadTimeout as exc:
                # The server has the request and is still working on it: sending it again would
                # add load (an expensive search) or apply a write twice. Fail now; --timeout helps.
                last_exc = exc
                attempts = attempt + 1
                break
            except (self._requests.exceptions.ConnectionError, self._requests.exceptions.Timeout) as exc:
                last_exc = exc
                continue
            if resp.status_code in self.RETRY_STATUSES and attempt + 1 < attempts:
                continue
            return resp.status_code, _decode(resp)
        kind = "timed out" if isinstance(last_exc, self._requests.exceptions.Timeout) else "is not reachable"
        raise ConnectionFailure(
            f"tracking server {self.settings.display_uri} {kind} (tried {attempts}x, timeout "
            f"{self.settings.timeout:g}s): start it, fix MLFLOW_TRACKING_URI, or raise --timeout"
        ) from last_exc

    def put_file(self, path: str, local_file: Path) -> None:
        """Upload one file (proxied artifact serving: PUT /api/2.0/mlflow-artifacts/artifacts/...)."""
        with open(local_file, "rb") as fh:
            data = fh.read()
        for attempt in range(1 + self.settings.retries):
            try:
                resp = self.session.put(
                    self.base_url + path, data=data, timeout=(min(5.0, self.settings.timeout), self.settings.timeout)
                )
            except (self._requests.exceptions.ConnectionError, self._requests.exceptions.Timeout) as exc:
                if attempt == self.settings.retries:
                    raise ConnectionFailure(
                        f"tracking server {self.settings.display_uri} is not reachable while uploading {local_file.name}"
                    ) from exc
                continue
            if 200 <= resp.status_code < 300:
                return
            if resp.status_code not in self.RETRY_STATUSES or attempt == self.settings.retries:
                raise self._error(resp.status_code, _decode(resp), f"upload of {local_file.name}")


def _decode(resp) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text


class InProcessStore(Store):
    """Stores that are not servers (sqlite, other databases, file): MLflow's own server handlers
    run in this process through Flask's test client, so every script speaks one protocol and the
    store applies exactly the validation a real server would."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        uri = settings.tracking_uri
        if uri.startswith("file:") and not _truthy(os.environ.get("MLFLOW_ALLOW_FILE_STORE")):
            raise UsageError(
                f"{uri} is MLflow's old file store, which MLflow refuses since 3.13: migrate it, "
                "or set MLFLOW_ALLOW_FILE_STORE=true"
            )
        uri = _absolute_sqlite_uri(uri)
        artifact_root = str(Path("mlruns").resolve())  # where MLflow's client puts them too
        os.environ["_MLFLOW_SERVER_FILE_STORE"] = uri
        os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = artifact_root
        with _quiet_mlflow_logging():
            from mlflow.server import app, handlers

            # The handlers cache one store per process; point them at this one.
            handlers._tracking_store = None
            handlers._get_tracking_store(uri, artifact_root)
            self._client = app.test_client()

    def _request(self, method, path, params, body):
        with _quiet_mlflow_logging():
            try:
                if method == "GET":
                    resp = self._client.get(path, query_string=params)
                else:
                    resp = self._client.open(path, method=method, json=body)
            except Exception as exc:  # a broken database file, a locked db, ...
                raise ServerError(f"store {self.settings.display_uri} failed: {scrub(str(exc))[:300]}") from exc
        payload = resp.get_json(silent=True)
        return resp.status_code, payload if payload is not None else resp.get_data(as_text=True)


def _absolute_sqlite_uri(uri: str) -> str:
    """sqlite:///mlflow.db -> sqlite:////abs/path/mlflow.db: MLflow caches database engines by
    URI, so a relative path must not come to mean another file when the working folder changes."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith(prefix + "/"):
        return uri
    path, _, query = uri[len(prefix) :].partition("?")
    if not path or path == ":memory:":
        return uri
    return prefix + str(Path(path).resolve()) + (f"?{query}" if query else "")


@contextlib.contextmanager
def _quiet_mlflow_logging():
    """MLflow logs database migrations at INFO on first use; keep stderr for our diagnostics."""
    import logging

    import mlflow  # noqa: F401  (importing MLflow configures its loggers: do that first)

    logger = logging.getLogger("mlflow")
    alembic = logging.getLogger("alembic")
    previous = (logger.level, alembic.level)
    logger.setLevel(logging.WARNING)
    alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous[0])
        alembic.setLevel(previous[1])


def open_store(settings: Settings) -> Store:
    scheme = settings.scheme
    if scheme in ("http", "https"):
        if os.environ.get("MLFLOW_TRACKING_AUTH") or _truthy(os.environ.get("MLFLOW_TRACKING_AWS_SIGV4")):
            return MlflowRestStore(settings)
        return HttpStore(settings)
    if scheme.startswith("databricks"):
        return MlflowRestStore(settings)
    return InProcessStore(settings)


class MlflowRestStore(Store):
    """Servers whose authentication only MLflow itself knows (Databricks profiles, auth plugins,
    AWS SigV4): MLflow's own REST helper carries the request."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        from mlflow.tracking._tracking_service.utils import _get_store

        self._host_creds = _get_store(settings.tracking_uri).get_host_creds()

    def _request(self, method, path, params, body):
        from mlflow.utils.rest_utils import http_request

        try:
            resp = http_request(
                self._host_creds,
                path,
                method,
                params=params,
                json=body if method != "GET" else None,
                max_retries=self.settings.retries,
                timeout=self.settings.timeout,
            )
        except Exception as exc:
            raise ConnectionFailure(f"cannot reach {self.settings.display_uri}: {scrub(str(exc))[:300]}") from exc
        return resp.status_code, _decode(resp)


# ---------------------------------------------------------------------------------------------
# Common lookups
# ---------------------------------------------------------------------------------------------
API = "/api/2.0/mlflow"


def paged(store: Store, path: str, body: dict, key: str, limit: int | None = None, page_size: int = 1000) -> Iterator[dict]:
    """Yield items of a paged POST search, following next_page_token up to `limit` items."""
    body = dict(body)
    seen = 0
    while True:
        if limit is not None:
            body["max_results"] = min(page_size, limit - seen)
        else:
            body.setdefault("max_results", page_size)
        page = store.post(path, body)
        for item in page.get(key, []):
            yield item
            seen += 1
        token = page.get("next_page_token")
        if not token or (limit is not None and seen >= limit):
            return
        body["page_token"] = token


def all_experiments(store: Store, view: str = "ALL") -> list[dict]:
    return list(paged(store, f"{API}/experiments/search", {"view_type": view}, "experiments"))


def get_experiment(store: Store, name_or_id: str) -> dict:
    """An experiment by name or id; unknown ones get close names suggested."""
    ref = str(name_or_id).strip()
    if not ref:
        raise UsageError("empty experiment name: pass --experiment NAME or an id")
    if ref.isdigit():
        try:
            return store.get(f"{API}/experiments/get", {"experiment_id": ref})["experiment"]
        except NotFoundError:
            pass  # a name made of digits is still a name
    try:
        return store.get(f"{API}/experiments/get-by-name", {"experiment_name": ref})["experiment"]
    except NotFoundError:
        pass
    names = [e["name"] for e in all_experiments(store)]
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
    close += [n for n in names if ref.lower() in n.lower() and n not in close][: 3 - len(close)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise NotFoundError(
        f"no experiment named or numbered {ref!r}{hint} (list them: uv run scripts/query_experiments.py experiments)"
    )


def get_run(store: Store, run_id: str) -> dict:
    run_id = run_id.strip()
    try:
        return store.get(f"{API}/runs/get", {"run_id": run_id})["run"]
    except NotFoundError:
        raise NotFoundError(
            f"no run with id {run_id!r} (find ids: uv run scripts/query_experiments.py runs --experiment NAME)"
        ) from None


def kv(items: Iterable[dict] | None) -> dict[str, str]:
    """[{key, value}, ...] (MLflow's JSON for params and tags) -> {key: value}."""
    return {i["key"]: i.get("value", "") for i in items or []}


def run_metrics(run: dict) -> dict[str, float]:
    return {m["key"]: to_float(m.get("value")) for m in run.get("data", {}).get("metrics", []) or []}


def run_params(run: dict) -> dict[str, str]:
    return kv(run.get("data", {}).get("params"))


def run_tags(run: dict) -> dict[str, str]:
    return kv(run.get("data", {}).get("tags"))


def run_name(run: dict) -> str:
    info = run.get("info", {})
    return info.get("run_name") or run_tags(run).get("mlflow.runName", "")


def to_float(value: Any) -> float:
    """MLflow's JSON encodes NaN/Infinity as strings; turn every metric value into a float."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_url(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    if not settings.is_http:
        return None
    return f"{settings.display_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def parse_key_values(pairs: Iterable[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"{flag} takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        if not key.strip():
            raise UsageError(f"{flag} {pair!r} has an empty key")
        out[key.strip()] = value
    return out


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------
def fmt_num(value: Any, digits: int = 4) -> str:
    """Numbers to `digits` significant digits; other values as text."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**digits * 1000 else f"{value:.{digits}g}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def fmt_value(value: Any, width: int = 40) -> str:
    """A param/tag value: numeric strings as numbers, long text cut with a marker."""
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return truncate(value, width)
        if value.strip().lower() in ("nan", "inf", "-inf", "infinity"):
            return value
        return value if len(value) <= 12 else fmt_num(as_float)
    return fmt_num(value)


def truncate(text: Any, width: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def fmt_time(ms: Any) -> str:
    """Epoch milliseconds -> 'YYYY-MM-DD HH:MM:SS' UTC."""
    if ms in (None, "", 0, "0"):
        return ""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ms)


def iso_time(ms: Any) -> str | None:
    if ms in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def fmt_duration(ms: Any) -> str:
    if ms in (None, ""):
        return ""
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(lines)


def to_csv(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, allow_nan=False, ensure_ascii=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: map them to None recursively."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def next_page_command(argv: list[str], token: str, script: str) -> str:
    """The exact command for the next page: this invocation with --page-token replaced."""
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--page-token":
            skip = True
            continue
        if arg.startswith("--page-token="):
            continue
        args.append(arg)
    return scrub(shlex.join(["uv", "run", f"scripts/{script}", *args, "--page-token", token]))


def write_atomic(path: str | Path, data: str | bytes, force: bool = False) -> Path:
    """Write a file in one step (temp file + rename); refuse to replace one without force."""
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to overwrite it, or choose another --output")
    if not target.parent.exists():
        raise UsageError(f"folder {target.parent} does not exist: create it or choose another --output")
    if isinstance(data, str):
        data = scrub(data).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def fmt_bytes(size: Any) -> str:
    if size in (None, ""):
        return ""
    size = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# ---------------------------------------------------------------------------------------------
# Command-line plumbing
# ---------------------------------------------------------------------------------------------
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the docstring's examples as written."""


def add_common_args(parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("markdown", "json")) -> None:
    group = parser.add_argument_group("connection and output")
    group.add_argument("--tracking-uri", help="tracking store (default: environment, .env.local, or ./mlflow.db)")
    group.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for the server per request (default 30)"
    )
    group.add_argument("--format", choices=formats, default="markdown", help="output format (default markdown)")
    group.add_argument("--debug", action="store_true", help="show tracebacks and HTTP details on errors")


def make_parser(doc: str, prog: str, formats: tuple[str, ...] = ("markdown", "json"), **kwargs) -> argparse.ArgumentParser:
    """A parser whose description is the script's Usage docstring."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=doc,
        formatter_class=HelpFormatter,
        epilog=EXIT_CODES_HELP,
        **kwargs,
    )
    add_common_args(parser, formats)
    return parser


@dataclass
class Context:
    """What a command needs: its settings, a lazily opened store, and output helpers."""

    args: argparse.Namespace
    argv: list[str]
    script: str
    settings: Settings
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @property
    def fmt(self) -> str:
        return getattr(self.args, "format", "markdown") or "markdown"

    def header(self) -> str:
        return self.settings.store_line()

    def emit(self, body: str) -> None:
        """Print a result: markdown gets the store line first; json/csv stay parseable and the
        store line goes to stderr."""
        if self.fmt == "markdown":
            sys.stdout.write(self.header() + "\n\n" + body.rstrip("\n") + "\n")
        else:
            diag(self.header())
            sys.stdout.write(body if body.endswith("\n") else body + "\n")

    def next_page(self, token: str) -> str:
        return next_page_command(self.argv, token, self.script)


def diag(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def run_main(
    parser: argparse.ArgumentParser,
    command: Callable[[Context], int | None],
    argv: list[str] | None,
    script: str,
) -> int:
    """Parse, resolve settings, run, and turn every failure into one line and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ScrubbingStream(real_out), _ScrubbingStream(real_err)
    debug = "--debug" in argv
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
            return int(exc.code or 0)
        settings = resolve_settings(getattr(args, "tracking_uri", None), getattr(args, "timeout", None))
        ctx = Context(args=args, argv=argv, script=script, settings=settings)
        return int(command(ctx) or 0)
    except SkillError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        diag(f"error: {scrub(str(exc))}")
        return exc.exit_code
    except KeyboardInterrupt:
        diag("error: interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            import traceback

            traceback.print_exc()
        diag(f"error: unexpected {type(exc).__name__}: {truncate(scrub(str(exc)), 300)} (rerun with --debug for details)")
        return EXIT_ERROR
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = real_out, real_err


# ---------------------------------------------------------------------------------------------
# Experiments: create idempotently (create_experiment.py, log_backtest.py)
# ---------------------------------------------------------------------------------------------
DESCRIPTION_TAG = "mlflow.note.content"  # what the MLflow UI shows as the experiment's description


def ensure_experiment(
    store: Store,
    name: str,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    artifact_location: str | None = None,
    restore: bool = False,
    update: bool = False,
) -> tuple[dict, str]:
    """Return (experiment, status) where status is created, exists, updated or restored.

    An active experiment is never changed unless update=True; a deleted one is restored only
    with restore=True, otherwise the caller gets an error that says how.
    """
    name = name.strip()
    if not name:
        raise UsageError("experiment name is empty: pass --name NAME")
    wanted_tags = dict(tags or {})
    if description is not None:
        wanted_tags[DESCRIPTION_TAG] = description
    existing = _experiment_by_name(store, name)
    status = "exists"
    if existing is None:
        body: dict[str, Any] = {"name": name, "tags": [{"key": k, "value": v} for k, v in wanted_tags.items()]}
        if artifact_location:
            body["artifact_location"] = artifact_location
        try:
            experiment_id = store.post(f"{API}/experiments/create", body, what="creating an experiment")["experiment_id"]
        except UsageError as exc:
            # Another process may have created it between our look-up and our create.
            existing = _experiment_by_name(store, name)
            if existing is None:
                raise exc
        else:
            return store.get(f"{API}/experiments/get", {"experiment_id": experiment_id})["experiment"], "created"
    if existing.get("lifecycle_stage") == "deleted":
        if not restore:
            raise UsageError(
                f"experiment {name!r} (id {existing['experiment_id']}) is deleted: pass --restore to restore it, "
                "or choose another name"
            )
        store.post(f"{API}/experiments/restore", {"experiment_id": existing["experiment_id"]}, what="restoring")
        status = "restored"
    current = kv(existing.get("tags"))
    changes = {k: v for k, v in wanted_tags.items() if current.get(k) != v}
    if changes and (update or status == "restored"):
        for key, value in changes.items():
            store.post(
                f"{API}/experiments/set-experiment-tag",
                {"experiment_id": existing["experiment_id"], "key": key, "value": value},
                what="setting experiment tags",
            )
        status = "updated" if status == "exists" else status
    experiment = store.get(f"{API}/experiments/get", {"experiment_id": existing["experiment_id"]})["experiment"]
    experiment["_unapplied"] = sorted(changes) if (changes and status == "exists") else []
    return experiment, status


def _experiment_by_name(store: Store, name: str) -> dict | None:
    try:
        return store.get(f"{API}/experiments/get-by-name", {"experiment_name": name})["experiment"]
    except NotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# Traces (search_traces.py, get_trace.py): MLflow 3's trace REST API, parsed into plain dicts
# ---------------------------------------------------------------------------------------------
# Trace infos come from POST /api/3.0/mlflow/traces/search and GET /api/3.0/mlflow/traces/{id}
# (what MlflowClient.search_traces/get_trace_info call). Spans come from the endpoint MLflow's
# UI uses, GET /ajax-api/2.0/mlflow/get-trace-artifact: the server reads them from its database
# (spansLocation TRACKING_STORE), the archive or the trace's artifact file, whichever holds
# them, and answers in the same span JSON that `mlflow traces get` prints.
API3_TRACES = "/api/3.0/mlflow/traces"
TRACE_ARTIFACT_PATH = "/ajax-api/2.0/mlflow/get-trace-artifact"
TRACE_SESSION_KEY = "mlflow.trace.session"
TRACE_USER_KEY = "mlflow.trace.user"
TRACE_TOKEN_USAGE_KEY = "mlflow.trace.tokenUsage"
TRACE_NAME_TAG = "mlflow.traceName"
TRACE_STATES = ("OK", "ERROR", "IN_PROGRESS")
TRACE_PAGE_MAX = 500  # the server rejects larger pages


def trace_locations(experiment_ids: Iterable[str]) -> list[dict]:
    return [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(e)}} for e in experiment_ids]


def search_trace_infos(
    store: Store,
    experiment_ids: list[str],
    filter_string: str | None = None,
    max_results: int = 25,
    order_by: list[str] | None = None,
    page_token: str | None = None,
) -> tuple[list[dict], str | None]:
    """One page of trace infos (no spans) and the next page token."""
    body: dict[str, Any] = {"locations": trace_locations(experiment_ids), "max_results": max_results}
    if filter_string:
        body["filter"] = filter_string
    if order_by:
        body["order_by"] = order_by
    if page_token:
        body["page_token"] = page_token
    page = store.post(f"{API3_TRACES}/search", body, what="searching traces")
    return page.get("traces", []) or [], page.get("next_page_token") or None


def get_trace_info(store: Store, trace_id: str) -> dict:
    trace_id = trace_id.strip()
    try:
        return store.get(f"{API3_TRACES}/{quote(trace_id, safe='')}", what="reading a trace")["trace"]["trace_info"]
    except NotFoundError:
        raise NotFoundError(
            f"no trace with id {trace_id!r} (find ids: uv run scripts/search_traces.py --experiment NAME)"
        ) from None


def get_trace_spans(store: Store, trace_id: str) -> list[dict]:
    """The trace's spans, wherever the server keeps them. The endpoint answers with a file
    (not a JSON content type), so the body is decoded here for both store kinds."""
    status, payload = store._request("GET", TRACE_ARTIFACT_PATH, {"request_id": trace_id}, None)
    if not 200 <= status < 300:
        if isinstance(payload, str):
            with contextlib.suppress(ValueError):
                payload = json.loads(payload)
        raise store._error(status, payload, "reading a trace's spans")
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload or "{}")
        except ValueError:
            raise ServerError(f"the spans of trace {trace_id} are not valid JSON") from None
    return (payload or {}).get("spans", []) if isinstance(payload, dict) else []


def pb_duration_ms(value: Any) -> float | None:
    """Protobuf JSON Duration ('0.415s') -> milliseconds."""
    if value in (None, ""):
        return None
    try:
        return float(str(value).rstrip("s")) * 1000.0
    except ValueError:
        return None


def pb_timestamp_ms(value: Any) -> int | None:
    """Protobuf JSON Timestamp ('2026-11-23T15:11:30.574Z') or epoch ms -> epoch milliseconds."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) or str(value).isdigit():
        return int(value)
    text = str(value).replace("Z", "+00:00")
    frac = ""
    if "." in text:  # Python < 3.11 parsers dislike >6 fraction digits; keep milliseconds
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits):]
        frac, text = "." + (digits + "000000")[:6], head + tz
    try:
        dt = datetime.fromisoformat(text[:19] + frac + text[19:])
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))


def parse_token_usage(value: Any) -> dict | None:
    """{'input_tokens', 'output_tokens', 'total_tokens'} from a JSON string or dict, else None."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    usage = {k: value.get(k) for k in ("input_tokens", "output_tokens", "total_tokens") if value.get(k) is not None}
    if usage and "total_tokens" not in usage:
        usage["total_tokens"] = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
    return usage or None


def fmt_tokens(usage: dict | None) -> str:
    if not usage:
        return ""
    parts = []
    if "input_tokens" in usage or "output_tokens" in usage:
        parts.append(f"{fmt_num(usage.get('input_tokens', 0))} in / {fmt_num(usage.get('output_tokens', 0))} out")
    if usage.get("total_tokens") is not None:
        parts.append(f"{fmt_num(usage['total_tokens'])} total")
    return ", ".join(parts)


def trace_summary(info: dict) -> dict:
    """The fields people read from a trace info, flattened."""
    meta = info.get("trace_metadata", {}) or {}
    tags = info.get("tags", {}) or {}
    location = info.get("trace_location", {}) or {}
    return {
        "trace_id": info.get("trace_id") or info.get("request_id"),
        "experiment_id": (location.get("mlflow_experiment") or {}).get("experiment_id"),
        "timestamp_ms": pb_timestamp_ms(info.get("request_time")),
        "status": info.get("state") or info.get("status") or "",
        "duration_ms": pb_duration_ms(info.get("execution_duration")),
        "name": tags.get(TRACE_NAME_TAG, ""),
        "session": meta.get(TRACE_SESSION_KEY),
        "user": meta.get(TRACE_USER_KEY),
        "request_preview": info.get("request_preview") or meta.get("mlflow.traceInputs") or "",
        "response_preview": info.get("response_preview") or meta.get("mlflow.traceOutputs") or "",
        "tokens": parse_token_usage(meta.get(TRACE_TOKEN_USAGE_KEY)),
        "run_id": meta.get("mlflow.sourceRun"),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        "assessments": [assessment_view(a) for a in info.get("assessments", []) or []],
    }


def assessment_view(a: dict) -> dict:
    """Feedback or expectation -> {name, kind, value, source, rationale, error}."""
    kind = "feedback" if "feedback" in a else "expectation" if "expectation" in a else "assessment"
    body = a.get(kind, {}) or {}
    value = body.get("value")
    if value is None and isinstance(body.get("serialized_value"), dict):
        raw = body["serialized_value"].get("value")
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = raw
    error = body.get("error") or {}
    source = a.get("source", {}) or {}
    return {
        "name": a.get("assessment_name", ""),
        "kind": kind,
        "value": value,
        "source": ":".join(x for x in (source.get("source_type"), source.get("source_id")) if x),
        "rationale": a.get("rationale"),
        "error": error.get("error_message") or error.get("error_code"),
        "span_id": a.get("span_id"),
        "valid": a.get("valid", True),
    }


def sql_literal(value: str) -> tuple[str, bool]:
    """Quote a value for MLflow's search grammar, which has no escape character: single quotes,
    or double quotes if the value holds a single quote. A value holding both kinds cannot be
    written exactly; it becomes a LIKE pattern with `_` in place of each single quote, and the
    second item is False so callers use LIKE (and say so)."""
    value = str(value)
    if "'" not in value:
        return f"'{value}'", True
    if '"' not in value:
        return f'"{value}"', True
    return "'" + value.replace("'", "_") + "'", False


def filter_eq(key: str, value: str) -> str:
    literal, exact = sql_literal(value)
    return f"{key} {'=' if exact else 'LIKE'} {literal}"


def backtick_key(prefix: str, key: str) -> str:
    """metadata.`mlflow.trace.session`: backticks whenever the key is not a plain identifier."""
    if "`" in key:
        raise UsageError(f"key {key!r} contains a backtick, which MLflow's filter grammar cannot quote")
    plain = key.replace("_", "a").isalnum() and not key[:1].isdigit()
    return f"{prefix}.{key}" if plain else f"{prefix}.`{key}`"


def parse_since(text: str, now_ms: int | None = None) -> int:
    """'90s', '30m', '1h', '2d', '1w' (ago) or an ISO date/time (UTC unless it says) -> epoch ms."""
    text = str(text).strip()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    if len(text) >= 2 and text[-1].lower() in units:
        try:
            return now_ms - int(float(text[:-1]) * units[text[-1].lower()])
        except ValueError:
            pass
    if text.isdigit() and len(text) >= 12:  # epoch milliseconds
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}: use a duration ago like 30m, 1h, 2d, 1w, or an ISO date like "
            "2026-11-01 or 2026-11-01T14:00"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of the values, None when empty."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def span_attr(span: dict, key: str, default: Any = None) -> Any:
    """A span attribute, JSON-decoded (MLflow stores every attribute value as a JSON string)."""
    attrs = span.get("attributes") or {}
    if key not in attrs:
        return default
    value = attrs[key]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def span_hex_id(value: Any) -> str:
    """Span ids arrive base64-encoded (OTLP JSON); show them as the 16-hex-digit ids of the UI."""
    if not value:
        return ""
    text = str(value)
    if len(text) == 16 and all(ch in "0123456789abcdefABCDEF" for ch in text):
        return text.lower()
    import base64
    import binascii

    try:
        return base64.b64decode(text).hex()
    except (binascii.Error, ValueError):
        return text


def span_error(span: dict) -> str | None:
    """A failed span's message: its exception events ('Type: message'), else its status message."""
    for event in span.get("events") or []:
        if event.get("name") == "exception":
            attrs = event.get("attributes") or {}
            etype, msg = attrs.get("exception.type"), attrs.get("exception.message")
            if etype or msg:
                return f"{etype}: {msg}" if etype and msg and not str(msg).startswith(str(etype)) else str(msg or etype)
    status = span.get("status") or {}
    if status.get("message"):
        return str(status["message"])
    return None


def span_status(span: dict) -> str:
    code = str((span.get("status") or {}).get("code") or "")
    return {"STATUS_CODE_OK": "OK", "STATUS_CODE_ERROR": "ERROR", "STATUS_CODE_UNSET": "UNSET", "": "UNSET"}.get(
        code, code.replace("STATUS_CODE_", "")
    )


def span_nodes(spans: list[dict]) -> list[dict]:
    """Spans as a depth-first list (children by start time) of flat dicts with depth, timing,
    type, status, error, token usage and own time (duration minus direct children)."""
    nodes: dict[str, dict] = {}
    for span in spans:
        start, end = int(span.get("start_time_unix_nano") or 0), span.get("end_time_unix_nano")
        end = int(end) if end not in (None, "") else None
        status = span_status(span)
        nodes[str(span.get("span_id"))] = {
            "span_id": span_hex_id(span.get("span_id")),
            "parent_id": span_hex_id(span.get("parent_span_id")) or None,
            "_key": str(span.get("span_id")),
            "_parent": str(span.get("parent_span_id")) if span.get("parent_span_id") else None,
            "name": span.get("name", ""),
            "type": span_attr(span, "mlflow.spanType") or "",
            "start_ns": start,
            "duration_ms": (end - start) / 1e6 if end else None,
            "status": status,
            "error": span_error(span) if status == "ERROR" else None,
            "inputs": span_attr(span, "mlflow.spanInputs"),
            "outputs": span_attr(span, "mlflow.spanOutputs"),
            "tokens": parse_token_usage(span_attr(span, "mlflow.chat.tokenUsage")),
            "children": [],
            "_span": span,
        }
    roots = []
    for node in sorted(nodes.values(), key=lambda n: n["start_ns"]):
        parent = nodes.get(node["_parent"]) if node["_parent"] else None
        (parent["children"] if parent else roots).append(node)
    ordered: list[dict] = []

    def walk(node: dict, depth: int) -> None:
        node["depth"] = depth
        child_ms = sum(ch["duration_ms"] or 0 for ch in node["children"])
        node["self_ms"] = max(0.0, (node["duration_ms"] or 0) - child_ms) if node["duration_ms"] is not None else None
        ordered.append(node)
        for child in node["children"]:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return ordered


def root_cause(nodes: list[dict]) -> dict | None:
    """The deepest failed span (where the exception started), or None."""
    failed = [n for n in nodes if n["status"] == "ERROR"]
    if not failed:
        return None
    return max(failed, key=lambda n: (n["depth"], bool(n["error"])))


def preview(value: Any, width: int = 60) -> str:
    """A JSON-ish value cut to width (strings without their JSON quotes)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return truncate(text, width)
