"""The example outputs shown in SKILL.md and README.md come from real runs: this regenerates them.

Usage:
  uv run python tests/examples.py            # rewrite the outputs in SKILL.md and README.md
  uv run python tests/examples.py --check    # exit 1 if any shown output drifted (what the test does)

An example in a doc is a marker, a bash block with one command, and a text block with its output:

    <!-- example -->
    ```bash
    uv run scripts/query_experiments.py best --experiment demo-sweep --metric val_accuracy --top 3
    ```
    ```text
    ...output...
    ```

A fresh tracking server is started, demo data seeded deterministically, and each command run with
the placeholders RUN_ID, TRACE_ID, ... replaced by the demo's ids. Comparison ignores what changes
from run to run (ids, ports, times, durations).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

DOCS = [ROOT / "SKILL.md", ROOT / "README.md"]
EXAMPLE_RE = re.compile(
    r"(<!-- example -->\n```bash\n)(?P<cmd>[^`]*?)(\n```\n```text\n)(?P<out>(?:(?!```)[^\n]*\n)*?)(```)"
)

VOLATILE = [
    (re.compile(r"\b(tr-)?([0-9a-f]{32}|[0-9a-f]{16})\b"), "<id>"),  # run, trace and span ids
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?Z?"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ms|s|m\d\ds)\b"), "<dur>"),
    (re.compile(r"\b\d+(\.\d+)?%"), "<pct>"),
    (re.compile(r"\b\d+(\.\d+)? (B|KB|MB)\b"), "<size>"),
    (re.compile(r"/tmp/[^\s|)]+"), "<tmp>"),
    (re.compile(r"[ \t]+"), " "),
]


def normalize(text: str) -> str:
    for pattern, repl in VOLATILE:
        text = pattern.sub(repl, text)
    # Table padding and volatile widths differ; compare line by line without trailing blanks.
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


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
    returns = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "returns": rng.normal(0.0006, 0.011, len(dates)).round(6)})
    returns.to_csv(workdir / "returns.csv", index=False)
    out = run_cmd(
        uri, workdir, "log_backtest",
        ["--returns", "returns.csv", "--experiment", "demo-backtests", "--run-name", "momentum-v1",
         "--param", "lookback=20", "--no-tearsheet", "--format", "json"],
    )  # fmt: skip
    import json

    ids["RUN_ID"] = json.loads(out)["run_id"]
    ids.update(seed_traces(uri))
    return ids


def seed_traces(uri: str) -> dict[str, str]:
    import mlflow

    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("demo-agent")

    @mlflow.trace(span_type="TOOL")
    def search_docs(query):
        return [f"doc about {query}"]

    @mlflow.trace(span_type="LLM")
    def call_llm(prompt):
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
    return ids


def run_cmd(uri: str, workdir: Path, script: str, args: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env["MLFLOW_TRACKING_URI"] = uri
    env["MLFLOW_SKILL_ENV_DIR"] = str(workdir)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), *args],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
    )  # fmt: skip
    return proc.stdout + (proc.stderr if proc.returncode else "")


def render_examples(uri: str, workdir: Path, ids: dict[str, str], text: str) -> str:
    import shlex

    def replace(match: re.Match) -> str:
        command = match.group("cmd").strip()
        words = shlex.split(command.replace("\\\n", " "))
        script = Path(words[words.index(next(w for w in words if w.startswith("scripts/")))]).stem
        args = words[words.index(f"scripts/{script}.py") + 1 :]
        args = [ids.get(a, a) for a in args]
        output = run_cmd(uri, workdir, script, args).rstrip()
        return match.group(1) + match.group("cmd") + match.group(3) + output + "\n" + match.group(5)

    return EXAMPLE_RE.sub(replace, text)


def generate() -> dict[Path, tuple[str, str]]:
    """{doc: (current text, regenerated text)} from a fresh server and fresh demo data."""
    from conftest import start_server

    with tempfile.TemporaryDirectory(prefix="mlflow-skill-examples-") as tmp:
        tmp_path = Path(tmp)
        server = start_server(tmp_path / "server")
        try:
            workdir = tmp_path / "work"
            workdir.mkdir()
            ids = seed_demo(server.uri, workdir)
            return {doc: (doc.read_text(), render_examples(server.uri, workdir, ids, doc.read_text())) for doc in DOCS}
        finally:
            server.stop()


def drift(results: dict[Path, tuple[str, str]]) -> list[str]:
    problems = []
    for doc, (current, fresh) in results.items():
        old = [normalize(m.group("out")) for m in EXAMPLE_RE.finditer(current)]
        new = [normalize(m.group("out")) for m in EXAMPLE_RE.finditer(fresh)]
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                import difflib

                diff = "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "shown", "fresh", lineterm=""))
                problems.append(f"{doc.name} example {i + 1} drifted:\n{diff}")
    return problems


def main(argv: list[str]) -> int:
    results = generate()
    if "--check" in argv:
        problems = drift(results)
        print("\n\n".join(problems) or "examples match")
        return 1 if problems else 0
    for doc, (_, fresh) in results.items():
        doc.write_text(fresh)
        print(f"rewrote {sum(1 for _ in EXAMPLE_RE.finditer(fresh))} examples in {doc.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
