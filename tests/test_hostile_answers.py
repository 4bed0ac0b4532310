"""Hostile answers, round 2 (issue 22): servers on 127.0.0.1 that page for ever, send a gzip bomb,
trickle a byte a second, or answer JSON of the wrong shape. Each command ends with its documented
exit code and one line that says what came back, in bounded time and memory.

The servers are tests/hostile.py; the real MLflow server fixture shows the same commands still work.
"""

from __future__ import annotations

import time

import pytest

from hostile import (
    API,
    EXPERIMENT,
    Hostile,
    bomb_route,
    endless_runs,
    mlflow_basics,
    run_record,
    trickle,
    trickle_headers,
)

from conftest import unique
from reliability import assert_clean_error, error_lines


@pytest.fixture
def hostile():
    servers: list[Hostile] = []

    def start(routes: dict) -> Hostile:
        servers.append(Hostile(routes))
        return servers[-1]

    yield start
    for srv in servers:
        srv.close()


# ---------------------------------------------------------------------------------------------
# 0. Endless paging: a repeated token, a page with nothing new, short pages that never end
# ---------------------------------------------------------------------------------------------
PAGED_COMMANDS = [
    ("export", ["export", "-e", "hostile", "--output", "{tmp}/out.csv"]),
    ("best", ["best", "-e", "hostile", "--metric", "sharpe"]),
    ("health", ["health", "-e", "hostile"]),
    ("aggregate", ["aggregate", "-e", "hostile", "--group-by", "params.lookback", "--metric", "sharpe"]),
    ("runs-or", ["runs", "-e", "hostile", "--filter", "metrics.sharpe > 0 OR metrics.sharpe < 0"]),
    ("runs-numeric-param", ["runs", "-e", "hostile", "--filter", "params.lookback > 5"]),
]


@pytest.mark.parametrize("name,args", PAGED_COMMANDS, ids=[c[0] for c in PAGED_COMMANDS])
def test_endless_paging_stops_with_exit_6_naming_the_endpoint(run_script, hostile, tmp_path, name, args):
    srv = hostile({**mlflow_basics(), f"{API}/runs/search": endless_runs()})
    start = time.monotonic()
    res = run_script("query_experiments", *[a.format(tmp=tmp_path) for a in args], uri=srv.uri)
    elapsed = time.monotonic() - start
    assert_clean_error(res, 6, "keeps paging /api/2.0/mlflow/runs/search", "page token it had offered before")
    assert elapsed < 10, elapsed
    searches = [p for p in srv.paths() if p.endswith("/runs/search")]
    assert 2 <= len(searches) <= 8, len(searches)  # stopped at once, not 1,350 requests a minute
    assert not (tmp_path / "out.csv").exists()


def test_paging_with_new_tokens_but_the_same_run_stops(run_script, hostile):
    srv = hostile({**mlflow_basics(), f"{API}/runs/search": endless_runs(token=lambda page: f"t{page}")})
    res = run_script("query_experiments", "best", "-e", "hostile", "--metric", "sharpe", uri=srv.uri)
    assert_clean_error(res, 6, "keeps paging", "brought nothing new yet offered another page")
    assert len([p for p in srv.paths() if p.endswith("/runs/search")]) == 2


def test_paging_with_one_new_run_a_page_for_ever_stops(run_script, hostile):
    """New tokens and a new run on every page: more short pages than any real server sends."""
    pages = [0]

    def route(handler):
        from hostile import send

        pages[0] += 1
        send(handler, 200, {"runs": [run_record(f"{pages[0]:032x}")], "next_page_token": f"t{pages[0]}"})

    srv = hostile({**mlflow_basics(), f"{API}/runs/search": route})
    res = run_script("query_experiments", "health", "-e", "hostile", uri=srv.uri)
    assert_clean_error(res, 6, "keeps paging", "pages brought fewer than")
    assert pages[0] <= 6


def test_real_server_export_with_small_pages(run_script, client, tmp_path):
    exp = unique("pages")
    eid = client.create_experiment(exp)
    for i in range(5):
        run = client.create_run(eid, run_name=f"r{i}")
        client.log_metric(run.info.run_id, "sharpe", float(i))
        client.set_terminated(run.info.run_id)
    out = tmp_path / "runs.csv"
    res = run_script("query_experiments", "export", "-e", exp, "--output", out, "--page-size", "2")
    assert res.code == 0, res.err
    assert len(out.read_text().strip().splitlines()) == 1 + 5


# ---------------------------------------------------------------------------------------------
# 1. A gzip bomb: stopped while it inflates, exit 6 with an honest message
# ---------------------------------------------------------------------------------------------
def test_gzip_bomb_is_stopped_at_the_cap(run_script, hostile):
    """64 MiB of spaces in 66 KB of gzip, against a 16 MiB cap: refused after reading a little."""
    srv = hostile({f"{API}/experiments/search": bomb_route(64)})
    start = time.monotonic()
    res = run_script("query_experiments", "experiments", uri=srv.uri, env={"MLFLOW_SKILL_MAX_ANSWER_MB": "16"})
    assert_clean_error(res, 6, "sent more than 16 MiB", "gzip on the wire", "MLFLOW_SKILL_MAX_ANSWER_MB")
    assert "text starting" not in res.err
    assert time.monotonic() - start < 10
    assert len(srv.requests_seen) == 1  # not retried: the answer is what it is


def test_answer_larger_than_the_cap_without_compression(run_script, hostile):
    body = b'{"experiments": [' + b" " * (3 << 20) + b"]}"
    srv = hostile({f"{API}/experiments/search": (200, {"Content-Type": "application/json"}, body)})
    res = run_script("query_experiments", "experiments", uri=srv.uri, env={"MLFLOW_SKILL_MAX_ANSWER_MB": "2"})
    assert_clean_error(res, 6, "sent more than 2 MiB")


def test_gzip_answers_within_the_cap_still_read(run_script, hostile):
    import gzip
    import json

    body = gzip.compress(json.dumps({"experiments": [EXPERIMENT]}).encode())
    route = (200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, body)
    srv = hostile({f"{API}/experiments/search": route})
    res = run_script("query_experiments", "experiments", "--format", "json", uri=srv.uri)
    assert res.code == 0, res.err
    assert '"hostile"' in res.out


def test_an_encoding_not_asked_for_is_exit_6(run_script, hostile):
    route = (200, {"Content-Type": "application/json", "Content-Encoding": "br"}, b"\x8b\x02\x80{}\x03")
    srv = hostile({f"{API}/experiments/search": route})
    res = run_script("query_experiments", "experiments", uri=srv.uri)
    assert_clean_error(res, 6, "Content-Encoding 'br'", "not asked for")


def test_invalid_max_answer_setting_is_a_usage_error(run_script):
    res = run_script("query_experiments", "experiments", env={"MLFLOW_SKILL_MAX_ANSWER_MB": "-3"})
    assert_clean_error(res, 2, "MLFLOW_SKILL_MAX_ANSWER_MB must be a positive number")


# ---------------------------------------------------------------------------------------------
# 2. A trickle: --timeout is a deadline for the whole answer; one "waiting for" line on stderr
# ---------------------------------------------------------------------------------------------
def test_trickle_ends_at_the_deadline_with_exit_4(run_script, hostile):
    srv = hostile({f"{API}/experiments/search": trickle(100_000, 0.2)})
    start = time.monotonic()
    res = run_script("query_experiments", "experiments", "--timeout", "2", uri=srv.uri)
    elapsed = time.monotonic() - start
    assert_clean_error(res, 4, "timed out: no complete answer within 2s", "raise --timeout")
    assert "not reachable" not in res.err and "may still have applied" not in res.err
    assert elapsed < 4, elapsed
    assert len(srv.requests_seen) == 1  # a slow answer is not asked again (three times the wait)


def test_slow_call_says_once_what_it_waits_for(run_script, hostile):
    """--timeout 5 against a trickle: after 3 s one line on stderr names the call; stdout stays
    empty; the command ends at 5 s with exit 4 (the issue measured 377 s)."""
    srv = hostile({f"{API}/experiments/search": trickle(100_000, 1.0)})
    start = time.monotonic()
    res = run_script("query_experiments", "experiments", "--timeout", "5", "--format", "json", uri=srv.uri)
    elapsed = time.monotonic() - start
    assert res.code == 4, res.err
    assert 4.5 < elapsed < 9, elapsed
    waiting = [line for line in res.err.splitlines() if line.startswith("waiting for ")]
    wanted = f"waiting for {srv.uri} to answer POST {API}/experiments/search (up to 5s; --timeout changes it)"
    assert waiting == [wanted]
    assert res.out == ""
    assert res.err.strip().splitlines()[-1].startswith("error: POST /api/2.0/mlflow/experiments/search")


def test_headers_that_never_end_stop_at_the_deadline_with_exit_4(run_script, hostile):
    """A status line, then a header byte every 0.2 s: `requests`' read timeout alone would wait for
    ever (each byte restarts it); --timeout 2 ends the call at 2 s, once, with exit 4."""
    srv = hostile({f"{API}/experiments/search": trickle_headers(0.2)})
    start = time.monotonic()
    res = run_script("query_experiments", "experiments", "--timeout", "2", uri=srv.uri)
    elapsed = time.monotonic() - start
    assert_clean_error(res, 4, "timed out: no complete answer within 2s (the headers never ended)", "raise --timeout")
    assert "not reachable" not in res.err and "may still have applied" not in res.err
    assert elapsed < 4, elapsed
    assert len(srv.requests_seen) == 1  # not asked again: the server has the request


def test_a_stalled_proxy_stops_at_the_deadline(run_script, hostile):
    """HTTP_PROXY names a forward proxy that sends a status line, then never ends its headers: the
    watchdog watches the proxy's connections too. Nothing but the loopback proxy is contacted."""
    proxy = hostile({f"{API}/experiments/search": trickle_headers(0.2)})
    env = {"HTTP_PROXY": proxy.uri, "http_proxy": proxy.uri, "NO_PROXY": "", "no_proxy": ""}
    start = time.monotonic()
    res = run_script(
        "query_experiments", "experiments", "--timeout", "2", uri="http://tracking.example.invalid:5000", env=env
    )
    elapsed = time.monotonic() - start
    assert_clean_error(res, 4, "no complete answer within 2s (the headers never ended)")
    assert elapsed < 4, elapsed
    assert [path for _, path, _ in proxy.requests_seen] == [f"{API}/experiments/search"]  # through the proxy


def test_headers_that_never_end_on_a_write_say_it_may_have_been_applied(run_script, hostile):
    routes = {
        f"{API}/experiments/get-by-name": (404, {}, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"}'),
        f"{API}/experiments/create": trickle_headers(0.2),
    }
    srv = hostile(routes)
    start = time.monotonic()
    res = run_script("create_experiment", "--name", "slow", "--timeout", "1", uri=srv.uri)
    assert_clean_error(res, 4, "the headers never ended", "may still have applied it")
    assert time.monotonic() - start < 4


def test_timed_out_write_still_says_it_may_have_been_applied(run_script, hostile):
    routes = {
        f"{API}/experiments/get-by-name": (404, {}, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"}'),
        f"{API}/experiments/create": trickle(1000, 0.3),
    }
    srv = hostile(routes)
    res = run_script("create_experiment", "--name", "slow", "--timeout", "1", uri=srv.uri)
    assert res.code == 4, res.err
    assert "may still have applied it" in res.err


# ---------------------------------------------------------------------------------------------
# 3. JSON of the wrong shape: exit 6 on every endpoint, never exit 1
# ---------------------------------------------------------------------------------------------
WRONG_SHAPES = [
    ({"experiments": "not-a-list"}, "experiments is 'not-a-list', not a list"),
    ({"experiments": [{"foo": "bar"}, 17, None]}, "experiments[0] lacks 'experiment_id'"),
    ({"experiments": [EXPERIMENT, 17]}, "experiments[1] is 17, not an object"),
    ({"experiments": [{**EXPERIMENT, "tags": "x"}]}, "experiments[0].tags is 'x', not a list"),
]


@pytest.mark.parametrize("payload,detail", WRONG_SHAPES)
@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_experiments_of_the_wrong_shape_are_exit_6(run_script, hostile, payload, detail, fmt):
    srv = hostile({f"{API}/experiments/search": payload})
    res = run_script("query_experiments", "experiments", "--format", fmt, uri=srv.uri)
    assert_clean_error(res, 6, "JSON of another shape", detail, "is this an MLflow tracking server")


RUN_SHAPES = [
    ({"runs": [{"info": {"experiment_id": "1"}}]}, "runs[0].info lacks 'run_id'"),
    ({"runs": [{"info": {"run_id": "x\nerror: forged", "experiment_id": "1"}}]}, "runs[0].info.run_id"),
    ({"runs": [{**run_record(), "data": {"metrics": [{"value": 1}]}}]}, "lacks 'key'"),
    ({"runs": [{**run_record(), "data": []}]}, "runs[0].data is a list, not an object"),
    ({"runs": {"a": 1}}, "runs is an object, not a list"),
]


@pytest.mark.parametrize("payload,detail", RUN_SHAPES)
@pytest.mark.parametrize(
    "args",
    [
        ["runs", "-e", "hostile"],
        ["best", "-e", "hostile", "--metric", "sharpe"],
        ["failed", "-e", "hostile"],
        ["health", "-e", "hostile"],
    ],
    ids=["runs", "best", "failed", "health"],
)
def test_runs_of_the_wrong_shape_are_exit_6(run_script, hostile, payload, detail, args):
    srv = hostile({**mlflow_basics(), f"{API}/runs/search": payload})
    res = run_script("query_experiments", *args, uri=srv.uri)
    assert_clean_error(res, 6, "JSON of another shape", detail)
    assert not [line for line in res.both.splitlines() if line.startswith("error: forged")]


def test_one_run_of_the_wrong_shape_is_exit_6(run_script, hostile):
    srv = hostile({f"{API}/runs/get": {"run": {"info": {"run_id": 5}}}})
    res = run_script("query_experiments", "run", "a" * 32, uri=srv.uri)
    assert_clean_error(res, 6, "run.info.run_id is 5, not an id")


def test_metric_history_of_the_wrong_shape_is_exit_6(run_script, hostile):
    routes = {
        f"{API}/runs/get": {"run": run_record()},
        f"{API}/metrics/get-history": {"metrics": [{"key": "sharpe", "value": {"x": 1}}]},
        f"{API}/metrics/get-history-bulk-interval": {"metrics": "nope"},
    }
    srv = hostile(routes)
    res = run_script("get_metric_history", "--run-id", "a" * 32, "--metrics", "sharpe", uri=srv.uri)
    assert_clean_error(res, 6, "JSON of another shape")


# ---------------------------------------------------------------------------------------------
# 10. `{}` from a JSON endpoint that is not MLflow is not "0 experiments"
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["experiments"], ["runs", "-e", "1"], ["models"]],
    ids=["experiments", "runs", "models"],
)
def test_empty_json_object_from_a_non_mlflow_server_is_exit_6(run_script, hostile, args):
    srv = hostile({path: {} for path in ("/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/experiments/get")})
    srv.routes.update(
        {
            f"{API}/runs/search": {},
            f"{API}/registered-models/search": {},
            f"{API}/experiments/get-by-name": {},
        }
    )
    res = run_script("query_experiments", *args, uri=srv.uri)
    assert res.code == 6, res.err
    lines = error_lines(res.err)
    assert len(lines) == 1 and "is this an MLflow tracking server" in lines[0], res.err
    assert res.out == ""


def test_empty_answers_from_a_real_server_are_believed(run_script, client):
    exp = unique("empty")
    client.create_experiment(exp)
    res = run_script("query_experiments", "runs", "-e", exp, "--format", "json")
    assert res.code == 0, res.err
    res = run_script("query_experiments", "experiments", "--name-like", unique("nothing-like-this"))
    assert res.code == 0, res.err


def test_endless_trace_paging_stops_with_exit_6(run_script, hostile):
    trace = {
        "trace_id": "tr-" + "b" * 32,
        "trace_location": {"mlflow_experiment": {"experiment_id": "1"}},
        "request_time": "2026-01-01T00:00:00Z",
        "state": "OK",
    }

    def route(handler):
        from hostile import send

        send(handler, 200, {"traces": [trace], "next_page_token": "again"})

    srv = hostile({**mlflow_basics(), "/api/3.0/mlflow/traces/search": route})
    res = run_script("search_traces", "--experiment", "hostile", "--group-by", "status", "--limit", "5000", uri=srv.uri)
    assert_clean_error(res, 6, "keeps paging /api/3.0/mlflow/traces/search")
    assert len([p for p in srv.paths() if p.endswith("/traces/search")]) <= 3


# ---------------------------------------------------------------------------------------------
# The same reader behind MLflow's own REST helper (Databricks, auth plugins, SigV4): no such
# server runs here, so the store class is driven directly against the hostile servers
# ---------------------------------------------------------------------------------------------
def test_mlflow_rest_store_reads_through_the_same_reader(hostile, tmp_path):
    from mlflow_skill.core.config import resolve_settings
    from mlflow_skill.core.errors import ConnectionFailure, ServerError
    from mlflow_skill.store.transport import MlflowRestStore

    bomb = hostile({f"{API}/experiments/search": bomb_route(64)})
    environ = {
        "MLFLOW_TRACKING_URI": bomb.uri,
        "MLFLOW_SKILL_MAX_ANSWER_MB": "8",
        "MLFLOW_SKILL_ENV_DIR": str(tmp_path),
    }
    store = MlflowRestStore(resolve_settings(environ=environ, cwd=tmp_path))
    with pytest.raises(ServerError, match="sent more than 8 MiB"):
        store.get(f"{API}/experiments/search", {"max_results": 1})
    slow = hostile({f"{API}/experiments/search": trickle(100_000, 0.2)})
    environ = {"MLFLOW_TRACKING_URI": slow.uri, "MLFLOW_SKILL_ENV_DIR": str(tmp_path)}
    store = MlflowRestStore(resolve_settings(timeout=1.5, environ=environ, cwd=tmp_path))
    start = time.monotonic()
    with pytest.raises(ConnectionFailure, match="no complete answer within 1.5s"):
        store.get(f"{API}/experiments/search", {"max_results": 1})
    assert time.monotonic() - start < 4
