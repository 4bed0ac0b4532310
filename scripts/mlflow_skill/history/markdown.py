"""The markdown view: per metric for one run (figures, sparkline, a table of points), or runs
side by side aligned by step for several; sampled figures are labelled as the sample's."""

from __future__ import annotations

import bisect
import math

from mlflow_skill.core.formatting import fmt_duration, fmt_num, fmt_time, md_table, truncate
from mlflow_skill.history.request import fmt_window
from mlflow_skill.history.selection import grid_steps
from mlflow_skill.history.series import Point, Series
from mlflow_skill.history.shape import Shaped
from mlflow_skill.history.summary import PointDict, Summary


def time_formatter(stamps: list[int]):
    """Dates only when every timestamp is a UTC midnight (daily bars), else date and time."""
    if stamps and all(s % 86_400_000 == 0 for s in stamps):
        return lambda ms: fmt_time(ms)[:10]
    return fmt_time


def fmt_span(ms: int) -> str:
    days = ms / 86_400_000
    if days >= 730:
        return f"{days / 365.25:.1f} years"
    if days >= 3:
        return f"{days:.0f} days"
    return fmt_duration(ms)


def fmt_step(step: int) -> str:
    return f"{step:,}"


def _val(p: PointDict) -> float:
    return math.nan if p["value"] is None else p["value"]


def extremes_line(s: Summary) -> str:
    if s.min is None:
        return "- min/max: none (every value is NaN)"
    if s.constant and s.exact:
        return f"- constant: {fmt_num(s.min['value'])} at every non-NaN point"
    lo = f"min {fmt_num(s.min['value'])} at step {fmt_step(s.min['step'])}"
    hi = f"max {fmt_num(s.max['value'])} at step {fmt_step(s.max['step'])}"
    if s.exact:
        return f"- {lo} · {hi}"
    if s.extremes_refined:
        how = "refined with every point around them; a spike between other samples can be missed"
    else:
        how = "the true extremes may lie between samples"
    return (
        f"- sample {lo} · sample {hi}: extremes of the {s.points:,}-point sample, not of the series "
        f"({how}). Exact: `{s.exact_command}`"
    )


def render_single(s: Summary, shown_points: list[Point], full: bool, table: bool = True) -> list[str]:
    lines = [f"### {s.metric} — {s.label}"]
    if not s.points:
        return lines + ["- no points" + (" in the step window" if s.window else "")]
    ftime = time_formatter([p[1] for p in shown_points] + [s.time[0], s.time[1]])
    steps = f"steps {fmt_step(s.steps[0])} → {fmt_step(s.steps[1])}"
    if s.times_vary:
        steps += f" · time {ftime(s.time[0])} → {ftime(s.time[1])} ({fmt_span(s.time[1] - s.time[0])})"
    else:
        steps += f" · all logged at {fmt_time(s.time[0])}"
    lines.append("- " + steps)
    lines.append(
        f"- first {fmt_num(_val(s.first))} (step {fmt_step(s.first['step'])})"
        f" · last {fmt_num(_val(s.last))} (step {fmt_step(s.last['step'])})"
    )
    lines.append(extremes_line(s))
    if s.nan_count:
        more = "…" if s.nan_count > len(s.nan_steps) else ""
        scope = "" if s.exact else " in the sample"
        lines.append(
            f"- NaN: {s.nan_count:,} point{'s' if s.nan_count != 1 else ''}{scope} "
            f"(steps {', '.join(fmt_step(x) for x in s.nan_steps)}{more}), excluded from min/max"
        )
    lines.append(f"- shape: `{s.sparkline}`" + ("" if s.exact else " (of the sample)"))
    if table:
        lines += ["", *point_table(s, shown_points, full)]
    return lines


def point_table(s: Summary, shown_points: list[Point], full: bool) -> list[str]:
    with_time = s.distinct_times
    ftime = time_formatter([p[1] for p in shown_points] + [s.time[0], s.time[1]])
    headers = ["step", "value"] + (["time"] if with_time else []) + [""]
    rows = [
        [fmt_step(p[0]), fmt_num(p[2])] + ([ftime(p[1])] if with_time else []) + [marks(s, p)] for p in shown_points
    ]
    lines = [md_table(headers, rows)]
    if not full and len(shown_points) < s.points:
        lines.append(f"({len(shown_points)} of {s.points:,} {'sampled ' if not s.exact else ''}points shown)")
    return lines


def marks(s: Summary, p: Point) -> str:
    out = []
    for name in ("first", "last", "min", "max"):
        ref = getattr(s, name)
        if (
            ref
            and ref["step"] == p[0]
            and ref["timestamp"] == p[1]
            and (ref["value"] == p[2] or (ref["value"] is None and math.isnan(p[2])))
        ):
            out.append(name if s.exact or name in ("first", "last") else f"sample {name}")
    if math.isnan(p[2]):
        out.append("NaN")
    return " ".join(out)


def summary_line(s: Summary, name: str) -> str:
    if not s.points:
        return f"- **{name}**: no points"
    parts = [
        f"- **{name}**: {s.label}",
        f"steps {fmt_step(s.steps[0])}→{fmt_step(s.steps[1])}",
        f"first {fmt_num(_val(s.first))} · last {fmt_num(_val(s.last))}",
    ]
    if s.min:
        tag = "" if s.exact else "sample "
        parts.append(
            f"{tag}min {fmt_num(s.min['value'])} @{fmt_step(s.min['step'])} · "
            f"{tag}max {fmt_num(s.max['value'])} @{fmt_step(s.max['step'])}"
        )
    if s.nan_count:
        parts.append(f"NaN {s.nan_count:,}")
    parts.append(f"`{s.sparkline}`")
    return "; ".join(parts)


def aligned_rows(series_list: list[Series], limit: int) -> tuple[list[int], list[list[str]], bool]:
    """Runs side by side by step: each cell is the run's value at that step, or '≈' its latest
    earlier point when that step was not read."""
    steps = sorted({p[0] for s in series_list for p in s.points})
    if len(steps) > limit:
        steps = grid_steps(series_list, steps, limit)
    indexed = []
    for s in series_list:
        by_step = {p[0]: p for p in s.points}  # last point at each step
        indexed.append((by_step, sorted(by_step)))
    approx, rows = False, []
    for step in steps:
        row = [fmt_step(step)]
        for by_step, keys in indexed:
            if not keys or step < keys[0] or step > keys[-1]:
                row.append("")
            elif step in by_step:
                row.append(fmt_num(by_step[step][2]))
            else:
                approx = True
                row.append("≈" + fmt_num(by_step[keys[bisect.bisect_right(keys, step) - 1]][2]))
        rows.append(row)
    return steps, rows, approx


def md_single_run(sh: Shaped) -> list[str]:
    run_id = next(iter(sh.runs))
    window_text = f" · steps {fmt_window(sh.window)}" if sh.window else ""
    lines = [f"## Run **{sh.names[run_id]}** ({run_id}), experiment {sh.experiment}{window_text}"]
    for summ in sh.summaries:
        lines.append("")
        lines.extend(render_single(summ, sh.points_for(summ), sh.full and not sh.output, table=sh.table_points))
    return lines


def exactness(summs: list[Summary]) -> str:
    kinds = {summ.exact for summ in summs}
    if kinds == {True}:
        return "exact"
    if kinds == {False}:
        return "sampled"
    return "exact for some runs, sampled for others"


def md_several_runs(sh: Shaped) -> list[str]:
    window_text = f" · steps {fmt_window(sh.window)}" if sh.window else ""
    lines = ["## Runs " + ", ".join(f"**{sh.names[r]}** ({r[:8]})" for r in sh.runs) + window_text]
    for key, series_list in sh.results:
        summs = [s for s in sh.summaries if s.metric == key]
        lines += ["", f"### {key} ({exactness(summs)}; per-run detail below)"]
        steps, rows, approx = aligned_rows(series_list, 10**9 if sh.full else sh.limit)
        if rows and sh.table_points:
            lines.append(md_table(["step"] + [sh.names[s.run_id] for s in series_list], rows))
            total_steps = len({p[0] for s in series_list for p in s.points})
            if len(steps) < total_steps:
                lines.append(f"({len(steps)} of {total_steps:,} steps shown)")
            if approx:
                lines.append(
                    "≈: that run has no point at this step in what was read; value of its latest earlier point"
                )
        lines.append("")
        lines += [summary_line(summ, sh.names[summ.run_id]) for summ in summs]
        logged = {s.run_id for s in series_list}
        lines += [f"- **{sh.names[r]}**: metric not logged in this run" for r in sh.runs if r not in logged]
        if "sample" in {summ.extremes for summ in summs}:
            lines.append(f"Sample extremes are not the series' extremes; exact: `{summs[0].exact_command}`")
    return lines


def md_footer(sh: Shaped, plot: str | None) -> list[str]:
    lines = [""]
    summaries = sh.summaries
    if sh.output:
        lines.append(f"Wrote every point ({sum(s.points for s in summaries):,} rows) to {sh.output}")
    if plot:
        lines.append(f"Plot: {plot}")
    if sh.hidden:
        lines.append(
            f"{len(sh.hidden)} more metrics not shown: {', '.join(truncate(h, 30) for h in sh.hidden[:15])}"
            f"{'…' if len(sh.hidden) > 15 else ''} (pass --metrics NAME,...)"
        )
    if not sh.full and any(not s.exact for s in summaries):
        lines.append("Exact figures: add --exact (reads every point); every point: --full --output FILE.csv")
    elif not sh.full and any(s.points > sh.limit for s in summaries):
        lines.append("Every point: add --full (or --full --output FILE.csv); more rows: --max-points N")
    return lines
