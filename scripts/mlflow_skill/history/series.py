"""The data every step works on: a point, a step window, and one run's series of one metric."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Point = tuple[int, int, float]  # (step, timestamp ms, value)
Window = tuple[int, int]  # inclusive step range
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1


def sorted_points(points: list[Point]) -> list[Point]:
    # NaN sorts unpredictably; order by step, then timestamp, with the value as a stable last key.
    return sorted(points, key=lambda p: (p[0], p[1], -math.inf if math.isnan(p[2]) else p[2]))


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
