"""Configuration and credentials: resolution order, .env files, atomic variables, secrets.

The tests drive create_experiment.py (the smallest script) through its real entry point; the
first line of its output names the store and where the setting came from.
"""

from pathlib import Path

import pytest

from reliability import error_lines
from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique

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
    assert store_line(res) == f"store: {server.uri} (MLFLOW_TRACKING_URI from .env.local in the MLFLOW_SKILL_ENV_DIR folder {env_dir.resolve()})"


def test_env_file_alone(run_script, server, env_dir):
    write_env(env_dir, ".env", MLFLOW_TRACKING_URI=server.uri)
    res = run_script("create_experiment", "--name", unique("cfg"), uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)})
    assert res.code == 0, res.err
    assert "(MLFLOW_TRACKING_URI from .env in the MLFLOW_SKILL_ENV_DIR folder" in store_line(res)


def test_atomic_variables_compose_uri_and_credentials(run_script, auth_server, client):
    port = auth_server.uri.rsplit(":", 1)[1]
    name = unique("atomic")
    env = {"MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": port, "MLFLOW_USERNAME": ADMIN_USER, "MLFLOW_PASSWORD": ADMIN_PASSWORD}
    res = run_script("create_experiment", "--name", name, uri=None, env=env)
    assert res.code == 0, res.err
    assert store_line(res) == f"store: http://127.0.0.1:{port} (MLFLOW_HOST/MLFLOW_PORT from environment)"
    assert ADMIN_PASSWORD not in res.both


def test_atomic_variables_from_env_local_with_scheme_in_host(run_script, auth_server, env_dir):
    port = auth_server.uri.rsplit(":", 1)[1]
    write_env(env_dir, ".env.local", MLFLOW_HOST="http://127.0.0.1", MLFLOW_PORT=port, MLFLOW_USERNAME=ADMIN_USER, MLFLOW_PASSWORD=ADMIN_PASSWORD)
    res = run_script("create_experiment", "--name", unique("atomic"), uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)})
    assert res.code == 0, res.err
    assert "(MLFLOW_HOST/MLFLOW_PORT from .env.local in the MLFLOW_SKILL_ENV_DIR folder" in store_line(res)


def test_credentials_inside_uri_are_used_and_never_shown(run_script, auth_server):
    host = auth_server.uri.removeprefix("http://")
    res = run_script("create_experiment", "--name", unique("uricred"), uri=f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@{host}")
    assert res.code == 0, res.err
    assert store_line(res).startswith(f"store: http://{host} ")
    assert ADMIN_PASSWORD not in res.both


def test_wrong_password_is_auth_error_without_retry_or_secret(run_script, auth_server):
    wrong = "Wr0ng-sentinel-PW-55e1"
    res = run_script(
        "create_experiment", "--name", unique("x"), uri=auth_server.uri,
        env={"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": wrong},
    )  # fmt: skip
    assert res.code == 5
    assert "401" in res.err and "MLFLOW_TRACKING_PASSWORD" in res.err
    assert wrong not in res.both and len(error_lines(res.err)) == 1


def test_read_only_user_cannot_change_an_experiment(run_script, auth_server):
    """default_permission = READ: the reader sees the admin's experiment but may not change it.
    (MLflow's basic auth lets any user create a new experiment of their own.)"""
    import requests

    name = unique("ro")
    requests.post(f"{auth_server.uri}/api/2.0/mlflow/experiments/create", json={"name": name}, auth=auth_server.admin, timeout=10).raise_for_status()
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
    res = run_script("create_experiment", "--name", "x", uri=f"http://user:{secret}@127.0.0.1:9", env={"MLFLOW_SKILL_HTTP_RETRIES": "0"})
    assert res.code == 4
    assert secret not in res.both
    assert "http://127.0.0.1:9" in res.err


def test_secret_in_debug_traceback_is_masked(run_script):
    secret = "Dbg-sentinel-PW-3e21"
    res = run_script(
        "create_experiment", "--name", "x", "--debug", uri="http://127.0.0.1:9",
        env={"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": secret, "MLFLOW_SKILL_HTTP_RETRIES": "0"},
    )  # fmt: skip
    assert res.code == 4
    assert "Traceback" in res.err  # --debug shows it ...
    assert secret not in res.both  # ... but never the secret


def test_embedded_store_when_nothing_is_set(run_script, tmp_path):
    res = run_script("create_experiment", "--name", "first", uri=None, cwd=tmp_path)
    assert res.code == 0, res.err
    assert store_line(res) == f"store: sqlite:///{tmp_path.resolve() / 'mlflow.db'} (embedded default, nothing configured)"
    assert (tmp_path / "mlflow.db").exists()
