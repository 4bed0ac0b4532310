"""Listing for query_experiments.py: `experiments` (the experiments of a store, paged, optionally
with their run counts) and `runs` (a page of the runs a filter selects).
"""

from __future__ import annotations

import argparse
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_time, iso_time, truncate
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import search as rs
from mlflow_skill.runs.targets import query_for
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

EXPERIMENTS_DESCRIPTION = """List experiments: name, id, lifecycle, last update, description, tags; paged.
Run counts are off by default (MLflow has no count endpoint: each count is a run search);
--count-runs counts active runs up to --count-limit per listed experiment.

Examples:
  uv run scripts/query_experiments.py experiments
  uv run scripts/query_experiments.py experiments --name-like momentum --view all
  uv run scripts/query_experiments.py experiments --filter "tags.team = 'quant'" --count-runs
  uv run scripts/query_experiments.py experiments --max-results 10 --format json"""

RUNS_DESCRIPTION = """Search runs of one or more experiments (name or id; default: every active experiment).
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
  uv run scripts/query_experiments.py runs --view deleted --format csv"""


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
