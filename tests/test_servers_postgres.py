"""Database URIs: a PostgreSQL URI works end to end in-process where its driver is installed
(this test venv has psycopg2), and is refused at once, with the command that adds the driver,
where it is not (the scripts' own `uv run` environment; a mysql:// URI here). The database
password inside the URI is shown as `user:***@` and never printed or written.

PostgreSQL is the throw-away cluster of tests/conftest.py (`start_postgres`, trust auth, so any
password is accepted and the sentinel below still travels through every code path).
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import postgres_database, unique
from reliability import assert_clean_error

PG_PASSWORD = "PgPw-sentinel-5b9e"


pytestmark = pytest.mark.slow  # a PostgreSQL cluster and the scripts' own uv environments


@pytest.fixture(scope="module")
def pg_uri():
    uri = postgres_database("direct")  # its own database in the session's cluster
    return uri.replace("://mlflow@", f"://mlflow:{PG_PASSWORD}@")


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


def test_mysql_uri_without_driver_is_refused_at_once(run_script, tmp_path):
    res = run_script(
        "query_experiments", "experiments", uri=f"mysql://alice:{PG_PASSWORD}@127.0.0.1:9/mlflow", cwd=tmp_path
    )
    assert_clean_error(
        res,
        2,
        "mysql:// stores need the mysqlclient driver",
        "uv run --with mysqlclient scripts/",
        "(URI mysql://alice:***@127.0.0.1:9/mlflow from environment)",
    )
    assert PG_PASSWORD not in res.both


def test_postgresql_uri_through_uv_run_is_refused_with_the_fix(uv_run, pg_uri, tmp_path):
    """The scripts' own environment (PEP 723 dependencies) has no psycopg2: refused at once,
    exit 2, naming `uv run --with psycopg2-binary`, before any connection is tried."""
    res = uv_run("query_experiments", "experiments", uri=pg_uri, cwd=tmp_path, timeout=600)
    assert_clean_error(res, 2, "psycopg2-binary driver", "uv run --with psycopg2-binary scripts/")
    assert PG_PASSWORD not in res.both
