"""The layout keeps its promises (README "Contributing"): each file one job and a size a reader can
hold, imports pointing one way (scripts -> helpers), small functions, no heavy import at a
helper's top level, the same PEP 723 header shape in every script."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import SCRIPTS

HELPERS = sorted(p for p in SCRIPTS.glob("_*.py"))
SCRIPT_FILES = sorted(p for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))
SCRIPT_MODULES = {p.stem for p in SCRIPT_FILES}
MAX_HELPER_LINES = 800
MAX_SCRIPT_LINES = 1000
MAX_FUNCTION_LINES = 80
HEAVY = {"mlflow", "pandas", "numpy", "quantstats", "matplotlib", "scipy"}


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", HELPERS + SCRIPT_FILES, ids=lambda p: p.name)
def test_file_size(path):
    limit = MAX_HELPER_LINES if path.name.startswith("_") else MAX_SCRIPT_LINES
    assert len(path.read_text().splitlines()) <= limit, f"{path.name} is over {limit} lines: split it by concern"


@pytest.mark.parametrize("path", HELPERS + SCRIPT_FILES, ids=lambda p: p.name)
def test_function_size(path):
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree(path))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


@pytest.mark.parametrize("path", HELPERS, ids=lambda p: p.name)
def test_helpers_never_import_scripts_or_heavy_modules_at_top_level(path):
    for node in tree(path).body:  # top level only: heavy imports belong inside the paths that need them
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            root = name.split(".")[0]
            assert root not in SCRIPT_MODULES, (
                f"{path.name} imports the script {root}: imports point scripts -> helpers"
            )
            assert root not in HEAVY, f"{path.name} imports {root} at top level: import it where it is needed"


@pytest.mark.parametrize("path", SCRIPT_FILES, ids=lambda p: p.name)
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
