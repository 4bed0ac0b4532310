"""Servers that are not MLflow, or not at that path: an SSO login page answering 200, a proxy's
HTML 404, a wrong path prefix in front of a real MLflow server, plain text. Each gives the
documented exit code (6, or 3 for a 404) and one line that says what came back and what to
check; none may pass for an empty result ("0 experiments", exit 0).

The not-MLflow servers are tiny HTTP servers on 127.0.0.1 started here; the wrong prefix is the
session's real MLflow server with `/mlflow` appended to its URI.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import unique
from reliability import assert_clean_error

LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in - Corp SSO</title></head><body><form>...</form></body></html>"
NOT_FOUND_PAGE = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><hr>nginx</body></html>"


class Canned:
    """An HTTP server on 127.0.0.1 that answers every request with one status, type and body."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/html"):
        self.paths: list[str] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                canned.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def canned():
    servers = []

    def start(status: int, body: bytes, content_type: str = "text/html") -> Canned:
        servers.append(Canned(status, body, content_type))
        return servers[-1]

    yield start
    for srv in servers:
        srv.close()


COMMANDS = [
    ("query_experiments", ["experiments"]),
    ("query_experiments", ["experiments", "--format", "json"]),
    ("query_experiments", ["runs", "-e", "btc-momentum"]),
    ("create_experiment", ["--name", "x-from-the-answers-test"]),
    ("get_metric_history", ["--run-id", "0123456789abcdef0123456789abcdef"]),
]


@pytest.mark.parametrize("script,args", COMMANDS)
def test_html_login_page_with_200_is_exit_6(run_script, canned, script, args):
    srv = canned(200, LOGIN_PAGE)
    res = run_script(script, *args, uri=srv.uri)
    assert_clean_error(res, 6, "HTML page", "Sign in - Corp SSO", "login page or a wrong path prefix", srv.uri)
    assert srv.paths, "the server was never asked"
    assert res.out == ""  # no "0 experiments" or empty table passed off as a result
    assert res.err.startswith(f"store: {srv.uri} (MLFLOW_TRACKING_URI from environment)\n")


@pytest.mark.parametrize("script,args", COMMANDS)
def test_html_404_is_exit_3_saying_what_came_back(run_script, canned, script, args):
    srv = canned(404, NOT_FOUND_PAGE)
    res = run_script(script, *args, uri=srv.uri)
    assert_clean_error(res, 3, "HTML page", "404 Not Found", "wrong path prefix", "(404)")
    assert res.out == ""


def test_plain_text_200_is_exit_6(run_script, canned):
    srv = canned(200, b"It works!\n", "text/plain")
    res = run_script("query_experiments", "experiments", uri=srv.uri)
    assert_clean_error(res, 6, "text starting 'It works!'", "not MLflow's JSON", "is this an MLflow tracking server")


def test_json_of_another_shape_is_exit_6(run_script, canned):
    srv = canned(200, b"[1, 2, 3]", "application/json")
    res = run_script("create_experiment", "--name", "x", uri=srv.uri)
    assert_clean_error(res, 6, "JSON of another shape", "is this an MLflow tracking server")


@pytest.mark.parametrize("script,args", COMMANDS)
def test_json_object_of_another_shape_is_exit_6(run_script, canned, script, args):
    """A health check's {"ok": true} at the URI is not "0 experiments"."""
    srv = canned(200, b'{"ok": true}', "application/json")
    res = run_script(script, *args, uri=srv.uri)
    assert_clean_error(res, 6, "is this an MLflow tracking server", "fix MLFLOW_TRACKING_URI in the environment")
    assert res.out == ""


def test_wrong_path_prefix_on_a_real_server(run_script, server, client):
    """MLflow answers an unknown path with its own 404 page: the message says what came back,
    and never prints the page itself (the old `error: <!doctype html>`)."""
    exp = unique("prefix")
    client.create_experiment(exp)
    wrong = server.uri + "/mlflow"
    for script, args in [
        ("query_experiments", ["experiments"]),
        ("query_experiments", ["runs", "-e", exp]),
        ("create_experiment", ["--name", exp]),
    ]:
        res = run_script(script, *args, uri=wrong)
        assert res.code in (3, 6), res.err
        assert_clean_error(res, res.code, "wrong path prefix", f"{wrong} (MLFLOW_TRACKING_URI from environment)")
        assert "<!doctype" not in res.err.lower() and "<html" not in res.err.lower()
    res = run_script("query_experiments", "runs", "-e", exp, uri=server.uri)  # the right prefix works
    assert res.code == 0, res.err


# ---------------------------------------------------------------------------------------------
# Terminal safety: hostile names from the store are printed escaped
# ---------------------------------------------------------------------------------------------
def test_ansi_escape_and_newline_in_names_are_escaped(run_script, client):
    """An experiment and a run named with an ANSI escape (clear screen, red) and a newline: the
    markdown tables of `experiments` and `runs` show `\\x1b` and stay one row per line; no raw
    control character reaches the terminal on stdout or stderr."""
    tag = unique("evil")
    name = f"{tag}\x1b[2J\x1b[31mred\nsecond line | pipe"
    eid = client.create_experiment(name)
    run = client.create_run(eid, run_name="run\x1b]0;title\x07\nnext")
    client.log_param(run.info.run_id, "p", "v\x1b[1mbold")
    outputs = [
        run_script("query_experiments", "experiments", "--name-like", tag),
        run_script("query_experiments", "runs", "-e", eid),
        run_script("query_experiments", "runs", "-e", eid, "--columns", "params.p"),
        run_script("query_experiments", "run", run.info.run_id),
        run_script("query_experiments", "runs", "-e", name + "-missing"),  # the name echoed in an error
    ]
    for res in outputs[:4]:
        assert res.code == 0, res.err
    assert outputs[4].code == 3
    for res in outputs:
        assert "\x1b" not in res.both and "\x07" not in res.both, repr(res.both[:800])
    exp_rows = [line for line in outputs[0].out.splitlines() if tag in line and line.startswith("|")]
    assert len(exp_rows) == 1 and exp_rows[0].startswith("|") and exp_rows[0].endswith("|")
    assert "\\x1b[2J\\x1b[31mred second line \\| pipe" in exp_rows[0]
    table = [line for line in outputs[1].out.splitlines() if line.startswith("|")]
    run_rows = [line for line in table if "title" in line]
    assert (
        len(table) == 3 and len(run_rows) == 1 and "\\x1b]0;title\\x07 next |" in run_rows[0]
    )  # header, rule, one row
    assert "\\x1b[1mbold" in outputs[2].out
    assert "\\x1b[2J" in outputs[4].err
