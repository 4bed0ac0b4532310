# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7,<3.19",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "matplotlib>=3.7",
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
# matplotlib: --plot only (imported there).
"""Summarise a metric's history: shape, extremes and where they happen, in a few hundred tokens.

Usage:
  uv run scripts/get_metric_history.py --run-id ID [ID ...] [--metrics a,b] [--steps START:END]
                                       [--max-points N] [--exact] [--full [--output FILE [--force]]]
                                       [--plot FILE.png [--force]] [--format markdown|json|csv]
  uv run scripts/get_metric_history.py --run-id ID [ID ...] [--metrics a,b] --follow [--every SECONDS]
                                       [--deadline 2h] [--stall 30m] [--patience STEPS] [--diverge X]
                                       [--fail-on-anomaly]

Default view, per metric: number of points, step range, time range (when the points carry
distinct timestamps, e.g. a backtest's bars), first and last value, min and max with the step
where each occurs, NaN count, a sparkline, and a table of at most --max-points points (default
50; 20 per metric when several metrics are shown) that always holds the first, last, min and max.

Exact or sampled: the default view first asks the server for an even sample of at most 2,500
points per run (MLflow's get-history-bulk-interval keeps the first row of each of 2,500 equal
slices of the history, plus the last row: it never looks at the values). A series of at most
2,500 points comes back whole. A series of at most ~50,000 points is then read whole, in step
windows of ~2,000 points (about 1 s per 50,000 points on a local server): every figure is EXACT.
A longer one is SAMPLED: the header says so and gives the estimated total; min and max are
labelled as the extremes OF THE SAMPLE (refined by reading every point around them), because a
one-point spike between two samples cannot be seen; the output gives the --exact command.
--exact reads every point the same windowed way (about 2x faster than get-history's pages).
--full prints every point, or with --output writes them to a .csv or .json file atomically and
prints only the summary.

Sparkline: each character is one slice of the step range, drawn at the slice's min or max
(whichever lies farther from the series' median), so a one-point spike shows.

--plot FILE.png draws every run's series (one panel per metric, runs overlaid), marks min and
max, labelled exact or sample; matplotlib is imported only then.

Several --run-id: one table per metric with the runs side by side, aligned by step, plus one
summary line per run.

--follow: stay with a RUNNING run until it ends, then print one summary (a few KB however long the
run): per metric the last step and value, the best so far, the trend over the last 20 points, and
the default view's figures. The first read is the default view's; each poll after it (every
--every seconds, default 10, backing off to 4x that while nothing moves; never more than one
request a second per run) reads the status and latest metrics, then only the points logged
since. A progress line goes to stderr at most every 30 s (or --every if longer); stdout carries
only the summary. Anomalies are named as they appear: a NaN or infinite value; divergence of a
loss-like metric (the rule of `query_experiments.py health`: last - min > --diverge x max(first -
min, |min|)); a plateau (no better value for --patience steps); a stall (RUNNING with no write for
--stall, default 1h: no longer waited for); the run ending FAILED or KILLED. --fail-on-anomaly
returns at the first one with exit code 7. A sweep's parent (its children carry the tag
mlflow.parentRunId), or several --run-id values, are followed together: the summary names the
leader, the laggards and the runs behind in steps. --deadline bounds the whole wait: exit 4 at
the deadline, saying what is still going. A server that stops answering is said once and retried
(3 polls, each with the usual retries), then exit 4.

Examples:
  uv run scripts/get_metric_history.py --run-id 0b6660...          # every metric of the run
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss,val_loss --steps 1000:5000
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics equity --exact
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss --full --output loss.csv
  uv run scripts/get_metric_history.py --run-id RUN_A RUN_B --metrics val_loss --plot val_loss.png
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss --format json
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss,val_loss --follow --fail-on-anomaly
  uv run scripts/get_metric_history.py --run-id SWEEP_PARENT --metrics val_loss --follow --deadline 2h
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, make_parser, run_main
from mlflow_skill.core.errors import EXIT_OK
from mlflow_skill.history.load import experiment_label, load_all
from mlflow_skill.history.plot import plot_png
from mlflow_skill.history.request import SCRIPT, check_args, check_not_following, choose_metrics
from mlflow_skill.history.shape import shape
from mlflow_skill.history.views import build_view, write_points
from mlflow_skill.store import lookups


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}", formats=("markdown", "json", "csv"))
    parser.add_argument("--run-id", nargs="+", required=True, metavar="ID", help="one run, or several to compare")
    parser.add_argument("--metrics", help="comma-separated metric names (default: every metric of the run)")
    parser.add_argument("--steps", metavar="START:END", help="only steps in this inclusive window; START: or :END ok")
    parser.add_argument("--max-points", type=int, help="rows in the table (default 50; 20 per metric if several)")
    parser.add_argument("--exact", action="store_true", help="read every point so every figure is exact (slower)")
    parser.add_argument("--full", action="store_true", help="every point (implies --exact)")
    parser.add_argument("--output", metavar="FILE", help="with --full: write the points to FILE (.csv or .json)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the series to a PNG file (runs overlaid)")
    parser.add_argument("--force", action="store_true", help="overwrite --output / --plot if it exists")
    live = parser.add_argument_group("following a running run (--follow)")
    live.add_argument("--follow", action="store_true", help="stay with the run(s) until they end, then summarise")
    live.add_argument("--every", type=float, metavar="SECONDS", help="seconds between polls (default 10, at least 1)")
    live.add_argument("--deadline", metavar="DURATION", help="stop waiting after this long (e.g. 90s, 30m, 2h): exit 4")
    live.add_argument(
        "--stall", metavar="DURATION", help="a RUNNING run with no write this long is stalled (default 1h)"
    )
    live.add_argument("--patience", type=int, metavar="STEPS", help="a plateau: no better value for this many steps")
    live.add_argument("--diverge", type=float, metavar="X", help="divergence limit, as health's (default 1)")
    live.add_argument("--fail-on-anomaly", action="store_true", help="return at the first anomaly with exit code 7")
    return parser


def command(ctx: Context) -> int:
    args = ctx.args
    check_not_following(args)
    if args.follow:  # imported only then: the runs' health rules and the anomaly checks
        from mlflow_skill.history import follow

        return follow.command(ctx)
    request = check_args(args)  # every usage error before the first request
    runs = {r: lookups.get_run(ctx.store, r) for r in request.run_ids}  # fetch
    keys_by_run = {r: sorted(lookups.run_metrics(run)) for r, run in runs.items()}
    metrics, hidden = choose_metrics(keys_by_run, request.wanted, args.full)
    plan = [(k, [r for r in request.run_ids if k in keys_by_run[r]]) for k in metrics]
    results = load_all(ctx, plan, request.window, args.exact or args.full)
    experiment = ""
    if len(runs) == 1:
        experiment = experiment_label(ctx.store, runs[request.run_ids[0]]["info"].get("experiment_id"))
    sh = shape(ctx, runs, results, request.window, hidden, experiment)  # shape
    if args.output:
        write_points(args.output, sh, args.force)
    plot = plot_png(args.plot, sh, args.force) if args.plot else None
    ctx.emit(build_view(ctx, sh, plot))  # render
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
