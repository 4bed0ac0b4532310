"""Reading a backtest's input: CSV or Parquet, the date and value columns, numbers and dates
checked cell by cell, prices turned into returns, a benchmark aligned (the number of bars per
year is inferred in annualisation.py). Nothing here talks to the store: every check runs before
a run is created.
"""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow_skill.backtest import checks
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import truncate

BENCH_PRICES = "--benchmark-prices"
DATE_NAMES = ("date", "datetime", "time", "timestamp", "ts", "dt", "day", "period", "index", "unnamed: 0")


# ---------------------------------------------------------------------------------------------
# Reading and validating the input (nothing is created before all of this passed)
# ---------------------------------------------------------------------------------------------
class Table:
    """A loaded file: its string/number columns, how rows are named in errors, its facts."""

    def __init__(self, path: Path, frame, is_csv: bool, sep: str = ",", decimal: str | None = None):
        self.path = path
        self.frame = frame
        self.is_csv = is_csv
        self.sep = sep  # the field separator used (given or detected)
        self.decimal = decimal  # "." or "," when given by --decimal, else None: decided per column

    def row_name(self, position: int) -> str:
        """Errors name data rows 1-based, and the file line for CSV (header is line 1)."""
        return f"row {position + 1} (line {position + 2})" if self.is_csv else f"row {position + 1}"


SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def sniff_separator(path: Path) -> str:
    """The separator of a CSV from its header line: the candidate found most often outside quotes."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {sep: unquoted.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def read_table(path_text: str, flag: str, sep: str | None = None, decimal: str | None = None) -> Table:
    import pandas as pd

    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UsageError(f"{flag} {path_text}: no such file")
    if path.stat().st_size == 0:
        raise UsageError(f"{flag} {path_text} is empty: it needs a header and at least 2 rows")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            if isinstance(frame.index, pd.DatetimeIndex):
                frame = frame.reset_index()
            is_csv = False
        else:
            sep = sep or ("\t" if suffix in (".tsv", ".tab") else sniff_separator(path))
            # utf-8-sig: a byte-order mark (Excel's UTF-8 CSV) is not part of the first column's name
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, sep=sep, skipinitialspace=True, encoding="utf-8-sig"
            )
            is_csv = True
    except pd.errors.EmptyDataError:
        raise UsageError(f"{flag} {path_text} is empty: it needs a header and at least 2 rows") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {flag} {path_text}: not UTF-8 text; save it as UTF-8 CSV") from None
    except pd.errors.ParserError as exc:  # rows with more fields than the header
        hint = (
            "; decimal commas in a comma-separated file? pass --sep ';' (or quote the numbers)"
            if sep == ","
            else ": pass --sep"
        )
        raise UsageError(f"cannot read {flag} {path_text}: {truncate(str(exc).strip(), 120)}{hint}") from None
    except Exception as exc:  # malformed CSV, not a Parquet file, ...
        raise UsageError(f"cannot read {flag} {path_text}: {truncate(str(exc), 200)}") from None
    if is_csv and not isinstance(frame.index, pd.RangeIndex):  # pandas made the extra first field an index
        other = "';'" if sep == "," else "','"
        raise UsageError(
            f"cannot read {flag} {path_text}: its rows have more fields than its header ({sep!r}-separated); "
            f"decimal commas in a comma-separated file? pass --sep {other} if that is the separator, or quote the "
            f"numbers"
        )
    frame.columns = [str(col).strip().lstrip("\ufeff") for col in frame.columns]
    if len(frame) == 0:
        raise UsageError(f"{flag} {path_text} has a header but no data rows")
    return Table(path, frame, is_csv, sep or ",", decimal)


def _format_hint(table: Table) -> str:
    """When the columns look wrong, the flag that fixes the reading (separator or decimal comma)."""
    columns = list(table.frame.columns)
    if table.is_csv and len(columns) == 1:
        sample = f"{columns[0]} {table.frame.iloc[0, 0]}"
        other = [name for sep, name in SEPARATORS.items() if sep != table.sep and sep in sample]
        if other:
            sep = next(s for s, n in SEPARATORS.items() if n == other[0])
            shown = "'\\t'" if sep == "\t" else repr(sep)
            return f"the header {columns[0]!r} looks {other[0]}-separated: pass --sep {shown}"
    return ""


def pick_date_column(table: Table, wanted: str | None, flag: str, undated_ok: bool = False) -> str | None:
    columns = list(table.frame.columns)
    if wanted:
        if wanted not in columns:
            raise UsageError(
                f"--date-column {wanted!r} is not in {flag} {table.path.name} (columns: {', '.join(columns)})"
            )
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
    hint = _format_hint(table)
    if hint:
        raise UsageError(f"cannot read {flag} {table.path.name}: {hint}")
    if undated_ok:
        return None
    raise UsageError(
        f"no date/time column found in {flag} {table.path.name} (columns: {', '.join(columns)}): pass --date-column "
        f"NAME, "
        "or --periods-per-year N for returns without dates"
    )


# Number styles: 1,234.5 (point decimal, comma thousands) and 1.234,5 (comma decimal, point thousands)
_PLAIN = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_US_GROUPED = re.compile(r"^[+-]?[1-9]\d{0,2}(,\d{3})+(\.\d*)?$")
_EU_GROUPED = re.compile(r"^[+-]?[1-9]\d{0,2}(\.\d{3})+(,\d*)?$")
_EU_DECIMAL = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")


def _style(text: str) -> str | None:
    """'.' or ',' when the cell's decimal mark is certain, None when either reading fits."""
    text = text.rstrip("%").strip()
    if _PLAIN.match(text):
        return "." if ("." in text and not re.match(r"^[+-]?[1-9]\d{0,2}\.\d{3}$", text)) else None
    if _EU_DECIMAL.match(text):
        return None if re.match(r"^[+-]?[1-9]\d{0,2},\d{3}$", text) else ","
    if _US_GROUPED.match(text):
        return "." if "." in text else None
    if _EU_GROUPED.match(text):
        return "," if "," in text else None
    return None


def _convert(text: str, decimal: str) -> float | None:
    text = text.rstrip("%").strip()
    if decimal == ",":
        if _EU_GROUPED.match(text) or _EU_DECIMAL.match(text) or re.match(r"^[+-]?\d+$", text):
            text = text.replace(".", "").replace(",", ".")
        elif "," in text or "." in text:
            return None
    elif _US_GROUPED.match(text):
        text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        return None


def _as_number(text: str, decimal: str | None = None) -> float | None:
    text = text.strip()
    if decimal:
        return _convert(text, decimal)
    return _convert(text, _style(text) or ".") if text else None


def column_decimal(table: Table, col: str, flag: str) -> str:
    """The column's decimal mark: --decimal, else the one its cells show (refusing a mix)."""
    if table.decimal:
        return table.decimal
    styles: dict[str, int] = {}
    for pos, cell in enumerate(table.frame[col].astype(str)):
        style = _style(cell.strip())
        if style and style not in styles:
            styles[style] = pos
    if len(styles) == 2:
        a, b = sorted(styles.values())
        raise UsageError(
            f"{flag} {table.path.name} column {col!r} mixes decimal marks ({table.row_name(a)}: "
            f"{table.frame[col].iloc[a]!r}, {table.row_name(b)}: {table.frame[col].iloc[b]!r}): pass --decimal . or "
            f"--decimal ,"
        )
    if styles:
        return next(iter(styles))
    return "," if table.sep == ";" else "."


def pick_value_column(table: Table, wanted: str | None, exclude: set[str], flag: str, what: str, option: str) -> str:
    columns = list(table.frame.columns)
    if wanted:
        if wanted not in columns:
            raise UsageError(f"{option} {wanted!r} is not in {flag} {table.path.name} (columns: {', '.join(columns)})")
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
        raise UsageError(f"no numeric {what} column in {flag} {table.path.name} (columns: {', '.join(columns)})")
    raise UsageError(
        f"{flag} {table.path.name} has several numeric columns ({', '.join(candidates)}): pass {option} NAME"
    )


_OFFSET = r"\s*(?:Z|[+-]\d{2}:?\d{2})$"


def parse_dates(table: Table, col: str, flag: str):
    """-> (instants, local): DatetimeIndex of UTC instants (tz-naive) and of the wall-clock times
    the file states (tz-naive; equal to the instants when the file gives no offset or zone).
    Weekdays and calendar months are read on the local times. Unreadable cells refused by row."""
    import pandas as pd

    raw = table.frame[col]
    if str(raw.dtype).startswith("datetime"):
        parsed = pd.to_datetime(raw, utc=True)
        local = raw.dt.tz_localize(None) if getattr(raw.dt, "tz", None) is not None else parsed.dt.tz_localize(None)
    else:
        text = raw.astype(str).str.strip()
        parsed = _to_datetime(text, utc=True)
        zoned = text.str.contains(_OFFSET, regex=True)
        local = _to_datetime(text.str.replace(_OFFSET, "", regex=True), utc=False) if zoned.any() else None
    bad = parsed.isna().to_numpy().nonzero()[0]
    if len(bad):
        pos = int(bad[0])
        raise UsageError(
            f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r}: cannot read {str(raw.iloc[pos])!r} "
            "as a date/time (use ISO dates like 2024-01-31 or 2024-01-31T14:00)"
        )
    instants = pd.DatetimeIndex(parsed).tz_convert("UTC").tz_localize(None)
    if local is None or local.isna().any():
        local = instants
    return instants, pd.DatetimeIndex(local)


def _to_datetime(text, utc: bool):
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, utc=utc, errors="coerce", format="ISO8601")
        if parsed.isna().any():  # not ISO: let pandas infer one format for the column
            dotted = bool(text.str.match(r"^\d{1,2}\.\d{1,2}\.\d{2,4}").all())  # 31.01.2024: day first
            parsed = pd.to_datetime(text, utc=utc, errors="coerce", dayfirst=dotted)
            if parsed.isna().any() and not dotted:  # 31/01/2024 after 01/02/2024 read month first
                other = pd.to_datetime(text, utc=utc, errors="coerce", dayfirst=True)
                if other.isna().sum() < parsed.isna().sum():
                    parsed = other
    return parsed


def parse_numbers(table: Table, col: str, flag: str, percent: bool, allow_empty: bool = False):
    """-> float numpy array; '1.5%' strings are 0.015; decimal commas and thousands separators
    read per the column's style (column_decimal); refuses empty (unless allow_empty: NaN, for a
    sweep's late starters, checked in to_series) and non-numeric cells by row."""
    import numpy as np
    import pandas as pd

    raw = table.frame[col]
    if str(raw.dtype) in ("object", "string", "str"):
        text = raw.astype(str).str.strip()
        is_pct = text.str.endswith("%").to_numpy()
        plain = text.str.rstrip("%").str.strip()
        if not table.decimal and table.sep != ";" and not plain.str.contains(",", regex=False).any():
            decimal = "."  # no comma anywhere: the fast path
            values = pd.to_numeric(plain.where(plain != "", None), errors="coerce").to_numpy(dtype=float)
        else:
            decimal = column_decimal(table, col, flag)
            values = np.array([_convert(t, decimal) if t else None for t in text], dtype=float)
        values = np.where(is_pct, values / 100.0, values)
        if is_pct.any() and not is_pct.all():
            mixed = ~is_pct & (values != 0) & np.isfinite(values)
            if mixed.any():
                pos = int(mixed.nonzero()[0][0])
                raise UsageError(
                    f"{flag} {table.path.name} column {col!r} mixes percent strings and plain numbers "
                    f"({table.row_name(pos)}: {text.iloc[pos]!r}): write all values one way"
                )
        elif percent:
            values = values / 100.0
    else:
        decimal = "."
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        if percent:
            values = values / 100.0
    bad = (~np.isfinite(values)).nonzero()[0]
    if allow_empty:
        bad = np.array([pos for pos in bad if not _empty_cell(raw.iloc[pos])], dtype=int)
    if len(bad):
        pos = int(bad[0])
        cell = str(raw.iloc[pos]).strip()
        what = "is empty" if _empty_cell(raw.iloc[pos]) else f"holds {cell!r}, not a finite number"
        hint = "fix or drop that row"
        if what != "is empty" and re.search(r"\d[.,]\d", cell):
            read, other = ("a decimal comma", ".") if decimal == "," else ("a decimal point", ",")
            hint = f"numbers are read with {read}; pass --decimal {other} if the file uses the other"
        raise UsageError(f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r} {what}: {hint}")
    return values


def _empty_cell(value) -> bool:
    text = str(value).strip()
    return text in ("", "nan", "None", "NaN", "<NA>", "NaT")


def to_series(
    table: Table,
    dates,
    values,
    col: str,
    flag: str,
    prices: bool,
    notes: list[str],
    label: str,
    percent: bool = False,
    prices_flag: str = "--prices",
):
    """Sorted, duplicate-free returns Series from dates + values (returns or prices). Leading NaN
    (a sweep variant that starts late: parse_numbers(allow_empty=True)) are dropped; a NaN after
    the first value is refused by row. Returns that can only be price levels or percent numbers are
    refused unless `prices` or `percent` says how to read them (checks.refuse_levels)."""
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
        raise UsageError(
            f"{flag} {table.path.name}: {table.row_name(a)} and {table.row_name(b)} have the same time {when}: "
            "one row per bar; drop or merge the duplicate"
        )
    vals = values[order]
    index = pd.DatetimeIndex(sorted_dates)
    missing = ~np.isfinite(vals)
    if missing.any():
        first = int(np.argmin(missing)) if not missing.all() else len(vals)
        gaps = missing[first:].nonzero()[0]
        if first == len(vals) or len(gaps):
            pos = int(order[first + gaps[0]]) if first < len(vals) else int(order[0])
            raise UsageError(
                f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r} is empty: fix or drop that row "
                "(in a sweep only a variant's first rows may be empty: it starts late)"
            )
        vals, index = vals[first:], index[first:]
    if prices:
        nonpos = (vals <= 0).nonzero()[0]
        if len(nonpos):
            pos = int(order[nonpos[0]])
            raise UsageError(
                f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r}: price {values[pos]:g} is not positive"
            )
        series = pd.Series(vals[1:] / vals[:-1] - 1.0, index=index[1:])
    else:
        if not percent:
            checks.refuse_levels(vals, f"{flag} {table.path.name} column {col!r}", prices_flag)
        below = (vals < -1).nonzero()[0]
        if len(below):
            pos = int(order[below[0]])
            raise UsageError(
                f"{flag} {table.path.name} {table.row_name(pos)}, column {col!r}: return {values[pos]:g} is below "
                f"-100 %; "
                "if the column holds percent numbers pass --percent, if it holds prices pass --prices"
            )
        series = pd.Series(vals, index=index)
    series.index.name = "date"
    if len(series) < 2:
        raise UsageError(f"{flag} {table.path.name} gives {len(series)} return(s): at least 2 are needed")
    return series


def sha256(path: Path) -> str:
    """A file's sha256, read once per process while the file is unchanged (a sweep names the same
    file for every variant)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def format_args(args) -> tuple[str | None, str | None]:
    """--sep and --decimal, checked (None: detect)."""
    sep, decimal = getattr(args, "sep", None), getattr(args, "decimal", None)
    if sep is not None:
        sep = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(sep.lower(), sep)
        if len(sep) != 1:
            raise UsageError("--sep takes one character: , ; | or tab")
    if decimal is not None:
        decimal = {"comma": ",", "point": ".", "dot": "."}.get(decimal.lower(), decimal)
        if decimal not in (".", ","):
            raise UsageError("--decimal takes . or ,")
        if sep == decimal:
            raise UsageError("--sep and --decimal cannot be the same character")
    return sep, decimal


def undated_index(count: int, ppy: float):
    """Bars without dates: evenly spaced stand-in times from 1970-01-01, 1/ppy of a year apart."""
    import pandas as pd

    step = pd.Timedelta(seconds=round(365.25 * 86400 / ppy))
    return pd.DatetimeIndex([pd.Timestamp("1970-01-01") + i * step for i in range(count)])


@dataclass
class Inputs:
    """One backtest's series, read and checked: the returns (and the benchmark's, on the same bars)
    on UTC instants, the file's own wall-clock times of those bars, and where they came from."""

    returns: Any  # pandas Series: the return of each bar
    file: Path
    column: str
    benchmark: Any = None  # pandas Series on the same bars, or None
    benchmark_file: Path | None = None
    benchmark_column: str | None = None
    date_column: str | None = None
    dated: bool = True  # False: stand-in times (--periods-per-year on undated rows)
    local_index: Any = None  # pandas DatetimeIndex: the bars' times as the file states them


def load_inputs(args, notes: list[str]) -> Inputs:
    """Read --returns (and the benchmark) into aligned pandas Series; every refusal happens here."""
    import pandas as pd

    sep, decimal = format_args(args)
    table = read_table(args.returns, "--returns", sep, decimal)
    date_col = pick_date_column(table, args.date_column, "--returns", undated_ok=args.periods_per_year is not None)
    exclude = {date_col} if date_col else set()
    if args.benchmark_column and not args.benchmark:
        exclude.add(args.benchmark_column)
    value_col = pick_value_column(
        table, args.column, exclude, "--returns", "prices" if args.prices else "returns", "--column"
    )
    if date_col:
        dates, local = parse_dates(table, date_col, "--returns")
    else:
        dates = local = undated_index(len(table.frame), args.periods_per_year)
        notes.append(
            f"no date column: {len(table.frame)} rows read as consecutive bars, {args.periods_per_year:g} a year "
            "(--periods-per-year); times start at 1970-01-01 as stand-ins, calendar metrics are left out"
        )
    dates.name = date_col or "bar"
    local_of = pd.Series(local.values, index=dates.values)
    values = parse_numbers(table, value_col, "--returns", args.percent)
    returns = to_series(
        table, dates, values, value_col, "--returns", args.prices, notes, "returns", percent=args.percent
    )
    returns.name = "returns"
    inputs = Inputs(returns, table.path, value_col, date_column=date_col, dated=date_col is not None)
    _load_benchmark(args, inputs, table, dates, (sep, decimal), notes)
    if inputs.benchmark is not None:
        inputs.returns, inputs.benchmark = align_benchmark(inputs.returns, inputs.benchmark, notes)
    inputs.local_index = pd.DatetimeIndex(local_of.reindex(inputs.returns.index).to_numpy())
    return inputs


def _load_benchmark(args, inputs: Inputs, table: Table, dates, fmt: tuple, notes: list[str]) -> None:
    """The benchmark's returns, from --benchmark FILE or a --benchmark-column of the returns file
    (not yet aligned on the strategy's bars)."""
    bench_prices = args.benchmark_prices or (args.prices and not args.benchmark)
    if args.benchmark:
        btable = read_table(args.benchmark, "--benchmark", *fmt)
        bdate = pick_date_column(btable, None, "--benchmark")
        bcol = pick_value_column(
            btable, args.benchmark_column, {bdate}, "--benchmark", "benchmark", "--benchmark-column"
        )
        bdates, _ = parse_dates(btable, bdate, "--benchmark")
        bdates.name = bdate
        bvalues = parse_numbers(btable, bcol, "--benchmark", args.percent)
        inputs.benchmark = to_series(
            btable, bdates, bvalues, bcol, "--benchmark", bench_prices, notes, "benchmark", args.percent, BENCH_PRICES
        )
        inputs.benchmark_file, inputs.benchmark_column = btable.path, bcol
    elif args.benchmark_column:
        if args.benchmark_column == inputs.column:
            raise UsageError("--benchmark-column names the returns column itself: pick the benchmark's column")
        pick_value_column(table, args.benchmark_column, set(), "--returns", "benchmark", "--benchmark-column")
        bvalues = parse_numbers(table, args.benchmark_column, "--returns", args.percent)
        inputs.benchmark = to_series(
            table,
            dates,
            bvalues,
            args.benchmark_column,
            "--returns",
            bench_prices,
            notes,
            "benchmark",
            args.percent,
            BENCH_PRICES,
        )
        inputs.benchmark_column = args.benchmark_column


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
        raise UsageError("the benchmark has no values at the strategy's dates: check it covers the same period")
    bench_ret = at_bars.pct_change(fill_method=None)
    if first == bench.index[0]:
        bench_ret.loc[first] = bench.iloc[0]
    else:  # change since the benchmark's last bar before the strategy's first covered bar
        bench_ret.loc[first] = at_bars.loc[first] / level.shift(1).loc[first] - 1.0
    keep = returns.index >= first
    if not keep.all():
        notes.append(
            f"benchmark starts at {first.isoformat()}: the {int((~keep).sum())} earlier strategy bars are left out"
        )
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
        raise UsageError("the benchmark and the returns share fewer than 2 usable bars")
    bench_ret.name = "benchmark"
    return returns, bench_ret
