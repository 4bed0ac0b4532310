"""Stores that are not servers: a database URI (sqlite, PostgreSQL, MySQL, SQL Server) or MLflow's
old file store, opened in-process through MLflow's own server handlers; the database drivers and
the command that adds one; MLflow's logging kept off stderr while it opens a store.

The HTTP side (the REST protocol, errors, retries) is store/transport.py; the embedded sqlite
store's safety (the schema lock, a half-migrated file) is store/embedded.py.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
from dataclasses import dataclass
from pathlib import Path

from mlflow_skill.core.config import Settings
from mlflow_skill.core.errors import AuthError, ConnectionFailure, NotFoundError, ServerError, SkillError, UsageError
from mlflow_skill.core.secrets import scrub
from mlflow_skill.store.transport import Store, bytecode_cache

DATABASES = {  # URI scheme -> (name, the SQLAlchemy drivers tried in order, the package to add when none is there)
    # The package named in the fix installs from a wheel with no system library: psycopg and
    # pymssql bundle theirs; mysqlclient and pyodbc need MySQL's or an ODBC client installed.
    "postgresql": ("PostgreSQL", ("psycopg", "psycopg2", "pg8000"), "psycopg[binary]"),
    "mysql": ("MySQL", ("mysqldb", "pymysql", "mysqlconnector"), "pymysql"),
    "mssql": ("SQL Server", ("pyodbc", "pymssql"), "pymssql"),
}
DRIVER_PACKAGES = {  # SQLAlchemy driver name -> the package that provides its DB-API module
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "mysqldb": "mysqlclient",
    "pymysql": "pymysql",
    "mysqlconnector": "mysql-connector-python",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}


@dataclass(frozen=True)
class DatabaseTarget:
    """A database URI made ready to open: the URI MLflow gets (a driver named where the user's
    URI named none and SQLAlchemy's default one is not installed) and where the server is."""

    uri: str
    name: str  # "PostgreSQL"
    driver: str
    host: str  # "db.example.com:5432", for messages


def is_database_uri(settings: Settings) -> bool:
    return settings.scheme.split("+", 1)[0] in DATABASES


def check_driver(settings: Settings) -> DatabaseTarget | None:
    """A database URI needs a driver in the script's environment: use the one the URI names, or
    for a bare scheme SQLAlchemy's default, else any other driver for that database that is
    installed (so `--with psycopg2-binary` works as well as `--with 'psycopg[binary]'`). None
    installed: refused at once, naming the command that adds one, before anything connects."""
    if not is_database_uri(settings):
        return None
    return _database_target(settings.tracking_uri, settings.display_uri, settings.source)


@functools.lru_cache(maxsize=8)
def _database_target(uri: str, display: str, source: str) -> DatabaseTarget:
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    database, _, named = url.drivername.partition("+")
    label, candidates, package = DATABASES[database]
    if named:
        candidates, package = (named,), DRIVER_PACKAGES.get(named, named)
    reasons = []
    for driver in candidates:
        reason = _driver_missing(f"{database}+{driver}")
        if reason is None:
            chosen = url if named else url.set(drivername=f"{database}+{driver}")
            host = f"{url.host or 'localhost'}{':' + str(url.port) if url.port else ''}"
            return DatabaseTarget(chosen.render_as_string(hide_password=False), label, driver, host)
        reasons.append(reason)
    raise UsageError(
        f"{database}:// stores need a {label} driver, which this script's environment lacks ({', '.join(reasons)}): "
        f"run it as `uv run --with {shlex.quote(package)} scripts/...` "
        f"(URI {display} from {source.removeprefix('MLFLOW_TRACKING_URI from ')}), or serve the database with "
        "`mlflow server` and point MLFLOW_TRACKING_URI at http://..."
    )


def _driver_missing(drivername: str) -> str | None:
    """None when SQLAlchemy's dialect imports its DB-API module; else why not, briefly."""
    from sqlalchemy.engine import make_url

    try:
        dialect = make_url(f"{drivername}://").get_dialect()
        load = getattr(dialect, "import_dbapi", None) or dialect.dbapi  # SQLAlchemy 2 / 1.4
        load()
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        return f"no module {missing}" if missing else " ".join(str(exc).split())[:120]
    except Exception as exc:  # an unknown driver name
        return f"{drivername}: {type(exc).__name__}"
    return None


CONNECT_TIMEOUT_ARGS = {  # driver -> its connect-timeout argument (seconds)
    "psycopg": "connect_timeout",
    "psycopg2": "connect_timeout",
    "pg8000": "timeout",
    "mysqldb": "connect_timeout",
    "pymysql": "connect_timeout",
    "mysqlconnector": "connection_timeout",
    "pyodbc": "timeout",
    "pymssql": "login_timeout",
}
UNREACHABLE = (
    "connection refused",
    "could not connect",
    "can't connect",
    "connection failed",
    "timeout expired",
    "timed out",
    "could not translate host name",
    "name or service not known",
    "unable to connect",
    "no route to host",
    "network is unreachable",
    "server is unavailable",
)
REFUSED_LOGIN = ("password authentication failed", "access denied", "login failed", "no password supplied")
NO_DATABASE = ("does not exist", "unknown database", "cannot open database")


def check_connection(target: DatabaseTarget, settings: Settings) -> None:
    """Connect once, with a short timeout, before MLflow opens the store: MLflow creates its
    tables on first use and retries an unreachable server for minutes with a warning each time.
    A database that cannot be used is reported in one line and left as it was."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    timeout = max(2, int(min(10.0, settings.timeout)))
    argument = CONNECT_TIMEOUT_ARGS.get(target.driver)
    engine = create_engine(target.uri, poolclass=NullPool, connect_args={argument: timeout} if argument else {})
    try:
        with engine.connect():
            pass
    except Exception as exc:
        raise _connection_error(exc, target, settings) from None
    finally:
        engine.dispose()


def _connection_error(exc: Exception, target: DatabaseTarget, settings: Settings) -> SkillError:
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(scrub(str(cause)).split())
    lower = text.lower()
    where = f"the {target.name} database at {target.host} (URI {settings.display_uri}, {settings.source})"
    if any(s in lower for s in REFUSED_LOGIN):
        return AuthError(
            f"{where} refused the login ({text[:200]}): fix the user:password@ in the URI: {settings.uri_fix}"
        )
    if any(s in lower for s in NO_DATABASE) and "database" in lower:
        return NotFoundError(f"{where}: {text[:200]}: create the database, or {settings.uri_fix}")
    if any(s in lower for s in UNREACHABLE):
        return ConnectionFailure(f"{where} is not reachable ({text[:200]}): start it, or {settings.uri_fix}")
    return ServerError(f"{where} could not be used ({type(cause).__name__}: {text[:300]})")


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
        target = check_driver(settings)
        if target is not None:
            check_connection(target, settings)  # before MLflow creates a table
            uri = target.uri
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
    retries = logging.getLogger("mlflow.store.db.utils")  # "engine could not be created ... retried": 9 warnings
    previous = (logger.level, alembic.level, retries.level)
    logger.setLevel(logging.WARNING)
    alembic.setLevel(logging.WARNING)
    retries.setLevel(logging.ERROR)  # a database that never answers ends in one error line (store_open_error)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous[0])
        alembic.setLevel(previous[1])
        retries.setLevel(previous[2])
