# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow>=3.7",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = true  # MLflow is imported for non-server stores: compile once, not per call
# ///
"""Summarise a metric's history: shape, extremes and where they happen, in a few hundred tokens.

Usage:
  uv run scripts/get_metric_history.py --run-id ID [ID ...] [--metrics a,b] [--steps START:END]
                                       [--max-points N] [--exact] [--full [--output FILE [--force]]]
                                       [--format markdown|json|csv]

Default view, per metric: number of points, step range, time range (when the points carry
distinct timestamps, e.g. a backtest's bars), first and last value, min and max with the step
where each occurs, NaN count, a sparkline, and a table of at most --max-points points (default
50; 20 per metric when several metrics are shown) that always holds the first, last, min and max.

Exact or sampled: the default view asks the server for an even sample of at most 2,500 points
per run (MLflow's get-history-bulk-interval; first and last points always kept). A series with
fewer points comes back whole and its statistics are EXACT. A longer one is SAMPLED: the header
says so, gives the estimated total, and min/max are the sample's extremes refined by reading
every point between the neighbouring samples; a narrow spike elsewhere between two samples can
still be missed. --exact reads every point (slower: about 10 s per 200,000 points on a local
server) and makes every figure exact. --full prints every point, or with --output writes them
to a .csv or .json file atomically and prints only the summary.

Several --run-id: one table per metric with the runs side by side, aligned by step, plus one
summary line per run.

Examples:
  uv run scripts/get_metric_history.py --run-id 0b6660...          # every metric of the run
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss,val_loss --steps 1000:5000
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics equity --exact
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss --full --output loss.csv
  uv run scripts/get_metric_history.py --run-id RUN_A RUN_B --metrics val_loss
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss --format json
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from pathlib import Path
from typing import Any

import _cli as cli
import _common as c
import _store as st

SCRIPT = "get_metric_history.py"
BULK_INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
HISTORY = f"{st.API}/metrics/get-history"
SAMPLE_SIZE = 2500  # the server's maximum per run (MAX_RESULTS_PER_RUN)
MAX_RUNS_PER_CALL = 100  # the server's maximum run_ids per bulk-interval call
HISTORY_PAGE = 25000  # what MlflowClient uses for get-history pages
AUTO_EXACT = 10000  # a sampled series estimated at most this long is read whole (about 0.5 s)
DEFAULT_POINTS_ONE = 50
DEFAULT_POINTS_SEVERAL = 20
DEFAULT_METRIC_CAP = 12  # metrics shown when --metrics is not given
SPARK_WIDTH = 48
SPARK_CHARS = "▁▂▃▄▅▆▇█"
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1

Point = tuple[int, int, float]  # (step, timestamp ms, value)


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
def build_parser():
    parser = cli.make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}", formats=("markdown", "json", "csv"))
    parser.add_argument("--run-id", nargs="+", required=True, metavar="ID", help="one run, or several to compare")
    parser.add_argument("--metrics", help="comma-separated metric names (default: every metric of the run)")
    parser.add_argument("--steps", metavar="START:END", help="only steps in this inclusive window; START: or :END ok")
    parser.add_argument("--max-points", type=int, help="rows in the table (default 50; 20 per metric if several)")
    parser.add_argument("--exact", action="store_true", help="read every point so every figure is exact (slower)")
    parser.add_argument("--full", action="store_true", help="every point (implies --exact)")
    parser.add_argument("--output", metavar="FILE", help="with --full: write the points to FILE (.csv or .json)")
    parser.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    return parser


def parse_steps(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    match = re.fullmatch(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*", text)
    if not match or (match.group(1) is None and match.group(2) is None):
        raise c.UsageError(f"--steps takes START:END (e.g. 1000:5000, 1000: or :5000), got {text!r}")
    start = int(match.group(1)) if match.group(1) is not None else STEP_MIN
    end = int(match.group(2)) if match.group(2) is not None else STEP_MAX
    if not STEP_MIN <= start <= STEP_MAX or not STEP_MIN <= end <= STEP_MAX:
        raise c.UsageError(f"--steps {text}: steps are 64-bit integers (at most {STEP_MAX})")
    if start > end:
        raise c.UsageError(f"--steps {text}: START must not be greater than END")
    return start, end


def split_metrics(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise c.UsageError("--metrics is empty: pass names like --metrics loss,val_loss")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------
def parse_point(m: dict) -> Point:
    return int(m.get("step", 0) or 0), int(m.get("timestamp", 0) or 0), c.to_float(m.get("value"))


def sorted_points(points: list[Point]) -> list[Point]:
    # NaN sorts unpredictably; order by step, then timestamp, with the value as a stable last key.
    return sorted(points, key=lambda p: (p[0], p[1], -math.inf if math.isnan(p[2]) else p[2]))


class NoSamplingEndpoint(Exception):
    """The store does not serve get-history-bulk-interval."""


def fetch_sample(store: st.Store, run_ids: list[str], key: str, window: tuple[int, int] | None) -> dict[str, list[Point]]:
    """At most SAMPLE_SIZE points per run, sampled by the server (first and last kept)."""
    out: dict[str, list[Point]] = {r: [] for r in run_ids}
    for i in range(0, len(run_ids), MAX_RUNS_PER_CALL):
        params: dict[str, Any] = {"run_ids": run_ids[i : i + MAX_RUNS_PER_CALL], "metric_key": key, "max_results": SAMPLE_SIZE}
        if window:
            params["start_step"], params["end_step"] = window
        try:
            payload = store.get(BULK_INTERVAL, params, what=f"metric {key}")
        except c.NotFoundError as exc:  # runs were checked before: a 404 here means no such route
            raise NoSamplingEndpoint(str(exc)) from exc
        for m in payload.get("metrics", []) or []:
            out.setdefault(m.get("run_id", run_ids[0]), []).append(parse_point(m))
    return {r: sorted_points(p) for r, p in out.items()}


def fetch_all(store: st.Store, run_id: str, key: str, window: tuple[int, int] | None) -> list[Point]:
    """Every point, in pages of HISTORY_PAGE (get-history has no step filter: the window is applied here)."""
    points: list[Point] = []
    params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
    while True:
        page = store.get(HISTORY, params, what=f"metric {key}")
        points.extend(parse_point(m) for m in page.get("metrics", []) or [])
        token = page.get("next_page_token")
        if not token:
            break
        params["page_token"] = token
    if window:
        points = [p for p in points if window[0] <= p[0] <= window[1]]
    return sorted_points(points)


class Series:
    """One run's points for one metric, and whether they are all of them."""

    def __init__(self, run_id: str, key: str, points: list[Point], exact: bool, method: str, est_total: int | None = None):
        self.run_id, self.key, self.points = run_id, key, points
        self.exact = exact  # True: these are all the points (in the window)
        self.method = method  # "sample", "all", ...
        self.est_total = est_total  # for samples: estimated number of points in the window
        self.refined: list[str] = []  # which extremes were refined around the sample
        self.stat_points: list[Point] | None = None  # sample plus the points read around its extremes
        self.windowed = False


def estimate_total(points: list[Point]) -> int | None:
    """Estimated points in a sampled series: step range / step spacing, when steps are unique.

    The server samples evenly by row; with one point per step, the gaps between sampled steps
    are multiples of the logging stride, so their gcd recovers the stride."""
    steps = [p[0] for p in points]
    if len(steps) < 2 or any(b <= a for a, b in zip(steps, steps[1:])):
        return None
    stride = 0
    for a, b in zip(steps, steps[1:]):
        stride = math.gcd(stride, b - a)
    return (steps[-1] - steps[0]) // stride + 1 if stride else None


def refine_extremes(store: st.Store, series: Series, window: tuple[int, int] | None) -> None:
    """Read every point between the neighbours of the sample's min and max (two small windowed
    requests), so extremes of smooth curves and wide peaks are exact in value and step."""
    pts = series.points
    finite = [i for i, p in enumerate(pts) if not math.isnan(p[2])]
    if not finite:
        return
    extra: list[Point] = []
    for label, pick in (("min", min), ("max", max)):
        i = pick(finite, key=lambda j: pts[j][2])
        lo = pts[max(0, i - 1)][0]
        hi = pts[min(len(pts) - 1, i + 1)][0]
        if window:
            lo, hi = max(lo, window[0]), min(hi, window[1])
        if lo > hi:
            continue
        got = fetch_sample(store, [series.run_id], series.key, (lo, hi)).get(series.run_id, [])
        extra.extend(got)
        series.refined.append(label if len(got) < SAMPLE_SIZE else f"{label} (partly)")
    if extra:
        merged = {(p[0], p[1], repr(p[2])): p for p in pts + extra}
        series.stat_points = sorted_points(list(merged.values()))


def load_series(ctx: cli.Context, run_ids: list[str], key: str, window, exact: bool) -> list[Series]:
    store = ctx.store
    if exact:
        return [Series(r, key, fetch_all(store, r, key, window), True, "all") for r in run_ids]
    try:
        samples = fetch_sample(store, run_ids, key, window)
    except NoSamplingEndpoint:
        return [Series(r, key, fetch_all(store, r, key, window), True, "all (store has no sampling endpoint)") for r in run_ids]
    result = []
    for run_id in run_ids:
        pts = samples.get(run_id, [])
        est = estimate_total(pts)
        complete = len(pts) < SAMPLE_SIZE or est == len(pts)
        series = Series(run_id, key, pts, complete, "sample", None if complete else est)
        if not complete and est is not None and est <= AUTO_EXACT:
            series = Series(run_id, key, fetch_all(store, run_id, key, window), True, f"all (about {est:,} points)")
        elif not complete:
            refine_extremes(store, series, window)
        result.append(series)
    return result


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
def point_dict(p: Point | None) -> dict | None:
    if p is None:
        return None
    return {"step": p[0], "timestamp": p[1], "value": c.json_safe(p[2])}


def summarize(series: Series) -> dict:
    pts = series.points
    stat_pts = series.stat_points or pts
    finite = [p for p in stat_pts if not math.isnan(p[2])]
    nan_points = [p for p in pts if math.isnan(p[2])]
    lo = min(finite, key=lambda p: p[2]) if finite else None
    hi = max(finite, key=lambda p: p[2]) if finite else None
    stamps = [p[1] for p in pts]
    times_vary = bool(pts) and min(stamps) != max(stamps)
    distinct_times = bool(pts) and all(b[1] > a[1] for a, b in zip(pts, pts[1:]))
    if series.exact:
        label = f"exact: all {len(pts):,} points" + (" in the step window" if series.windowed else "")
    else:
        total = f"~{series.est_total:,}" if series.est_total else f"more than {len(pts):,}"
        label = f"sampled: {len(pts):,} of {total} points (server-side even sample, first and last kept)"
    return {
        "run_id": series.run_id,
        "metric": series.key,
        "exact": series.exact,
        "label": label,
        "method": series.method,
        "points": len(pts),
        "estimated_total": series.est_total if not series.exact else len(pts),
        "steps": [pts[0][0], pts[-1][0]] if pts else None,
        "time": [min(stamps), max(stamps)] if pts else None,
        "times_vary": times_vary,
        "distinct_times": distinct_times,
        "first": point_dict(pts[0] if pts else None),
        "last": point_dict(pts[-1] if pts else None),
        "min": point_dict(lo),
        "max": point_dict(hi),
        "constant": bool(finite) and lo[2] == hi[2],
        "nan_count": len(nan_points),
        "nan_steps": [p[0] for p in nan_points[:10]],
        "extremes_refined": list(series.refined),
        "sparkline": sparkline(pts),
    }


def sparkline(points: list[Point], width: int = SPARK_WIDTH) -> str:
    """Mean of each of `width` equal step ranges; '·' for a range holding only NaN, ' ' for one
    holding no point at all."""
    if not points:
        return ""
    first, last = points[0][0], points[-1][0]
    span = last - first
    width = max(1, min(width, len(points), span + 1))
    chunks: list[list[float]] = [[] for _ in range(width)]
    for step, _, value in points:
        b = min(width - 1, (step - first) * width // span) if span else 0
        chunks[b].append(value)
    bins: list[float | None] = []
    for chunk in chunks:
        finite = [v for v in chunk if math.isfinite(v)]
        if finite:
            bins.append(sum(finite) / len(finite))
        elif any(not math.isnan(v) for v in chunk):
            bins.append(next(v for v in chunk if not math.isnan(v)))  # only +-inf here
        else:
            bins.append(math.nan if chunk else None)
    finite_bins = [v for v in bins if v is not None and math.isfinite(v)]
    lo, hi = (min(finite_bins), max(finite_bins)) if finite_bins else (0.0, 0.0)
    out = []
    for v in bins:
        if v is None:
            out.append(" ")
        elif math.isnan(v):
            out.append("·")
        elif math.isinf(v):
            out.append(SPARK_CHARS[-1] if v > 0 else SPARK_CHARS[0])
        elif hi == lo:
            out.append(SPARK_CHARS[3])
        else:
            out.append(SPARK_CHARS[min(len(SPARK_CHARS) - 1, int((v - lo) / (hi - lo) * len(SPARK_CHARS)))])
    return "".join(out)


def downsample(points: list[Point], limit: int, keep: list[Point | None]) -> list[Point]:
    """At most `limit` points spread evenly over the step range (nearest point to each target
    step), always with the first and last and those in `keep`."""
    import bisect

    n = len(points)
    if n <= limit:
        return list(points)
    must = {points[0], points[-1], *(p for p in keep if p is not None)}
    picked = set(must)
    slots = limit - len(must)
    steps = [p[0] for p in points]
    first, last = steps[0], steps[-1]
    k = 1
    while len(picked) < limit and k <= slots:
        target = first + (last - first) * k / (slots + 1)
        i = min(n - 1, bisect.bisect_left(steps, target))
        if i > 0 and abs(steps[i - 1] - target) <= abs(steps[i] - target):
            i -= 1
        picked.add(points[i])
        k += 1
    return sorted_points(list(picked))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def time_formatter(stamps: list[int]):
    """Dates only when every timestamp is a UTC midnight (daily bars), else date and time."""
    if stamps and all(s % 86_400_000 == 0 for s in stamps):
        return lambda ms: c.fmt_time(ms)[:10]
    return c.fmt_time


def fmt_span(ms: int) -> str:
    days = ms / 86_400_000
    if days >= 730:
        return f"{days / 365.25:.1f} years"
    if days >= 3:
        return f"{days:.0f} days"
    return c.fmt_duration(ms)


def fmt_step(step: int) -> str:
    return f"{step:,}"


def render_single(s: dict, shown_points: list[Point], full: bool, table: bool = True) -> list[str]:
    lines = [f"### {s['metric']} — {s['label']}"]
    if not s["points"]:
        return lines + ["- no points" + (" in the step window" if s.get("window") else "")]
    ftime = time_formatter([p[1] for p in shown_points] + [s["time"][0], s["time"][1]])
    steps = f"steps {fmt_step(s['steps'][0])} → {fmt_step(s['steps'][1])}"
    if s["times_vary"]:
        span = fmt_span(s["time"][1] - s["time"][0])
        steps += f" · time {ftime(s['time'][0])} → {ftime(s['time'][1])} ({span})"
    else:
        steps += f" · all logged at {c.fmt_time(s['time'][0])}"
    lines.append("- " + steps)
    lines.append(
        f"- first {c.fmt_num(s['first']['value'] if s['first']['value'] is not None else math.nan)} (step {fmt_step(s['first']['step'])})"
        f" · last {c.fmt_num(_val(s['last']))} (step {fmt_step(s['last']['step'])})"
    )
    if s["min"] is None:
        lines.append("- min/max: none (every value is NaN)")
    elif s["constant"]:
        lines.append(f"- constant: {c.fmt_num(s['min']['value'])} at every non-NaN point")
    else:
        where = "" if s["exact"] else "; " + extremes_note(s)
        lines.append(
            f"- min {c.fmt_num(s['min']['value'])} at step {fmt_step(s['min']['step'])}"
            f" · max {c.fmt_num(s['max']['value'])} at step {fmt_step(s['max']['step'])}{where}"
        )
    if s["nan_count"]:
        more = "…" if s["nan_count"] > len(s["nan_steps"]) else ""
        scope = "" if s["exact"] else " in the sample"
        lines.append(
            f"- NaN: {s['nan_count']:,} point{'s' if s['nan_count'] != 1 else ''}{scope} (steps {', '.join(fmt_step(x) for x in s['nan_steps'])}{more}), "
            "excluded from min/max"
        )
    lines.append(f"- shape: `{s['sparkline']}`")
    if not table:
        return lines
    lines.append("")
    with_time = s["distinct_times"]
    headers = ["step", "value"] + (["time"] if with_time else []) + [""]
    rows = []
    for p in shown_points:
        rows.append([fmt_step(p[0]), c.fmt_num(p[2])] + ([ftime(p[1])] if with_time else []) + [marks(s, p)])
    lines.append(c.md_table(headers, rows))
    if not full and len(shown_points) < s["points"]:
        lines.append(f"({len(shown_points)} of {s['points']:,} {'sampled ' if not s['exact'] else ''}points shown)")
    return lines


def extremes_note(s: dict) -> str:
    if s["extremes_refined"]:
        return "from the sample, refined with every point around them; a spike between other samples can be missed (--exact)"
    return "from the sample; the true extremes may lie between samples (--exact)"


def _val(p: dict) -> float:
    return math.nan if p["value"] is None else p["value"]


def marks(s: dict, p: Point) -> str:
    out = []
    for name in ("first", "last", "min", "max"):
        ref = s[name]
        if ref and ref["step"] == p[0] and ref["timestamp"] == p[1] and (
            ref["value"] == p[2] or (ref["value"] is None and math.isnan(p[2]))
        ):
            out.append(name)
    if math.isnan(p[2]):
        out.append("NaN")
    return " ".join(out)


def summary_line(s: dict, name: str) -> str:
    if not s["points"]:
        return f"- **{name}**: no points"
    parts = [
        f"- **{name}**: {s['label']}",
        f"steps {fmt_step(s['steps'][0])}→{fmt_step(s['steps'][1])}",
        f"first {c.fmt_num(_val(s['first']))} · last {c.fmt_num(_val(s['last']))}",
    ]
    if s["min"]:
        parts.append(
            f"min {c.fmt_num(s['min']['value'])} @{fmt_step(s['min']['step'])} · "
            f"max {c.fmt_num(s['max']['value'])} @{fmt_step(s['max']['step'])}"
        )
    if s["nan_count"]:
        parts.append(f"NaN {s['nan_count']:,}")
    parts.append(f"`{s['sparkline']}`")
    return "; ".join(parts)


def aligned_rows(series_list: list[Series], limit: int) -> tuple[list[int], list[list[str]], bool]:
    """Runs side by side by step: a grid of steps from the union of the runs' points; each cell is
    the run's value at that step, or '≈' its latest earlier point when that step was not sampled."""
    import bisect

    steps = sorted({p[0] for s in series_list for p in s.points})
    if len(steps) > limit:
        # Even targets over the step range, each snapped to the nearest step that every run
        # covering it has logged (so cells are real points), else to the nearest logged step.
        step_sets = [(s.points[0][0], s.points[-1][0], {p[0] for p in s.points}) for s in series_list if s.points]
        first, last = steps[0], steps[-1]
        grid = {first, last}
        for k in range(1, limit - 1):
            target = first + (last - first) * k / (limit - 1)
            covering = [st for lo, hi, st in step_sets if lo <= target <= hi]
            common = sorted(set.intersection(*covering)) if covering else []
            pool = common if common else steps
            i = min(len(pool) - 1, bisect.bisect_left(pool, target))
            if i > 0 and abs(pool[i - 1] - target) <= abs(pool[i] - target):
                i -= 1
            grid.add(pool[i])
        steps = sorted(grid)
    approx = False
    rows = []

    indexed = []
    for s in series_list:
        by_step: dict[int, Point] = {}
        for p in s.points:
            by_step[p[0]] = p  # last point at each step
        keys = sorted(by_step)
        indexed.append((by_step, keys))
    for step in steps:
        row = [fmt_step(step)]
        for by_step, keys in indexed:
            if not keys or step < keys[0] or step > keys[-1]:
                row.append("")
            elif step in by_step:
                row.append(c.fmt_num(by_step[step][2]))
            else:
                approx = True
                row.append("≈" + c.fmt_num(by_step[keys[bisect.bisect_right(keys, step) - 1]][2]))
        rows.append(row)
    return steps, rows, approx


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------
def command(ctx: cli.Context) -> int:
    args = ctx.args
    window = parse_steps(args.steps)
    wanted = split_metrics(args.metrics)
    if args.output and not args.full:
        raise c.UsageError("--output writes every point: add --full")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise c.UsageError(f"--output {args.output}: the name must end in .csv or .json")
    if args.max_points is not None and args.max_points < 2:
        raise c.UsageError("--max-points must be at least 2 (the first and the last point)")
    if args.output and Path(args.output).exists() and not args.force:  # fail before the slow part
        raise c.UsageError(f"{args.output} exists: pass --force to overwrite it, or choose another --output")
    run_ids = list(dict.fromkeys(r.strip() for r in args.run_id if r.strip()))
    if not run_ids:
        raise c.UsageError("--run-id is empty")

    runs = {r: st.get_run(ctx.store, r) for r in run_ids}
    keys_by_run = {r: sorted(st.run_metrics(run)) for r, run in runs.items()}
    all_keys = sorted({k for ks in keys_by_run.values() for k in ks}, key=lambda k: (k.startswith("system/"), k))
    hidden: list[str] = []
    if wanted is None:
        metrics = all_keys
        if len(metrics) > DEFAULT_METRIC_CAP and not args.full:
            metrics, hidden = metrics[:DEFAULT_METRIC_CAP], metrics[DEFAULT_METRIC_CAP:]
    else:
        for key in wanted:
            if key not in all_keys:
                which = "the run" if len(run_ids) == 1 else "any of the runs"
                close = difflib.get_close_matches(key, all_keys, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else ""
                listing = ", ".join(c.truncate(k, 40) for k in all_keys[:30]) or "(none)"
                more = f" and {len(all_keys) - 30} more" if len(all_keys) > 30 else ""
                raise c.NotFoundError(f"{which} has no metric {key!r}{hint} (its metrics: {listing}{more})")
        metrics = wanted

    exact = args.exact or args.full
    results = []  # (key, [Series])
    if ctx.settings.is_http and len(metrics) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [(k, pool.submit(load_series, ctx, [r for r in run_ids if k in keys_by_run[r]], k, window, exact)) for k in metrics]
            results = [(k, f.result()) for k, f in futures]
    else:
        results = [(k, load_series(ctx, [r for r in run_ids if k in keys_by_run[r]], k, window, exact)) for k in metrics]

    names = run_labels(runs)
    several_metrics = len(metrics) > 1 or len(run_ids) > 1
    limit = args.max_points or (DEFAULT_POINTS_SEVERAL if several_metrics else DEFAULT_POINTS_ONE)

    summaries = []
    for key, series_list in results:
        for s in series_list:
            s.windowed = window is not None
            summ = summarize(s)
            summ["run_name"] = st.run_name(runs[s.run_id])
            summ["window"] = list(window) if window else None
            summ["_series"] = s
            summaries.append(summ)

    if args.output:
        write_points(args.output, summaries, args.force)

    if ctx.fmt == "csv":
        rows = []
        for summ in summaries:
            s = summ["_series"]
            pts = s.points if args.full else shown(summ, limit)
            rows.extend([s.run_id, summ["run_name"], s.key, p[0], p[1], "" if math.isnan(p[2]) else repr(p[2])] for p in pts)
        if args.output:  # points are in the file; print the summaries
            ctx.emit(c.to_csv(SUMMARY_FIELDS, [[_csv_cell(summ.get(f)) for f in SUMMARY_FIELDS] for summ in summaries]))
        else:
            ctx.emit(c.to_csv(["run_id", "run_name", "metric", "step", "timestamp", "value"], rows))
        return c.EXIT_OK
    if ctx.fmt == "json":
        out = {
            "store": ctx.settings.display_uri,
            "window": list(window) if window else None,
            "output": args.output,
            "hidden_metrics": hidden,
            "series": [],
        }
        for summ in summaries:
            pts = summ["_series"].points if (args.full and not args.output) else ([] if args.output else shown(summ, limit))
            del summ["_series"]
            summ["shown_points"] = [point_dict(p) for p in pts]
            out["series"].append(summ)
        ctx.emit(c.to_json(c.json_safe(out)))
        return c.EXIT_OK

    ctx.emit(render_markdown(ctx, runs, names, results, summaries, limit, window, hidden, args))
    return c.EXIT_OK


SUMMARY_FIELDS = ["run_id", "run_name", "metric", "exact", "label", "points", "first", "last", "min", "max", "nan_count"]


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict):
        return f"{value.get('value')}@{value.get('step')}"
    return value


def shown(summ: dict, limit: int) -> list[Point]:
    s: Series = summ["_series"]
    keep = [_as_point(summ["min"]), _as_point(summ["max"])]
    pts = s.points
    # refined extremes may not be in the sample: add them so the table shows them
    extra = [p for p in keep if p is not None and p not in set(pts)]
    if extra:
        pts = sorted_points(pts + extra)
    return downsample(pts, limit, keep)


def _as_point(d: dict | None) -> Point | None:
    if d is None:
        return None
    return (d["step"], d["timestamp"], math.nan if d["value"] is None else float(d["value"]))


def run_labels(runs: dict[str, dict]) -> dict[str, str]:
    names = {r: st.run_name(run) or r[:8] for r, run in runs.items()}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {r: (f"{n} ({r[:6]})" if counts[n] > 1 else n) for r, n in names.items()}


def experiment_label(store: st.Store, experiment_id: str | None) -> str:
    """'name (id)': names before ids; the id alone if the look-up fails."""
    try:
        name = store.get(f"{st.API}/experiments/get", {"experiment_id": experiment_id})["experiment"]["name"]
    except c.SkillError:
        return str(experiment_id)
    return f"**{name}** ({experiment_id})"


def render_markdown(ctx, runs, names, results, summaries, limit, window, hidden, args) -> str:
    lines: list[str] = []
    window_text = f" · steps {fmt_window(window)}" if window else ""
    by_key: dict[str, list[dict]] = {}
    for summ in summaries:
        by_key.setdefault(summ["metric"], []).append(summ)
    if len(runs) == 1:
        run_id, run = next(iter(runs.items()))
        experiment = experiment_label(ctx.store, run["info"].get("experiment_id"))
        lines.append(f"## Run **{names[run_id]}** ({run_id}), experiment {experiment}{window_text}")
        for key, _ in results:
            for summ in by_key.get(key, []):
                lines.append("")
                pts = summ["_series"].points if (args.full and not args.output) else shown(summ, limit)
                lines.extend(render_single(summ, pts, args.full and not args.output, table=not args.output))
    else:
        lines.append("## Runs " + ", ".join(f"**{names[r]}** ({r[:8]})" for r in runs) + window_text)
        for key, series_list in results:
            lines.append("")
            kinds = {summ["exact"] for summ in by_key.get(key, [])}
            kind = "exact" if kinds == {True} else ("sampled" if kinds == {False} else "exact for some runs, sampled for others")
            lines.append(f"### {key} ({kind}; per-run detail below)")
            missing = [names[r] for r in runs if not any(s.run_id == r for s in series_list)]
            present = [s for s in series_list]
            lim = 10**9 if (args.full and not args.output) else limit
            steps, rows, approx = aligned_rows(present, lim)
            if rows and not args.output:
                lines.append(c.md_table(["step"] + [names[s.run_id] for s in present], rows))
                total_steps = len({p[0] for s in present for p in s.points})
                if len(steps) < total_steps:
                    lines.append(f"({len(steps)} of {total_steps:,} steps shown)")
                if approx:
                    lines.append("≈: that run has no point at this step in what was read; value of its latest earlier point")
            lines.append("")
            for summ in by_key.get(key, []):
                lines.append(summary_line(summ, names[summ["run_id"]]))
            for name in missing:
                lines.append(f"- **{name}**: metric not logged in this run")
    lines.append("")
    if args.output:
        lines.append(f"Wrote every point ({sum(s['points'] for s in summaries):,} rows) to {args.output}")
    if hidden:
        lines.append(
            f"{len(hidden)} more metrics not shown: {', '.join(c.truncate(h, 30) for h in hidden[:15])}"
            f"{'…' if len(hidden) > 15 else ''} (pass --metrics NAME,...)"
        )
    if not args.full and any(not s["exact"] for s in summaries):
        lines.append("Exact figures: add --exact (reads every point); every point: --full --output FILE.csv")
    elif not args.full and any(s["points"] > limit for s in summaries):
        lines.append("Every point: add --full (or --full --output FILE.csv); more rows: --max-points N")
    return "\n".join(lines)


def fmt_window(window: tuple[int, int]) -> str:
    lo = "" if window[0] == STEP_MIN else str(window[0])
    hi = "" if window[1] == STEP_MAX else str(window[1])
    return f"{lo}:{hi}"


def write_points(path: str, summaries: list[dict], force: bool) -> None:
    target = Path(path)
    if target.suffix.lower() == ".json":
        data = c.to_json(
            c.json_safe(
                [
                    {
                        "run_id": summ["run_id"],
                        "run_name": summ["run_name"],
                        "metric": summ["metric"],
                        "points": [{"step": p[0], "timestamp": p[1], "value": p[2]} for p in summ["_series"].points],
                    }
                    for summ in summaries
                ]
            )
        )
    else:
        rows = (
            [summ["run_id"], summ["run_name"], summ["metric"], p[0], p[1], "NaN" if math.isnan(p[2]) else repr(p[2])]
            for summ in summaries
            for p in summ["_series"].points
        )
        data = c.to_csv(["run_id", "run_name", "metric", "step", "timestamp", "value"], rows)
    c.write_atomic(target, data, force=force)


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
