"""Odd corners, round 2 (issue 22): deleted experiments read by name, fields that try to forge a
line, secret-looking query parameters, and known conditions that used to exit 1 (an unwritable
--output or --plot, a .env.local that is not UTF-8 or has 50,000 lines, 1,000 nested parentheses,
a sparkline of values near the float limit, a sqlite store with a hot journal). Each is driven
through a script's entry point against the real MLflow server fixture or the embedded store.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile import API, Hostile

from conftest import unique
from reliability import assert_clean_error

FORGED = "error: forged line"
BIDI = "\u202e"


# ---------------------------------------------------------------------------------------------
# 4. A deleted experiment read by name is named as deleted, in every command
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gone(client):
    name = unique("gone")
    eid = client.create_experiment(name)
    run = client.create_run(eid, run_name="was-here")
    client.log_metric(run.info.run_id, "sharpe", 1.5)
    client.set_terminated(run.info.run_id)
    client.delete_experiment(eid)
    return name, eid, run.info.run_id


@pytest.mark.parametrize(
    "script,args",
    [
        ("query_experiments", ["runs", "-e", "{name}"]),
        ("query_experiments", ["runs", "-e", "{eid}"]),
        ("query_experiments", ["export", "-e", "{name}", "--output", "{tmp}/x.csv"]),
        ("query_experiments", ["best", "-e", "{name}", "--metric", "sharpe"]),
        ("query_experiments", ["failed", "-e", "{name}"]),
        ("query_experiments", ["health", "-e", "{name}"]),
        ("search_traces", ["--experiment", "{name}"]),
    ],
    ids=["runs", "runs-by-id", "export", "best", "failed", "health", "search_traces"],
)
def test_deleted_experiment_is_named_as_deleted(run_script, gone, tmp_path, script, args):
    name, eid, _ = gone
    res = run_script(script, *[a.format(name=name, eid=eid, tmp=tmp_path) for a in args])
    assert_clean_error(res, 3, f"experiment {name!r} (id {eid}) is deleted", "--restore", "--view deleted")
    assert res.out == ""
    assert not (tmp_path / "x.csv").exists()


def test_deleted_experiment_runs_are_still_readable_on_request(run_script, gone):
    name, _, run_id = gone
    res = run_script("query_experiments", "runs", "-e", name, "--view", "deleted", "--format", "json")
    assert res.code == 0, res.err
    assert [r["run_id"] for r in json.loads(res.out)["runs"]] == [run_id]
    res = run_script("query_experiments", "run", run_id)  # a run of a deleted experiment still describes
    assert res.code == 0, res.err


# ---------------------------------------------------------------------------------------------
# 5. No field can forge a line; bidi controls are shown escaped
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forged(client):
    exp = unique("forge")
    eid = client.create_experiment(f"{exp}\n{FORGED} (experiment){BIDI}", tags={"note": f"n\n{FORGED} (exp tag)"})
    ok = client.create_run(eid, run_name=f"r\n{FORGED} (run name){BIDI}gnp.exe")
    client.log_param(ok.info.run_id, "p", f"v\n{FORGED} (param)")
    client.set_tag(ok.info.run_id, "t", f"v\n{FORGED} (tag)")
    client.log_metric(ok.info.run_id, "sharpe", 1.0)
    client.set_terminated(ok.info.run_id)
    bad = client.create_run(eid, run_name=f"f\r\n{FORGED} (failed run)\u2028{FORGED} (u2028)")
    client.set_tag(bad.info.run_id, "mlflow.note.content", f"\n{FORGED} (note)")
    client.log_metric(bad.info.run_id, "sharpe", 0.5)
    client.set_terminated(bad.info.run_id, status="FAILED")
    return exp, eid, ok.info.run_id, bad.info.run_id


def forged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip(" |*>-`").startswith(FORGED) or BIDI in line]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "{ok}"],
        ["run", "{bad}", "--all-tags"],
        ["runs", "-e", "{eid}", "--columns", "params.p,tags.t"],
        ["experiments", "--name-like", "{exp}"],
        ["best", "-e", "{eid}", "--metric", "sharpe"],
        ["compare", "{ok}", "{bad}", "--all", "--all-tags"],
        ["failed", "-e", "{eid}"],
        ["health", "-e", "{eid}"],
        ["aggregate", "-e", "{eid}", "--group-by", "params.p", "--metric", "sharpe", "--include-unfinished"],
    ],
    ids=["run", "run-failed", "runs", "experiments", "best", "compare", "failed", "health", "aggregate"],
)
def test_no_field_can_forge_a_line(run_script, forged, args):
    exp, eid, ok, bad = forged
    res = run_script("query_experiments", *[a.format(exp=exp, eid=eid, ok=ok, bad=bad) for a in args])
    assert res.code == 0, res.err
    assert not forged_lines(res.out) and not forged_lines(res.err), res.out
    assert "\u2028" not in res.out and BIDI not in res.out


def test_forged_run_name_shows_escaped_in_the_header(run_script, forged):
    _, _, ok, _ = forged
    res = run_script("query_experiments", "run", ok)
    header = res.out.splitlines()[2]
    assert header.startswith(f"**r\\n{FORGED} (run name)\\u202egnp.exe** · {ok}"), header
    res = run_script("query_experiments", "run", ok, "--format", "json")
    assert json.loads(res.out)["run_name"] == f"r\n{FORGED} (run name){BIDI}gnp.exe"  # data unchanged


# ---------------------------------------------------------------------------------------------
# 6. Every query-string value is masked where a URI is shown, and sent unchanged
# ---------------------------------------------------------------------------------------------
QUERY_SECRETS = {"api-key": "Sk-ApiKey-41a7", "jwt": "eyJhbGc.jwt-9f3", "pat": "ghp_pat_77c1", "session": "Sess-5e2d"}
QUERY_SECRETS["sig"] = "Sig-0b9a"


def test_secret_looking_query_parameters_are_masked_and_sent(run_script, proxy, client, tmp_path):
    exp = unique("qmask")
    client.create_experiment(exp)
    query = "&".join(f"{k}={v}" for k, v in QUERY_SECRETS.items())
    uri = f"{proxy.uri}/?{query}&team=quant"
    proxy.reset()
    ok = run_script("query_experiments", "runs", "-e", exp, uri=uri)
    assert ok.code == 0, ok.err
    shown = "&".join(f"{k}=***" for k in QUERY_SECRETS) + "&team=***"
    assert ok.out.startswith(f"store: {proxy.uri}?{shown} (MLFLOW_TRACKING_URI from environment)")
    assert all(all(f"{k}={v}" in path for k, v in QUERY_SECRETS.items()) for _, path, _ in proxy.requests)
    dead = run_script(
        "query_experiments", "runs", "-e", exp, "--debug", uri=uri.replace(proxy.uri, "http://127.0.0.1:9")
    )
    assert dead.code == 4 and "Traceback" in dead.err
    proxy.reset("status", status=500, fault_count=10)
    failing = run_script("query_experiments", "runs", "-e", exp, "--debug", uri=uri)
    proxy.reset()
    assert failing.code == 6
    for res in (ok, dead, failing):
        for secret in QUERY_SECRETS.values():
            assert secret not in res.both, (secret, res.both[-3000:])


# ---------------------------------------------------------------------------------------------
# 7. Known conditions: a documented code and a line naming the fix, never exit 1
# ---------------------------------------------------------------------------------------------
def test_output_into_an_unwritable_folder_is_a_usage_error(run_script, client):
    exp = unique("out")
    client.create_experiment(exp)
    res = run_script("query_experiments", "export", "-e", exp, "--output", "/sys/runs.csv")
    assert_clean_error(res, 2, "cannot write /sys/runs.csv", "permission denied", "--output path")


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_output_onto_a_folder_is_a_usage_error(run_script, client, tmp_path, force):
    exp = unique("out")
    client.create_experiment(exp)
    folder = tmp_path / "runs.csv"
    folder.mkdir()
    res = run_script("query_experiments", "export", "-e", exp, "--output", folder, *force)
    assert_clean_error(res, 2, f"--output {folder} is a folder", "name a file inside it")


def test_plot_into_a_folder_or_an_unwritable_one_is_a_usage_error(run_script, client, tmp_path):
    exp = client.create_experiment(unique("plot"))
    run = client.create_run(exp)
    for step in range(5):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    args = ("get_metric_history", "--run-id", run.info.run_id, "--metrics", "loss")
    folder = tmp_path / "loss.png"
    folder.mkdir()
    res = run_script(*args, "--plot", folder, "--force")
    assert_clean_error(res, 2, f"--plot {folder} is a folder")
    res = run_script(*args, "--plot", "/sys/loss.png")
    assert_clean_error(res, 2, "cannot write /sys/loss.png", "permission denied", "--plot path")


def test_env_local_that_is_not_utf8_is_named(run_script, tmp_path):
    envdir = tmp_path / "env"
    envdir.mkdir()
    (envdir / ".env.local").write_bytes(b"MLFLOW_TRACKING_URI=http://127.0.0.1:9\nNOTE=caf\xe9\n")
    res = run_script("query_experiments", "experiments", uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(envdir)})
    assert_clean_error(res, 2, f"{envdir / '.env.local'} is not UTF-8", "byte 0xe9", "save it as UTF-8")


def test_env_local_with_50000_lines_reads_in_a_second(run_script, server, tmp_path):
    envdir = tmp_path / "env"
    envdir.mkdir()
    lines = [f"UNRELATED_{i}=value-{i}" for i in range(50_000)]
    lines += [f"MLFLOW_TRACKING_URI={server.uri}", "EXPANDED=${MLFLOW_TRACKING_URI}/x"]
    (envdir / ".env.local").write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    res = run_script("query_experiments", "experiments", "-n", "1", uri=None, env={"MLFLOW_SKILL_ENV_DIR": str(envdir)})
    assert res.code == 0, res.err
    assert time.monotonic() - start < 10  # 40 s before (dotenv's variable pass is quadratic)
    assert f"store: {server.uri} (MLFLOW_TRACKING_URI from .env.local" in res.out


def test_env_local_variables_still_expand(tmp_path):
    from mlflow_skill.core.config import read_dotenv

    path = tmp_path / ".env.local"
    path.write_text('A=1\nB="${A}x"\nC=${MISSING:-fallback}\nexport D=plain\n')
    assert read_dotenv(path) == {"A": "1", "B": "1x", "C": "fallback", "D": "plain"}


@pytest.mark.parametrize("depth,code", [(1000, 2), (400, 0)])
def test_deeply_nested_filter_is_a_usage_error(run_script, client, depth, code):
    exp = unique("nest")
    client.create_experiment(exp)
    flt = "(" * depth + "params.a = '1'" + ")" * depth
    res = run_script("query_experiments", "runs", "-e", exp, "--filter", flt)
    if code:
        assert_clean_error(res, 2, "--filter nests parentheses too deeply", "flatten it")
    else:
        assert res.code == 0, res.err


# ---------------------------------------------------------------------------------------------
# The sparkline of values near the float limit (hi - lo overflowed: ValueError, exit 1)
# ---------------------------------------------------------------------------------------------
def test_history_near_the_float_limit_draws(run_script, client):
    run = client.create_run(client.create_experiment(unique("huge")))
    for step, value in enumerate([1.7e308, -1.7e308, 0.0, 1.79e308, -1.79e308, 3.0]):
        client.log_metric(run.info.run_id, "x", value, step=step)
    res = run_script("get_metric_history", "--run-id", run.info.run_id, "--metrics", "x")
    assert res.code == 0, res.err
    assert "█" in res.out and "▁" in res.out


# ---------------------------------------------------------------------------------------------
# 9. A hot journal (a write killed mid-transaction) is rolled back, not called damage
# ---------------------------------------------------------------------------------------------
def kill_mid_write(db: Path) -> None:
    """A process that spills a big uncommitted transaction into the file, then dies by SIGKILL:
    the `-journal` it leaves is hot (a read-only open cannot use the file until it is rolled back)."""
    code = (
        "import sqlite3, sys, time\n"
        f"con = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "con.execute('PRAGMA cache_size=1')\n"
        "con.execute('BEGIN IMMEDIATE')\n"
        "con.execute('CREATE TABLE junk AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 20000) SELECT i, hex(randomblob(64)) AS b FROM n')\n"
        "con.execute(\"UPDATE experiments SET name = name || '-changed'\")\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_hot_journal_is_rolled_back_and_the_store_reads(run_script, tmp_path):
    made = run_script("create_experiment", "--name", "journal-demo", uri=None, cwd=tmp_path)
    assert made.code == 0, made.err
    db = tmp_path / "mlflow.db"
    kill_mid_write(db)
    journal = tmp_path / "mlflow.db-journal"
    assert journal.is_file() and journal.stat().st_size > 0
    with pytest.raises(sqlite3.OperationalError):  # what the old check met: "attempt to write a readonly database"
        sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute("SELECT name FROM sqlite_master").fetchall()
    res = run_script("query_experiments", "experiments", "--format", "json", uri=None, cwd=tmp_path)
    assert res.code == 0, res.err
    names = [e["name"] for e in json.loads(res.out)["experiments"]]
    assert "journal-demo" in names and not any(n.endswith("-changed") for n in names)
    with sqlite3.connect(db) as con:  # the last commit, intact: the killed transaction is gone
        assert not con.execute("SELECT name FROM sqlite_master WHERE name = 'junk'").fetchall()
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_damaged_store_keeps_its_advice(run_script, tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 200)
    (tmp_path / "mlflow.db-journal").write_bytes(b"nor is this a journal" * 50)
    res = run_script("query_experiments", "experiments", uri=None, cwd=tmp_path)
    assert_clean_error(res, 6, "is not a usable sqlite database", "move the file away")


# ---------------------------------------------------------------------------------------------
# 10. --spreadsheet-safe: opt-in; the default stays MLflow's bytes
# ---------------------------------------------------------------------------------------------
def test_spreadsheet_safe_export_prefixes_formula_cells(run_script, client, tmp_path):
    exp = unique("sheet")
    eid = client.create_experiment(exp)
    run = client.create_run(eid, run_name='=HYPERLINK("http://x")')
    client.log_param(run.info.run_id, "cmd", "@SUM(A1)")
    client.log_param(run.info.run_id, "shift", "-5")
    client.set_tag(run.info.run_id, "plus", "+1+2")
    client.log_metric(run.info.run_id, "loss", -0.25)
    client.set_terminated(run.info.run_id)
    plain, safe = tmp_path / "plain.csv", tmp_path / "safe.csv"
    assert run_script("query_experiments", "export", "-e", exp, "--output", plain).code == 0
    res = run_script("query_experiments", "export", "-e", exp, "--output", safe, "--spreadsheet-safe")
    assert res.code == 0, res.err
    import csv

    raw = next(csv.DictReader(plain.open()))
    assert raw["run_name"] == '=HYPERLINK("http://x")' and raw["params.cmd"] == "@SUM(A1)"
    row = next(csv.DictReader(safe.open()))
    assert row["run_name"] == '\'=HYPERLINK("http://x")' and row["params.cmd"] == "'@SUM(A1)"
    assert row["tags.plus"] == "'+1+2"
    assert row["params.shift"] == "-5" and row["metrics.loss"] == "-0.25"  # numbers stay numbers
    bad = run_script("query_experiments", "export", "-e", exp, "--output", tmp_path / "x.json", "--spreadsheet-safe")
    assert_clean_error(bad, 2, "--spreadsheet-safe applies to CSV files")


def test_default_export_matches_mlflows_cells(run_script, client, tmp_path):
    """The default CSV holds the formula text as MLflow stores it: nothing prefixed."""
    exp = unique("sheet-default")
    eid = client.create_experiment(exp)
    run = client.create_run(eid, run_name="=1+1")
    client.set_terminated(run.info.run_id)
    out = tmp_path / "d.csv"
    assert run_script("query_experiments", "export", "-e", exp, "--output", out).code == 0
    assert "\n" + run.info.run_id + ",=1+1," in out.read_text()


# ---------------------------------------------------------------------------------------------
# A non-MLflow JSON server echoing the five secret names as data never sees them printed
# ---------------------------------------------------------------------------------------------
def test_query_values_in_a_server_error_are_masked(run_script):
    srv = Hostile({f"{API}/experiments/search": (500, {}, b"upstream failed for /x?pat=ghp_pat_77c1&sig=Sig-0b9a")})
    try:
        res = run_script("query_experiments", "experiments", uri=f"{srv.uri}/?pat=ghp_pat_77c1&sig=Sig-0b9a")
    finally:
        srv.close()
    assert res.code == 6, res.err
    assert "ghp_pat_77c1" not in res.both and "Sig-0b9a" not in res.both
