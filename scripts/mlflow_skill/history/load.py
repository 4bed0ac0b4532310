"""Loading a metric's series from the store, fetch only (no shaping).

The default asks get-history-bulk-interval for the server's even sample of at most SAMPLE_SIZE
points per run (the first row of each of 2,500 equal slices, plus the last row). A series that
fits comes back whole; one estimated at most AUTO_EXACT points long, or any with --exact, is
then read whole in step windows planned from that sample; a longer one stays a sample whose
min and max are refined by reading every point around them. Stores without the endpoint, and
series with more than SAMPLE_SIZE points at one step, are read through get-history's pages."""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.core.errors import NotFoundError, SkillError
from mlflow_skill.core.values import to_float
from mlflow_skill.history.series import STEP_MAX, STEP_MIN, Point, Series, Window, sorted_points
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

BULK_INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
HISTORY = f"{lookups.API}/metrics/get-history"
SAMPLE_SIZE = 2500  # the server's maximum per run (MAX_RESULTS_PER_RUN)
MAX_RUNS_PER_CALL = 100  # the server's maximum run_ids per bulk-interval call
HISTORY_PAGE = 25000  # what MlflowClient uses for get-history pages
WINDOW_ROWS = 2000  # planned points per windowed read (a window returning SAMPLE_SIZE is split)
AUTO_EXACT = 50_000  # a sampled series estimated at most this long is read whole (about 1 s)
WORKERS = 4  # parallel requests to an HTTP server
PAGES = "all (get-history pages: more than 2,500 points at one step)"


def parse_point(m: dict) -> Point:
    return int(m.get("step", 0) or 0), int(m.get("timestamp", 0) or 0), to_float(m.get("value"))


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
    guard = lookups.PageGuard(store, HISTORY)  # a server whose pages never end: exit 6
    while True:
        page = store.get(HISTORY, params, what=f"metric {key}")
        items = page.get("metrics", []) or []
        points.extend(parse_point(m) for m in items)
        token = page.get("next_page_token")
        guard.check(items, token, HISTORY_PAGE)
        if not token:
            break
        params["page_token"] = token
    if window:
        points = [p for p in points if window[0] <= p[0] <= window[1]]
    return sorted_points(points)


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
    store: Store, run_id: str, key: str, window: Window | None, sample: list[Point], gap: float | None, parallel: bool
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


def refine_extremes(
    store: Store, run_id: str, key: str, sample: list[Point], window: Window | None
) -> tuple[list[str], list[Point] | None]:
    """Read every point between the neighbours of the sample's min and max (two small windowed
    requests), so extremes of smooth curves and wide peaks are exact in value and step.
    Returns (which extremes were refined, the sample merged with the points read or None)."""
    finite = [i for i, p in enumerate(sample) if not math.isnan(p[2])]
    if not finite:
        return [], None
    extra: list[Point] = []
    refined: list[str] = []
    for label, pick in (("min", min), ("max", max)):
        i = pick(finite, key=lambda j: sample[j][2])
        lo, hi = sample[max(0, i - 1)][0], sample[min(len(sample) - 1, i + 1)][0]
        if window:
            lo, hi = max(lo, window[0]), min(hi, window[1])
        if lo > hi:
            continue
        got = fetch_sample(store, [run_id], key, (lo, hi)).get(run_id, [])
        extra.extend(got)
        refined.append(label if len(got) < SAMPLE_SIZE else f"{label} (partly)")
    if not extra:
        return refined, None
    merged = {(p[0], p[1], repr(p[2])): p for p in sample + extra}
    return refined, sorted_points(list(merged.values()))


def load_series(ctx: Context, run_ids: list[str], key: str, window: Window | None, exact: bool) -> list[Series]:
    """Each run's series of `key`, from one sampling request for all of them."""
    store = ctx.store
    try:
        samples = fetch_sample(store, run_ids, key, window)
    except NoSamplingEndpoint:
        how = "all (get-history pages: the store has no sampling endpoint)"
        windowed = window is not None
        return [Series(r, key, fetch_all(store, r, key, window), True, how, windowed=windowed) for r in run_ids]
    return [complete(ctx, run_id, key, window, samples.get(run_id, []), exact) for run_id in run_ids]


def complete(ctx: Context, run_id: str, key: str, window: Window | None, sample: list[Point], exact: bool) -> Series:
    """One run's series from the server's sample: the sample is the whole series when it is not
    full; a full one is read whole with --exact or when short enough, else kept as a sample with
    its extremes refined."""
    store, windowed = ctx.store, window is not None
    if len(sample) < SAMPLE_SIZE:
        return Series(run_id, key, sample, True, "all (one request)", windowed=windowed)
    gap = rows_per_gap(store, run_id, key, sample)
    est = max(estimate_total(sample) or 0, round(gap * len(sample)) if gap else 0) or None
    if exact or (est is not None and est <= AUTO_EXACT):
        whole, how = fetch_exact(store, run_id, key, window, sample, gap, ctx.settings.is_http)
        method = how if exact else f"{how}; about {est:,} points, read whole"
        return Series(run_id, key, whole, True, method, windowed=windowed)
    refined, stat_points = refine_extremes(store, run_id, key, sample, window)
    return Series(run_id, key, sample, False, "sample", est, refined, stat_points, windowed)


def load_all(
    ctx: Context, plan: list[tuple[str, list[str]]], window: Window | None, exact: bool
) -> list[tuple[str, list[Series]]]:
    """[(metric, [Series per run that logged it])], metrics read in parallel on an HTTP server."""
    if ctx.settings.is_http and len(plan) > 1:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [(k, pool.submit(load_series, ctx, rids, k, window, exact)) for k, rids in plan]
            return [(k, f.result()) for k, f in futures]
    return [(k, load_series(ctx, rids, k, window, exact)) for k, rids in plan]


def experiment_label(store: Store, experiment_id: str | None) -> str:
    """'name (id)': names before ids; the id alone if the look-up fails."""
    try:
        name = store.get(f"{lookups.API}/experiments/get", {"experiment_id": experiment_id})["experiment"]["name"]
    except SkillError:
        return str(experiment_id)
    return f"**{name}** ({experiment_id})"
