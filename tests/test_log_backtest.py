"""log_backtest.py against the real tracking server: QuantStats' values, histories, artifacts,
annualisation, benchmark metrics, bad input, and runs that fail after they were created.

Runs are shared per module (QuantStats is slow): `daily_run` logs one full run (histories and
tearsheet) that several tests read; the other logged runs skip the tearsheet and histories.
Tolerances: values are compared with QuantStats' own stats functions at 1e-9 relative, and with
reports.metrics(mode="full") at 0.0051 in its displayed units (it rounds to 2 decimals).
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from mlflow_skill.backtest import periods

from conftest import Result, call_script, clean_env, unique
from reliability import error_lines

SCRIPT = "log_backtest"
HISTORIES = ("equity_curve", "drawdown", "rolling_sharpe", "rolling_volatility", "benchmark_equity_curve")
API = "/api/2.0/mlflow"
RF = 0.02


# ---------------------------------------------------------------------------------------------
# Data (seeded) and an in-process runner usable from module-scoped fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("backtest-data")
    rng = np.random.default_rng(42)
    days = pd.bdate_range("2015-01-02", periods=2520)  # ten years of trading days
    strat = rng.normal(0.0005, 0.011, len(days))
    bench = rng.normal(0.0003, 0.009, len(days)) + 0.3 * strat
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "returns": strat}).to_csv(folder / "daily.csv", index=False)
    pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "strategy": strat, "spy": bench}).to_csv(
        folder / "both.csv", index=False
    )
    bench_days = pd.bdate_range("2014-06-02", periods=2800)  # starts earlier, ends later
    spy = 200 * np.exp(np.cumsum(rng.normal(0.0003, 0.009, len(bench_days))))
    pd.DataFrame({"date": bench_days.strftime("%Y-%m-%d"), "close": spy}).to_csv(folder / "spy.csv", index=False)
    cal = pd.date_range("2022-01-01", periods=730, freq="D")  # crypto: every calendar day
    pd.DataFrame({"date": cal.strftime("%Y-%m-%d"), "btc": rng.normal(0.001, 0.03, len(cal))}).to_csv(
        folder / "crypto.csv", index=False
    )
    hours = pd.date_range("2024-01-01", periods=24 * 45, freq="h")  # 24/7 hourly bars
    pd.DataFrame({"timestamp": hours, "r": rng.normal(0, 0.002, len(hours))}).to_parquet(folder / "hourly.parquet")
    session = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=9, minutes=30) + pd.Timedelta(minutes=m)
            for d in pd.bdate_range("2024-01-01", periods=30)
            for m in range(390)
        ]
    )
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, len(session))))
    pd.DataFrame({"time": session.strftime("%Y-%m-%dT%H:%M:%S"), "close": prices}).to_csv(
        folder / "minute_prices.csv", index=False
    )
    up = pd.bdate_range("2024-01-01", periods=60)  # never loses: drawdown averages, losses undefined
    pd.DataFrame({"date": up.strftime("%Y-%m-%d"), "returns": rng.uniform(0.001, 0.01, len(up))}).to_csv(
        folder / "up_only.csv", index=False
    )
    return folder


@pytest.fixture(scope="module")
def invoke(server, tmp_path_factory):
    """invoke(*args, uri=..., cwd=...) -> Result: the script's main() in this process."""
    env_dir = tmp_path_factory.mktemp("lb-envdir")

    def run(*args, uri: str | None = None, cwd: Path | None = None) -> Result:
        env = clean_env(env_dir=env_dir)
        env["MLFLOW_TRACKING_URI"] = uri or server.uri
        return call_script(SCRIPT, args, env, cwd)

    return run


def strategy(data_dir: Path, name: str = "daily.csv", col: str = "returns") -> pd.Series:
    frame = pd.read_csv(data_dir / name)
    series = pd.Series(frame[col].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(frame.iloc[:, 0])), name="returns")
    return series


def as_json(result: Result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def run_of(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was not created"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


@pytest.fixture(scope="module")
def daily_run(invoke, client, data_dir):
    """The full path: histories, tearsheet, artifacts; no connection may leave 127.0.0.1."""
    experiment = unique("lb-daily")
    attempts: list = []
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"test forbids network access to {address}")
        return real_connect(sock, address)

    socket.socket.connect = guarded
    try:
        result = invoke(
            "--returns",
            data_dir / "daily.csv",
            "--experiment",
            experiment,
            "--run-name",
            "daily momentum",
            "--risk-free",
            RF,
            "--param",
            "fast=20",
            "--params",
            '{"slow": 50, "universe": ["SPY", "QQQ"]}',
            "--tag",
            "team=quant",
        )
    finally:
        socket.socket.connect = real_connect
    assert result.code == 0, result.err
    return {"result": result, "run": run_of(client, experiment), "experiment": experiment, "network": attempts}


# ---------------------------------------------------------------------------------------------
# The logged run
# ---------------------------------------------------------------------------------------------
# reports.metrics(mode="full") row -> our key (rows QuantStats shows as percent are scaled x100
# with as_pct=True; "All-time (ann.)" equals CAGR because cagr() ignores rf)
QS_ROWS = {
    "Time in Market": "time_in_market",
    "Cumulative Return": "cumulative_return",
    "CAGR﹪": "cagr",
    "Sharpe": "sharpe",
    "Prob. Sharpe Ratio": "probabilistic_sharpe_ratio",
    "Smart Sharpe": "smart_sharpe",
    "Sortino": "sortino",
    "Smart Sortino": "smart_sortino",
    "Sortino/√2": "sortino_sqrt2",
    "Smart Sortino/√2": "smart_sortino_sqrt2",
    "Omega": "omega",
    "Max Drawdown": "max_drawdown",
    "Longest DD Days": "longest_drawdown_days",
    "Volatility (ann.)": "volatility",
    "Calmar": "calmar",
    "Skew": "skew",
    "Kurtosis": "kurtosis",
    "Ulcer Performance Index": "ulcer_performance_index",
    "Risk-Adjusted Return": "risk_adjusted_return",
    "Risk-Return Ratio": "risk_return_ratio",
    "Avg. Return": "avg_return",
    "Avg. Win": "avg_win",
    "Avg. Loss": "avg_loss",
    "Win/Loss Ratio": "win_loss_ratio",
    "Profit Ratio": "profit_ratio",
    "Expected Daily": "expected_return_period",
    "Expected Monthly": "expected_return_month",
    "Expected Yearly": "expected_return_year",
    "Kelly Criterion": "kelly_criterion",
    "Risk of Ruin": "risk_of_ruin",
    "Daily Value-at-Risk": "value_at_risk",
    "Expected Shortfall (cVaR)": "cvar",
    "Max Consecutive Wins": "max_consecutive_wins",
    "Max Consecutive Losses": "max_consecutive_losses",
    "Gain/Pain Ratio": "gain_to_pain_ratio",
    "Gain/Pain (1M)": "gain_to_pain_1m",
    "Payoff Ratio": "payoff_ratio",
    "Profit Factor": "profit_factor",
    "Common Sense Ratio": "common_sense_ratio",
    "CPC Index": "cpc_index",
    "Tail Ratio": "tail_ratio",
    "Outlier Win Ratio": "outlier_win_ratio",
    "Outlier Loss Ratio": "outlier_loss_ratio",
    "MTD": "return_mtd",
    "3M": "return_3m",
    "6M": "return_6m",
    "YTD": "return_ytd",
    "1Y": "return_1y",
    "3Y (ann.)": "cagr_3y",
    "5Y (ann.)": "cagr_5y",
    "10Y (ann.)": "cagr_10y",
    "All-time (ann.)": "cagr",
    "Best Day": "best_period",
    "Worst Day": "worst_period",
    "Best Month": "best_month",
    "Worst Month": "worst_month",
    "Best Year": "best_year",
    "Worst Year": "worst_year",
    "Avg. Drawdown": "avg_drawdown",
    "Avg. Drawdown Days": "avg_drawdown_days",
    "Recovery Factor": "recovery_factor",
    "Ulcer Index": "ulcer_index",
    "Serenity Index": "serenity_index",
    "Avg. Up Month": "avg_up_month",
    "Avg. Down Month": "avg_down_month",
    "Win Days": "win_rate",
    "Win Month": "win_rate_month",
    "Win Quarter": "win_rate_quarter",
    "Win Year": "win_rate_year",
}


def qs_report(series, benchmark=None, ppy=252, rf=RF):
    import quantstats as qs

    with np.errstate(all="ignore"):
        return qs.reports.metrics(
            series.copy(), benchmark=benchmark, rf=rf, mode="full", display=False, periods_per_year=ppy, as_pct=True
        )


# Deliberate deviations (references/quantstats-metrics.md, tested in test_numbers_backtest.py):
# risk_of_ruin underflows to 0 over these long series and is left out; Gain/Pain subtracts --risk-free.
QS_DEVIATIONS = ("risk_of_ruin", "gain_to_pain_ratio", "gain_to_pain_1m")


def assert_matches_report(metrics: dict, report, column: str = "Strategy", prefix: str = "", skip: tuple = ()):
    skip = (*skip, *QS_DEVIATIONS)
    from mlflow_skill.backtest import metrics as bm

    pct_keys = bm.PCT_KEYS
    checked = 0
    for row, key in QS_ROWS.items():
        if key in skip:
            continue
        shown = report.loc[row, column]
        ours = metrics.get(prefix + key)
        if shown == "-":  # QuantStats shows undefined as "-": we must not have logged it
            assert ours is None, f"{key}: QuantStats says undefined, we logged {ours}"
            continue
        assert ours is not None, f"{key} missing"
        scale = 100.0 if key in pct_keys else 1.0
        if key in ("avg_drawdown_days",):  # QuantStats truncates to int
            assert abs(ours - float(shown)) < 1.0, (key, ours, shown)
        else:
            assert abs(ours * scale - float(shown)) <= 0.0051, (row, key, ours * scale, shown)
        checked += 1
    assert checked >= 62


def test_logged_values_equal_quantstats(daily_run, data_dir):
    import quantstats as qs

    metrics = daily_run["run"].data.metrics
    scalars = {k: v for k, v in metrics.items() if k not in HISTORIES}
    assert len(scalars) >= 70, sorted(scalars)
    assert all(math.isfinite(v) for v in scalars.values())
    r = strategy(data_dir)
    assert_matches_report(scalars, qs_report(r))
    # exact, against the stats functions with the same settings (1e-9 relative)
    with np.errstate(all="ignore"):
        exact = {
            "sharpe": qs.stats.sharpe(r, rf=RF, periods=252),
            "sortino": qs.stats.sortino(r, rf=RF, periods=252),
            "cagr": qs.stats.cagr(r, rf=RF, periods=252),
            "volatility": qs.stats.volatility(r, periods=252),
            "max_drawdown": qs.stats.max_drawdown(r),
            "calmar": qs.stats.calmar(r, periods=252),
            "profit_factor": qs.stats.profit_factor(r),
            "ulcer_index": qs.stats.ulcer_index(r),
        }
        details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(r))
    exact["avg_drawdown"] = details["max drawdown"].mean() / 100
    exact["avg_drawdown_days"] = details["days"].mean()
    exact["longest_drawdown_days"] = details["days"].max()
    for key, value in exact.items():
        assert scalars[key] == pytest.approx(float(value), rel=1e-9), key
    # no benchmark: no benchmark metrics
    assert not any(
        k.startswith("benchmark_") or k in ("alpha", "beta", "information_ratio", "r_squared") for k in scalars
    )


def test_run_params_tags_and_output(daily_run, data_dir):
    run, out = daily_run["run"], daily_run["result"].out
    assert run.info.status == "FINISHED" and run.info.run_name == "daily momentum"
    params = run.data.params
    assert params["fast"] == "20" and params["slow"] == "50" and json.loads(params["universe"]) == ["SPY", "QQQ"]
    assert params["data.file"] == "daily.csv"
    assert params["data.sha256"] == hashlib.sha256((data_dir / "daily.csv").read_bytes()).hexdigest()
    assert params["data.start"].startswith("2015-01-02") and params["data.periods"] == "2520"
    assert params["data.periods_per_year"] == "252" and params["data.risk_free"] == "0.02"
    import quantstats

    assert params["quantstats_version"] == quantstats.__version__
    assert run.data.tags["team"] == "quant"
    assert run.data.tags["backtest.periods_per_year"].startswith("252 (inferred")
    assert run.data.tags.get("backtest.undefined_metrics") == "risk_of_ruin"  # underflow, named with its reason
    # compact markdown: link, periods per year, headline table, count
    assert out.startswith("store: ")
    assert f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in out
    assert "periods per year: 252 (inferred: daily bars without weekends" in out
    assert "| Sharpe |" in out and "| Max drawdown |" in out and "| Profit factor |" in out
    n = len([k for k in run.data.metrics if k not in HISTORIES])
    assert f"- {n} metrics logged" in out
    assert len(out.splitlines()) < 35
    assert daily_run["network"] == []  # nothing tried to leave 127.0.0.1 (tearsheet included)


def test_equity_curve_and_drawdown_histories(daily_run, client, data_dir):
    run_id = daily_run["run"].info.run_id
    r = strategy(data_dir)
    equity = client.get_metric_history(run_id, "equity_curve")
    drawdown = client.get_metric_history(run_id, "drawdown")
    assert len(equity) == len(r) == len(drawdown)
    equity.sort(key=lambda m: m.step)
    assert [m.step for m in equity] == list(range(len(r)))
    expected_ts = (r.index.values.astype("datetime64[ms]").astype(np.int64)).tolist()
    assert [m.timestamp for m in equity] == expected_ts
    assert equity[-1].value == pytest.approx(float((1 + r).prod()), rel=1e-9)
    assert min(m.value for m in drawdown) == pytest.approx(daily_run["run"].data.metrics["max_drawdown"], rel=1e-9)


def test_artifacts_tearsheet_is_html(daily_run, client, tmp_path):
    run_id = daily_run["run"].info.run_id
    listed = {a.path for a in client.list_artifacts(run_id, "backtest")}
    assert listed == {
        "backtest/returns.csv",
        "backtest/metrics.json",
        "backtest/periods.json",
        "backtest/tearsheet.html",
    }
    local = Path(client.download_artifacts(run_id, "backtest", str(tmp_path)))
    html = (local / "tearsheet.html").read_text()
    assert "<!doctype html>" in html[:200].lower() and html.rstrip().lower().endswith("</html>")
    assert "<svg" in html and "Sharpe" in html
    stored = json.loads((local / "metrics.json").read_text())
    assert stored["metrics"]["sharpe"] == pytest.approx(daily_run["run"].data.metrics["sharpe"], rel=1e-12)
    frame = pd.read_csv(local / "returns.csv")
    assert list(frame.columns) == ["date", "returns"] and len(frame) == 2520


# ---------------------------------------------------------------------------------------------
# Annualisation, benchmark, dry-run
# ---------------------------------------------------------------------------------------------
def store_counts(server) -> tuple[int, int]:
    exps = requests.post(
        f"{server.uri}{API}/experiments/search", json={"max_results": 50000, "view_type": "ALL"}, timeout=30
    ).json()
    ids = [e["experiment_id"] for e in exps.get("experiments", [])]
    runs = requests.post(
        f"{server.uri}{API}/runs/search",
        json={"experiment_ids": ids, "max_results": 50000, "run_view_type": "ALL"},
        timeout=30,
    ).json()
    return len(ids), len(runs.get("runs", []))


def test_dry_run_leaves_store_unchanged(invoke, server, client, data_dir):
    before = store_counts(server)
    experiment = unique("lb-dry")
    result = invoke("--returns", data_dir / "daily.csv", "--experiment", experiment, "--dry-run", "--risk-free", RF)
    assert result.code == 0, result.err
    assert "Dry run: nothing logged" in result.out and "metrics would be logged" in result.out
    assert store_counts(server) == before
    assert client.get_experiment_by_name(experiment) is None


def test_crypto_daily_with_weekends_uses_365(invoke, data_dir):
    import quantstats as qs

    out = as_json(invoke("--returns", data_dir / "crypto.csv", "--dry-run", "--format", "json"))
    assert out["periods_per_year"] == 365 and "weekends" in out["periods_per_year_how"]
    r = strategy(data_dir, "crypto.csv", "btc")
    with np.errstate(all="ignore"):
        assert out["metrics"]["sharpe"] == pytest.approx(qs.stats.sharpe(r, periods=365), rel=1e-9)
        assert out["metrics"]["volatility"] == pytest.approx(qs.stats.volatility(r, periods=365), rel=1e-9)
        assert out["metrics"]["cagr"] == pytest.approx(qs.stats.cagr(r, periods=365), rel=1e-9)
    # stats.rar annualises with 252 whatever the data: ours uses 365; two years of data have no
    # 3/5/10-year CAGR (QuantStats shows the whole period's): references/quantstats-metrics.md
    windows = ("cagr_3y", "cagr_5y", "cagr_10y")
    assert_matches_report(out["metrics"], qs_report(r, ppy=365, rf=0.0), skip=("risk_adjusted_return", *windows))
    assert all("less than the metric's window" in out["undefined_reasons"][k] for k in windows)
    with np.errstate(all="ignore"):
        rar = qs.stats.cagr(r, periods=365) / qs.stats.exposure(r)
    assert out["metrics"]["risk_adjusted_return"] == pytest.approx(rar, rel=1e-9)


def test_intraday_annualisation(invoke, data_dir):
    import quantstats as qs

    hourly = as_json(invoke("--returns", data_dir / "hourly.parquet", "--dry-run", "--format", "json"))
    assert hourly["periods_per_year"] == 365 * 24  # 24/7 market
    frame = pd.read_parquet(data_dir / "hourly.parquet")
    r = pd.Series(frame["r"].to_numpy(), index=pd.DatetimeIndex(frame["timestamp"]))
    with np.errstate(all="ignore"):
        assert hourly["metrics"]["sharpe"] == pytest.approx(qs.stats.sharpe(r, periods=8760), rel=1e-9)
    minute = as_json(invoke("--returns", data_dir / "minute_prices.csv", "--prices", "--dry-run", "--format", "json"))
    assert minute["periods_per_year"] == 252 * 390  # exchange session, no weekends
    assert minute["data"]["data.periods"] == str(30 * 390 - 1)  # prices -> returns loses the first bar
    given = as_json(
        invoke(
            "--returns",
            data_dir / "minute_prices.csv",
            "--prices",
            "--periods-per-year",
            "1000",
            "--dry-run",
            "--format",
            "json",
        )
    )
    assert given["periods_per_year"] == 1000 and given["periods_per_year_how"] == "given by --periods-per-year"
    ratio = minute["metrics"]["volatility"] / given["metrics"]["volatility"]
    assert ratio == pytest.approx(math.sqrt(252 * 390 / 1000), rel=1e-9)


@pytest.fixture(scope="module")
def bench_run(invoke, client, data_dir):
    experiment = unique("lb-bench")
    result = invoke(
        "--returns",
        data_dir / "both.csv",
        "--column",
        "strategy",
        "--benchmark-column",
        "spy",
        "--experiment",
        experiment,
        "--no-history",
        "--no-tearsheet",
        "--risk-free",
        RF,
    )
    assert result.code == 0, result.err
    return {"result": result, "run": run_of(client, experiment)}


def test_benchmark_metrics_only_with_benchmark(bench_run, daily_run, data_dir):
    import quantstats as qs

    with_b = {k: v for k, v in bench_run["run"].data.metrics.items()}
    without = {k: v for k, v in daily_run["run"].data.metrics.items() if k not in HISTORIES}
    relative = {"alpha", "beta", "correlation", "r_squared", "information_ratio", "treynor_ratio"}
    assert relative <= set(with_b) and not relative & set(without)
    assert len(with_b) > len(without) + 60
    assert {"benchmark_sharpe", "benchmark_cagr", "benchmark_max_drawdown"} <= set(with_b)
    frame = pd.read_csv(data_dir / "both.csv")
    idx = pd.DatetimeIndex(pd.to_datetime(frame["Date"]))
    r, b = pd.Series(frame["strategy"].to_numpy(), index=idx), pd.Series(frame["spy"].to_numpy(), index=idx)
    # the strategy's metrics are the same series' metrics as without a benchmark
    assert with_b["sharpe"] == pytest.approx(without["sharpe"], rel=1e-12)
    with np.errstate(all="ignore"):
        greeks = qs.stats.greeks(r, b, periods=252)
        assert with_b["beta"] == pytest.approx(float(greeks["beta"]), rel=1e-9)
        # Jensen's alpha on excess returns over --risk-free (stats.greeks ignores rf; equal when rf = 0)
        rf_bar = (1 + RF) ** (1 / 252) - 1
        jensen = ((r - rf_bar).mean() - float(greeks["beta"]) * (b - rf_bar).mean()) * 252
        assert with_b["alpha"] == pytest.approx(float(jensen), rel=1e-9)
        assert float(greeks["alpha"]) == pytest.approx((r.mean() - float(greeks["beta"]) * b.mean()) * 252, rel=1e-9)
        # annualised (QuantStats' is per bar: references/quantstats-metrics.md, Deviations)
        assert with_b["information_ratio"] == pytest.approx(
            float(qs.stats.information_ratio(r, b)) * math.sqrt(252), rel=1e-9
        )
        assert with_b["r_squared"] == pytest.approx(float(qs.stats.r_squared(r, b)), rel=1e-9)
        assert with_b["benchmark_sharpe"] == pytest.approx(float(qs.stats.sharpe(b, rf=RF, periods=252)), rel=1e-9)
    report = qs_report(r, benchmark=b)
    assert_matches_report(with_b, report, "Strategy")
    # reports.metrics applies the STRATEGY's autocorrelation penalty to the benchmark's smart
    # ratios (stats.autocorr_penalty takes a DataFrame's first column); we log the benchmark's own,
    # i.e. exactly what stats.smart_sharpe/smart_sortino give for the benchmark series.
    smart = ("smart_sharpe", "smart_sortino", "smart_sortino_sqrt2")
    assert_matches_report(with_b, report, "Benchmark", prefix="benchmark_", skip=smart)
    with np.errstate(all="ignore"):
        assert with_b["benchmark_smart_sharpe"] == pytest.approx(
            float(qs.stats.smart_sharpe(b, rf=RF, periods=252)), rel=1e-9
        )
        assert with_b["benchmark_smart_sortino"] == pytest.approx(
            float(qs.stats.smart_sortino(b, rf=RF, periods=252)), rel=1e-9
        )
    assert abs(with_b["beta"] - float(report.loc["Beta", "Strategy"])) <= 0.0051
    assert "| Beta |" in bench_run["result"].out


def test_benchmark_file_aligned_on_dates(invoke, data_dir):
    """spy.csv holds prices over a longer span: returns are taken between the strategy's bars."""
    out = as_json(
        invoke(
            "--returns",
            data_dir / "daily.csv",
            "--benchmark",
            data_dir / "spy.csv",
            "--benchmark-prices",
            "--dry-run",
            "--format",
            "json",
        )
    )
    spy = pd.read_csv(data_dir / "spy.csv")
    prices = pd.Series(spy["close"].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(spy["date"])))
    r = strategy(data_dir)
    b = prices.reindex(prices.index.union(r.index)).ffill().pct_change().reindex(r.index)
    import quantstats as qs

    with np.errstate(all="ignore"):
        assert out["metrics"]["beta"] == pytest.approx(float(qs.stats.greeks(r, b, periods=252)["beta"]), rel=1e-9)
        assert out["metrics"]["benchmark_cagr"] == pytest.approx(float(qs.stats.cagr(b, periods=252)), rel=1e-9)
    assert out["data"]["data.benchmark_file"] == "spy.csv"


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------
def test_unsorted_and_percent_strings_are_handled(invoke, data_dir, tmp_path):
    frame = pd.read_csv(data_dir / "daily.csv").head(300)
    shuffled = frame.sample(frac=1.0, random_state=1)
    shuffled["returns"] = [f"{v * 100:.10f}%" for v in shuffled["returns"]]
    shuffled.to_csv(tmp_path / "messy.csv", index=False)
    frame.to_parquet(tmp_path / "clean.parquet")
    messy = as_json(invoke("--returns", tmp_path / "messy.csv", "--dry-run", "--format", "json"))
    clean = as_json(invoke("--returns", tmp_path / "clean.parquet", "--dry-run", "--format", "json"))
    assert any("not in time order; sorted" in n for n in messy["notes"])
    assert messy["metrics"]["sharpe"] == pytest.approx(clean["metrics"]["sharpe"], rel=1e-9)
    assert messy["metrics"]["max_drawdown"] == pytest.approx(clean["metrics"]["max_drawdown"], rel=1e-9)


def test_undefined_metrics_are_left_out_not_zero(invoke, client, data_dir):
    experiment = unique("lb-undefined")
    result = invoke("--returns", data_dir / "up_only.csv", "--experiment", experiment, "--no-history", "--no-tearsheet")
    assert result.code == 0, result.err
    run = run_of(client, experiment)
    undefined = run.data.tags["backtest.undefined_metrics"].split(", ")
    assert {"avg_loss", "avg_drawdown", "avg_drawdown_days"} <= set(undefined)
    assert not set(undefined) & set(run.data.metrics)
    assert run.data.metrics["max_drawdown"] == 0.0  # defined: never below a peak
    assert "undefined for this data, not logged" in result.out and "avg_drawdown" in result.out


BAD_INPUTS = [
    ("empty.csv", "", [], "is empty"),
    ("header.csv", "date,returns\n", [], "no data rows"),
    (
        "text.csv",
        "date,returns\n2024-01-01,0.01\n2024-01-02,abc\n2024-01-03,0.02\n",
        [],
        "row 2 (line 3), column 'returns' holds 'abc'",
    ),
    (
        "blank.csv",
        "date,returns\n2024-01-01,0.01\n2024-01-02,\n2024-01-03,0.02\n",
        [],
        "row 2 (line 3), column 'returns' is empty",
    ),
    (
        "dup.csv",
        "date,returns\n2024-01-01,0.01\n2024-01-02,0.02\n2024-01-01,0.03\n",
        [],
        "row 1 (line 2) and row 3 (line 4) have the same time 2024-01-01",
    ),
    (
        "baddate.csv",
        "date,returns\n2024-01-01,0.01\nnot-a-date,0.02\n",
        [],
        "row 2 (line 3), column 'date': cannot read 'not-a-date'",
    ),
    (
        "two.csv",
        "date,a,b\n2024-01-01,0.01,0.2\n2024-01-02,0.02,0.1\n",
        [],
        "several numeric columns (a, b): pass --column",
    ),
    (
        "price.csv",
        "date,close\n2024-01-01,10\n2024-01-02,0\n2024-01-03,11\n",
        ["--prices"],
        "row 2 (line 3), column 'close': price 0 is not positive",
    ),
    (
        "pct.csv",
        "date,returns\n2024-01-01,1.5\n2024-01-02,-250\n",
        [],
        "below -100 %; if the column holds percent numbers pass --percent",
    ),
    ("one.csv", "date,returns\n2024-01-01,0.01\n", [], "at least 2 are needed"),
    ("ok.csv", "date,returns\n2024-01-01,0.01\n2024-01-02,0.02\n", ["--params", "{oops"], "--params is not valid JSON"),
    ("ok2.csv", "date,returns\n2024-01-01,0.01\n2024-01-02,0.02\n", ["--column", "nope"], "--column 'nope' is not in"),
    (
        "ok3.csv",
        "date,returns\n2024-01-01,0.01\n2024-01-02,0.02\n",
        ["--param", "data.file=x"],
        "reserved for the data's facts",
    ),
]


@pytest.mark.parametrize("name,content,extra,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_is_created(invoke, client, tmp_path, name, content, extra, message):
    (tmp_path / name).write_text(content)
    experiment = unique("lb-bad")
    result = invoke("--returns", tmp_path / name, "--experiment", experiment, *extra)
    assert result.code == 2, result.both
    assert result.out == ""
    lines = error_lines(result.err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.err
    assert message in lines[0]
    assert client.get_experiment_by_name(experiment) is None  # nothing created


def test_failure_after_run_created_marks_it_failed(invoke, client, tmp_path, data_dir):
    """An experiment whose artifact location cannot be written (a path under a regular file):
    metrics get logged, the artifact upload fails, the run must end FAILED with the error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    experiment = unique("lb-fail")
    client.create_experiment(experiment, artifact_location=str(blocker / "artifacts"))
    result = invoke("--returns", data_dir / "daily.csv", "--experiment", experiment, "--no-history", "--no-tearsheet")
    assert result.code != 0
    lines = error_lines(result.err)
    assert len(lines) == 1 and "marked FAILED" in lines[0] and "Traceback" not in result.err
    run = run_of(client, experiment)
    assert run.info.status == "FAILED" and run.info.end_time
    assert run.data.tags.get("backtest.error")
    assert run.info.run_id in lines[0]


def test_embedded_sqlite_store_with_local_artifacts(invoke, tmp_path, data_dir):
    """No server: MLflow's default sqlite store in the working directory; artifacts to ./mlruns."""
    result = invoke(
        "--returns",
        data_dir / "crypto.csv",
        "--experiment",
        "local",
        "--no-tearsheet",
        "--format",
        "json",
        uri="sqlite:///" + str(tmp_path / "mlflow.db"),
        cwd=tmp_path,
    )
    out = as_json(result)
    assert out["status"] == "FINISHED" and out["url"] is None
    rolled = 730 - periods.rolling_window(out["periods_per_year"], 730) + 1  # NaN until the window is full
    assert out["histories"] == {
        "equity_curve": 730,
        "drawdown": 730,
        "rolling_sharpe": rolled,
        "rolling_volatility": rolled,
    }
    files = {p.name for p in tmp_path.rglob("*") if p.is_file() and "backtest" in p.parts}
    assert files == {"returns.csv", "metrics.json", "periods.json"}


def test_uv_run_subprocess(uv_run, client, data_dir):
    experiment = unique("lb-uv")
    result = uv_run(
        SCRIPT, "--returns", data_dir / "daily.csv", "--experiment", experiment, "--no-history", "--no-tearsheet"
    )
    assert result.code == 0, result.err
    run = run_of(client, experiment)
    assert run.info.status == "FINISHED"
    assert f"(id {run.info.run_id})" in result.out and "| Sharpe |" in result.out
    assert len(run.data.metrics) >= 70
    assert {a.path for a in client.list_artifacts(run.info.run_id, "backtest")} == {
        "backtest/returns.csv",
        "backtest/metrics.json",
        "backtest/periods.json",
    }


def test_every_logged_key_is_documented(bench_run):
    """references/quantstats-metrics.md lists each key (benchmark_ keys via benchmark_<key>)."""
    doc = (Path(__file__).resolve().parent.parent / "references" / "quantstats-metrics.md").read_text()
    keys = {k.removeprefix("benchmark_") for k in bench_run["run"].data.metrics}
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, missing
    assert "`benchmark_<key>`" in doc and "`equity_curve`" in doc and "`drawdown`" in doc
