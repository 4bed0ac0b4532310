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
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import _common as c

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
DATE_NAMES = ("date", "datetime", "time", "timestamp", "ts", "dt", "day", "period", "index", "unnamed: 0")

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

# Metrics whose value is a fraction shown as percent (the rest are ratios, counts or days).
PCT_KEYS = {
    "time_in_market", "cumulative_return", "cagr", "probabilistic_sharpe_ratio",
    "probabilistic_sortino_ratio", "probabilistic_adjusted_sortino_ratio", "max_drawdown",
    "volatility", "volatility_per_period", "risk_adjusted_return", "avg_return", "avg_win", "avg_loss",
    "expected_return_period", "expected_return_month", "expected_return_year", "kelly_criterion",
    "value_at_risk", "cvar", "value_at_risk_99", "cvar_99", "cvar_historical", "return_mtd", "return_3m",
    "return_6m", "return_ytd", "return_1y", "cagr_3y", "cagr_5y", "cagr_10y", "best_period",
    "worst_period", "best_month", "worst_month", "best_quarter", "worst_quarter", "best_year",
    "worst_year", "avg_drawdown", "current_drawdown", "avg_up_month", "avg_down_month", "win_rate",
    "win_rate_month", "win_rate_quarter", "win_rate_year", "alpha", "correlation",
}  # fmt: skip


def build_parser():
    parser = c.make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
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


# ---------------------------------------------------------------------------------------------
# Reading and validating the input (nothing is created before all of this passed)
# ---------------------------------------------------------------------------------------------
class Table:
    """A loaded file: its string/number columns, how rows are named in errors, its facts."""

    def __init__(self, path: Path, frame, is_csv: bool):
        self.path = path
        self.frame = frame
        self.is_csv = is_csv

    def row_name(self, position: int) -> str:
        """Errors name data rows 1-based, and the file line for CSV (header is line 1)."""
        return f"row {position + 1} (line {position + 2})" if self.is_csv else f"row {position + 1}"


def read_table(path_text: str, flag: str) -> Table:
    import pandas as pd

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise c.UsageError(f"{flag} {path_text}: no such file")
    if path.stat().st_size == 0:
        raise c.UsageError(f"{flag} {path_text} is empty: it needs a header and at least 2 rows")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            if isinstance(frame.index, pd.DatetimeIndex):
                frame = frame.reset_index()
            is_csv = False
        else:
            sep = "\t" if suffix in (".tsv", ".tab") else ","
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, skipinitialspace=True)
            is_csv = True
    except pd.errors.EmptyDataError:
        raise c.UsageError(f"{flag} {path_text} is empty: it needs a header and at least 2 rows") from None
    except Exception as exc:  # malformed CSV, not a Parquet file, ...
        raise c.UsageError(f"cannot read {flag} {path_text}: {c.truncate(str(exc), 200)}") from None
    frame.columns = [str(col).strip() for col in frame.columns]
    if len(frame) == 0:
        raise c.UsageError(f"{flag} {path_text} has a header but no data rows")
    return Table(path, frame, is_csv)


def pick_date_column(table: Table, wanted: str | None, flag: str) -> str:
    columns = list(table.frame.columns)
    if wanted:
        if wanted not in columns:
            raise c.UsageError(f"--date-column {wanted!r} is not in {flag} {table.path.name} (columns: {', '.join(columns)})")
        return wanted
    frame = table.frame
    for col in columns:
        if str(frame[col].dtype).startswith("datetime"):
            return col
    for col in columns:
        if col.lower() in DATE_NAMES:
            return col
    import pandas as pd

    for col in columns:  # the first column whose first value reads as a date and not as a number
        first = str(frame[col].iloc[0]).strip()
        if not first or _as_number(first) is not None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not pd.isna(pd.to_datetime(first, errors="coerce")):
                return col
    raise c.UsageError(
        f"no date/time column found in {flag} {table.path.name} (columns: {', '.join(columns)}): pass --date-column NAME"
    )


def _as_number(text: str) -> float | None:
    try:
        return float(text.rstrip("%").strip())
    except ValueError:
        return None


def pick_value_column(table: Table, wanted: str | None, exclude: set[str], flag: str, what: str, option: str) -> str:
    columns = list(table.frame.columns)
    if wanted:
        if wanted not in columns:
            raise c.UsageError(f"{option} {wanted!r} is not in {flag} {table.path.name} (columns: {', '.join(columns)})")
        return wanted
    candidates = []
    for col in columns:
        if col in exclude:
            continue
        series = table.frame[col]
        if str(series.dtype) in ("object", "string", "str"):
            first = next((str(v).strip() for v in series if str(v).strip()), "")
            if _as_number(first) is None:
                continue
        elif not (str(series.dtype).startswith(("float", "int", "uint", "Float", "Int", "UInt"))):
            continue
        candidates.append(col)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise c.UsageError(f"no numeric {what} column in {flag} {table.path.name} (columns: {', '.join(columns)})")
    raise c.UsageError(
        f"{flag} {table.path.name} has several numeric columns ({', '.join(candidates)}): pass {option} NAME"
    )


def parse_dates(table: Table, col: str, flag: str):
    """-> DatetimeIndex (tz-naive UTC), refusing unreadable cells by row."""
    import pandas as pd

    raw = table.frame[col]
    if str(raw.dtype).startswith("datetime"):
        parsed = pd.to_datetime(raw, utc=True)
    else:
        text = raw.astype(str).str.strip()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
            if parsed.isna().any():  # not ISO: let pandas infer one format for the column
                parsed = pd.to_datetime(text, utc=True, errors="coerce")
    bad = parsed.isna().to_numpy().nonzero()[0]
    if len(bad):
        pos = int(bad[0])
        raise c.UsageError(
            f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r}: cannot read {str(raw.iloc[pos])!r} "
            "as a date/time (use ISO dates like 2024-01-31 or 2024-01-31T14:00)"
        )
    return pd.DatetimeIndex(parsed).tz_convert("UTC").tz_localize(None)


def parse_numbers(table: Table, col: str, flag: str, percent: bool):
    """-> float numpy array; '1.5%' strings are 0.015; refuses empty and non-numeric cells by row."""
    import numpy as np
    import pandas as pd

    raw = table.frame[col]
    if str(raw.dtype) in ("object", "string", "str"):
        text = raw.astype(str).str.strip()
        is_pct = text.str.endswith("%").to_numpy()
        values = pd.to_numeric(text.str.rstrip("%").str.strip().str.replace(",", "", regex=False), errors="coerce").to_numpy(dtype=float)
        values = np.where(is_pct, values / 100.0, values)
        if is_pct.any() and not is_pct.all():
            mixed = ~is_pct & (values != 0) & np.isfinite(values)
            if mixed.any():
                pos = int(mixed.nonzero()[0][0])
                raise c.UsageError(
                    f"{flag} {table.path.name} column {col!r} mixes percent strings and plain numbers "
                    f"({table.row_name(pos)}: {text.iloc[pos]!r}): write all values one way"
                )
        elif percent:
            values = values / 100.0
    else:
        text = raw.astype(str)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        if percent:
            values = values / 100.0
    bad = (~np.isfinite(values)).nonzero()[0]
    if len(bad):
        pos = int(bad[0])
        cell = str(raw.iloc[pos]).strip()
        what = "is empty" if cell in ("", "nan", "None", "NaN", "<NA>") and not np.isinf(values[pos]) else f"holds {cell!r}, not a finite number"
        raise c.UsageError(f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r} {what}: fix or drop that row")
    return values


def to_series(table: Table, dates, values, col: str, flag: str, prices: bool, notes: list[str], label: str):
    """Sorted, duplicate-free returns Series from dates + values (returns or prices)."""
    import numpy as np
    import pandas as pd

    order = np.argsort(dates.values, kind="stable")
    if (order != np.arange(len(order))).any():
        notes.append(f"{label}: rows were not in time order; sorted by {dates.name or 'date'}")
    sorted_dates = dates.values[order]
    dup = (sorted_dates[1:] == sorted_dates[:-1]).nonzero()[0]
    if len(dup):
        a, b = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        when = pd.Timestamp(sorted_dates[dup[0]]).isoformat().replace("T00:00:00", "")
        raise c.UsageError(
            f"{flag} {table.path.name}: {table.row_name(a)} and {table.row_name(b)} have the same time {when}: "
            "one row per bar; drop or merge the duplicate"
        )
    vals = values[order]
    index = pd.DatetimeIndex(sorted_dates)
    if prices:
        nonpos = (vals <= 0).nonzero()[0]
        if len(nonpos):
            pos = int(order[nonpos[0]])
            raise c.UsageError(
                f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r}: price {values[pos]:g} is not positive"
            )
        series = pd.Series(vals[1:] / vals[:-1] - 1.0, index=index[1:])
    else:
        below = (vals < -1).nonzero()[0]
        if len(below):
            pos = int(order[below[0]])
            raise c.UsageError(
                f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r}: return {values[pos]:g} is below -100 %; "
                "if the column holds percent numbers pass --percent, if it holds prices pass --prices"
            )
        series = pd.Series(vals, index=index)
        if len(vals) and float(np.median(np.abs(vals))) > 0.2:
            notes.append(f"{label}: the median absolute return is {np.median(np.abs(vals)):.3g}; if these are percent, pass --percent")
    series.index.name = "date"
    if len(series) < 2:
        raise c.UsageError(f"{flag} {table.path.name} gives {len(series)} return(s): at least 2 are needed")
    return series


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_inputs(args, notes: list[str]) -> dict:
    """Read --returns (and the benchmark) into aligned pandas Series; every refusal happens here."""
    table = read_table(args.returns, "--returns")
    date_col = pick_date_column(table, args.date_column, "--returns")
    exclude = {date_col}
    if args.benchmark_column and not args.benchmark:
        exclude.add(args.benchmark_column)
    value_col = pick_value_column(table, args.column, exclude, "--returns", "prices" if args.prices else "returns", "--column")
    dates = parse_dates(table, date_col, "--returns")
    dates.name = date_col
    returns = to_series(
        table, dates, parse_numbers(table, value_col, "--returns", args.percent), value_col, "--returns", args.prices, notes, "returns"
    )
    returns.name = "returns"
    data = {
        "returns": returns,
        "benchmark": None,
        "file": table.path,
        "column": value_col,
        "date_column": date_col,
        "benchmark_file": None,
        "benchmark_column": None,
    }
    bench = None
    bench_prices = args.benchmark_prices or (args.prices and not args.benchmark)
    if args.benchmark:
        btable = read_table(args.benchmark, "--benchmark")
        bdate = pick_date_column(btable, None, "--benchmark")
        bcol = pick_value_column(btable, args.benchmark_column, {bdate}, "--benchmark", "benchmark", "--benchmark-column")
        bdates = parse_dates(btable, bdate, "--benchmark")
        bdates.name = bdate
        bvalues = parse_numbers(btable, bcol, "--benchmark", args.percent)
        bench = to_series(btable, bdates, bvalues, bcol, "--benchmark", bench_prices, notes, "benchmark")
        data["benchmark_file"], data["benchmark_column"] = btable.path, bcol
    elif args.benchmark_column:
        if args.benchmark_column == value_col:
            raise c.UsageError("--benchmark-column names the returns column itself: pick the benchmark's column")
        pick_value_column(table, args.benchmark_column, set(), "--returns", "benchmark", "--benchmark-column")
        bvalues = parse_numbers(table, args.benchmark_column, "--returns", args.percent)
        bench = to_series(table, dates, bvalues, args.benchmark_column, "--returns", bench_prices, notes, "benchmark")
        data["benchmark_column"] = args.benchmark_column
    if bench is not None:
        returns, bench = align_benchmark(returns, bench, notes)
        data["returns"], data["benchmark"] = returns, bench
    return data


def align_benchmark(returns, bench, notes: list[str]):
    """Benchmark returns over the same bars as the strategy: the benchmark's level (growth of 1)
    as last known at each strategy timestamp, differenced. Then QuantStats' own date matching
    (both series start where both first move), so values equal reports.metrics(benchmark=...)."""
    import numpy as np

    growth = (1.0 + bench).cumprod()
    level = growth.reindex(growth.index.union(returns.index)).ffill()
    at_bars = level.reindex(returns.index)
    first = at_bars.first_valid_index()
    if first is None or len(returns.loc[first:]) < 2:
        raise c.UsageError("the benchmark has no values at the strategy's dates: check it covers the same period")
    bench_ret = at_bars.pct_change(fill_method=None)
    if first == bench.index[0]:
        bench_ret.loc[first] = bench.iloc[0]
    else:  # change since the benchmark's last bar before the strategy's first covered bar
        bench_ret.loc[first] = at_bars.loc[first] / level.shift(1).loc[first] - 1.0
    keep = returns.index >= first
    if not keep.all():
        notes.append(f"benchmark starts at {first.isoformat()}: the {int((~keep).sum())} earlier strategy bars are left out")
    returns, bench_ret = returns[keep], bench_ret[keep].astype(float)
    stale = int((returns.index > bench.index[-1]).sum())
    if stale:
        notes.append(f"benchmark ends before the strategy: its last level is carried over {stale} bar(s)")
    # QuantStats' reports.metrics(match_dates=True): start where both series first move
    loc = max(returns.ne(0).idxmax(), bench_ret.ne(0).idxmax())
    if loc != returns.index[0]:
        notes.append(f"QuantStats date matching: metrics start at {loc.isoformat()}, where both series first move")
        returns, bench_ret = returns.loc[loc:], bench_ret.loc[loc:]
    if len(returns) < 2 or not np.isfinite(bench_ret.to_numpy()).all():
        raise c.UsageError("the benchmark and the returns share fewer than 2 usable bars")
    bench_ret.name = "benchmark"
    return returns, bench_ret


def infer_periods_per_year(index) -> tuple[float, str]:
    """Annualisation from the timestamps: (periods per year, how it was inferred)."""
    import numpy as np

    if len(index) < 2:
        return 252.0, "default (too few bars to infer)"
    diffs = np.diff(index.values).astype("timedelta64[s]").astype(float)
    median_days = float(np.median(diffs)) / 86400.0
    weekend_share = float((index.day_of_week >= 5).mean())
    weekends = weekend_share > 0.05
    if median_days < 0.5:  # intraday
        per_day = index.normalize().value_counts()
        bars = float(np.median(per_day.to_numpy()))
        step = _fmt_step(median_days * 86400)
        if weekends:
            return 365.0 * bars, f"intraday {step} bars, {bars:g} per day, weekend bars present: 365 x {bars:g}"
        return 252.0 * bars, f"intraday {step} bars, {bars:g} per day, no weekend bars: 252 x {bars:g}"
    if median_days < 3.5:
        if weekends:
            return 365.0, f"daily bars incl. weekends ({weekend_share:.0%} on Sat/Sun): 365 calendar days"
        return 252.0, "daily bars without weekends: 252 trading days"
    for low, high, ppy, name in ((5, 9, 52.0, "weekly"), (25, 35, 12.0, "monthly"), (80, 100, 4.0, "quarterly"), (350, 380, 1.0, "yearly")):
        if low <= median_days <= high:
            return ppy, f"{name} bars: {ppy:g}"
    ppy = round(365.25 / median_days, 2)
    return ppy, f"irregular bars (median {median_days:.3g} days apart): 365.25 / {median_days:.3g}"


def _fmt_step(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"


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
        "data.sha256": sha256(data["file"]),
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
            facts["data.benchmark_sha256"] = sha256(data["benchmark_file"])
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
# QuantStats
# ---------------------------------------------------------------------------------------------
def import_quantstats():
    os.environ.setdefault("MPLBACKEND", "Agg")  # no display, no GUI backend probing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats as qs
    return qs


def series_metrics(qs, s, rf: float, ppy: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Every single-series QuantStats metric, computed exactly as reports.metrics(mode="full",
    compounded=True) computes it (same functions, same arguments) but unrounded, plus the
    stats functions that report leaves out. Returns (metrics, drawdown facts)."""
    import numpy as np
    import pandas as pd
    from dateutil.relativedelta import relativedelta

    st = qs.stats
    out: dict[str, Any] = {}
    out["time_in_market"] = st.exposure(s, prepare_returns=False)
    out["cumulative_return"] = st.comp(s)
    out["cagr"] = st.cagr(s, rf, True, ppy)
    out["sharpe"] = st.sharpe(s, rf, ppy, True)
    out["probabilistic_sharpe_ratio"] = st.probabilistic_sharpe_ratio(s, rf, ppy, False)
    out["smart_sharpe"] = st.smart_sharpe(s, rf, ppy, True)
    out["sortino"] = st.sortino(s, rf, ppy, True)
    out["smart_sortino"] = st.smart_sortino(s, rf, ppy, True)
    out["sortino_sqrt2"] = out["sortino"] / math.sqrt(2)
    out["smart_sortino_sqrt2"] = out["smart_sortino"] / math.sqrt(2)
    out["probabilistic_sortino_ratio"] = st.probabilistic_sortino_ratio(s, rf, ppy, False)
    out["probabilistic_adjusted_sortino_ratio"] = st.probabilistic_adjusted_sortino_ratio(s, rf, ppy, False)
    out["omega"] = st.omega(s, rf, 0.0, ppy)
    out["volatility"] = st.volatility(s, ppy, True, prepare_returns=False)
    out["volatility_per_period"] = st.volatility(s, ppy, False, prepare_returns=False)
    out["calmar"] = st.calmar(s, prepare_returns=False, compounded=True, periods=ppy)
    out["skew"] = st.skew(s, prepare_returns=False)
    out["kurtosis"] = st.kurtosis(s, prepare_returns=False)
    out["autocorr_penalty"] = st.autocorr_penalty(s)
    out["ulcer_performance_index"] = st.ulcer_performance_index(s, rf)
    out["risk_adjusted_return"] = st.rar(s, rf, periods=ppy, compounded=True)
    out["risk_return_ratio"] = st.risk_return_ratio(s, prepare_returns=False)
    out["avg_return"] = st.avg_return(s, prepare_returns=False)
    out["avg_win"] = st.avg_win(s, prepare_returns=False)
    out["avg_loss"] = st.avg_loss(s, prepare_returns=False)
    out["win_loss_ratio"] = st.win_loss_ratio(s, prepare_returns=False)
    out["profit_ratio"] = st.profit_ratio(s, prepare_returns=False)
    out["expected_return_period"] = st.expected_return(s, compounded=True, prepare_returns=False)
    out["expected_return_month"] = st.expected_return(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["expected_return_year"] = st.expected_return(s, compounded=True, aggregate="YE", prepare_returns=False)
    out["kelly_criterion"] = st.kelly_criterion(s, prepare_returns=False)
    out["risk_of_ruin"] = st.risk_of_ruin(s, prepare_returns=False)
    out["value_at_risk"] = -abs(st.var(s, prepare_returns=False))
    out["cvar"] = -abs(st.cvar(s, prepare_returns=False))
    out["value_at_risk_99"] = -abs(st.var(s, confidence=0.99, prepare_returns=False))
    out["cvar_99"] = -abs(st.cvar(s, confidence=0.99, prepare_returns=False))
    out["cvar_historical"] = -abs(st.cvar(s, prepare_returns=False, method="historical"))
    out["max_consecutive_wins"] = st.consecutive_wins(s)
    out["max_consecutive_losses"] = st.consecutive_losses(s)
    out["gain_to_pain_ratio"] = st.gain_to_pain_ratio(s, rf)
    out["gain_to_pain_1m"] = st.gain_to_pain_ratio(s, rf, "ME")
    out["gain_to_pain_3m"] = st.gain_to_pain_ratio(s, rf, "QE")
    out["gain_to_pain_1y"] = st.gain_to_pain_ratio(s, rf, "YE")
    out["payoff_ratio"] = st.payoff_ratio(s, prepare_returns=False)
    out["profit_factor"] = st.profit_factor(s, prepare_returns=False)
    out["common_sense_ratio"] = st.common_sense_ratio(s, prepare_returns=False)
    out["cpc_index"] = st.cpc_index(s, prepare_returns=False)
    out["tail_ratio"] = st.tail_ratio(s, prepare_returns=False)
    out["outlier_win_ratio"] = st.outlier_win_ratio(s, prepare_returns=False)
    out["outlier_loss_ratio"] = st.outlier_loss_ratio(s, prepare_returns=False)
    # Trailing windows, anchored at the last bar as reports.metrics does
    today = s.index[-1]
    out["return_mtd"] = st.comp(s[s.index >= pd.Timestamp(today.year, today.month, 1)])
    out["return_3m"] = st.comp(s[s.index >= today - relativedelta(months=3)])
    out["return_6m"] = st.comp(s[s.index >= today - relativedelta(months=6)])
    out["return_ytd"] = st.comp(s[s.index >= pd.Timestamp(today.year, 1, 1)])
    out["return_1y"] = st.comp(s[s.index >= today - relativedelta(years=1)])
    out["cagr_3y"] = st.cagr(s[s.index >= today - relativedelta(months=35)], 0.0, True, ppy)
    out["cagr_5y"] = st.cagr(s[s.index >= today - relativedelta(months=59)], 0.0, True, ppy)
    out["cagr_10y"] = st.cagr(s[s.index >= today - relativedelta(months=119)], 0.0, True, ppy)
    out["best_period"] = st.best(s, compounded=True, prepare_returns=False)
    out["worst_period"] = st.worst(s, prepare_returns=False)
    out["best_month"] = st.best(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["worst_month"] = st.worst(s, aggregate="ME", prepare_returns=False)
    out["best_quarter"] = st.best(s, compounded=True, aggregate="QE", prepare_returns=False)
    out["worst_quarter"] = st.worst(s, compounded=True, aggregate="QE", prepare_returns=False)
    out["best_year"] = st.best(s, compounded=True, aggregate="YE", prepare_returns=False)
    out["worst_year"] = st.worst(s, compounded=True, aggregate="YE", prepare_returns=False)
    # Drawdowns: one drawdown series, one details table (reports._calc_dd's figures)
    dd = st.to_drawdown_series(s)
    details = st.drawdown_details(dd)
    facts: dict[str, Any] = {"drawdown_series": dd}
    if len(details):
        worst = details.sort_values(by="max drawdown", ascending=True).iloc[0]
        out["max_drawdown"] = float(worst["max drawdown"]) / 100.0
        out["max_drawdown_days"] = int(worst["days"])
        out["longest_drawdown_days"] = int(details["days"].max())
        out["avg_drawdown"] = float(details["max drawdown"].mean()) / 100.0
        out["avg_drawdown_days"] = float(details["days"].mean())
        facts.update(max_drawdown_start=str(worst["start"]), max_drawdown_valley=str(worst["valley"]), max_drawdown_end=str(worst["end"]))
    else:  # never below a peak: no drawdown at all (averages over no drawdowns are undefined)
        out.update(max_drawdown=0.0, max_drawdown_days=0, longest_drawdown_days=0, avg_drawdown=math.nan, avg_drawdown_days=math.nan)
    out["drawdown_count"] = len(details)
    out["current_drawdown"] = float(dd.iloc[-1]) if len(dd) else math.nan
    out["recovery_factor"] = st.recovery_factor(s)
    out["ulcer_index"] = st.ulcer_index(s)
    out["serenity_index"] = st.serenity_index(s, rf)
    out["avg_up_month"] = st.avg_win(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["avg_down_month"] = st.avg_loss(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["win_rate"] = st.win_rate(s, prepare_returns=False)
    out["win_rate_month"] = st.win_rate(s, compounded=True, aggregate="ME", prepare_returns=False)
    out["win_rate_quarter"] = st.win_rate(s, compounded=True, aggregate="QE", prepare_returns=False)
    out["win_rate_year"] = st.win_rate(s, compounded=True, aggregate="YE", prepare_returns=False)
    return {k: _scalar(v, np) for k, v in out.items()}, facts


def _scalar(value: Any, np) -> float:
    try:
        value = float(np.asarray(value, dtype=float).reshape(-1)[0]) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError, IndexError):
        return math.nan
    return value


def benchmark_metrics(qs, s, b, rf: float, ppy: float) -> dict[str, float]:
    """Metrics relative to the benchmark, as reports.metrics(mode="full") computes them."""
    import numpy as np

    st = qs.stats
    out: dict[str, float] = {}
    flat = float(np.var(b.to_numpy(), ddof=1)) == 0.0
    greeks = st.greeks(s, b, ppy, prepare_returns=False)  # fills NaN with 0: not for a flat benchmark
    out["alpha"] = math.nan if flat else float(greeks["alpha"])
    out["beta"] = math.nan if flat else float(greeks["beta"])
    out["correlation"] = float(b.corr(s))
    out["r_squared"] = _scalar(st.r_squared(s, b, prepare_returns=False), np)
    # QuantStats answers 0 where these are undefined (identical series, zero beta): not logged
    same = float(np.std((s - b).to_numpy(), ddof=1)) == 0.0
    out["information_ratio"] = math.nan if same else _scalar(st.information_ratio(s, b, prepare_returns=False), np)
    zero_beta = flat or out["beta"] == 0.0
    out["treynor_ratio"] = math.nan if zero_beta else _scalar(st.treynor_ratio(s, b, ppy, rf), np)
    return out


def compute(qs, data: dict, rf: float, ppy: float) -> dict:
    s, b = data["returns"], data["benchmark"]
    with warnings.catch_warnings(), _np_quiet():
        warnings.simplefilter("ignore")
        metrics, facts = series_metrics(qs, s, rf, ppy)
        if b is not None:
            metrics.update(benchmark_metrics(qs, s, b, rf, ppy))
            bench_metrics, _ = series_metrics(qs, b, rf, ppy)
            metrics.update({f"benchmark_{k}": v for k, v in bench_metrics.items()})
    defined = {k: v for k, v in metrics.items() if math.isfinite(v)}
    undefined = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    return {"metrics": defined, "undefined": undefined, "facts": facts}


@contextlib.contextmanager
def _np_quiet():
    import numpy as np

    with np.errstate(all="ignore"):
        yield


def write_tearsheet(qs, data: dict, rf: float, ppy: float, title: str, path: Path) -> None:
    """QuantStats' HTML tearsheet, offline: benchmark passed as a Series (never a ticker to
    download), Agg backend, output to a file (never a browser download)."""
    import logging

    import matplotlib

    matplotlib.use("Agg", force=True)
    fonts = logging.getLogger("matplotlib.font_manager")  # "findfont: Font family 'Arial' not found" x100
    level = fonts.level
    fonts.setLevel(logging.ERROR)
    with warnings.catch_warnings(), _np_quiet(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        qs.reports.html(
            data["returns"].copy(),
            benchmark=data["benchmark"].copy() if data["benchmark"] is not None else None,
            rf=rf,
            title=title,
            output=str(path),
            compounded=True,
            periods_per_year=ppy,
        )
    fonts.setLevel(level)
    import matplotlib.pyplot as plt

    plt.close("all")


# ---------------------------------------------------------------------------------------------
# Logging to the store
# ---------------------------------------------------------------------------------------------
def log_batches(store: c.Store, run_id: str, metrics: list[dict], params: dict[str, str], tags: dict[str, str]) -> int:
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
        store.post(f"{c.API}/runs/log-batch", {"run_id": run_id, "metrics": m, "params": p, "tags": t}, what="logging metrics")
        requests_made += 1
    return requests_made


def log_histories(store: c.Store, run_id: str, returns, drawdown) -> int:
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
        store.post(f"{c.API}/runs/log-batch", {"run_id": run_id, "metrics": points[start : start + BATCH_METRICS]}, what="logging histories")
    return len(points)


def upload_artifacts(ctx: c.Context, artifact_uri: str, files: list[Path]) -> list[str]:
    """Proxied artifacts (mlflow-artifacts:) go over HTTP PUT like MLflow's HttpArtifactRepository;
    anything else (local paths, s3, ...) through MLflow's own artifact repository."""
    from urllib.parse import quote, urlsplit

    done = []
    store = ctx.store
    if artifact_uri.startswith("mlflow-artifacts:") and isinstance(store, c.HttpStore):
        path = urlsplit(artifact_uri).path
        base = "/api/2.0/mlflow-artifacts/artifacts/" + path.strip("/")
        for file in files:
            store.put_file(re.sub(r"//+", "/", f"{base}/{ARTIFACT_DIR}/{quote(file.name)}"), file)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
        return done
    with c._quiet_mlflow_logging():
        if ctx.settings.is_http:
            os.environ.setdefault("MLFLOW_TRACKING_URI", ctx.settings.tracking_uri)  # mlflow-artifacts: resolution
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repo = get_artifact_repository(artifact_uri)
        for file in files:
            repo.log_artifact(str(file), ARTIFACT_DIR)
            done.append(f"{ARTIFACT_DIR}/{file.name}")
    return done


def mark_failed(store: c.Store, run_id: str, message: str) -> bool:
    """Best effort: the error in a tag, the run FAILED. Never raises; says whether it worked."""
    with contextlib.suppress(Exception):
        store.post(
            f"{c.API}/runs/log-batch",
            {"run_id": run_id, "tags": [{"key": ERROR_TAG, "value": message[:MAX_TAG_VALUE]}]},
        )
    try:
        store.post(f"{c.API}/runs/update", {"run_id": run_id, "status": "FAILED", "end_time": int(time.time() * 1000)})
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
def command(ctx: c.Context) -> int:
    args = ctx.args
    if args.periods_per_year is not None and not (args.periods_per_year > 0 and math.isfinite(args.periods_per_year)):
        raise c.UsageError("--periods-per-year must be a positive number, e.g. 252")
    if not math.isfinite(args.risk_free) or not -1 < args.risk_free < 1:
        raise c.UsageError("--risk-free is an annual rate as a fraction, e.g. 0.04 for 4 %")
    if args.benchmark_prices and not (args.benchmark or args.benchmark_column):
        raise c.UsageError("--benchmark-prices needs --benchmark FILE or --benchmark-column NAME")
    notes: list[str] = []
    data = load_inputs(args, notes)
    returns = data["returns"]
    if args.periods_per_year is not None:
        ppy, how = float(args.periods_per_year), "given by --periods-per-year"
    else:
        ppy, how = infer_periods_per_year(returns.index)
        how = "inferred: " + how
    qs = import_quantstats()
    qs_version = str(getattr(qs, "__version__", "unknown"))
    params, user_tags = collect_params(args, data, ppy, qs_version)
    result = compute(qs, data, args.risk_free, ppy)
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
    experiment, _status = c.ensure_experiment(store, args.experiment)
    experiment_id = experiment["experiment_id"]
    start_ms = int(time.time() * 1000)
    body = {"experiment_id": experiment_id, "run_name": summary["run_name"], "start_time": start_ms, "tags": []}
    run = store.post(f"{c.API}/runs/create", body, what="creating a run")["run"]
    run_id = run["info"]["run_id"]
    summary.update(experiment=experiment["name"], experiment_id=experiment_id, run_id=run_id, status="RUNNING")
    summary["url"] = c.run_url(ctx.settings, experiment_id, run_id)
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
                write_tearsheet(qs, data, args.risk_free, summary["periods_per_year"], summary["run_name"], files[-1])
            summary["artifacts"] = upload_artifacts(ctx, run["info"].get("artifact_uri") or "", files)
        store.post(f"{c.API}/runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)})
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
    if key.removeprefix("benchmark_") in PCT_KEYS:
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
    return c.run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
