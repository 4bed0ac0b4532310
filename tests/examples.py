"""The example outputs shown in SKILL.md, README.md, references/*.md and docs/*.md come from real
runs: this regenerates them.

Usage:
  uv run python tests/examples.py            # rewrite the example outputs in the docs
  uv run python tests/examples.py --check    # exit 1 if a doc drifted (what tests/test_docs.py does)

An example is a start marker, a bash block with one command, a text block with its output and an
end marker. The output block's fence is longer than any fence inside the output (```` when the
output holds ```), and the end marker closes the example, so outputs that contain code fences
survive regeneration whole:

    <!-- example -->
    ```bash
    uv run scripts/query_experiments.py best --experiment demo-sweep --metric val_accuracy --top 3
    ```
    ```text
    ...output...
    ```
    <!-- /example -->

To add an example, write the markers and the bash block only (no output block) and regenerate.

A fresh tracking server is started, demo data seeded deterministically, and each command run in
document order (SKILL.md, README.md, references/*.md, then docs/*.md) with the placeholders RUN_ID,
TRACE_ID, ... replaced by the demo's ids. Machine paths in an output (the working and temp
folders, this checkout, site-packages in stack frames) are shortened before it is written.
An output whose normalised form did not change is left as it was, so regenerating twice changes
nothing. The check compares each whole document, normalised (ids, ports, times, durations,
percentages, sizes, temp paths and stack frames), and the number of examples.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

DOCS = [
    ROOT / "SKILL.md",
    ROOT / "README.md",
    *sorted((ROOT / "references").glob("*.md")),
    *sorted((ROOT / "docs").glob("*.md")),
]
START = "<!-- example -->"
END = "<!-- /example -->"
REGION_RE = re.compile(r"^<!-- example -->\n(?P<body>.*?)^<!-- /example -->$", re.M | re.S)
BODY_RE = re.compile(r"\A```bash\n(?P<cmd>.+?)\n```\n(?:(?P<fence>`{3,})text\n(?P<out>.*)\n(?P=fence)\n)?\Z", re.S)
FENCE_LINE_RE = re.compile(r"^ {0,3}(`{3,})", re.M)

VOLATILE = [
    (re.compile(r"\b(tr-)?([0-9a-f]{32}|[0-9a-f]{16})\b"), "<id>"),  # run, trace and span ids
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?Z?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|s|m\d\ds)\b"), "<dur>"),
    (re.compile(r"\b\d+(\.\d+)?%"), "<pct>"),
    (re.compile(r"\b\d+(\.\d+)? (B|KB|MB|KiB|MiB|GiB)\b"), "<size>"),
    (re.compile(r"(/tmp/|/var/folders/|/private/var/|<tmp>)[^\s|)\"']*"), "<tmp>"),
    # Stack frames (paths, line numbers, source lines) differ between machines and versions.
    (re.compile(r"(Traceback \(most recent call last\):\n)(?:[ \t]+\S.*\n)+"), r"\1  <frames>\n"),
    (re.compile(r"[ \t]+"), " "),
]


class MalformedDoc(ValueError):
    """A doc's example markers or blocks do not have the shape described in this module's docstring."""


@dataclass(frozen=True)
class Example:
    command: str  # as written in the bash block (continuation lines included)
    output: str | None  # None: not generated yet
    start: int  # the region's span in the document, markers included
    end: int


# ---------------------------------------------------------------------------------------------
# Parsing and rewriting: pure functions of the text
# ---------------------------------------------------------------------------------------------
def marker_counts(text: str) -> tuple[int, int]:
    return len(re.findall(r"^<!-- example -->$", text, re.M)), len(re.findall(r"^<!-- /example -->$", text, re.M))


def parse_examples(text: str, name: str = "doc") -> list[Example]:
    """Every example in document order; MalformedDoc when a marker or block is out of shape."""
    examples = []
    for match in REGION_RE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        body = match.group("body")
        if re.search(r"^<!-- example -->$", body, re.M):
            raise MalformedDoc(f"{name}:{line}: example has no end marker {END!r} before the next one")
        parsed = BODY_RE.match(body)
        # A fence inside the command, or one in the output as long as the output's own, would
        # end that block early in a markdown viewer: the example is not what it seems.
        if parsed and (
            FENCE_LINE_RE.search(parsed.group("cmd"))
            or (parsed.group("out") is not None and len(fence_for(parsed.group("out"))) > len(parsed.group("fence")))
        ):
            parsed = None
        if not parsed:
            raise MalformedDoc(
                f"{name}:{line}: an example holds one ```bash block with one command, then optionally "
                f"one text block fenced with ``` or longer, then {END!r}; found:\n{body[:300]}"
            )
        examples.append(Example(parsed.group("cmd"), parsed.group("out"), match.start(), match.end()))
    starts, ends = marker_counts(text)
    if not starts == ends == len(examples):
        raise MalformedDoc(f"{name}: {starts} start markers, {ends} end markers, {len(examples)} well-formed examples")
    return examples


def fence_for(output: str) -> str:
    """A backtick fence longer than any fence-like line inside the output."""
    longest = max((len(m.group(1)) for m in FENCE_LINE_RE.finditer(output)), default=0)
    return "`" * max(3, longest + 1)


def render_example(command: str, output: str) -> str:
    output = "\n".join(line.rstrip() for line in output.rstrip().splitlines())
    if re.search(r"^<!-- /?example -->$", output, re.M):
        raise MalformedDoc(f"the output of `{command}` holds an example marker line")
    fence = fence_for(output)
    return f"{START}\n```bash\n{command}\n```\n{fence}text\n{output}\n{fence}\n{END}"


def rewrite(text: str, produce: Callable[[Example], str], name: str = "doc") -> str:
    """The document with every example's output replaced by produce(example); prose untouched."""
    pieces, last = [], 0
    for example in parse_examples(text, name):
        pieces += [text[last : example.start], render_example(example.command, produce(example))]
        last = example.end
    return "".join(pieces) + text[last:]


def normalize(text: str) -> str:
    for pattern, repl in VOLATILE:
        text = pattern.sub(repl, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def keep_unchanged(fresh: Callable[[Example], str]) -> Callable[[Example], str]:
    """A producer that keeps a shown output when the fresh one differs only in volatile parts."""

    def produce(example: Example) -> str:
        new = fresh(example)
        if example.output is not None and normalize(example.output) == normalize(new):
            return example.output
        return new

    return produce


def scrub_paths(text: str, folders: list[tuple[str, str]]) -> str:
    """Machine paths out of an output: folders (longest first) replaced by their short names,
    stack frames cut to their package-relative path."""
    text = re.sub(r'File "[^"\n]*?/(site-packages|dist-packages)/', 'File ".../', text)
    for folder, short in sorted(folders, key=lambda pair: -len(pair[0])):
        if folder:
            text = text.replace(folder + "/", f"{short}/" if short else "").replace(folder, short or ".")
    return re.sub(r'File "/[^"\n]*/([^/"\n]+/[^/"\n]+)"', r'File ".../\1"', text)


def drift(results: dict[Path, tuple[str, str]]) -> list[str]:
    """Problems between each shown doc and its regenerated form: example counts, whole text."""
    problems = []
    for doc, (current, fresh) in results.items():
        old_n, new_n = len(parse_examples(current, doc.name)), len(parse_examples(fresh, doc.name))
        if old_n != new_n:
            problems.append(f"{doc.name}: {old_n} examples shown, {new_n} after regeneration")
        a, b = normalize(current), normalize(fresh)
        if a != b:
            diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "shown", "fresh", lineterm="", n=2))
            problems.append(f"{doc.name} drifted:\n" + "\n".join(diff[:80]))
    return problems


# ---------------------------------------------------------------------------------------------
# Real runs: a fresh server, deterministic demo data, each command run as a subprocess
# ---------------------------------------------------------------------------------------------
def seed_demo(uri: str, workdir: Path) -> dict[str, str]:
    """Deterministic demo data; returns the placeholder -> id map."""
    import numpy as np
    import pandas as pd
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids: dict[str, str] = {}

    sweep = client.create_experiment("demo-sweep", tags={"mlflow.note.content": "Learning-rate sweep"})
    configs = [
        ("adam-lr0.01", {"lr": "0.01", "optimizer": "adam", "epochs": "20"}, 0.31, 0.36, 0.912),
        ("adam-lr0.001", {"lr": "0.001", "optimizer": "adam", "epochs": "20"}, 0.22, 0.41, 0.897),
        ("sgd-lr0.1", {"lr": "0.1", "optimizer": "sgd", "epochs": "20"}, 0.35, 0.37, 0.905),
        ("sgd-lr0.01", {"lr": "0.01", "optimizer": "sgd", "epochs": "20"}, 0.48, 0.50, 0.861),
        ("adam-lr0.1", {"lr": "0.1", "optimizer": "adam", "epochs": "20"}, 0.12, 0.58, 0.842),
    ]
    for i, (name, params, train_loss, val_loss, acc) in enumerate(configs):
        run = client.create_run(sweep, run_name=name, start_time=1_790_000_000_000 + i * 60_000)
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        for step in range(20):
            decay = (20 - step) / 20
            client.log_metric(run.info.run_id, "train_loss", train_loss + decay * 0.5, step=step)
            client.log_metric(run.info.run_id, "val_loss", val_loss + decay * 0.4, step=step)
        client.log_metric(run.info.run_id, "val_accuracy", acc, step=19)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=1_790_000_000_000 + i * 60_000 + 45_000)
        ids.setdefault("RUN_ID_SWEEP", run.info.run_id)
        ids[f"RUN_ID_SWEEP_{i}"] = run.info.run_id
    failed = client.create_run(sweep, run_name="adam-lr1.0", start_time=1_790_000_400_000)
    client.log_param(failed.info.run_id, "lr", "1.0")
    client.log_param(failed.info.run_id, "optimizer", "adam")
    client.set_tag(failed.info.run_id, "error", "loss became NaN at step 3")
    client.set_terminated(failed.info.run_id, "FAILED", end_time=1_790_000_410_000)

    rng = np.random.default_rng(9)  # a plausible strategy: Sharpe about 1
    dates = pd.bdate_range("2022-01-03", periods=756)
    returns = pd.DataFrame(
        {"date": dates.strftime("%Y-%m-%d"), "returns": rng.normal(0.0006, 0.011, len(dates)).round(6)}
    )
    returns.to_csv(workdir / "returns.csv", index=False)
    out = run_cmd(
        uri,
        workdir,
        "log_backtest",
        [
            "--returns",
            "returns.csv",
            "--experiment",
            "demo-backtests",
            "--run-name",
            "momentum-v1",
            "--param",
            "lookback=20",
            "--no-tearsheet",
            "--format",
            "json",
        ],
    )
    ids["RUN_ID"] = json.loads(out)["run_id"]
    ids.update(seed_traces(uri))
    return ids


def seed_traces(uri: str) -> dict[str, str]:
    """Three agent traces in two sessions, one failing in its LLM call. The sleeps make the
    order of traces and the slowest span the same on every run."""
    from test_traces import mlflow_target

    with mlflow_target(uri, "demo-agent") as (mlflow, _):  # MLflow's globals put back afterwards
        return _agent_traces(mlflow)


def _agent_traces(mlflow) -> dict[str, str]:
    @mlflow.trace(span_type="TOOL")
    def search_docs(query):
        return [f"doc about {query}"]

    @mlflow.trace(span_type="LLM")
    def call_llm(prompt):
        time.sleep(0.03)
        if "refund" in prompt:
            raise TimeoutError("LLM provider timed out after 30s")
        return f"answer to {prompt}"

    @mlflow.trace(name="answer_question", span_type="AGENT")
    def agent(question, session, user):
        mlflow.update_current_trace(metadata={"mlflow.trace.session": session, "mlflow.trace.user": user})
        docs = search_docs(question)
        return call_llm(f"{question} {docs}")

    ids = {}
    for question, session, user in [
        ("how do I reset my password", "s-100", "alice"),
        ("what plans do you offer", "s-100", "alice"),
        ("I want a refund", "s-200", "bob"),
    ]:
        try:
            agent(question, session, user)
        except TimeoutError:
            ids["TRACE_ID"] = mlflow.get_last_active_trace_id()
        time.sleep(0.01)
    return ids


def run_cmd(uri: str, workdir: Path, script: str, args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env["MLFLOW_TRACKING_URI"] = uri
    env["MLFLOW_SKILL_ENV_DIR"] = str(workdir)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=300,
    )
    return proc.stdout + (proc.stderr if proc.returncode else "")


def command_argv(command: str) -> tuple[str, list[str]]:
    """(script name, argv) of a documented `uv run scripts/<name>.py ...` command."""
    words = shlex.split(command.replace("\\\n", " "))
    script = next((w for w in words if re.fullmatch(r"scripts/[a-z_]+\.py", w)), None)
    if script is None:
        raise MalformedDoc(f"example command names no scripts/<name>.py: {command}")
    return Path(script).stem, words[words.index(script) + 1 :]


def real_producer(uri: str, workdir: Path, tmp: Path, ids: dict[str, str]) -> Callable[[Example], str]:
    folders = [
        (str(workdir), ""),
        (str(tmp), "<tmp>"),
        (str(ROOT), ""),
        (str(Path.home()), "~"),
        (str(Path(tempfile.gettempdir()).resolve()), "<tmp>"),
    ]

    def produce(example: Example) -> str:
        script, args = command_argv(example.command)
        return scrub_paths(run_cmd(uri, workdir, script, [ids.get(a, a) for a in args]), folders)

    return produce


def start_demo_server(tmp: Path):
    try:
        from conftest import start_server
    except ImportError:  # fixtures moved into a package
        from fixtures import start_server  # type: ignore[no-redef]
    return start_server(tmp)


def generate(keep: bool = False) -> dict[Path, tuple[str, str]]:
    """{doc: (current text, regenerated text)} from a fresh server and fresh demo data, for the
    docs holding examples. keep: leave outputs whose normalised form did not change."""
    docs = {doc: doc.read_text() for doc in DOCS if doc.exists()}
    for doc, text in docs.items():
        parse_examples(text, doc.name)  # malformed docs fail before a server is started
    with tempfile.TemporaryDirectory(prefix="mlflow-skill-examples-") as tmp:
        tmp_path = Path(tmp).resolve()
        server = start_demo_server(tmp_path / "server")
        try:
            workdir = tmp_path / "work"
            workdir.mkdir()
            ids = seed_demo(server.uri, workdir)
            produce = real_producer(server.uri, workdir, tmp_path, ids)
            if keep:
                produce = keep_unchanged(produce)
            return {doc: (text, rewrite(text, produce, doc.name)) for doc, text in docs.items() if START in text}
        finally:
            server.stop()


def main(argv: list[str]) -> int:
    try:
        results = generate(keep="--check" not in argv)
    except MalformedDoc as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "--check" in argv:
        problems = drift(results)
        counts = ", ".join(f"{doc.name} {len(parse_examples(cur))}" for doc, (cur, _) in results.items())
        print("\n\n".join(problems) or f"examples match ({counts})")
        return 1 if problems else 0
    for doc, (current, fresh) in results.items():
        if fresh != current:
            doc.write_text(fresh)
        state = "rewrote" if fresh != current else "unchanged:"
        print(f"{state} {len(parse_examples(fresh))} examples in {doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
