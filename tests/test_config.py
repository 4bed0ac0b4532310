"""Configuration and credentials: resolution order, .env files, atomic variables, secrets.

The tests drive create_experiment.py (the smallest script) through its real entry point; the
first line of its output names the store and where the setting came from.
"""

from pathlib import Path

import pytest

from mlflow_skill.core import config as _config
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.secrets import split_uri

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import error_lines

DEAD = "http://127.0.0.1:9"  # discard port: nothing listens there


def store_line(res) -> str:
    return res.out.splitlines()[0]


def write_env(folder: Path, name: str, **values: str) -> None:
    (folder / name).write_text("".join(f"{k}={v}\n" for k, v in values.items()))


@pytest.fixture
def env_dir(tmp_path):
    folder = tmp_path / "skill"
    folder.mkdir()
    return folder


def test_flag_beats_environment(run_script, server):
    res = run_script("create_experiment", "--name", unique("cfg"), "--tracking-uri", server.uri, uri=DEAD)
    assert res.code == 0, res.err
    assert store_line(res) == f"store: {server.uri} (--tracking-uri)"


def test_environment_beats_env_local(run_script, server, env_dir):
    """What Doppler or mise inject into the process wins over .env.local."""
    write_env(env_dir, ".env.local", MLFLOW_TRACKING_URI=DEAD)
    res = run_script("create_experiment", "--name", unique("cfg"), env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)})
    assert res.code == 0, res.err
    assert store_line(res) == f"store: {server.uri} (MLFLOW_TRACKING_URI from environment)"


def test_env_local_beats_env_file(run_script, server, env_dir):
    write_env(env_dir, ".env.local", MLFLOW_TRACKING_URI=server.uri)
    write_env(env_dir, ".env", MLFLOW_TRACKING_URI=DEAD)
    res = run_script("create_experiment", "--name", unique("cfg"), uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)})
    assert res.code == 0, res.err
    assert (
        store_line(res)
        == f"store: {server.uri} (MLFLOW_TRACKING_URI from .env.local in the MLFLOW_SKILL_ENV_DIR folder "
        f"{env_dir.resolve()})"
    )


def test_env_file_alone(run_script, server, env_dir):
    write_env(env_dir, ".env", MLFLOW_TRACKING_URI=server.uri)
    res = run_script("create_experiment", "--name", unique("cfg"), uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)})
    assert res.code == 0, res.err
    assert "(MLFLOW_TRACKING_URI from .env in the MLFLOW_SKILL_ENV_DIR folder" in store_line(res)


def test_atomic_variables_compose_uri_and_credentials(run_script, auth_server, client):
    port = auth_server.uri.rsplit(":", 1)[1]
    name = unique("atomic")
    env = {
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": port,
        "MLFLOW_USERNAME": ADMIN_USER,
        "MLFLOW_PASSWORD": ADMIN_PASSWORD,
    }
    res = run_script("create_experiment", "--name", name, uri=None, env=env)
    assert res.code == 0, res.err
    assert store_line(res) == f"store: http://127.0.0.1:{port} (MLFLOW_HOST/MLFLOW_PORT from environment)"
    assert ADMIN_PASSWORD not in res.both


def test_atomic_variables_from_env_local_with_scheme_in_host(run_script, auth_server, env_dir):
    port = auth_server.uri.rsplit(":", 1)[1]
    write_env(
        env_dir,
        ".env.local",
        MLFLOW_HOST="http://127.0.0.1",
        MLFLOW_PORT=port,
        MLFLOW_USERNAME=ADMIN_USER,
        MLFLOW_PASSWORD=ADMIN_PASSWORD,
    )
    res = run_script(
        "create_experiment", "--name", unique("atomic"), uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)}
    )
    assert res.code == 0, res.err
    assert "(MLFLOW_HOST/MLFLOW_PORT from .env.local in the MLFLOW_SKILL_ENV_DIR folder" in store_line(res)


def test_credentials_inside_uri_are_used_and_never_shown(run_script, auth_server):
    host = auth_server.uri.removeprefix("http://")
    res = run_script(
        "create_experiment", "--name", unique("uricred"), uri=f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@{host}"
    )
    assert res.code == 0, res.err
    assert store_line(res).startswith(f"store: http://{host} ")
    assert ADMIN_PASSWORD not in res.both


def test_wrong_password_is_auth_error_without_retry_or_secret(run_script, auth_server):
    wrong = "Wr0ng-sentinel-PW-55e1"
    res = run_script(
        "create_experiment",
        "--name",
        unique("x"),
        uri=auth_server.uri,
        env={"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": wrong},
    )
    assert res.code == 5
    assert "401" in res.err and "MLFLOW_TRACKING_PASSWORD" in res.err
    assert wrong not in res.both and len(error_lines(res.err)) == 1


def test_read_only_user_cannot_change_an_experiment(run_script, auth_server):
    """default_permission = READ: the reader sees the admin's experiment but may not change it.
    (MLflow's basic auth lets any user create a new experiment of their own.)"""
    import requests

    name = unique("ro")
    requests.post(
        f"{auth_server.uri}/api/2.0/mlflow/experiments/create", json={"name": name}, auth=auth_server.admin, timeout=10
    ).raise_for_status()
    reader = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    res = run_script("create_experiment", "--name", name, uri=auth_server.uri, env=reader)
    assert res.code == 0, res.err
    assert "Already exists" in res.out
    res = run_script("create_experiment", "--name", name, "--tag", "a=b", "--update", uri=auth_server.uri, env=reader)
    assert res.code == 5
    assert "permission denied (403)" in res.err and "setting experiment tags" in res.err
    assert READER_PASSWORD not in res.both


def test_secret_in_uri_never_printed_when_server_is_down(run_script):
    secret = "D0wn-sentinel-PW-0c77"
    res = run_script(
        "create_experiment",
        "--name",
        "x",
        uri=f"http://user:{secret}@127.0.0.1:9",
        env={"MLFLOW_SKILL_HTTP_RETRIES": "0"},
    )
    assert res.code == 4
    assert secret not in res.both
    assert "http://127.0.0.1:9" in res.err


def test_secret_in_debug_traceback_is_masked(run_script):
    secret = "Dbg-sentinel-PW-3e21"
    res = run_script(
        "create_experiment",
        "--name",
        "x",
        "--debug",
        uri="http://127.0.0.1:9",
        env={"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": secret, "MLFLOW_SKILL_HTTP_RETRIES": "0"},
    )
    assert res.code == 4
    assert "Traceback" in res.err  # --debug shows it ...
    assert secret not in res.both  # ... but never the secret


def test_embedded_store_when_nothing_is_set(run_script, tmp_path):
    res = run_script("create_experiment", "--name", "first", uri=None, cwd=tmp_path)
    assert res.code == 0, res.err
    assert (
        store_line(res) == f"store: sqlite:///{tmp_path.resolve() / 'mlflow.db'} (embedded default, nothing configured)"
    )
    assert (tmp_path / "mlflow.db").exists()


# ---------------------------------------------------------------------------------------------
# resolve_settings(environ=..., cwd=...): the precedence table without any server
# ---------------------------------------------------------------------------------------------


def resolve(environ: dict, cwd: Path, flag: str | None = None) -> "_config.Settings":
    return _config.resolve_settings(flag, None, environ=environ, cwd=cwd)


def test_resolve_flag_then_environment_then_cwd_then_skill_folder(tmp_path, monkeypatch):
    skill, work = tmp_path / "skill", tmp_path / "work"
    skill.mkdir()
    work.mkdir()
    monkeypatch.setattr(_config, "SKILL_ROOT", skill)
    write_env(skill, ".env.local", MLFLOW_TRACKING_URI="http://skill:1")
    assert resolve({}, work).tracking_uri == "http://skill:1"
    assert resolve({}, work).source == f"MLFLOW_TRACKING_URI from .env.local in the skill folder {skill}"
    write_env(work, ".env", MLFLOW_TRACKING_URI="http://work-env:1")
    assert resolve({}, work).tracking_uri == "http://work-env:1"  # cwd's .env beats the skill's .env.local
    write_env(work, ".env.local", MLFLOW_TRACKING_URI="http://work-local:1")
    assert resolve({}, work).tracking_uri == "http://work-local:1"
    assert resolve({"MLFLOW_TRACKING_URI": "http://env:1"}, work).source == "MLFLOW_TRACKING_URI from environment"
    s = resolve({"MLFLOW_TRACKING_URI": "http://env:1"}, work, flag="http://flag:1")
    assert (s.tracking_uri, s.source) == ("http://flag:1", "--tracking-uri")
    other = tmp_path / "other"
    other.mkdir()
    write_env(other, ".env.local", MLFLOW_TRACKING_URI="http://other:1")
    s = resolve({"MLFLOW_SKILL_ENV_DIR": str(other)}, work)  # names one folder instead of cwd and skill
    assert s.tracking_uri == "http://other:1" and "MLFLOW_SKILL_ENV_DIR folder" in s.source


def test_resolve_embedded_default_when_nothing_is_set(tmp_path, monkeypatch):
    monkeypatch.setattr(_config, "SKILL_ROOT", tmp_path / "no-skill")
    s = resolve({}, tmp_path)
    assert s.embedded and s.tracking_uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert s.username is None and s.password is None and s.credentials_fix


def test_resolve_uri_beats_atomic_within_a_source_but_not_across(tmp_path):
    env = {"MLFLOW_TRACKING_URI": "http://uri:1", "MLFLOW_HOST": "atomic", "MLFLOW_PORT": "2"}
    assert resolve(env, tmp_path).tracking_uri == "http://uri:1"
    write_env(tmp_path, ".env.local", MLFLOW_TRACKING_URI="http://file:1")
    s = resolve(
        {"MLFLOW_HOST": "https://atomic", "MLFLOW_PORT": "8443", "MLFLOW_SKILL_ENV_DIR": str(tmp_path)}, tmp_path
    )
    assert (s.tracking_uri, s.source) == ("https://atomic:8443", "MLFLOW_HOST/MLFLOW_PORT from environment")
    assert resolve({"MLFLOW_HOST": "h", "MLFLOW_PORT": "443"}, tmp_path / "x").tracking_uri == "https://h:443"
    assert resolve({"MLFLOW_HOST": "h", "MLFLOW_SCHEME": "https"}, tmp_path / "x").tracking_uri == "https://h"


def test_resolve_credentials_travel_with_their_uri(tmp_path):
    write_env(
        tmp_path,
        ".env.local",
        MLFLOW_TRACKING_URI="http://file:1",
        MLFLOW_TRACKING_USERNAME="f",
        MLFLOW_TRACKING_PASSWORD="fpw",
    )
    base = {"MLFLOW_SKILL_ENV_DIR": str(tmp_path)}
    s = resolve(base, tmp_path)
    assert (s.username, s.password) == ("f", "fpw") and s.credential_source.endswith(
        f".env.local in the MLFLOW_SKILL_ENV_DIR folder {tmp_path.resolve()}"
    )
    # the environment's own credentials never go to the .env.local server ...
    s = resolve(
        {
            **base,
            "MLFLOW_TRACKING_USERNAME": "e",
            "MLFLOW_TRACKING_PASSWORD": "epw",
            "MLFLOW_TRACKING_URI": "http://env:1",
        },
        tmp_path,
    )
    assert (s.tracking_uri, s.username, s.password) == ("http://env:1", "e", "epw")
    # ... and a server named in the environment without credentials gets none from .env.local
    s = resolve({**base, "MLFLOW_TRACKING_URI": "http://env:1"}, tmp_path)
    assert (s.username, s.password, s.token) == (None, None, None)
    assert s.unused_credentials.startswith("MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from .env.local")
    # the flag takes the shell's credentials; userinfo inside a URI beats them
    s = resolve({"MLFLOW_TRACKING_USERNAME": "e", "MLFLOW_TRACKING_PASSWORD": "epw"}, tmp_path / "x", flag="http://h:1")
    assert (s.username, s.password) == ("e", "epw")
    s = resolve(
        {"MLFLOW_TRACKING_USERNAME": "e", "MLFLOW_TRACKING_PASSWORD": "epw"}, tmp_path / "x", flag="http://u:p@h:1"
    )
    assert (s.username, s.password, s.tracking_uri) == ("u", "p", "http://h:1")
    # MLflow's names beat the atomic ones within a source; a token is kept beside them
    s = resolve(
        {
            "MLFLOW_TRACKING_URI": "http://h:1",
            "MLFLOW_TRACKING_USERNAME": "t",
            "MLFLOW_USERNAME": "a",
            "MLFLOW_TRACKING_PASSWORD": "tp",
            "MLFLOW_PASSWORD": "ap",
            "MLFLOW_TRACKING_TOKEN": "tok",
        },
        tmp_path / "x",
    )
    assert (s.username, s.password, s.token) == ("t", "tp", "tok")
    assert set(s.secrets) >= {"tp", "ap", "tok"}


def test_resolve_other_settings_take_the_first_source_that_sets_them(tmp_path):
    write_env(tmp_path, ".env.local", MLFLOW_HTTP_REQUEST_TIMEOUT="7", MLFLOW_TRACKING_INSECURE_TLS="true")
    s = resolve({"MLFLOW_TRACKING_URI": "http://h:1", "MLFLOW_SKILL_ENV_DIR": str(tmp_path)}, tmp_path)
    assert (
        s.timeout == 7.0
        and s.insecure_tls
        and s.origin("timeout").startswith("MLFLOW_HTTP_REQUEST_TIMEOUT from .env.local")
    )
    s = resolve(
        {
            "MLFLOW_TRACKING_URI": "http://h:1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
            "MLFLOW_SKILL_ENV_DIR": str(tmp_path),
        },
        tmp_path,
    )
    assert s.timeout == 3.0 and s.origin("timeout") == "MLFLOW_HTTP_REQUEST_TIMEOUT from environment"
    with pytest.raises(UsageError, match="MLFLOW_HTTP_REQUEST_TIMEOUT='x' .* is not a number"):
        resolve({"MLFLOW_HTTP_REQUEST_TIMEOUT": "x"}, tmp_path / "x")


@pytest.mark.parametrize(
    "uri,user,password,host,path,query",
    [
        ("http://admin:S3cr#t!@127.0.0.1:5000", "admin", "S3cr#t!", "127.0.0.1:5000", "", ()),
        (
            "http://admin:p/a?s#w@rd@h:1/prefix?access_token=T&x=1",
            "admin",
            "p/a?s#w@rd",
            "h:1",
            "/prefix",
            (("access_token", "T"), ("x", "1")),
        ),
        ("http://u:p%40ss@h", "u", "p@ss", "h", "", ()),
        ("https://h:5000/p?email=a@b", None, None, "h:5000", "/p", (("email", "a@b"),)),
        ("http://h/?access_token=T0k", None, None, "h", "", (("access_token", "T0k"),)),
        ("postgresql+psycopg2://u:p#w@h:5432/db", "u", "p#w", "h:5432", "/db", ()),
    ],
)
def test_split_uri_takes_the_password_up_to_the_last_at(uri, user, password, host, path, query):
    parts = split_uri(uri)
    assert (parts.username, parts.password, parts.host, parts.path, parts.query) == (user, password, host, path, query)
    assert password is None or password not in parts.display()


def test_database_uri_password_is_masked_in_the_store_line(tmp_path):
    s = resolve(
        {"MLFLOW_TRACKING_URI": "postgresql://alice:Pg#pw@db:5432/mlflow?sslmode=require&password=x2"}, tmp_path
    )
    assert (
        s.store_line()
        == "store: postgresql://alice:***@db:5432/mlflow?sslmode=***&password=*** (MLFLOW_TRACKING_URI from "
        "environment)"
    )
    assert {"Pg#pw", "x2"} <= set(s.secrets)
    assert (
        resolve({"MLFLOW_TRACKING_URI": "sqlite:////tmp/a@b/mlflow.db"}, tmp_path).display_uri
        == "sqlite:////tmp/a@b/mlflow.db"
    )


def test_only_config_module_reads_the_environment():
    """Settings come from one place: no other script or helper touches os.environ / os.getenv
    (read from the code itself, so docstrings that mention them do not count)."""
    import ast

    banned = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    offenders = []
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    for path in sorted(scripts.rglob("*.py")):
        if path == scripts / "mlflow_skill" / "core" / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in banned
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                offenders.append(f"{path.name}:{node.lineno}: os.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and banned & {a.name for a in node.names}:
                offenders.append(f"{path.name}:{node.lineno}: from os import ...")
    assert offenders == []
    config = (scripts / "mlflow_skill" / "core" / "config.py").read_text()
    assert "os.environ" in config  # the test can see a reader where there is one
