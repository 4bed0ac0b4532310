"""log_feedback.py (issue 25) through its main() against the real `server` fixture: feedback is
logged once for two identical calls and shows in get_trace.py; a lost answer (the server applied
the create, the client never heard) does not log it twice; expectations, trace tags and the link
to a run; the printed undo commands work; on the basic-auth server a READ-only user gets the 403.

Traces are made with MLflow's tracing API (tests/reliability.py make_trace) and checked with
MLflow's own client.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import assert_clean_error, credentials_env, make_trace

SCRIPT = "log_feedback"
AUDIT = "mlflow_skill.audit"


def assessments(client, trace_id: str, name: str | None = None) -> list:
    found = client.get_trace(trace_id).info.assessments
    return [a for a in found if name is None or a.name == name]


def undo_argv(out: str) -> list[list[str]]:
    return [shlex.split(c)[3:] for c in re.findall(r"^- `(uv run scripts/log_feedback\.py [^`]+)`$", out, re.M)]


@pytest.fixture
def trace(server):
    return make_trace(server.uri, unique("feedback"))


def test_feedback_logged_once_for_two_identical_calls_and_shown_by_get_trace(run_script, client, trace):
    exp_id, trace_id = trace
    args = ["--trace-id", trace_id, "--name", "correct", "--value", "false", "--rationale", "cites the 2023 policy"]
    first = run_script(SCRIPT, *args)
    assert first.code == 0, first.err
    second = run_script(SCRIPT, *args, "--format", "json")
    assert second.code == 0, second.err
    data = json.loads(second.out)
    assert data["written"] == 0 and data["changes"][0]["status"] == "already so"
    (logged,) = assessments(client, trace_id, "correct")
    assert logged.value is False and logged.rationale == "cites the 2023 policy"
    assert logged.source.source_type == "HUMAN" and logged.metadata[AUDIT].startswith("log_feedback.py ")

    shown = run_script("get_trace", "--trace-id", trace_id)
    assert shown.code == 0, shown.err
    assert re.search(
        r"^\| correct \| feedback \| false \| HUMAN:mlflow-python-skill \| cites the 2023 policy", shown.out, re.M
    )
    found = run_script("search_traces", "--experiment", exp_id, "--assessment", "correct=false", "--format", "json")
    assert trace_id in found.out

    (undo,) = undo_argv(first.out)
    assert undo[:3] == ["--trace-id", trace_id, "--delete-assessment"]
    deleted = run_script(SCRIPT, *undo)
    assert deleted.code == 0 and assessments(client, trace_id, "correct") == []
    assert "already so" in run_script(SCRIPT, *undo).out  # deleting it again: nothing to do
    (relog,) = undo_argv(deleted.out)  # the undo of a deletion logs it back, value and rationale
    assert "--rationale" in relog and run_script(SCRIPT, *relog).code == 0
    (back,) = assessments(client, trace_id, "correct")
    assert back.value is False and back.rationale == "cites the 2023 policy"


def test_a_new_value_is_logged_beside_the_old_one(run_script, client, trace):
    _, trace_id = trace
    assert run_script(SCRIPT, "--trace-id", trace_id, "--name", "score", "--value", "0.4").code == 0
    res = run_script(SCRIPT, "--trace-id", trace_id, "--name", "score", "--value", "0.9", "--source", "llm")
    assert res.code == 0, res.err
    assert "| 0.4 (HUMAN:mlflow-python-skill) | 0.9 (LLM_JUDGE:mlflow-python-skill) | changed |" in res.out
    assert sorted(a.value for a in assessments(client, trace_id, "score")) == [0.4, 0.9]


def test_expectation_tags_and_link_to_a_run(run_script, client, trace):
    exp_id, trace_id = trace
    run_id = client.create_run(exp_id, run_name="eval").info.run_id
    expect = ["--trace-id", trace_id, "--name", "expected", "--value", "Refunds take 14 days", "--expectation"]
    assert run_script(SCRIPT, *expect).code == 0
    (logged,) = assessments(client, trace_id, "expected")
    assert logged.value == "Refunds take 14 days" and type(logged).__name__ == "Expectation"

    args = ["--trace-id", trace_id, "--tag", "reviewed=yes", "--tag", "app=v2", "--run-id", run_id]
    res = run_script(SCRIPT, *args)
    assert res.code == 0, res.err
    tags = client.get_trace(trace_id).info.tags
    assert tags["reviewed"] == "yes" and tags["app"] == "v2" and tags[AUDIT].startswith("log_feedback.py ")
    assert trace_id in [t.info.trace_id for t in client.search_traces(locations=[exp_id], run_id=run_id)]
    assert "no endpoint that unlinks" in res.out
    again = run_script(SCRIPT, *args, "--format", "json")
    assert json.loads(again.out)["written"] == 0

    (undo,) = undo_argv(res.out)
    assert run_script(SCRIPT, *undo).code == 0
    assert not {"reviewed", "app"} & set(client.get_trace(trace_id).info.tags)


@pytest.mark.parametrize("status", [0, 502], ids=["connection-cut", "gateway-502"])
def test_a_lost_answer_never_logs_twice(run_script, client, trace, via_proxy, status):
    _, trace_id = trace
    via_proxy.reset("after_upstream", fault_path="/assessments", fault_count=1, status=status)
    res = run_script(SCRIPT, "--trace-id", trace_id, "--name", "correct", "--value", "true", uri=via_proxy.uri)
    assert res.code == 0, res.err
    posts = [r for r in via_proxy.requests if r[0] == "POST" and r[1].endswith("/assessments")]
    assert len(posts) == 1
    assert len(assessments(client, trace_id, "correct")) == 1


def test_bad_input(run_script, trace):
    _, trace_id = trace
    assert_clean_error(run_script(SCRIPT, "--trace-id", trace_id, "--name", "x"), 2, "--name NAME and --value V")
    assert_clean_error(run_script(SCRIPT, "--trace-id", trace_id), 2, "nothing to do")
    assert_clean_error(run_script(SCRIPT, "--name", "x", "--value", "1"), 2, "which trace")
    assert_clean_error(run_script(SCRIPT, "--trace-id", "tr-0000", "--name", "x", "--value", "1"), 3, "no trace")


def test_read_only_user_gets_the_403(run_script, auth_server):
    from mlflow.tracking import MlflowClient

    _, trace_id = make_trace(auth_server.uri, unique("fb-auth"), auth=(ADMIN_USER, ADMIN_PASSWORD))
    env = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    res = run_script(
        SCRIPT, "--trace-id", trace_id, "--name", "correct", "--value", "false", uri=auth_server.uri, env=env
    )
    assert_clean_error(res, 5, "permission denied (403)")
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        assert MlflowClient(auth_server.uri).get_trace(trace_id).info.assessments == []
