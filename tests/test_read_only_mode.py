"""Read-only mode (issue 25): MLFLOW_SKILL_READ_ONLY=1, from the environment or a .env.local file,
makes every write script refuse with exit 8 before anything is sent (the fault proxy in front of
the server sees no request at all; an embedded store is not even created), the `store:` line
ends with ", read-only", and the query scripts and log_backtest.py --dry-run still work.
"""

from __future__ import annotations

import pytest

from mlflow_skill.core.config import resolve_settings

from conftest import unique
from reliability import error_lines, write_returns_csv

READ_ONLY = {"MLFLOW_SKILL_READ_ONLY": "1"}
RUN_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
WRITES = {
    "tag_runs": ["--run-id", RUN_ID, "--set", "reviewed=yes"],
    "promote_model": ["--model", "m", "--run-id", RUN_ID, "--alias", "champion"],
    "log_feedback": ["--trace-id", "tr-1", "--name", "correct", "--value", "false"],
    "create_experiment": ["--name", "never-created"],
}


def assert_refused(res, where: str) -> None:
    assert res.code == 8, f"exit {res.code}\n{res.err}"
    assert "Traceback" not in res.both and res.out == ""
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert lines[0].startswith("store: ") and lines[0].endswith(", read-only"), lines
    (error,) = error_lines(res.err)
    assert error.startswith("error: refused: read-only mode (MLFLOW_SKILL_READ_ONLY from " + where), error
    assert "nothing was sent" in error


@pytest.mark.parametrize("script", sorted(WRITES))
def test_every_write_refuses_and_sends_nothing(run_script, via_proxy, script):
    res = run_script(script, *WRITES[script], env=READ_ONLY, uri=via_proxy.uri)
    assert_refused(res, "environment")
    assert via_proxy.requests == []


def test_log_backtest_refuses_but_its_dry_run_works(run_script, via_proxy, tmp_path, client):
    returns = write_returns_csv(tmp_path / "r.csv")
    name = unique("ro-backtest")
    res = run_script("log_backtest", "--returns", returns, "--experiment", name, env=READ_ONLY, uri=via_proxy.uri)
    assert_refused(res, "environment")
    assert via_proxy.requests == [] and client.get_experiment_by_name(name) is None
    dry = run_script("log_backtest", "--returns", returns, "--dry-run", "--no-tearsheet", env=READ_ONLY)
    assert dry.code == 0, dry.err
    assert dry.out.startswith("store: ") and dry.out.splitlines()[0].endswith(", read-only")


def test_read_only_from_env_local_and_the_embedded_store_is_not_created(run_script, tmp_path):
    env_dir, work = tmp_path / "env", tmp_path / "work"
    env_dir.mkdir()
    work.mkdir()
    (env_dir / ".env.local").write_text("MLFLOW_SKILL_READ_ONLY=true\n")
    res = run_script("create_experiment", "--name", "x", uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(env_dir)}, cwd=work)
    assert_refused(res, ".env.local")
    assert list(work.iterdir()) == []  # no ./mlflow.db, no ./mlruns


def test_queries_still_work_and_say_the_mode(run_script, client):
    name = unique("ro-query")
    client.create_experiment(name)
    res = run_script("query_experiments", "experiments", "--name-like", name, env=READ_ONLY)
    assert res.code == 0, res.err
    assert res.out.splitlines()[0].endswith(", read-only") and name in res.out


@pytest.mark.parametrize(
    "value,expected", [("1", True), ("true", True), ("yes", True), ("0", False), ("", False), (None, False)]
)
def test_the_setting_reads_the_usual_truthy_words(value, expected, tmp_path):
    environ = {"MLFLOW_SKILL_ENV_DIR": str(tmp_path)}
    if value is not None:
        environ["MLFLOW_SKILL_READ_ONLY"] = value
    settings = resolve_settings(environ=environ, cwd=tmp_path)
    assert settings.read_only is expected
    assert settings.store_line().endswith(", read-only") is expected


@pytest.mark.parametrize("script", ["tag_runs", "promote_model", "log_feedback"])
def test_through_uv_run_as_an_agent_calls_it(uv_run, server, script):
    """The PEP 723 environment builds and the refusal is the same in a real process (slow tier)."""
    res = uv_run(script, *WRITES[script], env=READ_ONLY)
    assert_refused(res, "environment")
