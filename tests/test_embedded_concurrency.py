"""The embedded store (./mlflow.db) under concurrency and after interrupted migrations.

- Several first calls at once on a fresh folder: MLflow creates and migrates the schema on first
  open; without a lock the processes race the migrations (exit 1, and sometimes a file no later
  call can open). 6 parallel first calls, 6 rounds, all must exit 0 and leave a usable store.
- A store an interrupted migration left half-done (alembic's `_alembic_tmp_<table>` copies) is
  refused with one line naming the repair, and that repair works.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SCRIPTS, clean_env
from reliability import assert_clean_error

ROUNDS = 6  # 36 first calls in all; each round builds a fresh store under the same race
PARALLEL = 6
# Readers and writers mixed: two of each, as an agent firing several calls at once would.
FIRST_CALLS = [
    ("query_experiments.py", ["experiments"]),
    ("create_experiment.py", ["--name", "par-{i}"]),
    ("search_traces.py", ["--experiment", "Default"]),
]


def start(folder: Path, envdir: Path, i: int) -> subprocess.Popen:
    script, args = FIRST_CALLS[i % len(FIRST_CALLS)]
    return subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *[a.format(i=i) for a in args]],
        cwd=folder,
        env=clean_env(env_dir=envdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # cold start: every script's first call at once, through uv run
@pytest.mark.timeout(1500)
def test_parallel_first_calls_on_a_fresh_folder(tmp_path):
    from mlflow.tracking import MlflowClient

    envdir = tmp_path / "envdir"
    envdir.mkdir()
    for rnd in range(ROUNDS):
        folder = tmp_path / f"round{rnd}"
        folder.mkdir()
        procs = [start(folder, envdir, i) for i in range(PARALLEL)]
        results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
        failed = [(code, err[-800:]) for code, _, err in results if code != 0]
        assert not failed, f"round {rnd}: {len(failed)} of {PARALLEL} first calls failed: {failed[0]}"
        for _code, _out, err in results:
            assert "Traceback" not in err and "warning" not in err.lower(), err[-800:]
        db = folder / "mlflow.db"
        client = MlflowClient(f"sqlite:///{db}")
        names = {e.name for e in client.search_experiments()}
        writers = [i for i in range(PARALLEL) if FIRST_CALLS[i % len(FIRST_CALLS)][0] == "create_experiment.py"]
        assert {f"par-{i}" for i in writers} <= names, names  # every write landed, once
        run = client.create_run(client.get_experiment_by_name("par-1").experiment_id)
        client.log_metric(run.info.run_id, "m", 1.0)  # the file is usable for writes afterwards
        assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
        with sqlite3.connect(db) as con:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert not [t for t in tables if t.startswith("_alembic_tmp_")], tables


# ---------------------------------------------------------------------------------------------
# A store left mid-migration
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def store_with_a_run(tmp_path):
    """A healthy ./mlflow.db made by MLflow's own client, holding one run with a tag."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path / "work"
    folder.mkdir()
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("kept"), tags={"team": "quant"})
    client.log_metric(run.info.run_id, "sharpe", 1.5)
    return folder, run.info.run_id


def interrupt_migration(db: Path, table: str, original_dropped: bool) -> None:
    """What an interrupted alembic batch migration leaves: a copy of `table` named
    _alembic_tmp_<table>, with the original still there or already dropped."""
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE _alembic_tmp_{table} AS SELECT * FROM {table}")
        if original_dropped:
            con.execute(f"DROP TABLE {table}")


def repair(message: str, db: Path) -> None:
    """Run the repair the error names: its python3 -c part as printed, its `mlflow db upgrade`
    with the MLflow installed here (the same version the message names)."""
    fix = message.split("back it up, then run ", 1)[1]
    python_part, upgrade = fix.split(" && ", 1)
    code = python_part.split('python3 -c "', 1)[1].rsplit('"', 1)[0]
    subprocess.run([sys.executable, "-c", code], check=True)
    assert upgrade.startswith("uvx --from mlflow==") and upgrade.endswith(f" mlflow db upgrade sqlite:///{db}")
    mlflow_cli = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    subprocess.run([mlflow_cli, "db", "upgrade", f"sqlite:///{db}"], check=True, capture_output=True)


@pytest.mark.parametrize("original_dropped", [False, True], ids=["copy-left", "original-dropped"])
def test_store_left_mid_migration_is_refused_with_its_repair(run_script, store_with_a_run, original_dropped):
    folder, run_id = store_with_a_run
    db = folder / "mlflow.db"
    interrupt_migration(db, "tags", original_dropped)
    res = run_script("query_experiments", "run", run_id, uri=None, cwd=folder)
    assert_clean_error(res, 6, "mid-migration", "_alembic_tmp_tags", "mlflow db upgrade", str(db))
    assert res.err.splitlines()[0] == f"store: sqlite:///{db} (embedded default, nothing configured)"
    repair(res.err.splitlines()[-1], db)
    res = run_script("query_experiments", "run", run_id, "--all-tags", "--format", "json", uri=None, cwd=folder)
    assert res.code == 0, res.err
    assert "quant" in res.out  # the run's tags survived the repair


def test_empty_store_left_mid_migration_says_delete_it(run_script, tmp_path):
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # a fresh, empty store
    interrupt_migration(tmp_path / "mlflow.db", "experiments", original_dropped=False)
    res = run_script("create_experiment", "--name", "x", uri=None, cwd=tmp_path)
    assert_clean_error(res, 6, "mid-migration", f"holds no runs: delete {tmp_path / 'mlflow.db'}")
    (tmp_path / "mlflow.db").unlink()
    # A new process, as an agent's next call is (this one keeps MLflow's engine to the old file).
    again = subprocess.run(
        [sys.executable, str(SCRIPTS / "create_experiment.py"), "--name", "x"],
        cwd=tmp_path,
        env=clean_env(env_dir=tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr


def test_schema_versions_older_and_newer_name_their_fix(run_script, store_with_a_run):
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    folder, _ = store_with_a_run
    db = folder / "mlflow.db"
    head = ScriptDirectory.from_config(_get_alembic_config(f"sqlite:///{db}")).get_revision("head")
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = ?", (head.down_revision,))
    res = run_script("query_experiments", "experiments", uri=None, cwd=folder)
    assert_clean_error(res, 6, "older schema", str(head.down_revision), f"mlflow db upgrade sqlite:///{db}")
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'fedcba987654'")
    res = run_script("query_experiments", "experiments", uri=None, cwd=folder)
    assert_clean_error(res, 6, "newer MLflow", "uv run --upgrade")


def test_a_file_that_is_not_a_database_is_refused(run_script, tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database, " * 100)
    res = run_script("query_experiments", "experiments", uri=None, cwd=tmp_path)
    assert_clean_error(res, 6, "not a usable sqlite database", "mlflow.db.broken")
