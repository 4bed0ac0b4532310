"""Errors name where a setting came from, and the fix for that source.

Every connection or credential error names the setting and its source (--tracking-uri, the
environment, .env.local, the atomic MLFLOW_HOST/PORT/USERNAME/PASSWORD, the URI's userinfo) and
says how to fix it there; the `store:` line precedes the error. Credentials travel only with
the URI of their own source: the Doppler layout (atomic variables in the environment, a URI in
.env.local) uses the environment's host *and* credentials; a URI in .env.local with credentials
only in the environment sends none, and the 401 says so and where to put them. Next-page
commands carry no credentials and run again as printed.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, unique
from reliability import assert_clean_error, credentials_env

WRONG = "Wr0ng-sources-PW-0a4c"
TOKEN = "Tok3n-sources-TK-93f1"
DEAD = "127.0.0.1:9"
NO_RETRY = {"MLFLOW_SKILL_HTTP_RETRIES": "0"}


def port_of(uri: str) -> str:
    return uri.rsplit(":", 1)[1]


def env_local(folder: Path, **values: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".env.local").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return {"MLFLOW_SKILL_ENV_DIR": str(folder)}


def store_line(res) -> str:
    lines = [line for line in (res.out + res.err).splitlines() if line.startswith("store: ")]
    assert lines, res.both
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 401: what was sent, from where, and the fix there
# ---------------------------------------------------------------------------------------------
def cases_401(auth_server, tmp_path: Path) -> dict[str, tuple[dict, list[str]]]:
    """route -> (run_script kwargs, words the error line must hold)."""
    uri, host, port = auth_server.uri, auth_server.uri.removeprefix("http://"), port_of(auth_server.uri)
    envdir = tmp_path / "envlocal"
    dotenv = env_local(
        envdir, MLFLOW_TRACKING_URI=uri, MLFLOW_TRACKING_USERNAME=ADMIN_USER, MLFLOW_TRACKING_PASSWORD=WRONG
    )
    return {
        "environment": (
            {"uri": uri, "env": {"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": WRONG}},
            [
                "user 'admin' was sent",
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from environment",
                "fix MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment",
                "doppler secrets set",
            ],
        ),
        "env_local": (
            {"uri": None, "env": dotenv},
            [
                "user 'admin' was sent",
                f"from .env.local in the MLFLOW_SKILL_ENV_DIR folder {envdir.resolve()}",
                f"edit MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in {envdir.resolve() / '.env.local'}",
            ],
        ),
        "atomic": (
            {
                "uri": None,
                "env": {
                    "MLFLOW_HOST": "127.0.0.1",
                    "MLFLOW_PORT": port,
                    "MLFLOW_USERNAME": ADMIN_USER,
                    "MLFLOW_PASSWORD": WRONG,
                },
            },
            [
                "MLFLOW_USERNAME and MLFLOW_PASSWORD from environment",
                "fix MLFLOW_USERNAME and MLFLOW_PASSWORD in the environment",
            ],
        ),
        "uri_env": (
            {"uri": f"http://{ADMIN_USER}:{WRONG}@{host}", "env": {}},
            [
                "the URI's user:password@ (MLFLOW_TRACKING_URI from environment)",
                "fix the user:password@ in the URI",
                "fix MLFLOW_TRACKING_URI in the environment",
            ],
        ),
        "uri_flag": (
            {"uri": None, "env": {}, "flag": f"http://{ADMIN_USER}:{WRONG}@{host}"},
            ["the URI's user:password@ (--tracking-uri)", "pass a corrected --tracking-uri"],
        ),
        "token": (
            {"uri": uri, "env": {"MLFLOW_TRACKING_TOKEN": TOKEN}},
            [
                "a bearer token was sent",
                "MLFLOW_TRACKING_TOKEN from environment",
                "fix MLFLOW_TRACKING_TOKEN in the environment",
            ],
        ),
        "none_flag": (
            {"uri": None, "env": {}, "flag": uri},
            [
                "no credentials were sent",
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
                "in the environment",
            ],
        ),
        "none_env_local": (
            {"uri": None, "env": env_local(tmp_path / "bare", MLFLOW_TRACKING_URI=uri)},
            ["no credentials were sent", f"in {(tmp_path / 'bare').resolve() / '.env.local'}, beside the URI"],
        ),
    }


@pytest.mark.parametrize(
    "route", ["environment", "env_local", "atomic", "uri_env", "uri_flag", "token", "none_flag", "none_env_local"]
)
def test_401_names_what_was_sent_its_source_and_the_fix(run_script, auth_server, tmp_path, route):
    kwargs, needles = cases_401(auth_server, tmp_path)[route]
    flag = ["--tracking-uri", kwargs.pop("flag")] if "flag" in kwargs else []
    for script, args in (("query_experiments", ["experiments"]), ("create_experiment", ["--name", unique("src")])):
        res = run_script(script, *args, *flag, **kwargs)
        assert_clean_error(res, 5, "refused the credentials (401)", *needles)
        assert res.err.startswith(f"store: {auth_server.uri} (")  # the store line comes first
        assert WRONG not in res.both and TOKEN not in res.both


# ---------------------------------------------------------------------------------------------
# Unreachable: the URI's source and its fix
# ---------------------------------------------------------------------------------------------
def test_unreachable_names_the_uri_source_and_fix(run_script, tmp_path):
    envdir = tmp_path / "dead"
    cases = [
        (
            {"uri": None, "env": {}},
            ["--tracking-uri", f"http://{DEAD}"],
            "--tracking-uri",
            "pass a corrected --tracking-uri",
        ),
        (
            {"uri": f"http://{DEAD}", "env": {}},
            [],
            "MLFLOW_TRACKING_URI from environment",
            "fix MLFLOW_TRACKING_URI in the environment",
        ),
        (
            {"uri": None, "env": env_local(envdir, MLFLOW_TRACKING_URI=f"http://{DEAD}")},
            [],
            f"MLFLOW_TRACKING_URI from .env.local in the MLFLOW_SKILL_ENV_DIR folder {envdir.resolve()}",
            f"edit MLFLOW_TRACKING_URI in {envdir.resolve() / '.env.local'}",
        ),
        (
            {"uri": None, "env": {"MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": "9"}},
            [],
            "MLFLOW_HOST/MLFLOW_PORT from environment",
            "fix MLFLOW_HOST/MLFLOW_PORT in the environment",
        ),
    ]
    for kwargs, flag, source, fix in cases:
        kwargs["env"] = {**kwargs["env"], **NO_RETRY}
        res = run_script("query_experiments", "experiments", *flag, **kwargs)
        assert_clean_error(res, 4, "is not reachable", f"URI {source})", fix)
        assert store_line(res) == f"store: http://{DEAD} ({source})"
        assert res.err.startswith("store: ")


# ---------------------------------------------------------------------------------------------
# Layouts that mix sources
# ---------------------------------------------------------------------------------------------
def test_doppler_atomic_environment_beats_uri_in_env_local(run_script, auth_server, tmp_path):
    """Doppler injects MLFLOW_HOST/PORT/USERNAME/PASSWORD; .env.local still has an old
    MLFLOW_TRACKING_URI. The environment's host wins and gets the environment's credentials
    (the basic-auth server accepts them: exit 0)."""
    env = env_local(tmp_path / "old", MLFLOW_TRACKING_URI=f"http://{DEAD}")
    env.update(
        {
            "MLFLOW_HOST": "127.0.0.1",
            "MLFLOW_PORT": port_of(auth_server.uri),
            "MLFLOW_USERNAME": ADMIN_USER,
            "MLFLOW_PASSWORD": ADMIN_PASSWORD,
        }
    )
    name = unique("doppler")
    res = run_script("create_experiment", "--name", name, uri=None, env=env)
    assert res.code == 0, res.err
    assert store_line(res) == f"store: {auth_server.uri} (MLFLOW_HOST/MLFLOW_PORT from environment)"
    assert ADMIN_PASSWORD not in res.both
    import requests  # the experiment really is on the basic-auth server

    got = requests.get(
        f"{auth_server.uri}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": name},
        auth=auth_server.admin,
        timeout=30,
    )
    assert got.status_code == 200, got.text


def test_uri_in_env_local_with_credentials_only_in_environment_sends_none(run_script, auth_server, tmp_path):
    envdir = tmp_path / "mixed"
    env = env_local(envdir, MLFLOW_TRACKING_URI=auth_server.uri)
    env.update({"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD})
    res = run_script("query_experiments", "experiments", uri=None, env=env)
    assert_clean_error(
        res,
        5,
        "no credentials were sent",
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from environment",
        "a different source than the URI's",
        f"in {envdir.resolve() / '.env.local'} beside the URI",
        "or put the URI where the credentials are",
    )
    assert store_line(res).endswith(
        f"(MLFLOW_TRACKING_URI from .env.local in the MLFLOW_SKILL_ENV_DIR folder {envdir.resolve()})"
    )
    assert ADMIN_PASSWORD not in res.both


def test_flag_uri_with_credentials_only_in_env_local_sends_none(run_script, auth_server, tmp_path):
    env = env_local(tmp_path / "creds", MLFLOW_TRACKING_USERNAME=ADMIN_USER, MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
    res = run_script("query_experiments", "experiments", "--tracking-uri", auth_server.uri, uri=None, env=env)
    assert_clean_error(res, 5, "no credentials were sent", "from .env.local", "in the environment beside the URI")
    assert ADMIN_PASSWORD not in res.both


# ---------------------------------------------------------------------------------------------
# Next-page commands: no credentials, and they run again as printed
# ---------------------------------------------------------------------------------------------
def test_next_page_command_omits_uri_credentials_and_reruns(run_script, auth_server):
    name = unique("nextpage")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        from mlflow.tracking import MlflowClient

        cl = MlflowClient(auth_server.uri)
        eid = cl.create_experiment(name)
        ids = {cl.create_run(eid, run_name=f"n{i}").info.run_id for i in range(2)}
    host = auth_server.uri.removeprefix("http://")
    res = run_script(
        "query_experiments",
        "runs",
        "-e",
        name,
        "--max-results",
        "1",
        "--tracking-uri",
        f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@{host}",
        uri=None,
    )
    assert res.code == 0, res.err
    cmd = res.out.split("next page: `", 1)[1].split("`", 1)[0]
    assert ADMIN_USER + ":" not in cmd and "***" not in cmd and ADMIN_PASSWORD not in res.both
    argv = shlex.split(cmd)
    assert argv[:3] == ["uv", "run", "scripts/query_experiments.py"]
    assert argv[argv.index("--tracking-uri") + 1] == auth_server.uri
    creds = {"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    again = run_script("query_experiments", *argv[3:], uri=None, env=creds)
    assert again.code == 0, again.err
    first_ids = {i for i in ids if i in res.out}
    second_ids = {i for i in ids if i in again.out}
    assert len(first_ids) == 1 and len(second_ids) == 1 and first_ids | second_ids == ids
