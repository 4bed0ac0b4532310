"""search_traces.py --group-by: every matching trace (up to --limit) summarised per session,
user, status, name, tag or metadata value: traces, errors, latency percentiles, tokens, cost,
each feedback's pass rate or mean, and the trace ids worth opening."""

from __future__ import annotations

from mlflow_skill.cli.frame import Context, diag
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import fmt_duration, fmt_num, fmt_percent, json_safe, to_json, truncate
from mlflow_skill.core.values import percentile
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.assessments import summarize_assessments
from mlflow_skill.traces.cost import cost_brief
from mlflow_skill.traces.filters import SearchScope
from mlflow_skill.traces.listing import add_span_facts

GROUP_KEYS = ("session", "user", "status", "name")
IDS_PER_GROUP = 5  # in JSON; markdown shows 2
FEEDBACK_COLUMNS = 4  # feedback names shown in markdown; all in json/csv


def group_label(key: str) -> str:
    """Validate --group-by: a built-in key, tag.NAME or metadata.NAME."""
    if key in GROUP_KEYS:
        return key
    prefix, _, name = key.partition(".")
    if prefix in ("tag", "tags", "metadata") and name:
        return key
    raise UsageError(
        f"--group-by {key!r}: use session, user, status, name, tag.NAME or metadata.NAME (e.g. tag.app_version)"
    )


def group_value(info: dict, row: dict, key: str) -> str | None:
    if key in GROUP_KEYS:
        value = row[key]
    else:
        prefix, _, name = key.partition(".")
        source = info.get("tags") if prefix.startswith("tag") else info.get("trace_metadata")
        value = (source or {}).get(name)
    return None if value in (None, "") else str(value)


def group_stats(key: str, value: str | None, members: list[dict]) -> dict:
    durations = [m["duration_ms"] for m in members if m["duration_ms"] is not None]
    errors = sum(1 for m in members if m["status"] == "ERROR")
    with_tokens = [m["tokens"] for m in members if m["tokens"]]
    total_tokens = sum((t.get("total_tokens") or 0) for t in with_tokens)
    costs = [m["cost"] for m in members if m.get("cost")]
    priced = [x["cost_usd"] for x in costs if x["cost_usd"] is not None]
    # The ids worth opening: failed ones first, then the slowest.
    ranked = sorted(members, key=lambda m: (m["status"] != "ERROR", -(m["duration_ms"] or 0)))
    return {
        key: value,
        "traces": len(members),
        "errors": errors,
        "error_rate": errors / len(members),
        "p50_ms": percentile(durations, 50),
        "p95_ms": percentile(durations, 95),
        "without_duration": len(members) - len(durations),  # still running: left out of p50/p95
        "without_tokens": len(members) - len(with_tokens),  # no token usage recorded: left out of tokens
        "total_tokens": total_tokens if with_tokens else None,
        "tokens_per_trace": total_tokens / len(with_tokens) if with_tokens else None,
        "cost_usd": sum(priced) if priced else None,
        "unpriced_tokens": sum(x["unpriced_tokens"] for x in costs) if costs else None,
        "assessments": summarize_assessments(members),
        "first_ms": min((m["timestamp_ms"] or 0) for m in members) or None,
        "last_ms": max((m["timestamp_ms"] or 0) for m in members) or None,
        "trace_ids": [
            {"trace_id": m["trace_id"], "status": m["status"], "duration_ms": m["duration_ms"]}
            for m in ranked[:IDS_PER_GROUP]
        ],
    }


def grouped_stats(key: str, infos: list[dict], rows: list[dict]) -> list[dict]:
    """One stats dict per group value, largest group first."""
    groups: dict[str | None, list[dict]] = {}
    for info, row in zip(infos, rows, strict=False):
        groups.setdefault(group_value(info, row, key), []).append(row)
    stats = [group_stats(key, value, members) for value, members in groups.items()]
    stats.sort(key=lambda s: (-s["traces"], str(s[key] or "")))
    return stats


def group_view(ctx: Context, scope: SearchScope, prices: dict | None) -> View:
    args = ctx.args
    key = args.group_by
    infos, truncated = tr.search_all_trace_infos(
        ctx.store, scope.experiment_ids, scope.filter, args.limit, scope.order_by
    )
    rows = [tr.trace_summary(i) for i in infos]
    if prices:
        add_span_facts(ctx.store, rows, errors=False, prices=prices)
    stats = grouped_stats(key, infos, rows)
    result = {
        **scope.as_dict(),
        "group_by": key,
        "traces_counted": len(rows),
        "truncated_at_limit": truncated,
        "groups": stats,
    }
    if prices:
        result["cost_note"] = "USD from --prices; tokens on spans whose model has no price are counted as unpriced"
    if args.output:
        path = write_atomic(args.output, to_json(json_safe({**result, "trace_infos": infos})), force=args.force)
        diag(f"wrote {len(stats)} groups and {len(infos)} trace infos to {path}")
    names = list(dict.fromkeys(n for s in stats for n in s["assessments"]))
    shown = stats[: args.max_groups]
    headers, table = group_table(key, shown, names[:FEEDBACK_COLUMNS], bool(prices))
    raw_headers, raw = group_csv(key, stats, names, bool(prices))
    return View(
        data=json_safe(result),
        lines=scope.heading(f", grouped by {key}"),
        table=Table(headers, table, raw=raw, raw_headers=raw_headers),
        after=group_tail(args, scope, stats, shown, names, len(rows), truncated) if rows else [],
        empty="No traces match.",
    )


def group_tail(
    args, scope: SearchScope, stats: list[dict], shown: list[dict], names: list[str], counted: int, truncated: bool
) -> list[str]:
    """What the table leaves out, and the commands that open a trace or a session."""
    total_err = sum(s["errors"] for s in stats)
    tail = f"{len(stats)} groups over {counted} traces ({total_err} error{'' if total_err == 1 else 's'})"
    if len(shown) < len(stats):
        tail += f"; largest {len(shown)} groups shown (--max-groups N, or all in --format json/csv)"
    if truncated:
        tail += f"; stopped at --limit {args.limit}: more traces match, raise --limit for all"
    after = ["", tail]
    left_out = skipped_words(stats)
    if left_out:
        after.append(left_out)
    if len(names) > FEEDBACK_COLUMNS:
        after.append(f"feedback not shown here: {', '.join(names[FEEDBACK_COLUMNS:])} (--format json)")
    after.append("open: failed first, then slowest · a trace: uv run scripts/get_trace.py --trace-id ID")
    if args.group_by == "session":
        after.append(
            "a session as a conversation: uv run scripts/get_trace.py --session ID --experiment "
            + scope.experiment_ids[0]
        )
    return after


def skipped_words(stats: list[dict]) -> str:
    """What the statistics left out: traces without a duration (p50/p95) or token usage (tokens)."""
    no_duration = sum(s["without_duration"] for s in stats)
    no_tokens = sum(s["without_tokens"] for s in stats)
    parts = [f"p50/p95 leave out {no_duration} traces without a duration (still running)"] if no_duration else []
    parts += [f"{no_tokens} traces recorded no token usage (left out of tokens per trace)"] if no_tokens else []
    return "; ".join(parts)


def feedback_short(s: dict | None) -> str:
    if not s:
        return ""
    if s["pass_rate"] is not None:
        value = fmt_percent(s["pass_rate"])
    elif s["mean"] is not None:
        value = fmt_num(s["mean"], 3)
    else:
        value = "—"
    return f"{value} ({s['n']}{', ' + str(s['errors']) + ' err' if s['errors'] else ''})"


def feedback_header(name: str, stats: list[dict]) -> str:
    kinds = {
        ("pass" if s["assessments"][name]["pass_rate"] is not None else "mean")
        for s in stats
        if name in s["assessments"]
    }
    return f"{name} {'pass' if kinds == {'pass'} else 'mean' if kinds == {'mean'} else 'pass/mean'} (n)"


def group_table(key: str, stats: list[dict], names: list[str], priced: bool) -> tuple[list[str], list[list]]:
    headers = [key, "traces", "errors", "error rate", "p50", "p95", "tokens"]
    headers += ["cost"] if priced else []
    headers += [feedback_header(n, stats) for n in names] + ["open"]
    table = []
    for s in stats:
        row = [
            truncate(s[key] if s[key] is not None else "(none)", 40),
            s["traces"],
            s["errors"],
            fmt_percent(s["error_rate"]),
            fmt_duration(s["p50_ms"]),
            fmt_duration(s["p95_ms"]),
            fmt_num(s["total_tokens"]) if s["total_tokens"] is not None else "",
        ]
        if priced:
            row.append(cost_brief(s["cost_usd"], s["unpriced_tokens"]))
        row += [feedback_short(s["assessments"].get(n)) for n in names]
        row.append(" ".join(t["trace_id"] for t in s["trace_ids"][:2]))
        table.append(row)
    return headers, table


CSV_COLUMNS = (
    "traces",
    "errors",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "total_tokens",
    "tokens_per_trace",
    "first_ms",
    "last_ms",
    "without_duration",
    "without_tokens",
)


def group_csv(key: str, stats: list[dict], names: list[str], priced: bool) -> tuple[list[str], list[list]]:
    headers = [key, *CSV_COLUMNS]
    headers += ["cost_usd"] if priced else []
    for n in names:
        headers += [f"{n}.n", f"{n}.pass_rate", f"{n}.mean", f"{n}.errors"]
    headers.append("trace_ids")
    rows = []
    for s in stats:
        row = [s[key], *(s[c] for c in CSV_COLUMNS)]
        row += [s["cost_usd"]] if priced else []
        for n in names:
            a = s["assessments"].get(n) or {}
            row += [a.get("n"), a.get("pass_rate"), a.get("mean"), a.get("errors")]
        row.append(" ".join(t["trace_id"] for t in s["trace_ids"]))
        rows.append(row)
    return headers, rows
