"""The embedded store's safety: opening a sqlite (or other database) store in-process.

Used by _store.InProcessStore only. MLflow creates and migrates a store's schema the first time a
process opens it; this module serialises that across processes (a file lock), refuses a store an
interrupted migration left half-done with the command that repairs it, maps MLflow's other
opening errors to one line each, and keeps the garbage collector out of MLflow's import.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from mlflow_skill.core.errors import ServerError, SkillError
from mlflow_skill.core.secrets import redact_store_uri, scrub


@contextlib.contextmanager
def gc_paused():
    """No garbage collection while MLflow's ~2,000 modules import (they create no cycles worth
    collecting); afterwards freeze them out of the collector, which otherwise re-scans them on
    every full collection and once more at exit (0.3-1 s per call, measured)."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def store_init_lock(uri: str, display: str, wait: float = 120.0):
    """An exclusive lock (fcntl) per store URI around opening the store, which creates and
    migrates its schema on first use: without it, processes opening a fresh ./mlflow.db together
    race MLflow's migrations and can leave the file unusable. The lock file lives in the temp
    folder (the store's own folder may be read-only); a killed holder releases it."""
    try:
        import fcntl
    except ImportError:  # Windows: no fcntl; MLflow's own behaviour
        yield
        return
    import hashlib
    import tempfile

    name = f"mlflow-skill-store-{hashlib.sha256(uri.encode()).hexdigest()[:20]}.lock"
    try:
        handle = open(Path(tempfile.gettempdir()) / name, "a")
    except OSError:
        yield
        return
    with handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"another process has been creating or migrating store {display} for over {wait:g}s: "
                        "wait for it to finish (or stop it) and run again"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_file(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix) :].partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def check_sqlite_state(uri: str, display: str) -> None:
    """Refuse a sqlite store that an interrupted migration left half-done (alembic's batch
    migrations copy a table to _alembic_tmp_<name>, drop the original and rename the copy):
    migrating it again fails with 'table _alembic_tmp_... already exists' for ever."""
    path = _sqlite_file(uri)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    import sqlite3

    state, error = None, None
    for attempt in range(2):
        try:
            state = _read_state(path)
            break
        except sqlite3.DatabaseError as exc:
            error = exc
        if attempt or not roll_back_hot_journal(path, display):  # rolled back: read what the last commit left
            raise ServerError(
                f"store {display} is not a usable sqlite database ({error}): move the file away "
                f"(mv {path} {path}.broken) and run again to start a new store"
            )
    tables, leftovers, version, runs = state
    if not leftovers:
        return
    where = f"leftover tables {', '.join(leftovers)}; schema version {version[0] if version else 'none'}"
    if not runs:
        fix = f"it holds no runs: delete {path} and run again"
    else:
        sql = " ".join(_leftover_fix_sql(t, tables) for t in leftovers)
        fix = (
            f"back it up, then run python3 -c \"import sqlite3; sqlite3.connect('{path}').executescript('{sql}')\" "
            f"&& {_upgrade_command(uri)}"
        )
    raise ServerError(f"store {display} was left mid-migration by an interrupted process ({where}): {fix}")


def _read_state(path: Path) -> tuple[set[str], list[str], tuple | None, int]:
    """(tables, leftover alembic copies, schema version, runs) read without writing anything."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
        if not leftovers:
            return tables, [], None, 0
        version = (
            con.execute("SELECT version_num FROM alembic_version").fetchone() if "alembic_version" in tables else None
        )
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        return tables, leftovers, version, runs
    finally:
        con.close()


def roll_back_hot_journal(path: Path, display: str) -> bool:
    """A process killed in the middle of a write leaves a hot `-journal` beside the file: a
    read-only open cannot roll it back ("attempt to write a readonly database"), a read-write one
    does, restoring the last commit, as any sqlite client would. True when there was one and it is
    rolled back; False when there is none (the file is damaged some other way)."""
    import sqlite3

    journal = path.with_name(path.name + "-journal")
    if not journal.is_file() or journal.stat().st_size == 0:
        return False
    try:
        con = sqlite3.connect(str(path), timeout=30)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the first read rolls it back
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            return False  # not a journal to roll back: the file itself is damaged
        raise ServerError(
            f"store {display} has an unfinished write from a killed process ({journal.name}) that could not be "
            f"rolled back ({exc}): make {path.parent} and both files writable, then run again"
        ) from None
    return True


def _leftover_fix_sql(tmp_table: str, tables: set[str]) -> str:
    """Drop the copy when the original table survived, else the copy is the data: rename it back."""
    original = tmp_table[len("_alembic_tmp_") :]
    if original in tables:
        return f"DROP TABLE {tmp_table};"
    return f"ALTER TABLE {tmp_table} RENAME TO {original};"


def _upgrade_command(uri: str) -> str:
    """MLflow's schema upgrade for this store; a database password stays masked (`user:***@`)."""
    import shlex

    from mlflow.version import VERSION

    return f"uvx --from mlflow=={VERSION} mlflow db upgrade {shlex.quote(redact_store_uri(uri))}"


def store_open_error(exc: Exception, uri: str, display: str) -> SkillError:
    """MLflow's errors on opening a store, as one line naming the fix."""
    from mlflow.version import VERSION

    text = " ".join(scrub(str(exc)).split())
    found = text.split("found version ", 1)[1].split(",", 1)[0].split(" ", 1)[0] if "found version " in text else ""
    newer = "Can't locate revision" in text or "No such revision" in text or (found and not _known_revision(found))
    if newer:
        return ServerError(
            f"store {display} was written by a newer MLflow than this script's {VERSION} (schema {found or '?'}): "
            "update the script's environment with `uv run --upgrade scripts/<name>.py ...`"
        )
    if "out-of-date database schema" in text:
        return ServerError(
            f"store {display} has an older schema ({found}) than MLflow {VERSION} needs: back it up, then run "
            f"{_upgrade_command(uri)}"
        )
    if not uri.startswith(("sqlite:", "file:", "/")):  # a database server: no file to move
        return ServerError(
            f"store {display} could not be opened ({type(exc).__name__}: {text[:300]}): check that the database "
            "user may create tables there (MLflow creates its schema on first use)"
        )
    return ServerError(
        f"store {display} could not be opened ({type(exc).__name__}: {text[:300]}); if an earlier call was "
        f"interrupted while creating it, move the file away and run again"
    )


def _known_revision(revision: str) -> bool:
    """Whether this MLflow's migrations know a schema revision (else a newer MLflow wrote it)."""
    try:
        from alembic.script import ScriptDirectory
        from mlflow.store.db.utils import _get_alembic_config

        scripts = ScriptDirectory.from_config(_get_alembic_config(""))
    except Exception:
        return True  # cannot tell: say what MLflow said
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # alembic: "No such revision or branch"
        return False


# ---------------------------------------------------------------------------------------------
# Byte-code shared between the scripts' uv environments
# ---------------------------------------------------------------------------------------------
BORROWED = ".mlflow-skill-bytecode-borrowed"


def borrow_bytecode() -> None:
    """Once per environment, before its first heavy import: hard-link the byte-code that another
    of these scripts' uv environments already compiled for the very same source files.

    uv builds one environment per script, hard-linked from its cache, so without this each of the
    six scripts compiles the same MLflow modules on its first call (most of that call's time).
    A .pyc is taken only when its source is the same file (same inode) in both environments, so
    the content is identical; Python still checks each .pyc against its source and corrects the
    file names recorded in it. Anything unexpected (another layout, copies instead of links, a
    read-only folder) just leaves the environment to compile for itself."""
    import os
    import sys
    import sysconfig

    env = Path(sys.prefix)
    if env.parent.name != "environments-v2" or sys.prefix == sys.base_prefix:
        return  # not a uv script environment
    site = Path(sysconfig.get_paths()["purelib"])
    marker = site / BORROWED
    if marker.exists():
        return
    try:
        marker.touch()
        mark = next(site.glob("mlflow_skinny-*.dist-info"), None)
        for sibling in env.parent.iterdir():
            other = sibling / site.relative_to(env)
            if sibling != env and mark is not None and (other / mark.name).is_dir():
                for entry in os.scandir(other):
                    if (
                        entry.is_dir()
                        and not entry.name.endswith("-info")
                        and (entry.name == "__pycache__" or (site / entry.name).is_dir())
                    ):
                        _link_tree(other, site, entry.name)
    except Exception:  # never let this cost a call more than the compiling it saves
        return


def _link_tree(their_site: Path, our_site: Path, top: str) -> None:
    import os

    for folder, _, files in os.walk(their_site / top):
        if not folder.endswith("__pycache__"):
            continue
        source_dir = Path(folder).parent  # the site itself for top-level modules (__pycache__)
        mine = our_site / source_dir.relative_to(their_site)
        for name in files:
            source = name.split(".", 1)[0] + ".py"
            target = mine / "__pycache__" / name
            try:
                a, b = os.stat(source_dir / source), os.stat(mine / source)
                if (a.st_ino, a.st_dev) != (b.st_ino, b.st_dev) or target.exists():
                    continue
                target.parent.mkdir(exist_ok=True)
                os.link(Path(folder) / name, target)
            except OSError:
                continue
