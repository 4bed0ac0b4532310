"""The tracking store: MLflow's REST API over HTTP, through MLflow's own helper, or in-process;
one pager for every paged endpoint; experiment and run look-ups; idempotent experiment creation.

Talking to a server needs only `requests` (`import mlflow` costs seconds); MLflow itself is
imported for stores that are not servers (sqlite, a database URI, the old file store) and for
auth that only MLflow knows (Databricks, MLFLOW_TRACKING_AUTH plugins, AWS SigV4).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
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
from mlflow_skill.store import reader, schema, watchdog

API = "/api/2.0/mlflow"


SLOW_NOTICE_S = 3.0  # a call waiting this long gets one line on stderr saying what it waits for


READ_POSTS = ("/search", "/traces/metrics")  # POST endpoints that only read: nothing to apply twice


class Store:
    """Speaks MLflow's REST API (JSON in, JSON out) and maps its errors to SkillErrors."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._mlflow_seen: bool | None = None  # None: not yet known
        self._mlflow_confirmed = not self.remote  # an in-process store is MLflow itself
        self.on_slow: Callable[[str], None] | None = None  # told once what a slow call waits for
        self._slow_told = False

    @property
    def remote(self) -> bool:
        return self.settings.is_http or self.settings.scheme.startswith("databricks")

    @contextlib.contextmanager
    def watching(self, method: str, path: str) -> Iterator[None]:
        """Around one call: past SLOW_NOTICE_S, tell on_slow (once per store) what is awaited."""
        timer = None
        if self.on_slow is not None and not self._slow_told:

            def tell() -> None:
                self._slow_told = True
                if self.on_slow is not None:
                    self.on_slow(f"{method} {path}")

            timer = threading.Timer(SLOW_NOTICE_S, tell)
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()

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
        bad = schema.problem(path, payload)
        if bad:
            raise self.wrong_shape(path, bad)
        if not self._mlflow_confirmed:
            if schema.is_mlflow_answer(path, payload):
                self._mlflow_confirmed = True  # MLflow's shape with content: later empty answers are believed
            elif schema.endpoint(path) in schema.SCHEMAS:
                self.confirm_mlflow(path)  # an empty answer (`{}`) is believed only from MLflow
        return payload

    def wrong_shape(self, path: str, detail: str) -> ServerError:
        return ServerError(
            f"{self.settings.display_uri} ({self.settings.source}) answered {path} with JSON of another shape "
            f"({truncate(detail, 120)}): is this an MLflow tracking server? {self.settings.uri_fix}"
        )

    def confirm_mlflow(self, path: str) -> None:
        """Before an empty answer is believed ("0 experiments"), check once that the server speaks
        MLflow: `{}` from any JSON endpoint would otherwise pass for an empty list. MLflow answers
        experiments/get for id 0 with the experiment or with its own error shape."""
        if self._mlflow_confirmed:
            return
        probe = f"{API}/experiments/get"
        status, payload = self._request("GET", probe, {"experiment_id": "0"}, None)
        known = isinstance(payload, dict) and (
            isinstance(payload.get("experiment"), dict) or isinstance(payload.get("error_code"), str)
        )
        if not known:
            kind = "JSON without MLflow's fields" if isinstance(payload, dict) else describe_body(payload)
            raise ServerError(
                f"{self.settings.display_uri} ({self.settings.source}) answered {path} with an empty result and "
                f"{probe} with {kind} ({status}): is this an MLflow tracking server? {self.settings.uri_fix}"
            )
        self._mlflow_confirmed = True

    def _not_mlflow(self, status: int, payload: Any, path: str) -> SkillError:
        """An answer that is not MLflow's JSON: say what came back and what to check. On a server
        that does speak MLflow (checked once) it is a missing endpoint, a NotFoundError callers may
        fall back on; otherwise a NotMlflowError (exit 3 for a 404, else 6) that no look-up mistakes
        for "no such run"."""
        kind = describe_body(payload)
        where = f"{self.settings.display_uri} ({self.settings.source})"
        if path.startswith("/api/") and self._speaks_mlflow(path):
            from mlflow_skill.store.versions import too_old_error

            too_old = too_old_error(self, path, status)  # an MLflow 2 server asked for an MLflow 3 feature
            if too_old is not None:
                return too_old
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
            self._mlflow_confirmed = self._mlflow_confirmed or isinstance(payload.get("error_code"), str)
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
    NOT_REPEATABLE = (
        "/runs/create",
        "/experiments/create",
        "/registered-models/create",
        "/model-versions/create",
        "/assessments",  # POST /api/3.0/mlflow/traces/{id}/assessments creates one more each time (log_feedback.py)
    )

    def __init__(self, settings: Settings):
        super().__init__(settings)
        import requests

        self._requests = requests
        self.base_url = settings.tracking_uri.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "mlflow-python-skill"
        self.session.headers["Accept-Encoding"] = reader.ACCEPT_ENCODING  # what store/reader.py decodes
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
        watchdog.install(self.session)  # --timeout bounds the status line and headers too

    def repeatable(self, method: str, path: str) -> bool:
        return method == "GET" or not path.endswith(self.NOT_REPEATABLE)

    def _request(self, method, path, params, body):
        url = self.base_url + path
        if self.settings.query_params:
            params = [*self.settings.query_params, *((params or {}).items())]
        attempts = 1 + max(0, self.settings.retries)
        repeatable = self.repeatable(method, path)
        last_exc: Exception | None = None
        with self.watching(method, path):
            for attempt in range(attempts):
                if attempt:
                    time.sleep(min(4.0, 0.5 * 2 ** (attempt - 1)))
                try:
                    status, payload = self._attempt(method, url, path, params, body)
                except _Dropped as exc:
                    last_exc = exc.cause
                    if not repeatable and not _never_connected(exc.cause):
                        raise RequestUnanswered(self, method, path, "lost the connection") from exc.cause
                    continue
                if status in self.RETRY_STATUSES and attempt + 1 < attempts and repeatable:
                    continue
                if status in (502, 503, 504) and not repeatable:
                    raise RequestUnanswered(self, method, path, f"answered {status}")
                return status, payload
        raise ConnectionFailure(
            f"tracking server {self.settings.display_uri} is not reachable (tried {attempts}x, timeout "
            f"{self.settings.timeout:g}s; URI {self.settings.source}): start it, or {self.settings.uri_fix}, or raise "
            f"--timeout"
        ) from last_exc

    def _attempt(self, method: str, url: str, path: str, params, body) -> tuple[int, Any]:
        """One request and its whole answer within the deadline (--timeout covers both)."""
        deadline = time.monotonic() + self.settings.timeout
        exceptions = self._requests.exceptions
        watch = watchdog.HeaderDeadline(self.settings.timeout)
        try:
            with watch:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=body if method != "GET" else None,
                    timeout=(min(5.0, self.settings.timeout), self.settings.timeout),
                    verify=self.session.verify,  # per request, or REQUESTS_CA_BUNDLE would override it
                    stream=True,
                )
        except exceptions.SSLError as exc:
            if watch.fired:
                raise self._late_headers(method, path) from None
            raise ConnectionFailure(
                f"TLS error talking to {self.settings.display_uri} ({self.settings.source}): set "
                "MLFLOW_TRACKING_SERVER_CERT_PATH to the server's CA bundle (or MLFLOW_TRACKING_INSECURE_TLS=true "
                "for a test server)"
            ) from exc
        except exceptions.ReadTimeout as exc:
            # The server has the request and is still working on it: sending it again would
            # add load (an expensive search) or apply a write twice. Fail now; --timeout helps.
            raise RequestUnanswered(self, method, path, f"timed out after {self.settings.timeout:g}s") from exc
        except exceptions.ConnectionError as exc:
            if watch.fired:
                raise self._late_headers(method, path) from None
            raise _Dropped(exc) from exc
        if watch.fired:  # the deadline passed as the headers arrived: the socket is already shut
            resp.close()
            raise self._late_headers(method, path)
        return resp.status_code, read_answer(self, resp, deadline, method, path)

    def _late_headers(self, method: str, path: str) -> RequestUnanswered:
        """The server kept the status line or headers coming past --timeout (a byte at a time)."""
        how = f"timed out: no complete answer within {self.settings.timeout:g}s (the headers never ended)"
        return RequestUnanswered(self, method, path, how)

    def put_file(self, path: str, local_file: Path) -> None:
        """Upload one file (proxied artifact serving: PUT /api/2.0/mlflow-artifacts/artifacts/...)."""
        with open(local_file, "rb") as fh:
            data = fh.read()
        for attempt in range(1 + self.settings.retries):
            watch = watchdog.HeaderDeadline(self.settings.timeout)
            try:
                with watch:
                    resp = self.session.put(
                        self.base_url + path,
                        data=data,
                        params=list(self.settings.query_params) or None,
                        timeout=(min(5.0, self.settings.timeout), self.settings.timeout),
                        verify=self.session.verify,
                        stream=True,
                    )
                payload = read_answer(self, resp, time.monotonic() + self.settings.timeout, "PUT", path)
            except (self._requests.exceptions.ConnectionError, self._requests.exceptions.Timeout, _Dropped) as exc:
                if watch.fired:
                    raise self._late_headers("PUT", path) from None
                if attempt == self.settings.retries:
                    raise ConnectionFailure(
                        f"tracking server {self.settings.display_uri} is not reachable while uploading "
                        f"{local_file.name}"
                    ) from exc
                continue
            if 200 <= resp.status_code < 300:
                return
            if resp.status_code not in self.RETRY_STATUSES or attempt == self.settings.retries:
                raise self._error(resp.status_code, payload, f"upload of {local_file.name}")


class RequestUnanswered(ConnectionFailure):
    """A request that may have reached the server, whose answer was lost (read timeout, dropped
    connection, a gateway's 502/504). Not retried; callers of non-repeatable writes look up what
    it may have created. Only a write can have been applied, so only a write's message says so."""

    def __init__(self, store: Store, method: str, path: str, how: str):
        self.path = path
        applied = "" if is_read(method, path) else "; the server may still have applied it"
        super().__init__(
            f"{method} {path} to {store.settings.display_uri} {how}{applied} (raise --timeout for slow servers)"
        )


def is_read(method: str, path: str) -> bool:
    return method == "GET" or path.endswith(READ_POSTS)


class _Dropped(Exception):
    """The connection was refused or lost (before or during the answer): retried when safe."""

    def __init__(self, cause: Exception):
        super().__init__(str(cause))
        self.cause = cause


def read_answer(store: Store, resp: Any, deadline: float, method: str, path: str) -> Any:
    """The body of a streamed `requests` answer through store/reader.py, its failures as
    SkillErrors: too large (exit 6), not complete by the deadline (exit 4), cut (_Dropped)."""
    settings = store.settings
    cap = int(settings.max_answer_mb * 1024 * 1024)
    try:
        body = reader.read_body(resp, deadline, cap)
    except reader.AnswerTooLarge as exc:
        packed = f", from {exc.compressed / 1048576:.1f} MiB of {exc.encoding} on the wire" if exc.compressed else ""
        raise ServerError(
            f"{settings.display_uri} sent more than {settings.max_answer_mb:g} MiB answering {method} {path}"
            f"{packed}; stopped reading: narrow the query (--max-results, --experiment, --filter), or raise "
            f"MLFLOW_SKILL_MAX_ANSWER_MB if the store really holds that much"
        ) from None
    except reader.AnswerLate as exc:
        raise RequestUnanswered(
            store,
            method,
            path,
            f"timed out: no complete answer within {settings.timeout:g}s ({exc.received} bytes had come)",
        ) from None
    except reader.UnknownEncoding as exc:
        raise ServerError(
            f"{settings.display_uri} answered {method} {path} with Content-Encoding {str(exc)!r}, which was not asked "
            f"for ({reader.ACCEPT_ENCODING}): a proxy in between may rewrite answers; check it"
        ) from None
    except reader.AnswerCut as exc:
        raise _Dropped(exc) from exc
    return reader.parse_body(body, resp.encoding)


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


def open_store(settings: Settings) -> Store:
    from mlflow_skill.store import database  # database URIs: the driver and a connection are checked first

    with bytecode_cache():  # the packages each store imports (requests, MLflow): see bytecode_cache
        scheme = settings.scheme
        if scheme in ("http", "https"):
            if settings.auth_plugin or settings.aws_sigv4:
                return MlflowRestStore(settings)
            return HttpStore(settings)
        if scheme.startswith("databricks"):
            return MlflowRestStore(settings)
        return database.InProcessStore(settings)


class MlflowRestStore(Store):
    """Servers whose authentication only MLflow itself knows (Databricks profiles, auth plugins,
    AWS SigV4): MLflow's own REST helper carries the request, with our settings, not the process's."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        from mlflow_skill.store.database import quiet_mlflow_logging

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

        with self.watching(method, path):
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
                    stream=True,  # the body goes through store/reader.py: capped, one deadline
                )
            except Exception as exc:
                raise ConnectionFailure(
                    f"cannot reach {self.settings.display_uri} ({self.settings.source}): {scrub(str(exc))[:300]}"
                ) from exc
            try:
                return resp.status_code, read_answer(self, resp, time.monotonic() + self.settings.timeout, method, path)
            except _Dropped as exc:
                raise RequestUnanswered(self, method, path, f"lost the connection mid-answer ({exc})") from None
