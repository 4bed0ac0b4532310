"""Failures for query_experiments.py's `failed` command: FAILED or KILLED runs with their error tags,
and, on the first page, RUNNING runs that are abandoned by the one liveness rule (runs.liveness):
their writer is gone, or they wrote nothing for longer than --stale.
"""

from __future__ import annotations

from mlflow_skill.cli.frame import Context
from mlflow_skill.core.formatting import fmt_duration, iso_time
from mlflow_skill.core.values import parse_duration_ms
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import liveness
from mlflow_skill.runs import search as rs
from mlflow_skill.runs.targets import query_for

FAILED_DESCRIPTION = """FAILED or KILLED runs, newest first, with their error tags (tag keys containing error,
exception, traceback or failure, e.g. backtest.error); first, RUNNING runs with no write (start or
newest metric time) for longer than --stale (default 1h), marked `RUNNING (stale ...)`: their
process died or hangs. A log_backtest.py run is completed by re-running the same command.

Examples:
  uv run scripts/query_experiments.py failed
  uv run scripts/query_experiments.py failed --experiment btc-momentum --format json
  uv run scripts/query_experiments.py failed --stale 30m"""


def stale_running(ctx: Context, stale_ms: int) -> dict[str, tuple[dict, liveness.Liveness]]:
    """RUNNING runs that are abandoned (runs.liveness): run id -> (run, verdict)."""
    query = query_for(ctx, extra=["attributes.status = 'RUNNING'"])
    now = liveness.now_ms()
    found = {}
    for run in rs.iter_runs(ctx.store, query, limit=10_000):
        verdict = liveness.judge(run, stale_ms, now)
        if verdict.abandoned:
            found[run["info"]["run_id"]] = (run, verdict)
    return found


def marked_stale(run: dict, verdict: liveness.Liveness) -> dict:
    """A copy whose status cell says why: `RUNNING (stale, no write for 2h00m)` or `RUNNING (writer gone)`."""
    if verdict.state == liveness.WRITER_GONE:
        status = "RUNNING (writer gone: killed)"
    else:
        status = f"RUNNING (stale, no write for {fmt_duration(verdict.idle_ms)})"
    return {**run, "info": {**run["info"], "status": status}}


FAILED_CLAUSES = [
    "attributes.status != 'FINISHED'",
    "attributes.status != 'RUNNING'",
    "attributes.status != 'SCHEDULED'",
]


def cmd_failed(ctx: Context) -> int:
    args = ctx.args
    # The server rejects status IN (...): excluding the three other statuses keeps one paged search.
    stale_ms = parse_duration_ms(args.stale, "--stale")
    query = query_for(ctx, args.order_by, extra=FAILED_CLAUSES)
    page = rs.fetch_page(ctx.store, query, args.max_results, args.page_token)
    stale = {} if args.page_token else stale_running(ctx, stale_ms)  # on the first page, before the rest
    page.runs = [*(marked_stale(r, verdict) for r, verdict in stale.values()), *page.runs]
    with_errors = sum(1 for r in page.runs if rc.error_tags(r))
    extra = [rc.Column("attr", "end_time"), rc.Column("error", "error"), *rc.parse_columns(args.columns)]
    after = [
        f"\n{with_errors} of {len(page.runs)} shown have error tags "
        "(tag keys containing error/exception/traceback/failure)"
    ]
    if stale:
        after.append(
            f"{len(stale)} RUNNING runs whose writer is gone or with no write for over {args.stale} are listed as "
            "`RUNNING (stale ...)` or `RUNNING (writer gone ...)`: their process died or hangs"
        )
        if any(liveness.writer_fields(run) for run, _ in stale.values()):
            after.append("A log_backtest.py run is completed by re-running the same command")

    def record(run: dict, names: dict[str, str]) -> dict:
        rec = {**rc.run_record(run, names), "error_tags": rc.error_tags(run), "stale": run["info"]["run_id"] in stale}
        if rec["stale"]:
            rec["status"] = "RUNNING"
            verdict = stale[run["info"]["run_id"]][1]
            rec["last_write"] = iso_time(verdict.last_write_ms)
            rec["abandoned"] = verdict.state
        return rec

    view = rc.runs_view(
        query,
        page,
        "Failed, killed or stale runs" if stale else "Failed or killed runs",
        extra,
        after,
        ctx.next_page(page.next_token),
        record=record,
    )
    ctx.emit(view)
    return 0
