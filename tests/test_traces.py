"""search_traces.py and get_trace.py against a real server, with traces made by MLflow's own
tracing API in this process (nested spans of several types, a failed tool, sessions and users,
tags, slow and fast traces, token usage, feedback and expectations)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import time

import pytest

from conftest import unique


@contextlib.contextmanager
def mlflow_target(uri: str, experiment: str):
    """Point MLflow's global tracking state at uri/experiment, and put it back afterwards
    (other test files share this process)."""
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_uri = tracking_utils._tracking_uri
    saved_env = {
        k: os.environ.get(k)
        for k in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI", "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING")
    }
    saved_exp = fluent._active_experiment_id
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    try:
        mlflow.set_tracking_uri(uri)
        exp = mlflow.set_experiment(experiment)
        yield mlflow, exp.experiment_id
        mlflow.flush_trace_async_logging()
    finally:
        tracking_utils.set_tracking_uri(saved_uri)
        fluent._active_experiment_id = saved_exp
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_traces(mlflow) -> dict[str, str]:
    """Five traces, oldest first: A fast OK, B slow OK, C failed, D 'refund', E batch job."""
    from mlflow.entities import AssessmentSource, SpanType

    def chat(q: str, tokens: tuple[int, int]):
        with mlflow.start_span(name="llm", span_type=SpanType.CHAT_MODEL) as span:
            span.set_inputs({"messages": [{"role": "user", "content": q}]})
            span.set_attribute(
                "mlflow.chat.tokenUsage",
                {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)},
            )
            span.set_outputs(f"answer to {q}")
            return f"answer to {q}"

    def retrieve(q: str, delay: float):
        with mlflow.start_span(name="retriever", span_type=SpanType.RETRIEVER) as span:
            span.set_inputs({"query": q})
            with mlflow.start_span(name="embed", span_type=SpanType.EMBEDDING) as emb:
                emb.set_inputs(q)
                emb.set_outputs([0.1, 0.2])
            time.sleep(delay)
            span.set_outputs(["doc-1", "doc-2"])

    @mlflow.trace(name="tool", span_type=SpanType.TOOL)
    def tool(q: str):
        if q.startswith("bad"):
            raise ValueError("tool exploded: bad input")
        return q.upper()

    def agent(q, session, user, tags, delay=0.0, tokens=(10, 5)):
        @mlflow.trace(name="agent", span_type=SpanType.AGENT)
        def run(q):
            meta = {}
            if session:
                meta["mlflow.trace.session"] = session
            if user:
                meta["mlflow.trace.user"] = user
            mlflow.update_current_trace(metadata=meta, tags=tags)
            retrieve(q, delay)
            tool(q)
            return chat(q, tokens)

        try:
            run(q)
        except ValueError:
            pass
        time.sleep(0.02)  # distinct timestamps, so newest-first order is certain
        return mlflow.get_last_active_trace_id()

    ids = {}
    ids["A"] = agent("hello", "s1", "alice", {"env": "prod"})
    ids["B"] = agent("slow question", "s1", "bob", {"env": "prod"}, delay=0.6, tokens=(20, 10))
    ids["C"] = agent("bad request", "s2", "alice", {"env": "staging"})
    ids["D"] = agent("refund please", "s2", "carol", {"quote": "it's"})

    @mlflow.trace(name="batch_job", span_type=SpanType.CHAIN)
    def batch():
        mlflow.update_current_trace(tags={"env": "dev"})
        with mlflow.start_span(name="load", span_type=SpanType.PARSER) as span:
            span.set_outputs(3)
        return "done"

    batch()
    ids["E"] = mlflow.get_last_active_trace_id()
    mlflow.log_feedback(
        trace_id=ids["C"],
        name="correct",
        value=False,
        rationale="it crashed on the tool",
        source=AssessmentSource(source_type="HUMAN", source_id="bob"),
    )
    mlflow.log_expectation(trace_id=ids["C"], name="expected_answer", value="BAD REQUEST")
    return ids


@pytest.fixture(scope="module")
def traces(server):
    name = unique("traces")
    with mlflow_target(server.uri, name + "-warmup") as (mlflow, _):
        mlflow.trace(lambda: 1, name="warmup")()  # the first trace pays MLflow's set-up time
        exp_id = mlflow.set_experiment(name).experiment_id
        ids = make_traces(mlflow)
    from mlflow.tracking import MlflowClient

    tc = MlflowClient(server.uri)
    # The machine is shared: read the real durations instead of assuming them.
    ids["_dur"] = {k: tc.get_trace(v).info.execution_duration for k, v in ids.items()}
    ids["_exp"] = name
    ids["_exp_id"] = exp_id
    return ids


def ids_in(out: str, traces: dict) -> list[str]:
    """Which seeded traces (by letter) a markdown table lists, in order."""
    back = {v: k for k, v in traces.items() if not k.startswith("_")}
    return [back[t] for t in re.findall(r"tr-[0-9a-f]{32}", out) if t in back]


def search(run_script, traces, *args):
    r = run_script("search_traces", "--experiment", traces["_exp"], *args)
    assert r.code == 0, r.err
    return r


@pytest.mark.parametrize(
    "args, expected",
    [
        ((), ["E", "D", "C", "B", "A"]),
        (("--status", "ERROR"), ["C"]),
        (("--status", "ok"), ["E", "D", "B", "A"]),
        (("--session", "s1"), ["B", "A"]),
        (("--session", "s1", "--order-by", "timestamp_ms ASC"), ["A", "B"]),
        (("--user", "alice"), ["C", "A"]),
        (("--tag", "env=prod"), ["B", "A"]),
        (("--tag", "quote=it's"), ["D"]),
        (("--metadata", "mlflow.trace.user=bob"), ["B"]),
        (("--text", "refund"), ["D"]),
        (("--span-name", "load"), ["E"]),
        (("--span-name", "tool", "--session", "s2"), ["D", "C"]),
        (("--filter", "span.type = 'TOOL'", "--user", "alice"), ["C", "A"]),
        (("--since", "1h"), ["E", "D", "C", "B", "A"]),
        (("--until", "1h"), []),
        (("--since", "2999-01-01"), []),
    ],
)
def test_search_flags(run_script, traces, args, expected):
    r = search(run_script, traces, *args)
    assert ids_in(r.out, traces) == expected
    assert f"{len(expected)} traces shown" in r.out


def test_search_slower_than_and_order_by_duration(run_script, traces):
    dur = traces["_dur"]
    assert dur["B"] >= 600  # it slept 0.6 s
    threshold = dur["B"] - 50
    expected = [k for k in "EDCBA" if dur[k] > threshold]
    r = search(run_script, traces, "--slower-than", str(threshold))
    assert ids_in(r.out, traces) == expected and "B" in expected
    slowest = max("ABCDE", key=lambda k: dur[k])
    r = search(run_script, traces, "--order-by", "execution_time_ms DESC", "--max-results", "2")
    got = ids_in(r.out, traces)
    # ties in execution_time_ms (fast traces a few ms long) may come back in either order
    assert got[0] == slowest and [dur[k] for k in got] == sorted(dur.values(), reverse=True)[:2]
    assert "ordered by execution_time_ms DESC" in r.out


def test_search_table_columns_and_error_preview(run_script, traces):
    r = search(run_script, traces)
    header = next(line for line in r.out.splitlines() if line.startswith("| trace id"))
    assert [h.strip() for h in header.strip("|").split("|")] == [
        "trace id",
        "time (UTC)",
        "status",
        "duration",
        "name",
        "session",
        "user",
        "request",
        "tokens",
        "error",
    ]
    rows = {ids_in(line, traces)[0]: line for line in r.out.splitlines() if ids_in(line, traces)}
    assert "ERROR" in rows["C"] and "tool: ValueError: tool exploded: bad input" in rows["C"]
    assert "| s1 | bob |" in rows["B"] and "45 (30+15)" not in rows["B"] and "30 (20+10)" in rows["B"]
    assert "15 (10+5)" in rows["A"] and "batch_job" in rows["E"] and "agent" in rows["A"]
    assert "slow question" in rows["B"]
    assert r.out.startswith("store: http://127.0.0.1")
    assert "5 traces shown (all that match)" in r.out


def test_search_paging_follows_next_page_command(run_script, traces):
    seen = []
    args = ["--experiment", traces["_exp"], "--max-results", "2"]
    for _ in range(5):
        r = run_script("search_traces", *args)
        assert r.code == 0, r.err
        seen.append(ids_in(r.out, traces))
        m = re.search(r"Next page: (uv run scripts/search_traces\.py .*)$", r.out, re.MULTILINE)
        if not m:
            break
        cmd = shlex.split(m.group(1))
        assert cmd[:3] == ["uv", "run", "scripts/search_traces.py"]
        args = cmd[3:]
    assert seen == [["E", "D"], ["C", "B"], ["A"]]


def test_search_json_and_output_file(run_script, traces, tmp_path):
    out = tmp_path / "t.json"
    r = search(run_script, traces, "--session", "s2", "--format", "json", "--output", str(out))
    data = json.loads(r.out)
    assert [t["trace_id"] for t in data["traces"]] == [traces["D"], traces["C"]]
    c_row = data["traces"][1]
    assert c_row["status"] == "ERROR" and c_row["user"] == "alice" and c_row["error"].startswith("tool: ValueError")
    assert data["filter"] == "metadata.`mlflow.trace.session` = 's2'" and data["next_page_token"] is None
    full = json.loads(out.read_text())
    assert len(full["trace_infos"]) == 2 and full["trace_infos"][0]["trace_metadata"]["mlflow.trace.user"] == "carol"
    again = run_script("search_traces", "--experiment", traces["_exp"], "--output", str(out))
    assert again.code == 2 and "--force" in again.err


def test_group_by_session(run_script, traces):
    r = search(run_script, traces, "--group-by", "session", "--format", "json")
    groups = {g["session"]: g for g in json.loads(r.out)["groups"]}
    assert set(groups) == {"s1", "s2", None}
    s1, s2 = groups["s1"], groups["s2"]
    assert (s1["traces"], s1["errors"], s1["total_tokens"]) == (2, 0, 45)
    assert (s2["traces"], s2["errors"], s2["error_rate"]) == (2, 1, 0.5)
    lo, hi = sorted([traces["_dur"]["A"], traces["_dur"]["B"]])
    assert s1["p50_ms"] == pytest.approx((lo + hi) / 2, abs=1)
    assert s1["p95_ms"] == pytest.approx(lo + 0.95 * (hi - lo), abs=1)
    md = search(run_script, traces, "--group-by", "status")
    rows = {line.split("|")[1].strip(): line for line in md.out.splitlines() if line.startswith("| ")}
    assert rows["OK"].split("|")[2].strip() == "4" and rows["ERROR"].split("|")[4].strip() == "100%"
    assert "2 groups over 5 traces (1 error)" in md.out


def test_group_by_limit_is_stated(run_script, traces):
    r = search(run_script, traces, "--group-by", "name", "--limit", "3")
    assert "stopped at --limit 3" in r.out and "over 3 traces" in r.out


def test_search_bad_input(run_script, traces):
    r = run_script("search_traces", "--experiment", traces["_exp"], "--filter", "trace.nonsense = 'x'")
    assert r.code == 2 and r.err.startswith("error:") and "Traceback" not in r.err
    r = run_script("search_traces", "--experiment", traces["_exp"], "--since", "yesterdayish")
    assert r.code == 2 and "30m, 1h" in r.err
    r = run_script("search_traces", "--experiment", traces["_exp"] + "-nope")
    assert r.code == 3 and "did you mean" in r.err
    r = run_script("search_traces")
    assert r.code == 2 and "--experiment" in r.err
    r = run_script("search_traces", "--experiment", traces["_exp"], env={})
    assert r.code == 0
    r = run_script("search_traces", "--status", "ERROR", env={"MLFLOW_EXPERIMENT_NAME": traces["_exp"]})
    assert r.code == 0 and ids_in(r.out, traces) == ["C"]


def test_get_trace_tree_errors_assessments(run_script, traces):
    r = run_script("get_trace", "--trace-id", traces["C"])
    assert r.code == 0, r.err
    out = r.out
    assert f"## Trace {traces['C']} — agent" in out
    assert "**ERROR**" in out and "session s2 · user alice" in out and "tags: env=staging" in out
    assert "- error: tool: ValueError: tool exploded: bad input" in out
    tree = [line for line in out.split("### Spans")[1].split("###")[0].splitlines() if line.strip().startswith("- ")]
    shape = [(len(line) - len(line.lstrip())) // 2 for line in tree]
    names = [line.strip()[2:].split(" · ")[0].strip("*") for line in tree]
    assert list(zip(names, shape, strict=False)) == [("agent", 0), ("retriever", 1), ("embed", 2), ("tool", 1)]
    assert "ERROR (raised in tool)" in tree[0] and "AGENT" in tree[0]
    assert "TOOL" in tree[3] and "ERROR ValueError: tool exploded: bad input" in tree[3]
    assert "RETRIEVER" in tree[1] and 'in {"query": "bad request"}' in tree[1]
    assert "| correct | feedback | false | HUMAN:bob | it crashed on the tool |" in out
    assert "| expected_answer | expectation | BAD REQUEST |" in out


def test_get_trace_tokens_slowest_and_json(run_script, traces):
    r = run_script("get_trace", "--trace-id", traces["B"])
    assert r.code == 0, r.err
    assert "tokens: 20 in / 10 out, 30 total" in r.out
    slow = next(line for line in r.out.splitlines() if line.startswith("- slowest"))
    assert slow.split(": ", 1)[1].startswith("retriever ")  # it slept 0.6 s itself
    j = run_script("get_trace", "--trace-id", traces["B"], "--format", "json")
    data = json.loads(j.out)
    assert [(s["name"], s["depth"], s["type"]) for s in data["spans"]] == [
        ("agent", 0, "AGENT"),
        ("retriever", 1, "RETRIEVER"),
        ("embed", 2, "EMBEDDING"),
        ("tool", 1, "TOOL"),
        ("llm", 1, "CHAT_MODEL"),
    ]
    assert data["spans"][4]["tokens"]["total_tokens"] == 30 and data["session"] == "s1"
    assert data["spans"][1]["share"] > 0.3 and data["slowest"][0]["name"] == "retriever"


def test_get_trace_span_detail_and_output(run_script, traces, tmp_path):
    r = run_script("get_trace", "--trace-id", traces["C"], "--span", "tool")
    assert r.code == 0, r.err
    detail = r.out.split("### Span tool")[1]
    assert "TOOL · ERROR: ValueError: tool exploded: bad input" in detail
    assert "exception.stacktrace" in detail and "Traceback (most recent call last)" in detail
    assert "mlflow.spanFunctionName: tool" in detail
    r = run_script("get_trace", "--trace-id", traces["C"], "--span", "nope")
    assert r.code == 3 and "its spans: agent, retriever, embed, tool" in r.err
    out = tmp_path / "trace.json"
    r = run_script("get_trace", "--trace-id", traces["A"], traces["E"], "--output", str(out))
    assert r.code == 0, r.err
    assert "### Spans" not in r.out and "batch_job" in r.out and "tokens: 10 in / 5 out" in r.out
    full = json.loads(out.read_text())
    assert [t["info"]["trace_id"] for t in full] == [traces["A"], traces["E"]]
    assert sorted(s["name"] for s in full[0]["data"]["spans"]) == ["agent", "embed", "llm", "retriever", "tool"]


def test_get_trace_unknown_id(run_script, traces):
    r = run_script("get_trace", "--trace-id", "tr-00000000000000000000000000000000")
    assert r.code == 3 and r.out == ""
    assert [line for line in r.err.strip().splitlines() if not line.startswith("store: ")] == [
        (
            "error: no trace with id 'tr-00000000000000000000000000000000' "
            "(find ids: uv run scripts/search_traces.py --experiment NAME)"
        )
    ]


def test_embedded_sqlite_store_same_code_path(run_script, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_target(uri, "local-traces") as (mlflow, _):
        from mlflow.entities import SpanType

        @mlflow.trace(name="local_agent", span_type=SpanType.AGENT)
        def agent():
            mlflow.update_current_trace(metadata={"mlflow.trace.session": "local-s"})
            with mlflow.start_span(name="step", span_type=SpanType.TOOL):
                raise RuntimeError("disk full")

        with contextlib.suppress(RuntimeError):
            agent()
        trace_id = mlflow.get_last_active_trace_id()
    r = run_script("search_traces", "--experiment", "local-traces", uri=None, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "embedded default" in r.out and trace_id in r.out and "step: RuntimeError: disk full" in r.out
    r = run_script("get_trace", "--trace-id", trace_id, uri=None, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "session local-s" in r.out and "ERROR RuntimeError: disk full" in r.out


def test_uv_run_subprocess(uv_run, traces):
    r = uv_run("search_traces.py", "--experiment", traces["_exp"], "--user", "alice", "--format", "json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert [t["trace_id"] for t in data["traces"]] == [traces["C"], traces["A"]]
    r = uv_run("get_trace.py", "--trace-id", "tr-ffffffffffffffffffffffffffffffff")
    assert r.code == 3 and "no trace with id" in r.err and "Traceback" not in r.err


def test_search_by_run_id(run_script, server):
    """Traces made inside a run are found with --run-id alone (its experiment is used)."""
    name = unique("run-traces")
    with mlflow_target(server.uri, name) as (mlflow, _):
        mlflow.trace(lambda: 0, name="outside")()
        with mlflow.start_run() as run:
            inside = mlflow.trace(lambda: 1, name="inside")
            inside()
            inside()
    r = run_script("search_traces", "--run-id", run.info.run_id)
    assert r.code == 0, r.err
    assert "2 traces shown" in r.out
    assert "inside" in r.out and "outside" not in r.out
