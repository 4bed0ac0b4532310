"""The tracking store: MLflow's REST API over HTTP, through MLflow's own helper, or in-process;
one pager for every paged endpoint; experiment and run look-ups; idempotent experiment creation.

Talking to a server needs only `requests` (`import mlflow` costs seconds); MLflow itself is
imported for stores that are not servers (sqlite, a database URI, the old file store) and for
auth that only MLflow knows (Databricks, MLFLOW_TRACKING_AUTH plugins, AWS SigV4).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from mlflow_skill.core.config import Settings
from mlflow_skill.core.errors import (
    EXIT_NOT_FOUND,
    EXIT_SERVER,
    AuthError,
    ConnectionFailure,
    NotFoundError,
    ServerError,
    SkillError,
    UsageError,
)
from mlflow_skill.core.formatting import truncate
from mlflow_skill.core.secrets import scrub

API = "/api/2.0/mlflow"


class Store:
    """Speaks MLflow's REST API (JSON in, JSON out) and maps its errors to SkillErrors."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._mlflow_seen: bool | None = None  # None: not yet known

    # Subclasses implement _request(method, path, params, body) -> (status, json_or_text)
    def _request(self, method: str, path: str, params: dict | None, body: dict | None):
        raise NotImplementedError

    def get(self, path: str, params: dict | None = None, what: str = "", expect: str | None = None) -> dict:
        return self._call("GET", path, params=params, what=what, expect=expect)

    def post(self, path: str, body: dict | None = None, what: str = "", expect: str | None = None) -> dict:
        return self._call("POST", path, body=body or {}, what=what, expect=expect)

    def raw(self, method: str, path: str, params: dict | None = None, what: str = "") -> Any:
        """A 2xx payload as it came (JSON, or text for file endpoints); errors mapped as usual."""
        status, payload = self._request(method, path, params, None)
        if 200 <= status < 300:
            return payload
        if isinstance(payload, str):
            with contextlib.suppress(ValueError):
                payload = json.loads(payload)
        raise self._error(status, payload, what, path)

    def _call(self, method, path, params=None, body=None, what="", expect=None):
        status, payload = self._request(method, path, params, body)
        if not 200 <= status < 300:
            raise self._error(status, payload, what, path)
        if not isinstance(payload, dict):
            raise self._not_mlflow(status, payload, path)
        self._mlflow_seen = True
        if expect and expect not in payload:
            raise ServerError(
                f"{self.settings.display_uri} ({self.settings.source}) answered {path} with JSON without {expect!r}: "
                f"is this an MLflow tracking server? {self.settings.uri_fix}"
            )
        return payload

    def _not_mlflow(self, status: int, payload: Any, path: str) -> SkillError:
        """An answer that is not MLflow's JSON: say what came back and what to check. On a server
        that does speak MLflow (checked once) it is a missing endpoint, a NotFoundError callers may
        fall back on; otherwise a NotMlflowError (exit 3 for a 404, else 6) that no look-up mistakes
        for "no such run"."""
        kind = describe_body(payload)
        where = f"{self.settings.display_uri} ({self.settings.source})"
        if path.startswith("/api/") and self._speaks_mlflow(path):
            error_class = NotFoundError if status in (404, 405) else ServerError
            return error_class(
                f"{where} is an MLflow server but answered {path} with {kind} ({status}): it lacks this endpoint; "
                "its MLflow may be older than this feature needs"
            )
        hint = (
            f"a login page or a wrong path prefix? check the URI, the path after the host, and any SSO proxy: "
            f"{self.settings.uri_fix}"
            if kind.startswith("an HTML page")
            else f"is this an MLflow tracking server? {self.settings.uri_fix}"
        )
        return NotMlflowError(
            f"{where} answered {path} with {kind}, not MLflow's JSON ({status}): {hint}",
            EXIT_NOT_FOUND if status == 404 else EXIT_SERVER,
        )

    def _speaks_mlflow(self, failed_path: str) -> bool:
        """Whether this server answers MLflow's API at all: one small search, asked once."""
        if self._mlflow_seen is None:
            probe = f"{API}/experiments/search"
            self._mlflow_seen = False
            if failed_path != probe:
                with contextlib.suppress(SkillError):
                    status, payload = self._request("GET", probe, {"max_results": 1}, None)
                    self._mlflow_seen = isinstance(payload, dict) and (200 <= status < 300 or "error_code" in payload)
        return self._mlflow_seen

    def _error(self, status: int, payload: Any, what: str, path: str = "") -> SkillError:
        code = message = ""
        if isinstance(payload, dict):
            code = str(payload.get("error_code", ""))
            message = str(payload.get("message", ""))
        elif status not in (401, 403) and (status in (404, 405) or looks_like_html(payload)):
            return self._not_mlflow(status, payload, path or what or "the request")
        else:
            message = str(payload or "").strip().splitlines()[0] if payload else ""
        message = " ".join(scrub(message).split())[:400]  # one line: server messages may hold SQL over lines
        where = self.settings.display_uri
        if status == 401:
            return AuthError(
                f"{where} refused the credentials (401): {self.settings.credentials_hint()}; "
                f"{credentials_fix(self.settings)}"
            )
        if status == 403 or code == "PERMISSION_DENIED":
            return AuthError(
                f"permission denied (403) on {where}{' for ' + what if what else ''}: the user "
                f"is known but lacks the permission ({self.settings.credentials_hint()}); ask an admin to grant it"
            )
        if status == 404 or code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return NotFoundError(message or f"not found on {where}")
        if (
            code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE", "RESOURCE_ALREADY_EXISTS")
            or status == 400
        ):
            return UsageError(
                f"the server rejected the request: {message}" if message else f"bad request (400) to {where}"
            )
        return ServerError(f"{where} answered {status}{' ' + code if code else ''}: {message or 'no detail'}")


class NotMlflowError(SkillError):
    """The URI answers, but not as MLflow (an SSO login page, a proxy's page, a wrong path prefix).
    Deliberately not a NotFoundError: "no run with id ..." would hide the real cause."""

    exit_code = EXIT_SERVER


def looks_like_html(payload: Any) -> bool:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return isinstance(text, str) and text.lstrip()[:200].lower().startswith(
        ("<!doctype html", "<html", "<head", "<body")
    )


def describe_body(payload: Any) -> str:
    if looks_like_html(payload):
        text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
        title = ""
        lower = text.lower()
        start = lower.find("<title>")
        if start >= 0:
            end = lower.find("</title>", start)
            title = " ".join(text[start + 7 : end if end > 0 else start + 100].split())[:60]
        return f"an HTML page{' titled ' + repr(title) if title else ''}"
    if payload in (None, "", b""):
        return "an empty body"
    if isinstance(payload, (list, int, float, bool)):
        return f"JSON of another shape ({type(payload).__name__})"
    return f"text starting {truncate(str(payload), 40)!r}"


def credentials_fix(settings: Settings) -> str:
    """The fix for a 401, for the source the credentials came from (or where they belong: beside
    the URI, in the same source); _config works it out since it knows the sources."""
    return settings.credentials_fix or (
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) beside the URI "
        f"in the same place ({settings.source})"
    )


class HttpStore(Store):
    """Plain HTTP(S) to a tracking server, with bounded retries and a short connect timeout.

    Retries: refused connections always (nothing reached the server); 5xx/429 and dropped
    connections only for requests that are safe to repeat (reads, and writes that MLflow applies
    idempotently such as log-batch and runs/update). runs/create and experiments/create are sent
    once: the caller finds what a lost answer created instead of creating it twice."""

    RETRY_STATUSES = (429, 500, 502, 503, 504)
    NOT_REPEATABLE = ("/runs/create", "/experiments/create", "/registered-models/create", "/model-versions/create")

    def __init__(self, settings: Settings):
        super().__init__(settings)
        import requests

        self._requests = requests
        self.base_url = settings.tracking_uri.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "mlflow-python-skill"
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
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

    def repeatable(self, method: str, path: str) -> bool:
        return method == "GET" or not path.endswith(self.NOT_REPEATABLE)

    def _request(self, method, path, params, body):
        url = self.base_url + path
        if self.settings.query_params:
            params = [*self.settings.query_params, *((params or {}).items())]
        connect_timeout = min(5.0, self.settings.timeout)
        attempts = 1 + max(0, self.settings.retries)
        repeatable = self.repeatable(method, path)
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
                    f"TLS error talking to {self.settings.display_uri} ({self.settings.source}): set "
                    "MLFLOW_TRACKING_SERVER_CERT_PATH to the server's CA bundle (or MLFLOW_TRACKING_INSECURE_TLS=true "
                    "for a test server)"
                ) from exc
            except self._requests.exceptions.ReadTimeout as exc:
                # The server has the request and is still working on it: sending it again would
                # add load (an expensive search) or apply a write twice. Fail now; --timeout helps.
                raise RequestUnanswered(self, method, path, f"timed out after {self.settings.timeout:g}s") from exc
            except self._requests.exceptions.ConnectionError as exc:
                last_exc = exc
                if not repeatable and not _never_connected(exc):
                    raise RequestUnanswered(self, method, path, "lost the connection") from exc
                continue
            if resp.status_code in self.RETRY_STATUSES and attempt + 1 < attempts and repeatable:
                continue
            if resp.status_code in (502, 503, 504) and not repeatable:
                raise RequestUnanswered(self, method, path, f"answered {resp.status_code}")
            return resp.status_code, _decode(resp)
        raise ConnectionFailure(
            f"tracking server {self.settings.display_uri} is not reachable (tried {attempts}x, timeout "
            f"{self.settings.timeout:g}s; URI {self.settings.source}): start it, or {self.settings.uri_fix}, or raise "
            f"--timeout"
        ) from last_exc

    def put_file(self, path: str, local_file: Path) -> None:
        """Upload one file (proxied artifact serving: PUT /api/2.0/mlflow-artifacts/artifacts/...)."""
        with open(local_file, "rb") as fh:
            data = fh.read()
        for attempt in range(1 + self.settings.retries):
            try:
                resp = self.session.put(
                    self.base_url + path,
                    data=data,
                    params=list(self.settings.query_params) or None,
                    timeout=(min(5.0, self.settings.timeout), self.settings.timeout),
                )
            except (self._requests.exceptions.ConnectionError, self._requests.exceptions.Timeout) as exc:
                if attempt == self.settings.retries:
                    raise ConnectionFailure(
                        f"tracking server {self.settings.display_uri} is not reachable while uploading "
                        f"{local_file.name}"
                    ) from exc
                continue
            if 200 <= resp.status_code < 300:
                return
            if resp.status_code not in self.RETRY_STATUSES or attempt == self.settings.retries:
                raise self._error(resp.status_code, _decode(resp), f"upload of {local_file.name}")


class RequestUnanswered(ConnectionFailure):
    """A request that may have reached the server, whose answer was lost (read timeout, dropped
    connection, a gateway's 502/504). Not retried; callers of non-repeatable writes look up what
    it may have created."""

    def __init__(self, store: Store, method: str, path: str, how: str):
        self.path = path
        super().__init__(
            f"{method} {path} to {store.settings.display_uri} {how}; the server may still have applied it "
            f"(raise --timeout for slow servers)"
        )


def _never_connected(exc: Exception) -> bool:
    """True when the connection was refused or never opened: the server cannot have the request."""
    text = repr(exc)
    return any(
        s in text
        for s in (
            "NewConnectionError",
            "Connection refused",
            "Failed to establish",
            "NameResolutionError",
            "ConnectTimeout",
        )
    )


def _decode(resp) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text


DRIVERS = {  # database URI scheme -> (module to import, package that provides it)
    "postgresql": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg2": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg": ("psycopg", "psycopg[binary]"),
    "postgresql+pg8000": ("pg8000", "pg8000"),
    "mysql": ("MySQLdb", "mysqlclient"),
    "mysql+pymysql": ("pymysql", "pymysql"),
    "mysql+mysqldb": ("MySQLdb", "mysqlclient"),
    "mssql": ("pyodbc", "pyodbc"),
    "mssql+pyodbc": ("pyodbc", "pyodbc"),
}


def check_driver(settings: Settings) -> None:
    """A database URI needs its driver in the script's environment; refuse at once, naming the
    command that adds it, rather than fail deep inside SQLAlchemy."""
    module, package = DRIVERS.get(settings.scheme, (None, None))
    if module is None:
        return
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UsageError(
            f"{settings.scheme}:// stores need the {package} driver, which this script does not install "
            f"(URI {settings.display_uri} from {settings.source.removeprefix('MLFLOW_TRACKING_URI from ')}): "
            f"run it as `uv run --with {package} scripts/...` (or serve the database with `mlflow server` "
            "and point MLFLOW_TRACKING_URI at http://...)"
        )


class InProcessStore(Store):
    """Stores that are not servers (sqlite, other databases, file): MLflow's own server handlers
    run in this process through Flask's test client, so every script speaks one protocol and the
    store applies exactly the validation a real server would.

    Opening the store creates or migrates its schema on first use; that runs under a file lock, so
    several processes opening a fresh ./mlflow.db at once are safe, and a store left mid-migration
    by an interrupted process is reported with its fix instead of being migrated again."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        uri = settings.tracking_uri
        if uri.startswith("file:") and not settings.allow_file_store:
            raise UsageError(
                f"{uri} is MLflow's old file store, which MLflow refuses since 3.13: migrate it, "
                "or set MLFLOW_ALLOW_FILE_STORE=true"
            )
        check_driver(settings)
        uri = _absolute_sqlite_uri(uri)
        artifact_root = str(Path("mlruns").resolve())  # where MLflow's client puts them too
        from mlflow_skill.store import embedded as emb

        with quiet_mlflow_logging(), emb.gc_paused():
            from mlflow.server import app, handlers

            with emb.store_init_lock(uri, settings.display_uri):
                emb.check_sqlite_state(uri, settings.display_uri)
                # The handlers cache one store per process; point them at this one.
                handlers._tracking_store = None
                handlers._model_registry_store = None
                try:
                    handlers._get_tracking_store(uri, artifact_root)
                    handlers._get_model_registry_store(uri)
                except SkillError:
                    raise
                except Exception as exc:  # schema too old or too new, a broken half-created file, ...
                    raise emb.store_open_error(exc, uri, settings.display_uri) from None
            self._client = app.test_client()

    def _request(self, method, path, params, body):
        with quiet_mlflow_logging(), bytecode_cache():
            try:
                if method == "GET":
                    resp = self._client.get(path, query_string=params)
                else:
                    resp = self._client.open(path, method=method, json=body)
            except Exception as exc:  # a broken database file, a locked db, ...
                raise ServerError(f"store {self.settings.display_uri} failed: {scrub(str(exc))[:300]}") from exc
        payload = resp.get_json(silent=True)
        return resp.status_code, payload if payload is not None else resp.get_data(as_text=True)


@contextlib.contextmanager
def bytecode_cache():
    """Let Python cache the byte-code of the packages imported here even where
    PYTHONDONTWRITEBYTECODE is set. The scripts' uv environments are installed without compiling
    (compiling all of MLflow's dependencies took most of a first call, once per script); this way
    a first call compiles only the modules it imports, into uv's environment, and later calls
    reuse them. Only third-party packages are imported inside, never the user's files."""
    import sys

    from mlflow_skill.store import embedded as emb

    emb.borrow_bytecode()  # what another script's environment compiled already
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.dont_write_bytecode = previous


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
def quiet_mlflow_logging():
    """MLflow logs database migrations at INFO on first use; keep stderr for our diagnostics."""
    import logging
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. Starlette's deprecation warnings on import
        import mlflow  # noqa: F401  (importing MLflow configures its loggers: do that first)

    logger = logging.getLogger("mlflow")
    alembic = logging.getLogger("alembic")
    previous = (logger.level, alembic.level)
    logger.setLevel(logging.WARNING)
    alembic.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous[0])
        alembic.setLevel(previous[1])


def open_store(settings: Settings) -> Store:
    check_driver(settings)  # a database URI without its driver: refused before anything is imported
    with bytecode_cache():  # the packages each store imports (requests, MLflow): see bytecode_cache
        scheme = settings.scheme
        if scheme in ("http", "https"):
            if settings.auth_plugin or settings.aws_sigv4:
                return MlflowRestStore(settings)
            return HttpStore(settings)
        if scheme.startswith("databricks"):
            return MlflowRestStore(settings)
        return InProcessStore(settings)


class MlflowRestStore(Store):
    """Servers whose authentication only MLflow itself knows (Databricks profiles, auth plugins,
    AWS SigV4): MLflow's own REST helper carries the request, with our settings, not the process's."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        with quiet_mlflow_logging():
            if settings.scheme.startswith("databricks"):
                from mlflow.tracking._tracking_service.utils import _get_store

                self._host_creds = _get_store(settings.tracking_uri).get_host_creds()
            else:
                from mlflow.utils.rest_utils import MlflowHostCreds

                self._host_creds = MlflowHostCreds(
                    host=settings.tracking_uri,
                    username=settings.username,
                    password=settings.password,
                    token=settings.token,
                    aws_sigv4=settings.aws_sigv4,
                    auth=settings.auth_plugin,
                    ignore_tls_verification=settings.insecure_tls,
                    client_cert_path=settings.client_cert_path,
                    server_cert_path=settings.server_cert_path,
                )

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
                raise_on_status=False,
            )
        except Exception as exc:
            raise ConnectionFailure(
                f"cannot reach {self.settings.display_uri} ({self.settings.source}): {scrub(str(exc))[:300]}"
            ) from exc
        return resp.status_code, _decode(resp)
