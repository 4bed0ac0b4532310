"""get_metric_history.py's pure parts, no server: step windows (--steps), the sparkline (min/max
per slice, so spikes show), the table's downsampling, the plan of windowed reads, the size estimate.
Expected values are computed here with numpy or by brute force, not taken from the script."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from mlflow_skill.core.errors import UsageError
from mlflow_skill.history.load import SAMPLE_SIZE, WINDOW_ROWS, estimate_total, plan_windows
from mlflow_skill.history.request import parse_steps
from mlflow_skill.history.selection import downsample
from mlflow_skill.history.series import STEP_MAX, STEP_MIN
from mlflow_skill.history.sparkline import SPARK_WIDTH, sparkline


# --- --steps ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("1000:5000", (1000, 5000)),
        (" 10 : 20 ", (10, 20)),
        ("1000:", (1000, 2**63 - 1)),
        (":5000", (-(2**63), 5000)),
        ("-5:-1", (-5, -1)),
        ("7:7", (7, 7)),
        (None, None),
        ("", None),
    ],
)
def test_parse_steps_forms(text, expected):
    assert parse_steps(text) == expected


@pytest.mark.parametrize(
    "text, needle",
    [
        ("x:y", "START:END"),
        ("9:1", "greater"),
        (":", "START:END"),
        ("1：5", "START:END"),
        ("99999999999999999999:", "64-bit"),
        ("5", "START:END"),
    ],
)
def test_parse_steps_errors_name_the_fix(text, needle):
    with pytest.raises(UsageError) as err:
        parse_steps(text)
    assert needle in str(err.value) and "--steps" in str(err.value)


# --- sparkline --------------------------------------------------------------------------------
N, SPIKE_STEP, SPIKE = 50_000, 31_337, 9.5


def spike_series(sign: float = 1.0) -> list[tuple[int, int, float]]:
    values = 2.1 * np.exp(-np.arange(N) / 10_000) + 0.01
    values[SPIKE_STEP] = SPIKE if sign > 0 else -SPIKE
    return [(i, 1_700_000_000_000 + i, float(v)) for i, v in enumerate(values)]


def slice_of(step: int, first: int, last: int, width: int) -> int:
    return min(width - 1, (step - first) * width // (last - first))


def test_sparkline_keeps_a_one_point_spike():
    pts = spike_series()
    spark = sparkline(pts)
    assert len(spark) == SPARK_WIDTH
    where = slice_of(SPIKE_STEP, 0, N - 1, SPARK_WIDTH)
    assert spark.count("█") == 1 and spark.index("█") == where
    # The old rule (mean per slice) could not show it: the spike's slice mean is below the first slice's.
    values = np.array([p[2] for p in pts])
    slices = np.array([slice_of(i, 0, N - 1, SPARK_WIDTH) for i in range(N)])
    means = np.array([values[slices == k].mean() for k in range(SPARK_WIDTH)])
    assert means.argmax() != where


def test_sparkline_keeps_a_downward_spike():
    pts = spike_series(sign=-1.0)
    spark = sparkline(pts)
    where = slice_of(SPIKE_STEP, 0, N - 1, SPARK_WIDTH)
    assert spark.count("▁") == 1 and spark.index("▁") == where


def test_sparkline_nan_empty_constant_and_inf():
    nan_only = [(i, 0, math.nan) for i in range(10)] + [(i, 0, float(i)) for i in range(10, 20)]
    spark = sparkline(nan_only, width=4)
    assert spark[:2] == "··" and "·" not in spark[2:]
    gappy = [(0, 0, 1.0), (1, 0, 2.0), (98, 0, 3.0), (99, 0, 4.0)]
    assert " " in sparkline(gappy, width=4) or len(sparkline(gappy, width=4)) == 4
    assert set(sparkline([(i, 0, 0.25) for i in range(30)], width=10)) == {"▄"}
    inf = sparkline([(0, 0, 1.0), (1, 0, math.inf), (2, 0, 2.0)], width=3)
    assert inf[1] == "█"
    assert sparkline([]) == ""


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=400), hs.integers(1, 60))
def test_sparkline_global_extremes_drawn_at_the_ends(values, width):
    """The series' largest value is in some slice; that slice is drawn at its max when the max is
    farther from the median than the slice's min, and then it is the top character."""
    pts = [(i, 0, v) for i, v in enumerate(values)]
    spark = sparkline(pts, width)
    assert len(spark) == max(1, min(width, len(pts)))
    med = float(np.median(values))
    hi = max(values)
    w = len(spark)
    k = slice_of(values.index(hi), 0, len(values) - 1, w) if w > 1 else 0
    in_slice = [v for i, v in enumerate(values) if (slice_of(i, 0, len(values) - 1, w) if w > 1 else 0) == k]
    if w > 1 and values.count(hi) == 1 and hi - med >= med - min(in_slice):
        assert spark[k] == "█"


# --- downsampling for the table ---------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(hs.lists(hs.integers(-1000, 1000), min_size=1, max_size=300, unique=True), hs.integers(2, 60), hs.data())
def test_downsample_bounds_and_keeps(steps, limit, data):
    pts = [(s, s * 10, float(s % 17)) for s in sorted(steps)]
    keep = data.draw(hs.lists(hs.sampled_from(pts), max_size=2))
    out = downsample(pts, limit, keep)
    assert out == sorted(out) and set(out) <= set(pts)
    if len(pts) <= limit:
        assert out == pts
    else:
        assert len(out) <= max(limit, 2 + len(set(keep)))
        assert pts[0] in out and pts[-1] in out and all(k in out for k in keep)


# --- the plan of windowed reads ---------------------------------------------------------------
def ntile_sample(steps: list[int], n_slices: int = 2500) -> list[tuple[int, int, float]]:
    """What MLflow's SQL store returns: the first row of each of n_slices equal slices (NTILE), plus
    the last row (replacing the last sampled one when the sample is full)."""
    rows = [(s, 0, 0.0) for s in steps]
    if len(rows) <= n_slices:
        return rows
    firsts = [chunk[0] for chunk in np.array_split(np.arange(len(rows)), n_slices)]
    sample = [rows[i] for i in firsts]
    if sample[-1] != rows[-1]:
        sample[-1] = rows[-1]
    return sample


@settings(max_examples=30, deadline=None)
@given(hs.integers(2_501, 300_000), hs.integers(1, 7), hs.integers(-1000, 1000))
def test_plan_windows_partition_and_fit(n, stride, offset):
    steps = [offset + i * stride for i in range(n)]
    sample = ntile_sample(steps)
    est = estimate_total(sample)
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(sample)}
    if len(gaps) > 1:
        assert est == n  # one point per step, regular stride: the estimate is exact
    else:  # evenly spaced: a series of len(sample) points gives this very sample, so the stride
        assert est == len(sample)  # cannot tell; rows_per_gap's probe counts the rows instead
    counted = sum(1 for step in steps if sample[0][0] <= step < sample[1][0])  # what that probe reads
    windows = plan_windows(sample, max(counted, est / len(sample)), STEP_MIN, STEP_MAX)
    assert windows[0][0] == STEP_MIN and windows[-1][1] == STEP_MAX
    assert all(a <= b for a, b in windows)
    assert all(b + 1 == a2 for (_, b), (a2, _) in itertools.pairwise(windows))  # no gap, no overlap
    arr = np.array(steps)
    counts = [int(((arr >= a) & (arr <= b)).sum()) for a, b in windows]
    assert sum(counts) == n
    assert max(counts) < SAMPLE_SIZE  # no window has to be split: one request each
    assert len(windows) <= math.ceil(n / (WINDOW_ROWS / 2)) + 1


def test_plan_windows_inside_a_step_window():
    sample = ntile_sample(list(range(1000, 101_000)))
    windows = plan_windows(sample, 40, 1000, 100_999)
    assert windows[0][0] == 1000 and windows[-1][1] == 100_999


def test_estimate_total_needs_unique_steps():
    assert estimate_total([(0, 0, 1.0), (0, 1, 1.0), (5, 2, 1.0)]) is None
    assert estimate_total([(0, 0, 1.0), (10, 0, 1.0), (25, 0, 1.0)]) == 6  # stride 5


def test_evenly_spaced_sample_of_a_longer_series_is_planned_from_the_probe():
    """7,498 points at stride 1 sample to steps 0, 3, 6, ..., 7497: the same sample as 2,500 points
    at stride 3. The estimate says 2,500; the probe's count (3 rows a gap) plans windows that fit."""
    steps = list(range(7498))
    sample = ntile_sample(steps)
    assert estimate_total(sample) == 2500
    counted = sum(1 for step in steps if sample[0][0] <= step < sample[1][0])
    windows = plan_windows(sample, max(counted, 1.0), STEP_MIN, STEP_MAX)
    arr = np.array(steps)
    assert max(int(((arr >= a) & (arr <= b)).sum()) for a, b in windows) < SAMPLE_SIZE
