"""Small helpers shared by the reliability tests (bad input, secrets, read-only, load, PostgreSQL).

Not a test module: imported by tests/test_bad_input.py, test_secrets.py, test_read_only.py,
test_load.py, test_production_server.py and test_export_interrupted.py.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

from conftest import SCRIPTS


def present(name: str) -> bool:
    """Whether scripts/<name>.py exists (scripts written by other issues may not yet)."""
    return (SCRIPTS / f"{name}.py").is_file()


def error_lines(err: str) -> list[str]:
    """stderr's lines without the `store:` line that precedes an error about a request."""
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[1:] if lines and lines[0].startswith("store: ") else lines


def assert_clean_error(res, code: int, *needles: str) -> None:
    """The documented exit code, one `error:` line on stderr (or argparse's usage + one error
    line), never a traceback, and the expected words in the message."""
    assert res.code == code, f"exit {res.code}, expected {code}\nstderr: {res.err}\nstdout: {res.out[:500]}"
    assert "Traceback" not in res.both, res.both
    lines = error_lines(res.err)
    assert lines, "no message on stderr"
    if lines[0].startswith("usage:"):  # argparse: the usage block, then one "prog: error: ..." line
        assert code == 2
        errors = [line for line in lines if ": error: " in line]
        assert len(errors) == 1 and lines[-1] == errors[0], res.err
        message = errors[0]
    else:
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{res.err[:2000]}"
        assert lines[0].startswith("error: "), lines[0][:300]
        message = lines[0]
    for needle in needles:
        assert needle.lower() in message.lower(), f"{needle!r} not in {message[:500]!r}"


def write_returns_csv(path: Path, n: int = 60, seed: int = 3) -> Path:
    """A small daily returns file for log_backtest.py."""
    import random

    rng = random.Random(seed)
    lines = ["date,returns"]
    for i in range(n):
        day = f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}"
        lines.append(f"{day},{rng.gauss(0.0005, 0.01):.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def credentials_env(username: str | None, password: str | None):
    """MLflow's own client (used only to seed data) reads credentials from the environment."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    try:
        for key, value in (("MLFLOW_TRACKING_USERNAME", username), ("MLFLOW_TRACKING_PASSWORD", password)):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_trace(uri: str, experiment_name: str, auth: tuple[str, str] | None = None) -> tuple[str, str]:
    """One small trace (agent -> tool) logged with MLflow's tracing API; (experiment id, trace id)."""
    from test_traces import mlflow_target

    with credentials_env(*(auth or (None, None))), mlflow_target(uri, experiment_name) as (mlflow, exp_id):

        @mlflow.trace(name="agent", span_type="AGENT")
        def agent(question: str) -> str:
            with mlflow.start_span(name="tool", span_type="TOOL") as span:
                span.set_inputs({"q": question})
                span.set_outputs("42")
            return "42"

        agent("what is six times seven")
        trace_id = mlflow.get_last_active_trace_id()
    return exp_id, trace_id


def same_number(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
