"""A server that stops answering in the middle of a multi-page export (--page-size 2): exit 4,
one line, and no output file nor temp file left behind; a later export succeeds and is whole.
The same for get_metric_history --full --output cut after its first request.
"""

from __future__ import annotations

import csv
import json
import time

import pytest

from conftest import unique
from faultproxy import FaultProxy
from reliability import assert_clean_error

N = 10


@pytest.fixture(scope="module")
def exp(client):
    from mlflow.entities import Metric, Param

    name = unique("export-cut")
    exp_id = client.create_experiment(name)
    ids = []
    for i in range(N):
        rid = client.create_run(exp_id, run_name=f"cut-{i}").info.run_id
        client.log_batch(rid, metrics=[Metric("m", float(i), 0, s) for s in range(3)], params=[Param("i", str(i))])
        client.set_terminated(rid)
        ids.append(rid)
    return {"name": name, "ids": ids}


@pytest.fixture
def proxy(server):
    p = FaultProxy(server.uri)
    yield p
    p.close()


@pytest.mark.parametrize("suffix, passed", [(".csv", 3), (".json", 4), (".csv", 1)])
def test_export_cut_midway_leaves_nothing(run_script, exp, proxy, tmp_path, suffix, passed):
    """`passed` requests get through (1: only the experiment look-up; 3 and 4: some pages too)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / f"runs{suffix}"
    proxy.reset("refuse_after", fault_count=passed)
    started = time.time()
    res = run_script(
        "query_experiments", "export", "-e", exp["name"], "--page-size", "2", "--output", str(target), uri=proxy.uri
    )
    assert_clean_error(res, 4, "not reachable")
    assert time.time() - started < 15
    searches = [p for _, p, s in proxy.requests if "runs/search" in p and s == 200]
    assert len(searches) == max(0, passed - 1)  # pages fetched before the cut
    assert list(out_dir.iterdir()) == []  # no file, no temp file
    proxy.reset()  # the server is back: the same command now writes every run
    res = run_script(
        "query_experiments", "export", "-e", exp["name"], "--page-size", "2", "--output", str(target), uri=proxy.uri
    )
    assert res.code == 0, res.err
    if suffix == ".csv":
        got = [row["run_id"] for row in csv.DictReader(target.open())]
    else:
        got = [r["run_id"] for r in json.loads(target.read_text())]
    assert sorted(got) == sorted(exp["ids"])
    assert [p.name for p in out_dir.iterdir()] == [target.name]


def test_export_with_existing_file_and_force_keeps_old_file_when_cut(run_script, exp, proxy, tmp_path):
    """--force over an existing file: a cut export leaves the old file exactly as it was."""
    target = tmp_path / "runs.csv"
    target.write_text("old,content\n")
    proxy.reset("refuse_after", fault_count=2)
    res = run_script(
        "query_experiments",
        "export",
        "-e",
        exp["name"],
        "--page-size",
        "2",
        "--output",
        str(target),
        "--force",
        uri=proxy.uri,
    )
    assert_clean_error(res, 4)
    assert target.read_text() == "old,content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_metric_history_output_cut_leaves_nothing(run_script, exp, proxy, tmp_path):
    target = tmp_path / "m.csv"
    proxy.reset("refuse_after", fault_count=1)  # the run look-up passes, the history read is cut
    res = run_script(
        "get_metric_history",
        "--run-id",
        exp["ids"][0],
        "--metrics",
        "m",
        "--full",
        "--output",
        str(target),
        uri=proxy.uri,
    )
    assert_clean_error(res, 4, "not reachable")
    assert list(tmp_path.iterdir()) == []
