"""The trial ledger through the scripts (issue 23, item 2): `best --metric sharpe` takes N and V from
every backtest run of the experiment (failed and deleted ones included, re-logged duplicates once),
never from what --filter shows; --trials N overrides N only; --ledger narrows to one sweep or widens
to several experiments; a sweep being logged is deflated against the experiment's ledger. Every DSR
is checked against the published formula computed here from the runs MLflow's own client returns."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from test_sharpe_ranking import reference_psr, reference_sr0

from conftest import unique
from reliability import assert_clean_error

VARIANTS = 12


def sweep_csv(path, variants: int, seed: int, bars: int = 600):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-01", periods=bars)
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d")})
    for i in range(variants):
        frame[f"v_{i:03d}"] = rng.normal(0.0002 + 0.0004 * i / variants, 0.01, bars)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ledger_exp(module_run_script, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ledger")
    path = sweep_csv(folder / "sweep.csv", VARIANTS, seed=1)
    exp = unique("ledger")
    args = ["--returns", path, "--columns", "v_*", "--experiment", exp, "--no-history", "--format", "json"]
    res = module_run_script("log_backtest", *args)
    assert res.code == 0, res.err
    return {"exp": exp, "args": args, "summary": json.loads(res.out), "folder": folder}


def best(run_script, exp: str, *flags: str) -> dict:
    res = run_script(
        "query_experiments", "best", "-e", exp, "--metric", "sharpe", "--top", "3", *flags, "--format", "json"
    )
    assert res.code == 0, res.err
    return json.loads(res.out)


def sharpes_of(client, exp: str) -> dict[str, float]:
    """{config: annual Sharpe} of the experiment's trial runs, deleted ones included (MLflow's client)."""
    from mlflow.entities import ViewType

    exp_id = client.get_experiment_by_name(exp).experiment_id
    runs = client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=5000)
    return {
        r.data.tags["backtest.config"]: r.data.metrics["sharpe"]
        for r in runs
        if "backtest.config" in r.data.tags and "sharpe" in r.data.metrics
    }


def expected_dsr(client, run_id: str, trials: int, sharpes: list[float]) -> float:
    run = client.get_run(run_id)
    m, bars = run.data.metrics, int(run.data.params["data.periods"])
    sr0 = reference_sr0(trials, np.var(np.array(sharpes) / math.sqrt(252), ddof=1))
    return float(reference_psr(m["sharpe"] / math.sqrt(252), bars, m["skew"], m["kurtosis"] + 3, sr0))


def test_a_filter_changes_what_is_shown_not_n_or_v(run_script, client, ledger_exp):
    exp = ledger_exp["exp"]
    full = best(run_script, exp)
    d = full["deflated_sharpe"]
    assert d["trials"] == VARIANTS and "trial ledger of experiment" in d["trials_counted_as"]
    winner = full["runs"][0]["run_id"]
    sharpes = list(sharpes_of(client, exp).values())
    assert d["dsr"][winner] == pytest.approx(expected_dsr(client, winner, VARIANTS, sharpes), rel=1e-9)
    third = sorted(sharpes, reverse=True)[2]
    filtered = best(run_script, exp, "--filter", f"metrics.sharpe >= {third}")
    assert len(filtered["runs"]) == 3  # the filter keeps 3 of the 12 on screen ...
    f = filtered["deflated_sharpe"]  # ... and N, V and the DSR stay the ledger's
    assert f["trials"] == VARIANTS and f["sharpe_variance_annual"] == pytest.approx(d["sharpe_variance_annual"])
    assert f["dsr"][winner] == pytest.approx(d["dsr"][winner], rel=1e-12)
    assert f["min_trl_years"][winner] == pytest.approx(d["min_trl_years"][winner])
    md = run_script(
        "query_experiments", "best", "-e", exp, "--metric", "sharpe", "--filter", f"metrics.sharpe >= {third}"
    )
    assert f"N = {VARIANTS}: the trial ledger of experiment" in md.out and "MinTRL 95 %" in md.out
    assert "--filter and --top choose the runs shown, not N or V" in md.out and "PBO of sweep" in md.out


def test_relogged_duplicates_count_once(module_run_script, run_script, ledger_exp):
    res = module_run_script("log_backtest", *ledger_exp["args"], "--force-new")
    assert res.code == 0, res.err
    again = json.loads(res.out)["deflated_sharpe"]
    assert again["trials"] == VARIANTS and again["ledger"]["runs"] == 2 * VARIANTS
    d = best(run_script, ledger_exp["exp"])["deflated_sharpe"]
    assert d["trials"] == VARIANTS and d["ledgers"][0]["duplicates"] == VARIANTS


def test_failed_and_deleted_runs_count(run_script, client, ledger_exp):
    exp, summary = ledger_exp["exp"], ledger_exp["summary"]
    before = best(run_script, exp)["deflated_sharpe"]
    client.delete_run(summary["ranking"][-1]["run_id"])  # deleted: still a trial that was tried
    after_delete = best(run_script, exp)["deflated_sharpe"]
    assert after_delete["trials"] == VARIANTS and after_delete["ledgers"][0]["deleted"] == 1
    assert after_delete["sharpe_variance_annual"] == pytest.approx(before["sharpe_variance_annual"])
    exp_id = client.get_experiment_by_name(exp).experiment_id
    failed = client.create_run(exp_id, run_name="crashed", tags={"backtest.config": "a-config-that-crashed"})
    client.set_terminated(failed.info.run_id, "FAILED")  # failed before any metric: in N, not in V
    d = best(run_script, exp)["deflated_sharpe"]
    assert d["trials"] == VARIANTS + 1 and d["ledgers"][0]["without_sharpe"] == 1
    assert d["ledgers"][0]["unfinished"] == 1
    assert d["sharpe_variance_annual"] == pytest.approx(before["sharpe_variance_annual"])


def test_trials_override_n_and_keeps_the_ledgers_variance(run_script, client, ledger_exp):
    exp = ledger_exp["exp"]
    ledger = best(run_script, exp)["deflated_sharpe"]
    given = best(run_script, exp, "--trials", "200")
    d = given["deflated_sharpe"]
    winner = given["runs"][0]["run_id"]
    assert d["trials"] == 200 and d["sharpe_variance_annual"] == pytest.approx(ledger["sharpe_variance_annual"])
    sharpes = list(sharpes_of(client, exp).values())
    assert d["dsr"][winner] == pytest.approx(expected_dsr(client, winner, 200, sharpes), rel=1e-9)
    assert "N = 200 given by --trials" in d["trials_counted_as"]


def test_ledger_narrows_to_a_sweep_and_widens_to_experiments(module_run_script, run_script, ledger_exp):
    exp, summary = ledger_exp["exp"], ledger_exp["summary"]
    narrow = best(run_script, exp, "--ledger", f"sweep:{summary['run_id']}")["deflated_sharpe"]
    assert narrow["trials"] == VARIANTS  # the crashed run is the experiment's, not this sweep's
    other = unique("ledger-other")
    path = sweep_csv(ledger_exp["folder"] / "other.csv", 3, seed=7)
    res = module_run_script(
        "log_backtest", "--returns", path, "--columns", "v_*", "--experiment", other, "--no-history"
    )
    assert res.code == 0, res.err
    wide = best(run_script, exp, "--ledger", f"experiments:{exp},{other}")["deflated_sharpe"]
    assert wide["trials"] == VARIANTS + 1 + 3 and "experiments" in wide["trials_counted_as"]
    bad = run_script("query_experiments", "best", "-e", exp, "--metric", "sharpe", "--ledger", "everything")
    assert_clean_error(bad, 2, "--ledger 'everything'", "experiments:NAME,NAME")


def test_a_new_sweep_is_deflated_against_the_experiments_ledger(module_run_script, client, ledger_exp):
    exp = ledger_exp["exp"]
    path = sweep_csv(ledger_exp["folder"] / "more.csv", 4, seed=11)
    res = module_run_script(
        "log_backtest", "--returns", path, "--columns", "v_*", "--experiment", exp, "--format", "json"
    )
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    trials = VARIANTS + 1 + 4  # the first sweep's configurations, the crashed run, this sweep's 4
    d = summary["deflated_sharpe"]
    assert d["trials"] == trials and d["ledger"]["deleted"] == 1
    parent = client.get_run(summary["run_id"]).data.metrics
    assert parent["sweep_trials"] == trials and parent["best_dsr"] == pytest.approx(d["winner_dsr"])
    sharpes = list(sharpes_of(client, exp).values())
    assert len(sharpes) == VARIANTS + 4
    for row in summary["ranking"]:
        logged = client.get_run(row["run_id"]).data.metrics["dsr"]
        assert logged == pytest.approx(expected_dsr(client, row["run_id"], trials, sharpes), rel=1e-9)
    flags = ["--columns", "v_*", "--experiment", exp, "--ledger", "sweep", "--dry-run", "--format", "json"]
    alone = module_run_script("log_backtest", "--returns", path, *flags)
    assert json.loads(alone.out)["deflated_sharpe"]["trials"] == 4


@pytest.mark.slow  # a sweep of 100 variants logged in full
def test_hundred_variant_sweep_filter_leaves_n_100(module_run_script, run_script, tmp_path):
    path = sweep_csv(tmp_path / "hundred.csv", 100, seed=23, bars=1250)
    exp = unique("ledger-100")
    flags = ["--columns", "v_*", "--experiment", exp, "--no-history", "--format", "json"]
    res = module_run_script("log_backtest", "--returns", path, *flags)
    assert res.code == 0, res.err
    ranking = json.loads(res.out)["ranking"]
    full = best(run_script, exp)
    winner = full["runs"][0]["run_id"]
    assert winner == ranking[0]["run_id"]
    filtered = best(run_script, exp, "--filter", f"metrics.sharpe >= {ranking[7]['sharpe']}")  # 8 of 100 shown
    assert filtered["deflated_sharpe"]["trials"] == full["deflated_sharpe"]["trials"] == 100
    assert filtered["deflated_sharpe"]["dsr"][winner] == pytest.approx(full["deflated_sharpe"]["dsr"][winner])
    assert filtered["deflated_sharpe"]["dsr"][winner] == pytest.approx(ranking[0]["dsr"], rel=1e-9)
