"""The honest figures of one series: counts, step and time range, first and last, min and max,
NaN count, sparkline. Of a sample, the extremes are the sample's and say so (extremes "sample")."""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

from mlflow_skill.core.formatting import json_safe
from mlflow_skill.history.series import Point, Series, Window
from mlflow_skill.history.sparkline import sparkline

PointDict = dict  # {"step", "timestamp", "value"}: a point as the JSON shows it, NaN and inf as None


@dataclass
class Summary:
    """One run's series of one metric, summarised; the fields in the JSON's key order."""

    run_id: str
    metric: str
    exact: bool
    label: str  # "exact: all N points" or "sampled: N of ~M points (...)"
    method: str  # how the points were read
    points: int
    estimated_total: int | None
    steps: list[int] | None  # [first, last]
    time: list[int] | None  # [earliest, latest] timestamp
    times_vary: bool
    distinct_times: bool  # every point has a later timestamp than the one before (e.g. bars)
    first: PointDict | None
    last: PointDict | None
    min: PointDict | None  # over the points read, refined ones included; NaN excluded
    max: PointDict | None
    extremes: str  # "exact", or "sample": the extremes of the sample
    constant: bool
    nan_count: int
    nan_steps: list[int]  # the first ten
    extremes_refined: list[str]
    sparkline: str
    run_name: str
    window: list[int] | None
    exact_command: str | None  # for sampled series: the command that reads them whole

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def point_dict(p: Point | None) -> PointDict | None:
    if p is None:
        return None
    return {"step": p[0], "timestamp": p[1], "value": json_safe(p[2])}


def as_point(d: PointDict | None) -> Point | None:
    if d is None:
        return None
    return (d["step"], d["timestamp"], math.nan if d["value"] is None else float(d["value"]))


def series_label(series: Series) -> str:
    pts = series.points
    if series.exact:
        return f"exact: all {len(pts):,} points" + (" in the step window" if series.windowed else "")
    total = f"~{series.est_total:,}" if series.est_total else f"more than {len(pts):,}"
    return f"sampled: {len(pts):,} of {total} points (server-side even sample, first and last kept)"


def summarize(series: Series, run_name: str, window: Window | None, exact_command: str | None) -> Summary:
    pts = series.points
    finite = [p for p in (series.stat_points or pts) if not math.isnan(p[2])]
    nan_points = [p for p in pts if math.isnan(p[2])]
    lo = min(finite, key=lambda p: p[2]) if finite else None
    hi = max(finite, key=lambda p: p[2]) if finite else None
    stamps = [p[1] for p in pts]
    return Summary(
        run_id=series.run_id,
        metric=series.key,
        exact=series.exact,
        label=series_label(series),
        method=series.method,
        points=len(pts),
        estimated_total=series.est_total if not series.exact else len(pts),
        steps=[pts[0][0], pts[-1][0]] if pts else None,
        time=[min(stamps), max(stamps)] if pts else None,
        times_vary=bool(pts) and min(stamps) != max(stamps),
        distinct_times=bool(pts) and all(b[1] > a[1] for a, b in itertools.pairwise(pts)),
        first=point_dict(pts[0] if pts else None),
        last=point_dict(pts[-1] if pts else None),
        min=point_dict(lo),
        max=point_dict(hi),
        extremes="exact" if series.exact else "sample",
        constant=bool(finite) and lo[2] == hi[2],
        nan_count=len(nan_points),
        nan_steps=[p[0] for p in nan_points[:10]],
        extremes_refined=list(series.refined),
        sparkline=sparkline(pts),
        run_name=run_name,
        window=list(window) if window else None,
        exact_command=exact_command,
    )
