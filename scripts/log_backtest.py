# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7,<3.19",
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
                                 [--variant-pattern REGEX] [--variant-params CSV] [--trials N]
                                 [--ledger SCOPE] [--oos-from DATE|FRACTION] [--pbo-blocks S] [...]

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
`query_experiments.py returns RUN_ID`), the QuantStats HTML tearsheet (--no-tearsheet skips). \
If anything fails after the run was created, the run ends FAILED with the error in the
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

Price levels and all-positive percent numbers read as returns are refused, naming --prices or
--percent. Fewer than 30 bars get a small-sample note.

Sweeps: several variants at once, as columns of one file (--columns 'sma_*') or one file each
(--returns a.csv b.csv ...). Every variant is scored on ONE common window (from where the last
variant, and the benchmark, first moves; a variant may start late, with empty cells, and the
bars each loses are said), with the benchmark aligned the same way for all. A parent run holds
the sweep's facts, the ranking (backtest/ranking.csv and .json: Sharpe, PSR, MinTRL at 95 %, and
the deflated Sharpe ratio with N and V from the trial ledger: every backtest run of the
experiment, failed and deleted ones included, duplicates once; --ledger, --trials N), the
probability of backtest overfitting (CSCV, --pbo-blocks), backtest/certificate.json and one
picture of every equity curve (backtest/equity.png); one child run per variant, named after it,
with psr, dsr and min_trl_years, its params from --variant-pattern (named regex groups) or
--variant-params (a CSV with a `variant` column), histories resampled to 250 points and no
tearsheet. --oos-from DATE|FRACTION holds the later bars out: variants are ranked before it and
the winner's out-of-sample figures reported. Re-running the same sweep writes nothing; an
interrupted one is completed (finished children are kept).

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
  uv run scripts/log_backtest.py --returns sweep.csv --columns "sma_*" --oos-from 2024-01-01 --experiment sma-sweep
"""

from __future__ import annotations

import sys

from mlflow_skill.backtest import job as bj
from mlflow_skill.backtest import logrun, render, sweepjob, sweeplog
from mlflow_skill.backtest import runwriter as rw
from mlflow_skill.cli.frame import Context, make_parser, run_main
from mlflow_skill.core.errors import EXIT_OK, SkillError
from mlflow_skill.writes.common import refuse_if_read_only

SCRIPT = "log_backtest.py"
PROG = f"uv run scripts/{SCRIPT}"


def add_sweep_args(group) -> None:
    """The flags only a sweep takes: variant params, the trials and ledger, PBO, out of sample."""
    group.add_argument(
        "--variant-pattern",
        metavar="REGEX",
        help="sweep params from variant names: 'sma_(?P<lookback>\\d+)' gives lookback=50 for sma_50",
    )
    group.add_argument(
        "--variant-params",
        metavar="CSV",
        help="sweep params per variant: a CSV with a `variant` column and one column per param",
    )
    group.add_argument(
        "--trials",
        type=int,
        help="sweep: how many variants were tried in all, for the deflated Sharpe ratio (default: the trial ledger)",
    )
    group.add_argument(
        "--ledger",
        metavar="SCOPE",
        help="sweep: the trials of the research question: experiment (default: every backtest run of the "
        "experiment, failed and deleted ones included), sweep (this sweep only) or experiments:NAME,NAME",
    )
    group.add_argument(
        "--oos-from",
        metavar="DATE|FRACTION",
        help="sweep: hold out the bars from DATE (or the last 1 - FRACTION of them: 0.7 holds out 30 %%); variants "
        "are scored and the winner picked before it, its out-of-sample figures reported beside",
    )
    group.add_argument(
        "--pbo-blocks",
        type=int,
        default=16,
        metavar="S",
        help="sweep: blocks for the probability of backtest overfitting (CSCV; even, default 16)",
    )


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
    add_sweep_args(data)
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
        help=f"log every bar's history even above {bj.BIG_HISTORY_BARS:,} bars (slow)",
    )
    run.add_argument("--no-tearsheet", action="store_true", help="skip the QuantStats HTML tearsheet")
    return parser


def command(ctx: Context) -> int:
    """prepare (read, compute; every refusal before a run exists) -> log (find or create the run,
    write it) -> shape -> emit. One file is one backtest; several, or --columns, a sweep."""
    args = ctx.args
    if not args.dry_run:  # a dry run computes and writes nothing: allowed in read-only mode
        refuse_if_read_only(ctx.settings, f"{SCRIPT} (a backtest run)")
    sweep = sweepjob.is_sweep(args)
    if not sweep:
        args.returns = args.returns[0]
    with rw.interruptible():
        try:
            job = sweepjob.prepare_sweep(args) if sweep else bj.prepare(args)
            if not args.dry_run:
                (sweeplog.log_sweep if sweep else logrun.log_run)(ctx, job)
        except rw.Interrupted as exc:  # before a run existed, or after log_run reported it
            raise SkillError(
                f"interrupted by {exc.signame}{exc.why} before a run was created", exit_code=exc.exit_code
            ) from None
    ctx.emit(render.sweep_view(job, PROG) if sweep else render.backtest_view(job))
    return EXIT_OK


def main(argv: list[str] | None = None, watch: bool = False) -> int:
    if watch:
        rw.watch_parent()
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main(watch=True))
