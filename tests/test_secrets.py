"""Secrets: a sentinel password or token set through each configuration path never appears in
stdout, stderr, any file the scripts write (--output of export, get_metric_history,
search_traces, get_trace) or anything log_backtest logs (params, tags, artifacts), on success
and on every kind of error (wrong password, missing permission, dead server, --debug).

Configuration paths: MLFLOW_TRACKING_USERNAME/PASSWORD in the environment, the same in
.env.local (MLFLOW_SKILL_ENV_DIR), the atomic MLFLOW_HOST/PORT/USERNAME/PASSWORD, a URI with
user:password@ inside, and MLFLOW_TRACKING_TOKEN. On success the sentinel is the admin
password of the basic-auth server fixture (conftest.ADMIN_PASSWORD); the token's success path
uses the plain server, which ignores the bearer header.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import credentials_env, make_trace, present, write_returns_csv

WRONG = "Wr0ng-sentinel-PW-e9d1"
TOKEN = "Tok3n-sentinel-TK-44b2"
DEAD = "127.0.0.1:9"  # discard port: nothing listens there


def assert_no_secret(texts, *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            for form in {secret, quote(secret, safe="")}:
                assert form not in text, (
                    f"secret leaked: ...{text[max(0, text.find(form) - 200) : text.find(form) + 50]}..."
                )


def files_text(folder: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file()]


@pytest.fixture(scope="module")
def data(auth_server, tmp_path_factory):
    """The admin's experiment on the basic-auth server: two runs with metric histories,
    params, tags and an artifact, plus a trace when the trace scripts exist."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    name = unique("secrets")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        cl = MlflowClient(auth_server.uri)
        exp = cl.create_experiment(name)
        runs = []
        for i in range(2):
            rid = cl.create_run(exp, run_name=f"sec-{i}").info.run_id
            cl.log_batch(
                rid,
                metrics=[Metric("loss", 1.0 / (s + 1 + i), 0, s) for s in range(20)]
                + [Metric("val_loss", 0.5 + i, 0, 0)],
                params=[Param("lr", str(0.01 * (i + 1))), Param("opt", "adam")],
                tags=[RunTag("team", "quant")],
            )
            cl.log_text(rid, "report", "report.txt")
            cl.set_terminated(rid, status="FAILED" if i else "FINISHED")
            runs.append(rid)
    trace_id = None
    if present("search_traces") or present("get_trace"):
        _, trace_id = make_trace(auth_server.uri, name, auth=(ADMIN_USER, ADMIN_PASSWORD))
    host = auth_server.uri.removeprefix("http://")
    envdir = tmp_path_factory.mktemp("secret-envdir")
    (envdir / ".env.local").write_text(
        f"MLFLOW_TRACKING_URI={auth_server.uri}\nMLFLOW_TRACKING_USERNAME={ADMIN_USER}\nMLFLOW_TRACKING_PASSWORD={ADMIN_PASSWORD}\n"
    )
    return {"name": name, "exp": exp, "runs": runs, "trace": trace_id, "host": host, "envdir": envdir}


def config_paths(data, password: str, host: str | None = None) -> dict[str, dict]:
    """run_script keyword arguments for each configuration path, all carrying `password`."""
    host = host or data["host"]
    port = host.rsplit(":", 1)[1]
    envdir = data["envdir"]
    if password != ADMIN_PASSWORD or host != data["host"]:  # error paths get their own .env.local
        envdir = envdir.parent / f"envdir-{abs(hash((password, host)))}"
        envdir.mkdir(exist_ok=True)
        (envdir / ".env.local").write_text(
            f"MLFLOW_TRACKING_URI=http://{host}\nMLFLOW_TRACKING_USERNAME={ADMIN_USER}\nMLFLOW_TRACKING_PASSWORD={password}\n"
        )
    return {
        "env": {
            "uri": f"http://{host}",
            "env": {"MLFLOW_TRACKING_USERNAME": ADMIN_USER, "MLFLOW_TRACKING_PASSWORD": password},
        },
        "env_local": {"uri": None, "env": {"MLFLOW_SKILL_ENV_DIR": str(envdir)}},
        "atomic": {
            "uri": None,
            "env": {
                "MLFLOW_HOST": "127.0.0.1",
                "MLFLOW_PORT": port,
                "MLFLOW_USERNAME": ADMIN_USER,
                "MLFLOW_PASSWORD": password,
            },
        },
        "uri_credentials": {"uri": f"http://{ADMIN_USER}:{password}@{host}", "env": {}},
    }


PATHS = ["env", "env_local", "atomic", "uri_credentials"]


def commands(data, out: Path, full: bool) -> list[tuple[str, list[str]]]:
    """(script, args) for every present script; `full` adds every query subcommand and format."""
    r1, r2, exp = data["runs"][0], data["runs"][1], data["name"]
    cmds = [
        ("query_experiments", ["export", "-e", exp, "--output", str(out / "runs.csv")]),
        ("get_metric_history", ["--run-id", r1, "--metrics", "loss", "--full", "--output", str(out / "loss.csv")]),
        ("create_experiment", ["--name", unique("secrets-new"), "--description", "made by the secrets test"]),
    ]
    if full:
        cmds += [
            ("query_experiments", ["experiments", "--name-like", exp, "--count-runs"]),
            ("query_experiments", ["experiments", "--format", "json"]),
            ("query_experiments", ["runs", "-e", exp, "--format", "json"]),
            (
                "query_experiments",
                ["runs", "-e", exp, "--filter", "params.lr > 0 OR metrics.loss < 1", "--format", "csv"],
            ),
            ("query_experiments", ["runs", "-e", exp, "--max-results", "1"]),  # prints the next-page command
            ("query_experiments", ["run", r1, "--all-tags"]),
            ("query_experiments", ["run", r1, "--format", "json"]),
            ("query_experiments", ["compare", r1, r2, "--all", "--all-tags"]),
            ("query_experiments", ["best", "-e", exp, "--metric", "loss"]),
            ("query_experiments", ["overfit", "-e", exp, "--train", "loss", "--test", "val_loss"]),
            ("query_experiments", ["failed", "-e", exp, "--format", "json"]),
            ("query_experiments", ["aggregate", "-e", exp, "-g", "params.opt", "-m", "loss"]),
            ("query_experiments", ["export", "-e", exp, "--output", str(out / "runs.json"), "--all-tags"]),
            ("query_experiments", ["artifacts", r1]),
            ("get_metric_history", ["--run-id", r1, r2]),
            (
                "get_metric_history",
                ["--run-id", r1, "--metrics", "loss", "--full", "--output", str(out / "loss.json"), "--format", "json"],
            ),
            ("create_experiment", ["--name", exp, "--format", "json"]),
        ]
    if present("search_traces"):
        cmds.append(("search_traces", ["--experiment", exp, "--output", str(out / "traces.json")]))
        if full:
            cmds.append(("search_traces", ["--experiment", exp, "--group-by", "status", "--format", "json"]))
    if present("get_trace") and data["trace"]:
        cmds.append(("get_trace", ["--trace-id", data["trace"], "--output", str(out / "trace.json")]))
        if full:
            cmds.append(("get_trace", ["--trace-id", data["trace"], "--full"]))
    return cmds


@pytest.mark.parametrize("path", PATHS)
def test_success_never_shows_the_password(run_script, data, tmp_path, path):
    kwargs = config_paths(data, ADMIN_PASSWORD)[path]
    texts = []
    for script, args in commands(data, tmp_path, full=(path == "env")):
        res = run_script(script, *args, **kwargs)
        assert res.code == 0, (path, script, args, res.err)
        assert res.both.startswith("store: http://127.0.0.1:") or "\nstore: http://127.0.0.1:" in res.both
        texts += [res.out, res.err]
    written = files_text(tmp_path)
    assert len(written) >= 2  # the export and the metric history at least
    assert_no_secret(texts + written, ADMIN_PASSWORD)


@pytest.mark.skipif(not present("log_backtest"), reason="log_backtest.py is not written yet")
@pytest.mark.parametrize("path", ["env", "uri_credentials"])
def test_log_backtest_logs_no_secret(run_script, data, auth_server, tmp_path, path):
    """Nothing log_backtest writes to the store (params, tags, artifacts incl. the tearsheet)
    nor prints holds the password."""
    from mlflow.tracking import MlflowClient

    kwargs = config_paths(data, ADMIN_PASSWORD)[path]
    returns = write_returns_csv(tmp_path / "returns.csv")
    exp = unique("secrets-bt")
    extra = [] if path == "env" else ["--no-tearsheet"]
    res = run_script(
        "log_backtest", "--returns", str(returns), "--experiment", exp, "--param", "fast=10", *extra, **kwargs
    )
    assert res.code == 0, res.err
    assert_no_secret([res.out, res.err], ADMIN_PASSWORD)
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        cl = MlflowClient(auth_server.uri)
        run = cl.search_runs([cl.get_experiment_by_name(exp).experiment_id])[0]
        logged = [f"{k}={v}" for k, v in {**run.data.params, **run.data.tags}.items()]
        dest = tmp_path / "downloaded"
        dest.mkdir()
        cl.download_artifacts(run.info.run_id, "", str(dest))
    artifacts = files_text(dest)
    assert artifacts, "log_backtest logged no artifacts"
    assert_no_secret(logged + artifacts, ADMIN_PASSWORD)


def error_commands(data, out: Path) -> list[tuple[str, list[str]]]:
    r1, exp = data["runs"][0], data["name"]
    cmds = [
        ("query_experiments", ["export", "-e", exp, "--output", str(out / "e.csv")]),
        ("query_experiments", ["runs", "-e", exp, "--format", "json"]),
        ("get_metric_history", ["--run-id", r1, "--full", "--output", str(out / "h.csv")]),
        ("create_experiment", ["--name", unique("secrets-err")]),
    ]
    if present("search_traces"):
        cmds.append(("search_traces", ["--experiment", exp, "--output", str(out / "t.json")]))
    if present("get_trace"):
        cmds.append(("get_trace", ["--trace-id", data["trace"] or "tr-0", "--output", str(out / "g.json")]))
    if present("log_backtest"):
        cmds.append(
            (
                "log_backtest",
                ["--returns", str(write_returns_csv(out.parent / "r.csv")), "--experiment", exp, "--no-tearsheet"],
            )
        )
    return cmds


@pytest.mark.parametrize("path", PATHS)
def test_wrong_password_is_401_without_the_password(run_script, data, tmp_path, path):
    out = tmp_path / "out"
    out.mkdir()
    kwargs = config_paths(data, WRONG)[path]
    for script, args in error_commands(data, out):
        for debug in ([], ["--debug"]):
            res = run_script(script, *args, *debug, **kwargs)
            assert res.code == 5, (path, script, res.err)
            assert "401" in res.err
            if debug:
                assert "Traceback" in res.err
            assert_no_secret([res.out, res.err], WRONG)
    assert list(out.iterdir()) == []  # nothing written on failure


@pytest.mark.parametrize("path", PATHS)
def test_dead_server_never_shows_the_password(run_script, data, tmp_path, path):
    out = tmp_path / "out"
    out.mkdir()
    kwargs = config_paths(data, WRONG, host=DEAD)[path]
    kwargs["env"] = {**kwargs["env"], "MLFLOW_SKILL_HTTP_RETRIES": "0"}
    for script, args in error_commands(data, out):
        for debug in ([], ["--debug"]):
            res = run_script(script, *args, *debug, **kwargs)
            assert res.code == 4, (path, script, res.err)
            assert "127.0.0.1:9" in res.err
            assert_no_secret([res.out, res.err], WRONG)
    assert list(out.iterdir()) == []


def test_missing_permission_never_shows_the_password(run_script, data, tmp_path):
    """403: the reader's password (a sentinel too) is absent from the explanation."""
    reader = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    for debug in ([], ["--debug"]):
        res = run_script(
            "create_experiment",
            "--name",
            data["name"],
            "--tag",
            "x=y",
            "--update",
            *debug,
            uri=f"http://{data['host']}",
            env=reader,
        )
        assert res.code == 5 and "permission denied" in res.err
        assert_no_secret([res.out, res.err], READER_PASSWORD)


def test_token_never_shown(run_script, data, server, tmp_path):
    """MLFLOW_TRACKING_TOKEN: refused by the basic-auth server (401), accepted (ignored) by the
    plain server; neither path prints or writes it."""
    out = tmp_path / "out"
    out.mkdir()
    for script, args in error_commands(data, out):
        res = run_script(script, *args, uri=f"http://{data['host']}", env={"MLFLOW_TRACKING_TOKEN": TOKEN})
        assert res.code == 5, (script, res.err)
        assert_no_secret([res.out, res.err], TOKEN)
    ok_out = tmp_path / "ok"
    ok_out.mkdir()
    exp = unique("secrets-token")
    texts = []
    for script, args in (
        ("create_experiment", ["--name", exp]),
        ("query_experiments", ["export", "-e", exp, "--output", str(ok_out / "x.json"), "--debug"]),
        ("query_experiments", ["experiments", "--format", "json"]),
    ):
        res = run_script(script, *args, uri=server.uri, env={"MLFLOW_TRACKING_TOKEN": TOKEN})
        assert res.code == 0, res.err
        texts += [res.out, res.err]
    assert_no_secret(texts + files_text(ok_out), TOKEN)


def test_secret_through_uv_run(uv_run, data, tmp_path):
    """A real subprocess, password inside the URI: exported file and output are clean."""
    target = tmp_path / "runs.csv"
    res = uv_run(
        "query_experiments",
        "export",
        "-e",
        data["name"],
        "--output",
        str(target),
        uri=f"http://{ADMIN_USER}:{ADMIN_PASSWORD}@{data['host']}",
    )
    assert res.code == 0, res.err
    assert target.read_text().count("\n") == 3  # header + two runs
    assert_no_secret([res.out, res.err, target.read_text()], ADMIN_PASSWORD)
