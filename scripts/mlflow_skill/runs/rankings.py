"""Rankings for query_experiments.py, over FINISHED runs unless --include-unfinished: `best` (top N
by a metric, with the deflated Sharpe ratio for backtests), `overfit` (train/test gaps above a
threshold) and `aggregate` (runs grouped by params/tags, metrics summarised per group).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import Counter
from dataclasses import dataclass

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_num, json_safe, safe_text, truncate
from mlflow_skill.quant import catalog
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import ledger
from mlflow_skill.runs import search as rs
from mlflow_skill.runs.skipped import Skipped, details, skipped_line
from mlflow_skill.runs.targets import PROG, query_for
from mlflow_skill.store import lookups

BEST_DESCRIPTION = """Top N runs by a metric. Direction: known for every metric log_backtest.py logs
(max_drawdown higher, volatility lower: references/quantstats-metrics.md), else guessed from the
name (loss, error, latency, ... are minimised) and the output says it was guessed; --max or
--min override. Unfinished runs are skipped (and counted) unless --include-unfinished.
With --metric sharpe on backtest runs, the probabilistic Sharpe ratio (PSR, SR > 0), the
deflated Sharpe ratio (DSR: SR above what the best of N skill-less trials would show) and the
minimum track record length at 95 % are added. N and the variance V of the trials' Sharpe
ratios come from the trial ledger: every backtest run of the experiment, failed and deleted ones
included, re-logged duplicates once (--ledger sweep or experiments:A,B changes the question;
--trials N overrides N). --filter and --top choose what is shown, never N or V. Runs from a
sweep show the probability of backtest overfitting (PBO) logged with it.

Examples:
  uv run scripts/query_experiments.py best --experiment btc-momentum --metric sharpe --top 5
  uv run scripts/query_experiments.py best --metric val_loss --min --filter "params.model = 'cnn'\""""

OVERFIT_DESCRIPTION = """Runs whose train/test gap exceeds a threshold. Direction aware: for a loss (lower is
better) gap = test - train; for accuracy-like metrics gap = train - test; a positive gap
is bad. --threshold is absolute by default; --relative divides the gap by |train|.

Examples:
  uv run scripts/query_experiments.py overfit --experiment mnist --train train_loss --test val_loss --threshold 0.1
  uv run scripts/query_experiments.py overfit --train train_acc --test test_acc --threshold 0.05 --relative"""

AGGREGATE_DESCRIPTION = """Group runs by params/tags (or status) and summarise metrics per group: runs, n (runs with
a value), mean, min, max. Values logged as NaN and runs without the metric are left out of the
statistics and counted apart (columns NaN and missing). Reads every matching run (all pages).

Examples:
  uv run scripts/query_experiments.py aggregate --experiment btc-momentum --group-by params.fast --metric sharpe
  uv run scripts/query_experiments.py aggregate --group-by params.model,tags.team --metric acc --metric loss"""


# =============================================================================================
# What a ranking reads: FINISHED runs with the metric, in the metric's direction
# =============================================================================================
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


def note_unranked(view: View, store, query: rs.Query, metric: str) -> View:
    """The matching runs a ranking by `metric` left out, NaN and never logged counted apart."""
    lacking = Skipped()
    unordered = dataclasses.replace(query, order=[])  # paging a sorted search re-sorts every run per page
    for run in rs.iter_runs(store, unordered, limit=100_000):
        lacking.usable(lookups.run_metrics(run).get(metric))
    view.data["unranked"] = lacking.record()
    if lacking.total:
        view.after.append(f"not ranked, no usable {metric}: {lacking.words()}")
    return view


def metric_direction(metric: str, args: argparse.Namespace) -> tuple[bool, str]:
    """(higher is better, why) from --max/--min or the metric's name."""
    if getattr(args, "max", False):
        return True, "--max"
    if getattr(args, "min", False):
        return False, "--min"
    return catalog.direction(metric)


def _nan(value: float | None) -> bool:
    return value is None or math.isnan(value)


# =============================================================================================
# The commands
# =============================================================================================
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
        ledger.add_deflated_sharpe(ctx.store, view, runs, rc.exp_name_map(query), args)
    note_skipped(view, count_unfinished(ctx) if finished_only(args) else 0)
    note_unranked(view, ctx.store, query, args.metric)
    ctx.emit(view)
    return 0


@dataclass(frozen=True)
class Flagged:
    """A run whose train/test gap is over the threshold; gap > 0 means test is worse than train."""

    run: dict
    train: float
    test: float
    gap: float
    relative: float  # gap / |train|


def cmd_overfit(ctx: Context) -> int:
    args = ctx.args
    higher, why = metric_direction(args.train, args)
    query = query_for(ctx)
    considered, flagged, skipped, without = 0, [], 0, 0
    lacking = {args.train: Skipped(), args.test: Skipped()}  # per metric: NaN or never logged
    only = finished_only(args)
    for run in rs.iter_runs(ctx.store, query):
        if only and not is_finished(run):
            skipped += 1
            continue
        metrics = lookups.run_metrics(run)
        train, test = metrics.get(args.train), metrics.get(args.test)
        usable = [lacking[key].usable(metrics.get(key)) for key in dict.fromkeys((args.train, args.test))]
        if not all(usable):
            without += 1
            continue
        considered += 1
        gap = (train - test) if higher else (test - train)
        relative = gap / abs(train) if train else (math.inf if gap > 0 else 0.0)
        if (relative if args.relative else gap) > args.threshold:
            flagged.append(Flagged(run, train, test, gap, relative))
    flagged.sort(key=lambda f: f.relative if args.relative else f.gap, reverse=True)
    rule = (
        f"gap = {'train − test' if higher else 'test − train'} ({'higher' if higher else 'lower'} is better, {why}); "
        f"flagged when {'gap/|train|' if args.relative else 'gap'} > {fmt_num(args.threshold)}"
    )
    view = overfit_view(args, query, rule, considered, (without, lacking), flagged)
    ctx.emit(note_skipped(view, skipped))
    return 0


def overfit_view(
    args, query: rs.Query, rule: str, considered: int, skips: tuple[int, dict[str, Skipped]], flagged: list[Flagged]
) -> View:
    names = rc.exp_name_map(query)
    top = flagged[: args.max_results]
    lines = [f"Overfitting {rc.scope_line(query)}: {len(flagged)} of {considered} runs flagged", rule, *query.notes()]
    without, lacking = skips
    if without:
        lines.append(f"{without} runs skipped, without two usable values: {details(lacking)}")
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
            "skipped_runs": without,
            "skipped_values": {metric: s.record() for metric, s in lacking.items()},
            "flagged_total": len(flagged),
            "runs": [
                {
                    **rc.run_record(f.run, names),
                    "train": f.train,
                    "test": f.test,
                    "gap": f.gap,
                    "relative_gap": json_safe(f.relative),
                }
                for f in top
            ],
            "client_side": query.notes(),
        },
        lines=lines,
        table=Table(
            ["run", "id", args.train, args.test, "gap", "gap/|train|"],
            [
                [
                    truncate(lookups.run_name(f.run), 40),
                    f.run["info"]["run_id"],
                    fmt_num(f.train),
                    fmt_num(f.test),
                    fmt_num(f.gap),
                    fmt_num(f.relative),
                ]
                for f in top
            ],
            [
                [lookups.run_name(f.run), f.run["info"]["run_id"], f.train, f.test, f.gap, json_safe(f.relative)]
                for f in top
            ],
        ),
        after=after,
        empty="no run exceeds the threshold",
    )


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
    skips: dict[tuple, dict[str, Skipped]] = {}
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
        lacking = skips.setdefault(key, {m: Skipped() for m in metrics})
        for m in metrics:
            if lacking[m].usable(values.get(m)):
                bucket[m].append(values[m])
    summary = [summarise(key, sizes[key], groups[key], skips[key], metrics) for key in groups]
    first = metrics[0]
    summary.sort(key=lambda s: (s["stats"][first]["mean"] is None, -(s["stats"][first]["mean"] or 0), str(s["group"])))
    view = aggregate_view(args, query, [col.label for col in group_cols], metrics, summary, sum(sizes.values()))
    ctx.emit(note_skipped(view, skipped))
    return 0


def aggregate_view(
    args, query: rs.Query, labels: list[str], metrics: list[str], summary: list[dict], total: int
) -> View:
    # NaN / missing columns in markdown only for metrics where some group skipped values (CSV: always)
    skipping = {m: [k for k in ("nan", "missing") if any(s["stats"][m][k] for s in summary)] for m in metrics}
    headers, raw_headers = [*labels, "runs"], [*labels, "runs"]
    for m in metrics:
        shown_counts = {"nan": f"{m} NaN", "missing": f"{m} missing"}
        headers += [f"{m} n", *(shown_counts[k] for k in skipping[m]), f"{m} mean", f"{m} min", f"{m} max"]
        raw_headers += [f"{m} {k}" for k in AGGREGATE_STATS]
    rows, raw = [], []
    for s in summary:
        row = [("(none)" if v is None else truncate(v, 30)) for v in s["group"]] + [s["runs"]]
        for m in metrics:
            stats = s["stats"][m]
            row += [stats["n"], *(stats[k] for k in skipping[m])]
            row += [fmt_num(stats["mean"]), fmt_num(stats["min"]), fmt_num(stats["max"])]
        rows.append(row)
        raw.append([*s["group"], s["runs"], *[s["stats"][m][k] for m in metrics for k in AGGREGATE_STATS]])
    shown = rows[: args.max_results]
    totals = {
        m: Skipped(sum(s["stats"][m]["nan"] for s in summary), sum(s["stats"][m]["missing"] for s in summary))
        for m in metrics
    }
    lines = [
        f"{len(summary)} groups of {total} runs {rc.scope_line(query)}, by {', '.join(labels)}; "
        f"sorted by mean {metrics[0]} (highest first)",
        *query.notes(),
        *([f"{line} (n counts the runs with a value)"] if (line := skipped_line("mean/min/max", totals)) else []),
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
        table=Table(headers, shown, raw, raw_headers),
        after=[f"\n{len(rows) - len(shown)} more groups: raise --max-results"] if len(rows) > len(shown) else [],
    )


AGGREGATE_STATS = ("n", "nan", "missing", "mean", "min", "max")


def summarise(
    key: tuple, runs: int, values: dict[str, list[float]], skips: dict[str, Skipped], metrics: list[str]
) -> dict:
    stats = {}
    for m in metrics:
        vals = values[m]
        stats[m] = {
            "n": len(vals),
            "nan": skips[m].nan,
            "missing": skips[m].missing,
            "mean": sum(vals) / len(vals) if vals else None,
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
        }
    return {"group": key, "runs": runs, "stats": stats}
