"""Secrets at the edges: URI passwords with unencoded `#`, `/`, `?`, `@`; tokens in the URI's
query string; a server error that echoes the `Authorization` header; passwords so short or so
common (`0`, `mlflow`) that masking by substring would rewrite data.

Everything runs through the scripts against the real basic-auth server (`auth_server`) and the
fault proxy. MLflow refuses passwords under 12 characters through its API
(mlflow.utils.validation._validate_password), so users with such passwords are written into the
auth server's own user table with werkzeug's hash, exactly as MLflow stores them: the server
then authenticates them like any other user.
"""

from __future__ import annotations

import base64
import shlex
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, set_password_hash, unique
from faultproxy import FaultProxy
from reliability import credentials_env

NO_RETRY = {"MLFLOW_SKILL_HTTP_RETRIES": "0"}


def add_user(auth_server, username: str, password: str) -> None:
    """A user with any password, bypassing MLflow's 12-character rule."""
    set_password_hash(auth_server, username, password)


def fragments(password: str, username: str = ADMIN_USER) -> set[str]:
    """Every form of the password a leak could take: itself, percent-encoded, the part before
    the first special character (what URL parsing used to print), `user:prefix`, base64."""
    out = {password, quote(password, safe="")}
    for ch in "#/?@":
        if ch in password:
            head = password.split(ch, 1)[0]
            out |= {f"{username}:{head}", head} if len(head) >= 3 else {f"{username}:{head}"}
    token = f"{username}:{password}".encode()
    out |= {base64.b64encode(token).decode().rstrip("="), base64.urlsafe_b64encode(token).decode().rstrip("=")}
    return out


def assert_clean(texts, password: str, username: str = ADMIN_USER) -> None:
    for text in texts:
        for frag in fragments(password, username):
            assert frag not in text, (
                f"{frag!r} leaked: ...{text[max(0, text.find(frag) - 150) : text.find(frag) + 60]}..."
            )


def host_of(uri: str) -> str:
    return uri.removeprefix("http://")


# ---------------------------------------------------------------------------------------------
# Unencoded special characters in a URI password
# ---------------------------------------------------------------------------------------------
SPECIAL = ["S3cr#t!", "p/a?s#w@rd", "ends-with-at@"]


@pytest.mark.parametrize("password", SPECIAL)
def test_special_characters_in_uri_password_work_and_never_show(run_script, auth_server, tmp_path, password):
    user = f"sp{abs(hash(password)) % 10_000}"
    add_user(auth_server, user, password)
    uri = f"http://{user}:{password}@{host_of(auth_server.uri)}"  # unencoded, as people paste it
    exp = unique("special")
    texts = []
    for args in (
        ["create_experiment", "--name", exp, "--debug"],
        ["query_experiments", "runs", "-e", exp, "--debug"],
        ["query_experiments", "export", "-e", exp, "--output", str(tmp_path / "x.json")],
        ["query_experiments", "experiments", "--max-results", "1", "--format", "json"],
    ):
        res = run_script(*args, uri=uri)
        assert res.code == 0, (args, res.err)  # the server authenticated the whole password
        assert f"store: {auth_server.uri} (MLFLOW_TRACKING_URI from environment)" in res.both
        texts += [res.out, res.err]
    envdir = tmp_path / "envdir"
    envdir.mkdir()
    (envdir / ".env.local").write_text(f"MLFLOW_TRACKING_URI='{uri}'\n")  # the same URI from .env.local
    res = run_script(
        "query_experiments", "runs", "-e", exp, "--debug", uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(envdir)}
    )
    assert res.code == 0, res.err
    texts += [res.out, res.err]
    texts += [p.read_text() for p in tmp_path.iterdir() if p.is_file() and p.suffix == ".json"]
    assert_clean(texts, password, user)


@pytest.mark.parametrize("password", SPECIAL)
def test_special_characters_in_wrong_uri_password_on_every_error_path(run_script, auth_server, password):
    """401 (wrong password), 4 (dead server), with --debug: no fragment, three ways of passing it."""
    host = host_of(auth_server.uri)
    for target, code in ((host, 5), ("127.0.0.1:9", 4)):
        uri = f"http://{ADMIN_USER}:{password}@{target}"
        for how in ("env", "flag"):
            kwargs = {"uri": uri} if how == "env" else {"uri": None}
            flag = ["--tracking-uri", uri] if how == "flag" else []
            res = run_script("query_experiments", "experiments", "--debug", *flag, env=NO_RETRY, **kwargs)
            assert res.code == code, res.err
            assert "Traceback" in res.err  # --debug shows it, masked
            assert_clean([res.out, res.err], password)
            if code == 5:
                assert "the URI's user:password@" in res.err and "fix the user:password@ in the URI" in res.err


# ---------------------------------------------------------------------------------------------
# Tokens in the URI's query string
# ---------------------------------------------------------------------------------------------
QTOKEN = "QryT0ken-sentinel-7d1e"


@pytest.fixture
def proxy(server):
    p = FaultProxy(server.uri)
    yield p
    p.close()


def test_query_string_token_is_sent_as_a_parameter_and_never_shown(run_script, proxy, client, tmp_path):
    exp = unique("qtoken")
    eid = client.create_experiment(exp)
    for i in range(3):
        client.create_run(eid, run_name=f"q{i}")
    uri = f"{proxy.uri}/?access_token={QTOKEN}&team=quant"
    res = run_script("query_experiments", "runs", "-e", exp, "--max-results", "1", uri=uri)
    assert res.code == 0, res.err
    assert res.out.startswith(f"store: {proxy.uri}?access_token=***&team=*** (MLFLOW_TRACKING_URI from environment)")
    paths = [path for _, path, _ in proxy.requests]
    assert paths and all(p.startswith("/api/2.0/mlflow/") for p in paths), paths  # not /?access_token=.../api/...
    assert all(f"access_token={QTOKEN}" in p for p in paths), paths  # sent with every request
    next_cmd = res.out.split("next page: `", 1)[1].split("`", 1)[0]
    assert "access_token" not in next_cmd and "***" not in next_cmd
    res2 = run_script("query_experiments", "export", "-e", exp, "--output", str(tmp_path / "r.csv"), "--debug", uri=uri)
    assert res2.code == 0, res2.err
    proxy.reset("status", status=500, fault_count=10)
    res3 = run_script("query_experiments", "runs", "-e", exp, "--debug", uri=uri, env=NO_RETRY)
    assert res3.code == 6, res3.err
    proxy.reset("pass")
    res4 = run_script(
        "query_experiments",
        "runs",
        "-e",
        exp,
        "--debug",
        uri=uri.replace(proxy.uri, "http://127.0.0.1:9"),
        env=NO_RETRY,
    )
    assert res4.code == 4 and "Traceback" in res4.err, res4.err
    for r in (res, res2, res3, res4):
        assert QTOKEN not in r.both, r.both
    assert QTOKEN not in (tmp_path / "r.csv").read_text()


def test_query_string_token_in_next_page_flag_is_dropped(run_script, proxy, client):
    exp = unique("qtoken-flag")
    eid = client.create_experiment(exp)
    for i in range(2):
        client.create_run(eid, run_name=f"f{i}")
    uri = f"{proxy.uri}/?access_token={QTOKEN}"
    res = run_script("query_experiments", "runs", "-e", exp, "--max-results", "1", "--tracking-uri", uri, uri=None)
    assert res.code == 0, res.err
    next_cmd = res.out.split("next page: `", 1)[1].split("`", 1)[0]
    argv = shlex.split(next_cmd)
    assert argv[argv.index("--tracking-uri") + 1] == proxy.uri
    assert QTOKEN not in res.both


# ---------------------------------------------------------------------------------------------
# A server error that echoes the Authorization header
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def echo_proxy(auth_server):
    p = FaultProxy(auth_server.uri)
    p.reset("echo", status=500)
    yield p
    p.close()


TOKEN = "Bear3r-sentinel-TK-61a0"


@pytest.mark.parametrize("echo_format", ["json", "text"])
@pytest.mark.parametrize("status", [500, 400])
def test_echoed_authorization_header_is_masked(run_script, echo_proxy, tmp_path, echo_format, status):
    echo_proxy.reset("echo", status=status, echo_format=echo_format)
    host = host_of(echo_proxy.uri)
    routes = [
        (
            {
                "uri": echo_proxy.uri,
                "env": {"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD},
            },
            ADMIN_PASSWORD,
        ),
        ({"uri": f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@{host}", "env": {}}, ADMIN_PASSWORD),
        ({"uri": echo_proxy.uri, "env": {"MLFLOW_TRACKING_TOKEN": TOKEN}}, TOKEN),
    ]
    for kwargs, secret in routes:
        for debug in ([], ["--debug"]):
            res = run_script(
                "query_experiments", "experiments", *debug, env={**kwargs["env"], **NO_RETRY}, uri=kwargs["uri"]
            )
            assert res.code == (2 if status == 400 else 6), res.err
            assert echo_proxy.requests, "the proxy never answered"
            assert "Authorization: Basic ***" in res.err or "Authorization: Bearer ***" in res.err, res.err
            assert_clean([res.out, res.err], secret)
            assert "Basic " not in res.err.replace("Basic ***", "") and "Bearer " not in res.err.replace(
                "Bearer ***", ""
            )


def test_basic_auth_header_really_carried_the_password(echo_proxy):
    """The proxy echoes what a client sends: the header holds base64(admin:password), so the
    test above masks a real leak, not an empty header."""
    import requests

    resp = requests.get(
        echo_proxy.uri + "/api/2.0/mlflow/experiments/search", auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=10
    )
    expected = base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    assert expected in resp.text


# ---------------------------------------------------------------------------------------------
# One-character and common-word passwords never change data
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plain_data(auth_server):
    """An experiment on the basic-auth server full of `0` and `mlflow` tokens: run names, a param
    and tag valued `0` / `mlflow`, metrics equal to 0, the tags.mlflow.* columns."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    name = unique("short-pw")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        cl = MlflowClient(auth_server.uri)
        exp = cl.create_experiment(name, tags={"owner": "mlflow"})
        for i, run_name in enumerate(["0", "mlflow", "mlflow-0"]):
            rid = cl.create_run(exp, run_name=run_name).info.run_id
            cl.log_batch(
                rid,
                metrics=[Metric("loss", 0.0, 0, 0), Metric("acc", 0.5 * i, 0, 0)],
                params=[Param("zero", "0"), Param("lib", "mlflow"), Param("i", str(i))],
                tags=[RunTag("framework", "mlflow"), RunTag("fold", "0")],
            )
    add_user(auth_server, "zero", "0")
    add_user(auth_server, "common", "mlflow")
    return name


SHORT = [("zero", "0"), ("common", "mlflow")]


def route_kwargs(auth_server, tmp_path: Path, user: str, password: str) -> dict[str, dict]:
    host = host_of(auth_server.uri)
    envdir = tmp_path / f"envdir-{user}"
    envdir.mkdir(exist_ok=True)
    (envdir / ".env.local").write_text(
        f"MLFLOW_TRACKING_URI={auth_server.uri}\nMLFLOW_TRACKING_USERNAME={user}\nMLFLOW_TRACKING_PASSWORD={password}\n"
    )
    return {
        "env": {
            "uri": auth_server.uri,
            "env": {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password},
        },
        "env_local": {"uri": None, "env": {"MLFLOW_SKILL_ENV_DIR": str(envdir)}},
        "atomic": {
            "uri": None,
            "env": {
                "MLFLOW_HOST": "127.0.0.1",
                "MLFLOW_PORT": host.rsplit(":", 1)[1],
                "MLFLOW_USERNAME": user,
                "MLFLOW_PASSWORD": password,
            },
        },
        "uri": {"uri": f"http://{user}:{password}@{host}", "env": {}},
    }


@pytest.mark.parametrize("user,password", SHORT)
def test_short_and_common_passwords_leave_exports_byte_identical(
    run_script, auth_server, plain_data, tmp_path, user, password
):
    """The export through the basic-auth server with password `0` / `mlflow` (four routes) is
    byte for byte the export of the same store read without any credentials (its sqlite file,
    in-process). Before, `0` turned run ids, times and metrics into `***` and `mlflow` turned
    `tags.mlflow.runName` into `tags.***.runName`."""
    bare = f"sqlite:///{auth_server.tmp / 'mlflow.db'}"
    reference = {}
    for fmt in ("csv", "json"):
        target = tmp_path / f"reference.{fmt}"
        res = run_script(
            "query_experiments", "export", "-e", plain_data, "--all-tags", "--output", str(target), uri=bare
        )
        assert res.code == 0, res.err
        reference[fmt] = target.read_bytes()
        assert reference[fmt].count(b"mlflow") > 5 and b"mlflow.runName" in reference[fmt]
    assert b",0," in reference["csv"] and b'"0"' in reference["json"] and b"tags.mlflow.runName" in reference["csv"]
    for route, kwargs in route_kwargs(auth_server, tmp_path, user, password).items():
        for fmt in ("csv", "json"):
            target = tmp_path / f"{route}.{fmt}"
            res = run_script(
                "query_experiments", "export", "-e", plain_data, "--all-tags", "--output", str(target), **kwargs
            )
            assert res.code == 0, (route, res.err)
            assert target.read_bytes() == reference[fmt], (route, fmt)
        res = run_script("query_experiments", "runs", "-e", plain_data, "--format", "json", **kwargs)
        ref = run_script("query_experiments", "runs", "-e", plain_data, "--format", "json", uri=bare)
        assert res.code == 0 and ref.code == 0, res.err + ref.err
        assert res.out == ref.out, route  # stdout data is not rewritten either


def test_short_password_is_still_masked_in_diagnostics():
    """Masking stays for diagnostics (stderr, error messages): a server message that quotes the
    password `0` loses it where it stands as a token, not inside ids or numbers."""
    from mlflow_skill.core import secrets

    secrets.clear_secrets()
    secrets.register_secret("0")
    try:
        assert (
            secrets.scrub("password 0 rejected for run 0a3f0 at 10:30")
            == "password *** rejected for run 0a3f0 at 10:30"
        )
    finally:
        secrets.clear_secrets()


def test_scrub_masks_authorization_headers_in_any_form_and_is_idempotent():
    from mlflow_skill.core import secrets

    secrets.clear_secrets()
    secrets.register_basic_auth(ADMIN_USER, "S3cr#t!")
    b64 = base64.b64encode(f"{ADMIN_USER}:S3cr#t!".encode()).decode()
    try:
        for text in (
            f"Authorization: Basic {b64}",
            f"{{'authorization': 'Basic {b64}'}}",
            f'"Authorization": "Bearer {TOKEN}"',
            f"authorization=token {TOKEN}",
            f"echo {b64.rstrip('=')} back",
            f"Authorization: {TOKEN}",
        ):
            once = secrets.scrub(text)
            assert b64.rstrip("=") not in once and TOKEN not in once, once
            assert "***" in once and secrets.scrub(once) == once
    finally:
        secrets.clear_secrets()
