# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "matplotlib>=3.7",
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
# matplotlib: --plot only (imported there).
"""Summarise a metric's history: shape, extremes and where they happen, in a few hundred tokens.

Usage:
  uv run scripts/get_metric_history.py --run-id ID [ID ...] [--metrics a,b] [--steps START:END]
                                       [--max-points N] [--exact] [--full [--output FILE [--force]]]
                                       [--plot FILE.png [--force]] [--format markdown|json|csv]

Default view, per metric: number of points, step range, time range (when the points carry
distinct timestamps, e.g. a backtest's bars), first and last value, min and max with the step
where each occurs, NaN count, a sparkline, and a table of at most --max-points points (default
50; 20 per metric when several metrics are shown) that always holds the first, last, min and max.

Exact or sampled: the default view first asks the server for an even sample of at most 2,500
points per run (MLflow's get-history-bulk-interval keeps the first row of each of 2,500 equal
slices of the history, plus the last row: it never looks at the values). A series of at most
2,500 points comes back whole. A series of at most ~50,000 points is then read whole, in step
windows of ~2,000 points (about 1 s per 50,000 points on a local server): every figure is EXACT.
A longer one is SAMPLED: the header says so and gives the estimated total; min and max are
labelled as the extremes OF THE SAMPLE (refined by reading every point around them), because a
one-point spike between two samples cannot be seen; the output gives the --exact command.
--exact reads every point the same windowed way (about 2x faster than get-history's pages).
--full prints every point, or with --output writes them to a .csv or .json file atomically and
prints only the summary.

Sparkline: each character is one slice of the step range, drawn at the slice's min or max
(whichever lies farther from the series' median), so a one-point spike shows.

--plot FILE.png draws every run's series (one panel per metric, runs overlaid), marks min and
max, labelled exact or sample; matplotlib is imported only then.

Several --run-id: one table per metric with the runs side by side, aligned by step, plus one
summary line per run.

Examples:
  uv run scripts/get_metric_history.py --run-id 0b6660...          # every metric of the run
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss,val_loss --steps 1000:5000
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics equity --exact
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss --full --output loss.csv
  uv run scripts/get_metric_history.py --run-id RUN_A RUN_B --metrics val_loss --plot val_loss.png
  uv run scripts/get_metric_history.py --run-id 0b6660... --metrics loss --format json
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
import re
import shlex
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_skill.cli.frame import Context, make_parser, run_main
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import EXIT_OK, NotFoundError, SkillError, UsageError
from mlflow_skill.core.files import write_atomic
from mlflow_skill.core.formatting import (
    fmt_duration,
    fmt_num,
    fmt_time,
    json_safe,
    md_table,
    to_csv,
    to_json,
    truncate,
)
from mlflow_skill.core.secrets import uri_without_secrets
from mlflow_skill.core.values import to_float
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

SCRIPT = "get_metric_history.py"
BULK_INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
HISTORY = f"{lookups.API}/metrics/get-history"
SAMPLE_SIZE = 2500  # the server's maximum per run (MAX_RESULTS_PER_RUN)
MAX_RUNS_PER_CALL = 100  # the server's maximum run_ids per bulk-interval call
HISTORY_PAGE = 25000  # what MlflowClient uses for get-history pages
WINDOW_ROWS = 2000  # planned points per windowed read (a window returning SAMPLE_SIZE is split)
AUTO_EXACT = 50_000  # a sampled series estimated at most this long is read whole (about 1 s)
WORKERS = 4  # parallel requests to an HTTP server
DEFAULT_POINTS_ONE = 50
DEFAULT_POINTS_SEVERAL = 20
DEFAULT_METRIC_CAP = 12  # metrics shown when --metrics is not given
SPARK_WIDTH = 48
SPARK_CHARS = "▁▂▃▄▅▆▇█"
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1

Point = tuple[int, int, float]  # (step, timestamp ms, value)
Window = tuple[int, int]  # inclusive step range


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}", formats=("markdown", "json", "csv"))
    parser.add_argument("--run-id", nargs="+", required=True, metavar="ID", help="one run, or several to compare")
    parser.add_argument("--metrics", help="comma-separated metric names (default: every metric of the run)")
    parser.add_argument("--steps", metavar="START:END", help="only steps in this inclusive window; START: or :END ok")
    parser.add_argument("--max-points", type=int, help="rows in the table (default 50; 20 per metric if several)")
    parser.add_argument("--exact", action="store_true", help="read every point so every figure is exact (slower)")
    parser.add_argument("--full", action="store_true", help="every point (implies --exact)")
    parser.add_argument("--output", metavar="FILE", help="with --full: write the points to FILE (.csv or .json)")
    parser.add_argument("--plot", metavar="FILE.png", help="draw the series to a PNG file (runs overlaid)")
    parser.add_argument("--force", action="store_true", help="overwrite --output / --plot if it exists")
    return parser


def parse_steps(text: str | None) -> Window | None:
    if not text:
        return None
    match = re.fullmatch(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*", text)
    if not match or (match.group(1) is None and match.group(2) is None):
        raise UsageError(f"--steps takes START:END (e.g. 1000:5000, 1000: or :5000), got {text!r}")
    start = int(match.group(1)) if match.group(1) is not None else STEP_MIN
    end = int(match.group(2)) if match.group(2) is not None else STEP_MAX
    if not STEP_MIN <= start <= STEP_MAX or not STEP_MIN <= end <= STEP_MAX:
        raise UsageError(f"--steps {text}: steps are 64-bit integers (at most {STEP_MAX})")
    if start > end:
        raise UsageError(f"--steps {text}: START must not be greater than END")
    return start, end


def split_metrics(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--metrics is empty: pass names like --metrics loss,val_loss")
    return list(dict.fromkeys(names))


def check_args(args) -> tuple[Window | None, list[str] | None, list[str]]:
    """Every usage error before the first request: (step window, wanted metrics, run ids)."""
    window = parse_steps(args.steps)
    wanted = split_metrics(args.metrics)
    if args.output and not args.full:
        raise UsageError("--output writes every point: add --full")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".json"):
        raise UsageError(f"--output {args.output}: the name must end in .csv or .json")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UsageError(f"--plot {args.plot}: the name must end in .png")
    if args.max_points is not None and args.max_points < 2:
        raise UsageError("--max-points must be at least 2 (the first and the last point)")
    for flag, target in (("--output", args.output), ("--plot", args.plot)):
        if target and Path(target).exists() and not args.force:  # fail before the slow part
            raise UsageError(f"{target} exists: pass --force to overwrite it, or choose another {flag}")
        if target and not Path(target).resolve().parent.is_dir():
            raise UsageError(f"folder {Path(target).parent} does not exist: create it or choose another {flag}")
    run_ids = list(dict.fromkeys(r.strip() for r in args.run_id if r.strip()))
    if not run_ids:
        raise UsageError("--run-id is empty")
    return window, wanted, run_ids


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------
def parse_point(m: dict) -> Point:
    return int(m.get("step", 0) or 0), int(m.get("timestamp", 0) or 0), to_float(m.get("value"))


def sorted_points(points: list[Point]) -> list[Point]:
    # NaN sorts unpredictably; order by step, then timestamp, with the value as a stable last key.
    return sorted(points, key=lambda p: (p[0], p[1], -math.inf if math.isnan(p[2]) else p[2]))


class NoSamplingEndpoint(Exception):
    """The store does not serve get-history-bulk-interval."""


def fetch_sample(store: Store, run_ids: list[str], key: str, window: Window | None) -> dict[str, list[Point]]:
    """At most SAMPLE_SIZE points per run, sampled by the server (first and last kept). With
    fewer points than that in the window, every point of it."""
    out: dict[str, list[Point]] = {r: [] for r in run_ids}
    for i in range(0, len(run_ids), MAX_RUNS_PER_CALL):
        params: dict[str, Any] = {
            "run_ids": run_ids[i : i + MAX_RUNS_PER_CALL],
            "metric_key": key,
            "max_results": SAMPLE_SIZE,
        }
        if window:
            params["start_step"], params["end_step"] = window
        try:
            payload = store.get(BULK_INTERVAL, params, what=f"metric {key}")
        except NotFoundError as exc:  # runs were checked before: a 404 here means no such route
            raise NoSamplingEndpoint(str(exc)) from exc
        for m in payload.get("metrics", []) or []:
            out.setdefault(m.get("run_id", run_ids[0]), []).append(parse_point(m))
    return {r: sorted_points(p) for r, p in out.items()}


def fetch_all(store: Store, run_id: str, key: str, window: Window | None) -> list[Point]:
    """Every point through get-history's pages (no step filter there: the window is applied here)."""
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


def plan_windows(sample: list[Point], rows_per_gap: float, lo: int, hi: int) -> list[Window]:
    """Step windows that partition [lo, hi] with about WINDOW_ROWS points each.

    The server's sample is the first row of each of its equal slices, so between two neighbouring
    sampled points lie `rows_per_gap` rows: every k-th sampled step is a window boundary."""
    k = max(1, WINDOW_ROWS // max(1, math.ceil(rows_per_gap)))  # slices differ by one row at most
    bounds = sorted({p[0] for p in sample[k::k] if lo < p[0] <= hi})
    starts = [lo, *bounds]
    ends = [b - 1 for b in bounds] + [hi]
    return list(zip(starts, ends, strict=False))


class Unsplittable(Exception):
    """More than SAMPLE_SIZE points share one step: windows by step cannot read them whole."""


def read_window(store: Store, run_id: str, key: str, win: Window) -> list[Point]:
    """Every point in one step window; a window the server had to sample is split in two."""
    params = {
        "run_ids": [run_id],
        "metric_key": key,
        "max_results": SAMPLE_SIZE,
        "start_step": win[0],
        "end_step": win[1],
    }
    got = [parse_point(m) for m in store.get(BULK_INTERVAL, params, what=f"metric {key}").get("metrics", []) or []]
    if len(got) < SAMPLE_SIZE:
        return got
    if win[0] == win[1]:
        raise Unsplittable(f"{len(got)}+ points at step {win[0]}")
    mid = win[0] + (win[1] - win[0]) // 2
    return read_window(store, run_id, key, (win[0], mid)) + read_window(store, run_id, key, (mid + 1, win[1]))


def read_windows(store: Store, run_id: str, key: str, windows: list[Window], parallel: bool) -> list[Point]:
    if parallel and len(windows) > 1:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            parts = list(pool.map(lambda w: read_window(store, run_id, key, w), windows))
    else:
        parts = [read_window(store, run_id, key, w) for w in windows]
    return sorted_points([p for part in parts for p in part])


PAGES = "all (get-history pages: more than 2,500 points at one step)"


def rows_per_gap(store: Store, run_id: str, key: str, sample: list[Point]) -> float | None:
    """Rows between two neighbouring points of a full sample, counted from the first step up to
    the next sampled step (one small request; the server's slices differ by one row at most), and
    never less than the step stride implies. None: too many rows at one step for step windows."""
    first = sample[0][0]
    j = next((i for i, p in enumerate(sample) if p[0] > first), len(sample))  # sampled points at `first`
    probe = (first, sample[j][0] - 1 if j < len(sample) else first)
    try:
        counted = max(1.0, len(read_window(store, run_id, key, probe)) / j)
    except Unsplittable:
        return None
    est = estimate_total(sample)
    return max(counted, est / len(sample)) if est else counted


def fetch_exact(
    store, run_id: str, key: str, window: Window | None, sample: list[Point], gap: float | None, parallel: bool
) -> tuple[list[Point], str]:
    """Every point (in the window), read in step windows planned from the server's sample; the
    get-history pages when windows cannot do it. Returns (points, how they were read)."""
    if gap is None:
        return fetch_all(store, run_id, key, window), PAGES
    windows = plan_windows(sample, gap, *(window or (STEP_MIN, STEP_MAX)))
    try:
        points = read_windows(store, run_id, key, windows, parallel)
    except Unsplittable:
        return fetch_all(store, run_id, key, window), PAGES
    return points, f"all ({len(windows)} windowed reads)"


def estimate_total(points: list[Point]) -> int | None:
    """Estimated points in a sampled series: step range / step spacing, when steps are unique.

    The server samples evenly by row; with one point per step, the gaps between sampled steps
    are multiples of the logging stride, so their gcd recovers the stride."""
    steps = [p[0] for p in points]
    if len(steps) < 2 or any(b <= a for a, b in itertools.pairwise(steps)):
        return None
    stride = 0
    for a, b in itertools.pairwise(steps):
        stride = math.gcd(stride, b - a)
    return (steps[-1] - steps[0]) // stride + 1 if stride else None


@dataclass
class Series:
    """One run's points for one metric, and whether they are all of them."""

    run_id: str
    key: str
    points: list[Point]
    exact: bool  # True: these are all the points (in the window)
    method: str  # "sample", "all (...)"
    est_total: int | None = None  # for samples: estimated number of points in the window
    refined: list[str] = field(default_factory=list)  # which extremes were refined around the sample
    stat_points: list[Point] | None = None  # sample plus the points read around its extremes
    windowed: bool = False


def refine_extremes(store: Store, series: Series, window: Window | None) -> None:
    """Read every point between the neighbours of the sample's min and max (two small windowed
    requests), so extremes of smooth curves and wide peaks are exact in value and step."""
    pts = series.points
    finite = [i for i, p in enumerate(pts) if not math.isnan(p[2])]
    if not finite:
        return
    extra: list[Point] = []
    for label, pick in (("min", min), ("max", max)):
        i = pick(finite, key=lambda j: pts[j][2])
        lo, hi = pts[max(0, i - 1)][0], pts[min(len(pts) - 1, i + 1)][0]
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


def load_series(ctx: Context, run_ids: list[str], key: str, window: Window | None, exact: bool) -> list[Series]:
    store, parallel = ctx.store, ctx.settings.is_http
    try:
        samples = fetch_sample(store, run_ids, key, window)
    except NoSamplingEndpoint:
        how = "all (get-history pages: the store has no sampling endpoint)"
        return [
            Series(r, key, fetch_all(store, r, key, window), True, how, windowed=window is not None) for r in run_ids
        ]
    result = []
    for run_id in run_ids:
        pts = samples.get(run_id, [])
        if len(pts) < SAMPLE_SIZE:
            result.append(Series(run_id, key, pts, True, "all (one request)", windowed=window is not None))
            continue
        gap = rows_per_gap(store, run_id, key, pts)
        est = max(estimate_total(pts) or 0, round(gap * len(pts)) if gap else 0) or None
        if exact or (est is not None and est <= AUTO_EXACT):
            whole, how = fetch_exact(store, run_id, key, window, pts, gap, parallel)
            series = Series(run_id, key, whole, True, how if exact else f"{how}; about {est:,} points, read whole")
        else:
            series = Series(run_id, key, pts, False, "sample", est)
            refine_extremes(store, series, window)
        series.windowed = window is not None
        result.append(series)
    return result


def load_all(
    ctx: Context, plan: list[tuple[str, list[str]]], window: Window | None, exact: bool
) -> list[tuple[str, list[Series]]]:
    """[(metric, [Series per run that logged it])], metrics read in parallel on an HTTP server."""
    if ctx.settings.is_http and len(plan) > 1:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [(k, pool.submit(load_series, ctx, rids, k, window, exact)) for k, rids in plan]
            return [(k, f.result()) for k, f in futures]
    return [(k, load_series(ctx, rids, k, window, exact)) for k, rids in plan]


def choose_metrics(
    keys_by_run: dict[str, list[str]], wanted: list[str] | None, full: bool
) -> tuple[list[str], list[str]]:
    """(metrics to show, metrics hidden by the default cap); an unknown name is NotFoundError."""
    all_keys = sorted({k for ks in keys_by_run.values() for k in ks}, key=lambda k: (k.startswith("system/"), k))
    if wanted is None:
        if len(all_keys) > DEFAULT_METRIC_CAP and not full:
            return all_keys[:DEFAULT_METRIC_CAP], all_keys[DEFAULT_METRIC_CAP:]
        return all_keys, []
    for key in wanted:
        if key not in all_keys:
            which = "the run" if len(keys_by_run) == 1 else "any of the runs"
            close = difflib.get_close_matches(key, all_keys, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else ""
            listing = ", ".join(truncate(k, 40) for k in all_keys[:30]) or "(none)"
            more = f" and {len(all_keys) - 30} more" if len(all_keys) > 30 else ""
            raise NotFoundError(f"{which} has no metric {key!r}{hint} (its metrics: {listing}{more})")
    return wanted, []


# ---------------------------------------------------------------------------------------------
# Shaping (pure: no store)
# ---------------------------------------------------------------------------------------------
def point_dict(p: Point | None) -> dict | None:
    if p is None:
        return None
    return {"step": p[0], "timestamp": p[1], "value": json_safe(p[2])}


def series_label(series: Series) -> str:
    pts = series.points
    if series.exact:
        return f"exact: all {len(pts):,} points" + (" in the step window" if series.windowed else "")
    total = f"~{series.est_total:,}" if series.est_total else f"more than {len(pts):,}"
    return f"sampled: {len(pts):,} of {total} points (server-side even sample, first and last kept)"


def summarize(series: Series) -> dict:
    pts = series.points
    finite = [p for p in (series.stat_points or pts) if not math.isnan(p[2])]
    nan_points = [p for p in pts if math.isnan(p[2])]
    lo = min(finite, key=lambda p: p[2]) if finite else None
    hi = max(finite, key=lambda p: p[2]) if finite else None
    stamps = [p[1] for p in pts]
    return {
        "run_id": series.run_id,
        "metric": series.key,
        "exact": series.exact,
        "label": series_label(series),
        "method": series.method,
        "points": len(pts),
        "estimated_total": series.est_total if not series.exact else len(pts),
        "steps": [pts[0][0], pts[-1][0]] if pts else None,
        "time": [min(stamps), max(stamps)] if pts else None,
        "times_vary": bool(pts) and min(stamps) != max(stamps),
        "distinct_times": bool(pts) and all(b[1] > a[1] for a, b in itertools.pairwise(pts)),
        "first": point_dict(pts[0] if pts else None),
        "last": point_dict(pts[-1] if pts else None),
        "min": point_dict(lo),
        "max": point_dict(hi),
        "extremes": "exact" if series.exact else "sample",  # sample: the extremes of the sample
        "constant": bool(finite) and lo[2] == hi[2],
        "nan_count": len(nan_points),
        "nan_steps": [p[0] for p in nan_points[:10]],
        "extremes_refined": list(series.refined),
        "sparkline": sparkline(pts),
    }


def bucket_values(points: list[Point], width: int) -> list[list[float]]:
    """The values of `width` equal step ranges over the points' step range."""
    first, last = points[0][0], points[-1][0]
    span = last - first
    chunks: list[list[float]] = [[] for _ in range(width)]
    for step, _, value in points:
        chunks[min(width - 1, (step - first) * width // span) if span else 0].append(value)
    return chunks


def bucket_extreme(chunk: list[float], centre: float) -> float | None:
    """The chunk's min or max, whichever lies farther from `centre`; NaN for a chunk of NaN only,
    None for an empty chunk."""
    finite = [v for v in chunk if math.isfinite(v)]
    if finite:
        lo, hi = min(finite), max(finite)
        return hi if hi - centre >= centre - lo else lo
    infinite = [v for v in chunk if not math.isnan(v)]
    if infinite:
        return max(infinite, key=abs)
    return math.nan if chunk else None


def sparkline(points: list[Point], width: int = SPARK_WIDTH) -> str:
    """One character per equal step range, at that range's min or max (whichever is farther from
    the median of every finite value): a one-point spike shows. '·' for a range holding only
    NaN, ' ' for one holding no point."""
    if not points:
        return ""
    width = max(1, min(width, len(points), points[-1][0] - points[0][0] + 1))
    finite_all = [p[2] for p in points if math.isfinite(p[2])]
    centre = statistics.median(finite_all) if finite_all else 0.0
    bins = [bucket_extreme(chunk, centre) for chunk in bucket_values(points, width)]
    finite_bins = [v for v in bins if v is not None and math.isfinite(v)]
    lo, hi = (min(finite_bins), max(finite_bins)) if finite_bins else (0.0, 0.0)
    return "".join(spark_char(v, lo, hi) for v in bins)


def spark_char(v: float | None, lo: float, hi: float) -> str:
    if v is None:
        return " "
    if math.isnan(v):
        return "·"
    if math.isinf(v):
        return SPARK_CHARS[-1] if v > 0 else SPARK_CHARS[0]
    if hi == lo:
        return SPARK_CHARS[3]
    return SPARK_CHARS[min(len(SPARK_CHARS) - 1, int((v - lo) / (hi - lo) * len(SPARK_CHARS)))]


def downsample(points: list[Point], limit: int, keep: list[Point | None]) -> list[Point]:
    """At most `limit` points spread evenly over the step range (nearest point to each target
    step), always with the first and last and those in `keep`."""
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


def as_point(d: dict | None) -> Point | None:
    if d is None:
        return None
    return (d["step"], d["timestamp"], math.nan if d["value"] is None else float(d["value"]))


def shown(summ: dict, series: Series, limit: int) -> list[Point]:
    """The table's points: an even spread that always holds first, last, min and max."""
    keep = [as_point(summ["min"]), as_point(summ["max"])]
    pts = series.points
    extra = [p for p in keep if p is not None and p not in set(pts)]  # refined extremes
    if extra:
        pts = sorted_points(pts + extra)
    return downsample(pts, limit, keep)


def grid_steps(series_list: list[Series], steps: list[int], limit: int) -> list[int]:
    """Even targets over the step range, each snapped to the nearest step that every run covering
    it has logged (so cells are real points), else to the nearest logged step."""
    step_sets = [(s.points[0][0], s.points[-1][0], {p[0] for p in s.points}) for s in series_list if s.points]
    first, last = steps[0], steps[-1]
    grid = {first, last}
    for k in range(1, limit - 1):
        target = first + (last - first) * k / (limit - 1)
        covering = [found for lo, hi, found in step_sets if lo <= target <= hi]
        common = sorted(set.intersection(*covering)) if covering else []
        pool = common if common else steps
        i = min(len(pool) - 1, bisect.bisect_left(pool, target))
        if i > 0 and abs(pool[i - 1] - target) <= abs(pool[i] - target):
            i -= 1
        grid.add(pool[i])
    return sorted(grid)


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


# ---------------------------------------------------------------------------------------------
# Rendering: markdown lines
# ---------------------------------------------------------------------------------------------
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


def _val(p: dict) -> float:
    return math.nan if p["value"] is None else p["value"]


def extremes_line(s: dict) -> str:
    if s["min"] is None:
        return "- min/max: none (every value is NaN)"
    if s["constant"] and s["exact"]:
        return f"- constant: {fmt_num(s['min']['value'])} at every non-NaN point"
    lo = f"min {fmt_num(s['min']['value'])} at step {fmt_step(s['min']['step'])}"
    hi = f"max {fmt_num(s['max']['value'])} at step {fmt_step(s['max']['step'])}"
    if s["exact"]:
        return f"- {lo} · {hi}"
    if s["extremes_refined"]:
        how = "refined with every point around them; a spike between other samples can be missed"
    else:
        how = "the true extremes may lie between samples"
    return (
        f"- sample {lo} · sample {hi}: extremes of the {s['points']:,}-point sample, not of the series "
        f"({how}). Exact: `{s['exact_command']}`"
    )


def render_single(s: dict, shown_points: list[Point], full: bool, table: bool = True) -> list[str]:
    lines = [f"### {s['metric']} — {s['label']}"]
    if not s["points"]:
        return lines + ["- no points" + (" in the step window" if s.get("window") else "")]
    ftime = time_formatter([p[1] for p in shown_points] + [s["time"][0], s["time"][1]])
    steps = f"steps {fmt_step(s['steps'][0])} → {fmt_step(s['steps'][1])}"
    if s["times_vary"]:
        steps += f" · time {ftime(s['time'][0])} → {ftime(s['time'][1])} ({fmt_span(s['time'][1] - s['time'][0])})"
    else:
        steps += f" · all logged at {fmt_time(s['time'][0])}"
    lines.append("- " + steps)
    lines.append(
        f"- first {fmt_num(_val(s['first']))} (step {fmt_step(s['first']['step'])})"
        f" · last {fmt_num(_val(s['last']))} (step {fmt_step(s['last']['step'])})"
    )
    lines.append(extremes_line(s))
    if s["nan_count"]:
        more = "…" if s["nan_count"] > len(s["nan_steps"]) else ""
        scope = "" if s["exact"] else " in the sample"
        lines.append(
            f"- NaN: {s['nan_count']:,} point{'s' if s['nan_count'] != 1 else ''}{scope} "
            f"(steps {', '.join(fmt_step(x) for x in s['nan_steps'])}{more}), excluded from min/max"
        )
    lines.append(f"- shape: `{s['sparkline']}`" + ("" if s["exact"] else " (of the sample)"))
    if table:
        lines += ["", *point_table(s, shown_points, full)]
    return lines


def point_table(s: dict, shown_points: list[Point], full: bool) -> list[str]:
    with_time = s["distinct_times"]
    ftime = time_formatter([p[1] for p in shown_points] + [s["time"][0], s["time"][1]])
    headers = ["step", "value"] + (["time"] if with_time else []) + [""]
    rows = [
        [fmt_step(p[0]), fmt_num(p[2])] + ([ftime(p[1])] if with_time else []) + [marks(s, p)] for p in shown_points
    ]
    lines = [md_table(headers, rows)]
    if not full and len(shown_points) < s["points"]:
        lines.append(f"({len(shown_points)} of {s['points']:,} {'sampled ' if not s['exact'] else ''}points shown)")
    return lines


def marks(s: dict, p: Point) -> str:
    out = []
    for name in ("first", "last", "min", "max"):
        ref = s[name]
        if (
            ref
            and ref["step"] == p[0]
            and ref["timestamp"] == p[1]
            and (ref["value"] == p[2] or (ref["value"] is None and math.isnan(p[2])))
        ):
            out.append(name if s["exact"] or name in ("first", "last") else f"sample {name}")
    if math.isnan(p[2]):
        out.append("NaN")
    return " ".join(out)


def summary_line(s: dict, name: str) -> str:
    if not s["points"]:
        return f"- **{name}**: no points"
    parts = [
        f"- **{name}**: {s['label']}",
        f"steps {fmt_step(s['steps'][0])}→{fmt_step(s['steps'][1])}",
        f"first {fmt_num(_val(s['first']))} · last {fmt_num(_val(s['last']))}",
    ]
    if s["min"]:
        tag = "" if s["exact"] else "sample "
        parts.append(
            f"{tag}min {fmt_num(s['min']['value'])} @{fmt_step(s['min']['step'])} · "
            f"{tag}max {fmt_num(s['max']['value'])} @{fmt_step(s['max']['step'])}"
        )
    if s["nan_count"]:
        parts.append(f"NaN {s['nan_count']:,}")
    parts.append(f"`{s['sparkline']}`")
    return "; ".join(parts)


@dataclass
class Shaped:
    """Everything the renderers need, computed once."""

    runs: dict[str, dict]
    names: dict[str, str]
    results: list[tuple[str, list[Series]]]
    summaries: list[dict]
    series: dict[tuple[str, str], Series]  # (run_id, metric) -> Series
    limit: int
    window: Window | None
    hidden: list[str]
    args: Any
    experiment: str = ""

    @property
    def table_points(self) -> bool:
        return not self.args.output

    def points_for(self, summ: dict) -> list[Point]:
        s = self.series[(summ["run_id"], summ["metric"])]
        if self.args.output:
            return []
        return s.points if self.args.full else shown(summ, s, self.limit)


def md_single_run(sh: Shaped) -> list[str]:
    run_id = next(iter(sh.runs))
    window_text = f" · steps {fmt_window(sh.window)}" if sh.window else ""
    lines = [f"## Run **{sh.names[run_id]}** ({run_id}), experiment {sh.experiment}{window_text}"]
    for summ in sh.summaries:
        lines.append("")
        lines.extend(
            render_single(summ, sh.points_for(summ), sh.args.full and not sh.args.output, table=sh.table_points)
        )
    return lines


def md_several_runs(sh: Shaped) -> list[str]:
    window_text = f" · steps {fmt_window(sh.window)}" if sh.window else ""
    lines = ["## Runs " + ", ".join(f"**{sh.names[r]}** ({r[:8]})" for r in sh.runs) + window_text]
    for key, series_list in sh.results:
        summs = [s for s in sh.summaries if s["metric"] == key]
        kinds = {summ["exact"] for summ in summs}
        kind = (
            "exact"
            if kinds == {True}
            else ("sampled" if kinds == {False} else "exact for some runs, sampled for others")
        )
        lines += ["", f"### {key} ({kind}; per-run detail below)"]
        steps, rows, approx = aligned_rows(series_list, 10**9 if sh.args.full else sh.limit)
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
        lines += [summary_line(summ, sh.names[summ["run_id"]]) for summ in summs]
        logged = {s.run_id for s in series_list}
        lines += [f"- **{sh.names[r]}**: metric not logged in this run" for r in sh.runs if r not in logged]
        if "sample" in {summ["extremes"] for summ in summs}:
            lines.append(f"Sample extremes are not the series' extremes; exact: `{summs[0]['exact_command']}`")
    return lines


def md_footer(sh: Shaped, plot: str | None) -> list[str]:
    lines = [""]
    args, summaries = sh.args, sh.summaries
    if args.output:
        lines.append(f"Wrote every point ({sum(s['points'] for s in summaries):,} rows) to {args.output}")
    if plot:
        lines.append(f"Plot: {plot}")
    if sh.hidden:
        lines.append(
            f"{len(sh.hidden)} more metrics not shown: {', '.join(truncate(h, 30) for h in sh.hidden[:15])}"
            f"{'…' if len(sh.hidden) > 15 else ''} (pass --metrics NAME,...)"
        )
    if not args.full and any(not s["exact"] for s in summaries):
        lines.append("Exact figures: add --exact (reads every point); every point: --full --output FILE.csv")
    elif not args.full and any(s["points"] > sh.limit for s in summaries):
        lines.append("Every point: add --full (or --full --output FILE.csv); more rows: --max-points N")
    return lines


def fmt_window(window: Window) -> str:
    lo = "" if window[0] == STEP_MIN else str(window[0])
    hi = "" if window[1] == STEP_MAX else str(window[1])
    return f"{lo}:{hi}"


# ---------------------------------------------------------------------------------------------
# The view: JSON data, CSV rows, markdown lines
# ---------------------------------------------------------------------------------------------
SUMMARY_FIELDS = [
    "run_id",
    "run_name",
    "metric",
    "exact",
    "label",
    "points",
    "first",
    "last",
    "min",
    "max",
    "extremes",
    "nan_count",
]
POINT_FIELDS = ["run_id", "run_name", "metric", "step", "timestamp", "value"]


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict):
        return f"{value.get('value')}@{value.get('step')}"
    return value


def csv_table(sh: Shaped) -> Table:
    """CSV: the points shown (every point with --full); with --output, one summary row per series.
    The markdown tables are per metric and live in the view's lines, so rows stay empty."""
    if sh.args.output:
        raw = [[_csv_cell(summ.get(f)) for f in SUMMARY_FIELDS] for summ in sh.summaries]
        return Table(SUMMARY_FIELDS, [], raw=raw)
    raw = []
    for summ in sh.summaries:
        s = sh.series[(summ["run_id"], summ["metric"])]
        pts = s.points if sh.args.full else shown(summ, s, sh.limit)
        raw += [[s.run_id, summ["run_name"], s.key, p[0], p[1], "" if math.isnan(p[2]) else repr(p[2])] for p in pts]
    return Table(POINT_FIELDS, [], raw=raw)


def json_data(sh: Shaped, store_uri: str, plot: str | None) -> dict:
    series = []
    for summ in sh.summaries:
        series.append({**summ, "shown_points": [point_dict(p) for p in sh.points_for(summ)]})
    return json_safe(
        {
            "store": store_uri,
            "window": list(sh.window) if sh.window else None,
            "output": sh.args.output,
            "plot": plot,
            "hidden_metrics": sh.hidden,
            "series": series,
        }
    )


def build_view(ctx: Context, sh: Shaped, plot: str | None) -> View:
    body = md_single_run(sh) if len(sh.runs) == 1 else md_several_runs(sh)
    return View(
        data=json_data(sh, ctx.settings.display_uri, plot),
        lines=body,
        table=csv_table(sh),
        after=md_footer(sh, plot),
    )


def exact_command(ctx: Context, run_ids: list[str], key: str, window: Window | None) -> str:
    args = ["uv", "run", f"scripts/{SCRIPT}", "--run-id", *run_ids, "--metrics", key, "--exact"]
    if window:
        args.append(f"--steps={fmt_window(window)}")
    if getattr(ctx.args, "tracking_uri", None):
        args += ["--tracking-uri", uri_without_secrets(ctx.args.tracking_uri)]
    return shlex.join(args)


def shape(ctx: Context, runs: dict, results, window: Window | None, hidden: list[str]) -> Shaped:
    args = ctx.args
    several = len(results) > 1 or len(runs) > 1
    limit = args.max_points or (DEFAULT_POINTS_SEVERAL if several else DEFAULT_POINTS_ONE)
    summaries, by_key = [], {}
    for key, series_list in results:
        sampled_ids = [s.run_id for s in series_list if not s.exact]
        for s in series_list:
            summ = summarize(s)
            summ["run_name"] = lookups.run_name(runs[s.run_id])
            summ["window"] = list(window) if window else None
            summ["exact_command"] = exact_command(ctx, sampled_ids, key, window) if sampled_ids else None
            summaries.append(summ)
            by_key[(s.run_id, key)] = s
    return Shaped(runs, run_labels(runs), results, summaries, by_key, limit, window, hidden, args)


# ---------------------------------------------------------------------------------------------
# Files: --output and --plot
# ---------------------------------------------------------------------------------------------
def write_points(path: str, sh: Shaped, force: bool) -> None:
    target = Path(path)
    pairs = [(summ, sh.series[(summ["run_id"], summ["metric"])]) for summ in sh.summaries]
    if target.suffix.lower() == ".json":
        entries = [
            {
                "run_id": summ["run_id"],
                "run_name": summ["run_name"],
                "metric": summ["metric"],
                "points": [{"step": p[0], "timestamp": p[1], "value": p[2]} for p in s.points],
            }
            for summ, s in pairs
        ]
        data = to_json(json_safe(entries))
    else:
        rows = (
            [summ["run_id"], summ["run_name"], summ["metric"], p[0], p[1], "NaN" if math.isnan(p[2]) else repr(p[2])]
            for summ, s in pairs
            for p in s.points
        )
        data = to_csv(POINT_FIELDS, rows)
    write_atomic(target, data, force=force)


def plot_png(path: str, sh: Shaped, force: bool) -> str:
    """One panel per metric, every run overlaid, min and max marked and labelled exact or sample.
    The labels are also in the PNG's Description text chunk. matplotlib is imported here only."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [key for key, series_list in sh.results if series_list]
    fig, axes = plt.subplots(max(1, len(keys)), 1, figsize=(10, 3.2 * max(1, len(keys))), squeeze=False)
    labels: list[str] = []
    for ax, key in zip(axes[:, 0], keys, strict=False):
        labels += plot_metric(ax, key, [summ for summ in sh.summaries if summ["metric"] == key], sh)
    if not keys:
        axes[0, 0].text(0.5, 0.5, "no points", ha="center", va="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Title": f"{SCRIPT} --plot", "Description": "\n".join(labels)})
    plt.close(fig)
    return str(write_atomic(path, buf.getvalue(), force=force).resolve())


def extreme_label(summ: dict, which: str, run_name: str) -> str | None:
    """'max 9.5 @31,337 (exact)' or 'sample max 2.1 @0 (of 2,500 sampled points)'."""
    p = summ[which]
    if p is None or p["value"] is None:
        return None
    if summ["extremes"] == "exact":
        return f"{run_name}: {which} {fmt_num(p['value'])} @{fmt_step(p['step'])} (exact)"
    return f"{run_name}: sample {which} {fmt_num(p['value'])} @{fmt_step(p['step'])} (of {summ['points']:,} sampled points)"


def plot_metric(ax, key: str, summs: list[dict], sh: Shaped) -> list[str]:
    kinds, labels = set(), []
    steps = [p[0] for summ in summs for p in sh.series[(summ["run_id"], key)].points]
    mid = (min(steps) + max(steps)) / 2 if steps else 0
    ax.margins(x=0.03, y=0.15)
    for summ in summs:
        s = sh.series[(summ["run_id"], key)]
        kinds.add("exact" if s.exact else "sampled")
        name = sh.names[s.run_id]
        color = ax.plot([p[0] for p in s.points], [p[2] for p in s.points], lw=1, label=name)[0].get_color()
        for which, marker, dy in (("min", "v", -12), ("max", "^", 6)):
            text = extreme_label(summ, which, name)
            if text is None:
                continue
            p = summ[which]
            ax.plot([p["step"]], [p["value"]], marker=marker, color=color, ms=8, ls="none")
            right = p["step"] > mid  # labels point inwards, so none runs off the panel
            ax.annotate(
                text.split(": ", 1)[1],
                (p["step"], p["value"]),
                textcoords="offset points",
                xytext=(-6 if right else 6, dy),
                ha="right" if right else "left",
                fontsize=8,
                color=color,
            )
            labels.append(f"{key}: {text}")
    ax.set_title(f"{key} ({' / '.join(sorted(kinds))})", fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(summs) > 1:
        ax.legend(fontsize=8)
    return labels


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------
def run_labels(runs: dict[str, dict]) -> dict[str, str]:
    names = {r: lookups.run_name(run) or r[:8] for r, run in runs.items()}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {r: (f"{n} ({r[:6]})" if counts[n] > 1 else n) for r, n in names.items()}


def experiment_label(store: Store, experiment_id: str | None) -> str:
    """'name (id)': names before ids; the id alone if the look-up fails."""
    try:
        name = store.get(f"{lookups.API}/experiments/get", {"experiment_id": experiment_id})["experiment"]["name"]
    except SkillError:
        return str(experiment_id)
    return f"**{name}** ({experiment_id})"


def command(ctx: Context) -> int:
    args = ctx.args
    window, wanted, run_ids = check_args(args)
    runs = {r: lookups.get_run(ctx.store, r) for r in run_ids}  # fetch
    keys_by_run = {r: sorted(lookups.run_metrics(run)) for r, run in runs.items()}
    metrics, hidden = choose_metrics(keys_by_run, wanted, args.full)
    plan = [(k, [r for r in run_ids if k in keys_by_run[r]]) for k in metrics]
    results = load_all(ctx, plan, window, args.exact or args.full)
    sh = shape(ctx, runs, results, window, hidden)  # shape
    if len(runs) == 1:
        sh.experiment = experiment_label(ctx.store, runs[run_ids[0]]["info"].get("experiment_id"))
    if args.output:
        write_points(args.output, sh, args.force)
    plot = plot_png(args.plot, sh, args.force) if args.plot else None
    ctx.emit(build_view(ctx, sh, plot))  # render
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
