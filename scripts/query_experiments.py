# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7,<3.19",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = false  # a first call compiles only what it imports, or borrows it (store/embedded.py)
# ///
# Dependencies: MLflow's client and tracking store without its ML stack (mlflow-skinny plus the
# database and server-handler packages full `mlflow` adds for the embedded sqlite store). Not
# compiled at install: compiling all of it took most of each script's first call, six times over;
# see store/transport.py bytecode_cache and store/embedded.py borrow_bytecode for what happens instead.
"""Query an MLflow tracking store: experiments, runs, one run, comparisons, best runs, overfitting,
failures, aggregates, exports and artifacts. Read-only: nothing is ever written to the store.

Usage:
  uv run scripts/query_experiments.py COMMAND [options]     (COMMAND --help shows its examples)

Commands:
  experiments  list experiments (active, deleted or all; name filter; paged)
  runs         search runs with MLflow's filter grammar, plus OR and numeric comparisons on params
  run          one run: info, params, latest metrics, tags, datasets, parent/children, artifacts
  compare      several runs side by side, only what differs by default
  best         top N runs by a metric (max or min)
  overfit      runs whose train/test metric gap exceeds a threshold
  failed       FAILED or KILLED runs with their error tags, and stale RUNNING runs
  aggregate    group runs by params/tags and summarise metrics (count, mean, min, max)
  (best, overfit and aggregate use FINISHED runs unless --include-unfinished; they say how many they skipped)
  export       every matching run to a CSV or JSON file (atomic, --force to overwrite)
  artifacts    a run's artifacts (path, size), optionally under a sub-path
  returns      a backtest's monthly/yearly returns grid and worst drawdowns
  models       registered models: latest versions, aliases, stages, tags (read-only)
  model        one registered model's versions with their source runs, or one version in full
  health       what deserves a look in an experiment: stale, failed, NaN, diverging, outlying, duplicated runs

Filters (runs, best, overfit, failed, aggregate, export): MLflow's grammar is passed to the
server (metrics.x > 1, params.opt = 'adam', tags.team LIKE 'q%', attributes.status = 'FAILED',
datasets.name IN ('a','b'), params."learning rate" = '0.1', params.`batch-size` = '32').
Two extensions run on the client, and the output says so:
  - OR between AND-groups: each group is one server search; results are merged by run id
    (no duplicates) and re-sorted by --order-by.
  - numeric comparisons on params (params.lr > 0.001, >=, <, <=, and = / != with an unquoted
    number): removed from the server filter and evaluated on the fetched runs. A run that lacks
    the param does not match; a run whose value is not a number is an error (exit 2).
Such queries fetch every matching run, then show one page; their page token is an offset.

Examples:
  uv run scripts/query_experiments.py experiments
  uv run scripts/query_experiments.py runs --experiment btc-momentum --order-by "metrics.sharpe DESC"
  uv run scripts/query_experiments.py runs --filter "metrics.sharpe > 1 OR params.lr > 0.001"
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py best --experiment btc-momentum --metric sharpe --top 5
  uv run scripts/query_experiments.py export --experiment btc-momentum --output runs.csv
"""

import argparse
import functools
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from mlflow_skill.cli.frame import Context, add_output_args, add_run_ids, add_subcommand, make_parser, run_main

SCRIPT = "query_experiments.py"
PROG = f"uv run scripts/{SCRIPT}"
FORMATS = ("markdown", "json", "csv")
UNFINISHED_HELP = (
    "include RUNNING, FAILED and KILLED runs (default: FINISHED only; the output says how many were skipped)"
)


def resolve_model_ref(*args, **kwargs):
    """models:/NAME@alias -> a run id. The registry, which the runs domain may not import, resolves
    it; imported only when a call names a model."""
    from mlflow_skill.registry import read as registry

    return registry.resolve_run_ref(*args, **kwargs)


def search_module() -> ModuleType:
    from mlflow_skill.runs import search

    return search


def _add_search_args(p: argparse.ArgumentParser, order: bool = True, view: bool = True) -> None:
    p.add_argument(
        "--experiment",
        "-e",
        action="append",
        metavar="NAME_OR_ID",
        help="experiment name or id; repeatable (default: all active)",
    )
    p.add_argument("--filter", "-f", help="MLflow filter, plus OR and numeric params comparisons")
    if order:
        p.add_argument(
            "--order-by", action="append", metavar="KEY [ASC|DESC]", help='e.g. "metrics.sharpe DESC"; repeatable'
        )
    if view:
        p.add_argument(
            "--view", choices=search_module().VIEWS, default="active", help="active (default), deleted or all runs"
        )


def _add_paging(p: argparse.ArgumentParser, default: int = 25) -> None:
    p.add_argument("--max-results", "-n", type=int, default=default, help=f"rows per page (default {default})")
    p.add_argument("--page-token", help="continue from a previous page (the output prints the exact command)")


def _experiments_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    p.add_argument("--view", choices=search_module().VIEWS, default="active", help="active (default), deleted or all")
    p.add_argument("--name-like", metavar="TEXT", help="names containing TEXT (case-insensitive)")
    p.add_argument("--filter", "-f", help="MLflow experiment filter, e.g. \"tags.team = 'quant'\"")
    p.add_argument("--order-by", action="append", help='e.g. "last_update_time DESC"; repeatable')
    p.add_argument("--count-runs", action="store_true", help="count active runs (one search per experiment)")
    p.add_argument("--count-limit", type=int, default=1000, help="stop counting at this many (default 1000)")
    _add_paging(p)


def _runs_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p)
    p.add_argument(
        "--columns", "-c", help="extra columns, comma separated: metrics.K,params.K,tags.K,start_time,duration,..."
    )
    _add_paging(p)


def _run_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    add_run_ids(p, help_text="run id, or a model version: models:/NAME@alias, models:/NAME/VERSION")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")


def _compare_args(p: argparse.ArgumentParser, compare: ModuleType) -> None:
    add_run_ids(p, many=True, help_text="run ids, or model versions: models:/NAME@alias, models:/NAME/VERSION")
    p.add_argument(
        "--metrics",
        "-m",
        action="append",
        metavar="A,B",
        help="only these metrics (plus the params that differ); repeatable",
    )
    p.add_argument(
        "--preset",
        choices=sorted(compare.COMPARE_PRESETS),
        help="a named metric set: backtest = " + ",".join(compare.COMPARE_PRESETS["backtest"]),
    )
    p.add_argument("--all", action="store_true", help="show identical fields too")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")


def _best_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p, order=False)
    p.add_argument("--metric", "-m", required=True, help="metric key")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--max", action="store_true", help="higher is better")
    direction.add_argument("--min", action="store_true", help="lower is better")
    p.add_argument("--top", type=int, default=5, help="how many (default 5)")
    p.add_argument(
        "--trials", type=int, help="--metric sharpe: how many variants were tried in all (default: the trial ledger)"
    )
    p.add_argument(
        "--ledger",
        metavar="SCOPE",
        help="--metric sharpe: the runs that count as trials: experiment (default), sweep, sweep:PARENT_RUN_ID "
        "or experiments:NAME,NAME",
    )
    p.add_argument("--columns", "-c", help="extra columns, comma separated")
    p.add_argument("--include-unfinished", action="store_true", help=UNFINISHED_HELP)


def _overfit_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p, order=False)
    p.add_argument("--train", required=True, help="train metric key, e.g. train_loss")
    p.add_argument("--test", required=True, help="test/validation metric key, e.g. val_loss")
    p.add_argument("--threshold", type=float, default=0.0, help="flag gaps above this (default 0)")
    p.add_argument("--relative", action="store_true", help="threshold applies to gap/|train| instead of the gap")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--max", action="store_true", help="higher is better (accuracy-like)")
    direction.add_argument("--min", action="store_true", help="lower is better (loss-like)")
    p.add_argument("--max-results", "-n", type=int, default=25, help="rows shown (default 25)")
    p.add_argument("--include-unfinished", action="store_true", help=UNFINISHED_HELP)


def _failed_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p)
    p.add_argument("--columns", "-c", help="extra columns, comma separated")
    p.add_argument(
        "--stale",
        default="1h",
        metavar="DURATION",
        help="also list RUNNING runs with no write for this long (default 1h; e.g. 30m, 2d)",
    )
    _add_paging(p)


def _aggregate_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p, order=False)
    p.add_argument("--group-by", "-g", action="append", required=True, help="params.K,tags.K,...; repeatable")
    p.add_argument(
        "--metric", "-m", action="append", required=True, help="metric key(s); repeatable or comma separated"
    )
    p.add_argument("--max-results", "-n", type=int, default=25, help="groups shown (default 25)")
    p.add_argument("--include-unfinished", action="store_true", help=UNFINISHED_HELP)


def _export_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p)
    add_output_args(p, required=True, what="every matching run (.csv or .json)")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")
    page = search_module().SCAN_PAGE
    p.add_argument("--page-size", type=int, default=page, help=f"runs per request (default {page}, max 50000)")
    p.add_argument("--limit", type=int, help="stop after this many runs (default: all)")
    p.add_argument(
        "--spreadsheet-safe",
        action="store_true",
        help="CSV: prefix text cells starting with = + - @ with ' so spreadsheets do not run them as formulas",
    )


def _returns_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    add_run_ids(p, help_text="a run logged by log_backtest.py (or models:/NAME@alias)")
    p.add_argument("--drawdowns", type=int, default=5, help="worst drawdowns shown (default 5)")


def _artifacts_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    add_run_ids(p)
    p.add_argument("--path", "-p", help="folder inside the run's artifacts")
    p.add_argument("--max-results", "-n", type=int, default=100, help="entries shown (default 100)")


def _models_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    p.add_argument(
        "--filter", "-f", help="MLflow registry filter, e.g. \"name LIKE 'fraud%%'\" or \"tags.team = 'risk'\""
    )
    p.add_argument(
        "--order-by", action="append", metavar="KEY [ASC|DESC]", help='e.g. "last_updated_timestamp DESC"; repeatable'
    )
    _add_paging(p)


def _model_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    p.add_argument("name", metavar="NAME", help="registered model name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", "-a", help="one version by alias, e.g. champion")
    which.add_argument("--version", "-v", help="one version by number")
    p.add_argument("--metric", "-m", action="append", help="metrics to show per version (default: the most common 3)")
    _add_paging(p, default=20)


def _health_args(p: argparse.ArgumentParser, _: ModuleType) -> None:
    _add_search_args(p, order=False, view=False)
    p.add_argument(
        "--stale",
        default="1h",
        metavar="DURATION",
        help="RUNNING with no write for longer than this is stale (default 1h)",
    )
    p.add_argument(
        "--metric", "-m", action="append", help="key metrics for outliers/divergence (default: those most runs have)"
    )
    p.add_argument(
        "--z", type=float, default=3.5, help="robust z-score beyond which a value is an outlier (default 3.5)"
    )
    p.add_argument(
        "--diverge",
        type=float,
        default=1.0,
        help="last - min above this x max(first - min, |min|) diverges (default 1)",
    )
    p.add_argument("--top", type=int, default=3, help="findings shown per kind (default 3)")
    p.add_argument("--limit", type=int, default=10_000, help="runs checked at most (default 10000)")
    p.add_argument(
        "--history-runs", type=int, default=200, help="runs whose loss history is sampled, per metric (default 200)"
    )


@dataclass(frozen=True)
class Command:
    """One subcommand: where its handler and --help description live (a module under mlflow_skill,
    imported only when the call uses it), its one-line help, and its arguments."""

    module: str
    handler: str
    description: str
    help: str
    arguments: Callable[[argparse.ArgumentParser, ModuleType], None]
    model_refs: bool = False  # takes models:/NAME@alias where it takes a run id


COMMANDS = {
    "experiments": Command(
        "runs.listing", "cmd_experiments", "EXPERIMENTS_DESCRIPTION", "list experiments", _experiments_args
    ),
    "runs": Command("runs.listing", "cmd_runs", "RUNS_DESCRIPTION", "search runs", _runs_args),
    "run": Command("runs.describe", "cmd_run", "RUN_DESCRIPTION", "describe one run", _run_args, True),
    "compare": Command(
        "runs.compare", "cmd_compare", "COMPARE_DESCRIPTION", "compare runs side by side", _compare_args, True
    ),
    "best": Command("runs.rankings", "cmd_best", "BEST_DESCRIPTION", "top N runs by a metric", _best_args),
    "overfit": Command(
        "runs.rankings", "cmd_overfit", "OVERFIT_DESCRIPTION", "train/test gap above a threshold", _overfit_args
    ),
    "failed": Command(
        "runs.failed",
        "cmd_failed",
        "FAILED_DESCRIPTION",
        "failed or killed runs with error tags, and stale RUNNING runs",
        _failed_args,
    ),
    "aggregate": Command(
        "runs.rankings", "cmd_aggregate", "AGGREGATE_DESCRIPTION", "group runs and summarise metrics", _aggregate_args
    ),
    "export": Command(
        "runs.export", "cmd_export", "EXPORT_DESCRIPTION", "all matching runs to CSV or JSON", _export_args
    ),
    "returns": Command(
        "runs.returns",
        "cmd_returns",
        "RETURNS_DESCRIPTION",
        "a backtest's monthly and yearly returns, worst drawdowns",
        _returns_args,
        True,
    ),
    "artifacts": Command(
        "runs.describe", "cmd_artifacts", "ARTIFACTS_DESCRIPTION", "list a run's artifacts", _artifacts_args, True
    ),
    "models": Command(
        "registry.read", "cmd_models", "MODELS_DESCRIPTION", "registered models (read-only)", _models_args
    ),
    "model": Command(
        "registry.read",
        "cmd_model",
        "MODEL_DESCRIPTION",
        "one registered model's versions, or one version",
        _model_args,
    ),
    "health": Command(
        "runs.health",
        "cmd_health",
        "HEALTH_DESCRIPTION",
        "stale, failed, NaN, diverging, outlying or duplicated runs",
        _health_args,
    ),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand is built and its module imported (what one
    call needs: building all of them cost an agent tens of milliseconds on every call)."""
    parser = make_parser(__doc__, prog=PROG, formats=FORMATS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f"mlflow_skill.{spec.module}")
        handler = getattr(module, spec.handler)
        if spec.model_refs:
            handler = functools.partial(handler, resolve_ref=resolve_model_ref)
        p = add_subcommand(sub, name, handler, spec.help, getattr(module, spec.description), FORMATS)
        spec.arguments(p, module)
    return parser


def command(ctx: Context) -> int:
    return ctx.args.handler(ctx)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    only = args[0] if args and args[0] in COMMANDS else None  # a misspelt command gets the whole parser
    return run_main(build_parser(only), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
