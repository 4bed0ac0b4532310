"""search_traces.py --every: trace metrics per time bucket (traces, errors, error rate, p50/p95
latency, tokens), from the server's metrics endpoint when the flags fit it, else aggregated here
over a bounded search; shown as one series with sparklines, or one row per --group-by group."""

from __future__ import annotations

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_duration, fmt_num, fmt_time, iso_time, json_safe, md_table, truncate
from mlflow_skill.core.values import parse_duration_ms, parse_since
from mlflow_skill.traces import api as tr
from mlflow_skill.traces import metrics as tm
from mlflow_skill.traces.filters import SearchScope
from mlflow_skill.traces.groups import group_value

SERIES = (  # key, label, how a value reads
    ("traces", "traces", fmt_num),
    ("errors", "errors", fmt_num),
    ("error_rate", "error rate", lambda v: "" if v is None else f"{v * 100:.1f}%"),
    ("p50_ms", "p50 latency", fmt_duration),
    ("p95_ms", "p95 latency", fmt_duration),
    ("tokens", "tokens", fmt_num),
)
TOTALLED = ("traces", "errors", "error_rate", "tokens")  # series whose total column is filled
GROUP_SPARK_WIDTH = 24
LATEST_BUCKETS = 6


def metrics_window(args) -> tuple[int, int, int]:
    """(every, since, until) in ms; until is inclusive, as the metrics endpoint takes it."""
    every = parse_duration_ms(args.every, "--every")
    since = parse_since(args.since or "7d")
    until = parse_since(args.until) - 1 if args.until else parse_since("0s")
    if until < since:
        raise UsageError("--until is before --since: nothing to count")
    return every, since, until


def fetch_series(ctx: Context, scope: SearchScope, window) -> tuple[dict, str, list[str]]:
    """{group: buckets}, where they were computed ('server' or 'client'), and notes."""
    args = ctx.args
    every, since, until = window
    starts = tm.bucket_starts(since, until, every)
    group = args.group_by
    notes: list[str] = []
    filters = tm.server_filters(args)
    if not args.client_side and filters is not None and group in tm.SERVER_GROUPS:
        try:
            series = tm.server_buckets(ctx.store, scope.experiment_ids, filters, window, starts, group)
            return series, "server", notes
        except tm.MetricsUnavailable as exc:
            notes.append(f"the server has no usable trace metrics endpoint ({truncate(str(exc), 80)}); aggregated here")
    elif not args.client_side:
        why = "--group-by " + group if filters is not None else "a filter the metrics endpoint cannot apply"
        notes.append(f"aggregated here over a search ({why}; the server endpoint splits by name or status only)")
    series = client_series(ctx, scope, window, starts, notes)
    return series or {"": tm.client_buckets([], starts, every)}, "client", notes


def client_series(ctx: Context, scope: SearchScope, window, starts: list[int], notes: list[str]) -> dict:
    """Buckets per group from a search of at most --limit traces in the window (newest first,
    so a truncated search leaves the oldest buckets incomplete, as a note says)."""
    args = ctx.args
    every, since, until = window
    flt = " AND ".join(
        x for x in (scope.filter, f"trace.timestamp_ms >= {since}", f"trace.timestamp_ms <= {until}") if x
    )
    infos, truncated = tr.search_all_trace_infos(
        ctx.store, scope.experiment_ids, flt, args.limit, ["timestamp_ms DESC"]
    )
    rows = [tr.trace_summary(i) for i in infos]
    if truncated:
        oldest = min(r["timestamp_ms"] or 0 for r in rows)
        notes.append(
            f"stopped at --limit {args.limit} traces: buckets before {fmt_time(oldest)} are incomplete; raise --limit"
        )
    members: dict[str, list[dict]] = {}
    for info, row in zip(infos, rows, strict=False):
        gkey = group_value(info, row, args.group_by) if args.group_by else ""
        members.setdefault(gkey if gkey is not None else "(none)", []).append(row)
    return {g: tm.client_buckets(m, starts, every) for g, m in members.items()}


def metrics_view(ctx: Context, scope: SearchScope) -> View:
    args = ctx.args
    window = metrics_window(args)
    every, since, until = window
    series, source, notes = fetch_series(ctx, scope, window)
    series = series or {"": tm.client_buckets([], tm.bucket_starts(since, until, every), every)}
    groups = sorted(series, key=lambda g: (-tm.totals(series[g])["traces"], g))
    result = {
        **scope.as_dict(),
        "every_ms": every,
        "since_ms": since,
        "until_ms": until,
        "computed": source,
        "notes": scope.notes + notes,
        "group_by": args.group_by,
        "series": [{"group": g or None, "totals": tm.totals(series[g]), "buckets": series[g]} for g in groups],
    }
    raw = [
        [s["group"], iso_time(b["start_ms"]), *(b[k] for k, _, _ in SERIES)]
        for s in result["series"]
        for b in s["buckets"]
    ]
    raw_headers = ["group", "bucket_start", *(k for k, _, _ in SERIES)]
    if args.group_by:
        headers, table, after = group_series_table(result["series"], args)
    else:
        headers, table, after = one_series_table(result["series"][0]["buckets"])
    return View(
        data=json_safe(result),
        lines=metrics_head(scope, args, result, len(next(iter(series.values())))),
        table=Table(headers, table, raw=raw, raw_headers=raw_headers),
        after=after,
        empty="No traces in this window.",
    )


def metrics_head(scope: SearchScope, args, result: dict, n_buckets: int) -> list[str]:
    """The window, where it was computed, the notes, and what a sparkline character stands for."""
    if result["computed"] == "server":
        how = "server-side (POST /api/3.0/mlflow/traces/metrics)"
    else:
        how = f"client-side over a search of at most {args.limit} traces"
    window = f"every {args.every} from {fmt_time(result['since_ms'])} to {fmt_time(result['until_ms'])} UTC"
    lines = [f"{scope.line()}: {window} ({n_buckets} buckets), {how}", ""]
    lines += [f"note: {n}" for n in result["notes"]] + ([""] if result["notes"] else [])
    width = GROUP_SPARK_WIDTH if args.group_by else tm.SPARK_WIDTH
    lines.append(f"sparklines: {tm.per_char(n_buckets, result['every_ms'], width)}; blank = no traces in the bucket")
    lines.append("")
    return lines


def one_series_table(buckets: list[dict]) -> tuple[list[str], list[list], list[str]]:
    """One row per series (total, min, max and when, sparkline), then the latest busy buckets."""
    total = tm.totals(buckets)
    headers = ["series", "total", "min", "max (bucket start, UTC)", "shape"]
    table = []
    for key, label, fmt in SERIES:
        values = [b[key] for b in buckets]
        present = [(v, b["start_ms"]) for v, b in zip(values, buckets, strict=False) if v is not None]
        if not present:
            continue
        agg = fmt(total[key]) if key in TOTALLED else ""
        lo = min(present, key=lambda p: p[0])
        hi = max(present, key=lambda p: p[0])
        where = f" ({fmt_time(hi[1])[:16]})" if hi[0] != lo[0] else ""
        table.append([label, agg, fmt(lo[0]), f"{fmt(hi[0])}{where}", f"`{tm.sparkline(values)}`"])
    return headers, table if total["traces"] else [], latest_buckets(buckets)


def latest_buckets(buckets: list[dict]) -> list[str]:
    busy = [b for b in buckets if b["traces"]][-LATEST_BUCKETS:]
    if not busy:
        return []
    rows = [
        [
            fmt_time(b["start_ms"])[:16],
            b["traces"],
            b["errors"],
            fmt_duration(b["p50_ms"]),
            fmt_duration(b["p95_ms"]),
            fmt_num(b["tokens"]),
        ]
        for b in busy
    ]
    return [
        "",
        f"latest {len(busy)} non-empty buckets:",
        md_table(["bucket (UTC)", "traces", "errors", "p50", "p95", "tokens"], rows),
        "every bucket: --format json or csv",
    ]


def group_series_table(series: list[dict], args) -> tuple[list[str], list[list], list[str]]:
    """One row per group (largest first): totals and the shape of traces and error rate."""
    key = args.group_by
    shown = [s for s in series if s["totals"]["traces"]][: args.max_groups]
    headers = [key, "traces", "errors", "error rate", "max p95", "traces shape", "error rate shape"]
    table = []
    for s in shown:
        t = s["totals"]
        table.append(
            [
                truncate(s["group"] or "(all)", 30),
                t["traces"],
                t["errors"],
                "" if t["error_rate"] is None else f"{t['error_rate'] * 100:.1f}%",
                fmt_duration(t["p95_max_ms"]),
                f"`{tm.sparkline([b['traces'] for b in s['buckets']], GROUP_SPARK_WIDTH)}`",
                f"`{tm.sparkline([b['error_rate'] for b in s['buckets']], GROUP_SPARK_WIDTH)}`",
            ]
        )
    after = []
    if len(shown) < len(series):
        after = ["", f"{len(shown)} of {len(series)} groups shown (--max-groups N, or all in --format json/csv)"]
    return headers, table, after
