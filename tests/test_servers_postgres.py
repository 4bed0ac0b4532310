"""Database URIs: a PostgreSQL URI works end to end in-process where a driver is installed, and the
fix the skill prints where none is (`uv run --with DRIVER scripts/...`) works exactly as printed in
the scripts' own (locked) environments. Connecting is tried before MLflow creates a table, so a
database that cannot be used is left as it was; an unreachable server is exit 4 naming the host,
in one line, without MLflow's retry warnings. The database password inside the URI is shown as
`user:***@` and never printed or written.

PostgreSQL is the throw-away cluster of tests/conftest.py (trust auth, so any password is accepted
and the sentinel below still travels through every code path). MySQL and SQL Server are not
installed here: their printed fixes are run against a closed port, which proves the driver
installs and imports and that the failure is the clean exit 4.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest

from conftest import SCRIPTS, free_port, postgres_database, run_uv, unique
from reliability import assert_clean_error, error_lines

PG_PASSWORD = "PgPw-sentinel-5b9e"


pytestmark = pytest.mark.slow  # a PostgreSQL cluster and the scripts' own uv environments


@pytest.fixture(scope="module")
def pg_uri():
    uri = postgres_database("direct")  # its own database in the session's cluster
    return uri.replace("://mlflow@", f"://mlflow:{PG_PASSWORD}@")


def bare(uri: str) -> str:
    """postgresql+psycopg2://... -> postgresql://... (the URI people write; the driver is SQLAlchemy's default)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", uri)


def table_count(uri: str) -> int:
    """Tables in the database's public schema, read with the test venv's psycopg2."""
    import psycopg2

    conn = psycopg2.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", uri))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def printed_with(res) -> str:
    """The package in the fix the error line prints: `uv run --with PACKAGE scripts/...`."""
    match = re.search(r"`uv run --with ('[^']+'|\S+) scripts/", res.err)
    assert match, res.err
    return match.group(1).strip("'")


def test_postgresql_uri_works_end_to_end_in_process(run_script, pg_uri, tmp_path):
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    name = unique("pg")
    shown = pg_uri.replace(PG_PASSWORD, "***")
    res = run_script("create_experiment", "--name", name, uri=pg_uri, cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.out.startswith(f"store: {shown} (MLFLOW_TRACKING_URI from environment)")
    cl = MlflowClient(tracking_uri=pg_uri)
    exp = cl.get_experiment_by_name(name)
    assert exp is not None  # created in PostgreSQL by the script
    run_ids = []
    for i in range(3):
        rid = cl.create_run(exp.experiment_id, run_name=f"pg-{i}").info.run_id
        cl.log_batch(
            rid, metrics=[Metric("loss", 1.0 / (s + 1 + i), 0, s) for s in range(5)], params=[Param("i", str(i))]
        )
        run_ids.append(rid)
    out = tmp_path / "runs.csv"
    texts = []
    for args in (
        ["query_experiments", "runs", "-e", name],
        ["query_experiments", "export", "-e", name, "--output", str(out)],
        ["get_metric_history", "--run-id", run_ids[1], "--metrics", "loss", "--full", "--format", "json"],
        ["query_experiments", "runs", "-e", name, "--max-results", "1", "--tracking-uri", pg_uri],
    ):
        res = run_script(*args, uri=pg_uri, cwd=tmp_path)
        assert res.code == 0, (args, res.err)
        texts += [res.out, res.err]
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(r["run_id"] for r in rows) == sorted(run_ids)
    for r in rows:  # the last loss of each run, as MLflow's client reads it
        assert float(r["metrics.loss"]) == pytest.approx(cl.get_run(r["run_id"]).data.metrics["loss"])
    history = json.loads(texts[4])
    expected = [m.value for m in sorted(cl.get_metric_history(run_ids[1], "loss"), key=lambda m: m.step)]
    numbers = set()

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, float):
            numbers.add(round(node, 12))

    walk(history)
    assert len(expected) == 5 and all(round(v, 12) in numbers for v in expected), (expected, sorted(numbers)[:20])
    next_cmd = texts[6].split("next page: `", 1)[1].split("`", 1)[0]
    assert "mlflow@127.0.0.1" in next_cmd and "***" not in next_cmd  # user kept (PGPASSWORD works), password out
    for text in texts + [out.read_text()]:
        assert PG_PASSWORD not in text


def test_bare_postgresql_uri_uses_the_installed_driver(run_script, pg_uri, tmp_path):
    """`postgresql://` names no driver; SQLAlchemy 2.1's default is psycopg 3, which this test venv
    lacks: the installed psycopg2 is used instead of failing."""
    name = unique("pg-bare")
    res = run_script("create_experiment", "--name", name, uri=bare(pg_uri), cwd=tmp_path)
    assert res.code == 0, res.err
    res = run_script("query_experiments", "experiments", "--format", "json", uri=bare(pg_uri), cwd=tmp_path)
    assert res.code == 0, res.err
    assert name in {e["name"] for e in json.loads(res.out)["experiments"]}
    assert PG_PASSWORD not in res.both


def test_missing_database_is_exit_3_naming_it(run_script, pg_uri, tmp_path):
    uri = pg_uri.rsplit("/", 1)[0] + "/no_such_db"
    res = run_script("query_experiments", "experiments", uri=uri, cwd=tmp_path)
    assert_clean_error(
        res, 3, "PostgreSQL database at 127.0.0.1:", "no_such_db", "does not exist", "create the database"
    )
    assert PG_PASSWORD not in res.both


def test_mysql_uri_without_driver_is_refused_at_once(run_script, tmp_path):
    res = run_script(
        "query_experiments", "experiments", uri=f"mysql://alice:{PG_PASSWORD}@127.0.0.1:9/mlflow", cwd=tmp_path
    )
    assert_clean_error(
        res,
        2,
        "mysql:// stores need a MySQL driver",
        "uv run --with pymysql scripts/",
        "(URI mysql://alice:***@127.0.0.1:9/mlflow from environment)",
    )
    assert PG_PASSWORD not in res.both


def test_postgresql_fix_works_exactly_as_printed(pg_uri, tmp_path):
    """Through the scripts' locked environment: refused with the fix (exit 2) before anything is
    created in the database; the printed `--with` then works, and so does the older advice
    (`--with psycopg2-binary`) since any installed PostgreSQL driver is used."""
    uri = bare(postgres_database("printed_fix")).replace("://mlflow@", f"://mlflow:{PG_PASSWORD}@")
    env = {"MLFLOW_TRACKING_URI": uri}
    script = SCRIPTS / "query_experiments.py"
    res = run_uv(script, "experiments", env=env, cwd=tmp_path)
    assert_clean_error(res, 2, "postgresql:// stores need a PostgreSQL driver", "uv run --with 'psycopg[binary]'")
    assert "move the file" not in res.err
    assert table_count(uri) == 0  # refused before MLflow created a table
    package = printed_with(res)
    name = unique("printed")
    res = run_uv(SCRIPTS / "create_experiment.py", "--name", name, uv_args=("--with", package), env=env, cwd=tmp_path)
    assert res.code == 0, res.err
    assert table_count(uri) > 10  # MLflow's schema, created on first use
    for driver in (package, "psycopg2-binary"):
        res = run_uv(script, "experiments", "--format", "json", uv_args=("--with", driver), env=env, cwd=tmp_path)
        assert res.code == 0, (driver, res.err)
        assert name in {e["name"] for e in json.loads(res.out)["experiments"]}
        assert PG_PASSWORD not in res.both


@pytest.mark.parametrize(
    "scheme",
    ["postgresql", "mysql", "mssql"],
)
def test_unreachable_database_is_exit_4_naming_the_host(scheme, tmp_path):
    """The printed fix for each database, then a closed port: exit 4 within seconds, one line naming
    host and port, no retry warnings from MLflow, nothing about moving files."""
    port = free_port()  # nothing listens there
    uri = f"{scheme}://alice:{PG_PASSWORD}@127.0.0.1:{port}/mlflow"
    env = {"MLFLOW_TRACKING_URI": uri}
    script = SCRIPTS / "query_experiments.py"
    refused = run_uv(script, "experiments", env=env, cwd=tmp_path)
    assert_clean_error(refused, 2, f"{scheme}:// stores need a")
    package = printed_with(refused)
    started = time.monotonic()
    res = run_uv(script, "experiments", uv_args=("--with", package), env=env, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert_clean_error(res, 4, f"database at 127.0.0.1:{port}", "is not reachable", "MLFLOW_TRACKING_URI")
    assert len(error_lines(res.err)) == 1 and "retried" not in res.err.lower() and "WARNING" not in res.err
    assert "move the file" not in res.err
    assert elapsed < 90, f"{elapsed:.0f}s"  # no minutes of MLflow's retries (includes installing the driver)
    assert PG_PASSWORD not in res.both
