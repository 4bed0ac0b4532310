"""The example regenerator's pure parts (tests/examples.py), without a server: parsing example
blocks, rewriting a document idempotently, normalising, scrubbing machine paths, drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples import (
    Example,
    MalformedDoc,
    command_argv,
    drift,
    fence_for,
    keep_unchanged,
    normalize,
    parse_examples,
    render_example,
    rewrite,
    scrub_paths,
)

FENCED_OUTPUT = """store: http://127.0.0.1:5000 (MLFLOW_TRACKING_URI from environment)

Inputs:
```
{"prompt": "hi"}
```
Events:
- exception.stacktrace:
```
Traceback (most recent call last):
  File ".../mlflow/tracing/fluent.py", line 335, in _wrapping_logic
    result = yield
TimeoutError: timed out
```"""

DOC = f"""# Title

Some prose with `inline` code.

<!-- example -->
```bash
uv run scripts/get_trace.py --trace-id TRACE_ID --span call_llm
```
````text
{FENCED_OUTPUT}
````
<!-- /example -->

More prose between examples.

<!-- example -->
```bash
uv run scripts/query_experiments.py runs --experiment demo \\
  --filter "params.lr > 0.01"
```
<!-- /example -->

Closing prose.
"""


def test_parse_reads_commands_and_whole_outputs_with_inner_fences():
    examples = parse_examples(DOC)
    assert [e.command.splitlines()[0] for e in examples] == [
        "uv run scripts/get_trace.py --trace-id TRACE_ID --span call_llm",
        "uv run scripts/query_experiments.py runs --experiment demo \\",
    ]
    assert examples[0].output == FENCED_OUTPUT
    assert examples[1].output is None  # written by hand, not generated yet
    assert DOC[examples[0].start : examples[0].end].endswith("<!-- /example -->")


@pytest.mark.parametrize(
    "output, fence",
    [
        ("plain", "```"),
        ("a\n```\nb\n```", "````"),
        ("x\n`````\ny", "``````"),
        ("  ```indented", "````"),
        ("`inline` ```", "```"),
    ],
)
def test_fence_is_longer_than_any_fence_inside(output, fence):
    assert fence_for(output) == fence
    assert parse_examples(render_example("uv run scripts/x.py", output))[0].output == output


def test_rewrite_twice_equals_once_and_keeps_prose():
    def produce(example: Example) -> str:  # fences inside, trailing blanks
        return f"{FENCED_OUTPUT}\nrun {len(example.command)}   \n\n"

    once = rewrite(DOC, produce)
    twice = rewrite(once, produce)
    assert twice == once
    assert len(parse_examples(once)) == 2
    assert once.startswith("# Title\n\nSome prose") and once.endswith("\n\nClosing prose.\n")
    assert "More prose between examples." in once
    # and a doc is its own rewrite when outputs stay the same
    assert rewrite(once, lambda e: e.output) == once


def test_rewrite_does_not_grow_when_outputs_hold_fences():
    """The old bug: each regeneration added a copy of the part after the first inner fence."""
    text = DOC
    sizes = []
    for _ in range(3):
        text = rewrite(text, lambda e: FENCED_OUTPUT)
        sizes.append(len(text))
    assert sizes[0] == sizes[1] == sizes[2]
    assert text.count("TimeoutError: timed out") == 2


@pytest.mark.parametrize(
    "broken, why",
    [
        ("<!-- example -->\n```bash\nuv run scripts/x.py\n```\n```text\nout\n```\n\nprose\n", "no end marker at all"),
        (
            "<!-- example -->\n```bash\nuv run scripts/x.py\n```\n<!-- example -->\n```bash\nuv run "
            "scripts/y.py\n```\n<!-- /example -->\n",
            "an end marker missing",
        ),
        (
            "<!-- example -->\n```bash\nuv run scripts/x.py\n```\n```text\nout\n```\nleft-over tail\n```\n<!-- "
            "/example -->\n",
            "text after the output block",
        ),
        (
            "<!-- example -->\n```bash\nuv run scripts/x.py\n```\n````text\nout\n```\n<!-- /example -->\n",
            "fences of different lengths",
        ),
        ("<!-- example -->\nuv run scripts/x.py\n<!-- /example -->\n", "no bash block"),
        ("prose\n<!-- /example -->\n", "an end marker alone"),
    ],
)
def test_malformed_examples_are_refused(broken, why):
    with pytest.raises(MalformedDoc):
        parse_examples(broken)


def test_an_output_holding_a_marker_line_is_refused():
    with pytest.raises(MalformedDoc):
        render_example("uv run scripts/x.py", "a\n<!-- /example -->\nb")


def test_normalize_hides_what_changes_between_runs():
    a = (
        "store: http://127.0.0.1:43963 (x)\nrun 0123456789abcdef0123456789abcdef tr-0123456789abcdef0123456789abcdef\n"
        "span 0123456789abcdef at 2026-11-23T16:35:28.661000Z took 55ms (3.9%), 12 KB in /tmp/pytest-1/x.csv\n"
        'Traceback (most recent call last):\n  File "/a/b.py", line 3, in f\n    yield\n    ^^^^\nTimeoutError: t\n'
    )
    b = (
        "store: http://127.0.0.1:5000 (x)\nrun fedcba9876543210fedcba9876543210 tr-fedcba9876543210fedcba9876543210\n"
        "span fedcba9876543210 at 2027-01-01T00:00:00.000000Z took 2.5 s (40.1%), 3 MB in /tmp/other/y.csv\n"
        'Traceback (most recent call last):\n  File ".../c.py", line 9, in g\nTimeoutError: t\n'
    )
    assert normalize(a) == normalize(b)
    assert normalize(a) != normalize(a.replace("TimeoutError: t", "ValueError: t"))
    assert normalize(a) != normalize(a.replace("store:", "shop:"))


def test_scrub_paths_shortens_machine_paths():
    text = (
        'File "/work/main/.venv/lib/python3.11/site-packages/mlflow/tracing/provider.py", line 306\n'
        'File "/work/main/tests/examples.py", line 124, in call_llm\n'
        'File "/usr/lib/python3.11/contextlib.py", line 158, in __exit__\n'
        "wrote /tmp/mlflow-skill-examples-x/work/runs.csv; server in /tmp/mlflow-skill-examples-x/server\n"
    )
    folders = [("/tmp/mlflow-skill-examples-x/work", ""), ("/tmp/mlflow-skill-examples-x", "<tmp>"), ("/work/main", "")]
    assert scrub_paths(text, folders).splitlines() == [
        'File ".../mlflow/tracing/provider.py", line 306',
        'File "tests/examples.py", line 124, in call_llm',
        'File ".../python3.11/contextlib.py", line 158, in __exit__',
        "wrote runs.csv; server in <tmp>/server",
    ]


def test_keep_unchanged_keeps_a_shown_output_that_differs_only_in_volatile_parts():
    shown = Example("uv run scripts/x.py", "store: http://127.0.0.1:1111 (env)\n3 runs", 0, 0)
    assert keep_unchanged(lambda e: "store: http://127.0.0.1:2222 (env)\n3 runs")(shown) == shown.output
    assert keep_unchanged(lambda e: "store: http://127.0.0.1:2222 (env)\n4 runs")(shown).endswith("4 runs")
    new = Example("uv run scripts/x.py", None, 0, 0)
    assert keep_unchanged(lambda e: "fresh")(new) == "fresh"


def test_drift_compares_counts_and_whole_documents():
    shown = rewrite(DOC, lambda e: "store: http://127.0.0.1:1 (env)\nok")
    doc = Path("DOC.md")
    same_but_volatile = shown.replace("127.0.0.1:1 ", "127.0.0.1:2 ")
    assert drift({doc: (shown, same_but_volatile)}) == []

    changed = rewrite(DOC, lambda e: "store: http://127.0.0.1:1 (env)\nnot ok")
    assert any("drifted" in p for p in drift({doc: (shown, changed)}))

    one_less = shown[: parse_examples(shown)[1].start] + "Closing prose.\n"
    problems = drift({doc: (shown, one_less)})
    assert any("2 examples shown, 1 after regeneration" in p for p in problems)

    tail_outside = shown.replace("More prose", "TimeoutError: left-over tail\nMore prose")
    assert drift({doc: (tail_outside, shown)})  # a difference outside the examples counts too


def test_command_argv_joins_continuations_and_finds_the_script():
    command = 'uv run scripts/query_experiments.py runs --experiment demo \\\n  --filter "params.lr > 0.01"'
    assert command_argv(command) == (
        "query_experiments",
        ["runs", "--experiment", "demo", "--filter", "params.lr > 0.01"],
    )
    with pytest.raises(MalformedDoc):
        command_argv("echo hello")
