"""One rule for where things are found, from any working directory (references/credentials.md):

- .env.local, then .env, in the working directory (where a user's project keeps its secrets),
  then in the skill's folder (beside scripts/);
- with nothing configured, the embedded store ./mlflow.db in the working directory, shown as an
  absolute path in the `store:` line, created there and nowhere else.

These tests run the scripts from a folder that is not the skill's, without MLFLOW_SKILL_ENV_DIR
(the default lookup), once in-process and once through `uv run` from a copy of the skill.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlflow_skill.core import config as _config  # conftest put scripts/ on sys.path

from conftest import SCRIPTS, unique

DEFAULT_LOOKUP = {"MLFLOW_SKILL_ENV_DIR": ""}  # empty: the working directory, then the skill folder


def store_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("store: "))


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """(skill folder, working folder), both empty; the scripts take `skill` as their skill folder."""
    skill, work = tmp_path / "skill", tmp_path / "elsewhere" / "project"
    skill.mkdir()
    work.mkdir(parents=True)
    monkeypatch.setattr(_config, "SKILL_ROOT", skill)
    return skill, work


def test_embedded_store_from_another_folder_is_that_folder_absolute(run_script, folders):
    skill, work = folders
    res = run_script("create_experiment", "--name", "here", uri=None, cwd=work, env=DEFAULT_LOOKUP)
    assert res.code == 0, res.err
    db = work.resolve() / "mlflow.db"
    assert store_line(res.out) == f"store: sqlite:///{db} (embedded default, nothing configured)"
    assert db.is_file() and not (skill / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    assert MlflowClient(f"sqlite:///{db}").get_experiment_by_name("here") is not None


def test_working_directory_env_local_beats_the_skill_folders(run_script, server, folders):
    skill, work = folders
    (skill / ".env.local").write_text(f"MLFLOW_TRACKING_URI={server.uri}\n")
    res = run_script("create_experiment", "--name", unique("skillenv"), uri=None, cwd=work, env=DEFAULT_LOOKUP)
    assert res.code == 0, res.err
    assert (
        store_line(res.out) == f"store: {server.uri} (MLFLOW_TRACKING_URI from .env.local in the skill folder {skill})"
    )
    assert not (work / "mlflow.db").exists()  # the skill folder's setting applies from anywhere

    (work / ".env").write_text("MLFLOW_TRACKING_URI=http://127.0.0.1:9\n")  # the project's .env.local wins over it
    (work / ".env.local").write_text(f"MLFLOW_TRACKING_URI={server.uri}/\n")
    res = run_script("create_experiment", "--name", unique("workenv"), uri=None, cwd=work, env=DEFAULT_LOOKUP)
    assert res.code == 0, res.err
    assert store_line(res.out) == (
        f"store: {server.uri} (MLFLOW_TRACKING_URI from .env.local in the working directory {work.resolve()})"
    )


def test_uv_run_from_another_folder_follows_the_same_rule(uv_run, server, tmp_path):
    """`uv run /path/to/skill/scripts/x.py` from a project folder, as an agent runs it."""
    skill, work, other = tmp_path / "skill", tmp_path / "project", tmp_path / "scratch"
    (skill / "scripts").mkdir(parents=True)
    work.mkdir()
    other.mkdir()
    for path in SCRIPTS.glob("*.py"):
        shutil.copy(path, skill / "scripts" / path.name)
    shutil.copytree(
        SCRIPTS / "mlflow_skill", skill / "scripts" / "mlflow_skill", ignore=shutil.ignore_patterns("__pycache__")
    )
    (skill / ".env.local").write_text(f"MLFLOW_TRACKING_URI={server.uri}\n")
    script = str(skill / "scripts" / "create_experiment.py")
    res = uv_run(script, "--name", unique("uvskill"), uri=None, cwd=work, env=DEFAULT_LOOKUP)
    assert res.code == 0, res.err
    assert (
        store_line(res.out) == f"store: {server.uri} (MLFLOW_TRACKING_URI from .env.local in the skill folder {skill})"
    )

    (skill / ".env.local").unlink()  # nothing configured anywhere: the folder it runs in
    res = uv_run(script, "--name", "first", uri=None, cwd=other, env=DEFAULT_LOOKUP)
    assert res.code == 0, res.err
    db = other.resolve() / "mlflow.db"
    assert store_line(res.out) == f"store: sqlite:///{db} (embedded default, nothing configured)"
    assert db.is_file() and not (skill / "mlflow.db").exists() and not (work / "mlflow.db").exists()
    assert [line for line in res.err.splitlines() if line.strip()] == [], res.err  # no warnings


# ---------------------------------------------------------------------------------------------
# First use of each script: one uv environment per script, byte-code compiled once between them
# ---------------------------------------------------------------------------------------------
def pep723(path: Path) -> str:
    lines = path.read_text().splitlines()
    start = lines.index("# /// script")
    return "\n".join(lines[start : lines.index("# ///", start) + 1])


def test_scripts_share_one_dependency_list_plus_quantstats_for_log_backtest():
    """Equal lists resolve to the same wheels, so the environments uv builds per script link the
    same files (what borrow_bytecode relies on); log_backtest adds its numeric stack and
    get_metric_history matplotlib for --plot."""
    blocks = {p.name: pep723(p) for p in SCRIPTS.glob("[a-z]*.py")}
    blocks["get_metric_history.py"] = blocks["get_metric_history.py"].replace(
        '#     "matplotlib>=3.7",\n', ""
    )  # --plot
    light = {name: block for name, block in blocks.items() if name != "log_backtest.py"}
    assert len(light) == len(blocks) - 1 >= 8 and len(set(light.values())) == 1, light
    assert '"mlflow-skinny>=3.7,<3.19"' in next(iter(light.values())) and "compile-bytecode = false" in next(
        iter(light.values())
    )
    heavy = blocks["log_backtest.py"]
    assert "quantstats" in heavy and "compile-bytecode = true" in heavy
    deps = [line for line in next(iter(light.values())).splitlines() if line.startswith("#     ")]
    assert all(dep in heavy.splitlines() for dep in deps)


def make_env(root: Path, name: str) -> Path:
    """A real virtual environment laid out like uv's script environments (environments-v2/NAME)."""
    import subprocess
    import sys

    env = root / "environments-v2" / name
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python3*/site-packages"))
    (site / "mlflow_skinny-9.9.9.dist-info").mkdir()
    (site / "pkg").mkdir()
    return env


@pytest.mark.slow  # builds virtual environments
def test_a_new_environment_borrows_byte_code_compiled_for_the_same_files(tmp_path):
    import py_compile
    import subprocess

    first, second = make_env(tmp_path, "first"), make_env(tmp_path, "second")
    site1, site2 = (next(e.glob("lib/python3*/site-packages")) for e in (first, second))
    (site1 / "pkg" / "__init__.py").write_text("")
    (site1 / "pkg" / "same.py").write_text("VALUE = 42\n")
    (site1 / "pkg" / "copied.py").write_text("VALUE = 7\n")
    (site2 / "pkg" / "__init__.py").hardlink_to(site1 / "pkg" / "__init__.py")
    (site2 / "pkg" / "same.py").hardlink_to(site1 / "pkg" / "same.py")  # uv links both from its cache
    shutil.copy2(site1 / "pkg" / "copied.py", site2 / "pkg" / "copied.py")  # same text, another file
    for name in ("__init__", "same", "copied"):
        py_compile.compile(str(site1 / "pkg" / f"{name}.py"), doraise=True)
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); from mlflow_skill.store import embedded; "
        f"embedded.borrow_bytecode(); "
        "sys.dont_write_bytecode = True; import pkg.same as m; print(m.VALUE, m.__spec__.cached, m.VALUE.__class__)"
    )
    out = subprocess.run(
        [str(second / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    ).stdout
    borrowed = next((site2 / "pkg" / "__pycache__").glob("same.*.pyc"))
    assert borrowed.samefile(next((site1 / "pkg" / "__pycache__").glob("same.*.pyc")))
    assert not list((site2 / "pkg" / "__pycache__").glob("copied.*.pyc"))  # not the same file: compiles itself
    assert out.split()[0] == "42" and str(site2) in out
    assert (site2 / ".mlflow-skill-bytecode-borrowed").exists()


@pytest.mark.slow  # builds virtual environments
def test_top_level_modules_byte_code_is_borrowed_too(tmp_path):
    import py_compile
    import subprocess

    first, second = make_env(tmp_path, "first"), make_env(tmp_path, "second")
    site1, site2 = (next(e.glob("lib/python3*/site-packages")) for e in (first, second))
    (site1 / "single.py").write_text("X = 1\n")  # a one-file module such as typing_extensions
    (site2 / "single.py").hardlink_to(site1 / "single.py")
    py_compile.compile(str(site1 / "single.py"), doraise=True)
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); "
        "from mlflow_skill.store import embedded; embedded.borrow_bytecode()"
    )
    subprocess.run([str(second / "bin" / "python"), "-c", code], check=True)
    assert next((site2 / "__pycache__").glob("single.*.pyc")).samefile(
        next((site1 / "__pycache__").glob("single.*.pyc"))
    )
