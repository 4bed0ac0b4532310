"""Comparing runs: side by side with only what differs, the asked-for metrics with the better
value marked by each metric's direction, and the deflated Sharpe ratio of a ranking of backtests.
query_experiments.py's `compare` command is at the end.
"""

from __future__ import annotations

import argparse
import math

from mlflow_skill.cli.frame import Context, run_ids
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_num, json_safe, md_table, truncate
from mlflow_skill.quant import catalog
from mlflow_skill.quant import sharpe as sharpe_stats
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs.skipped import Skipped, details
from mlflow_skill.runs.targets import RunRefResolver, model_version_of, run_id_of
from mlflow_skill.store import lookups

# --preset NAME -> the metrics --metrics would name: the metric registry's compare presets
COMPARE_PRESETS = catalog.COMPARE_PRESETS


def compare_metrics(args: argparse.Namespace) -> list[str] | None:
    """The metrics --metrics and --preset ask for (in order), or None for every metric."""
    names = [m.strip() for m in ",".join(args.metrics or []).split(",") if m.strip()]
    if args.preset:
        names = [*COMPARE_PRESETS[args.preset], *names]
    return list(dict.fromkeys(names)) or None


def pick_metric_rows(rows: list[dict], wanted: list[str]) -> list[dict]:
    """The asked-for metrics (in the order asked, present in at least one run), plus the run's
    identity rows and the params that differ; other metrics and tags are left out."""
    by_field = {row["field"]: row for row in rows}
    head = [row for row in rows if not row["field"].startswith(("params.", "metrics.", "tags."))]
    params = [row for row in rows if row["field"].startswith("params.") and not row["same"]]
    metrics = [by_field[f"metrics.{m}"] for m in wanted if f"metrics.{m}" in by_field]
    return head + params + metrics


def mark_better(rows: list[dict]) -> None:
    """Bold the better value of each metric row, by the metric's direction (known or guessed);
    NaN and values a run never logged are counted on the row (`skipped`)."""
    for row in rows:
        if not row["field"].startswith("metrics."):
            continue
        lacking = Skipped()
        for value in row["cells"]:
            lacking.usable(value)
        if lacking.total:
            row["skipped"] = lacking
        metric = row["field"].removeprefix("metrics.")
        higher, how = catalog.direction(metric)
        values = [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in row["raw"]]
        present = [v for v in values if v is not None]
        if len(set(present)) < 2 or catalog.known(metric) == catalog.NEITHER:
            continue
        best = max(present) if higher else min(present)
        row["better"] = [i for i, v in enumerate(values) if v == best]
        row["direction"] = ("higher" if higher else "lower") + (" (guessed)" if how.startswith("guessed") else "")
        row["shown"] = [f"**{s}**" if i in row["better"] else s for i, s in enumerate(row["shown"])]


def compare_view(runs: list[dict], rows: list[dict], show_all: bool, ids: list[str], absent: list[str]) -> View:
    """The rows that differ (every row with --all); identical ones named with their common value."""
    differing = [row for row in rows if not row["same"]]
    shown = rows if show_all else differing
    same = [row for row in rows if row["same"]]
    headers = ["field", *compare_headers(runs, ids)]
    after = []
    if same and not show_all:
        common = ", ".join(f"{row['field']} {row['shown'][0] or '(none)'}" for row in same)
        after = ["", f"identical in every run ({len(same)}, --all shows them as rows): " + truncate(common, 300)]
    after += value_notes(shown, absent)
    return View(
        data={
            "runs": [
                {"run_id": r["info"]["run_id"], "run_name": lookups.run_name(r), "model_version": model_version_of(i)}
                for r, i in zip(runs, ids, strict=False)
            ],
            "rows": [
                {
                    "field": row["field"],
                    "values": json_safe(row["raw"]),
                    "same": row["same"],
                    **({"better": row["better"], "direction": row["direction"]} if "better" in row else {}),
                    **({"skipped": row["skipped"].record()} if "skipped" in row else {}),
                }
                for row in shown
            ],
            "identical": len(same),
            "identical_fields": [row["field"] for row in same],
            "metrics_in_no_run": absent,
        },
        lines=[f"Comparing {len(runs)} runs: {len(differing)} fields differ, {len(same)} identical", ""],
        table=Table(
            headers, [[row["field"], *row["shown"]] for row in shown], [[row["field"], *row["raw"]] for row in shown]
        ),
        after=after,
        empty="no differences",
    )


def value_notes(shown: list[dict], absent: list[str]) -> list[str]:
    """What the bold marks mean, and the metric values they skipped (NaN, never logged)."""
    notes = []
    guessed = [row["field"] for row in shown if "guessed" in row.get("direction", "")]
    if any("better" in row for row in shown):
        notes.append(
            "**bold**: the better value, by each metric's direction (references/quantstats-metrics.md)"
            + (f"; guessed from the name for {', '.join(guessed)}" if guessed else "")
        )
    lacking = details({row["field"]: row["skipped"] for row in shown if "skipped" in row})
    if lacking:
        notes.append(f"not compared (NaN, or not logged by that run): {lacking}")
    if absent:
        notes.append(f"asked for, logged by no run: {', '.join(absent)}")
    return ["", *notes] if notes else []


def compare_headers(runs: list[dict], ids: list[str]) -> list[str]:
    """Run names; a run named by a model version URI also by the version (`train (churn@champion v3)`)."""
    names = [lookups.run_name(r) or "(no name)" for r in runs]
    dupes = {n for n in names if names.count(n) > 1}
    headers = []
    for name, run, run_id in zip(names, runs, ids, strict=False):
        version = model_version_of(run_id)
        if version:
            headers.append(f"{name} ({version})")
        else:
            headers.append(f"{name} ({run['info']['run_id'][:8]})" if name in dupes else name)
    return headers


def compare_rows(runs: list[dict], exp_names: dict[str, str], all_tags: bool) -> list[dict]:
    fields: list[tuple[str, rc.Column]] = [
        ("run id", rc.Column("attr", "run_id")),
        ("status", rc.Column("attr", "status")),
        ("experiment", rc.Column("experiment", "experiment")),
        ("start", rc.Column("attr", "start_time")),
        ("duration", rc.Column("duration", "duration")),
    ]
    for kind, getter in (("params", lookups.run_params), ("metrics", lookups.run_metrics), ("tags", lookups.run_tags)):
        keys = sorted({k for r in runs for k in getter(r)})
        if kind == "tags" and not all_tags:
            keys = [k for k in keys if not k.startswith("mlflow.")]
        fields += [(f"{kind}.{k}", rc.Column(kind, k)) for k in keys]
    rows = []
    for label, col in fields:
        raw = [rc.cell(r, col, exp_names) for r in runs]
        shown = [rc.show_cell(v, col) for v in raw]
        same_raw = [("NaN" if isinstance(v, float) and math.isnan(v) else v) for v in raw]
        same = label not in ("run id", "start", "duration") and all(v == same_raw[0] for v in same_raw)
        if label in ("start", "duration"):
            same = all(s == shown[0] for s in shown)
        rows.append(
            {"field": label, "raw": [rc.raw_cell(v, col) for v in raw], "shown": shown, "same": same, "cells": raw}
        )
    return rows


def backtest_trial(run: dict) -> sharpe_stats.Trial | None:
    """A run logged by log_backtest.py as a Sharpe trial (its Sharpe ratio, bars, moments), or None."""
    metrics, params = lookups.run_metrics(run), lookups.run_params(run)
    try:
        trial = sharpe_stats.Trial(
            run["info"]["run_id"],
            metrics["sharpe"],
            float(params["data.periods_per_year"]),
            int(params["data.periods"]),
            metrics["skew"],
            metrics["kurtosis"],
        )
    except (KeyError, ValueError):
        return None
    return trial if all(math.isfinite(v) for v in (trial.sr, trial.skew, trial.excess_kurtosis)) else None


def add_deflated_sharpe(view: View, shown: list[dict], every: list[dict], trials_flag: int | None) -> None:
    """PSR and DSR for the shown runs, with N counted over every run the query matched."""
    trials = [t for t in (backtest_trial(r) for r in every) if t is not None]
    if not trials:
        return
    ranking = sharpe_stats.rank(trials, trials_flag)
    counted = (
        f"N = {ranking.trials} given by --trials"
        if trials_flag
        else f"N = {ranking.trials}: the backtest runs this query matched (variants you tried but did not log "
        "are not counted: pass --trials N)"
    )
    rows = []
    for run in shown:
        rid = run["info"]["run_id"]
        if rid in ranking.psr:
            rows.append(
                [
                    truncate(lookups.run_name(run), 30),
                    rid[:8],
                    fmt_num(ranking.psr[rid], 3),
                    fmt_num(ranking.dsr[rid], 3),
                ]
            )
    winner = shown[0]["info"]["run_id"]
    view.after += [
        "",
        f"Deflated Sharpe (Bailey & López de Prado): {counted}; Sharpe variance across trials "
        f"{ranking.variance:.3g} per bar², expected best of N under no skill SR0 = {ranking.sr0:.3g} per bar.",
        md_table(["run", "id", "PSR (SR>0)", "DSR (SR>SR0)"], rows) if rows else "",
        f"winner: {sharpe_stats.verdict(ranking.dsr.get(winner, math.nan))}" if winner in ranking.dsr else "",
    ]
    view.data["deflated_sharpe"] = {
        "trials": ranking.trials,
        "trials_counted_as": counted,
        "sharpe_variance_per_bar": ranking.variance,
        "sr0_per_bar": ranking.sr0,
        "psr": json_safe(ranking.psr),
        "dsr": json_safe(ranking.dsr),
    }


# =============================================================================================
# The command
# =============================================================================================
COMPARE_DESCRIPTION = """Several runs side by side: only the fields that differ (params, metrics, tags, status,
times); the identical ones are named below the table with their common value; --all shows every
field as a row. --metrics a,b (or --preset backtest) narrows the metrics to those, plus the params
that differ; asked-for metrics no run logged are named. The better value of each metric is in
bold, by the metric's direction (known for everything log_backtest.py logs, guessed from the name
otherwise and said so); NaN and values a run never logged are counted apart. A run can be named by
a model version: models:/NAME@alias or models:/NAME/VERSION (the column header then names it).

Examples:
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B --preset backtest
  uv run scripts/query_experiments.py compare --run-id RUN_ID_A --run-id RUN_ID_B --metrics sharpe,cagr,max_drawdown
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B RUN_ID_C --all"""


def cmd_compare(ctx: Context, resolve_ref: RunRefResolver) -> int:
    refs = run_ids(ctx.args)
    ids = list(dict.fromkeys(run_id_of(ctx, ref, resolve_ref) for ref in refs))
    if len(ids) < 2:
        raise UsageError(
            "compare needs at least two different runs: RUN_ID RUN_ID (or --run-id, or models:/NAME@alias)"
        )
    runs = [lookups.get_run(ctx.store, rid) for rid in ids]
    exp_names = {}
    for run in runs:
        eid = run["info"]["experiment_id"]
        if eid not in exp_names:
            exp_names[eid] = lookups.get_experiment(ctx.store, eid, deleted_ok=True)["name"]
    rows = compare_rows(runs, exp_names, ctx.args.all_tags)
    wanted = compare_metrics(ctx.args)
    absent = []
    if wanted is not None:
        logged = {row["field"] for row in rows}
        absent = [m for m in wanted if f"metrics.{m}" not in logged]
        rows = pick_metric_rows(rows, wanted)
    mark_better(rows)
    ctx.emit(compare_view(runs, rows, ctx.args.all, ids, absent))
    return 0
