# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "quantstats>=0.0.86",
#     "pandas>=2.0",
#     "pyarrow>=14",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = true  # QuantStats, pandas, matplotlib: compiled once at install, not per call
# ///
# Dependencies: as the other scripts (mlflow-skinny and the embedded store's packages) plus QuantStats.
"""Log a backtest's returns to MLflow as one run with QuantStats' complete metric set.

Usage:
  uv run scripts/log_backtest.py --returns FILE [--prices] [--column NAME] [--date-column NAME]
                                 [--benchmark FILE | --benchmark-column NAME] [--benchmark-prices]
                                 [--periods-per-year N] [--risk-free RATE] [--percent]
                                 [--sep C] [--decimal C]
                                 [--experiment NAME] [--run-name NAME] [--params JSON]
                                 [--param K=V ...] [--tag K=V ...]
                                 [--dry-run] [--no-history] [--no-tearsheet]
                                 [--force-new] [--create-experiment] [--history-points N] [--full-history]
  uv run scripts/log_backtest.py --returns FILE --columns PATTERN | --returns FILE FILE ...   (a sweep)
                                 [--variant-pattern REGEX] [--variant-params CSV] [--trials N] [...]

Input: CSV or Parquet with a date/time column (auto-detected, or --date-column) and one
returns column (auto-detected when it is the only numeric one, else --column). --prices reads
prices and derives simple returns. "1.5%" strings count as 0.015; --percent reads plain numbers
as percent. The CSV separator (, ; tab |) is detected from the header (--sep), a BOM is
dropped, and decimal commas ("0,0123", "1.000,01") are read per column (--decimal). Unsorted
rows are sorted (and the output says so); duplicate timestamps, empty cells, non-numeric
values and impossible values (returns below -100 %, prices <= 0) are refused with the row and
column named, before anything is created.

Periods per year are inferred from the timestamps unless given: 252 for daily bars without
weekend bars, 365 with weekend bars (crypto), 52 weekly, 12 monthly, and for intraday bars 252
or 365 days times the typical number of bars per day; weekdays are those of the file's own
times (Paris or Tokyo midnight bars are weekdays). When the data has more than 10 % more or fewer
bars a year than that convention (gappy or irregular data), the measured figure is used and a
note names --periods-per-year to override. Returns without dates need --periods-per-year.
Metrics that are numerically meaningless for the data (zero variance, underflow, a window longer
than the data) are left out with the reason. --risk-free is an annual rate (0.04 = 4 %).

Logged: every QuantStats metric (75+ without a benchmark, more with one; keys and units in
references/quantstats-metrics.md); undefined ones (NaN, inf) are left out and named in the tag
backtest.undefined_metrics. Params: yours plus data facts (file, sha256, start, end, periods,
periods per year, risk-free, QuantStats version). Histories equity_curve, drawdown,
rolling_sharpe, rolling_volatility (and benchmark_equity_curve), one step per bar stamped with
the bar's time (--no-history skips). Artifacts under backtest/: the normalised returns (CSV),
all metrics (JSON), monthly/yearly returns and the worst drawdowns (periods.json, shown by
`query_experiments.py returns RUN_ID`), the QuantStats HTML tearsheet (--no-tearsheet skips). If anything fails after the run was created, the run ends FAILED with the error in the
tag backtest.error. --dry-run computes and prints, and logs nothing.

Safe to re-run: the backtest's fingerprint (data, params, periods, risk-free, run name if given,
QuantStats version) is the tag backtest.fingerprint. The same command again finds the FINISHED
run and writes nothing ("Already logged"); a FAILED run, or a RUNNING one whose process is gone,
is completed in place: re-running is how a killed or failed run is closed. --force-new logs
another run. A run holds the tag backtest.incomplete (what is missing) until just before it is
FINISHED. SIGTERM/SIGINT end the run FAILED ("interrupted by SIGTERM after N of M steps"; exit
143/130). A missing --experiment close to an existing name (cryptobt vs crypto-bt) is refused
with the candidates (exit 3) unless --create-experiment. Above 100,000 bars the full histories
take minutes: refused before any work unless --history-points N (resampled; the metrics still
use every bar), --no-history or --full-history.

Sweeps: several variants at once, as columns of one file (--columns 'sma_*') or one file each
(--returns a.csv b.csv ...). Every variant is scored on ONE common window (from where the last
variant, and the benchmark, first moves), with the benchmark aligned the same way for all. A
parent run holds the sweep's facts, the ranking (backtest/ranking.csv and .json: Sharpe, the
probabilistic and deflated Sharpe ratios with N = the variants, or --trials N) and one picture
of every equity curve (backtest/equity.png); one child run per variant, named after it, with
its params from --variant-pattern (named regex groups) or --variant-params (a CSV with a
`variant` column), histories resampled to 250 points and no tearsheet. Re-running the same sweep
writes nothing; an interrupted one is completed (finished children are kept).

Examples:
  uv run scripts/log_backtest.py --returns backtest.csv --experiment btc-momentum \\
      --run-name "mom 20/50" --param fast=20 --param slow=50 --tag asset=BTC
  uv run scripts/log_backtest.py --returns equity.parquet --prices --column close --risk-free 0.04
  uv run scripts/log_backtest.py --returns strat.csv --benchmark spy.csv --benchmark-prices
  uv run scripts/log_backtest.py --returns strat.csv --column strategy --benchmark-column spy
  uv run scripts/log_backtest.py --returns hourly.csv --periods-per-year 8760 --dry-run
  uv run scripts/log_backtest.py --returns strat.csv --params '{"lookback": 20}' --format json
  uv run scripts/log_backtest.py --returns minute_bars.parquet --history-points 5000 --no-tearsheet
  uv run scripts/log_backtest.py --returns sweep.csv --columns "sma_*" \\
      --variant-pattern "sma_(?P<lookback>\\d+)" --benchmark-column spy --experiment sma-sweep
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow_skill.backtest import data as bd
from mlflow_skill.backtest import metrics as bm
from mlflow_skill.backtest import periods as bp
from mlflow_skill.backtest import runwriter as rw
from mlflow_skill.backtest import sweep as sw
from mlflow_skill.cli.frame import Context, make_parser, run_main
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import (
    EXIT_ERROR,
    EXIT_OK,
    ConnectionFailure,
    NotFoundError,
    ServerError,
    SkillError,
    UsageError,
)
from mlflow_skill.core.formatting import fmt_num, json_safe, to_json, truncate
from mlflow_skill.core.secrets import scrub
from mlflow_skill.core.values import parse_key_values
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import (
    HttpStore,
    RequestUnanswered,
    Store,
    quiet_mlflow_logging,
)

SCRIPT = "log_backtest.py"
PROG = f"uv run scripts/{SCRIPT}"
ARTIFACT_DIR = "backtest"
HISTORY_KEYS = ("equity_curve", "drawdown", "rolling_sharpe", "rolling_volatility", "benchmark_equity_curve")
ROLLING_TAG = "backtest.rolling_window"  # bars in the rolling Sharpe/volatility window
PARENT_TAG = "mlflow.parentRunId"  # a sweep's children, under their parent in MLflow's UI
SWEEP_HISTORY_POINTS = 250  # a sweep child's curves, resampled: N full histories would take minutes
SWEEP_WRITERS = 4  # children written at once over HTTP
UNDEFINED_TAG = "backtest.undefined_metrics"
ERROR_TAG = "backtest.error"
FINGERPRINT_TAG = "backtest.fingerprint"  # what defines the result: the same value means the same backtest
REQUEST_TAG = "backtest.request_id"  # set at runs/create: finds the run when the create's answer is lost
INCOMPLETE_TAG = "backtest.incomplete"  # set at creation, removed just before FINISHED: what is missing
HISTORY_TAG = "backtest.history"  # set when the histories are resampled
FINGERPRINT_VERSION = "1"  # bump when what a run holds changes for the same inputs
BIG_HISTORY_BARS = 100_000  # above this, full histories take minutes: ask first
SECONDS_PER_1000_POINTS = 0.33  # README performance table (bench/bench_backtest.py)
MAX_HISTORY_POINTS = 100_000
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
    parser = make_parser(__doc__, prog=PROG)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--returns",
        required=True,
        nargs="+",
        metavar="FILE",
        help="CSV or Parquet file with the series; several files: a sweep, one variant each",
    )
    data.add_argument(
        "--columns",
        metavar="PATTERN",
        help="a sweep over columns of one file, one variant each: 'sma_*' or 'sma_20,sma_50'",
    )
    data.add_argument(
        "--variant-pattern",
        metavar="REGEX",
        help="sweep params from variant names: 'sma_(?P<lookback>\\d+)' gives lookback=50 for sma_50",
    )
    data.add_argument(
        "--variant-params",
        metavar="CSV",
        help="sweep params per variant: a CSV with a `variant` column and one column per param",
    )
    data.add_argument(
        "--trials",
        type=int,
        help="sweep: how many variants were tried in all, for the deflated Sharpe ratio (default: the variants given)",
    )
    data.add_argument("--prices", action="store_true", help="the column holds prices (or equity), not returns")
    data.add_argument("--column", help="the returns (or prices) column (default: the only numeric column)")
    data.add_argument("--date-column", help="the date/time column (default: auto-detected)")
    data.add_argument("--percent", action="store_true", help="plain numbers are percent (1.5 means 1.5 %%)")
    data.add_argument("--benchmark", metavar="FILE", help="benchmark returns file, aligned on dates")
    data.add_argument("--benchmark-column", help="benchmark column in --returns FILE (or in --benchmark FILE)")
    data.add_argument("--benchmark-prices", action="store_true", help="the benchmark holds prices, not returns")
    data.add_argument("--sep", help="CSV field separator: , ; | or tab (default: detected from the header)")
    data.add_argument("--decimal", help="decimal mark of the numbers: . or , (default: detected per column)")
    data.add_argument("--periods-per-year", type=float, help="annualisation (default: inferred from the timestamps)")
    data.add_argument("--risk-free", type=float, default=0.0, help="annual risk-free rate, e.g. 0.04 (default 0)")
    run = parser.add_argument_group("run")
    run.add_argument(
        "--experiment",
        default="backtests",
        help="experiment name, created if missing unless close to an existing name (default backtests)",
    )
    run.add_argument(
        "--create-experiment",
        action="store_true",
        help="create --experiment even when its name is close to an existing one",
    )
    run.add_argument("--force-new", action="store_true", help="log a new run even when this backtest is already logged")
    run.add_argument("--run-name", help="run name (default: file name and time)")
    run.add_argument("--params", metavar="JSON", help="strategy params as a JSON object, e.g. '{\"fast\": 20}'")
    run.add_argument("--param", action="append", metavar="K=V", help="strategy param; repeatable")
    run.add_argument("--tag", action="append", metavar="K=V", help="run tag; repeatable")
    run.add_argument("--dry-run", action="store_true", help="compute and print; log nothing")
    run.add_argument("--no-history", action="store_true", help="skip the equity_curve/drawdown histories")
    run.add_argument(
        "--history-points",
        type=int,
        metavar="N",
        help="log the histories resampled to N points (metrics still use every bar)",
    )
    run.add_argument(
        "--full-history",
        action="store_true",
        help=f"log every bar's history even above {BIG_HISTORY_BARS:,} bars (slow)",
    )
    run.add_argument("--no-tearsheet", action="store_true", help="skip the QuantStats HTML tearsheet")
    return parser


def collect_params(args, data: dict, ppy: float, qs_version: str) -> tuple[dict[str, str], dict[str, str]]:
    """Strategy params (--params JSON, --param) + data facts; tags. Validated before any request."""
    params: dict[str, str] = {}
    if args.params:
        try:
            loaded = json.loads(args.params)
        except ValueError as exc:
            raise UsageError(
                f"--params is not valid JSON ({exc.msg} at character {exc.pos}): pass an object like '{{\"fast\": 20}}'"
            ) from None
        if not isinstance(loaded, dict):
            raise UsageError("--params must be a JSON object like '{\"fast\": 20}'")
        for key, value in loaded.items():
            params[str(key)] = value if isinstance(value, str) else json.dumps(value)
    params.update(parse_key_values(args.param, "--param"))
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
        raise UsageError(f"param {clash[0]!r} is reserved for the data's facts: rename it")
    params.update(facts)
    tags = parse_key_values(args.tag, "--tag")
    for kind, items, limit in (("param", params, MAX_PARAM_VALUE), ("tag", tags, MAX_TAG_VALUE)):
        for key, value in items.items():
            if len(key) > MAX_KEY or not KEY_RE.match(key) or _path_not_unique(key):
                raise UsageError(
                    f"{kind} key {key!r} is not a valid MLflow key: use letters, digits, _ - . / : and spaces (max {MAX_KEY} chars)"
                )
            if len(str(value)) > limit:
                raise UsageError(f"{kind} {key!r} is {len(str(value))} characters long; MLflow allows {limit}")
    if len(params) > 2 * BATCH_PARAMS_TAGS or len(tags) > 2 * BATCH_PARAMS_TAGS - 10:
        raise UsageError(
            f"too many params/tags ({len(params)}/{len(tags)}): at most 200 each; put the rest in --params of fewer keys"
        )
    return params, tags


def _path_not_unique(name: str) -> bool:
    import posixpath

    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith(("..", "/"))


# ---------------------------------------------------------------------------------------------
# Progress: what has been written, for the FAILED message and the incomplete tag
# ---------------------------------------------------------------------------------------------
class Progress:
    def __init__(self, total: int, points_total: int):
        self.total, self.done = total, 0
        self.scalars = False
        self.points, self.points_total = 0, points_total
        self.artifacts: list[str] = []

    def step(self) -> None:
        self.done += 1

    def written(self) -> str:
        parts = ["metrics, params and tags" if self.scalars else "no metrics or params"]
        if self.points_total:
            parts.append(f"{self.points:,} of {self.points_total:,} history points")
        parts.append(f"artifacts {', '.join(self.artifacts)}" if self.artifacts else "no artifacts")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Logging to the store
# ---------------------------------------------------------------------------------------------
def log_batches(
    store: Store,
    run_id: str,
    metrics: list[dict],
    params: dict[str, str],
    tags: dict[str, str],
    progress: Progress | None = None,
) -> int:
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
        store.post(
            f"{lookups.API}/runs/log-batch",
            {"run_id": run_id, "metrics": m, "params": p, "tags": t},
            what="logging metrics",
        )
        requests_made += 1
        if progress is not None:
            progress.step()
    return requests_made


def history_points(returns, drawdown, limit: int | None) -> list[dict]:
    """equity_curve and drawdown points, one per bar stamped with the bar's time; with `limit`
    (fewer than the bars) resampled into `limit` buckets: equity at each bucket's last bar and the
    bucket's deepest drawdown at its own bar, so the curve's end and the worst drawdown are exact."""
    import numpy as np

    stamps = returns.index.values.astype("datetime64[ms]").astype(np.int64)
    equity = (1.0 + returns).cumprod().to_numpy()
    dd = drawdown.to_numpy()
    n = len(equity)
    if limit is None or limit >= n:
        e_idx = d_idx = np.arange(n)
    else:
        edges = np.linspace(0, n, limit + 1).astype(np.int64)
        e_idx = edges[1:] - 1
        d_idx = np.array(
            [
                a + int(np.nanargmin(dd[a:b])) if np.isfinite(dd[a:b]).any() else b - 1
                for a, b in itertools.pairwise(edges)
            ]
        )
    points = []
    for key, values, idx in (("equity_curve", equity, e_idx), ("drawdown", dd, d_idx)):
        for i in idx.tolist():
            if math.isfinite(values[i]):
                points.append({"key": key, "value": float(values[i]), "timestamp": int(stamps[i]), "step": int(i)})
    return points


def analysis_points(data: dict, ppy: float, limit: int | None) -> list[dict]:
    """Rolling Sharpe ratio and volatility (annualised, window in tag backtest.rolling_window) and
    the benchmark's equity curve, at the bars equity_curve uses (each bucket's last bar)."""
    import numpy as np

    returns = data["returns"]
    n = len(returns)
    idx = np.arange(n) if limit is None or limit >= n else np.linspace(0, n, limit + 1).astype(np.int64)[1:] - 1
    stamps = returns.index.values.astype("datetime64[ms]").astype(np.int64)
    sharpe, vol = bp.rolling_sharpe_and_volatility(returns, ppy, bp.rolling_window(ppy, n))
    series = [("rolling_sharpe", sharpe.to_numpy()), ("rolling_volatility", vol.to_numpy())]
    if data.get("benchmark") is not None:
        series.append(("benchmark_equity_curve", (1.0 + data["benchmark"]).cumprod().to_numpy()))
    return [
        {"key": key, "value": float(values[i]), "timestamp": int(stamps[i]), "step": int(i)}
        for key, values in series
        for i in idx.tolist()
        if math.isfinite(values[i])
    ]


def log_histories(store: Store, run_id: str, points: list[dict], progress: Progress | None = None) -> int:
    for start in range(0, len(points), BATCH_METRICS):
        batch = points[start : start + BATCH_METRICS]
        store.post(f"{lookups.API}/runs/log-batch", {"run_id": run_id, "metrics": batch}, what="logging histories")
        if progress is not None:
            progress.points += len(batch)
            progress.step()
    return len(points)


def upload_artifacts(ctx: Context, artifact_uri: str, files: list[Path]) -> list[str]:
    """Proxied artifacts (mlflow-artifacts:) go over HTTP PUT like MLflow's HttpArtifactRepository;
    anything else (local paths, s3, ...) through MLflow's own artifact repository."""
    from urllib.parse import quote, urlsplit

    done = []
    store = ctx.store
    if artifact_uri.startswith("mlflow-artifacts:") and isinstance(store, HttpStore):
        path = urlsplit(artifact_uri).path
        base = "/api/2.0/mlflow-artifacts/artifacts/" + path.strip("/")
        for file in files:
            store.put_file(re.sub(r"//+", "/", f"{base}/{ARTIFACT_DIR}/{quote(file.name)}"), file)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
        return done
    with quiet_mlflow_logging():
        from mlflow.store.artifact.artifact_repository_registry import (
            get_artifact_repository,
        )

        # mlflow-artifacts: URIs resolve against the tracking server
        repo = get_artifact_repository(
            artifact_uri, tracking_uri=ctx.settings.tracking_uri if ctx.settings.is_http else None
        )
        for file in files:
            repo.log_artifact(str(file), ARTIFACT_DIR)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
    return done


def set_tag(store: Store, run_id: str, key: str, value: str) -> None:
    store.post(
        f"{lookups.API}/runs/set-tag",
        {"run_id": run_id, "key": key, "value": value[:MAX_TAG_VALUE]},
        what=f"setting tag {key}",
    )


def delete_tag(store: Store, run_id: str, key: str) -> None:
    with contextlib.suppress(NotFoundError):  # absent already: nothing to do
        store.post(f"{lookups.API}/runs/delete-tag", {"run_id": run_id, "key": key}, what=f"deleting tag {key}")


def mark_failed(store: Store, run_id: str, message: str) -> tuple[bool, bool]:
    """Best effort: the error in a tag (runs/set-tag, not log-batch, which may be what fails),
    then the run FAILED. Never raises; says (tag written, status set)."""
    tagged = marked = False
    with contextlib.suppress(Exception):
        set_tag(store, run_id, ERROR_TAG, message)
        tagged = True
    with contextlib.suppress(Exception):
        store.post(
            f"{lookups.API}/runs/update", {"run_id": run_id, "status": "FAILED", "end_time": int(time.time() * 1000)}
        )
        marked = True
    return tagged, marked


def normalised_csv(data: dict) -> str:
    frame = data["returns"].to_frame("returns")
    if data["benchmark"] is not None:
        frame["benchmark"] = data["benchmark"]
    frame.index.name = "date"
    return frame.to_csv(float_format="%.12g", date_format="%Y-%m-%dT%H:%M:%S")


# ---------------------------------------------------------------------------------------------
# The command: prepare (read, compute) -> log (find or create the run, write it) -> shape -> emit
# ---------------------------------------------------------------------------------------------
def command(ctx: Context) -> int:
    args = ctx.args
    sweep = is_sweep(args)
    if not sweep:
        args.returns = args.returns[0]
    with rw.interruptible():
        try:
            job = prepare_sweep(args) if sweep else prepare(args)
            if not args.dry_run:
                (log_sweep if sweep else log_run)(ctx, job)
        except rw.Interrupted as exc:  # before a run existed, or after log_run reported it
            raise SkillError(
                f"interrupted by {exc.signame}{exc.why} before a run was created", exit_code=exc.exit_code
            ) from None
    ctx.emit(sw.sweep_view(job, PROG) if sweep else shape(job["summary"]))
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Sweeps: a parent run, one child per variant, all scored on one common window
# ---------------------------------------------------------------------------------------------
def is_sweep(args) -> bool:
    return len(args.returns) > 1 or bool(args.columns)


def prepare_sweep(args) -> dict:
    """Every variant read and checked, the common window found; nothing sent to the server. The
    variants are scored as they are logged (log_children), or all at once for --dry-run."""
    check_args(args)
    if args.column and args.columns:
        raise UsageError("--column names one series and --columns a sweep: pass one of them")
    if args.trials is not None and args.trials < len(args.returns):
        raise UsageError("--trials counts every variant tried: at least the number of variants")
    notes: list[str] = []
    sweep = sw.load(args, notes)
    bars = len(sweep.variants[0].returns)
    explicit = args.no_history or args.history_points or args.full_history
    history = history_plan(args, bars) if explicit else min(SWEEP_HISTORY_POINTS, bars)
    periods = periods_per_year(args, sweep.local_index, notes)
    name = args.run_name or f"sweep {sweep.files[0].stem} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}"
    base = sweep_fingerprint(args, sweep, periods[0])
    summary = sw.sweep_summary(args, sweep, name, base, periods, notes)
    job = {
        "args": args,
        "sweep": sweep,
        "children": [],
        "rows": [],
        "summary": summary,
        "qs": bm.import_quantstats(),
        "params": summary["params"],
        "tags": summary["tags"],
        "history": None,
        "child_history": history,
        "periods": periods,
    }
    if args.dry_run:
        score_children(job)
    return job


def child_job(job: dict, v) -> dict:
    """One variant as a backtest job (metrics computed here), its fingerprint derived from the sweep's."""
    args, sweep = job["args"], job["sweep"]
    data = {
        "returns": v.returns,
        "benchmark": sweep.benchmark,
        "file": v.file,
        "column": v.column,
        "dated": True,
        "local_index": sweep.local_index,
        "benchmark_file": Path(args.benchmark) if args.benchmark else None,
        "benchmark_column": args.benchmark_column or "auto",
    }
    child_args = argparse.Namespace(**{**vars(args), "no_tearsheet": True, "run_name": v.name})
    fp = hashlib.sha256(f"{job['summary']['fingerprint']}/{v.name}".encode()).hexdigest()[:32]
    child = backtest_job(
        child_args,
        data,
        job["periods"],
        job["qs"],
        job["child_history"],
        [],
        v.name,
        {"variant": v.name, **v.params},
        fp,
    )
    v.result = child["result"]
    return child


def score_children(job: dict) -> None:
    """Every variant's metrics not yet computed, then the ranking."""
    done = {child["params"]["variant"] for child in job["children"]}
    job["children"] += [child_job(job, v) for v in job["sweep"].variants if v.name not in done]
    rank_children(job)


def rank_children(job: dict) -> None:
    rows, ranked = sw.ranking(job["sweep"], job["periods"][0], job["args"].trials)
    ids = {child["params"]["variant"]: child["summary"]["run_id"] for child in job["children"]}
    for row in rows:
        row["run_id"] = ids.get(row["variant"])
    job["rows"], job["ranking"] = rows, ranked
    sw.add_ranking(job["summary"], rows, ranked, job["args"].trials)


def sweep_fingerprint(args, sweep, ppy: float) -> str:
    """The sweep's identity: every variant's data (file hash, column, params), the window,
    periods, risk-free, the benchmark, the run name if given."""
    spec = {
        "v": FINGERPRINT_VERSION,
        "sweep": True,
        "run_name": args.run_name,
        "ppy": ppy,
        "rf": args.risk_free,
        "window": [str(sweep.start), str(sweep.end)],
        "percent": bool(args.percent),
        "prices": bool(args.prices),
        "variants": [[v.name, bd.sha256(v.file), v.column, v.params] for v in sweep.variants],
        "benchmark": [bd.sha256(Path(args.benchmark)) if args.benchmark else None, args.benchmark_column],
        "params": parse_key_values(args.param, "--param"),
        "json": args.params,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


def log_sweep(ctx: Context, job: dict) -> None:
    """The parent run first (incomplete until the end), each child under it (complete children of
    an interrupted sweep are kept), then the parent's ranking, picture and FINISHED."""
    store, args, summary = ctx.store, ctx.args, job["summary"]
    experiment = resolve_experiment(store, args, summary)
    summary.update(experiment=experiment["name"], experiment_id=experiment["experiment_id"])
    existing = None if args.force_new else find_same(store, experiment["experiment_id"], summary["fingerprint"])
    if existing is not None and is_complete(existing):
        report_existing(ctx, summary, existing)
        score_children(job)  # the ranking, for the view; nothing is written
        return
    refuse_live_writer(existing)
    progress = Progress(total=len(job["sweep"].variants) + 2, points_total=0)
    parent = existing
    try:
        parent = reopen(store, existing, job) if existing is not None else create_run(store, experiment, job)
        parent_id = parent["info"]["run_id"]
        summary.update(
            run_id=parent_id,
            status="RUNNING",
            url=lookups.run_url(ctx.settings, experiment["experiment_id"], parent_id),
        )
        log_children(ctx, experiment, job, parent_id, new_parent=existing is None, progress=progress)
        finish_sweep(ctx, job, parent, progress)
    except BaseException as exc:
        parent = parent or getattr(exc, "run", None)
        if parent is None or summary["status"] == "FINISHED":
            raise
        raise failure(store, parent, experiment["name"], exc, progress) from exc


def log_children(
    ctx: Context, experiment: dict, job: dict, parent_id: str, new_parent: bool, progress: Progress
) -> None:
    """Score each variant (here, CPU) while the ones before it are written (worker threads, waiting
    on the server): over HTTP the two overlap; in-process stores write one child at a time. An
    interrupt lets the children being written finish and starts no more; the parent ends FAILED."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=SWEEP_WRITERS if isinstance(ctx.store, HttpStore) else 1)
    futures = []
    try:
        for v in job["sweep"].variants:
            child = child_job(job, v)
            child["tags"][PARENT_TAG] = parent_id
            child["new_parent"] = new_parent
            job["children"].append(child)
            futures.append(pool.submit(log_into, ctx, experiment, child))
            for future in [f for f in futures if f.done()]:
                future.result()  # a failed child stops the sweep now, not at the end
        for future in futures:
            future.result()
            progress.step()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    rank_children(job)


def finish_sweep(ctx: Context, job: dict, parent: dict, progress: Progress) -> None:
    store, summary = ctx.store, job["summary"]
    run_id, start_ms = parent["info"]["run_id"], int(parent["info"].get("start_time") or time.time() * 1000)
    metrics = [{"key": k, "value": v, "timestamp": start_ms, "step": 0} for k, v in summary["metrics"].items()]
    log_batches(store, run_id, metrics, job["params"], job["tags"], progress)
    progress.scalars = True
    with tempfile.TemporaryDirectory(prefix="log-backtest-sweep-") as tmp:
        folder = Path(tmp)
        files = [folder / "ranking.csv", folder / "ranking.json", folder / "equity.png"]
        files[0].write_text(sw.ranking_csv(job["rows"]))
        files[1].write_text(to_json(json_safe({"ranking": job["rows"], "deflated_sharpe": summary["deflated_sharpe"]})))
        sw.equity_png(job["sweep"], job["rows"], files[2], summary["run_name"])
        summary["artifacts"] = progress.artifacts = upload_artifacts(
            ctx, parent["info"].get("artifact_uri") or "", files
        )
    delete_tag(store, run_id, INCOMPLETE_TAG)
    store.post(
        f"{lookups.API}/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
    )
    summary["status"] = "FINISHED"
    progress.step()


def check_args(args) -> None:
    if args.periods_per_year is not None and not (args.periods_per_year > 0 and math.isfinite(args.periods_per_year)):
        raise UsageError("--periods-per-year must be a positive number, e.g. 252")
    if not math.isfinite(args.risk_free) or not -1 < args.risk_free < 1:
        raise UsageError("--risk-free is an annual rate as a fraction, e.g. 0.04 for 4 %")
    if args.benchmark_prices and not (args.benchmark or args.benchmark_column):
        raise UsageError("--benchmark-prices needs --benchmark FILE or --benchmark-column NAME")
    if args.history_points is not None and not 2 <= args.history_points <= MAX_HISTORY_POINTS:
        raise UsageError(f"--history-points must be between 2 and {MAX_HISTORY_POINTS:,}, e.g. 5000")
    if args.no_history and (args.history_points or args.full_history):
        raise UsageError("--no-history logs no histories: drop --history-points/--full-history, or drop --no-history")


def history_plan(args, bars: int) -> int | None:
    """How many history steps to log per curve (None: none). Refuses, before any work, a full
    history that would take minutes, naming the choices."""
    if args.no_history:
        return None
    if args.history_points:
        return min(args.history_points, bars)
    if bars > BIG_HISTORY_BARS and not args.full_history:
        points = 2 * bars
        minutes = points / 1000 * SECONDS_PER_1000_POINTS / 60
        raise UsageError(
            f"{bars:,} bars make {points:,} history points: about {minutes:.0f} min of logging "
            f"({-(-points // BATCH_METRICS):,} log-batch requests at ~{SECONDS_PER_1000_POINTS} s per 1,000 points). "
            "Pass --history-points 5000 (a resampled curve; the metrics still use every bar), --no-history, "
            "or --full-history to log every bar anyway"
        )
    return bars


def prepare(args) -> dict:
    """Everything that needs no server: inputs, metrics, params, tags, the fingerprint."""
    check_args(args)
    notes: list[str] = []
    data = bd.load_inputs(args, notes)
    history = history_plan(args, len(data["returns"]))
    ppy, how = periods_per_year(args, data["local_index"], notes)
    if not (args.prices or args.percent):
        bd.check_scale(data["returns"], ppy, notes, "returns")
    qs = bm.import_quantstats()
    run_name = args.run_name or f"{data['file'].stem} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}"
    return backtest_job(args, data, (ppy, how), qs, history, notes, run_name)


def periods_per_year(args, local_index, notes: list[str]) -> tuple[float, str]:
    if args.periods_per_year is not None:
        return float(args.periods_per_year), "given by --periods-per-year"
    ppy, how = bd.infer_periods_per_year(local_index, notes)
    return ppy, "inferred: " + how


def backtest_job(
    args, data: dict, periods: tuple[float, str], qs, history, notes, run_name, extra_params=None, fp=None
) -> dict:
    """One backtest's metrics, params (yours, the data's facts, a sweep variant's), tags and summary."""
    ppy, how = periods
    params, user_tags = collect_params(args, data, ppy, str(getattr(qs, "__version__", "unknown")))
    params.update(extra_params or {})
    result = bm.compute(qs, data, args.risk_free, ppy)
    notes = [*notes, *result["notes"]]
    returns = data["returns"]
    tags = dict(user_tags)
    tags["backtest.periods_per_year"] = f"{ppy:g} ({how})"
    for key in ("max_drawdown_start", "max_drawdown_valley", "max_drawdown_end"):
        if key in result["facts"]:
            tags[f"backtest.{key}"] = result["facts"][key]
    if result["undefined"]:
        tags[UNDEFINED_TAG] = truncate(", ".join(result["undefined"]), MAX_TAG_VALUE)
    if history is not None:
        tags[ROLLING_TAG] = (
            f"{bp.rolling_window(ppy, len(returns))} bars (rolling_sharpe, rolling_volatility: annualised)"
        )
    if history is not None and history < len(returns):
        tags[HISTORY_TAG] = (
            f"resampled: {history:,} of {len(returns):,} bars (equity at each bucket's last bar, each bucket's deepest drawdown)"
        )
    summary: dict[str, Any] = {
        "dry_run": bool(args.dry_run),
        "action": None,
        "experiment": args.experiment,
        "experiment_id": None,
        "experiment_status": None,
        "run_name": run_name,
        "run_id": None,
        "status": None,
        "url": None,
        "fingerprint": fp or fingerprint(args, data, params),
        "previous": None,
        "periods_per_year": ppy,
        "periods_per_year_how": how,
        "risk_free": args.risk_free,
        "data": {k: v for k, v in params.items() if k.startswith("data.")},
        "notes": notes,
        "metrics": result["metrics"],
        "undefined_metrics": result["undefined"],
        "undefined_reasons": result["reasons"],
        "params": params,
        "tags": tags,
        "histories": {},
        "history_resampled": tags.get(HISTORY_TAG),
        "artifacts": [],
        "requests": {},
    }
    return {
        "args": args,
        "data": data,
        "result": result,
        "params": params,
        "tags": tags,
        "summary": summary,
        "qs": qs,
        "history": history,
    }


def fingerprint(args, data: dict, params: dict[str, str]) -> str:
    """What defines the result: the data (sha256 of returns and benchmark, their columns, how they
    are read), the strategy params, periods per year, risk-free, the run name if given, QuantStats'
    version (all in `params`) and this fingerprint's own version. Not: tags, histories, tearsheet."""
    spec = {
        "v": FINGERPRINT_VERSION,
        "params": params,
        "run_name": args.run_name,
        "date_column": data.get("date_column"),
        "percent": bool(args.percent),
        "benchmark_prices": bool(args.benchmark_prices),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]


def log_run(ctx: Context, job: dict) -> None:
    """Find this backtest's run (same fingerprint) or create it, then write it in an order that
    leaves a killed run visibly incomplete. Interrupts and failures end the run FAILED."""
    experiment = resolve_experiment(ctx.store, ctx.args, job["summary"])
    log_into(ctx, experiment, job)


def log_into(ctx: Context, experiment: dict, job: dict) -> None:
    """log_run once the experiment is known (a sweep logs each child this way)."""
    store, summary = ctx.store, job["summary"]
    summary.update(experiment=experiment["name"], experiment_id=experiment["experiment_id"])
    fresh = job["args"].force_new or job.get("new_parent")  # a new sweep's children cannot exist yet
    existing = None if fresh else find_same(store, experiment["experiment_id"], summary["fingerprint"])
    if existing is not None and is_complete(existing):
        return report_existing(ctx, summary, existing)
    refuse_live_writer(existing)
    points = job_points(job)
    scalars = len(job["result"]["metrics"]) + len(job["params"]) + len(job["tags"])
    progress = Progress(
        total=max(1, -(-scalars // BATCH_METRICS)) + -(-len(points) // BATCH_METRICS) + 2, points_total=len(points)
    )
    run = existing
    try:
        run = reopen(store, existing, job) if existing is not None else create_run(store, experiment, job)
        summary.update(
            run_id=run["info"]["run_id"], run_name=lookups.run_name(run) or summary["run_name"], status="RUNNING"
        )
        summary["url"] = lookups.run_url(ctx.settings, experiment["experiment_id"], summary["run_id"])
        write_run(ctx, job, run, progress, points)
    except BaseException as exc:
        run = run or getattr(exc, "run", None)
        if run is None:
            raise
        if summary["status"] == "FINISHED":  # complete: an interrupt now must not mark it FAILED
            if isinstance(exc, rw.Interrupted):
                raise SkillError(
                    f"interrupted by {exc.signame} after run {run['info']['run_id']} was FINISHED (complete)",
                    exit_code=exc.exit_code,
                ) from None
            raise
        raise failure(store, run, experiment["name"], exc, progress) from exc


def refuse_live_writer(existing: dict | None) -> None:
    if existing is not None and existing["info"]["status"] == "RUNNING" and rw.writer_alive(existing):
        raise SkillError(
            f"run {existing['info']['run_id']} with the same fingerprint is being logged right now "
            f"({lookups.run_tags(existing).get(rw.WRITER_TAG, 'another process')}): wait for it to finish and re-run, "
            "or pass --force-new to log a separate run",
            exit_code=EXIT_ERROR,
        )


def job_points(job: dict) -> list[dict]:
    """The history points to log: equity and drawdown, and (same bars) rolling Sharpe and
    volatility and the benchmark's equity curve."""
    if job["history"] is None:
        return []
    data = job["data"]
    points = history_points(data["returns"], job["result"]["facts"]["drawdown_series"], job["history"])
    return points + analysis_points(data, job["summary"]["periods_per_year"], job["history"])


def resolve_experiment(store: Store, args, summary: dict) -> dict:
    """The experiment by its exact name. A missing one whose name is close to an existing one is
    refused (exit 3) with the candidates unless --create-experiment; any creation is reported."""
    name = args.experiment.strip()
    if name and lookups._experiment_by_name(store, name) is None and not args.create_experiment:
        near = lookups.near_experiment_names(store, name)
        if near:
            listed = ", ".join(
                repr(e["name"]) + (" (deleted)" if e.get("lifecycle_stage") == "deleted" else "") for e in near
            )
            raise NotFoundError(
                f"no experiment named {name!r}; close names exist: {listed}: pass --experiment with the one you mean, "
                f"or add --create-experiment to create {name!r}"
            )
    experiment, status = lookups.ensure_experiment(store, name)
    experiment.pop("_unapplied", None)
    summary["experiment_status"] = status
    return experiment


def find_same(store: Store, experiment_id: str, fp: str) -> dict | None:
    """This backtest's run: the newest complete FINISHED one, else the newest other (to complete)."""
    body = {
        "experiment_ids": [experiment_id],
        "filter": f"tags.`{FINGERPRINT_TAG}` = '{fp}'",
        "run_view_type": "ACTIVE_ONLY",
        "order_by": ["attributes.start_time DESC"],
    }
    runs = list(lookups.paged(store, f"{lookups.API}/runs/search", body, "runs", limit=50))
    complete = [r for r in runs if is_complete(r)]
    return (complete or runs or [None])[0]


def is_complete(run: dict) -> bool:
    return run["info"].get("status") == "FINISHED" and INCOMPLETE_TAG not in lookups.run_tags(run)


def find_by_request(store: Store, experiment_id: str, request_id: str, wait_s: float) -> dict | None:
    """The run a lost runs/create made, by its request id; polls up to wait_s for a slow create."""
    body = {
        "experiment_ids": [experiment_id],
        "filter": f"tags.`{REQUEST_TAG}` = '{request_id}'",
        "run_view_type": "ALL",
    }
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(ConnectionFailure, ServerError):
            runs = store.post(f"{lookups.API}/runs/search", body, what="finding the created run").get("runs") or []
            if runs:
                return runs[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def creation_tags(job: dict, request_id: str) -> dict[str, str]:
    missing = ["metrics", "params", *([] if job["history"] is None else ["histories"]), "artifacts"]
    return {
        INCOMPLETE_TAG: "missing: " + ", ".join(missing) + " (re-run the same log_backtest.py command to complete it)",
        FINGERPRINT_TAG: job["summary"]["fingerprint"],
        REQUEST_TAG: request_id,
        rw.WRITER_TAG: rw.writer_id(),
        **job["tags"],
    }


def create_run(store: Store, experiment: dict, job: dict) -> dict:
    """runs/create is sent once. When its answer is lost (timeout, 502/504, dropped connection),
    the run it may have made is found by the request id tag and used, never created twice."""
    import uuid

    summary, exp_id = job["summary"], experiment["experiment_id"]
    request_id = uuid.uuid4().hex
    tags = creation_tags(job, request_id)
    body = {
        "experiment_id": exp_id,
        "run_name": summary["run_name"],
        "start_time": int(time.time() * 1000),
        "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
    }
    summary["action"] = "created"
    try:
        return store.post(f"{lookups.API}/runs/create", body, what="creating a run")["run"]
    except RequestUnanswered as exc:
        wait_s = max(5.0, 2 * store.settings.timeout)
        run = find_by_request(store, exp_id, request_id, wait_s)
        if run is None:
            raise ConnectionFailure(
                f"{exc}. No run with tag {REQUEST_TAG}={request_id} appeared in experiment {experiment['name']!r} within "
                f"{wait_s:g}s; if the server still creates it, it stays RUNNING and tagged {INCOMPLETE_TAG}: re-run the same "
                "command to complete it (it finds the run by its fingerprint), or see it with "
                f"`uv run scripts/query_experiments.py failed --experiment {lookups.shlex_quote(experiment['name'])}`"
            ) from exc
        summary["notes"].append(
            f"the answer to runs/create was lost ({exc.path}); continued with the run it created, found by its request id"
        )
        return run
    except rw.Interrupted as exc:
        exc.run = find_by_request(store, exp_id, request_id, 0)
        raise


def reopen(store: Store, run: dict, job: dict) -> dict:
    """Continue a FAILED, KILLED or abandoned RUNNING run with the same fingerprint: mark it
    incomplete and RUNNING again; write_run then logs everything (MLflow skips identical metric
    points and params), and FINISHED comes last."""
    info, tags = run["info"], lookups.run_tags(run)
    summary = job["summary"]
    summary["action"] = "completed"
    summary["previous"] = {"status": info["status"], "error": tags.get(ERROR_TAG), "missing": tags.get(INCOMPLETE_TAG)}
    set_tag(store, info["run_id"], INCOMPLETE_TAG, creation_tags(job, "")[INCOMPLETE_TAG])
    set_tag(store, info["run_id"], rw.WRITER_TAG, rw.writer_id())
    delete_tag(store, info["run_id"], ERROR_TAG)
    if info["status"] != "RUNNING":
        store.post(
            f"{lookups.API}/runs/update", {"run_id": info["run_id"], "status": "RUNNING"}, what="reopening the run"
        )
    return run


def write_run(ctx: Context, job: dict, run: dict, progress: Progress, points: list[dict]) -> None:
    """Order: (at creation: the incomplete tag) scalars+params+tags, histories, artifacts, then the
    incomplete tag removed, then FINISHED. Metric timestamps are the run's start so a re-run
    writes identical points, which MLflow stores once."""
    store, summary = ctx.store, job["summary"]
    run_id, start_ms = run["info"]["run_id"], int(run["info"].get("start_time") or time.time() * 1000)
    metric_list = [
        {"key": k, "value": v, "timestamp": start_ms, "step": 0} for k, v in job["result"]["metrics"].items()
    ]
    summary["requests"]["scalars"] = log_batches(store, run_id, metric_list, job["params"], job["tags"], progress)
    progress.scalars = True
    if points:
        set_tag(
            store,
            run_id,
            INCOMPLETE_TAG,
            "missing: histories, artifacts (re-run the same log_backtest.py command to complete it)",
        )
        log_histories(store, run_id, points, progress)
        summary["histories"] = {k: n for k in HISTORY_KEYS if (n := sum(1 for p in points if p["key"] == k))}
        summary["requests"]["histories"] = -(-len(points) // BATCH_METRICS)
    set_tag(
        store, run_id, INCOMPLETE_TAG, "missing: artifacts (re-run the same log_backtest.py command to complete it)"
    )
    summary["artifacts"] = progress.artifacts = write_artifacts(ctx, job, run)
    progress.step()
    delete_tag(store, run_id, INCOMPLETE_TAG)
    store.post(
        f"{lookups.API}/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
    )
    summary["status"] = "FINISHED"
    progress.step()


def write_artifacts(ctx: Context, job: dict, run: dict) -> list[str]:
    args, summary, data = job["args"], job["summary"], job["data"]
    with tempfile.TemporaryDirectory(prefix="log-backtest-") as tmp:
        folder = Path(tmp)
        files = [folder / "returns.csv", folder / "metrics.json", folder / bp.PERIODS_ARTIFACT]
        files[0].write_text(normalised_csv(data))
        files[2].write_text(
            to_json(json_safe(bp.periods_document(job["qs"], bm.local_axis(data)[0], summary["periods_per_year"])))
        )
        files[1].write_text(
            to_json(
                {
                    "metrics": job["result"]["metrics"],
                    "undefined_metrics": job["result"]["undefined"],
                    "periods_per_year": summary["periods_per_year"],
                    "periods_per_year_how": summary["periods_per_year_how"],
                    "risk_free": args.risk_free,
                    "params": job["params"],
                    "notes": summary["notes"],
                }
            )
        )
        if not args.no_tearsheet:
            files.append(folder / "tearsheet.html")
            bm.write_tearsheet(
                job["qs"], data, args.risk_free, summary["periods_per_year"], summary["run_name"], files[-1]
            )
        return upload_artifacts(ctx, run["info"].get("artifact_uri") or "", files)


def failure(store: Store, run: dict, experiment: str, exc: BaseException, progress: Progress) -> SkillError:
    """Mark the run FAILED with the reason; the error says truly what was written and what was not."""
    run_id = run["info"]["run_id"]
    with rw.uninterrupted():
        if isinstance(exc, (rw.Interrupted, KeyboardInterrupt)):
            signame, why = (exc.signame, exc.why) if isinstance(exc, rw.Interrupted) else ("SIGINT", "")
            message, code = (
                f"interrupted by {signame}{why} after {progress.done} of {progress.total} steps",
                128 + (15 if signame == "SIGTERM" else 2),
            )
        else:
            message = str(exc) if isinstance(exc, SkillError) else f"{type(exc).__name__}: {exc}"
            message = scrub(" ".join(message.split()))[:500] or type(exc).__name__
            code = exc.exit_code if isinstance(exc, SkillError) else EXIT_ERROR
        tagged, marked = mark_failed(store, run_id, message)
    if marked:
        state = (
            f"marked FAILED (reason in tag {ERROR_TAG})"
            if tagged
            else f"marked FAILED (the reason tag {ERROR_TAG} could not be written)"
        )
    else:
        state = f"left RUNNING, never FINISHED (the server could not be told it failed; tag {INCOMPLETE_TAG} says what is missing)"
    return SkillError(
        f"run {run_id} in experiment {experiment!r} {state}: {message}. Written: {progress.written()}. "
        "Re-run the same command to complete it",
        exit_code=code,
    )


def report_existing(ctx: Context, summary: dict, run: dict) -> None:
    """Already logged: report the run, write nothing."""
    info = run["info"]
    summary.update(
        action="already_logged", run_id=info["run_id"], run_name=lookups.run_name(run), status=info["status"]
    )
    summary["url"] = lookups.run_url(ctx.settings, summary["experiment_id"], info["run_id"])
    summary["histories"] = {}
    summary["artifacts"] = []


def fmt_metric(key: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    if key.removeprefix("benchmark_") in bm.PCT_KEYS:
        return f"{fmt_num(value * 100)} %"
    return fmt_num(value)


def headline_line(s: dict) -> list[str]:
    where = f"in experiment **{s['experiment']}** (id {s['experiment_id']})"
    if s["dry_run"]:
        return [f"Dry run: nothing logged (experiment **{s['experiment']}**, run name **{s['run_name']}**)"]
    if s["action"] == "already_logged":
        return [
            f"Already logged: run **{s['run_name']}** (id {s['run_id']}) {where}: {s['status']}; nothing written",
            "",
            (
                f"- same backtest (tag {FINGERPRINT_TAG}={s['fingerprint']}: data, params, periods, risk-free, run name); "
                "--force-new logs another run"
            ),
        ]
    lines = [f"Logged run **{s['run_name']}** (id {s['run_id']}) {where}: {s['status']}", ""]
    previous = s.get("previous")
    if s["action"] == "completed" and previous:
        why = f"FAILED: {truncate(previous['error'], 160)}" if previous.get("error") else previous["status"]
        if previous["status"] == "RUNNING":
            why = "RUNNING, left by a process that is gone"
        lines.append(f"- completed an earlier run of this backtest (it was {why}); no new run created")
    if s.get("experiment_status") in ("created", "restored"):
        lines.append(f"- experiment **{s['experiment']}** {s['experiment_status']} by this call")
    return lines


def data_lines(s: dict) -> list[str]:
    lines = [f"- link: {s['url']}"] if s.get("url") else []
    d = s["data"]
    bench = ""
    if "data.benchmark_column" in d:
        bench = f"; benchmark {d.get('data.benchmark_file') or ''}{' column ' + d['data.benchmark_column'] if d.get('data.benchmark_column') else ''}"
    lines.append(
        f"- data: {d['data.file']} column {d['data.column']} ({d['data.kind']}), {d['data.periods']} bars "
        f"{d['data.start'][:19]} to {d['data.end'][:19]}{bench}"
    )
    lines.append(
        f"- periods per year: {fmt_num(s['periods_per_year'])} ({s['periods_per_year_how']}); risk-free {fmt_num(s['risk_free'])} a year"
    )
    lines += [f"- note: {note}" for note in s["notes"]]
    return lines


def after_lines(s: dict) -> list[str]:
    verb = "would be logged" if s["dry_run"] else "logged" if s["action"] != "already_logged" else "in the run"
    lines = [
        "",
        f"- {len(s['metrics'])} metrics {verb} (all of them: --format json, or the backtest/metrics.json artifact)",
    ]
    if s["undefined_metrics"]:
        lines.append(
            f"- undefined for this data, not logged (tag {UNDEFINED_TAG}): {', '.join(s['undefined_metrics'])}"
        )
    if s["histories"]:
        lines.append(f"- histories: {', '.join(f'{k} ({v} steps)' for k, v in s['histories'].items())}")
        if s.get("history_resampled"):
            lines.append(f"- histories {s['history_resampled']} (tag {HISTORY_TAG}); --history-points N changes it")
    if s["artifacts"]:
        lines.append(f"- artifacts: {', '.join(s['artifacts'])}")
    return lines


def shape(s: dict) -> View:
    headline = HEADLINE + (BENCH_HEADLINE if any(k.startswith("benchmark_") for k in s["metrics"]) else [])
    rows = [[label, fmt_metric(k, s["metrics"].get(k)), k] for k, label in headline]
    return View(
        data=json_safe(s),
        lines=[*headline_line(s), *data_lines(s), ""],
        table=Table(["metric", "value", "key"], rows, raw=[[label, s["metrics"].get(k), k] for k, label in headline]),
        after=after_lines(s),
    )


def main(argv: list[str] | None = None, watch: bool = False) -> int:
    if watch:
        rw.watch_parent()
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main(watch=True))
