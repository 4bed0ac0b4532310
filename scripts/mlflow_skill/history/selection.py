"""Which points the tables show: an even spread over the step range that always keeps the first,
last, min and max point; for several runs side by side, one grid of steps they share."""

from __future__ import annotations

import bisect

from mlflow_skill.history.series import Point, Series, sorted_points
from mlflow_skill.history.summary import Summary, as_point


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


def shown(summ: Summary, series: Series, limit: int) -> list[Point]:
    """The table's points: an even spread that always holds first, last, min and max."""
    keep = [as_point(summ.min), as_point(summ.max)]
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
