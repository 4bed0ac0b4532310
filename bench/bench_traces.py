"""Benchmark search_traces.py and get_trace.py against MLflow's own CLI on a local server.

Usage:
  uv run python bench/bench_traces.py               # 1,000 traces, medians of 5
  uv run python bench/bench_traces.py --traces 300 --repeat 3

Measures, in one run against one local `mlflow server` (sqlite, 1 worker):
  1. wall time of `uv run scripts/search_traces.py --experiment X --max-results 25 [filter]`
     against `mlflow traces search --experiment-id X --max-results 25 [--filter-string ...]`
     (the venv's CLI, no uv overhead: its best case), medians after one warm-up call each,
     for no filter and for `trace.status = 'ERROR'` (our worst case: the error column
     fetches the spans of every failed trace shown);
  2. characters printed by `get_trace.py` for a 50-span trace against `mlflow traces get`,
     checking that every span's name appears in ours;
  3. wall time and size of the evaluation views: --every (server endpoint and --client-side),
     --group-by tag.env and session, get_trace.py --session.

Seeding uses MLflow's tracing API in this process, writing into the server's sqlite file
before the server starts (about 0.2 s per trace here; exporting over HTTP was 1.2 s): an
agent span with a retriever, a tool and a chat-model span with token usage, realistic
message-sized inputs and outputs, 10% failing in the tool, 50 sessions and 20 users.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _bench import median_time, timed  # noqa: E402
from conftest import clean_env, start_server  # noqa: E402

PY = sys.executable
MLFLOW_CLI = str(Path(PY).parent / "mlflow")
SEARCH = str(ROOT / "scripts" / "search_traces.py")
GET = str(ROOT / "scripts" / "get_trace.py")

QUESTION = (
    "Customer {i} asks: my order #{i:05d} arrived damaged and the replacement never shipped; "
    "can I get a refund to the original card, and how long will it take to show up?"
)
DOC = (
    "Refund policy section {j}: damaged items reported within 30 days are refunded to the original "
    "payment method within 5-7 business days after the return is scanned at the warehouse."
)


def seed(mlflow, n: int) -> tuple[str, list[str]]:
    """n small traces plus one 50-span trace; returns (the big trace's id, its span names)."""
    from mlflow.entities import SpanType

    def retrieve(q, tag):
        with mlflow.start_span(name=f"retriever{tag}", span_type=SpanType.RETRIEVER) as span:
            span.set_inputs({"query": q, "top_k": 3})
            span.set_outputs([{"page_content": DOC.format(j=j), "metadata": {"doc_id": f"kb-{j}"}} for j in range(3)])

    def chat(q, tag, i):
        with mlflow.start_span(name=f"llm{tag}", span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs(
                {
                    "messages": [
                        {"role": "system", "content": "You are a support agent."},
                        {"role": "user", "content": q},
                    ],
                    "model": "gpt-4o-mini",
                }
            )
            span.set_attribute(
                "mlflow.chat.tokenUsage",
                {"input_tokens": 180 + i % 40, "output_tokens": 60, "total_tokens": 240 + i % 40},
            )
            span.set_outputs(
                {"choices": [{"message": {"role": "assistant", "content": "Yes: " + DOC.format(j=i % 7)}}]}
            )

    def tool(q, tag, fail):
        with mlflow.start_span(name=f"lookup_order{tag}", span_type=SpanType.TOOL) as span:
            span.set_inputs({"order": q[20:40]})
            if fail:
                raise TimeoutError("order service timed out after 30s")
            span.set_outputs({"status": "shipped", "carrier": "UPS", "eta_days": 3})

    for i in range(n):
        q = QUESTION.format(i=i)

        @mlflow.trace(name="support_agent", span_type=SpanType.AGENT)
        def agent(q, i=i):
            mlflow.update_current_trace(
                metadata={"mlflow.trace.session": f"sess-{i % 50}", "mlflow.trace.user": f"user-{i % 20}"},
                tags={"env": "prod" if i % 3 else "staging"},
            )
            retrieve(q, "")
            tool(q, "", fail=(i % 10 == 7))
            chat(q, "", i)
            return "done"

        try:
            agent(q)
        except TimeoutError:
            pass

    names = ["research_agent"]

    @mlflow.trace(name="research_agent", span_type=SpanType.AGENT)
    def big():
        for step in range(7):
            with mlflow.start_span(name=f"step_{step}", span_type=SpanType.CHAIN) as s:
                s.set_inputs({"goal": QUESTION.format(i=step)})
                names.append(f"step_{step}")
                chat(QUESTION.format(i=step), f"_{step}", step)
                names.append(f"llm_{step}")
                try:
                    tool(QUESTION.format(i=step), f"_{step}", fail=(step == 4))
                except TimeoutError:
                    pass
                names.append(f"lookup_order_{step}")
                with mlflow.start_span(name=f"search_{step}", span_type=SpanType.RETRIEVER) as r:
                    r.set_inputs({"query": QUESTION.format(i=step)})
                    with mlflow.start_span(name=f"embed_{step}", span_type=SpanType.EMBEDDING) as e:
                        e.set_inputs(QUESTION.format(i=step))
                        e.set_outputs([0.01 * k for k in range(16)])
                    r.set_outputs([DOC.format(j=j) for j in range(3)])
                names.extend([f"search_{step}", f"embed_{step}"])
                with mlflow.start_span(name=f"rerank_{step}", span_type=SpanType.RERANKER) as rr:
                    rr.set_inputs([DOC.format(j=j) for j in range(3)])
                    rr.set_outputs([DOC.format(j=1)])
                with mlflow.start_span(name=f"parse_{step}", span_type=SpanType.PARSER) as p:
                    p.set_inputs("Yes: " + DOC.format(j=step))
                    p.set_outputs({"answer": "refund", "days": 7})
                names.extend([f"rerank_{step}", f"parse_{step}"])
                s.set_outputs({"answer": "refund in 5-7 days"})
        return "refund approved"

    big()
    big_id = mlflow.get_last_active_trace_id()
    return big_id, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-traces-") as tmp:
        folder = Path(tmp) / "server"
        folder.mkdir()
        # Seed straight into the server's sqlite file before it starts: the tracing API exporting
        # in-process is several times faster than exporting over HTTP, and the server then reads
        # exactly what MLflow's client wrote.
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
        exp_id = mlflow.set_experiment("bench-traces").experiment_id
        t0 = time.perf_counter()
        big_id, names = seed(mlflow, args.traces)
        seed_s = time.perf_counter() - t0
        server = start_server(folder)
        try:
            return run_bench(server, args, exp_id, big_id, names, seed_s)
        finally:
            server.stop()


def run_bench(server, args, exp_id: str, big_id: str, names: list[str], seed_s: float) -> int:
    import requests

    env = clean_env({"MLFLOW_TRACKING_URI": server.uri, "UV_PYTHON_DOWNLOADS": "never"})
    count, token = 0, None
    while True:  # count what the server sees
        body = {
            "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp_id}}],
            "max_results": 500,
        }
        if token:
            body["page_token"] = token
        page = requests.post(f"{server.uri}/api/3.0/mlflow/traces/search", json=body, timeout=60).json()
        count += len(page.get("traces", []))
        token = page.get("next_page_token")
        if not token:
            break
    print(f"seeded {count} traces (one of them {len(names)} spans) in {seed_s:.0f}s; server {server.uri}", flush=True)

    uv = ["uv", "run", "--quiet"]
    rows = []
    for label, flt in (("no filter", None), ("trace.status = 'ERROR'", "trace.status = 'ERROR'")):
        cli = [MLFLOW_CLI, "traces", "search", "--experiment-id", exp_id, "--max-results", "25"]
        ours = [*uv, SEARCH, "--experiment", exp_id, "--max-results", "25"]
        if flt:
            cli += ["--filter-string", flt]
            ours += ["--filter", flt]
        t_cli, out_cli = median_time(cli, env, args.repeat)
        t_ours, out_ours = median_time(ours, env, args.repeat)
        shown = out_ours.count("| tr-")
        assert shown == 25 or (flt and shown == args.traces // 10), f"expected 25 rows, got {shown}"
        rows.append((label, t_ours, t_cli, len(out_ours), len(out_cli)))

    _, _, out_cli_get = timed([MLFLOW_CLI, "traces", "get", "--trace-id", big_id], env)
    _, _, out_get = timed([*uv, GET, "--trace-id", big_id], env)
    missing = [n for n in names if f" {n} ·" not in out_get and f"**{n}**" not in out_get]
    tree_lines = out_get.split("### Spans")[1].split("###")[0].count("- ")

    print(f"\n### search_traces.py / get_trace.py vs MLflow's CLI ({count} traces; medians of {args.repeat})\n")
    print("| measure | ours | mlflow CLI | ratio | target |")
    print("|---|---|---|---|---|")
    for label, t_ours, t_cli, _, _ in rows:
        print(
            f"| search, 25 traces, {label}: wall time | {t_ours:.2f} s | {t_cli:.2f} s | {t_ours / t_cli:.2f}x | ≤ "
            f"0.5x |"
        )
    for label, _, _, c_ours, c_cli in rows:
        print(f"| search, 25 traces, {label}: characters | {c_ours:,} | {c_cli:,} | {c_ours / c_cli:.3f}x | |")
    print(
        f"| get, 50-span trace: characters | {len(out_get):,} | {len(out_cli_get):,} | "
        f"{len(out_get) / len(out_cli_get):.3f}x | ≤ 0.2x |"
    )
    print(f"\nspans named in get_trace.py output: {len(names) - len(missing)}/{len(names)} (tree lines: {tree_lines})")
    if missing:
        print("missing: " + ", ".join(missing))
    evaluation_views(uv, exp_id, env, args)
    ok = all(t / c <= 0.5 for _, t, c, _, _ in rows) and len(out_get) <= 0.2 * len(out_cli_get) and not missing
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


def evaluation_views(uv: list[str], exp_id: str, env: dict, args) -> None:
    """Issue 17's views over the same traces: wall time and characters printed (markdown)."""
    views = (
        ("metrics --every 1h --since 7d (server endpoint)", [SEARCH, "--every", "1h", "--since", "7d"]),
        ("metrics --every 1h --since 7d --client-side", [SEARCH, "--every", "1h", "--since", "7d", "--client-side"]),
        ("--group-by tag.env (all traces, feedback, ids)", [SEARCH, "--group-by", "tag.env"]),
        ("--group-by session", [SEARCH, "--group-by", "session"]),
        ("get_trace --session sess-7", [GET, "--session", "sess-7"]),
    )
    print("\n### evaluation views (medians of", args.repeat, "runs)\n")
    print("| view | wall time | characters |")
    print("|---|---|---|")
    for label, argv in views:
        t, out = median_time([*uv, *argv, "--experiment", exp_id], env, args.repeat)
        print(f"| {label} | {t:.2f} s | {len(out):,} |")


if __name__ == "__main__":
    sys.exit(main())
