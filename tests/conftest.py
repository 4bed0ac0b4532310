"""Fixtures: real MLflow tracking servers on 127.0.0.1 and a way to drive the scripts.

- `server`: `mlflow server` with a sqlite backend and proxied artifacts in a temp dir (session).
- `auth_server`: the same in basic-auth mode; admin and a READ-only user (session).
- `run_script`: calls a script's main(argv) in this process with a clean environment and
  returns (code, stdout, stderr); fast, so most tests use it.
- `uv_run`: runs `uv run scripts/<name>.py` in a subprocess, exactly as an agent does.

Set MLFLOW_SKILL_TEST_SERVER=http://127.0.0.1:PORT to run the suite against a server you
started yourself (e.g. a PostgreSQL-backed one); the fixture then starts none.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

ADMIN_USER = "admin"
ADMIN_PASSWORD = "Adm1n-sentinel-PW-7f3c"  # a sentinel: tests assert it never appears in output
READER_USER = "reader"
READER_PASSWORD = "Read3r-sentinel-PW-91ab"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, proc: subprocess.Popen | None, log: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"mlflow server at {url} did not become healthy:\n{log.read_text()[-3000:]}")


@dataclass
class Server:
    uri: str
    tmp: Path
    proc: subprocess.Popen | None = None
    admin: tuple[str, str] | None = None

    def stop(self) -> None:
        """Stop the server and its children: MLflow 2.x's `mlflow server` runs gunicorn as a child
        that outlives a terminated parent (about 260 MB a server), so the whole group goes."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(5)
        self._signal_group(signal.SIGKILL)  # children that ignored SIGTERM or outlived the parent

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # launch() made the server a process-group leader


def launch(cmd: list[str], env: dict[str, str], tmp: Path, port: int) -> Server:
    """Start `cmd` (an `mlflow server` on `port`), logging to tmp/server.log; return once healthy."""
    log = tmp / "server.log"
    proc = subprocess.Popen(
        cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True
    )
    server = Server(uri=f"http://127.0.0.1:{port}", tmp=tmp, proc=proc)
    try:
        wait_for_health(server.uri, proc, log)
    except Exception:
        server.stop()
        raise
    return server


def start_server(tmp: Path, auth: bool = False, workers: int = 1, backend_uri: str | None = None) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # MLflow 3.x starts a job runner and about ten huey consumer processes per server (GenAI jobs the
    # skill never uses): on 2 cores they cost more than the tests themselves.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri or f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if auth:
        ini = tmp / "basic_auth.ini"
        ini.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = sqlite:///{tmp / 'basic_auth.db'}\n"
            f"admin_username = {ADMIN_USER}\n"
            f"admin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = uuid.uuid4().hex
        cmd += ["--app-name", "basic-auth"]
    server = launch(cmd, env, tmp, port)
    if auth:
        server.admin = (ADMIN_USER, ADMIN_PASSWORD)
        resp = requests.post(
            f"{server.uri}/api/2.0/mlflow/users/create",
            json={"username": READER_USER, "password": READER_PASSWORD},
            auth=server.admin,
            timeout=10,
        )
        resp.raise_for_status()
        for user, password in ((ADMIN_USER, ADMIN_PASSWORD), (READER_USER, READER_PASSWORD)):
            set_password_hash(server, user, password)
    return server


# werkzeug's default (scrypt) costs the basic-auth server about 0.2 s per request on these
# machines; the same check with a cheap PBKDF2 hash takes milliseconds. Real servers keep theirs.
FAST_PASSWORD_HASH = "pbkdf2:sha256:1000"


def set_password_hash(server: Server, username: str, password: str, is_admin: bool | None = None) -> None:
    """Store `password` for `username` in the basic-auth database with the cheap hash (a new user
    unless it exists; MLflow's API would refuse passwords under 12 characters)."""
    import sqlite3

    from werkzeug.security import generate_password_hash

    hashed = generate_password_hash(password, method=FAST_PASSWORD_HASH)
    with sqlite3.connect(server.tmp / "basic_auth.db") as db:
        updated = db.execute("UPDATE users SET password_hash = ? WHERE username = ?", (hashed, username)).rowcount
        if not updated:
            db.execute(
                "INSERT INTO users (username, password_hash, is_admin) VALUES (?, ?, ?)",
                (username, hashed, int(bool(is_admin))),
            )


# Integration suites that run against both backends: the sqlite server (quick loop) and the
# production-shaped PostgreSQL one (two workers, proxied artifacts; slow tier).
BOTH_BACKENDS = {
    "test_create_experiment",
    "test_query_experiments",
    "test_get_metric_history",
    "test_log_backtest",
    "test_traces",
}
_SERVERS: dict[str, Server] = {}  # one server per backend for the whole session, however often asked


def pytest_collection_modifyitems(items):
    """Tests through `uv run` (a subprocess per call; the first one builds the script's environment,
    about 30 s each) belong to the slow tier; the quick loop calls main(argv) in-process."""
    for item in items:
        if "uv_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__ in BOTH_BACKENDS and "server" in metafunc.fixturenames:
        backends = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
        metafunc.parametrize("backend", backends, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session", autouse=True)
def _stop_servers():
    yield
    for srv in _SERVERS.values():
        srv.stop()
    _SERVERS.clear()


def shared_server(backend: str, tmp_path_factory) -> Server:
    if backend not in _SERVERS:
        if backend == "postgresql":
            _SERVERS[backend] = start_pg_server(tmp_path_factory)
        else:
            _SERVERS[backend] = start_server(tmp_path_factory.mktemp("server"))
    return _SERVERS[backend]


@pytest.fixture(scope="session")
def server(backend, tmp_path_factory):
    external = os.environ.get("MLFLOW_SKILL_TEST_SERVER")
    if external:
        return Server(uri=external, tmp=tmp_path_factory.mktemp("external"))
    return shared_server(backend, tmp_path_factory)


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("auth_server"), auth=True)
    yield srv
    srv.stop()


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries from Debian's packages, if installed."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


@dataclass
class Postgres:
    uri: str
    data: Path
    bin: Path
    user: str | None

    def stop(self) -> None:
        _as_user(self.user, [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(self.data.parent, ignore_errors=True)


def _as_user(user: str | None, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if user:  # PostgreSQL refuses to run as root
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)


def start_postgres() -> Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (Debian's package), trust auth, one database."""
    import tempfile

    pgbin = postgres_bin()
    if pgbin is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    user = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="mlflow-skill-pg-"))
    base.chmod(0o755)
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(sockets, user)
    port = free_port()
    _as_user(user, [str(pgbin / "initdb"), "-D", str(data), "-A", "trust", "-U", "mlflow", "--no-sync", "-E", "UTF8"])
    _as_user(
        user,
        [
            str(pgbin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "pg.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c full_page_writes=off",
            "start",
        ],
    )
    _as_user(user, [str(pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow"])
    return Postgres(uri=f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow", data=data, bin=pgbin, user=user)


_POSTGRES: list[Postgres] = []  # the session's one cluster; each user gets its own database


def postgres_database(name: str) -> str:
    """A new database in the session's PostgreSQL cluster (started on first use, stopped at exit)."""
    if postgres_bin() is None and not os.environ.get("CI"):
        pytest.skip("PostgreSQL is not installed here (CI installs it: apt-get install postgresql)")
    if not _POSTGRES:
        _POSTGRES.append(start_postgres())
        atexit.register(_POSTGRES[0].stop)
    pg = _POSTGRES[0]
    port = pg.uri.rsplit(":", 1)[1].split("/")[0]
    if name != "mlflow":
        _as_user(pg.user, [str(pg.bin / "createdb"), "-h", "127.0.0.1", "-p", port, "-U", "mlflow", name])
    return pg.uri.rsplit("/", 1)[0] + "/" + name


def start_pg_server(tmp_path_factory) -> Server:
    """Production-shaped: PostgreSQL backend, proxied artifact serving, two workers."""
    uri = postgres_database("mlflow")
    return start_server(tmp_path_factory.mktemp("pg_server"), workers=2, backend_uri=uri)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    return shared_server("postgresql", tmp_path_factory)


@pytest.fixture(scope="session")
def client(server):
    """MLflow's own client, for seeding data and checking what the scripts wrote."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(
        tracking_uri=server.uri, registry_uri=server.uri
    )  # never a registry URI another test set globally


@pytest.fixture(scope="session")
def empty_env_dir(tmp_path_factory):
    """Where the scripts look for .env files during tests: empty unless a test writes one."""
    return tmp_path_factory.mktemp("envdir")


def clean_env(extra: dict[str, str] | None = None, env_dir: Path | None = None) -> dict[str, str]:
    """The process environment minus every MLflow/Doppler setting of the person running the tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "DATABRICKS_", "DOPPLER_")) and k != "PYTEST_CURRENT_TEST"
    }
    if env_dir is not None:
        env["MLFLOW_SKILL_ENV_DIR"] = str(env_dir)
    env.update(extra or {})
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


_modules: dict[str, object] = {}


def load_script(name: str):
    """Import scripts/<name>.py as a module (cached)."""
    if name not in _modules:
        path = SCRIPTS / (name if name.endswith(".py") else name + ".py")
        spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_") + "_under_test", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        _modules[name] = module
    return _modules[name]


def call_script(name: str, args, env: dict[str, str], cwd: Path | None = None) -> Result:
    """scripts/<name>.py's main(args) in this process, with exactly `env` as the environment and
    `cwd` as the working folder (both restored afterwards, as are the warning filters a script may
    set, e.g. urllib3.disable_warnings for insecure TLS), stdout and stderr captured."""
    from mlflow_skill.core.secrets import clear_secrets

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    clear_secrets()
    out, err = io.StringIO(), io.StringIO()
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            code = load_script(name).main([str(a) for a in args])
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue())


def _script_runner(server, env_dir: Path):
    def run(
        name: str, *args: str, env: dict[str, str] | None = None, uri: str | None = "server", cwd: Path | None = None
    ) -> Result:
        base = clean_env(env_dir=env_dir)
        if uri == "server":
            base["MLFLOW_TRACKING_URI"] = server.uri
        elif uri:
            base["MLFLOW_TRACKING_URI"] = uri
        base.update(env or {})
        return call_script(name, args, base, cwd)

    return run


@pytest.fixture
def run_script(server, empty_env_dir):
    """run_script("query_experiments", "runs", ..., env={...}, uri=...) -> Result.

    By default the script talks to the `server` fixture through MLFLOW_TRACKING_URI; pass
    uri=None (and env) to test other configuration paths.
    """
    return _script_runner(server, empty_env_dir)


@pytest.fixture(scope="module")
def module_run_script(server, tmp_path_factory):
    """run_script for module-scoped fixtures (data logged once for every test of a module)."""
    return _script_runner(server, tmp_path_factory.mktemp("module-envdir"))


UV = shutil.which("uv") or "uv"


@pytest.fixture
def uv_run(server, empty_env_dir):
    """uv_run("query_experiments", "experiments", env=..., uri=..., cwd=...) in a subprocess."""

    def run(
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        uri: str | None = "server",
        cwd: Path | None = None,
        timeout: float = 300,
    ) -> Result:
        extra = {"MLFLOW_SKILL_ENV_DIR": str(empty_env_dir)}
        if uri:
            extra["MLFLOW_TRACKING_URI"] = server.uri if uri == "server" else uri
        script = SCRIPTS / (name if name.endswith(".py") else name + ".py")
        return run_uv(script, *args, env={**extra, **(env or {})}, cwd=cwd, timeout=timeout)

    return run


@pytest.fixture(scope="module")
def proxy(server):
    """A fault-injecting proxy in front of the `server` fixture (tests/faultproxy.py)."""
    from faultproxy import FaultProxy

    p = FaultProxy(server.uri)
    yield p
    p.close()


@pytest.fixture
def via_proxy(proxy):
    """The proxy, reset before and after the test."""
    proxy.reset()
    yield proxy
    proxy.reset()


def unique(prefix: str) -> str:
    """A fresh experiment name, so tests sharing the session server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- Pinned environments and other servers (issue 21): scripts run through `uv run` with extra uv
# options (`--with DRIVER`), from another folder (the compatibility copy), and MLflow 2.x servers.


def run_uv(
    script: Path,
    *args,
    uv_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 900,
) -> Result:
    """`uv run [uv_args] script args` in a subprocess with a clean environment plus `env`."""
    base = clean_env(env_dir=Path(cwd or ROOT))
    base.setdefault("UV_PYTHON_DOWNLOADS", "never")
    base.update(env or {})
    proc = subprocess.run(
        [UV, "run", "--quiet", *uv_args, str(script), *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=base,
        cwd=cwd or ROOT,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def start_v2_server(tmp: Path) -> Server:
    """`mlflow server` from MLflow 2.22's own environment (tests/mlflow_envs.py), sqlite backend and
    proxied artifacts, on 127.0.0.1."""
    from mlflow_envs import mlflow2_python

    python = mlflow2_python()
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cmd = [str(python), "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
    cmd += ["--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    return launch([*cmd, "--workers", "1"], env, tmp, port)


@pytest.fixture(scope="session")
def v2_server(tmp_path_factory):
    """An MLflow 2.22 tracking server (slow tier: its environment is built once, then cached)."""
    srv = start_v2_server(tmp_path_factory.mktemp("v2_server"))
    yield srv
    srv.stop()
    port = srv.uri.rsplit(":", 1)[1]
    deadline = time.monotonic() + 10  # a killed process stays in /proc for a moment
    while (left := processes_mentioning(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"the MLflow 2.22 server left processes behind (its gunicorn): {left}"


def processes_mentioning(needle: str) -> list[str]:
    """Command lines of live processes that contain `needle` (Linux /proc), for leak checks."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle in text and ("gunicorn" in text or "mlflow" in text):
                found.append(text.strip()[:200])
    return found


S3_BUCKET = "mlflow-artifacts"
S3_SECRET = "S3-secret-sentinel-4d2a"  # a sentinel: tests assert it never appears in output


@dataclass
class ObjectStore:
    endpoint: str
    bucket: str
    client_env: dict[str, str]  # what a client needs to reach the bucket (AWS_* and MLFLOW_S3_ENDPOINT_URL)
    proc: subprocess.Popen

    def keys(self, prefix: str = "") -> dict[str, int]:
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """An S3-compatible server (moto's server mode) on 127.0.0.1 with one bucket."""
    import boto3

    tmp = tmp_path_factory.mktemp("moto")
    port = free_port()
    log = tmp / "moto.log"
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        with contextlib.suppress(requests.RequestException):
            if requests.get(endpoint + "/moto-api/", timeout=2).status_code < 500:
                break
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"moto_server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # boto3 never looks for instance credentials off this machine
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    ).create_bucket(Bucket=S3_BUCKET)
    yield ObjectStore(endpoint, S3_BUCKET, env, proc)
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@pytest.fixture(scope="session")
def s3_server(object_store, tmp_path_factory):
    """`mlflow server` whose artifact root is s3://BUCKET/mlflow without the artifact proxy
    (--no-serve-artifacts): clients write and read the bucket themselves. The server has no
    credentials for it, as where only the clients do, so it cannot list artifacts either."""
    tmp = tmp_path_factory.mktemp("s3_server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["MLFLOW_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing there: never a real S3
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", f"s3://{object_store.bucket}/mlflow", "--no-serve-artifacts"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    srv = launch(cmd, env, tmp, port)
    yield srv
    srv.stop()
