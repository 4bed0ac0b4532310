"""search_traces.py's answers say exactly what they are (issue 24), against the real server with
traces made by MLflow's own tracing API: the plain list's default stays under 2 KB and says how to
get the next page; a time in the filter is echoed as a time, not only as epoch milliseconds; a
pass rate of 62.5 % reads 62.5 %; group statistics say what they left out (traces without token
usage). A NaN feedback value cannot be logged (MLflow's protobuf JSON refuses it), so none is
tried. Expected values are computed here from what was logged."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime

import pytest

from test_genai_eval import seed as seed_conversations
from test_traces import mlflow_target

from conftest import unique

VERDICTS = ["yes", "yes", "no", "yes", "no", "yes", "no", "yes"]  # 5 of 8 pass: 62.5 %


@pytest.fixture(scope="module")
def busy(server):
    """52 traces (the GenAI conversations four times over): more than a default page."""
    import time

    name = unique("answers-busy")
    now = int(time.time() * 1000)
    with mlflow_target(server.uri, name) as (mlflow, _):
        for k in range(4):
            seed_conversations(mlflow, now - k * 10)
    return name


@pytest.fixture(scope="module")
def judged(server):
    """Eight traces with a yes/no verdict each (5 yes), a numeric score, and token usage on all but two."""
    from mlflow.entities import AssessmentSource, SpanType

    name = unique("answers-judged")
    with mlflow_target(server.uri, name) as (mlflow, _):
        for i, verdict in enumerate(VERDICTS):
            with mlflow.start_span(name="answer", span_type=SpanType.CHAT_MODEL) as span:
                mlflow.update_current_trace(tags={"app_version": "v7"})
                span.set_inputs({"q": f"question {i}"})
                if i >= 2:
                    span.set_attribute(
                        "mlflow.chat.tokenUsage", {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
                    )
                span.set_outputs("ok")
            trace_id = mlflow.get_last_active_trace_id()
            source = AssessmentSource(source_type="HUMAN", source_id="rater")
            mlflow.log_feedback(trace_id=trace_id, name="correct", value=verdict, source=source)
            mlflow.log_feedback(trace_id=trace_id, name="score", value=0.5 + i / 100, source=source)
    return name


def ok(res):
    assert res.code == 0, res.err
    return res


def test_default_list_is_under_2_kb_with_the_next_page_command(run_script, busy):
    res = ok(run_script("search_traces", "--experiment", busy))
    assert len(res.out.encode()) < 2048, len(res.out.encode())
    rows = [line for line in res.out.splitlines() if line.startswith("| tr-")]
    assert len(rows) == 10 and "10 traces shown; more match" in res.out
    next_cmd = re.search(r"Next page: (uv run scripts/search_traces\.py .*)$", res.out, re.M).group(1)
    second = ok(run_script("search_traces", *shlex.split(next_cmd)[3:]))
    more = [line for line in second.out.splitlines() if line.startswith("| tr-")]
    assert len(more) == 10 and not set(rows) & set(more)
    failed = ok(run_script("search_traces", "--experiment", busy, "--status", "ERROR"))
    assert len(failed.out.encode()) < 2048 and "every trace shown:" in failed.out and "status ERROR" in failed.out


def test_shared_values_are_said_once_above_the_table(run_script, busy):
    res = ok(run_script("search_traces", "--experiment", busy))
    header = next(line for line in res.out.splitlines() if line.startswith("| trace id"))
    assert "| name |" not in header and "every trace shown:" in res.out and "name support_chat" in res.out
    csv_head = ok(run_script("search_traces", "--experiment", busy, "--format", "csv")).out.splitlines()[0]
    assert "name" in csv_head.split(",") and "status" in csv_head.split(",")  # machines keep every column


@pytest.mark.parametrize("args", [["--since", "2d"], ["--since", "2020-01-01", "--until", "2999-12-31T10:30:00"]])
def test_time_filter_is_echoed_as_a_time(run_script, busy, args):
    md = ok(run_script("search_traces", "--experiment", busy, *args)).out
    scope = next(line for line in md.splitlines() if line.startswith("Traces in"))
    stamps = re.findall(r"trace\.timestamp_ms [<>]=? (\d+)", scope)
    assert len(stamps) == len(args) // 2
    times = [datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") for ms in stamps]
    assert scope.endswith("(" + "; ".join(f"{ms} = {t} UTC" for ms, t in zip(stamps, times, strict=True)) + ")")
    if len(stamps) == 2:
        assert times[0].startswith("2020-01-01") and times[1].startswith("2999-12-31")


def test_pass_rate_keeps_its_half_and_group_stats_say_what_they_left_out(run_script, judged):
    args = ["search_traces", "--experiment", judged, "--group-by", "tag.app_version", "--assessment", "correct"]
    md = ok(run_script(*args)).out
    passed = VERDICTS.count("yes") / len(VERDICTS)
    assert passed == 0.625 and "62.5% (8)" in md and "62% " not in md
    data = json.loads(ok(run_script(*args, "--format", "json")).out)
    group = data["groups"][0]
    assert group["assessments"]["correct"]["pass_rate"] == passed
    scores = [0.5 + i / 100 for i in range(len(VERDICTS))]
    assert group["assessments"]["score"]["mean"] == pytest.approx(sum(scores) / len(scores))
    assert group["without_tokens"] == 2 and "2 traces recorded no token usage (left out of tokens per trace)" in md
    assert group["tokens_per_trace"] == 5 and group["total_tokens"] == 5 * (len(VERDICTS) - 2)
