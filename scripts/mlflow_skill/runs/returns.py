"""A backtest's calendar for query_experiments.py's `returns` command: the run's returns per month
and year (compounded) as a year x month grid, and its worst drawdowns, read from the
backtest/periods.json artifact log_backtest.py logs.
"""

from __future__ import annotations

import json

from mlflow_skill.cli.frame import Context, one_run_id
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import NotFoundError, ServerError
from mlflow_skill.core.formatting import md_table, safe_text
from mlflow_skill.runs.targets import PROG, RunRefResolver, run_id_of
from mlflow_skill.store import lookups

RETURNS_DESCRIPTION = """A backtest run's returns per calendar month and year (compounded), as a year x month
grid, and its worst drawdowns (start, valley, end, depth, days). Read from the run's
backtest/periods.json, which log_backtest.py logs; --format csv gives the grid as numbers.

Examples:
  uv run scripts/query_experiments.py returns 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py returns --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --drawdowns 10 --format json"""

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def cmd_returns(ctx: Context, resolve_ref: RunRefResolver) -> int:
    """A backtest run's monthly/yearly returns and worst drawdowns, from its backtest/periods.json."""
    run_id = run_id_of(ctx, one_run_id(ctx.args), resolve_ref)
    run = lookups.get_run(ctx.store, run_id)
    path = "backtest/periods.json"
    try:
        raw = ctx.store.raw("GET", "/get-artifact", {"path": path, "run_uuid": run_id}, what=f"reading {path}")
    except NotFoundError:
        raise NotFoundError(
            f"run {run_id} has no {path}: it was not logged by log_backtest.py (or by an older version); "
            f"list its artifacts: {PROG} artifacts {run_id}"
        ) from None
    try:
        document = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        document["monthly"].items()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ServerError(f"{path} of run {run_id} is not the JSON log_backtest.py writes") from None
    ctx.emit(returns_view(run, document, ctx.args.drawdowns))
    return 0


def returns_view(run: dict, document: dict, drawdowns: int) -> View:
    grid = document["monthly"]
    years = sorted(grid)
    pct = lambda v: "" if v is None else f"{v * 100:.1f}%"  # noqa: E731
    rows = [
        [year, *[pct(grid[year].get(f"{m:02d}")) for m in range(1, 13)], pct(grid[year].get("year"))] for year in years
    ]
    raw = [[year, *[grid[year].get(f"{m:02d}") for m in range(1, 13)], grid[year].get("year")] for year in years]
    worst = document.get("worst_drawdowns", [])[:drawdowns]
    after = []
    if worst:
        after += [
            "",
            f"worst {len(worst)} drawdowns (of the run's whole window):",
            md_table(
                ["start", "valley", "end", "depth", "days"],
                [[d["start"], d["valley"], d["end"] or "not recovered", pct(d["depth"]), d["days"]] for d in worst],
            ),
        ]
    title = (
        f"Monthly returns of **{safe_text(lookups.run_name(run))}** ({run['info']['run_id']}), compounded; "
        f"{document.get('bars', '?')} bars {str(document.get('first', ''))[:10]} "
        f"to {str(document.get('last', ''))[:10]}; "
        "a blank cell had no bar"
    )
    return View(
        data={"run_id": run["info"]["run_id"], **document},
        lines=[title, ""],
        table=Table(["year", *MONTHS, "year total"], rows, raw),
        after=after,
        empty="no returns",
    )
