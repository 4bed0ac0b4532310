"""GenAI evaluation views against a real server: sessions as conversations, assessment filters
and per-version quality, metrics over time, cost. Traces are made with MLflow's tracing API
(back-dated root spans, so buckets and latencies are known), assessments with log_feedback;
every expected value is computed here from MLflow's own search_traces."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from test_traces import mlflow_target

from conftest import unique

HOUR = 3_600_000
MIN = 60_000
ANSWERS = "Our refund policy: damaged items are refunded to the original card within 5-7 business days. " * 2

# session, user, version, minutes ago, latency ms, question, fails, (in, out) tokens, model,
#   correct (LLM judge; "err" = the judge failed), user feedback (HUMAN), score (CODE)
TURNS = [
    (
        "conv-a",
        "alice",
        "v1",
        26 * 60,
        420,
        "hello, I need help with an order",
        False,
        (30, 12),
        "gpt-4o-mini",
        True,
        "yes",
        0.9,
    ),
    (
        "conv-a",
        "alice",
        "v1",
        26 * 60 - 1,
        1300,
        "it arrived damaged",
        False,
        (60, 40),
        "gpt-4o-mini",
        False,
        None,
        0.4,
    ),
    ("conv-a", "alice", "v1", 26 * 60 - 2, 2600, "can I get a refund?", True, (20, 0), "gpt-4o-mini", False, "no", 0.1),
    ("conv-a", "alice", "v1", 26 * 60 - 3, 800, "thanks", False, (15, 5), "gpt-4o-mini", True, None, 0.7),
    ("conv-d", "dave", "v1", 3 * 60, 950, "where is my parcel", False, (25, 20), "gpt-4o-mini", False, "no", 0.5),
    ("conv-d", "dave", "v1", 3 * 60 - 2, 610, "ok thanks", False, (10, 4), "gpt-4o-mini", True, None, 0.8),
    ("conv-b", "bob", "v2", 5 * 60, 300, "reset my password", False, (22, 18), "gpt-4o-mini", True, "yes", 0.95),
    ("conv-b", "bob", "v2", 5 * 60 - 1, 350, "the link expired", False, (30, 25), "claude-x", True, None, 0.85),
    ("conv-b", "bob", "v2", 5 * 60 - 2, 4100, "still broken", True, (40, 0), "claude-x", "err", "no", 0.2),
    ("conv-c", "carol", "v2", 60, 500, "what plans do you offer", False, (18, 30), "gpt-4o-mini", True, "yes", 0.9),
    ("conv-c", "carol", "v2", 59, 450, "which is cheapest", False, (20, 22), "gpt-4o-mini", True, None, 0.75),
    ("conv-c", "carol", "v2", 58, 700, "sign me up", False, (26, 16), "gpt-4o-mini", False, "yes", 0.6),
    (None, None, "v2", 30, 200, "batch: summarise tickets", False, (100, 50), "gpt-4o-mini", True, None, None),
]


def seed(mlflow, now_ms: int) -> list[str]:
    from mlflow.entities import AssessmentSource, SpanType
    from mlflow.entities.assessment_error import AssessmentError

    ids = []
    for session, user, version, ago, latency, question, fails, tokens, model, correct, user_fb, score in TURNS:
        start_ns = (now_ms - ago * MIN) * 1_000_000
        meta = {k: v for k, v in (("mlflow.trace.session", session), ("mlflow.trace.user", user)) if v}
        root = mlflow.start_span_no_context(
            "support_chat",
            span_type=SpanType.AGENT,
            inputs={"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": question}]},
            tags={"app_version": version},
            metadata=meta,
            start_time_ns=start_ns,
        )
        llm = mlflow.start_span_no_context(
            "llm", span_type=SpanType.CHAT_MODEL, parent_span=root, start_time_ns=start_ns + 1_000_000
        )
        llm.set_inputs({"model": model, "messages": [{"role": "user", "content": question}]})
        llm.set_attribute("mlflow.llm.model", model)
        llm.set_attribute(
            "mlflow.chat.tokenUsage",
            {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)},
        )
        llm.end(outputs="draft", end_time_ns=start_ns + (latency // 2) * 1_000_000)
        tool = mlflow.start_span_no_context(
            "lookup", span_type=SpanType.TOOL, parent_span=root, start_time_ns=start_ns + (latency // 2 + 1) * 1_000_000
        )
        if fails:
            tool.record_exception(TimeoutError("order service timed out after 30s"))
            tool.end(status="ERROR", end_time_ns=start_ns + (latency - 1) * 1_000_000)
            root.end(status="ERROR", end_time_ns=start_ns + latency * 1_000_000)
        else:
            tool.end(outputs={"ok": True}, end_time_ns=start_ns + (latency - 1) * 1_000_000)
            root.end(
                outputs={"choices": [{"message": {"role": "assistant", "content": f"re: {question}. {ANSWERS}"}}]},
                end_time_ns=start_ns + latency * 1_000_000,
            )
        trace_id = root.trace_id
        ids.append(trace_id)
        judge = AssessmentSource(source_type="LLM_JUDGE", source_id="gpt-judge")
        if correct == "err":
            mlflow.log_feedback(
                trace_id=trace_id,
                name="correct",
                source=judge,
                error=AssessmentError(error_code="JUDGE_TIMEOUT", error_message="judge timed out"),
            )
        else:
            mlflow.log_feedback(
                trace_id=trace_id,
                name="correct",
                value=correct,
                source=judge,
                rationale=("The answer cites the policy. " * 10),
                span_id=llm.span_id,
            )
        if user_fb is not None:
            mlflow.log_feedback(
                trace_id=trace_id,
                name="user_feedback",
                value=user_fb,
                source=AssessmentSource(source_type="HUMAN", source_id=user),
            )
        if score is not None:
            mlflow.log_feedback(
                trace_id=trace_id,
                name="score",
                value=score,
                source=AssessmentSource(source_type="CODE", source_id="length_check"),
            )
    return ids


@pytest.fixture(scope="module")
def genai(server):
    name = unique("genai")
    now_ms = int(time.time() * 1000)
    with mlflow_target(server.uri, name) as (mlflow, exp_id):
        ids = seed(mlflow, now_ms)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.uri)
    return {"name": name, "exp_id": exp_id, "ids": ids, "client": client, "now_ms": now_ms}


def mlflow_search(g, filter_string=None, order_by=None):
    """MLflow's own answer: every matching trace (infos with assessments)."""
    return g["client"].search_traces(
        locations=[g["exp_id"]], filter_string=filter_string, order_by=order_by, max_results=500, include_spans=False
    )


def run_json(run_script, name, *args):
    r = run_script(name, *args, "--format", "json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def feedback_values(trace, name):
    return [
        a
        for a in trace.info.assessments
        if a.name == name and getattr(a, "valid", True) is not False and a.feedback is not None
    ]


# ---------------------------------------------------------------------------------------------
# A session as a conversation
# ---------------------------------------------------------------------------------------------
def test_session_replay_matches_mlflow(run_script, genai):
    expected = mlflow_search(genai, "metadata.`mlflow.trace.session` = 'conv-a'", ["timestamp_ms ASC"])
    assert len(expected) == 4
    data = run_json(run_script, "get_trace", "--session", "conv-a", "--experiment", genai["name"])
    turns = data["turns"]
    assert [t["trace_id"] for t in turns] == [t.info.trace_id for t in expected]
    assert [t["input"] for t in turns] == [row[5] for row in TURNS[:4]]
    assert turns[0]["response"].startswith("re: hello, I need help with an order.")
    assert [t["status"] for t in turns] == [t.info.state.value for t in expected]
    assert [t["duration_ms"] for t in turns] == [t.info.execution_duration for t in expected]
    assert "TimeoutError: order service timed out after 30s" in turns[2]["error"] and turns[2]["error"].startswith(
        "lookup:"
    )
    tot = data["totals"]
    assert tot["turns"] == 4 and tot["errors"] == 1 and tot["users"] == ["alice"]
    assert tot["total_tokens"] == sum(t.info.token_usage["total_tokens"] for t in expected)
    assert tot["duration_ms"] == sum(t.info.execution_duration for t in expected)
    judged = [a.feedback.value for t in expected for a in feedback_values(t, "correct")]
    assert tot["assessments"]["correct"]["pass_rate"] == pytest.approx(sum(judged) / len(judged))
    scores = [a.feedback.value for t in expected for a in feedback_values(t, "score")]
    assert tot["assessments"]["score"]["mean"] == pytest.approx(np.mean(scores))


def test_session_markdown_is_bounded_and_opens_turns(run_script, genai):
    r = run_script("get_trace", "--session", "conv-a", "--experiment", genai["name"])
    assert r.code == 0, r.err
    body = r.out.split("\n", 2)[2]  # after the store line
    assert len(body) <= 2200, len(body)
    assert body.startswith("## Session conv-a: 4 turns (1 failed)")
    for trace_id in genai["ids"][:4]:
        assert trace_id in body
    lines = body.splitlines()
    assert "> user: can I get a refund?" in lines
    assert any(line.startswith("> **error**: lookup: TimeoutError") for line in lines)
    assert "> feedback: correct=false (LLM_JUDGE), user_feedback=no (HUMAN), score=0.1 (CODE)" in lines
    assert "- feedback: correct 50% pass (n=4) · score mean 0.525 (n=4) · user_feedback 50% pass (n=2)" in lines
    # Fewer turns shown: the hidden failed turn is still named with its id.
    r = run_script("get_trace", "--session", "conv-a", "--experiment", genai["name"], "--max-turns", "2")
    assert "turns 3–4 not shown: --max-turns 4" in r.out
    assert f"failed among them: #3 {genai['ids'][2]}" in r.out


def test_session_errors(run_script, genai):
    r = run_script("get_trace", "--session", "no-such-session", "--experiment", genai["name"])
    assert r.code == 3 and "no traces in session 'no-such-session'" in r.err and "--group-by session" in r.err
    r = run_script("get_trace", "--session", "conv-a", "--trace-id", genai["ids"][0], "--experiment", genai["name"])
    assert r.code == 2 and "not both" in r.err
    r = run_script("get_trace", "--session", "conv-a")
    assert r.code == 2 and "--experiment" in r.err


def test_group_by_session_lists_failed_then_slowest_ids(run_script, genai):
    data = run_json(run_script, "search_traces", "--experiment", genai["name"], "--group-by", "session")
    groups = {g["session"]: g for g in data["groups"]}
    conv_a = mlflow_search(genai, "metadata.`mlflow.trace.session` = 'conv-a'")
    ranked = sorted(conv_a, key=lambda t: (t.info.state.value != "ERROR", -t.info.execution_duration))
    assert [t["trace_id"] for t in groups["conv-a"]["trace_ids"]] == [t.info.trace_id for t in ranked]
    assert groups["conv-a"]["trace_ids"][0]["status"] == "ERROR"
    md = run_script("search_traces", "--experiment", genai["name"], "--group-by", "session")
    row = next(line for line in md.out.splitlines() if line.startswith("| conv-a "))
    assert row.rstrip(" |").endswith(f"{ranked[0].info.trace_id} {ranked[1].info.trace_id}")
    assert "get_trace.py --session ID" in md.out


# ---------------------------------------------------------------------------------------------
# Assessments: filters equal MLflow's feedback.* results; per-version quality
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec, mlflow_filter, check",
    [
        ("correct=true", "feedback.correct = 'true'", lambda vs: any(v is True for v in vs)),
        ("correct=false", "feedback.correct = 'false'", lambda vs: any(v is False for v in vs)),
        ("user_feedback=no", "feedback.user_feedback = 'no'", lambda vs: "no" in vs),
        ("user_feedback!=yes", "feedback.user_feedback != 'yes'", None),
        ("score>=0.8", "feedback.score >= 0.8", lambda vs: any(v >= 0.8 for v in vs)),
        ("score<0.5", "feedback.score < 0.5", lambda vs: any(v < 0.5 for v in vs)),
        ("user_feedback", "feedback.user_feedback IS NOT NULL", lambda vs: bool(vs)),
    ],
)
def test_assessment_filter_equals_mlflow(run_script, genai, spec, mlflow_filter, check):
    name = spec.split("=")[0].split(">")[0].split("<")[0].rstrip("!")
    expected = {t.info.trace_id for t in mlflow_search(genai, mlflow_filter)}
    if check is not None:  # and MLflow's answer is what the assessments say
        every = mlflow_search(genai)
        by_values = {
            t.info.trace_id
            for t in every
            if check([a.feedback.value for a in feedback_values(t, name) if a.feedback.value is not None])
        }
        assert expected == by_values
    data = run_json(
        run_script, "search_traces", "--experiment", genai["name"], "--assessment", spec, "--max-results", "500"
    )
    assert {t["trace_id"] for t in data["traces"]} == expected and expected
    assert mlflow_filter.replace("feedback.", "") in data["filter"].replace("feedback.", "")


def test_assessment_filters_combine_and_show_a_column(run_script, genai):
    expected = {
        t.info.trace_id
        for t in mlflow_search(genai, "feedback.correct = 'true' AND feedback.score >= 0.8 AND tag.app_version = 'v2'")
    }
    r = run_script(
        "search_traces",
        "--experiment",
        genai["name"],
        "--assessment",
        "correct=true",
        "--assessment",
        "score>=0.8",
        "--tag",
        "app_version=v2",
    )
    assert r.code == 0, r.err
    shown = {line.split("|")[1].strip() for line in r.out.splitlines() if line.startswith("| tr-")}
    assert shown == expected and len(expected) == 3
    header = next(line for line in r.out.splitlines() if line.startswith("| trace id"))
    assert "| feedback |" in header and "correct=true, score=" in r.out


def test_versions_compared_on_feedback_in_one_call(run_script, genai):
    data = run_json(run_script, "search_traces", "--experiment", genai["name"], "--group-by", "tag.app_version")
    groups = {g["tag.app_version"]: g for g in data["groups"]}
    assert set(groups) == {"v1", "v2"}
    for version in ("v1", "v2"):
        traces = mlflow_search(genai, f"tag.app_version = '{version}'")
        g = groups[version]
        durations = [t.info.execution_duration for t in traces]
        assert g["traces"] == len(traces) and g["errors"] == sum(t.info.state.value == "ERROR" for t in traces)
        assert g["p50_ms"] == pytest.approx(np.percentile(durations, 50)) and g["p95_ms"] == pytest.approx(
            np.percentile(durations, 95)
        )
        assert g["total_tokens"] == sum(t.info.token_usage["total_tokens"] for t in traces)
        correct = [a for t in traces for a in feedback_values(t, "correct")]
        valued = [a.feedback.value for a in correct if a.feedback.value is not None]
        assert g["assessments"]["correct"]["pass_rate"] == pytest.approx(sum(valued) / len(valued))
        assert g["assessments"]["correct"]["errors"] == sum(
            1 for a in correct if a.feedback.error is not None and a.feedback.value is None
        )
        fb = [a.feedback.value for t in traces for a in feedback_values(t, "user_feedback")]
        assert g["assessments"]["user_feedback"]["pass_rate"] == pytest.approx(fb.count("yes") / len(fb))
        scores = [a.feedback.value for t in traces for a in feedback_values(t, "score")]
        assert g["assessments"]["score"]["mean"] == pytest.approx(np.mean(scores))
    assert groups["v2"]["assessments"]["correct"]["errors"] == 1
    md = run_script("search_traces", "--experiment", genai["name"], "--group-by", "tag.app_version")
    body = md.out.split("\n", 2)[2]
    assert len(body) <= 2048, len(body)
    header = next(line for line in body.splitlines() if line.startswith("| tag.app_version"))
    assert "correct pass (n)" in header and "score mean (n)" in header and "user_feedback pass (n)" in header
    v1 = next(line for line in body.splitlines() if line.startswith("| v1 "))
    assert "| 50% (6) |" in v1  # 3 of 6 judged correct, as computed from MLflow above
    v2 = next(line for line in body.splitlines() if line.startswith("| v2 "))
    assert "(7, 1 err)" in v2


def test_group_by_bad_key(run_script, genai):
    r = run_script("search_traces", "--experiment", genai["name"], "--group-by", "app_version")
    assert r.code == 2 and "tag.NAME" in r.err
    r = run_script("search_traces", "--experiment", genai["name"], "--assessment", "score>=high")
    assert r.code == 2 and "needs a number" in r.err


# ---------------------------------------------------------------------------------------------
# Metrics over time
# ---------------------------------------------------------------------------------------------
def expected_buckets(traces, every_ms):
    out: dict[int, list] = {}
    for t in traces:
        out.setdefault(t.info.request_time // every_ms * every_ms, []).append(t)
    return out


def check_buckets(data, traces, every_ms):
    want = expected_buckets(traces, every_ms)
    buckets = {b["start_ms"]: b for b in data["series"][0]["buckets"]}
    assert {k for k, b in buckets.items() if b["traces"]} == set(want)
    for start, members in want.items():
        b = buckets[start]
        durations = [t.info.execution_duration for t in members]
        assert b["traces"] == len(members)
        assert b["errors"] == sum(t.info.state.value == "ERROR" for t in members)
        assert b["p50_ms"] == pytest.approx(np.percentile(durations, 50), abs=0.01)
        assert b["p95_ms"] == pytest.approx(np.percentile(durations, 95), abs=0.01)
        assert b["tokens"] == sum(t.info.token_usage["total_tokens"] for t in members)
    assert sum(b["traces"] for b in buckets.values()) == len(traces)


@pytest.mark.parametrize(
    "extra, computed", [((), "server"), (("--client-side",), "client"), (("--text", "e"), "client")]
)
def test_metrics_buckets_equal_mlflow(run_script, genai, extra, computed):
    data = run_json(
        run_script, "search_traces", "--experiment", genai["name"], "--every", "1h", "--since", "2d", *extra
    )
    assert data["computed"] == computed
    traces = mlflow_search(genai, "trace.text LIKE '%e%'" if "--text" in extra else None)
    check_buckets(data, traces, HOUR)
    assert len(data["series"][0]["buckets"]) == 49  # 2 days of hours, both ends included


def test_metrics_filtered_server_side(run_script, genai):
    data = run_json(
        run_script,
        "search_traces",
        "--experiment",
        genai["name"],
        "--every",
        "1d",
        "--since",
        "3d",
        "--tag",
        "app_version=v1",
        "--status",
        "OK",
    )
    assert data["computed"] == "server"
    check_buckets(data, mlflow_search(genai, "tag.app_version = 'v1' AND trace.status = 'OK'"), 86_400_000)


def test_metrics_markdown_sparklines(run_script, genai):
    r = run_script("search_traces", "--experiment", genai["name"], "--every", "1h", "--since", "2d")
    assert r.code == 0, r.err
    body = r.out.split("\n", 2)[2]
    assert len(body) <= 2048, len(body)
    assert "server-side (POST /api/3.0/mlflow/traces/metrics)" in body and "49 buckets" in body
    rows = {line.split("|")[1].strip(): line for line in body.splitlines() if line.startswith("| ")}
    traces = mlflow_search(genai)
    assert rows["traces"].split("|")[2].strip() == str(len(traces))
    errors = sum(t.info.state.value == "ERROR" for t in traces)
    assert rows["error rate"].split("|")[2].strip() == f"{errors / len(traces) * 100:.1f}%"
    shape = rows["traces"].split("`")[1]
    assert len(shape) == 48 and "█" in shape  # 49 buckets > 48: min/max pairs, the peak kept
    r = run_script(
        "search_traces",
        "--experiment",
        genai["name"],
        "--every",
        "1h",
        "--since",
        "2d",
        "--group-by",
        "tag.app_version",
    )
    assert "aggregated here over a search" in r.out and "| v1 | 6 | 1 |" in r.out


def test_metrics_fallback_when_server_lacks_endpoint(run_script, genai, server):
    from faultproxy import FaultProxy

    proxy = FaultProxy(server.uri)
    try:
        proxy.reset("path_status", status=404, fault_count=100, fault_path="/traces/metrics")
        args = ("search_traces", "--experiment", genai["name"], "--every", "1h", "--since", "2d")
        r = run_script(*args, uri=proxy.uri)
        j = run_script(*args, "--format", "json", uri=proxy.uri)
    finally:
        proxy.close()
    assert r.code == 0 and j.code == 0, r.err + j.err
    assert "no usable trace metrics endpoint" in r.out and "client-side over a search" in r.out
    data = json.loads(j.out)
    assert data["computed"] == "client"
    check_buckets(data, mlflow_search(genai), HOUR)


def test_metrics_bad_input(run_script, genai):
    r = run_script("search_traces", "--experiment", genai["name"], "--every", "0.5s")
    assert r.code == 2 and "whole seconds" in r.err
    r = run_script("search_traces", "--experiment", genai["name"], "--every", "1s", "--since", "30d")
    assert r.code == 2 and "buckets" in r.err
    r = run_script("search_traces", "--experiment", genai["name"], "--every", "soon")
    assert r.code == 2 and "not a duration" in r.err


# ---------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------
PRICES = {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}


def expected_cost(trace) -> tuple[float, int]:
    cost, unpriced = 0.0, 0
    for span in trace.data.spans:
        usage = span.attributes.get("mlflow.chat.tokenUsage")
        if not usage:
            continue
        model = span.attributes.get("mlflow.llm.model")
        if model in PRICES:
            cost += (
                usage["input_tokens"] * PRICES[model]["input_per_1m"] / 1e6
                + usage["output_tokens"] * PRICES[model]["output_per_1m"] / 1e6
            )
        else:
            unpriced += usage["total_tokens"]
    return cost, unpriced


def test_cost_per_trace_session_and_version(run_script, genai, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    full = {t.info.trace_id: t for t in (genai["client"].get_trace(i) for i in genai["ids"])}
    data = run_json(run_script, "get_trace", "--trace-id", genai["ids"][7], "--prices", str(prices))
    assert (
        data["cost"]["cost_usd"] is None
        and data["cost"]["unpriced_tokens"] == 55
        and data["cost"]["unpriced_models"] == ["claude-x"]
    )
    data = run_json(run_script, "get_trace", "--trace-id", genai["ids"][0], "--prices", str(prices))
    assert data["cost"]["cost_usd"] == pytest.approx(expected_cost(full[genai["ids"][0]])[0])
    data = run_json(
        run_script, "get_trace", "--session", "conv-b", "--experiment", genai["name"], "--prices", str(prices)
    )
    conv_b = [full[i] for i in genai["ids"][6:9]]
    assert data["totals"]["cost_usd"] == pytest.approx(sum(expected_cost(t)[0] for t in conv_b))
    assert data["totals"]["unpriced_tokens"] == sum(expected_cost(t)[1] for t in conv_b) == 95
    data = run_json(
        run_script,
        "search_traces",
        "--experiment",
        genai["name"],
        "--group-by",
        "tag.app_version",
        "--prices",
        str(prices),
    )
    for g in data["groups"]:
        members = [t for t in full.values() if t.info.tags.get("app_version") == g["tag.app_version"]]
        assert g["cost_usd"] == pytest.approx(sum(expected_cost(t)[0] for t in members))
    data = run_json(
        run_script, "search_traces", "--experiment", genai["name"], "--prices", str(prices), "--max-results", "500"
    )
    assert {t["trace_id"]: t["cost"]["cost_usd"] or 0 for t in data["traces"]} == pytest.approx(
        {i: expected_cost(t)[0] for i, t in full.items()}
    )
    md = run_script(
        "search_traces", "--experiment", genai["name"], "--group-by", "tag.app_version", "--prices", str(prices)
    )
    assert "| cost |" in md.out and "tok unpriced" in md.out
    plain = run_script("search_traces", "--experiment", genai["name"], "--group-by", "tag.app_version")
    assert "cost" not in plain.out and "$" not in plain.out  # nothing priced without --prices


def test_prices_file_errors(run_script, genai, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gpt-4o-mini": {"input": 1}}))
    r = run_script("get_trace", "--trace-id", genai["ids"][0], "--prices", str(bad))
    assert r.code == 2 and "input_per_1m" in r.err and "Traceback" not in r.err
    r = run_script("search_traces", "--experiment", genai["name"], "--prices", str(tmp_path / "missing.json"))
    assert r.code == 2 and "cannot read" in r.err


# ---------------------------------------------------------------------------------------------
# One trace's assessments: source, value, bounded rationale, the span
# ---------------------------------------------------------------------------------------------
def test_get_trace_assessments_with_source_and_span(run_script, genai):
    trace_id = genai["ids"][0]
    trace = genai["client"].get_trace(trace_id)
    llm = next(s for s in trace.data.spans if s.name == "llm")
    r = run_script("get_trace", "--trace-id", trace_id)
    assert r.code == 0, r.err
    rows = {
        line.split("|")[1].strip(): line
        for line in r.out.split("### Assessments")[1].splitlines()
        if line.startswith("| ") and "---" not in line
    }
    correct = [cell.strip() for cell in rows["correct"].strip().strip("|").split("|")]
    assert correct[:4] == ["correct", "feedback", "true", "LLM_JUDGE:gpt-judge"]
    assert len(correct[4]) <= 100 and correct[4].endswith("…")  # rationale bounded
    assert correct[5] == f"llm ({llm.span_id})"
    assert rows["user_feedback"].split("|")[4].strip() == "HUMAN:alice" and "(trace)" in rows["user_feedback"]
    assert "CODE:length_check" in rows["score"]
    data = run_json(run_script, "get_trace", "--trace-id", genai["ids"][8])
    err = next(a for a in data["assessments"] if a["name"] == "correct")
    assert err["value"] is None and err["error"] == "judge timed out"


def test_sparkline_keeps_extremes():
    from mlflow_skill.traces import metrics as tm

    values = [25.0] * 200
    values[137], values[40] = 50.0, 0.0
    line = tm.sparkline(values, 48)
    assert len(line) == 48 and line.count("█") == 1 and line.count("▁") == 1
    assert line.index("▁") < line.index("█")  # in time order
    assert tm.sparkline([1, None, 3]) == "▁ █"
    assert tm.sparkline([2, 2]) == "▄▄" and tm.sparkline([None, None]) == "  "
    assert tm.sparkline([0.0] * 3) == "▁▁▁"


@pytest.mark.parametrize("group", ["name", "status"])
def test_metrics_per_group_server_equals_client(run_script, genai, group):
    args = ("search_traces", "--experiment", genai["name"], "--every", "6h", "--since", "2d", "--group-by", group)
    server = run_json(run_script, *args)
    client = run_json(run_script, *args, "--client-side")
    assert (server["computed"], client["computed"]) == ("server", "client")

    def table(data):
        return {
            s["group"]: [
                (b["start_ms"], b["traces"], b["errors"], b["p50_ms"], b["p95_ms"], b["tokens"])
                for b in s["buckets"]
                if b["traces"]
            ]
            for s in data["series"]
        }

    assert table(server).keys() == table(client).keys()
    for key, rows in table(client).items():
        assert len(table(server)[key]) == len(rows)
        for a, b in zip(table(server)[key], rows, strict=False):
            assert a[:3] == b[:3] and a[3:] == pytest.approx(b[3:])
    traces = mlflow_search(genai)
    want = {}
    for t in traces:
        want[t.info.state.value if group == "status" else t.info.tags["mlflow.traceName"]] = (
            want.get(t.info.state.value if group == "status" else t.info.tags["mlflow.traceName"], 0) + 1
        )
    assert {s["group"]: s["totals"]["traces"] for s in server["series"]} == want


def test_list_csv_keeps_machine_headers(run_script, genai):
    r = run_script("search_traces", "--experiment", genai["name"], "--assessment", "score>=0.9", "--format", "csv")
    assert r.code == 0, r.err
    lines = r.out.strip().splitlines()
    assert lines[0].split(",")[:4] == ["trace id", "time (UTC)", "status", "duration_ms"]
    expected = {t.info.trace_id: t.info.execution_duration for t in mlflow_search(genai, "feedback.score >= 0.9")}
    got = {line.split(",")[0]: float(line.split(",")[3]) for line in lines[1:]}
    assert got == expected


def test_metrics_empty_window_and_session_flags(run_script, genai):
    r = run_script(
        "search_traces", "--experiment", genai["name"], "--every", "1d", "--since", "7d", "--tag", "app_version=v9"
    )
    assert r.code == 0, r.err
    assert "server-side" in r.out and "No traces in this window." in r.out
    data = run_json(
        run_script,
        "search_traces",
        "--experiment",
        genai["name"],
        "--every",
        "1d",
        "--since",
        "7d",
        "--tag",
        "app_version=v9",
    )
    assert (
        sum(b["traces"] for s in data["series"] for b in s["buckets"]) == 0 and len(data["series"][0]["buckets"]) == 8
    )
    r = run_script("get_trace", "--session", "conv-a", "--experiment", genai["name"], "--span", "llm")
    assert r.code == 2 and "--trace-id" in r.err
