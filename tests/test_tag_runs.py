"""tag_runs.py (issue 25) through its main() against the real `server` fixture: tags and notes set
and unset, soft delete and restore, the same command twice writes once ("already so"), the undo
command it prints puts every run back, more than 20 runs need --yes, and on the basic-auth server
a READ-only user gets the server's 403 as one clear line (exit 5) with nothing changed.

Runs are seeded and checked with MLflow's own client, never with the script's output alone.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, READER_PASSWORD, READER_USER, unique
from reliability import assert_clean_error, credentials_env

SCRIPT = "tag_runs"
AUDIT = "mlflow_skill.audit"
NOTE = "mlflow.note.content"
WRITES = ("/runs/set-tag", "/runs/delete-tag", "/runs/delete", "/runs/restore")


def seed(client, n: int, prefix: str = "tagrun") -> tuple[str, str, list[str]]:
    name = unique(prefix)
    exp = client.create_experiment(name)
    ids = []
    for i in range(n):
        run = client.create_run(exp, run_name=f"r{i}")
        client.log_metric(run.info.run_id, "sharpe", float(i))
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return name, exp, ids


def undo_argv(out: str) -> list[list[str]]:
    """The undo commands the answer prints, as argv for main()."""
    commands = re.findall(r"^- `(uv run scripts/tag_runs\.py [^`]+)`$", out, re.M)
    return [shlex.split(c)[3:] for c in commands]


def test_tags_and_note_set_then_already_so_then_undone(run_script, client):
    _, _, ids = seed(client, 2)
    client.set_tag(ids[0], "stage", "draft")
    args = ["--run-id", ids[0], "--run-id", ids[1], "--set", "stage=reviewed", "--set", "reviewed=yes"]
    first = run_script(SCRIPT, *args, "--note", "edge gone after 2023")
    assert first.code == 0, first.err
    for rid in ids:
        tags = client.get_run(rid).data.tags
        assert tags["stage"] == "reviewed" and tags["reviewed"] == "yes" and tags[NOTE] == "edge gone after 2023"
        assert tags[AUDIT].startswith("tag_runs.py ") and "set tags.stage, tags.reviewed, note" in tags[AUDIT]
        assert "edge gone" not in tags[AUDIT]  # the audit names keys, never values
    assert "| draft | reviewed | changed |" in first.out
    audit_before = client.get_run(ids[0]).data.tags[AUDIT]

    second = run_script(SCRIPT, *args, "--note", "edge gone after 2023", "--format", "json")
    assert second.code == 0, second.err
    data = json.loads(second.out)
    assert data["written"] == 0 and data["already_so"] == 6 and data["undo"] == []
    assert {c["status"] for c in data["changes"]} == {"already so"}
    assert client.get_run(ids[0]).data.tags[AUDIT] == audit_before  # nothing was sent

    undos = undo_argv(first.out)
    assert len(undos) == 2  # run 0 had stage=draft, run 1 had no stage: two different undo commands
    for argv in undos:
        assert run_script(SCRIPT, *argv).code == 0
    tags0, tags1 = client.get_run(ids[0]).data.tags, client.get_run(ids[1]).data.tags
    assert tags0["stage"] == "draft" and "stage" not in tags1
    assert not {"reviewed", NOTE} & (set(tags0) | set(tags1))


def test_unset_a_tag_and_the_note(run_script, client):
    _, _, ids = seed(client, 1)
    client.set_tag(ids[0], "shortlist", "yes")
    client.set_tag(ids[0], NOTE, "old note")
    res = run_script(SCRIPT, ids[0], "--unset", "shortlist", "--unset", NOTE)
    assert res.code == 0, res.err
    tags = client.get_run(ids[0]).data.tags
    assert "shortlist" not in tags and NOTE not in tags
    assert f"--run-id {ids[0]} --set shortlist=yes --note 'old note'" in res.out
    again = run_script(SCRIPT, ids[0], "--unset", "shortlist", "--unset", NOTE)
    assert again.code == 0 and "already so: nothing written" in again.out


def test_filter_selects_counts_and_soft_delete_then_restore(run_script, client):
    name, _, ids = seed(client, 4)
    res = run_script(SCRIPT, "--experiment", name, "--filter", "metrics.sharpe >= 2", "--delete")
    assert res.code == 0, res.err
    assert "2 runs selected" in res.err and "2 to change" in res.err  # the count, before any write
    stages = {rid: client.get_run(rid).info.lifecycle_stage for rid in ids}
    assert [stages[r] for r in ids] == ["active", "active", "deleted", "deleted"]
    assert client.get_run(ids[2]).data.tags[AUDIT].endswith(": delete")

    again = run_script(SCRIPT, "--experiment", name, "--filter", "metrics.sharpe >= 2", "--delete")
    assert again.code == 0 and "already so: nothing written (2 unchanged)" in again.out

    refused = run_script(SCRIPT, "--run-id", ids[2], "--set", "x=1")  # deleted: MLflow changes no tags there
    assert_clean_error(refused, 2, "is deleted", "--restore")

    (undo,) = undo_argv(res.out)
    assert "--restore" in undo
    assert run_script(SCRIPT, *undo).code == 0
    assert {client.get_run(rid).info.lifecycle_stage for rid in ids} == {"active"}


def test_more_than_20_runs_need_yes(run_script, client, via_proxy):
    name, _, ids = seed(client, 21, "tagmany")
    res = run_script(SCRIPT, "--experiment", name, "--set", "batch=1", uri=via_proxy.uri)
    assert_clean_error(res, 2, "21 runs would change", "--yes")
    assert not [r for r in via_proxy.requests if r[1].endswith(WRITES)]
    assert "batch" not in client.get_run(ids[0]).data.tags
    ok = run_script(SCRIPT, "--experiment", name, "--set", "batch=1", "--yes")
    assert ok.code == 0, ok.err
    assert all(client.get_run(rid).data.tags.get("batch") == "1" for rid in ids)


def test_bad_input_is_one_line(run_script, client):
    _, _, ids = seed(client, 1)
    assert_clean_error(run_script(SCRIPT, ids[0]), 2, "nothing to do")
    assert_clean_error(run_script(SCRIPT, "--set", "a=1"), 2, "which runs")
    assert_clean_error(run_script(SCRIPT, ids[0], "--set", "a=1", "--unset", "a"), 2, "--set and --unset")
    assert_clean_error(run_script(SCRIPT, "0" * 32, "--set", "a=1"), 3, "no run with id")


def test_read_only_user_gets_the_403_as_one_line(run_script, auth_server):
    from mlflow.tracking import MlflowClient

    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        admin = MlflowClient(auth_server.uri)
        exp = admin.create_experiment(unique("tag-auth"))
        rid = admin.create_run(exp).info.run_id
    env = {"MLFLOW_TRACKING_USERNAME": READER_USER, "MLFLOW_TRACKING_PASSWORD": READER_PASSWORD}
    res = run_script(SCRIPT, rid, "--set", "reviewed=yes", uri=auth_server.uri, env=env)
    assert_clean_error(res, 5, "permission denied (403)")
    assert READER_PASSWORD not in res.both
    with credentials_env(ADMIN_USER, ADMIN_PASSWORD):
        assert "reviewed" not in MlflowClient(auth_server.uri).get_run(rid).data.tags


@pytest.mark.parametrize("fmt", ["json"])
def test_json_lists_every_change(run_script, client, fmt):
    _, _, ids = seed(client, 1)
    res = run_script(SCRIPT, ids[0], "--set", "k=v", "--format", fmt)
    data = json.loads(res.out)
    assert data["selected"] == 1 and data["written"] == 1 and data["audit_tag"] == AUDIT
    assert data["changes"] == [
        {"target": ids[0], "label": "r0", "field": "tags.k", "before": None, "after": "v", "status": "changed"}
    ]
    assert data["undo"] == [f"uv run scripts/tag_runs.py --run-id {ids[0]} --unset k"]
