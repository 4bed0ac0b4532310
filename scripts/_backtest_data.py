"""Reading a backtest's input: CSV or Parquet, the date and value columns, numbers and dates
checked cell by cell, prices turned into returns, a benchmark aligned, and the number of bars
per year inferred from the calendar. Nothing here talks to the store: every check runs before
a run is created.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import _common as c

DATE_NAMES = ("date", "datetime", "time", "timestamp", "ts", "dt", "day", "period", "index", "unnamed: 0")


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


