"""Keep the docs honest: every command shown parses, every script is listed, --help shows examples,
SKILL.md's frontmatter validates with the Agent Skills reference validator and SKILL.md stays a
short router; README.md stays short and links every page of docs/; each rule (the store's
precedence, the exit codes) is written in one document; the examples are real output
(tests/examples.py), well-formed, counted, regenerate idempotently, and no doc shows a machine path
or a repeated passage. The regenerator's pure parts are tested in test_examples_regen.py."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, load_script
from examples import START, Example, MalformedDoc, drift, generate, marker_counts, parse_examples, rewrite

SCRIPT_NAMES = sorted(p.stem for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))
DOCS = [
    ROOT / "SKILL.md",
    ROOT / "README.md",
    *sorted((ROOT / "references").glob("*.md")),
    *sorted((ROOT / "docs").glob("*.md")),
]
COMMAND_RE = re.compile(r"scripts/([a-z][a-z_]*)\.py")


def doc_commands(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, script, argv) for each command line in fenced blocks and inline code spans."""
    found = []
    lines = path.read_text().splitlines()
    fence = ""  # the open fence; a longer fence may hold shorter ones (example outputs)
    pending, start = "", 0
    for number, line in enumerate(lines, 1):
        ticks = re.match(r"^ {0,3}(`{3,})(.*)$", line)
        if ticks and (not fence or (len(ticks.group(1)) >= len(fence) and not ticks.group(2).strip())):
            fence = "" if fence else ticks.group(1)
            pending = ""
            continue
        in_fence = bool(fence)
        candidates: list[tuple[int, str]] = []
        spans = [
            x
            for x in re.findall(r"`([^`]+)`", line)
            if COMMAND_RE.search(x) and ("uv run" in x or x.startswith("scripts/"))
        ]
        if in_fence and spans and not pending:  # output text naming a command in backticks: the span is the command
            candidates += [(number, span) for span in spans]
        elif in_fence:
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
            candidates += [(number, span) for span in spans]
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


ALL_COMMANDS = [
    (doc.name, line, script, argv) for doc in DOCS if doc.exists() for line, script, argv in doc_commands(doc)
]


@pytest.mark.parametrize("doc,line,script,argv", ALL_COMMANDS, ids=[f"{d}:{n}" for d, n, _, _ in ALL_COMMANDS])
def test_documented_command_parses(doc, line, script, argv):
    assert script in SCRIPT_NAMES, f"{doc}:{line} names scripts/{script}.py, which does not exist"
    parser = load_script(script).build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(
                f"{doc}:{line}: `{shlex.join(argv)}` does not parse: {err.getvalue().strip()} (exit {exc.code})"
            )


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
    assert len(meta["description"]) <= 600, "say what the skill does and when to use it, in sentences"
    assert "Use when" in meta["description"]


def test_skill_md_is_a_short_router():
    text = (ROOT / "SKILL.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "## Task to command" in text and "## Gotchas" in text
    assert "--help" in text
    references = text[text.index("## References") :]
    for ref in (ROOT / "references").glob("*.md"):
        # Each reference is listed with when to read it: "- [references/x.md](references/x.md): when ..."
        line = re.search(
            rf"^- \[references/{re.escape(ref.name)}\]\(references/{re.escape(ref.name)}\): (.+)$", references, re.M
        )
        assert line and len(line.group(1).split()) >= 5, f"SKILL.md does not say when to read references/{ref.name}"
    examples = parse_examples(text, "SKILL.md")
    assert 1 <= len(examples) <= 4, "SKILL.md keeps a few short examples; full outputs go to references/examples.md"
    assert all(len((e.output or "").splitlines()) <= 25 for e in examples), [e.command for e in examples]


@pytest.mark.slow  # regeneration: runs every documented example against a fresh server
def test_example_outputs_in_docs_come_from_real_runs():
    """The whole normalised documents and their example counts match a fresh regeneration.
    Regenerate with: uv run python tests/examples.py"""
    results = generate()
    assert set(results) == {doc for doc in DOCS if START in doc.read_text()}
    assert sum(len(parse_examples(current)) for current, _ in results.values()) == sum(EXAMPLE_COUNTS.values())
    problems = drift(results)
    assert not problems, "\n\n".join(problems) + "\n\nregenerate: uv run python tests/examples.py"


# ---------------------------------------------------------------------------------------------
# README.md is the short front page; the evidence lives in docs/; each rule is written once
# ---------------------------------------------------------------------------------------------
README_MAX_BYTES = 15_000
# Each rule has one home document; the others link to it (a second copy drifts). The patterns find
# the rule written out: its table's header, or the same facts as a sentence.
RULE_HOMES = {
    "the store's precedence": (
        ROOT / "references" / "credentials.md",
        [re.compile(r"^\|\s*#\s*\|\s*source\s*\|", re.M), re.compile(r"--tracking-uri`?,? then\b")],
    ),
    "the exit codes": (
        ROOT / "references" / "troubleshooting.md",
        [re.compile(r"^\|\s*exit\s*\|\s*meaning\s*\|", re.M), re.compile(r"\b2 [^.|]{0,30}, 3 not found")],
    ),
}


def rule_holders(rule: str, docs: dict[str, str]) -> list[str]:
    """The documents (name -> text) that write the rule out."""
    _, patterns = RULE_HOMES[rule]
    return [name for name, text in docs.items() if any(p.search(text) for p in patterns)]


def test_readme_is_short_and_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= README_MAX_BYTES, (
        f"README.md has {len(readme):,} bytes, over {README_MAX_BYTES:,}: move detail to docs/"
    )
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"](docs/{p.name}" not in readme.decode()]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("rule", RULE_HOMES)
def test_each_rule_is_written_in_one_document(rule):
    home, _ = RULE_HOMES[rule]
    docs = {str(doc.relative_to(ROOT)): doc.read_text() for doc in DOCS}
    holders = rule_holders(rule, docs)
    assert holders == [str(home.relative_to(ROOT))], (
        f"{rule} is written out in {holders}: keep it in {home.name}, link there"
    )


def test_rule_detectors_catch_the_old_copies():
    """The copies this replaced: README's precedence table and exit-code line, SKILL.md's gotchas."""
    old = {
        "README.md": "| # | source | what it may set |\n|---|---|---|\n"
        "Exit codes: 0 ok, 2 usage or bad input, 3 not found, 4 server unreachable or too slow, 5",
        "SKILL.md": "- **Where the store comes from:** `--tracking-uri`, then the environment (Doppler, mise),\n"
        "- **Exit codes:** 2 bad input, 3 not found, 4 server unreachable, 5 credentials or permission,",
        "links.md": "the order is in [credentials](references/credentials.md); exit codes: see troubleshooting.md, "
        "exit 2 for bad input (3 for a 404)",
    }
    assert rule_holders("the store's precedence", old) == ["README.md", "SKILL.md"]
    assert rule_holders("the exit codes", old) == ["README.md", "SKILL.md"]


# ---------------------------------------------------------------------------------------------
# Docs hold no machine paths and no repeated examples; the example counts are what they were
# ---------------------------------------------------------------------------------------------
MACHINE_PATH_RE = re.compile(
    r"(?<![\w.~-])/(?:tmp|work|root|home|Users|private/var|var/folders|opt/hostedtoolcache)/"
    r"|File \"/|[A-Za-z]:\\(?:Users|Windows)\\"
)
# The examples each doc holds; a change here is deliberate (and reviewed), never a side effect.
EXAMPLE_COUNTS = {"SKILL.md": 2, "README.md": 5, "examples.md": 7}


def machine_paths(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if MACHINE_PATH_RE.search(line)]


def repeated_passages(text: str, window: int = 5) -> list[str]:
    """Runs of `window` consecutive substantial lines that occur more than once (a duplicated
    output, as the old regenerator left behind)."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if len(re.sub(r"\W", "", line)) >= 8]
    seen: dict[tuple[str, ...], int] = {}
    repeats = []
    for i in range(len(lines) - window + 1):
        key = tuple(lines[i : i + window])
        if key in seen and i - seen[key] >= window:  # overlapping runs are one passage, not a repeat
            repeats.append(key[0])
        seen.setdefault(key, i)
    return repeats


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_docs_hold_no_machine_paths(doc):
    found = machine_paths(doc.read_text())
    assert not found, f"{doc.name} shows machine paths (regenerate, or write a neutral path): {found[:5]}"


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_docs_repeat_no_passage(doc):
    repeats = repeated_passages(doc.read_text())
    assert not repeats, f"{doc.name} repeats a passage starting: {repeats[:3]}"


def test_no_example_command_is_shown_twice():
    commands = [(doc.name, e.command) for doc in DOCS for e in parse_examples(doc.read_text(), doc.name)]
    seen: dict[str, str] = {}
    for name, command in commands:
        assert command not in seen, f"`{command}` is an example in both {seen[command]} and {name}"
        seen[command] = name


def test_path_and_repeat_detectors_catch_the_old_damage():
    """The shape the old regenerator left in README.md: an output cut at its first inner fence,
    the rest of it left behind after the block, again on every regeneration, with local paths."""
    output = (
        'store: x (MLFLOW_TRACKING_URI from environment)\n\nInputs:\n```\n{\n  "prompt": "I want a refund"\n}\n```\n'
    )
    tail = (
        "Attributes:\n- mlflow.spanFunctionName: call_llm\n- mlflow.spanType: LLM\n"
        "- exception.message: LLM provider timed out after 30s\n- exception.type: TimeoutError\n"
        'Traceback (most recent call last):\n  File "/work/main/.venv/lib/python3.11/site-packages/mlflow/x.py", line '
        "3\n"
    )
    damaged = (
        f"{START}\n```bash\nuv run scripts/get_trace.py --span call_llm\n```\n```text\n{output}{tail}```\n{tail}```\n"
    )
    assert repeated_passages(damaged)
    assert machine_paths(damaged) == ['File "/work/main/.venv/lib/python3.11/site-packages/mlflow/x.py", line 3'] * 2
    assert machine_paths("cd /home/alice/project && export X=/tmp/y") and machine_paths("C:\\Users\\bob")
    assert not machine_paths('File ".../site-packages/mlflow/x.py" and https://host/home/ and ~/work/x')
    with pytest.raises(MalformedDoc):  # and the new parser refuses it: no end marker
        parse_examples(damaged)


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_example_markers_and_counts(doc):
    text = doc.read_text()
    examples = parse_examples(text, doc.name)  # raises on a missing marker or a block out of shape
    assert marker_counts(text) == (len(examples), len(examples))
    assert len(examples) == EXAMPLE_COUNTS.get(doc.name, 0), "update EXAMPLE_COUNTS if you added or removed one"
    assert all(e.output for e in examples), "an example without output: run uv run python tests/examples.py"


@pytest.mark.parametrize("doc", [d for d in DOCS if START in d.read_text()], ids=lambda d: d.name)
def test_regenerating_a_real_doc_is_idempotent(doc):
    """The document rewrite on a copy of each doc: the same outputs give the same bytes (the docs
    are in the rewrite's canonical form), and new outputs that contain fences, written twice,
    give the same document as written once, with the prose and the example count unchanged."""
    text = doc.read_text()
    assert rewrite(text, lambda e: e.output, doc.name) == text

    def fake(example: Example) -> str:
        return f"ran: {example.command}\n```\ninner block\n```\n````\nlonger inner\n````\ndone"

    once = rewrite(text, fake, doc.name)
    assert rewrite(once, fake, doc.name) == once
    assert len(parse_examples(once)) == len(parse_examples(text))
    assert [e.output for e in parse_examples(once)] == [fake(e) for e in parse_examples(text)]
    assert prose(once) == prose(text)


def prose(text: str) -> str:
    examples = parse_examples(text)
    bounds = [0] + [i for e in examples for i in (e.start, e.end)] + [len(text)]
    return "".join(text[a:b] for a, b in zip(bounds[::2], bounds[1::2], strict=False))
