# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = false  # a first call compiles only what it imports, or borrows it (_embedded)
# ///
# Dependencies: MLflow's client and tracking store without its ML stack (mlflow-skinny plus the
# database and server-handler packages full `mlflow` adds for the embedded sqlite store). Not
# compiled at install: compiling all of it took most of each script's first call, six times over;
# see _store.bytecode_cache and _embedded.borrow_bytecode for what happens instead.
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
import json
import math
import shlex
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow_skill.cli.frame import (
    Context,
    add_output_args,
    add_run_ids,
    add_subcommand,
    check_output_target,
    make_parser,
    one_run_id,
    run_ids,
    run_main,
)
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import NotFoundError, ServerError, UsageError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import (
    fmt_bytes,
    fmt_duration,
    fmt_num,
    fmt_time,
    fmt_value,
    iso_time,
    json_safe,
    md_table,
    safe_text,
    truncate,
)
from mlflow_skill.core.values import parse_duration_ms, to_float
from mlflow_skill.quant import catalog
from mlflow_skill.registry import read as registry
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import compare as cmp
from mlflow_skill.runs import export, health, liveness
from mlflow_skill.runs import search as rs
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

SCRIPT = "query_experiments.py"
PROG = f"uv run scripts/{SCRIPT}"
FORMATS = ("markdown", "json", "csv")


# =============================================================================================
# Commands
# =============================================================================================
def query_for(ctx: Context, order_by: list[str] | None = None, extra: list[str] | None = None) -> rs.Query:
    """The run query a search command's --experiment, --filter and --view describe."""
    args = ctx.args
    return rs.build_query(
        ctx.store, args.experiment, args.filter, order_by, extra, getattr(args, "view", None) or "active"
    )


def cmd_experiments(ctx: Context) -> int:
    args = ctx.args
    body = experiments_request(args)
    answer = lookups.check_page(
        ctx.store,
        f"{lookups.API}/experiments/search",
        ctx.store.post(f"{lookups.API}/experiments/search", body),
        "experiments",
    )
    experiments = answer.get("experiments", [])
    token = answer.get("next_page_token") or None
    counts = (
        {e["experiment_id"]: count_runs(ctx.store, e["experiment_id"], args.count_limit) for e in experiments}
        if args.count_runs
        else {}
    )
    ctx.emit(
        experiments_view(args, body, [experiment_record(e, counts) for e in experiments], token, ctx.next_page(token))
    )
    return 0


def experiments_request(args: argparse.Namespace) -> dict:
    clauses = [args.filter] if args.filter else []
    if args.max_results < 1 or (args.count_runs and args.count_limit < 1):
        raise UsageError("--max-results and --count-limit must be at least 1")
    if args.name_like and len(args.name_like) > 500:
        raise UsageError("--name-like is longer than any experiment name (at most 500 characters)")
    if args.name_like:
        if "'" in args.name_like:
            raise UsageError("--name-like cannot contain a single quote: use --filter \"name LIKE '...'\"")
        clauses.append(f"name ILIKE '%{args.name_like}%'")
    body: dict[str, Any] = {"view_type": rs.VIEWS[args.view], "max_results": args.max_results}
    if clauses:
        body["filter"] = " AND ".join(clauses)
    if args.order_by:
        body["order_by"] = args.order_by
    if args.page_token:
        body["page_token"] = args.page_token
    return body


def experiments_view(
    args: argparse.Namespace, body: dict, rows: list[dict], token: str | None, next_cmd: str | None
) -> View:
    counted = bool(args.count_runs)
    headers = ["name", "id", "lifecycle", "last update", *(["runs"] if counted else []), "description", "tags"]

    def cells(r: dict, raw: bool) -> list:
        tags = ", ".join(f"{k}={v}" for k, v in r["tags"].items())
        if raw:
            return [
                r["name"],
                r["id"],
                r["lifecycle"],
                r["last_update"],
                *([r["runs"]] if counted else []),
                r["description"] or "",
                tags,
            ]
        return [
            truncate(r["name"], 50),
            r["id"],
            r["lifecycle"],
            fmt_time(r["last_update_ms"]),
            *([r["runs"]] if counted else []),
            truncate(r["description"] or "", 40),
            truncate(tags, 60),
        ]

    title = f"{len(rows)} {args.view} experiment{'s' if len(rows) != 1 else ''}" + (
        f" matching `{body['filter']}`" if "filter" in body else ""
    )
    after = []
    if counted:
        after = [
            "",
            f"runs: active runs, counted up to {args.count_limit} ({args.count_limit}+ means at least that many)",
        ]
    elif rows:
        after = ["", "run counts: add --count-runs (one search per experiment)"]
    return View(
        data={"experiments": rows},
        lines=[title, *([""] if rows else [])],
        table=Table(headers, [cells(r, False) for r in rows], [cells(r, True) for r in rows]),
        after=after,
        next_command=next_cmd,
        next_token=token,
        more_label="more experiments exist",
    )


def count_runs(store: Store, experiment_id: str, cap: int) -> str:
    body = {"experiment_ids": [experiment_id], "run_view_type": "ACTIVE_ONLY"}
    n = sum(1 for _ in lookups.paged(store, rs.SEARCH_RUNS, body, "runs", limit=cap, page_size=min(cap, 1000)))
    return f"{n}+" if n >= cap else str(n)


def experiment_record(exp: dict, counts: dict[str, str]) -> dict:
    tags = lookups.kv(exp.get("tags"))
    return {
        "id": exp["experiment_id"],
        "name": exp["name"],
        "lifecycle": exp.get("lifecycle_stage"),
        "last_update_ms": exp.get("last_update_time"),
        "last_update": iso_time(exp.get("last_update_time")),
        "description": tags.get(lookups.DESCRIPTION_TAG),
        "tags": rc.user_tags(tags),
        "artifact_location": exp.get("artifact_location"),
        **({"runs": counts[exp["experiment_id"]]} if counts else {}),
    }


def cmd_runs(ctx: Context) -> int:
    args = ctx.args
    query = query_for(ctx, args.order_by)
    page = rs.fetch_page(ctx.store, query, args.max_results, args.page_token)
    ctx.emit(
        rc.runs_view(query, page, "Runs", rc.parse_columns(args.columns), next_command=ctx.next_page(page.next_token))
    )
    return 0


def cmd_run(ctx: Context) -> int:
    if ctx.fmt == "csv":
        raise UsageError("`run` describes one run: use --format markdown or json")
    run = lookups.get_run(ctx.store, resolve_run_ref(ctx, one_run_id(ctx.args)))
    info = run["info"]
    experiment = lookups.get_experiment(ctx.store, info["experiment_id"])
    parent_id = lookups.run_tags(run).get("mlflow.parentRunId")
    parent = _maybe_run(ctx.store, parent_id) if parent_id else None
    children = ctx.store.post(
        rs.SEARCH_RUNS,
        {
            "experiment_ids": [info["experiment_id"]],
            "filter": f"tags.mlflow.parentRunId = '{info['run_id']}'",
            "max_results": 25,
            "run_view_type": "ALL",
        },
    )
    artifacts = ctx.store.get(f"{lookups.API}/artifacts/list", {"run_id": info["run_id"]}).get("files", [])
    result = shape_run(run, experiment, parent, parent_id, children, artifacts, ctx.args.all_tags)
    ctx.emit(View(data=result, lines=[render_run(result)]))
    return 0


def resolve_run_ref(ctx: Context, ref: str) -> str:
    """A run id, or a model version URI (models:/NAME@alias, models:/NAME/3) -> its run id."""
    return registry.resolve_run_ref(ctx.store, ref) if ref.startswith("models:/") else ref


def _maybe_run(store: Store, run_id: str) -> dict | None:
    try:
        return store.get(f"{lookups.API}/runs/get", {"run_id": run_id}, expect="run")["run"]
    except NotFoundError:
        return None


def shape_run(run, experiment, parent, parent_id, children, artifacts, all_tags) -> dict:
    info = run["info"]
    tags = lookups.run_tags(run)
    shown_tags = tags if all_tags else rc.user_tags(tags)
    metrics = run.get("data", {}).get("metrics", []) or []
    datasets = []
    for entry in (run.get("inputs") or {}).get("dataset_inputs", []) or []:
        ds = entry.get("dataset", {})
        datasets.append(
            {
                "name": ds.get("name"),
                "digest": ds.get("digest"),
                "source_type": ds.get("source_type"),
                "context": lookups.kv(entry.get("tags")).get("mlflow.data.context"),
            }
        )
    start, end = info.get("start_time"), info.get("end_time")
    return {
        "run_id": info["run_id"],
        "run_name": lookups.run_name(run),
        "status": info.get("status"),
        "lifecycle_stage": info.get("lifecycle_stage"),
        "experiment": {"id": experiment["experiment_id"], "name": experiment["name"]},
        "user": info.get("user_id"),
        "start_time": iso_time(start),
        "end_time": iso_time(end),
        "duration_ms": int(end) - int(start) if start and end else None,
        "params": lookups.run_params(run),
        "metrics": {
            m["key"]: {"value": json_safe(to_float(m.get("value"))), "step": int(m.get("step", 0) or 0)}
            for m in metrics
        },
        "tags": shown_tags,
        "system_tags_hidden": 0 if all_tags else len(tags) - len(shown_tags),
        "datasets": datasets,
        "parent": {"run_id": parent_id, "run_name": lookups.run_name(parent) if parent else None}
        if parent_id
        else None,
        "children": [
            {"run_id": ch["info"]["run_id"], "run_name": lookups.run_name(ch)} for ch in children.get("runs", [])
        ],
        "more_children": bool(children.get("next_page_token")),
        "artifacts": [
            {"path": a["path"], "is_dir": bool(a.get("is_dir")), "size": a.get("file_size")} for a in artifacts
        ],
        "artifact_uri": info.get("artifact_uri"),
    }


def render_run(r: dict) -> str:
    """Dense on purpose: every param, metric and non-system tag, in a fraction of `mlflow runs describe`."""
    deleted = " (deleted)" if r["lifecycle_stage"] == "deleted" else ""
    took = f" · {fmt_duration(r['duration_ms'])}" if r["duration_ms"] is not None else ""
    user = f" · user {safe_text(r['user'])}" if r["user"] and r["user"] != "unknown" else ""
    lines = [
        f"**{safe_text(r['run_name'] or '(no name)')}** · {r['run_id']} · {r['status']}{deleted}{took}",
        f"experiment {safe_text(r['experiment']['name'])} ({r['experiment']['id']}) · "
        f"{(r['start_time'] or '?')[:19].replace('T', ' ')}{user}",
    ]
    if r["parent"]:
        lines.append(f"parent: {safe_text(r['parent']['run_name'] or '(not found)')} ({r['parent']['run_id']})")
    if r["children"]:
        more = " and more" if r["more_children"] else ""
        lines.append(
            f"children ({len(r['children'])}{more}): "
            + ", ".join(f"{safe_text(ch['run_name'])} ({ch['run_id']})" for ch in r["children"])
        )
    lines.append(inline("params", [f"{k}={fmt_value(v, 80)}" for k, v in sorted(r["params"].items())]))
    lines.append(metrics_line(r["metrics"]))
    hidden = f" (+{r['system_tags_hidden']} mlflow.*: --all-tags)" if r["system_tags_hidden"] else ""
    lines.append(inline("tags", [f"{k}={truncate(v, 80)}" for k, v in sorted(r["tags"].items())]) + hidden)
    if r["datasets"]:
        lines.append(
            inline(
                "datasets",
                [
                    f"{d['name']} ({', '.join(x for x in (d['context'], d['source_type'], d['digest'] and 'digest ' + d['digest']) if x)})"
                    for d in r["datasets"]
                ],
            )
        )
    arts = [f"{a['path']}/" if a["is_dir"] else f"{a['path']} ({fmt_bytes(a['size'])})" for a in r["artifacts"]]
    lines.append(inline("artifacts", arts[:30] + ([f"… {len(arts) - 30} more"] if len(arts) > 30 else [])))
    return "\n".join(lines)


def metrics_line(metrics: dict[str, dict]) -> str:
    """Latest values; the step is named once when every metric shares it, else per metric."""
    steps = {m["step"] for m in metrics.values()}
    one_step = len(steps) == 1
    label = f"metrics (step {next(iter(steps))})" if one_step and steps != {0} else "metrics"
    return inline(
        label,
        [
            f"{k}={fmt_num(m['value']) if m['value'] is not None else 'NaN'}"
            + ("" if one_step or not m["step"] else f"@{m['step']}")
            for k, m in sorted(metrics.items())
        ],
    )


def inline(label: str, items: list[str]) -> str:
    return f"{label}: " + safe_text("; ".join(items) if items else "none")


def cmd_compare(ctx: Context) -> int:
    refs = run_ids(ctx.args)
    ids = list(dict.fromkeys(resolve_run_ref(ctx, ref) for ref in refs))
    if len(ids) < 2:
        raise UsageError(
            "compare needs at least two different runs: RUN_ID RUN_ID (or --run-id, or models:/NAME@alias)"
        )
    runs = [lookups.get_run(ctx.store, rid) for rid in ids]
    exp_names = {}
    for run in runs:
        eid = run["info"]["experiment_id"]
        if eid not in exp_names:
            exp_names[eid] = lookups.get_experiment(ctx.store, eid)["name"]
    rows = cmp.compare_rows(runs, exp_names, ctx.args.all_tags)
    wanted = cmp.compare_metrics(ctx.args)
    if wanted is not None:
        rows = cmp.pick_metric_rows(rows, wanted)
    cmp.mark_better(rows)
    ctx.emit(cmp.compare_view(runs, rows, ctx.args.all or wanted is not None))
    return 0


def metric_direction(metric: str, args: argparse.Namespace) -> tuple[bool, str]:
    """(higher is better, why) from --max/--min or the metric's name."""
    if getattr(args, "max", False):
        return True, "--max"
    if getattr(args, "min", False):
        return False, "--min"
    return catalog.direction(metric)


def cmd_best(ctx: Context) -> int:
    args = ctx.args
    if args.top < 1:
        raise UsageError("--top must be at least 1")
    if args.trials is not None and args.trials < 1:
        raise UsageError("--trials must be at least 1")
    higher, why = metric_direction(args.metric, args)
    order = f"metrics.{rs.quote_key(args.metric)} {'DESC' if higher else 'ASC'}"
    query = query_for(ctx, [order], extra=[FINISHED] if finished_only(args) else None)
    query.refs = [("metrics", args.metric), *query.refs]
    runs = [
        r for r in rs.fetch_all(ctx.store, query, limit=args.top) if not _nan(lookups.run_metrics(r).get(args.metric))
    ]
    if not runs:
        after = [f"\nno run has the metric {args.metric!r}: list the metric names with `{PROG} runs`"]
    else:
        best = runs[0]
        after = [
            f"\nbest: **{safe_text(lookups.run_name(best))}** ({best['info']['run_id']}) {args.metric} = "
            f"{fmt_num(lookups.run_metrics(best)[args.metric])}"
        ]
    label = f"Top {args.top} by {args.metric} ({'max' if higher else 'min'}, {why})"
    view = rc.runs_view(query, rs.Page(runs, None), label, rc.parse_columns(args.columns), after)
    if runs and args.metric == "sharpe" and higher:
        cmp.add_deflated_sharpe(view, runs, list(rs.iter_runs(ctx.store, query)), args.trials)
    note_skipped(view, count_unfinished(ctx) if finished_only(args) else 0)
    ctx.emit(view)
    return 0


def _nan(value: float | None) -> bool:
    return value is None or math.isnan(value)


def cmd_overfit(ctx: Context) -> int:
    args = ctx.args
    higher, why = metric_direction(args.train, args)
    query = query_for(ctx)
    considered, missing, flagged, skipped = 0, 0, [], 0
    only = finished_only(args)
    for run in rs.iter_runs(ctx.store, query):
        if only and not is_finished(run):
            skipped += 1
            continue
        metrics = lookups.run_metrics(run)
        train, test = metrics.get(args.train), metrics.get(args.test)
        if _nan(train) or _nan(test):
            missing += 1
            continue
        considered += 1
        gap = (train - test) if higher else (test - train)
        relative = gap / abs(train) if train else (math.inf if gap > 0 else 0.0)
        if (relative if args.relative else gap) > args.threshold:
            flagged.append((gap, relative, run, train, test))
    flagged.sort(key=lambda f: f[1] if args.relative else f[0], reverse=True)
    rule = (
        f"gap = {'train − test' if higher else 'test − train'} ({'higher' if higher else 'lower'} is better, {why}); "
        f"flagged when {'gap/|train|' if args.relative else 'gap'} > {fmt_num(args.threshold)}"
    )
    view = overfit_view(args, query, rule, considered, missing, flagged)
    ctx.emit(note_skipped(view, skipped))
    return 0


def overfit_view(args, query: rs.Query, rule: str, considered: int, missing: int, flagged: list) -> View:
    names = rc.exp_name_map(query)
    top = flagged[: args.max_results]
    lines = [f"Overfitting {rc.scope_line(query)}: {len(flagged)} of {considered} runs flagged", rule, *query.notes()]
    if missing:
        lines.append(f"{missing} runs lack {args.train} or {args.test} and were skipped")
    lines.append("")
    after = (
        [f"\n{len(flagged) - args.max_results} more flagged runs: raise --max-results"]
        if len(flagged) > args.max_results
        else []
    )
    return View(
        data={
            "rule": rule,
            "considered": considered,
            "missing_metric": missing,
            "flagged_total": len(flagged),
            "runs": [
                {**rc.run_record(run, names), "train": train, "test": test, "gap": gap, "relative_gap": json_safe(rel)}
                for gap, rel, run, train, test in top
            ],
            "client_side": query.notes(),
        },
        lines=lines,
        table=Table(
            ["run", "id", args.train, args.test, "gap", "gap/|train|"],
            [
                [
                    truncate(lookups.run_name(run), 40),
                    run["info"]["run_id"],
                    fmt_num(train),
                    fmt_num(test),
                    fmt_num(gap),
                    fmt_num(rel),
                ]
                for gap, rel, run, train, test in top
            ],
            [
                [lookups.run_name(run), run["info"]["run_id"], train, test, gap, json_safe(rel)]
                for gap, rel, run, train, test in top
            ],
        ),
        after=after,
        empty="no run exceeds the threshold",
    )


FINISHED = "attributes.status = 'FINISHED'"


def finished_only(args: argparse.Namespace) -> bool:
    """best/overfit/aggregate rank FINISHED runs only, unless --include-unfinished or the filter
    itself says which statuses it wants."""
    return not getattr(args, "include_unfinished", False) and "status" not in (args.filter or "").lower()


def is_finished(run: dict) -> bool:
    return run.get("info", {}).get("status") == "FINISHED"


def count_unfinished(ctx: Context) -> int:
    query = query_for(ctx, extra=["attributes.status != 'FINISHED'"])
    return sum(1 for _ in rs.iter_runs(ctx.store, query, limit=100_000))


def note_skipped(view: View, skipped: int) -> View:
    view.data["skipped_unfinished"] = skipped
    if skipped:
        view.after.append(
            f"\nskipped {skipped} unfinished runs (RUNNING, FAILED or KILLED): --include-unfinished keeps them; "
            f"`{PROG} failed` lists the failed and stale ones"
        )
    return view


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
        f"\n{with_errors} of {len(page.runs)} shown have error tags (tag keys containing error/exception/traceback/failure)"
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


def cmd_aggregate(ctx: Context) -> int:
    args = ctx.args
    group_cols = rc.parse_columns(",".join(args.group_by))
    if not all(col.kind in ("params", "tags", "attr") for col in group_cols):
        raise UsageError("--group-by takes params.KEY, tags.KEY or an attribute such as status")
    metrics = [m.strip() for m in ",".join(args.metric).split(",") if m.strip()]
    if not metrics:
        raise UsageError("--metric is empty: pass metric names like --metric sharpe")
    query = query_for(ctx)
    groups: dict[tuple, dict[str, list[float]]] = {}
    sizes: Counter = Counter()
    names = rc.exp_name_map(query)
    only, skipped = finished_only(args), 0
    for run in rs.iter_runs(ctx.store, query):
        if only and not is_finished(run):
            skipped += 1
            continue
        key = tuple(rc.cell(run, col, names) for col in group_cols)
        sizes[key] += 1
        values = lookups.run_metrics(run)
        bucket = groups.setdefault(key, {m: [] for m in metrics})
        for m in metrics:
            if not _nan(values.get(m)):
                bucket[m].append(values[m])
    summary = [summarise(key, sizes[key], groups[key], metrics) for key in groups]
    first = metrics[0]
    summary.sort(key=lambda s: (s["stats"][first]["mean"] is None, -(s["stats"][first]["mean"] or 0), str(s["group"])))
    view = aggregate_view(args, query, [col.label for col in group_cols], metrics, summary, sum(sizes.values()))
    ctx.emit(note_skipped(view, skipped))
    return 0


def aggregate_view(
    args, query: rs.Query, labels: list[str], metrics: list[str], summary: list[dict], total: int
) -> View:
    headers = [*labels, "runs"]
    for m in metrics:
        headers += [f"{m} n", f"{m} mean", f"{m} min", f"{m} max"]
    rows, raw = [], []
    for s in summary:
        row = [("(none)" if v is None else truncate(v, 30)) for v in s["group"]] + [s["runs"]]
        for m in metrics:
            stats = s["stats"][m]
            row += [stats["n"], fmt_num(stats["mean"]), fmt_num(stats["min"]), fmt_num(stats["max"])]
        rows.append(row)
        raw.append([*s["group"], s["runs"], *[s["stats"][m][k] for m in metrics for k in ("n", "mean", "min", "max")]])
    shown = rows[: args.max_results]
    lines = [
        f"{len(summary)} groups of {total} runs {rc.scope_line(query)}, by {', '.join(labels)}; "
        f"sorted by mean {metrics[0]} (highest first)",
        *query.notes(),
        "",
    ]
    return View(
        data={
            "group_by": labels,
            "metrics": metrics,
            "runs": total,
            "groups": [
                {"group": dict(zip(labels, s["group"], strict=False)), "runs": s["runs"], "stats": s["stats"]}
                for s in summary
            ],
            "client_side": query.notes(),
        },
        lines=lines,
        table=Table(headers, shown, raw),
        after=[f"\n{len(rows) - len(shown)} more groups: raise --max-results"] if len(rows) > len(shown) else [],
    )


def summarise(key: tuple, runs: int, values: dict[str, list[float]], metrics: list[str]) -> dict:
    stats = {}
    for m in metrics:
        vals = values[m]
        stats[m] = {
            "n": len(vals),
            "mean": sum(vals) / len(vals) if vals else None,
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
        }
    return {"group": key, "runs": runs, "stats": stats}


def cmd_export(ctx: Context) -> int:
    args = ctx.args
    target = Path(args.output)
    kind = export.export_kind(target, ctx.fmt)
    check_output_target(args)  # fail before fetching thousands of runs
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1 (leave it out for every run)")
    if not 1 <= args.page_size <= 50_000:
        raise UsageError("--page-size must be between 1 and 50000 (the server's maximum)")
    query = query_for(ctx, args.order_by)
    rows, index = export.collect_rows(
        rs.iter_runs(ctx.store, query, args.limit, args.page_size), rc.exp_name_map(query), args.all_tags
    )
    data = export.render_csv(rows, index) if kind == "csv" else export.render_json_rows(rows, index)
    count = len(rows)
    del rows
    write_atomic(target, data, force=args.force)
    summary = {
        "path": str(target),
        "format": kind,
        "runs": count,
        "columns": len(index),
        "bytes": target.stat().st_size,
        "client_side": query.notes(),
    }
    line = (
        f"Exported {count} runs {rc.scope_line(query)} to {target} ({kind.upper()}, {len(index)} columns, "
        f"{fmt_bytes(summary['bytes'])})"
    )
    headers = ["path", "format", "runs", "columns", "bytes"]
    table = Table(headers, [], [[summary[h] for h in headers]])  # CSV: the summary as one row
    ctx.emit(View(data=summary, lines=[line, *query.notes()], table=table))
    return 0


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def cmd_returns(ctx: Context) -> int:
    """A backtest run's monthly/yearly returns and worst drawdowns, from its backtest/periods.json."""
    run_id = resolve_run_ref(ctx, one_run_id(ctx.args))
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
        f"{document.get('bars', '?')} bars {str(document.get('first', ''))[:10]} to {str(document.get('last', ''))[:10]}; "
        "a blank cell had no bar"
    )
    return View(
        data={"run_id": run["info"]["run_id"], **document},
        lines=[title, ""],
        table=Table(["year", *MONTHS, "year total"], rows, raw),
        after=after,
        empty="no returns",
    )


def cmd_artifacts(ctx: Context) -> int:
    args = ctx.args
    run_id = resolve_run_ref(ctx, one_run_id(args))
    params = {"run_id": run_id}
    if args.path:
        params["path"] = args.path.strip("/")
    try:
        answer = ctx.store.get(f"{lookups.API}/artifacts/list", params)
    except NotFoundError:
        lookups.get_run(ctx.store, run_id)  # an unknown run gets the standard message
        raise NotFoundError(
            f"no artifact path {args.path!r} in run {run_id}: list the top level without --path"
        ) from None
    files = answer.get("files", []) or []
    entries = [
        {
            "path": f["path"],
            "is_dir": bool(f.get("is_dir")),
            "size": None if f.get("is_dir") else int(f.get("file_size", 0) or 0),
        }
        for f in files
    ]
    entries.sort(key=lambda e: (not e["is_dir"], e["path"]))
    ctx.emit(artifacts_view(args, run_id, answer.get("root_uri"), entries))
    return 0


def artifacts_view(args, run_id: str, root_uri: str | None, entries: list[dict]) -> View:
    shown = entries[: args.max_results]
    where = f"under {args.path}/ " if args.path else ""
    after = []
    dirs = [e["path"] for e in shown if e["is_dir"]]
    if dirs:
        after.append(f"\nlook inside a folder: `{PROG} artifacts {run_id} --path {shlex.quote(dirs[0])}`")
    if len(entries) > len(shown):
        after.append(f"\n{len(entries) - len(shown)} more: raise --max-results")
    rows = [
        [
            e["path"] + ("/" if e["is_dir"] else ""),
            fmt_bytes(e["size"]) if not e["is_dir"] else "",
            "yes" if e["is_dir"] else "",
        ]
        for e in shown
    ]
    return View(
        data={"run_id": run_id, "path": args.path or "", "root_uri": root_uri, "artifacts": entries},
        lines=[f"{len(entries)} artifacts {where}of run {run_id} (root {root_uri or '?'})", ""],
        table=Table(["path", "size", "is_dir"], rows, [[e["path"], e["size"], e["is_dir"]] for e in entries]),
        after=after,
        empty="no artifacts here",
    )


# =============================================================================================
# Command line
# =============================================================================================
EXAMPLES = {
    "experiments": """List experiments: name, id, lifecycle, last update, description, tags; paged.
Run counts are off by default (MLflow has no count endpoint: each count is a run search);
--count-runs counts active runs up to --count-limit per listed experiment.

Examples:
  uv run scripts/query_experiments.py experiments
  uv run scripts/query_experiments.py experiments --name-like momentum --view all
  uv run scripts/query_experiments.py experiments --filter "tags.team = 'quant'" --count-runs
  uv run scripts/query_experiments.py experiments --max-results 10 --format json""",
    "runs": """Search runs of one or more experiments (name or id; default: every active experiment).
The table shows run name, id, status, start, and every metric/param/tag named in --filter
and --order-by; --columns adds others. OR and numeric param comparisons run client-side
(see the main --help); their paging fetches all matches and pages by offset.

Examples:
  uv run scripts/query_experiments.py runs --experiment btc-momentum
  uv run scripts/query_experiments.py runs --experiment btc-momentum --experiment 3 \\
      --filter "metrics.sharpe > 1 AND params.fast = '10'" --order-by "metrics.sharpe DESC"
  uv run scripts/query_experiments.py runs --filter "params.lr > 0.001 AND metrics.acc >= 0.9"
  uv run scripts/query_experiments.py runs --filter "tags.team = 'a' OR tags.team = 'b'"
  uv run scripts/query_experiments.py runs --filter "params.\\"learning rate\\" = '0.1'" \\
      --columns "metrics.acc,params.batch-size,tags.team,duration"
  uv run scripts/query_experiments.py runs --view deleted --format csv""",
    "run": """Describe one run compactly: info, every param, latest metric values (with their step when
it is not 0), non-system tags
(--all-tags adds mlflow.*), datasets, parent and child runs, top-level artifacts.

Examples:
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --all-tags --format json""",
    "compare": """Several runs side by side: by default only the fields that differ (params, metrics,
tags, status, times) plus a count of identical ones; --all shows everything. --metrics a,b
(or --preset backtest) shows just those metrics, every one of them, plus the params that differ.
The better value of each metric is in bold, by the metric's direction (known for everything
log_backtest.py logs, guessed from the name otherwise and said so). A run can be named by a
model version: models:/NAME@alias or models:/NAME/VERSION.

Examples:
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B --preset backtest
  uv run scripts/query_experiments.py compare --run-id RUN_ID_A --run-id RUN_ID_B --metrics sharpe,cagr,max_drawdown
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B RUN_ID_C --all""",
    "best": """Top N runs by a metric. Direction: known for every metric log_backtest.py logs
(max_drawdown higher, volatility lower: references/quantstats-metrics.md), else guessed from the
name (loss, error, latency, ... are minimised) and the output says it was guessed; --max or
--min override. Unfinished runs are skipped (and counted) unless --include-unfinished.
With --metric sharpe on backtest runs, the probabilistic Sharpe ratio (PSR, SR > 0) and the
deflated Sharpe ratio (DSR: SR above what the best of N skill-less trials would show) are added,
N counted as the backtest runs the query matched, or --trials N.

Examples:
  uv run scripts/query_experiments.py best --experiment btc-momentum --metric sharpe --top 5
  uv run scripts/query_experiments.py best --metric val_loss --min --filter "params.model = 'cnn'\"""",
    "overfit": """Runs whose train/test gap exceeds a threshold. Direction aware: for a loss (lower is
better) gap = test - train; for accuracy-like metrics gap = train - test; a positive gap
is bad. --threshold is absolute by default; --relative divides the gap by |train|.

Examples:
  uv run scripts/query_experiments.py overfit --experiment mnist --train train_loss --test val_loss --threshold 0.1
  uv run scripts/query_experiments.py overfit --train train_acc --test test_acc --threshold 0.05 --relative""",
    "failed": """FAILED or KILLED runs, newest first, with their error tags (tag keys containing error,
exception, traceback or failure, e.g. backtest.error); first, RUNNING runs with no write (start or
newest metric time) for longer than --stale (default 1h), marked `RUNNING (stale ...)`: their
process died or hangs. A log_backtest.py run is completed by re-running the same command.

Examples:
  uv run scripts/query_experiments.py failed
  uv run scripts/query_experiments.py failed --experiment btc-momentum --format json
  uv run scripts/query_experiments.py failed --stale 30m""",
    "aggregate": """Group runs by params/tags (or status) and summarise metrics per group: runs, n (runs with
the metric), mean, min, max. Reads every matching run (all pages).

Examples:
  uv run scripts/query_experiments.py aggregate --experiment btc-momentum --group-by params.fast --metric sharpe
  uv run scripts/query_experiments.py aggregate --group-by params.model,tags.team --metric acc --metric loss""",
    "export": """Every matching run (all pages; --page-size runs per request, default 2000, max 50000) to a
CSV or JSON file, written atomically. The file format comes from the extension (.csv/.json),
else from --format csv|json. Columns: run_id, run_name, experiment_id, experiment, status,
start_time, end_time, metrics.*, params.*, tags.* (non-system; --all-tags for mlflow.*).
An existing file is never replaced without --force. Rows come in server order (per OR group).

Examples:
  uv run scripts/query_experiments.py export --experiment btc-momentum --output runs.csv
  uv run scripts/query_experiments.py export --filter "metrics.sharpe > 1" --output best.json --force""",
    "returns": """A backtest run's returns per calendar month and year (compounded), as a year x month
grid, and its worst drawdowns (start, valley, end, depth, days). Read from the run's
backtest/periods.json, which log_backtest.py logs; --format csv gives the grid as numbers.

Examples:
  uv run scripts/query_experiments.py returns 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py returns --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --drawdowns 10 --format json""",
    "artifacts": """A run's artifacts: path, size, is_dir; --path lists inside a folder.

Examples:
  uv run scripts/query_experiments.py artifacts 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py artifacts 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --path model""",
    "models": """Registered models (read-only): latest version, aliases (champion→v3), legacy stages where a
server still has them, tags, description, last update; paged. --filter takes MLflow's registry
grammar (name LIKE 'fraud%', tags.team = 'risk'); prompts (MLflow 3) are left out unless the
filter names tags.`mlflow.prompt.is_prompt`. --order-by: name, creation_timestamp or
last_updated_timestamp, with ASC/DESC.

Examples:
  uv run scripts/query_experiments.py models
  uv run scripts/query_experiments.py models --filter "name LIKE 'fraud%'" --order-by "last_updated_timestamp DESC"
  uv run scripts/query_experiments.py models --filter "tags.team = 'risk'" --format json""",
    "model": """One registered model: its versions newest first (version, aliases, stage, status, source run
and its run name, key metrics of that run, created, description), bounded by --max-results and
paged; --alias NAME or --version N shows one version in full: its run's params and metrics, the
source and artifact URIs, and the `run` command for its run. Unknown model, alias or version:
exit 3 with the close names. Anywhere a run id is taken (run, compare, returns, artifacts), models:/NAME@ALIAS or
models:/NAME/VERSION names that version's source run.

Examples:
  uv run scripts/query_experiments.py model fraud-detector
  uv run scripts/query_experiments.py model fraud-detector --alias champion
  uv run scripts/query_experiments.py model fraud-detector --version 3 --format json
  uv run scripts/query_experiments.py compare models:/fraud-detector@champion models:/fraud-detector@challenger""",
    "health": """What deserves a look in an experiment, each finding with its reason and the command to dig in:
  stale       RUNNING runs with no write (start, metric timestamps) for longer than --stale (default 1h)
  failed      FAILED and KILLED runs (counted; the newest listed with their error tags)
  non_finite  metrics whose last value is NaN or infinite
  diverging   loss-like metrics whose last value is far above the run's minimum: last - min >
              --diverge x max(first - min, |min|), from a history sampled on the server (at most
              200 points per run, 100 runs per request; --history-runs bounds the runs read)
  outlier     key metrics far from the siblings' median: robust z = 0.6745 (x - median) / MAD
              beyond --z (default 3.5), among at least 5 runs of the same experiment
  duplicate   runs with identical params and different results, with the spread
Without --experiment every active experiment is checked, each run against its own experiment's runs.
Key metrics: --metric, else those at least half the runs have. Shows the worst --top per kind
and counts the rest; --format json lists every finding.

Examples:
  uv run scripts/query_experiments.py health --experiment mnist
  uv run scripts/query_experiments.py health --experiment mnist --stale 30m --metric val_loss --top 10
  uv run scripts/query_experiments.py health --experiment mnist --filter "params.model = 'cnn'" --format json""",
}


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
        p.add_argument("--view", choices=rs.VIEWS, default="active", help="active (default), deleted or all runs")


def _add_paging(p: argparse.ArgumentParser, default: int = 25) -> None:
    p.add_argument("--max-results", "-n", type=int, default=default, help=f"rows per page (default {default})")
    p.add_argument("--page-token", help="continue from a previous page (the output prints the exact command)")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__, prog=PROG, formats=FORMATS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Callable[[Context], int], help_text: str) -> argparse.ArgumentParser:
        return add_subcommand(sub, name, handler, help_text, EXAMPLES[name], FORMATS)

    for add_group in (_parse_listings, _parse_analyses, _parse_files, _parse_registry_and_health):
        add_group(add)
    return parser


def _parse_listings(add) -> None:
    p = add("experiments", cmd_experiments, "list experiments")
    p.add_argument("--view", choices=rs.VIEWS, default="active", help="active (default), deleted or all")
    p.add_argument("--name-like", metavar="TEXT", help="names containing TEXT (case-insensitive)")
    p.add_argument("--filter", "-f", help="MLflow experiment filter, e.g. \"tags.team = 'quant'\"")
    p.add_argument("--order-by", action="append", help='e.g. "last_update_time DESC"; repeatable')
    p.add_argument("--count-runs", action="store_true", help="count active runs (one search per experiment)")
    p.add_argument("--count-limit", type=int, default=1000, help="stop counting at this many (default 1000)")
    _add_paging(p)

    p = add("runs", cmd_runs, "search runs")
    _add_search_args(p)
    p.add_argument(
        "--columns", "-c", help="extra columns, comma separated: metrics.K,params.K,tags.K,start_time,duration,..."
    )
    _add_paging(p)

    p = add("run", cmd_run, "describe one run")
    add_run_ids(p, help_text="run id, or a model version: models:/NAME@alias, models:/NAME/VERSION")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")

    p = add("compare", cmd_compare, "compare runs side by side")
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
        choices=sorted(cmp.COMPARE_PRESETS),
        help="a named metric set: backtest = " + ",".join(cmp.COMPARE_PRESETS["backtest"]),
    )
    p.add_argument("--all", action="store_true", help="show identical fields too")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")


UNFINISHED_HELP = (
    "include RUNNING, FAILED and KILLED runs (default: FINISHED only; the output says how many were skipped)"
)


def _parse_analyses(add) -> None:
    p = add("best", cmd_best, "top N runs by a metric")
    _add_search_args(p, order=False)
    p.add_argument("--metric", "-m", required=True, help="metric key")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--max", action="store_true", help="higher is better")
    direction.add_argument("--min", action="store_true", help="lower is better")
    p.add_argument("--top", type=int, default=5, help="how many (default 5)")
    p.add_argument(
        "--trials", type=int, help="--metric sharpe: how many variants were tried in all (default: the runs matched)"
    )
    p.add_argument("--columns", "-c", help="extra columns, comma separated")
    p.add_argument("--include-unfinished", action="store_true", help=UNFINISHED_HELP)

    p = add("overfit", cmd_overfit, "train/test gap above a threshold")
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

    p = add("failed", cmd_failed, "failed or killed runs with error tags, and stale RUNNING runs")
    _add_search_args(p)
    p.add_argument("--columns", "-c", help="extra columns, comma separated")
    p.add_argument(
        "--stale",
        default="1h",
        metavar="DURATION",
        help="also list RUNNING runs with no write for this long (default 1h; e.g. 30m, 2d)",
    )
    _add_paging(p)

    p = add("aggregate", cmd_aggregate, "group runs and summarise metrics")
    _add_search_args(p, order=False)
    p.add_argument("--group-by", "-g", action="append", required=True, help="params.K,tags.K,...; repeatable")
    p.add_argument(
        "--metric", "-m", action="append", required=True, help="metric key(s); repeatable or comma separated"
    )
    p.add_argument("--max-results", "-n", type=int, default=25, help="groups shown (default 25)")
    p.add_argument("--include-unfinished", action="store_true", help=UNFINISHED_HELP)


def _parse_files(add) -> None:
    p = add("export", cmd_export, "all matching runs to CSV or JSON")
    _add_search_args(p)
    add_output_args(p, required=True, what="every matching run (.csv or .json)")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")
    p.add_argument(
        "--page-size", type=int, default=rs.SCAN_PAGE, help=f"runs per request (default {rs.SCAN_PAGE}, max 50000)"
    )
    p.add_argument("--limit", type=int, help="stop after this many runs (default: all)")

    p = add("returns", cmd_returns, "a backtest's monthly and yearly returns, worst drawdowns")
    add_run_ids(p, help_text="a run logged by log_backtest.py (or models:/NAME@alias)")
    p.add_argument("--drawdowns", type=int, default=5, help="worst drawdowns shown (default 5)")

    p = add("artifacts", cmd_artifacts, "list a run's artifacts")
    add_run_ids(p)
    p.add_argument("--path", "-p", help="folder inside the run's artifacts")
    p.add_argument("--max-results", "-n", type=int, default=100, help="entries shown (default 100)")


def _parse_registry_and_health(add) -> None:
    p = add("models", registry.cmd_models, "registered models (read-only)")
    p.add_argument(
        "--filter", "-f", help="MLflow registry filter, e.g. \"name LIKE 'fraud%%'\" or \"tags.team = 'risk'\""
    )
    p.add_argument(
        "--order-by", action="append", metavar="KEY [ASC|DESC]", help='e.g. "last_updated_timestamp DESC"; repeatable'
    )
    _add_paging(p)

    p = add("model", registry.cmd_model, "one registered model's versions, or one version")
    p.add_argument("name", metavar="NAME", help="registered model name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", "-a", help="one version by alias, e.g. champion")
    which.add_argument("--version", "-v", help="one version by number")
    p.add_argument("--metric", "-m", action="append", help="metrics to show per version (default: the most common 3)")
    _add_paging(p, default=20)

    p = add("health", health.cmd_health, "stale, failed, NaN, diverging, outlying or duplicated runs")
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


def command(ctx: Context) -> int:
    return ctx.args.handler(ctx)


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
