"""Compatibility with the newest versions the scripts' headers allow, ignoring the locks: the
scripts are copied without their locks, locked afresh with `uv lock --script --upgrade`, and driven
through `uv run` where the skill relies most on what others ship: the embedded store (MLflow's
server handlers in-process), a backtest with QuantStats and artifacts, a real tracking server,
and a PostgreSQL URI with the driver the skill names.

A failure says which packages differ from the locks (the suspects, MLflow first): fix the code or
tighten the bound in the headers, and update the supported-versions table
(docs/production-setup.md#supported-versions). A release beyond the headers' bounds is reported
as a warning, to be tested by raising the bound in a copy.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SCRIPTS, UV, free_port, postgres_database, run_uv, unique
from reliability import assert_clean_error, write_returns_csv

pytestmark = pytest.mark.slow  # fresh uv environments resolved from the index


def versions(lock: Path) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(lock.read_text()).get("package", []) if "version" in p}


@dataclass
class Newest:
    scripts: Path  # the copy, locked at the newest allowed versions
    changed: dict[str, tuple[str, str]]  # package -> (locked, newest), over all scripts
    resolved: dict[str, str]  # package -> newest version, over all scripts

    def blame(self) -> str:
        """What differs from the locks, MLflow first: the suspects when a check fails."""
        first = sorted(self.changed, key=lambda n: (not n.startswith("mlflow"), n))
        moved = ", ".join(f"{n} {self.changed[n][0]} -> {self.changed[n][1]}" for n in first) or "nothing"
        mlflow = self.resolved.get("mlflow-skinny")
        return f"newest allowed versions differ from the locks in: {moved} (mlflow-skinny {mlflow})"

    def run(self, name: str, *args, **kwargs):
        return run_uv(self.scripts / f"{name}.py", *args, **kwargs)


@pytest.fixture(scope="module")
def newest(tmp_path_factory) -> Newest:
    copy = tmp_path_factory.mktemp("newest") / "scripts"
    shutil.copytree(SCRIPTS, copy, ignore=shutil.ignore_patterns("*.lock", "__pycache__"))
    changed: dict[str, tuple[str, str]] = {}
    resolved: dict[str, str] = {}
    for script in sorted(copy.glob("*.py")):
        proc = subprocess.run(
            [UV, "lock", "--quiet", "--upgrade", "--script", str(script)], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"{script.name}: the newest allowed versions do not resolve:\n{proc.stderr}"
        ours = versions(script.with_name(script.name + ".lock"))
        locked = SCRIPTS / f"{script.name}.lock"
        theirs = versions(locked) if locked.is_file() else {}
        resolved.update(ours)
        changed.update({n: (theirs.get(n, "none"), v) for n, v in ours.items() if theirs.get(n) != v})
    found = Newest(copy, changed, resolved)
    print(found.blame())  # shown with any failure of this module
    return found


def check(newest: Newest, res, *needles: str) -> None:
    assert res.code == 0, f"{newest.blame()}\nexit {res.code}\nstderr: {res.err[-3000:]}\nstdout: {res.out[:1500]}"
    for needle in needles:
        assert needle in res.out, f"{newest.blame()}\n{needle!r} not in:\n{res.out[:2000]}"


def test_embedded_store_and_a_backtest_with_the_newest_versions(newest, tmp_path):
    """The embedded ./mlflow.db (MLflow's handlers in-process): create, log a backtest with its
    artifacts, read it back."""
    env = {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    name = unique("compat")
    check(newest, newest.run("create_experiment", "--name", name, env=env, cwd=tmp_path), name)
    returns = write_returns_csv(tmp_path / "returns.csv")
    res = newest.run(
        "log_backtest", "--returns", returns, "--experiment", name, "--format", "json", env=env, cwd=tmp_path
    )
    check(newest, res)
    run_id = json.loads(res.out)["run_id"]
    check(newest, newest.run("query_experiments", "runs", "-e", name, env=env, cwd=tmp_path), run_id)
    check(newest, newest.run("query_experiments", "artifacts", run_id, "--path", "backtest", env=env, cwd=tmp_path))
    check(newest, newest.run("get_metric_history", "--run-id", run_id, env=env, cwd=tmp_path), run_id)
    res = newest.run("search_traces", "--experiment", name, env=env, cwd=tmp_path)
    check(newest, res)


def test_tracking_server_with_the_newest_versions(newest, server, tmp_path):
    env = {"MLFLOW_TRACKING_URI": server.uri}
    name = unique("compat-http")
    returns = write_returns_csv(tmp_path / "returns.csv")
    args = ["--returns", returns, "--experiment", name, "--create-experiment", "--format", "json"]
    res = newest.run("log_backtest", *args, env=env, cwd=tmp_path)
    check(newest, res)
    run_id = json.loads(res.out)["run_id"]
    check(
        newest, newest.run("query_experiments", "best", "-e", name, "--metric", "sharpe", env=env, cwd=tmp_path), run_id
    )
    check(newest, newest.run("query_experiments", "run", run_id, env=env, cwd=tmp_path), "backtest/")


def test_postgresql_fix_works_with_the_newest_versions(newest, tmp_path):
    """The driver the skill names for `postgresql://` under the newest SQLAlchemy and MLflow."""
    uri = re.sub(r"^postgresql\+\w+://", "postgresql://", postgres_database("compat_newest"))
    env = {"MLFLOW_TRACKING_URI": uri}
    refused = newest.run("query_experiments", "experiments", env=env, cwd=tmp_path)
    assert_clean_error(refused, 2, "postgresql:// stores need a PostgreSQL driver")
    package = re.search(r"`uv run --with ('[^']+'|\S+) scripts/", refused.err).group(1).strip("'")
    name = unique("compat-pg")
    res = newest.run("create_experiment", "--name", name, uv_args=("--with", package), env=env, cwd=tmp_path)
    check(newest, res, name)
    res = newest.run("query_experiments", "experiments", uv_args=("--with", package), env=env, cwd=tmp_path)
    check(newest, res, name)


def test_no_release_beyond_the_bounds(newest, tmp_path):
    """A warning (not a failure) when MLflow has a release the headers' upper bound excludes."""
    script = tmp_path / "unbounded.py"
    text = (newest.scripts / "query_experiments.py").read_text()
    script.write_text(re.sub(r'"mlflow-skinny>=([\d.]+),<[\d.]+"', r'"mlflow-skinny>=\1"', text, count=1))
    proc = subprocess.run([UV, "lock", "--quiet", "--upgrade", "--script", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    latest = versions(script.with_name("unbounded.py.lock"))["mlflow-skinny"]
    allowed = newest.resolved["mlflow-skinny"]
    if latest != allowed:
        warnings.warn(
            f"mlflow-skinny {latest} is out; the headers allow up to {allowed}: raise the bound in a copy, run "
            "this module, then the headers (docs/production-setup.md#supported-versions)",
            stacklevel=1,
        )


@pytest.mark.parametrize("scheme", ["mysql", "mssql"])
def test_mysql_and_mssql_fixes_work_with_the_newest_versions(newest, scheme, tmp_path):
    """No MySQL or SQL Server here: the printed driver installs and imports under the newest
    versions, and a closed port is the clean exit 4 naming the host."""
    port = free_port()
    env = {"MLFLOW_TRACKING_URI": f"{scheme}://alice:pw@127.0.0.1:{port}/mlflow"}
    refused = newest.run("query_experiments", "experiments", env=env, cwd=tmp_path)
    assert_clean_error(refused, 2, f"{scheme}:// stores need a")
    package = re.search(r"`uv run --with ('[^']+'|\S+) scripts/", refused.err).group(1).strip("'")
    res = newest.run("query_experiments", "experiments", uv_args=("--with", package), env=env, cwd=tmp_path)
    assert res.code == 4, f"{newest.blame()}\n{res.err}"
    assert_clean_error(res, 4, f"database at 127.0.0.1:{port}", "is not reachable")
