"""Keep the docs honest: every command shown parses, every script is listed, --help shows examples,
SKILL.md's frontmatter validates with the Agent Skills reference validator."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, load_script

SCRIPT_NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))
DOCS = [ROOT / "SKILL.md", ROOT / "README.md", *sorted((ROOT / "references").glob("*.md"))]
COMMAND_RE = re.compile(r"scripts/([a-z][a-z_]*)\.py")


def doc_commands(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, script, argv) for each command line in fenced blocks and inline code spans."""
    found = []
    lines = path.read_text().splitlines()
    in_fence = False
    pending, start = "", 0
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            pending = ""
            continue
        candidates: list[tuple[int, str]] = []
        if in_fence:
            if pending:
                pending += " " + line.strip()
            elif COMMAND_RE.search(line) and not line.lstrip().startswith("#"):
                pending, start = line.strip(), number
            else:
                continue
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            candidates.append((start, pending))
            pending = ""
        else:
            for span in re.findall(r"`([^`]+)`", line):
                if COMMAND_RE.search(span) and ("uv run" in span or span.startswith("scripts/")):
                    candidates.append((number, span))
        for where, text in candidates:
            parsed = split_command(text)
            if parsed:
                found.append((where, *parsed))
    return found


def split_command(text: str) -> tuple[str, list[str]] | None:
    text = text.strip().removeprefix("$ ")
    text = re.split(r"\s(?:\||>|2>|&&|;)\s", text)[0]  # pipes and redirections are the shell's
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    for i, word in enumerate(words):
        match = COMMAND_RE.search(word)
        if match and word.endswith(".py"):
            return match.group(1), words[i + 1 :]
    return None


ALL_COMMANDS = [(doc.name, line, script, argv) for doc in DOCS if doc.exists() for line, script, argv in doc_commands(doc)]


@pytest.mark.parametrize("doc,line,script,argv", ALL_COMMANDS, ids=[f"{d}:{n}" for d, n, _, _ in ALL_COMMANDS])
def test_documented_command_parses(doc, line, script, argv):
    assert script in SCRIPT_NAMES, f"{doc}:{line} names scripts/{script}.py, which does not exist"
    parser = load_script(script).build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{doc}:{line}: `{shlex.join(argv)}` does not parse: {err.getvalue().strip()} (exit {exc.code})")


def test_docs_show_commands_at_all():
    counts = {doc.name: len(doc_commands(doc)) for doc in DOCS if doc.exists()}
    assert counts.get("SKILL.md", 0) >= 10 and counts.get("README.md", 0) >= 10, counts


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_every_script_is_listed(script):
    for doc in (ROOT / "SKILL.md", ROOT / "README.md"):
        assert f"scripts/{script}.py" in doc.read_text(), f"{script}.py is not in {doc.name}"


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_help_exits_zero_and_shows_examples(script):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = load_script(script).main(["--help"])
    assert code == 0
    text = out.getvalue()
    assert "Usage:" in text and "Examples:" in text
    assert f"uv run scripts/{script}.py" in text


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_script_header_is_pep723_with_lower_bounds(script):
    text = (SCRIPTS / f"{script}.py").read_text()
    header = re.search(r"^# /// script\n(.*?)^# ///$", text, re.S | re.M)
    assert header, "no PEP 723 block"
    block = header.group(1)
    assert 'requires-python = ">=3.11"' in block
    deps = re.findall(r'^#\s+"([^"]+)",', block, re.M)
    assert deps and all(">=" in d for d in deps), deps


def test_skill_frontmatter_validates_with_reference_validator(tmp_path):
    from skills_ref.parser import parse_frontmatter
    from skills_ref.validator import validate

    meta, _ = parse_frontmatter((ROOT / "SKILL.md").read_text())
    bundle = tmp_path / meta["name"]
    bundle.mkdir()
    for item in ("SKILL.md", "scripts", "references"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, bundle / item)
    assert validate(bundle) == []
    assert len(meta["description"]) <= 1024
    assert "Use when" in meta["description"]


def test_skill_md_is_a_short_router():
    text = (ROOT / "SKILL.md").read_text()
    assert len(text.splitlines()) <= 300
    assert "## Gotchas" in text
    assert "--help" in text
    for ref in (ROOT / "references").glob("*.md"):
        assert f"references/{ref.name}" in text, f"SKILL.md does not link references/{ref.name}"


def test_example_outputs_in_docs_come_from_real_runs():
    """Regenerate with: uv run python tests/examples.py"""
    from examples import EXAMPLE_RE, drift, generate

    assert sum(1 for _ in EXAMPLE_RE.finditer((ROOT / "SKILL.md").read_text())) >= 6
    problems = drift(generate())
    assert not problems, "\n\n".join(problems) + "\n\nregenerate: uv run python tests/examples.py"
