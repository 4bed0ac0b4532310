# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow>=3.7",
#     "quantstats>=0.0.86",
#     "pandas>=2.0",
#     "pyarrow>=14",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = true  # QuantStats/MLflow are big: compile once, not per call
# ///
"""Log a backtest's returns to MLflow as one run with QuantStats' complete metric set.

Usage:
  uv run scripts/log_backtest.py --returns FILE [--prices] [--column NAME] [--date-column NAME]
                                 [--benchmark FILE | --benchmark-column NAME] [--benchmark-prices]
                                 [--periods-per-year N] [--risk-free RATE] [--percent]
                                 [--experiment NAME] [--run-name NAME] [--params JSON]
                                 [--param K=V ...] [--tag K=V ...]
                                 [--dry-run] [--no-history] [--no-tearsheet]

Input: CSV or Parquet with a date/time column (auto-detected, or --date-column) and one
returns column (auto-detected when it is the only numeric one, else --column). --prices reads
prices and derives simple returns. "1.5%" strings count as 0.015; --percent reads plain numbers
as percent. Unsorted rows are sorted (and the output says so); duplicate timestamps, empty
cells, non-numeric values and impossible values (returns below -100 %, prices <= 0) are refused
with the row and column named, before anything is created.

Periods per year are inferred from the timestamps unless given: 252 for daily bars without
weekend bars, 365 with weekend bars (crypto), 52 weekly, 12 monthly, and for intraday bars 252
or 365 days times the typical number of bars per day. --risk-free is an annual rate (0.04 = 4 %).

Logged: every QuantStats metric (75+ without a benchmark, more with one; keys and units in
references/quantstats-metrics.md); undefined ones (NaN, inf) are left out and named in the tag
backtest.undefined_metrics. Params: yours plus data facts (file, sha256, start, end, periods,
periods per year, risk-free, QuantStats version). Histories equity_curve and drawdown, one step
per bar stamped with the bar's time (--no-history skips). Artifacts under backtest/: the
normalised returns (CSV), all metrics (JSON), the QuantStats HTML tearsheet (--no-tearsheet
skips). If anything fails after the run was created, the run ends FAILED with the error in the
tag backtest.error. --dry-run computes and prints, and logs nothing.

Examples:
  uv run scripts/log_backtest.py --returns backtest.csv --experiment btc-momentum \\
      --run-name "mom 20/50" --param fast=20 --param slow=50 --tag asset=BTC
  uv run scripts/log_backtest.py --returns equity.parquet --prices --column close --risk-free 0.04
  uv run scripts/log_backtest.py --returns strat.csv --benchmark spy.csv --benchmark-prices
  uv run scripts/log_backtest.py --returns strat.csv --column strategy --benchmark-column spy
  uv run scripts/log_backtest.py --returns hourly.csv --periods-per-year 8760 --dry-run
  uv run scripts/log_backtest.py --returns strat.csv --params '{"lookback": 20}' --format json
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _backtest_data as bd
import _backtest_metrics as bm
import _cli as cli
import _common as c
import _store as st

SCRIPT = "log_backtest.py"
ARTIFACT_DIR = "backtest"
HISTORY_KEYS = ("equity_curve", "drawdown")
UNDEFINED_TAG = "backtest.undefined_metrics"
ERROR_TAG = "backtest.error"
BATCH_METRICS = 1000  # MLflow: MAX_METRICS_PER_BATCH / MAX_ENTITIES_PER_BATCH
BATCH_PARAMS_TAGS = 100  # MLflow: MAX_PARAMS_TAGS_PER_BATCH
MAX_PARAM_VALUE = 6000  # MLflow: MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE = 8000  # MLflow: MAX_TAG_VAL_LENGTH
MAX_KEY = 250  # MLflow: MAX_ENTITY_KEY_LENGTH
KEY_RE = re.compile(r"^[/\w.\- :]*$")  # MLflow's valid param/metric/tag names

# Headline metrics for the markdown table: (key, label)
HEADLINE = [
    ("cagr", "CAGR"),
    ("cumulative_return", "Cumulative return"),
    ("sharpe", "Sharpe"),
    ("sortino", "Sortino"),
    ("volatility", "Volatility (ann.)"),
    ("max_drawdown", "Max drawdown"),
    ("longest_drawdown_days", "Longest drawdown (days)"),
    ("calmar", "Calmar"),
    ("win_rate", "Win rate (bars)"),
    ("profit_factor", "Profit factor"),
    ("value_at_risk", "VaR 95 % (per bar)"),
    ("kelly_criterion", "Kelly criterion"),
]
BENCH_HEADLINE = [("alpha", "Alpha (ann.)"), ("beta", "Beta"), ("information_ratio", "Information ratio")]



def build_parser():
    parser = cli.make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    data = parser.add_argument_group("data")
    data.add_argument("--returns", required=True, metavar="FILE", help="CSV or Parquet file with the series")
    data.add_argument("--prices", action="store_true", help="the column holds prices (or equity), not returns")
    data.add_argument("--column", help="the returns (or prices) column (default: the only numeric column)")
    data.add_argument("--date-column", help="the date/time column (default: auto-detected)")
    data.add_argument("--percent", action="store_true", help="plain numbers are percent (1.5 means 1.5 %%)")
    data.add_argument("--benchmark", metavar="FILE", help="benchmark returns file, aligned on dates")
    data.add_argument("--benchmark-column", help="benchmark column in --returns FILE (or in --benchmark FILE)")
    data.add_argument("--benchmark-prices", action="store_true", help="the benchmark holds prices, not returns")
    data.add_argument("--periods-per-year", type=float, help="annualisation (default: inferred from the timestamps)")
    data.add_argument("--risk-free", type=float, default=0.0, help="annual risk-free rate, e.g. 0.04 (default 0)")
    run = parser.add_argument_group("run")
    run.add_argument("--experiment", default="backtests", help="experiment name, created if missing (default backtests)")
    run.add_argument("--run-name", help="run name (default: file name and time)")
    run.add_argument("--params", metavar="JSON", help='strategy params as a JSON object, e.g. \'{"fast": 20}\'')
    run.add_argument("--param", action="append", metavar="K=V", help="strategy param; repeatable")
    run.add_argument("--tag", action="append", metavar="K=V", help="run tag; repeatable")
    run.add_argument("--dry-run", action="store_true", help="compute and print; log nothing")
    run.add_argument("--no-history", action="store_true", help="skip the equity_curve/drawdown histories")
    run.add_argument("--no-tearsheet", action="store_true", help="skip the QuantStats HTML tearsheet")
    return parser


def collect_params(args, data: dict, ppy: float, qs_version: str) -> tuple[dict[str, str], dict[str, str]]:
    """Strategy params (--params JSON, --param) + data facts; tags. Validated before any request."""
    params: dict[str, str] = {}
    if args.params:
        try:
            loaded = json.loads(args.params)
        except ValueError as exc:
            raise c.UsageError(f"--params is not valid JSON ({exc.msg} at character {exc.pos}): pass an object like '{{\"fast\": 20}}'") from None
        if not isinstance(loaded, dict):
            raise c.UsageError("--params must be a JSON object like '{\"fast\": 20}'")
        for key, value in loaded.items():
            params[str(key)] = value if isinstance(value, str) else json.dumps(value)
    params.update(c.parse_key_values(args.param, "--param"))
    returns = data["returns"]
    facts = {
        "data.file": data["file"].name,
        "data.sha256": bd.sha256(data["file"]),
        "data.column": data["column"],
        "data.kind": "prices" if args.prices else "returns",
        "data.start": returns.index[0].isoformat(),
        "data.end": returns.index[-1].isoformat(),
        "data.periods": str(len(returns)),
        "data.periods_per_year": f"{ppy:g}",
        "data.risk_free": f"{args.risk_free:g}",
        "quantstats_version": qs_version,
    }
    if data["benchmark"] is not None:
        if data["benchmark_file"] is not None:
            facts["data.benchmark_file"] = data["benchmark_file"].name
            facts["data.benchmark_sha256"] = bd.sha256(data["benchmark_file"])
        facts["data.benchmark_column"] = data["benchmark_column"]
    clash = sorted(set(params) & set(facts))
    if clash:
        raise c.UsageError(f"param {clash[0]!r} is reserved for the data's facts: rename it")
    params.update(facts)
    tags = c.parse_key_values(args.tag, "--tag")
    for kind, items, limit in (("param", params, MAX_PARAM_VALUE), ("tag", tags, MAX_TAG_VALUE)):
        for key, value in items.items():
            if len(key) > MAX_KEY or not KEY_RE.match(key) or _path_not_unique(key):
                raise c.UsageError(
                    f"{kind} key {key!r} is not a valid MLflow key: use letters, digits, _ - . / : and spaces (max {MAX_KEY} chars)"
                )
            if len(str(value)) > limit:
                raise c.UsageError(f"{kind} {key!r} is {len(str(value))} characters long; MLflow allows {limit}")
    if len(params) > 2 * BATCH_PARAMS_TAGS or len(tags) > 2 * BATCH_PARAMS_TAGS - 10:
        raise c.UsageError(f"too many params/tags ({len(params)}/{len(tags)}): at most 200 each; put the rest in --params of fewer keys")
    return params, tags


def _path_not_unique(name: str) -> bool:
    import posixpath

    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith(("..", "/"))


# ---------------------------------------------------------------------------------------------
# Logging to the store
# ---------------------------------------------------------------------------------------------
def log_batches(store: st.Store, run_id: str, metrics: list[dict], params: dict[str, str], tags: dict[str, str]) -> int:
    """Scalar metrics, params and tags in as few log-batch requests as MLflow's limits allow
    (two for up to 1000 entities with <= 200 params and tags). Returns the request count."""
    plist = [{"key": k, "value": str(v)} for k, v in params.items()]
    tlist = [{"key": k, "value": str(v)} for k, v in tags.items()]
    requests_made = 0
    while metrics or plist or tlist:
        p, plist = plist[:BATCH_PARAMS_TAGS], plist[BATCH_PARAMS_TAGS:]
        t, tlist = tlist[:BATCH_PARAMS_TAGS], tlist[BATCH_PARAMS_TAGS:]
        room = BATCH_METRICS - len(p) - len(t)
        m, metrics = metrics[:room], metrics[room:]
        store.post(f"{st.API}/runs/log-batch", {"run_id": run_id, "metrics": m, "params": p, "tags": t}, what="logging metrics")
        requests_made += 1
    return requests_made


def log_histories(store: st.Store, run_id: str, returns, drawdown) -> int:
    import numpy as np

    stamps = (returns.index.values.astype("datetime64[ms]").astype(np.int64)).tolist()
    equity = (1.0 + returns).cumprod().to_numpy().tolist()
    dd = drawdown.to_numpy().tolist()
    points = []
    for step, (ts, e, d) in enumerate(zip(stamps, equity, dd)):
        if math.isfinite(e):
            points.append({"key": "equity_curve", "value": e, "timestamp": ts, "step": step})
        if math.isfinite(d):
            points.append({"key": "drawdown", "value": d, "timestamp": ts, "step": step})
    for start in range(0, len(points), BATCH_METRICS):
        store.post(f"{st.API}/runs/log-batch", {"run_id": run_id, "metrics": points[start : start + BATCH_METRICS]}, what="logging histories")
    return len(points)


def upload_artifacts(ctx: cli.Context, artifact_uri: str, files: list[Path]) -> list[str]:
    """Proxied artifacts (mlflow-artifacts:) go over HTTP PUT like MLflow's HttpArtifactRepository;
    anything else (local paths, s3, ...) through MLflow's own artifact repository."""
    from urllib.parse import quote, urlsplit

    done = []
    store = ctx.store
    if artifact_uri.startswith("mlflow-artifacts:") and isinstance(store, st.HttpStore):
        path = urlsplit(artifact_uri).path
        base = "/api/2.0/mlflow-artifacts/artifacts/" + path.strip("/")
        for file in files:
            store.put_file(re.sub(r"//+", "/", f"{base}/{ARTIFACT_DIR}/{quote(file.name)}"), file)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
        return done
    with st.quiet_mlflow_logging():
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        # mlflow-artifacts: URIs resolve against the tracking server
        repo = get_artifact_repository(artifact_uri, tracking_uri=ctx.settings.tracking_uri if ctx.settings.is_http else None)
        for file in files:
            repo.log_artifact(str(file), ARTIFACT_DIR)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
    return done


def mark_failed(store: st.Store, run_id: str, message: str) -> bool:
    """Best effort: the error in a tag, the run FAILED. Never raises; says whether it worked."""
    with contextlib.suppress(Exception):
        store.post(
            f"{st.API}/runs/log-batch",
            {"run_id": run_id, "tags": [{"key": ERROR_TAG, "value": message[:MAX_TAG_VALUE]}]},
        )
    try:
        store.post(f"{st.API}/runs/update", {"run_id": run_id, "status": "FAILED", "end_time": int(time.time() * 1000)})
    except Exception:
        return False
    return True


def normalised_csv(data: dict) -> str:
    frame = data["returns"].to_frame("returns")
    if data["benchmark"] is not None:
        frame["benchmark"] = data["benchmark"]
    frame.index.name = "date"
    return frame.to_csv(float_format="%.12g", date_format="%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------
def command(ctx: cli.Context) -> int:
    args = ctx.args
    if args.periods_per_year is not None and not (args.periods_per_year > 0 and math.isfinite(args.periods_per_year)):
        raise c.UsageError("--periods-per-year must be a positive number, e.g. 252")
    if not math.isfinite(args.risk_free) or not -1 < args.risk_free < 1:
        raise c.UsageError("--risk-free is an annual rate as a fraction, e.g. 0.04 for 4 %")
    if args.benchmark_prices and not (args.benchmark or args.benchmark_column):
        raise c.UsageError("--benchmark-prices needs --benchmark FILE or --benchmark-column NAME")
    notes: list[str] = []
    data = bd.load_inputs(args, notes)
    returns = data["returns"]
    if args.periods_per_year is not None:
        ppy, how = float(args.periods_per_year), "given by --periods-per-year"
    else:
        ppy, how = bd.infer_periods_per_year(returns.index)
        how = "inferred: " + how
    qs = bm.import_quantstats()
    qs_version = str(getattr(qs, "__version__", "unknown"))
    params, user_tags = collect_params(args, data, ppy, qs_version)
    result = bm.compute(qs, data, args.risk_free, ppy)
    run_name = args.run_name or f"{data['file'].stem} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}"
    facts = result["facts"]
    tags = dict(user_tags)
    tags["backtest.periods_per_year"] = f"{ppy:g} ({how})"
    for key in ("max_drawdown_start", "max_drawdown_valley", "max_drawdown_end"):
        if key in facts:
            tags[f"backtest.{key}"] = facts[key]
    if result["undefined"]:
        tags[UNDEFINED_TAG] = c.truncate(", ".join(result["undefined"]), MAX_TAG_VALUE)
    summary: dict[str, Any] = {
        "dry_run": bool(args.dry_run),
        "experiment": args.experiment,
        "experiment_id": None,
        "run_name": run_name,
        "run_id": None,
        "status": None,
        "url": None,
        "periods_per_year": ppy,
        "periods_per_year_how": how,
        "risk_free": args.risk_free,
        "data": {k: v for k, v in params.items() if k.startswith("data.")},
        "notes": notes,
        "metrics": result["metrics"],
        "undefined_metrics": result["undefined"],
        "params": params,
        "tags": tags,
        "histories": {},
        "artifacts": [],
        "requests": {},
    }
    if not args.dry_run:
        log_run(ctx, args, data, result, params, tags, summary, qs)
    ctx.emit(c.to_json(c.json_safe(summary)) if ctx.fmt == "json" else render(summary))
    return c.EXIT_OK


def log_run(ctx, args, data, result, params, tags, summary, qs) -> None:
    store = ctx.store
    experiment, _status = st.ensure_experiment(store, args.experiment)
    experiment_id = experiment["experiment_id"]
    start_ms = int(time.time() * 1000)
    body = {"experiment_id": experiment_id, "run_name": summary["run_name"], "start_time": start_ms, "tags": []}
    run = store.post(f"{st.API}/runs/create", body, what="creating a run")["run"]
    run_id = run["info"]["run_id"]
    summary.update(experiment=experiment["name"], experiment_id=experiment_id, run_id=run_id, status="RUNNING")
    summary["url"] = st.run_url(ctx.settings, experiment_id, run_id)
    try:
        metric_list = [{"key": k, "value": v, "timestamp": start_ms, "step": 0} for k, v in result["metrics"].items()]
        summary["requests"]["scalars"] = log_batches(store, run_id, metric_list, params, tags)
        if not args.no_history:
            points = log_histories(store, run_id, data["returns"], result["facts"]["drawdown_series"])
            summary["histories"] = {k: len(data["returns"]) for k in HISTORY_KEYS}
            summary["requests"]["histories"] = -(-points // BATCH_METRICS)
        with tempfile.TemporaryDirectory(prefix="log-backtest-") as tmp:
            folder = Path(tmp)
            files = [folder / "returns.csv", folder / "metrics.json"]
            files[0].write_text(normalised_csv(data))
            files[1].write_text(
                c.to_json(
                    {
                        "metrics": result["metrics"],
                        "undefined_metrics": result["undefined"],
                        "periods_per_year": summary["periods_per_year"],
                        "periods_per_year_how": summary["periods_per_year_how"],
                        "risk_free": args.risk_free,
                        "params": params,
                        "notes": summary["notes"],
                    }
                )
            )
            if not args.no_tearsheet:
                files.append(folder / "tearsheet.html")
                bm.write_tearsheet(qs, data, args.risk_free, summary["periods_per_year"], summary["run_name"], files[-1])
            summary["artifacts"] = upload_artifacts(ctx, run["info"].get("artifact_uri") or "", files)
        store.post(f"{st.API}/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)})
        summary["status"] = "FINISHED"
    except BaseException as exc:
        message = str(exc) if isinstance(exc, c.SkillError) else f"{type(exc).__name__}: {exc}"
        message = c.scrub(" ".join(message.split()))[:500] or type(exc).__name__
        marked = mark_failed(store, run_id, message)
        if isinstance(exc, KeyboardInterrupt):
            raise
        code = exc.exit_code if isinstance(exc, c.SkillError) else c.EXIT_ERROR
        state = (
            f"marked FAILED (tag {ERROR_TAG})"
            if marked
            else "left RUNNING, never FINISHED (the server could not be told it failed)"
        )
        raise c.SkillError(f"run {run_id} in experiment {experiment['name']!r} {state}: {message}", exit_code=code) from exc


def fmt_metric(key: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    if key.removeprefix("benchmark_") in bm.PCT_KEYS:
        return f"{c.fmt_num(value * 100)} %"
    return c.fmt_num(value)


def render(s: dict) -> str:
    lines = []
    if s["dry_run"]:
        lines.append(f"Dry run: nothing logged (experiment **{s['experiment']}**, run name **{s['run_name']}**)")
    else:
        lines.append(
            f"Logged run **{s['run_name']}** (id {s['run_id']}) in experiment **{s['experiment']}** "
            f"(id {s['experiment_id']}): {s['status']}"
        )
    lines.append("")
    if s.get("url"):
        lines.append(f"- link: {s['url']}")
    d = s["data"]
    bench = f"; benchmark {d.get('data.benchmark_file') or ''}{' column ' + d['data.benchmark_column'] if d.get('data.benchmark_column') else ''}" if "data.benchmark_column" in d else ""
    lines.append(
        f"- data: {d['data.file']} column {d['data.column']} ({d['data.kind']}), {d['data.periods']} bars "
        f"{d['data.start'][:19]} to {d['data.end'][:19]}{bench}"
    )
    lines.append(f"- periods per year: {c.fmt_num(s['periods_per_year'])} ({s['periods_per_year_how']}); risk-free {c.fmt_num(s['risk_free'])} a year")
    for note in s["notes"]:
        lines.append(f"- note: {note}")
    lines.append("")
    headline = HEADLINE + (BENCH_HEADLINE if any(k.startswith("benchmark_") for k in s["metrics"]) else [])
    lines.append(c.md_table(["metric", "value", "key"], [(label, fmt_metric(k, s["metrics"].get(k)), k) for k, label in headline]))
    lines.append("")
    verb = "would be logged" if s["dry_run"] else "logged"
    lines.append(f"- {len(s['metrics'])} metrics {verb} (all of them: --format json, or the backtest/metrics.json artifact)")
    if s["undefined_metrics"]:
        lines.append(f"- undefined for this data, not logged (tag {UNDEFINED_TAG}): {', '.join(s['undefined_metrics'])}")
    if s["histories"]:
        lines.append(f"- histories: {', '.join(f'{k} ({v} steps)' for k, v in s['histories'].items())}")
    if s["artifacts"]:
        lines.append(f"- artifacts: {', '.join(s['artifacts'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
