"""The sparkline: one character per equal slice of the step range, drawn at the slice's min or
max (whichever lies farther from the series' median), so a one-point spike shows."""

from __future__ import annotations

import math
import statistics

from mlflow_skill.history.series import Point

SPARK_WIDTH = 48
SPARK_CHARS = "▁▂▃▄▅▆▇█"


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
    # Halves first: near ±1.8e308, hi - lo (and v - lo) overflow to inf, and inf / inf is NaN.
    fraction = (v / 2 - lo / 2) / (hi / 2 - lo / 2)
    return SPARK_CHARS[max(0, min(len(SPARK_CHARS) - 1, int(fraction * len(SPARK_CHARS))))]
