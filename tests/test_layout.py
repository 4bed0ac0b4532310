"""The layout keeps its promises (docs/architecture.md): thin entry points over one package, each
module one concern and a size a reader can hold, imports pointing one way (scripts -> domains ->
cli/store -> core), small functions, no heavy import at a module's top level, the same PEP 723
header in every script, and the tree formatted and linted by ruff."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS

PACKAGE = SCRIPTS / "mlflow_skill"
MODULES = sorted(PACKAGE.rglob("*.py"))
SCRIPT_FILES = sorted(SCRIPTS.glob("*.py"))
MAX_SCRIPT_LINES = 400  # formatted lines (ruff format is checked below)
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_FORMAT_MARKERS = 5
HEAVY = {"mlflow", "pandas", "numpy", "quantstats", "matplotlib", "scipy"}
# Which domains a domain may import (itself always). Floors: core < store < cli < the domains;
# quant (metric registry, Sharpe statistics) is pure and sits on core only.
ALLOWED = {
    "core": set(),
    "store": {"core"},
    "cli": {"core", "store"},
    "quant": {"core"},
    "runs": {"core", "store", "cli", "quant"},
    "registry": {"core", "store", "cli", "quant", "runs"},
    "history": {"core", "store", "cli", "quant", "runs"},
    "traces": {"core", "store", "cli"},
    "backtest": {"core", "store", "cli", "quant", "runs"},
    "writes": {"core", "store", "cli", "quant", "runs", "registry", "traces"},
}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def test_scripts_folder_holds_entry_points_and_the_package_only():
    assert not list(SCRIPTS.glob("_*.py")), "helpers live in scripts/mlflow_skill/, not beside the entry points"
    others = {p.name for p in SCRIPTS.iterdir()} - {p.name for p in SCRIPT_FILES} - {"mlflow_skill", "__pycache__"}
    assert all(name.endswith(".py.lock") for name in others), f"unexpected files in scripts/: {sorted(others)}"


@pytest.mark.parametrize("path", SCRIPT_FILES + MODULES, ids=rel)
def test_file_size(path):
    limit = MAX_SCRIPT_LINES if path.parent == SCRIPTS else MAX_MODULE_LINES
    lines = len(path.read_text().splitlines())
    assert lines <= limit, f"{rel(path)} has {lines} lines, over {limit}: split it by concern"


@pytest.mark.parametrize("path", SCRIPT_FILES + MODULES, ids=rel)
def test_function_size(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{rel(path)}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_few_format_markers():
    files = [*SCRIPTS.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "bench").glob("*.py")]
    markers = [
        f"{rel(p)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"#\s*fmt:\s*(skip|off)", line)
    ]
    assert len(markers) <= MAX_FORMAT_MARKERS, f"{len(markers)} format markers: {markers}"


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_package_imports_point_one_way_and_stay_light(path):
    domain = path.relative_to(PACKAGE).parts[0] if path.parent != PACKAGE else None
    allowed = ALLOWED.get(domain, set()) | {domain}
    script_names = {p.stem for p in SCRIPT_FILES}
    for node in tree(path).body:  # top level: heavy imports belong inside the paths that need them
        for name in imported_modules(node):
            root = name.split(".")[0]
            assert root not in script_names, f"{rel(path)} imports the script {root}: imports point scripts -> package"
            assert root not in HEAVY, f"{rel(path)} imports {root} at top level: import it where it is needed"
    for node in ast.walk(tree(path)):
        for name in imported_modules(node):
            parts = name.split(".")
            if parts[0] == "mlflow_skill" and len(parts) > 1:
                assert parts[1] in allowed, f"{rel(path)} ({domain}) imports {name}: allowed {sorted(allowed)}"


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=rel)
def test_scripts_are_thin_and_import_the_package_one_way(path):
    for node in ast.walk(tree(path)):
        for name in imported_modules(node):
            root = name.split(".")[0]
            assert root not in {p.stem for p in SCRIPT_FILES}, f"{rel(path)} imports another script"
            assert root == "mlflow_skill" or root in sys.stdlib_module_names, f"{rel(path)} imports {name} directly"


def test_package_init_files_run_nothing():
    """Importing a domain costs nothing; the package root only turns byte-code writing back on."""
    for init in PACKAGE.rglob("__init__.py"):
        body = [n for n in tree(init).body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if init.parent == PACKAGE:
            code = [ast.unparse(n) for n in body]
            assert code == ["import sys", "sys.dont_write_bytecode = False"], f"{rel(init)} runs more than that"
            continue
        assert not body, f"{rel(init)} runs code at import: keep package imports free"


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=rel)
def test_scripts_have_the_same_header_shape_and_a_main(path):
    text = path.read_text()
    header = re.search(r"^# /// script\n(.*?)^# ///$", text, re.S | re.M)
    assert header, f"{path.name}: no PEP 723 header"
    assert 'requires-python = ">=3.11"' in header.group(1)
    deps = re.findall(r'^#\s+"([^"]+)",?$', header.group(1), re.M)
    assert deps and all(re.search(r">=\d", d) for d in deps), f"{path.name}: every dependency lower-bounded: {deps}"
    module = tree(path)
    doc = ast.get_docstring(module) or ""
    assert "Usage:" in doc and "Examples:" in doc, f"{path.name}: the docstring feeds --help with usage and examples"
    mains = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert mains and mains[0].args.args and mains[0].args.args[0].arg == "argv"


RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is in the dev dependencies: uv sync")
@pytest.mark.parametrize("check", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(check):
    proc = subprocess.run([RUFF, *check, "--quiet", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"ruff {' '.join(check)}: run `uv run ruff {' '.join(check[:1])} --fix .`\n{proc.stdout[-3000:]}"
    )
