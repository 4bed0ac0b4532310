"""The sweep model for log_backtest.py: several strategy variants (columns of one file, or one file
each) scored on ONE common evaluation window with the benchmark aligned the same way for all,
ranked with the probabilistic and deflated Sharpe ratios, and drawn as one equity-curve picture.

Reading and validation reuse backtest/data.py (every refusal before anything is logged); metrics
reuse backtest/metrics.compute, once per variant, in one process (sweepjob.py). Logging the sweep
is sweeplog.py's part, printing it render.py's.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_skill.backtest import data as bd
from mlflow_skill.backtest.metrics import MetricSet
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import to_csv
from mlflow_skill.quant import ledger as ql
from mlflow_skill.quant import sharpe as sharpe_stats

MAX_VARIANTS = 1000
PNG_LABELLED = 5  # variants named in the picture's legend (the best by Sharpe); the rest drawn thin


@dataclass
class Variant:
    name: str
    returns: Any  # pandas Series, returns per bar, on the common window (in sample with --oos-from)
    file: Path
    column: str
    params: dict[str, str] = field(default_factory=dict)
    result: MetricSet | None = None  # metrics.compute(...) on the common window
    oos_returns: Any = None  # pandas Series on the out-of-sample bars (--oos-from), else None
    dropped: int = 0  # bars of its own data outside the common window (a late starter drops none)


@dataclass(frozen=True)
class OutOfSample:
    """The bars held out of sample by --oos-from: never used to score or pick a variant."""

    start: Any
    end: Any
    bars: int
    how: str


@dataclass
class Sweep:
    variants: list[Variant]
    benchmark: Any  # pandas Series or None, on the common window
    local_index: Any  # the file's own wall-clock times for the window's bars
    start: Any
    end: Any
    bars_total: int
    files: list[Path]
    last_to_start: str | None = None
    oos: OutOfSample | None = None


# ---------------------------------------------------------------------------------------------
# Which variants: columns of one file (names or shell patterns), or several files
# ---------------------------------------------------------------------------------------------
def select_columns(table: bd.Table, spec: str, exclude: set[str]) -> list[str]:
    """'sma_*' or 'sma_20,sma_50' -> the matching columns, in the file's order."""
    columns = [col for col in table.frame.columns if col not in exclude]
    wanted: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        matches = [col for col in columns if fnmatch.fnmatchcase(col, part)]
        if not matches:
            raise UsageError(
                f"--columns {part!r} matches no column of {table.path.name} (columns: {', '.join(columns)})"
            )
        wanted += [m for m in matches if m not in wanted]
    if len(wanted) > MAX_VARIANTS:
        raise UsageError(f"--columns selects {len(wanted)} variants, at most {MAX_VARIANTS}: split the sweep")
    return wanted


def variant_params(names: list[str], pattern: str | None, params_file: str | None) -> dict[str, dict[str, str]]:
    """Per-variant params: named groups of a regular expression matched against each variant's
    name (`sma_(?P<lookback>\\d+)` -> lookback=50 for sma_50), and/or a CSV with a `variant`
    column and one column per param."""
    params: dict[str, dict[str, str]] = {n: {} for n in names}
    if pattern:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--variant-pattern {pattern!r} is not a regular expression: {exc}") from None
        if not regex.groupindex:
            raise UsageError("--variant-pattern needs named groups, e.g. 'sma_(?P<lookback>\\d+)'")
        for name in names:
            match = regex.search(name)
            if match is None:
                raise UsageError(
                    f"--variant-pattern {pattern!r} does not match variant {name!r}: fix the pattern or rename"
                )
            params[name].update({k: v for k, v in match.groupdict().items() if v is not None})
    if params_file:
        for name, values in read_params_csv(params_file, names).items():
            params[name].update(values)
    return params


def read_params_csv(path_text: str, names: list[str]) -> dict[str, dict[str, str]]:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UsageError(f"--variant-params {path_text}: no such file")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    if not rows or "variant" not in rows[0]:
        raise UsageError(
            f"--variant-params {path.name} needs a header with a `variant` column and one column per param"
        )
    by_name = {row["variant"].strip(): {k: v.strip() for k, v in row.items() if k != "variant" and k} for row in rows}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UsageError(f"--variant-params {path.name} has no row for {', '.join(missing[:5])}: add them")
    return {n: by_name[n] for n in names}


# ---------------------------------------------------------------------------------------------
# Loading and the common window
# ---------------------------------------------------------------------------------------------
def load(args, notes: list[str]) -> Sweep:
    """Every variant's returns, the benchmark, and the one window all of them are scored on."""
    import pandas as pd

    sep, decimal = bd.format_args(args)
    series, files, local, sources = _read_variants(args, sep, decimal, notes)
    names = list(series)
    params = variant_params(names, args.variant_pattern, args.variant_params)
    index = series[names[0]].index
    for name in names[1:]:
        index = index.intersection(series[name].index)
    if len(index) < 2:
        raise UsageError("the variants share fewer than 2 bars: give files that cover the same dates")
    bench = _benchmark(args, sep, decimal, index, notes)
    # The window starts when the last variant (and the benchmark) first moves: before that some
    # variant is still flat (a long lookback warming up) and would be scored on idle bars.
    starts = {name: _first_move(series[name].reindex(index)) for name in names}
    start = max(starts.values())
    last = max(starts, key=lambda n: starts[n])
    if bench is not None:
        start = max(start, _first_move(bench))
    end = index[-1]
    window = index[(index >= start) & (index <= end)]
    if len(window) < 2:
        raise UsageError("the common window (where every variant has started) has fewer than 2 bars")
    local_window = pd.DatetimeIndex(local.reindex(window).to_numpy())
    held_out, oos = window[:0], None
    if getattr(args, "oos_from", None):
        cut, how = split_point(window, local_window, args.oos_from)
        held_out, window, local_window = window[cut:], window[:cut], local_window[:cut]
        oos = OutOfSample(held_out[0], held_out[-1], len(held_out), how)
    variants = [
        Variant(
            n,
            series[n].reindex(window),
            *sources[n],
            params=params[n],
            oos_returns=series[n].reindex(held_out) if oos else None,
            dropped=len(series[n]) - len(window) - len(held_out),
        )
        for n in names
    ]
    return Sweep(
        variants=variants,
        benchmark=bench.reindex(window) if bench is not None else None,
        local_index=local_window,
        start=window[0],
        end=window[-1],
        bars_total=len(index),
        files=files,
        last_to_start=last,
        oos=oos,
    )


def split_point(window, local_window, spec: str) -> tuple[int, str]:
    """--oos-from DATE (the first bar at or after it, on the file's own dates) or FRACTION (0.7: the
    last 30 % of the window's bars) -> (position of the first out-of-sample bar, how it was chosen)."""
    import pandas as pd

    try:
        fraction = float(spec)
    except ValueError:
        fraction = None
    if fraction is not None and not 0 < fraction < 1 and not re.fullmatch(r"\d{4}", spec.strip()):
        raise UsageError(f"--oos-from {spec}: a fraction is between 0 and 1 (0.7: the last 30 % out of sample)")
    if fraction is not None and 0 < fraction < 1:
        cut, how = (
            int(round(len(window) * fraction)),
            f"--oos-from {spec}: the last {round((1 - fraction) * 100, 1):g} % of the bars",
        )
    else:
        try:
            when = pd.Timestamp(spec)
        except ValueError:
            raise UsageError(f"--oos-from {spec!r}: pass a date (2023-01-01) or a fraction (0.7)") from None
        axis = local_window if local_window.is_monotonic_increasing else window
        if when.tzinfo is not None:
            when, axis = when.tz_convert("UTC").tz_localize(None), window
        cut, how = int(axis.searchsorted(when, side="left")), f"--oos-from {spec}"
    if cut < 2 or len(window) - cut < 2:
        raise UsageError(
            f"--oos-from {spec} leaves {cut} bars in sample and {len(window) - cut} out of sample of the common window "
            f"({window[0].date()} to {window[-1].date()}): each side needs at least 2"
        )
    return cut, how


def _read_variants(args, sep, decimal, notes: list[str]):
    """{name: returns Series}, the files read, a Series mapping instants to local times, and
    {name: (file, column)}."""
    import pandas as pd

    files = list(args.returns)
    series: dict[str, Any] = {}
    sources: dict[str, tuple[Path, str]] = {}
    local_map: dict = {}
    tables = [bd.read_table(f, "--returns", sep, decimal) for f in files]
    for table in tables:
        date_col = bd.pick_date_column(table, args.date_column, "--returns")
        exclude = {date_col}
        if args.benchmark_column and not args.benchmark:
            exclude.add(args.benchmark_column)
        if len(tables) > 1:
            col = bd.pick_value_column(table, args.column, exclude, "--returns", "returns", "--column")
            columns = {table.path.stem: col}
        else:
            columns = {col: col for col in select_columns(table, args.columns or "*", exclude)}
        dates, local = bd.parse_dates(table, date_col, "--returns")
        dates.name = date_col
        local_map.update(zip(dates.values, local.values, strict=False))
        for name, col in columns.items():
            if name in series:
                raise UsageError(f"two variants are named {name!r}: rename a file or column")
            values = bd.parse_numbers(table, col, "--returns", args.percent, allow_empty=True)
            s = bd.to_series(table, dates, values, col, "--returns", args.prices, notes, name, percent=args.percent)
            s.name = name
            series[name] = s
            sources[name] = (table.path, col)
    if len(series) < 2:
        raise UsageError("a sweep needs at least 2 variants: name several --columns, or several --returns files")
    return series, [t.path for t in tables], pd.Series(local_map), sources


def _benchmark(args, sep, decimal, index, notes: list[str]):
    """The benchmark's returns on the shared bars (its level carried to each bar, differenced)."""
    import pandas as pd

    if not (args.benchmark or args.benchmark_column):
        return None
    if args.benchmark:
        table = bd.read_table(args.benchmark, "--benchmark", sep, decimal)
        flag = "--benchmark"
    else:
        table = bd.read_table(args.returns[0], "--returns", sep, decimal)
        flag = "--returns"
    date_col = bd.pick_date_column(table, None if args.benchmark else args.date_column, flag)
    col = bd.pick_value_column(table, args.benchmark_column, {date_col}, flag, "benchmark", "--benchmark-column")
    dates, _ = bd.parse_dates(table, date_col, flag)
    dates.name = date_col
    bench = bd.to_series(
        table,
        dates,
        bd.parse_numbers(table, col, flag, args.percent),
        col,
        flag,
        args.benchmark_prices or (args.prices and not args.benchmark),
        notes,
        "benchmark",
        args.percent,
        bd.BENCH_PRICES,
    )
    # align_benchmark on an always-moving stand-in: only the benchmark's own start can cut the bars
    _, aligned = bd.align_benchmark(pd.Series(1.0, index=index), bench, [])
    return aligned


def _first_move(series):
    moving = series.fillna(0).ne(0)
    return series.index[int(moving.to_numpy().argmax())] if moving.any() else series.index[-1]


# ---------------------------------------------------------------------------------------------
# Scoring and ranking
# ---------------------------------------------------------------------------------------------
def ranking(
    sweep: Sweep, ppy: float, ledger: ql.Ledger, trials: int | None = None
) -> tuple[list[dict], sharpe_stats.Ranking]:
    """Variants by Sharpe ratio (best first) with PSR, MinTRL and the DSR against the trial ledger:
    N = its configurations (or --trials N), V = the variance of their Sharpe ratios."""
    count = trials or ledger.trials
    bars = len(sweep.variants[0].returns)
    ranked = sharpe_stats.Ranking(count, ledger.variance_per_bar(ppy), 0.0, {}, {})
    ranked.sr0 = sharpe_stats.expected_max_sharpe(count, ranked.variance)
    rows, min_trl = [], {}
    for v in sweep.variants:
        m = v.result.metrics
        if all(k in m for k in ("sharpe", "skew", "kurtosis")):
            trial = sharpe_stats.Trial(v.name, m["sharpe"], ppy, bars, m["skew"], m["kurtosis"])
            deflated = ql.deflate(trial, count, ledger.variance_annual)
            ranked.psr[v.name], ranked.dsr[v.name] = deflated.psr, deflated.dsr
            min_trl[v.name] = deflated.min_trl_years
        rows.append(
            {
                "variant": v.name,
                **{f"param.{k}": val for k, val in v.params.items()},
                "sharpe": m.get("sharpe"),
                "psr": ranked.psr.get(v.name),
                "dsr": ranked.dsr.get(v.name),
                "min_trl_years": min_trl.get(v.name),
                **{k: m.get(k) for k in ("cagr", "max_drawdown", "volatility", "sortino", "calmar")},
                **({k: m.get(k) for k in OOS_KEYS} if sweep.oos else {}),
                "run_id": None,
            }
        )
    rows.sort(key=lambda r: (r["sharpe"] is None or not math.isfinite(r["sharpe"]), -(r["sharpe"] or 0.0)))
    for rank_no, row in enumerate(rows, 1):
        row["rank"] = rank_no
    return rows, ranked


OOS_KEYS = ("oos_sharpe", "oos_cagr", "oos_max_drawdown", "oos_cumulative_return")


def ranking_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in ("rank", *row)))
    return to_csv(keys, [[_csv(row.get(k)) for k in keys] for row in rows])


def _csv(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return "" if value is None else value


# ---------------------------------------------------------------------------------------------
# The picture
# ---------------------------------------------------------------------------------------------
def equity_png(sweep: Sweep, rows: list[dict], path: Path, title: str) -> Path:
    """Every variant's growth of 1 on the common window (the best few named), and the benchmark."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    named = [r["variant"] for r in rows[:PNG_LABELLED]]
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=100)
    for v in sweep.variants:
        equity = (1.0 + v.returns).cumprod()
        if v.name in named:
            continue
        ax.plot(equity.index, equity.to_numpy(), color="0.75", linewidth=0.7)
    for name in reversed(named):
        v = next(x for x in sweep.variants if x.name == name)
        ax.plot(
            v.returns.index,
            (1.0 + v.returns).cumprod().to_numpy(),
            linewidth=1.5,
            label=f"#{named.index(name) + 1} {name}",
        )
    if sweep.benchmark is not None:
        ax.plot(
            sweep.benchmark.index,
            (1.0 + sweep.benchmark).cumprod().to_numpy(),
            color="black",
            linewidth=2,
            label="benchmark",
        )
    others = len(sweep.variants) - len(named)
    ax.set_title(f"{title}: {len(sweep.variants)} variants" + (f" ({others} unnamed, grey)" if others else ""))
    ax.set_ylabel("growth of 1")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: (labels[i] == "benchmark", labels[i]))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
