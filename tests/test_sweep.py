"""Parameter sweeps through log_backtest.py: one parent run, one child per variant, every child
scored on ONE common window (checked against QuantStats on that window, computed here), the
ranking's PSR/DSR against the published formulas, per-period tables against pandas, idempotent
re-runs, and `compare --preset backtest` over the children."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from test_sharpe_ranking import reference_psr, reference_sr0

from conftest import unique

LOOKBACKS = [5, 10, 20, 30, 50, 80, 100, 130, 160, 200, 250]


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    """Moving-average variants of one price path: long lookbacks stay flat (0) for their warm-up."""
    rng = np.random.default_rng(11)
    index = pd.bdate_range("2019-01-01", periods=900)
    prices = pd.Series(100 * np.exp(np.cumsum(rng.normal(0.0003, 0.011, len(index)))), index=index)
    market = prices.pct_change().fillna(0.0)
    frame = pd.DataFrame({"date": index.strftime("%Y-%m-%d")})
    for lookback in LOOKBACKS:
        average = prices.rolling(lookback).mean()
        held = (prices > average).shift(1, fill_value=False) & average.shift(1).notna()
        frame[f"sma_{lookback}"] = (held.astype(float) * market).to_numpy()
    frame["spy"] = market.to_numpy()
    path = tmp_path_factory.mktemp("sweep") / "sweep.csv"
    frame.to_csv(path, index=False)
    return path, frame.set_axis(pd.DatetimeIndex(index), axis=0).drop(columns="date")


@pytest.fixture(scope="module")
def logged(module_run_script, sweep_file):
    path, _ = sweep_file
    exp = unique("sweep")
    args = [
        "--returns",
        path,
        "--columns",
        "sma_*",
        "--variant-pattern",
        r"sma_(?P<lookback>\d+)",
        "--benchmark-column",
        "spy",
        "--experiment",
        exp,
        "--format",
        "json",
    ]
    res = module_run_script("log_backtest", *args)
    assert res.code == 0, res.err
    return exp, args, json.loads(res.out)


def children_of(client, summary):
    runs = client.search_runs(
        [summary["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{summary['run_id']}'", max_results=1000
    )
    return {r.data.params["variant"]: r for r in runs}


def test_parent_and_one_child_per_variant_on_one_window(client, logged, sweep_file):
    _, _, summary = logged
    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED" and "backtest.incomplete" not in parent.data.tags
    children = children_of(client, summary)
    assert set(children) == {f"sma_{lb}" for lb in LOOKBACKS}
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert {r.data.params["lookback"] for r in children.values()} == {str(lb) for lb in LOOKBACKS}
    windows = {
        (r.data.params["data.start"], r.data.params["data.end"], r.data.params["data.periods"])
        for r in children.values()
    }
    assert len(windows) == 1, f"one common window for every child, got {windows}"
    # The window starts where the slowest variant first trades (computed here, independently)
    _, frame = sweep_file
    first_moves = [frame[f"sma_{lb}"].ne(0).idxmax() for lb in LOOKBACKS] + [frame["spy"].ne(0).idxmax()]
    start = max(first_moves)
    ((start_text, end_text, bars),) = windows
    assert pd.Timestamp(start_text) == start and int(bars) == len(frame.loc[start:])
    assert summary["window"]["last_to_start"] == "sma_250"
    names = [a.path for a in client.list_artifacts(summary["run_id"], "backtest")]
    assert {"backtest/ranking.csv", "backtest/ranking.json", "backtest/equity.png"} <= set(names)


def test_child_metrics_equal_quantstats_on_the_window(client, logged, sweep_file):
    import quantstats as qs

    _, _, summary = logged
    _, frame = sweep_file
    start = pd.Timestamp(summary["window"]["start"])
    children = children_of(client, summary)
    for variant in ("sma_20", "sma_160"):
        s = frame[variant].loc[start:]
        b = frame["spy"].loc[start:]
        metrics = children[variant].data.metrics
        assert metrics["sharpe"] == pytest.approx(qs.stats.sharpe(s, 0.0, 252, True), rel=1e-9)
        assert metrics["volatility"] == pytest.approx(float(s.std(ddof=1) * math.sqrt(252)), rel=1e-9)
        assert metrics["cumulative_return"] == pytest.approx(float(np.prod(1 + s) - 1), rel=1e-9)
        assert metrics["beta"] == pytest.approx(float(np.cov(s, b)[0, 1] / np.var(b, ddof=1)), rel=1e-6)


def test_ranking_psr_dsr_equal_the_published_formulas(client, logged, sweep_file):
    _, _, summary = logged
    _, frame = sweep_file
    start = pd.Timestamp(summary["window"]["start"])
    children = children_of(client, summary)
    per_bar = {v: r.data.metrics["sharpe"] / math.sqrt(252) for v, r in children.items()}
    sr0 = reference_sr0(len(per_bar), np.var(list(per_bar.values()), ddof=1))
    bars = len(frame.loc[start:])
    for row in summary["ranking"]:
        m = children[row["variant"]].data.metrics
        kurt = m["kurtosis"] + 3
        assert row["psr"] == pytest.approx(reference_psr(per_bar[row["variant"]], bars, m["skew"], kurt, 0.0), rel=1e-9)
        assert row["dsr"] == pytest.approx(reference_psr(per_bar[row["variant"]], bars, m["skew"], kurt, sr0), rel=1e-9)
        assert row["run_id"] == children[row["variant"]].info.run_id
    sharpes = [r["sharpe"] for r in summary["ranking"]]
    assert sharpes == sorted(sharpes, reverse=True) and summary["deflated_sharpe"]["trials"] == len(LOOKBACKS)


def test_monthly_table_equals_resampled_returns(module_run_script, client, logged, sweep_file):
    _, _, summary = logged
    _, frame = sweep_file
    child = children_of(client, summary)["sma_50"]
    res = module_run_script("query_experiments", "returns", child.info.run_id, "--format", "json")
    assert res.code == 0, res.err
    grid = json.loads(res.out)["monthly"]
    s = frame["sma_50"].loc[pd.Timestamp(summary["window"]["start"]) :]
    by_month = s.groupby([s.index.year, s.index.month]).apply(lambda r: float(np.prod(1 + r) - 1))
    for (year, month), value in by_month.items():
        assert grid[str(year)][f"{month:02d}"] == pytest.approx(value, rel=1e-9, abs=1e-12)
    md = module_run_script("query_experiments", "returns", child.info.run_id)
    assert md.code == 0 and "| year | Jan |" in md.out and "worst" in md.out


def test_rolling_and_benchmark_histories(client, logged):
    _, _, summary = logged
    child = children_of(client, summary)["sma_10"]
    keys = set(child.data.metrics)
    assert {"equity_curve", "drawdown", "rolling_sharpe", "rolling_volatility", "benchmark_equity_curve"} <= keys
    assert "backtest.rolling_window" in child.data.tags
    history = client.get_metric_history(child.info.run_id, "benchmark_equity_curve")
    assert 2 <= len(history) <= 250


def test_same_sweep_again_writes_nothing(module_run_script, client, logged):
    exp, args, summary = logged
    before = len(client.search_runs([summary["experiment_id"]], max_results=1000))
    res = module_run_script("log_backtest", *args[:-2])  # the same command, markdown
    assert res.code == 0, res.err
    assert "Already logged: sweep" in res.out and summary["run_id"] in res.out
    assert len(client.search_runs([summary["experiment_id"]], max_results=1000)) == before


def test_compare_best_children_with_the_backtest_preset(module_run_script, logged):
    _, _, summary = logged
    top = [r["run_id"] for r in summary["ranking"][:3]]
    res = module_run_script("query_experiments", "compare", *top, "--preset", "backtest", "--format", "json")
    assert res.code == 0, res.err
    rows = {row["field"]: row for row in json.loads(res.out)["rows"]}
    assert rows["metrics.sharpe"]["better"] == [0]  # the ranking's winner has the best Sharpe
    assert "params.lookback" in rows and "params.variant" in rows


@pytest.mark.slow  # a sweep of many variants
def test_sweep_markdown_is_bounded_for_many_variants(module_run_script, tmp_path):
    rng = np.random.default_rng(5)
    index = pd.bdate_range("2015-01-01", periods=2520)  # ten years of daily bars
    frame = pd.DataFrame({f"v_{i}": rng.normal(0.0003, 0.01, len(index)) for i in range(200)})
    frame.insert(0, "date", index.strftime("%Y-%m-%d"))
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    res = module_run_script("log_backtest", "--returns", path, "--columns", "v_*", "--dry-run")
    assert res.code == 0, res.err
    assert len(res.out) < 4000 and "top 10 of 200 variants" in res.out and "N = 200" in res.out
    assert "not distinguishable from luck" in res.out  # 200 noise variants: the winner is luck


# ---------------------------------------------------------------------------------------------
# Issue 23: late starters on one window, PBO, MinTRL, out of sample, the certificate
# ---------------------------------------------------------------------------------------------
LATE = [5, 20, 60, 120]


@pytest.fixture(scope="module")
def late_file(tmp_path_factory):
    """Moving-average variants whose long lookbacks have empty cells until they start (a late
    start, not a flat 0), and a variant that loses."""
    rng = np.random.default_rng(21)
    index = pd.bdate_range("2018-01-01", periods=1100)
    prices = pd.Series(100 * np.exp(np.cumsum(rng.normal(0.0003, 0.011, len(index)))), index=index)
    market = prices.pct_change().fillna(0.0)
    frame = pd.DataFrame({"date": index.strftime("%Y-%m-%d")})
    returns = {}
    for lookback in LATE:
        average = prices.rolling(lookback).mean()
        held = (prices > average).shift(1, fill_value=False)
        r = (held.astype(float) * market).where(average.shift(1).notna())  # NaN until the average exists
        returns[f"sma_{lookback}"] = r
        frame[f"sma_{lookback}"] = r.map(lambda v: "" if pd.isna(v) else repr(float(v))).to_numpy()
    returns["short"] = -market
    frame["short"] = (-market).to_numpy()
    path = tmp_path_factory.mktemp("late") / "late.csv"
    frame.to_csv(path, index=False)
    return path, pd.DataFrame(returns, index=index)


OOS_FROM = "2021-06-01"


@pytest.fixture(scope="module")
def late_logged(module_run_script, late_file):
    path, _ = late_file
    exp = unique("late-sweep")
    flags = ["--columns", "*", "--experiment", exp, "--oos-from", OOS_FROM, "--format", "json"]
    res = module_run_script("log_backtest", "--returns", path, *flags)
    assert res.code == 0, res.err
    return exp, json.loads(res.out)


def test_late_starters_are_scored_on_the_common_window(client, late_logged, late_file):
    _, summary = late_logged
    _, frame = late_file
    window = summary["window"]
    shared = frame.dropna()  # the bars every variant has: from where the latest starter has a value
    assert shared.index[0] == frame["sma_120"].first_valid_index() and window["shared_bars"] == len(shared)
    moves = {name: shared[name].ne(0).idxmax() for name in frame}  # then where each first moves
    start = max(moves.values())
    assert pd.Timestamp(window["start"]) == start and window["last_to_start"] == max(moves, key=moves.get)
    children = children_of(client, summary)
    assert len({(r.data.params["data.start"], r.data.params["data.periods"]) for r in children.values()}) == 1
    in_sample = frame.loc[start : pd.Timestamp(OOS_FROM) - pd.Timedelta(days=1)]
    assert window["bars"] == len(in_sample)
    held_out = len(frame.loc[pd.Timestamp(OOS_FROM) :])
    for name in frame:  # each variant's own bars outside the window (in sample and held out)
        assert window["dropped_bars"][name] == int(frame[name].notna().sum()) - len(in_sample) - held_out


def test_pbo_equals_an_independent_cscv_on_the_sweep(client, late_logged, late_file):
    from test_quant_pbo import reference_cscv

    _, summary = late_logged
    _, frame = late_file
    start, end = pd.Timestamp(summary["window"]["start"]), pd.Timestamp(summary["window"]["end"])
    ref = reference_cscv(frame.loc[start:end], 16)
    assert abs(summary["pbo"]["pbo"] - ref["pbo"]) <= 0.05
    assert summary["pbo"]["blocks"] == 16 and summary["pbo"]["splits"] == 12870
    parent = client.get_run(summary["run_id"])
    assert parent.data.metrics["pbo"] == pytest.approx(summary["pbo"]["pbo"])
    assert parent.data.metrics["pbo_degradation_slope"] == pytest.approx(ref["slope"], rel=1e-6)
    assert parent.data.metrics["pbo_prob_oos_loss"] == pytest.approx(ref["loss"], abs=1e-9)


def test_children_carry_psr_dsr_and_min_trl(client, late_logged):
    from test_quant_pbo import reference_min_trl

    _, summary = late_logged
    children = children_of(client, summary)
    bars = summary["window"]["bars"]
    rows = {r["variant"]: r for r in summary["ranking"]}
    for name, run in children.items():
        m, sr = run.data.metrics, run.data.metrics["sharpe"] / math.sqrt(252)
        assert m["psr"] == pytest.approx(reference_psr(sr, bars, m["skew"], m["kurtosis"] + 3, 0.0), rel=1e-9)
        assert m["dsr"] == pytest.approx(rows[name]["dsr"], rel=1e-12)
        if sr > 0:
            expected = reference_min_trl(sr, m["skew"], m["kurtosis"] + 3) / 252
            assert m["min_trl_years"] == pytest.approx(expected, rel=1e-9) == rows[name]["min_trl_years"]
        else:
            assert "min_trl_years" not in m and run.data.tags["backtest.min_trl_years"].startswith("inf")


def test_out_of_sample_report_for_the_in_sample_winner(client, late_logged, late_file):
    _, summary = late_logged
    _, frame = late_file
    oos = summary["out_of_sample"]
    held = frame.loc[pd.Timestamp(OOS_FROM) :]
    assert oos["bars"] == len(held) and pd.Timestamp(oos["start"]) == held.index[0]
    winner = summary["ranking"][0]["variant"]
    assert oos["winner"] == winner  # picked in sample: the best in-sample Sharpe
    r = held[winner].to_numpy()
    equity = np.cumprod(1 + r)
    assert oos["out_of_sample"]["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert oos["out_of_sample"]["cumulative_return"] == pytest.approx(equity[-1] - 1, rel=1e-9)
    dd = np.min(equity / np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:] - 1)
    assert oos["out_of_sample"]["max_drawdown"] == pytest.approx(dd, rel=1e-9)
    by_oos = sorted(frame, key=lambda n: -held[n].mean() / held[n].std(ddof=1))
    assert oos["winner_oos_rank"] == by_oos.index(winner) + 1
    parent = client.get_run(summary["run_id"]).data
    assert parent.metrics["oos_sharpe"] == pytest.approx(oos["out_of_sample"]["sharpe"])
    assert parent.params["data.oos_start"] == oos["start"]


def test_certificate_on_the_parent(client, late_logged, tmp_path):
    _, summary = late_logged
    path = client.download_artifacts(summary["run_id"], "backtest/certificate.json", str(tmp_path))
    cert = json.loads(open(path).read())
    d = summary["deflated_sharpe"]
    assert cert["trials"] == d["trials"] == len(LATE) + 1 and cert["dsr"] == pytest.approx(d["winner_dsr"])
    assert cert["variance"] == pytest.approx(d["sharpe_variance_per_bar"]) and cert["pbo"] == summary["pbo"]["pbo"]
    assert cert["window"]["start"] == summary["window"]["start"] and cert["window"]["out_of_sample"]["bars"] > 0
    assert len(cert["code_version"]["figures_sha256"]) == 16 and cert["code_version"]["quantstats"]
    winner = client.get_run(summary["ranking"][0]["run_id"]).data.metrics
    assert cert["min_trl_years"] == pytest.approx(winner["min_trl_years"])
    parent = client.get_run(summary["run_id"]).data.metrics
    for key in ("best_sharpe", "best_psr", "best_dsr", "sweep_variants", "sweep_trials", "pbo"):
        assert key in parent, key


def test_sweep_answer_says_min_trl_pbo_oos_and_the_created_experiment(module_run_script, late_file):
    path, _ = late_file
    exp = unique("late-md")
    res = module_run_script(
        "log_backtest", "--returns", path, "--columns", "*", "--experiment", exp, "--oos-from", "0.8"
    )
    assert res.code == 0, res.err
    assert f"experiment **{exp}** created by this call" in res.out
    assert "MinTRL (y)" in res.out and "probability of backtest overfitting (CSCV, 16 blocks" in res.out
    assert "out of sample (--oos-from 0.8: the last 20 % of the bars)" in res.out
    assert "left out of the common window: sma_5" in res.out
    again = module_run_script(
        "log_backtest", "--returns", path, "--columns", "*", "--experiment", exp, "--oos-from", "0.8"
    )
    assert again.code == 0 and "Already logged" in again.out and "created by this call" not in again.out
