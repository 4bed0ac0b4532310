"""One liveness rule (scripts/mlflow_skill/runs/liveness.py) behind `failed` and `health`: a metric
stamped in the future does not keep a run alive, and a run whose writer on this host is dead is
listed at once, whatever its age."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from mlflow_skill.runs import liveness

from conftest import unique

HOUR_MS = 3_600_000
SCRIPT = "query_experiments"


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def run_dict(status="RUNNING", start=0, stamps=(), writer=None) -> dict:
    tags = [{"key": liveness.WRITER_TAG, "value": writer}] if writer else []
    metrics = [{"key": f"m{i}", "value": 1.0, "timestamp": t} for i, t in enumerate(stamps)]
    return {"info": {"run_id": "r", "status": status, "start_time": start}, "data": {"metrics": metrics, "tags": tags}}


def test_future_stamps_are_ignored_and_idle_runs_are_stale():
    now = 10 * HOUR_MS
    verdict = liveness.judge(run_dict(start=now - 2 * HOUR_MS, stamps=[now + 5 * HOUR_MS]), HOUR_MS, now)
    assert verdict.state == liveness.STALE and verdict.idle_ms == 2 * HOUR_MS
    fresh = liveness.judge(run_dict(start=now - 2 * HOUR_MS, stamps=[now - 60_000]), HOUR_MS, now)
    assert fresh.state == liveness.ALIVE
    assert liveness.judge(run_dict(status="FINISHED", start=0), HOUR_MS, now).state == liveness.ALIVE


def test_dead_writer_on_this_host_is_gone_at_once_and_other_hosts_wait_for_the_threshold():
    now = liveness.now_ms()
    dead = f"host={socket.gethostname()} pid={dead_pid()} started=x"
    verdict = liveness.judge(run_dict(start=now - 1000, writer=dead), HOUR_MS, now)
    assert verdict.state == liveness.WRITER_GONE and "is gone" in verdict.reason
    elsewhere = f"host=not-{socket.gethostname()} pid=1 started=x"
    assert liveness.judge(run_dict(start=now - 1000, writer=elsewhere), HOUR_MS, now).state == liveness.ALIVE


@pytest.fixture(scope="module")
def seeded(client):
    name = unique("liveness")
    exp_id = client.create_experiment(name)
    now = int(time.time() * 1000)
    ids = {}
    future = client.create_run(exp_id, start_time=now - 2 * HOUR_MS, run_name="future-stamp")
    client.log_metric(future.info.run_id, "loss", 0.5, timestamp=now + 10 * HOUR_MS, step=1)
    ids["future"] = future.info.run_id
    killed = client.create_run(exp_id, start_time=now - 60_000, run_name="killed-writer")
    client.set_tag(killed.info.run_id, liveness.WRITER_TAG, f"host={socket.gethostname()} pid={dead_pid()} started=x")
    client.log_metric(killed.info.run_id, "loss", 0.4, timestamp=now, step=1)
    ids["killed"] = killed.info.run_id
    busy = client.create_run(exp_id, start_time=now - 60_000, run_name="busy")
    client.log_metric(busy.info.run_id, "loss", 0.3, timestamp=now, step=1)
    ids["busy"] = busy.info.run_id
    return name, ids


def test_failed_and_health_judge_the_same_runs(run_script, seeded):
    name, ids = seeded
    failed = run_script(SCRIPT, "failed", "--experiment", name, "--format", "json")
    assert failed.code == 0, failed.err
    listed = {r["run_id"]: r for r in json.loads(failed.out)["runs"]}
    health = run_script(SCRIPT, "health", "--experiment", name, "--format", "json")
    assert health.code == 0, health.err
    stale = {rid for f in json.loads(health.out)["findings"] if f["kind"] == "stale" for rid in f["run_ids"]}
    assert set(listed) == stale == {ids["future"], ids["killed"]}
    assert listed[ids["killed"]]["abandoned"] == liveness.WRITER_GONE
    assert listed[ids["future"]]["abandoned"] == liveness.STALE
    md = run_script(SCRIPT, "failed", "--experiment", name)
    assert "RUNNING (writer gone" in md.out and "RUNNING (stale, no write for 2h" in md.out
