"""Bad input to every script: malformed and hostile filters, unknown names and ids, wrong types,
malformed files. Each case: the documented exit code (2 usage/bad input, 3 not found), one
`error:` line on stderr (or argparse's usage block ending in one error line), no traceback.

Cases for scripts written by other issues (log_backtest.py, search_traces.py, get_trace.py)
are in the table only when the script file exists.
"""

from __future__ import annotations

import json

import pytest

from conftest import unique
from reliability import assert_clean_error, present, write_returns_csv

BIG = "a" * 100_000  # a 100 KB value
SQLI = "params.x = 'a'; DROP TABLE runs; --'"


@pytest.fixture(scope="module")
def seed(client, tmp_path_factory):
    from mlflow.entities import Metric, Param

    name = unique("bad-input")
    exp = client.create_experiment(name)
    runs = []
    for i in range(3):
        run = client.create_run(exp, run_name=f"bi-{i}")
        rid = run.info.run_id
        client.log_batch(
            rid,
            metrics=[Metric("acc", 0.1 * i + s / 100, 0, s) for s in range(5)],
            params=[Param("lr", str(0.01 * (i + 1))), Param("opt", "adam")],
        )
        client.set_terminated(rid)
        runs.append(rid)
    tmp = tmp_path_factory.mktemp("bad-input")
    (tmp / "exists.csv").write_text("x\n")
    files = {
        "empty": tmp / "empty.csv",
        "header_only": tmp / "header.csv",
        "text_values": tmp / "text.csv",
        "duplicate_dates": tmp / "dupes.csv",
        "impossible": tmp / "impossible.csv",
        "binary": tmp / "binary.csv",
        "fake_parquet": tmp / "fake.parquet",
        "two_numeric": tmp / "two.csv",
        "good": write_returns_csv(tmp / "good.csv"),
    }
    files["empty"].write_text("")
    files["header_only"].write_text("date,returns\n")
    files["text_values"].write_text("date,returns\n2024-01-01,0.01\n2024-01-02,abc\n2024-01-03,0.02\n")
    files["duplicate_dates"].write_text("date,returns\n2024-01-01,0.01\n2024-01-01,0.02\n2024-01-02,0.03\n")
    files["impossible"].write_text("date,returns\n2024-01-01,0.01\n2024-01-02,-1.5\n2024-01-03,0.02\n")
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["fake_parquet"].write_text("date,returns\n2024-01-01,0.01\n")
    files["two_numeric"].write_text("date,a,b\n2024-01-01,0.01,0.02\n2024-01-02,0.03,0.01\n")
    subs = {"{exp}": name, "{exp_id}": exp, "{run}": runs[0], "{run2}": runs[1], "{tmp}": str(tmp)}
    subs.update({f"{{file:{k}}}": str(v) for k, v in files.items()})
    return {"name": name, "id": exp, "runs": runs, "subs": subs, "tmp": tmp}


def fill(args, subs):
    out = []
    for arg in args:
        for key, value in subs.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


# (id, script, args, exit code, words the message must hold)
QE = "query_experiments"
CASES = [
    # --- filters: malformed and hostile (runs, best, export, and the others taking --filter)
    ("unclosed-single-quote", QE, ["runs", "-e", "{exp}", "--filter", "params.opt = 'adam"], 2, ["unclosed '"]),
    ("unclosed-double-quote", QE, ["runs", "-e", "{exp}", "--filter", "params.\"opt = 'adam'"], 2, ["unclosed"]),
    ("unclosed-backtick", QE, ["runs", "-e", "{exp}", "--filter", "params.`opt = 'adam'"], 2, ["unclosed `"]),
    ("backtick-inside-key", QE, ["runs", "-e", "{exp}", "--filter", "params.`a`b` = '1'"], 2, ["unclosed"]),
    ("sql-injection", QE, ["runs", "-e", "{exp}", "--filter", SQLI], 2, []),
    ("sql-injection-or-true", QE, ["runs", "-e", "{exp}", "--filter", "params.opt = 'x' OR 1=1"], 2, ["rejected"]),
    ("sql-injection-semicolon", QE, ["runs", "-e", "{exp}", "--filter", "metrics.acc > 0; DELETE FROM runs"], 2, []),
    (
        "sql-injection-in-order-by",
        QE,
        ["runs", "-e", "{exp}", "--order-by", "metrics.acc DESC; DROP TABLE runs"],
        2,
        ["--order-by"],
    ),
    ("unicode-operator", QE, ["runs", "-e", "{exp}", "--filter", "metrics.acc ≥ 1"], 2, []),
    ("unicode-fullwidth-quote", QE, ["runs", "-e", "{exp}", "--filter", "params.opt = ＇adam＇"], 2, []),
    ("control-char-bel", QE, ["runs", "-e", "{exp}", "--filter", "metrics.acc > 1\x07"], 2, []),
    ("control-char-escape", QE, ["runs", "-e", "{exp}", "--filter", "metrics.acc > 1\x1b[31m"], 2, []),
    ("control-char-in-key", QE, ["runs", "-e", "{exp}", "--filter", "metrics.a\x01cc > 1"], 2, []),
    ("string-for-metric", QE, ["runs", "-e", "{exp}", "--filter", "metrics.acc > 'abc'"], 2, ["numeric"]),
    ("unquoted-text-for-param", QE, ["runs", "-e", "{exp}", "--filter", "params.opt = adam"], 2, ["quote"]),
    (
        "numeric-compare-on-text-param",
        QE,
        ["runs", "-e", "{exp}", "--filter", "params.opt > 1"],
        2,
        ["not a number", "params.opt"],
    ),
    ("dangling-and", QE, ["runs", "-e", "{exp}", "--filter", "params.lr > 0.001 AND"], 2, ["empty AND"]),
    ("leading-or", QE, ["runs", "-e", "{exp}", "--filter", "OR params.lr > 1"], 2, ["empty OR"]),
    ("unbalanced-paren", QE, ["runs", "-e", "{exp}", "--filter", "(metrics.acc > 1"], 2, []),
    ("unbalanced-in-list", QE, ["runs", "-e", "{exp}", "--filter", "params.lr IN ('1','2'"], 2, []),
    ("unknown-entity", QE, ["runs", "-e", "{exp}", "--filter", "foo.bar = 1"], 2, ["foo"]),
    ("only-operators", QE, ["runs", "-e", "{exp}", "--filter", "= = ="], 2, []),
    ("lone-bang", QE, ["runs", "-e", "{exp}", "--filter", "!"], 2, ["cannot read the filter"]),
    ("100kb-of-and-clauses", QE, ["runs", "-e", "{exp}", "--filter", " AND ".join(["metrics.acc > 0"] * 5000)], 2, []),
    (
        "100kb-of-or-branches",
        QE,
        ["runs", "-e", "{exp}", "--filter", " OR ".join(["metrics.acc > 0"] * 5000)],
        2,
        ["OR branches"],
    ),
    (
        "best-unclosed-quote",
        QE,
        ["best", "-e", "{exp}", "--metric", "acc", "--filter", "params.opt = 'adam"],
        2,
        ["unclosed"],
    ),
    ("best-sql-injection", QE, ["best", "-e", "{exp}", "--metric", "acc", "--filter", SQLI], 2, []),
    (
        "best-text-param-compare",
        QE,
        ["best", "-e", "{exp}", "--metric", "acc", "--filter", "params.opt <= 3"],
        2,
        ["not a number"],
    ),
    (
        "export-unclosed-quote",
        QE,
        ["export", "-e", "{exp}", "-o", "{tmp}/q1.csv", "--filter", "params.opt = 'adam"],
        2,
        ["unclosed"],
    ),
    ("export-sql-injection", QE, ["export", "-e", "{exp}", "-o", "{tmp}/q2.csv", "--filter", SQLI], 2, []),
    ("export-unicode", QE, ["export", "-e", "{exp}", "-o", "{tmp}/q3.json", "--filter", "metrics.acc ≥ 1"], 2, []),
    ("failed-bad-filter", QE, ["failed", "-e", "{exp}", "--filter", "metrics.acc >"], 2, []),
    ("overfit-bad-filter", QE, ["overfit", "-e", "{exp}", "--train", "acc", "--test", "acc", "--filter", "`"], 2, []),
    ("aggregate-bad-filter", QE, ["aggregate", "-e", "{exp}", "-g", "params.opt", "-m", "acc", "--filter", "'"], 2, []),
    ("experiments-bad-filter", QE, ["experiments", "--filter", "name = 'x"], 2, []),
    ("experiments-or-filter", QE, ["experiments", "--filter", "name LIKE '%a%' OR 1=1"], 2, []),
    ("experiments-100kb-name-like", QE, ["experiments", "--name-like", BIG], 2, ["--name-like"]),
    ("experiments-quote-in-name-like", QE, ["experiments", "--name-like", "x'y"], 2, ["single quote"]),
    # --- unknown names and ids
    ("unknown-experiment", QE, ["runs", "-e", "no-such-experiment-zz9"], 3, ["no experiment named"]),
    ("unknown-experiment-suggests", QE, ["runs", "-e", "{exp}x"], 3, ["did you mean"]),
    ("unknown-experiment-id", QE, ["best", "-e", "98765432", "--metric", "acc"], 3, ["no experiment"]),
    ("empty-experiment", QE, ["runs", "-e", ""], 2, ["empty experiment name"]),
    ("unknown-run", QE, ["run", "0123456789abcdef0123456789abcdef"], 3, ["no run with id"]),
    ("path-traversal-run-id", QE, ["run", "../../etc/passwd"], 3, ["no run with id"]),
    ("sql-in-run-id", QE, ["run", "' OR 1=1 --"], 3, ["no run with id"]),
    ("compare-unknown", QE, ["compare", "{run}", "deadbeef"], 3, ["deadbeef"]),
    ("compare-same-twice", QE, ["compare", "{run}", "{run}"], 2, ["two different"]),
    ("artifacts-unknown-run", QE, ["artifacts", "0123456789abcdef0123456789abcdef"], 3, ["no run with id"]),
    ("artifacts-path-traversal", QE, ["artifacts", "{run}", "--path", "../../../etc"], 2, []),
    ("unknown-order-key", QE, ["runs", "-e", "{exp}", "--order-by", "foo.bar"], 2, []),
    ("unknown-column", QE, ["runs", "-e", "{exp}", "--columns", "foo.bar"], 2, ["--columns"]),
    ("unknown-subcommand", QE, ["nosuchcommand"], 2, ["invalid choice"]),
    ("experiments-bad-order", QE, ["experiments", "--order-by", "bogus DESC"], 2, []),
    # --- wrong types and values
    ("max-results-abc", QE, ["runs", "--max-results", "abc"], 2, ["--max-results"]),
    ("max-results-zero", QE, ["runs", "-e", "{exp}", "--max-results", "0"], 2, ["--max-results"]),
    ("max-results-negative", QE, ["runs", "-e", "{exp}", "--max-results", "-3"], 2, ["--max-results"]),
    ("timeout-abc", QE, ["runs", "--timeout", "abc"], 2, ["--timeout"]),
    ("timeout-negative", QE, ["runs", "-e", "{exp}", "--timeout", "-1"], 2, ["--timeout"]),
    ("timeout-zero", QE, ["experiments", "--timeout", "0"], 2, ["--timeout"]),
    ("timeout-nan", QE, ["experiments", "--timeout", "nan"], 2, ["--timeout"]),
    ("order-bad-direction", QE, ["runs", "-e", "{exp}", "--order-by", "metrics.acc SIDEWAYS"], 2, ["--order-by"]),
    ("order-unbalanced-quote", QE, ["runs", "-e", "{exp}", "--order-by", "'unbalanced"], 2, ["--order-by"]),
    ("page-token-garbage", QE, ["runs", "-e", "{exp}", "--page-token", "garbage"], 2, ["page token"]),
    ("page-token-offset-on-server-query", QE, ["runs", "-e", "{exp}", "--page-token", "offset-5"], 2, ["--page-token"]),
    (
        "page-token-server-on-client-query",
        QE,
        ["runs", "-e", "{exp}", "--filter", "params.lr > 0", "--page-token", "abc"],
        2,
        ["--page-token"],
    ),
    ("experiments-page-token-garbage", QE, ["experiments", "--page-token", "garbage"], 2, []),
    ("experiments-max-results-zero", QE, ["experiments", "--max-results", "0"], 2, ["--max-results"]),
    ("experiments-count-limit-zero", QE, ["experiments", "--count-runs", "--count-limit", "0"], 2, ["--count-limit"]),
    ("experiments-bad-view", QE, ["experiments", "--view", "nonsense"], 2, ["--view"]),
    ("best-top-abc", QE, ["best", "--metric", "acc", "--top", "abc"], 2, ["--top"]),
    ("best-top-zero", QE, ["best", "-e", "{exp}", "--metric", "acc", "--top", "0"], 2, ["--top"]),
    ("best-top-negative", QE, ["best", "-e", "{exp}", "--metric", "acc", "--top", "-1"], 2, ["--top"]),
    ("best-no-metric", QE, ["best", "-e", "{exp}"], 2, ["--metric"]),
    ("overfit-threshold-abc", QE, ["overfit", "--train", "a", "--test", "b", "--threshold", "abc"], 2, ["--threshold"]),
    (
        "aggregate-group-by-metric",
        QE,
        ["aggregate", "-e", "{exp}", "-g", "metrics.acc", "-m", "acc"],
        2,
        ["--group-by"],
    ),
    ("aggregate-empty-metric", QE, ["aggregate", "-e", "{exp}", "-g", "params.opt", "-m", ","], 2, ["--metric"]),
    ("export-no-folder", QE, ["export", "-e", "{exp}", "-o", "/nonexistent-dir-zz/x.csv"], 2, ["does not exist"]),
    ("export-unknown-extension", QE, ["export", "-e", "{exp}", "-o", "{tmp}/x.txt"], 2, [".csv or .json"]),
    ("export-existing-file", QE, ["export", "-e", "{exp}", "-o", "{tmp}/exists.csv"], 2, ["--force"]),
    (
        "export-page-size-zero",
        QE,
        ["export", "-e", "{exp}", "-o", "{tmp}/p.csv", "--page-size", "0"],
        2,
        ["--page-size"],
    ),
    ("export-page-size-abc", QE, ["export", "-o", "{tmp}/p.csv", "--page-size", "abc"], 2, ["--page-size"]),
    (
        "export-page-size-too-big",
        QE,
        ["export", "-e", "{exp}", "-o", "{tmp}/p.csv", "--page-size", "50001"],
        2,
        ["--page-size"],
    ),
    ("export-limit-negative", QE, ["export", "-e", "{exp}", "-o", "{tmp}/p.csv", "--limit", "-1"], 2, ["--limit"]),
    ("run-as-csv", QE, ["run", "{run}", "--format", "csv"], 2, ["--format"]),
    # --- get_metric_history
    ("gmh-unknown-run", "get_metric_history", ["--run-id", "0123456789abcdef0123456789abcdef"], 3, ["no run with id"]),
    ("gmh-sql-in-run-id", "get_metric_history", ["--run-id", "' OR 1=1 --"], 3, ["no run with id"]),
    (
        "gmh-unknown-metric",
        "get_metric_history",
        ["--run-id", "{run}", "--metrics", "acx"],
        3,
        ["no metric", "did you mean 'acc'"],
    ),
    ("gmh-empty-run-id", "get_metric_history", ["--run-id", " "], 2, ["--run-id"]),
    ("gmh-no-run-id", "get_metric_history", [], 2, ["--run-id"]),
    ("gmh-steps-x-y", "get_metric_history", ["--run-id", "{run}", "--steps", "x:y"], 2, ["--steps"]),
    ("gmh-steps-reversed", "get_metric_history", ["--run-id", "{run}", "--steps", "5:1"], 2, ["--steps"]),
    ("gmh-steps-colon-only", "get_metric_history", ["--run-id", "{run}", "--steps", ":"], 2, ["--steps"]),
    (
        "gmh-steps-huge",
        "get_metric_history",
        ["--run-id", "{run}", "--steps", "99999999999999999999999:"],
        2,
        ["64-bit"],
    ),
    ("gmh-steps-fullwidth-colon", "get_metric_history", ["--run-id", "{run}", "--steps", "1：5"], 2, ["--steps"]),
    ("gmh-metrics-empty", "get_metric_history", ["--run-id", "{run}", "--metrics", ","], 2, ["--metrics"]),
    ("gmh-max-points-abc", "get_metric_history", ["--run-id", "{run}", "--max-points", "abc"], 2, ["--max-points"]),
    ("gmh-max-points-one", "get_metric_history", ["--run-id", "{run}", "--max-points", "1"], 2, ["--max-points"]),
    ("gmh-output-without-full", "get_metric_history", ["--run-id", "{run}", "--output", "{tmp}/h.csv"], 2, ["--full"]),
    (
        "gmh-output-bad-extension",
        "get_metric_history",
        ["--run-id", "{run}", "--full", "--output", "{tmp}/h.txt"],
        2,
        [".csv or .json"],
    ),
    (
        "gmh-output-no-folder",
        "get_metric_history",
        ["--run-id", "{run}", "--full", "--output", "/nonexistent-zz/h.csv"],
        2,
        ["does not exist"],
    ),
    (
        "gmh-output-exists",
        "get_metric_history",
        ["--run-id", "{run}", "--full", "--output", "{tmp}/exists.csv"],
        2,
        ["--force"],
    ),
    ("gmh-timeout-negative", "get_metric_history", ["--run-id", "{run}", "--timeout", "-1"], 2, ["--timeout"]),
    ("gmh-bad-format", "get_metric_history", ["--run-id", "{run}", "--format", "xml"], 2, ["--format"]),
    # --- create_experiment
    ("ce-no-name", "create_experiment", ["--tag", "a=b"], 2, ["--name"]),
    ("ce-empty-name", "create_experiment", ["--name", ""], 2, ["empty"]),
    ("ce-blank-name", "create_experiment", ["--name", "   "], 2, ["empty"]),
    ("ce-100kb-name", "create_experiment", ["--name", BIG], 2, ["500"]),
    ("ce-tag-without-value", "create_experiment", ["--name", "x", "--tag", "novalue"], 2, ["--tag", "KEY=VALUE"]),
    ("ce-tag-empty-key", "create_experiment", ["--name", "x", "--tag", "=v"], 2, ["empty key"]),
    ("ce-timeout-negative", "create_experiment", ["--name", "x", "--timeout", "-5"], 2, ["--timeout"]),
    ("ce-timeout-inf", "create_experiment", ["--name", "x", "--timeout", "inf"], 2, ["--timeout"]),
    ("ce-deleted-without-restore", "create_experiment", ["--name", "{deleted}"], 2, ["--restore"]),
]

if present("search_traces"):
    ST = "search_traces"
    CASES += [
        ("st-unknown-experiment", ST, ["--experiment", "no-such-experiment-zz9"], 3, ["no experiment named"]),
        ("st-unknown-run", ST, ["--run-id", "0123456789abcdef0123456789abcdef"], 3, ["no run"]),
        ("st-bad-since", ST, ["--experiment", "{exp}", "--since", "garbage"], 2, ["cannot read time"]),
        ("st-unclosed-quote", ST, ["--experiment", "{exp}", "--filter", "trace.status = 'OK"], 2, []),
        (
            "st-sql-injection",
            ST,
            ["--experiment", "{exp}", "--filter", "trace.status = 'OK'; DROP TABLE runs; --"],
            2,
            [],
        ),
        ("st-unicode", ST, ["--experiment", "{exp}", "--filter", "trace.status ≠ 'OK'"], 2, []),
        ("st-max-results-abc", ST, ["--experiment", "{exp}", "--max-results", "abc"], 2, ["--max-results"]),
        ("st-max-results-zero", ST, ["--experiment", "{exp}", "--max-results", "0"], 2, ["--max-results"]),
        ("st-max-results-huge", ST, ["--experiment", "{exp}", "--max-results", "100000"], 2, ["--max-results"]),
        ("st-tag-without-value", ST, ["--experiment", "{exp}", "--tag", "novalue"], 2, ["--tag"]),
        ("st-bad-order", ST, ["--experiment", "{exp}", "--order-by", "bogus SIDEWAYS"], 2, []),
        ("st-page-token-garbage", ST, ["--experiment", "{exp}", "--page-token", "garbage"], 2, ["page token"]),
        ("st-timeout-negative", ST, ["--experiment", "{exp}", "--timeout", "-1"], 2, ["--timeout"]),
    ]
if present("get_trace"):
    CASES += [
        ("gt-unknown-trace", "get_trace", ["--trace-id", "tr-0123456789abcdef0123456789abcdef"], 3, ["no trace"]),
        ("gt-sql-in-trace-id", "get_trace", ["--trace-id", "' OR 1=1 --"], 3, ["no trace"]),
        ("gt-path-in-trace-id", "get_trace", ["--trace-id", "../../etc/passwd"], 3, []),
        ("gt-max-spans-abc", "get_trace", ["--trace-id", "tr-x", "--max-spans", "abc"], 2, ["--max-spans"]),
        ("gt-no-trace-id", "get_trace", [], 2, ["--trace-id"]),
    ]
if present("log_backtest"):
    LB = "log_backtest"
    CASES += [
        ("lb-missing-file", LB, ["--returns", "/nonexistent-zz/r.csv", "--experiment", "{lbexp}"], 2, ["no such file"]),
        ("lb-empty-file", LB, ["--returns", "{file:empty}", "--experiment", "{lbexp}"], 2, []),
        ("lb-header-only", LB, ["--returns", "{file:header_only}", "--experiment", "{lbexp}"], 2, ["no data rows"]),
        ("lb-text-values", LB, ["--returns", "{file:text_values}", "--experiment", "{lbexp}"], 2, ["abc"]),
        (
            "lb-duplicate-dates",
            LB,
            ["--returns", "{file:duplicate_dates}", "--experiment", "{lbexp}"],
            2,
            ["duplicate"],
        ),
        ("lb-impossible-return", LB, ["--returns", "{file:impossible}", "--experiment", "{lbexp}"], 2, []),
        ("lb-binary-file", LB, ["--returns", "{file:binary}", "--experiment", "{lbexp}"], 2, []),
        ("lb-fake-parquet", LB, ["--returns", "{file:fake_parquet}", "--experiment", "{lbexp}"], 2, []),
        ("lb-ambiguous-column", LB, ["--returns", "{file:two_numeric}", "--experiment", "{lbexp}"], 2, ["--column"]),
        (
            "lb-unknown-column",
            LB,
            ["--returns", "{file:good}", "--column", "nope", "--experiment", "{lbexp}"],
            2,
            ["nope"],
        ),
        (
            "lb-params-not-json",
            LB,
            ["--returns", "{file:good}", "--params", "not json", "--experiment", "{lbexp}"],
            2,
            ["--params"],
        ),
        (
            "lb-params-json-list",
            LB,
            ["--returns", "{file:good}", "--params", "[1, 2]", "--experiment", "{lbexp}"],
            2,
            ["--params"],
        ),
        (
            "lb-param-without-value",
            LB,
            ["--returns", "{file:good}", "--param", "fast", "--experiment", "{lbexp}"],
            2,
            ["--param"],
        ),
        ("lb-periods-abc", LB, ["--returns", "{file:good}", "--periods-per-year", "abc"], 2, ["--periods-per-year"]),
        (
            "lb-periods-zero",
            LB,
            ["--returns", "{file:good}", "--periods-per-year", "0", "--experiment", "{lbexp}"],
            2,
            [],
        ),
        ("lb-risk-free-abc", LB, ["--returns", "{file:good}", "--risk-free", "abc"], 2, ["--risk-free"]),
        (
            "lb-timeout-negative",
            LB,
            ["--returns", "{file:good}", "--timeout", "-1", "--experiment", "{lbexp}"],
            2,
            ["--timeout"],
        ),
    ]


@pytest.fixture(scope="module")
def deleted_experiment(client):
    name = unique("bad-input-deleted")
    client.delete_experiment(client.create_experiment(name))
    return name


@pytest.mark.parametrize("case_id, script, args, code, needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input(run_script, seed, deleted_experiment, case_id, script, args, code, needles):
    subs = dict(seed["subs"], **{"{deleted}": deleted_experiment, "{lbexp}": seed["name"] + "-lb"})
    res = run_script(script, *fill(args, subs))
    assert_clean_error(res, code, *needles)
    assert res.out == ""  # nothing half-printed on stdout


def test_hostile_filters_leave_the_store_intact(run_script, seed, client):
    """After every injection attempt above, the runs are all still there and unchanged."""
    for text in (SQLI, "params.opt = 'x' OR 1=1", "metrics.acc > 0; DELETE FROM runs"):
        assert run_script("query_experiments", "runs", "-e", seed["name"], "--filter", text).code == 2
    res = run_script("query_experiments", "runs", "-e", seed["name"], "--format", "json", "--max-results", "100")
    assert res.code == 0, res.err
    assert sorted(r["run_id"] for r in json.loads(res.out)["runs"]) == sorted(seed["runs"])
    assert client.get_experiment(seed["id"]).lifecycle_stage == "active"


def test_legal_but_odd_filters_work(run_script, seed):
    """Unicode keys, quoted keys, control characters inside a quoted value and a 100 KB value
    are legal: they run and match nothing (or the right runs), exit 0."""
    for text, expected in (
        ("params.名前 = 'значение'", []),
        ("params.opt = 'ad\x07am'", []),
        (f"params.opt = '{BIG}'", []),
        ("metrics.`acc` >= 0.1 AND params.\"opt\" = 'adam'", seed["runs"][1:]),
        ("params.opt = 'adam' AND params.lr >= 0.02", seed["runs"][1:]),
    ):
        res = run_script("query_experiments", "runs", "-e", seed["name"], "--filter", text, "--format", "json")
        assert res.code == 0, (text[:80], res.err)
        assert sorted(r["run_id"] for r in json.loads(res.out)["runs"]) == sorted(expected), text[:80]


@pytest.mark.skipif(not present("log_backtest"), reason="log_backtest.py is not written yet")
def test_malformed_backtest_files_create_nothing(run_script, seed, client):
    """Every refused file is refused before anything is written: no run in the experiment."""
    exp = client.get_experiment_by_name(seed["name"] + "-lb")
    if exp is not None:
        assert client.search_runs([exp.experiment_id], max_results=10) == []


def test_bad_input_through_uv_run(uv_run, seed):
    """The same one-line errors when run exactly as an agent runs the scripts."""
    res = uv_run("query_experiments", "runs", "-e", seed["name"], "--filter", SQLI)
    assert_clean_error(res, 2)
    res = uv_run("get_metric_history", "--run-id", seed["runs"][0], "--steps", "x:y")
    assert_clean_error(res, 2, "--steps")
