"""get_metric_history.py --follow against runs that are being written while it follows.

A background writer (a thread logging with MLflow's client to the `server` fixture, or to an
embedded sqlite store) plays the training; the follow runs through the script's main(). Runs are
small and --every is 1 s (the least: at most one request a second per run), so each test takes
a few seconds.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field

import pytest

from conftest import unique

PARENT_TAG = "mlflow.parentRunId"


@dataclass
class Writer:
    """Logs `values(step)` for each metric every `pause` seconds, then ends the run with `status`
    (None: leaves it RUNNING, a writer that died). `stop` ends it early, as a crash would."""

    client: object
    run_id: str
    steps: int
    values: dict  # metric -> function of the step
    pause: float = 0.1
    status: str | None = "FINISHED"
    stop: threading.Event = field(default_factory=threading.Event)
    logged: dict = field(default_factory=dict)  # step -> wall time it was logged

    def run(self) -> None:
        from mlflow.entities import Metric

        for step in range(self.steps):
            if self.stop.is_set():
                return
            now = int(time.time() * 1000)
            metrics = [Metric(k, float(fn(step)), now, step) for k, fn in self.values.items()]
            self.client.log_batch(self.run_id, metrics=metrics)
            self.logged[step] = time.monotonic()
            time.sleep(self.pause)
        if self.status:
            self.client.update_run(self.run_id, status=self.status)  # set_terminated prints to stdout

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


def new_run(client, name: str = "train", experiment: str | None = None, tags: dict | None = None) -> str:
    exp = experiment or client.create_experiment(unique("follow"))
    return client.create_run(exp, run_name=name, tags=tags or {}).info.run_id


def loss(step: int) -> float:
    return 2.0 / (1 + step)


def follow(run_script, *args, **kw):
    return run_script("get_metric_history", *args, "--follow", "--every", "1", **kw)


def test_follow_returns_when_the_run_finishes_with_a_small_summary(run_script, client):
    rid = new_run(client)
    writer = Writer(client, rid, 30, {"loss": loss, "acc": lambda s: s / 30})
    thread = writer.start()
    started = time.monotonic()
    res = follow(run_script, "--run-id", rid)
    thread.join(10)
    assert res.code == 0, res.both
    assert time.monotonic() - started < 15
    out = res.out
    assert len(out.encode()) < 4096, out
    assert "the run ended FINISHED" in out and "anomalies: none" in out
    assert "loss 0.06667 at step 29" in out  # the last step and value
    assert "best 0.06667 at step 29 (lower is better" in out
    assert "acc 0.9667 at step 29; best 0.9667 at step 29 (higher is better" in out
    assert "trend: falling" in out and "improving" in out
    assert "exact: all 30 points" in out  # the default view's honest figures, read at the end
    assert "min 0.06667 at step 29 · max 2 at step 0" in out
    assert "follow " in res.err and "follow " not in out  # progress on stderr only
    progress = [line for line in res.err.splitlines() if line.startswith("follow ")]
    assert 1 <= len(progress) <= 3  # the first line, then at most one per 30 s


def test_follow_json_counts_requests_and_stays_under_one_a_second(run_script, client):
    rid = new_run(client)
    writer = Writer(client, rid, 25, {"loss": loss}, pause=0.15)
    thread = writer.start()
    res = follow(run_script, "--run-id", rid, "--metrics", "loss", "--format", "json")
    thread.join(10)
    assert res.code == 0, res.both
    data = json.loads(res.out)
    assert data["outcome"] == "ended" and data["mode"] == "run"
    assert data["requests"] <= data["followed_s"] + 1  # paced: one request a second for one run
    assert data["polls"] >= 2
    (run,) = data["runs"]
    assert run["status"] == "FINISHED" and run["last_step"] == 24
    assert run["metrics"]["loss"]["points"] == 25  # every point, read a window at a time
    assert run["metrics"]["loss"]["best"] == {"step": 24, "value": loss(24)}
    (series,) = data["series"]
    assert series["exact"] and series["points"] == 25 and series["last"]["step"] == 24


def test_fail_on_anomaly_returns_seven_within_seconds_of_a_nan(run_script, client):
    rid = new_run(client)
    nan_step = 8
    writer = Writer(client, rid, 300, {"loss": lambda s: math.nan if s == nan_step else loss(s)}, pause=0.1)
    thread = writer.start()
    try:
        res = follow(run_script, "--run-id", rid, "--fail-on-anomaly")
        returned = time.monotonic()
        assert res.code == 7, res.both
        assert returned - writer.logged[nan_step] < 6  # within seconds of the NaN being logged
        assert client.get_run(rid).info.status == "RUNNING"  # while the run is still going
    finally:
        writer.stop.set()
        thread.join(10)
    assert "error: anomaly while following (--fail-on-anomaly): NaN/inf" in res.err
    assert f"loss = NaN at step {nan_step}" in res.out and "stopped at the first anomaly" in res.out
    assert "Traceback" not in res.err


def test_a_stalled_writer_is_named_and_not_waited_for(run_script, client):
    rid = new_run(client)
    writer = Writer(client, rid, 4, {"loss": loss}, pause=0.05, status=None)  # dies without ending the run
    writer.run()
    started = time.monotonic()
    res = follow(run_script, "--run-id", rid, "--stall", "3s")
    assert res.code == 0, res.both
    assert time.monotonic() - started < 12
    assert "stall: train: RUNNING with no write for" in res.out and "(--stall 3.0s)" in res.out
    assert "stopped waiting: the run stalled, still RUNNING" in res.out
    res = follow(run_script, "--run-id", rid, "--stall", "3s", "--fail-on-anomaly")
    assert res.code == 7 and "stall" in res.err


def test_deadline_exits_four_saying_the_run_is_still_going(run_script, client):
    rid = new_run(client)
    writer = Writer(client, rid, 400, {"loss": loss}, pause=0.1)
    thread = writer.start()
    try:
        started = time.monotonic()
        res = follow(run_script, "--run-id", rid, "--deadline", "3s")
        assert time.monotonic() - started < 8
    finally:
        writer.stop.set()
        thread.join(10)
    assert res.code == 4, res.both
    assert "error: --deadline 3.0s reached; still going: train" in res.err
    assert "--deadline 3.0s reached; still going: train" in res.out and ": RUNNING" in res.out
    assert "loss " in res.out and "Traceback" not in res.err


def test_a_sweep_parent_is_followed_with_its_leader_and_laggards(run_script, client):
    exp = client.create_experiment(unique("follow-sweep"))
    parent = new_run(client, "sweep", exp)
    rates = {"lr-0.1": 0.5, "lr-0.01": 0.2, "lr-0.001": 0.05}
    kids = {name: new_run(client, name, exp, {PARENT_TAG: parent}) for name in rates}

    def train():
        from mlflow.entities import Metric

        for step in range(12):
            for name, rid in kids.items():
                value = math.exp(-rates[name] * step)
                client.log_batch(rid, metrics=[Metric("val_loss", value, int(time.time() * 1000), step)])
            time.sleep(0.15)
        for name, rid in kids.items():
            client.update_run(rid, status="FAILED" if name == "lr-0.001" else "FINISHED")
        client.update_run(parent, status="FINISHED")

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    res = follow(run_script, "--run-id", parent)
    thread.join(10)
    assert res.code == 0, res.both
    out = res.out
    assert len(out.encode()) < 4096, out
    assert "Followed sweep **sweep**" in out and "3 children" in out
    assert "all 3 runs ended (parent FINISHED)" in out
    assert "leader: **lr-0.1**: val_loss" in out
    assert "laggards (by best val_loss, worst first): lr-0.001 0.5769, lr-0.01" in out
    assert "ended FAILED/KILLED: lr-0.001: the run ended FAILED" in out
    assert "val_loss: the default view's figures for these runs" in out
    res = follow(run_script, "--run-id", parent, "--fail-on-anomaly", "--format", "json")
    assert res.code == 7
    data = json.loads(res.out)
    assert data["mode"] == "sweep" and data["leader"] == kids["lr-0.1"] and data["laggards"][0] == kids["lr-0.001"]


def test_a_child_that_appears_with_a_long_history_is_read_whole(run_script, client):
    """More points than one sampled answer holds (2,500) between two polls: read again whole."""
    from mlflow.entities import Metric

    exp = client.create_experiment(unique("follow-late-child"))
    parent = new_run(client, "sweep", exp)
    early = new_run(client, "early", exp, {PARENT_TAG: parent})
    client.log_batch(early, metrics=[Metric("loss", 1.0, 0, 0)])
    client.update_run(early, status="FINISHED")

    def late_child():
        time.sleep(1.5)
        late = new_run(client, "late", exp)
        points = [Metric("loss", 1 / (1 + s), 1000 + s, s) for s in range(3000)]
        for start in range(0, len(points), 1000):
            client.log_batch(late, metrics=points[start : start + 1000])
        client.update_run(late, status="FINISHED")
        client.set_tag(late, PARENT_TAG, parent)  # a child with all 3,000 points at once
        client.update_run(parent, status="FINISHED")

    thread = threading.Thread(target=late_child, daemon=True)
    thread.start()
    res = follow(run_script, "--run-id", parent, "--format", "json")
    thread.join(10)
    assert res.code == 0, res.both
    data = json.loads(res.out)
    late = next(r for r in data["runs"] if r["run_name"] == "late")
    assert late["metrics"]["loss"]["points"] == 3000 and late["last_step"] == 2999
    assert late["metrics"]["loss"]["best"] == {"step": 2999, "value": 1 / 3000}
    assert data["leader"] == late["run_id"]


def test_several_finished_runs_return_at_once_with_anomalies_from_the_first_read(run_script, client):
    from mlflow.entities import Metric

    exp = client.create_experiment(unique("follow-several"))
    good, bad = new_run(client, "good", exp), new_run(client, "bad", exp)
    t0 = int(time.time() * 1000)
    client.log_batch(good, metrics=[Metric("loss", loss(s), t0 + s, s) for s in range(40)])
    # falls from 2 to 0.1, then climbs back to 4: diverging by health's rule (4 - 0.1 > 1 x (2 - 0.1))
    values = [2 - 0.1 * s for s in range(20)] + [0.1 + 0.2 * s for s in range(1, 21)]
    client.log_batch(bad, metrics=[Metric("loss", v, t0 + s, s) for s, v in enumerate(values)])
    for rid in (good, bad):
        client.update_run(rid, status="FINISHED")
    res = run_script("get_metric_history", "--run-id", good, bad, "--follow", "--patience", "10")
    assert res.code == 0, res.both
    assert "## Followed 2 runs" in res.out and "all 2 runs ended" in res.out
    assert "leader: **good**" in res.out
    assert "diverging: bad: loss at 4.1 (step 39) is 4 above its minimum 0.1 at step 19" in res.out
    assert "plateau: bad: loss: no better value for 20 steps" in res.out
    assert "requests" in res.out and res.out.count("\n") < 40
    res = run_script("get_metric_history", "--run-id", good, bad, "--follow", "--format", "csv")
    assert res.code == 0, res.both
    rows = res.out.splitlines()
    assert rows[0].startswith("run_id,run_name,status,metric,last_step,last_value,best_step,best_value,trend")
    assert rows[1].startswith(f"{good},good,FINISHED,loss,39,0.05,39,0.05,improving")
    assert rows[2].startswith(f"{bad},bad,FINISHED,loss,39,4.1") and len(rows) == 3


def test_the_summary_stays_small_with_many_metrics_and_long_histories(run_script, client):
    from mlflow.entities import Metric

    rid = new_run(client)
    names = [f"metric_{i:02d}" for i in range(14)]  # past the default cap of 12
    t0 = int(time.time() * 1000)
    points = [Metric(k, math.sin(s / 50 + i), t0 + s, s) for i, k in enumerate(names) for s in range(400)]
    for start in range(0, len(points), 1000):
        client.log_batch(rid, metrics=points[start : start + 1000])
    client.update_run(rid, status="FINISHED")
    res = run_script("get_metric_history", "--run-id", rid, "--follow")
    assert res.code == 0, res.both
    assert len(res.out.encode()) < 6000, len(res.out.encode())
    assert "### 12 metrics: now, then the default view's figures" in res.out
    assert "- **metric_11**: now: " in res.out and "metric_12" not in res.out
    assert "2 more metrics not followed" in res.out
    assert "exact: all 400 points" in res.out


@pytest.mark.slow  # creating a fresh sqlite store (MLflow's migrations) takes most of its 15 s
def test_embedded_store(run_script, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    local = MlflowClient(tracking_uri=uri)
    rid = local.create_run(local.create_experiment("local"), run_name="local").info.run_id
    writer = Writer(local, rid, 20, {"loss": loss}, pause=0.1)
    thread = writer.start()
    res = follow(run_script, "--run-id", rid, uri=None, env={"MLFLOW_TRACKING_URI": uri}, cwd=tmp_path)
    thread.join(10)
    assert res.code == 0, res.both
    assert "store: sqlite:///" in res.out and "the run ended FINISHED" in res.out
    assert "loss 0.09524 at step 20" not in res.out and "at step 19" in res.out


def test_a_server_that_goes_away_is_said_once_then_exit_four(run_script, client, via_proxy):
    rid = new_run(client)

    def cut_later():
        time.sleep(2.5)
        via_proxy.reset("refuse_after", fault_count=0)  # every connection cut from now on

    cutter = threading.Thread(target=cut_later, daemon=True)
    cutter.start()
    started = time.monotonic()
    res = follow(run_script, "--run-id", rid, uri=via_proxy.uri, env={"MLFLOW_SKILL_HTTP_RETRIES": "1"})
    cutter.join()
    assert res.code == 4, res.both
    assert time.monotonic() - started < 20
    assert res.err.count("stopped answering") == 1
    assert "error: lost http://127.0.0.1" in res.err and "run the same command again" in res.err
    assert "lost the store after" in res.out and "Traceback" not in res.err


def test_uv_run_keeps_stdout_for_the_summary(uv_run, client):
    """As an agent runs it: stdout parses as JSON, the progress went to stderr."""
    rid = new_run(client)
    writer = Writer(client, rid, 10, {"loss": loss}, pause=0.1)
    thread = writer.start()
    res = uv_run("get_metric_history", "--run-id", rid, "--follow", "--every", "1", "--format", "json")
    thread.join(10)
    assert res.code == 0, res.both
    data = json.loads(res.out)
    assert data["outcome"] == "ended" and data["runs"][0]["last_step"] == 9
    assert "follow " in res.err and "store: http://127.0.0.1" in res.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "0.5"], "at least 1 second"),
        (["--deadline", "soon"], "is not a duration"),
        (["--patience", "0"], "--patience"),
        (["--plot", "x.png"], "--plot reads a finished run"),
    ],
)
def test_follow_usage_errors(run_script, args, message):
    res = run_script("get_metric_history", "--run-id", "abc", "--follow", *args)
    assert res.code == 2 and message in res.err and "Traceback" not in res.err


def test_follow_flags_without_follow_are_refused(run_script):
    res = run_script("get_metric_history", "--run-id", "abc", "--fail-on-anomaly")
    assert res.code == 2 and "add --follow" in res.err
