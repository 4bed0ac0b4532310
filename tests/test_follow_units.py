"""--follow's pure parts, no server: the running figures of a Track (fed in random chunks, as
polls feed them), the divergence check (the very function `health` uses, on three numbers
instead of the series: the same verdict), the plateau, NaN once per metric, the trend.
Expected values are computed here by brute force over the whole series."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as hs

from mlflow_skill.history.anomalies import Rules, Track, check_points, trend
from mlflow_skill.history.livereads import batches
from mlflow_skill.history.series import STEP_MIN
from mlflow_skill.runs import health

RULES = Rules(every_s=1, stall_ms=60_000, patience=None, diverge=1.0, deadline_ms=None, fail_on_anomaly=False)
values = hs.lists(
    hs.one_of(hs.floats(-1e6, 1e6, allow_nan=False), hs.just(math.nan), hs.just(math.inf)), min_size=1, max_size=60
)


def fed(series: list[float], cuts: list[int], metric: str = "loss") -> tuple[Track, list]:
    """A Track fed the series in chunks cut at `cuts`, and the anomalies each chunk raised."""
    track = Track.new("r", metric)
    points = [(step, 1000 + step, v) for step, v in enumerate(series)]
    bounds = sorted({0, len(points), *(c % (len(points) + 1) for c in cuts)})
    found = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        track.add(points[lo:hi])
        found += check_points(track, points[lo:hi], RULES, "run")
    return track, found


@settings(max_examples=200, deadline=None)
@given(values, hs.lists(hs.integers(0, 60), max_size=5))
def test_running_figures_match_the_whole_series(series, cuts):
    track, found = fed(series, cuts)
    finite = [(s, v) for s, v in enumerate(series) if math.isfinite(v)]
    assert track.points == len(series) and track.last[0] == len(series) - 1
    assert track.non_finite == len(series) - len(finite)
    if finite:
        assert track.first == finite[0]
        assert track.low == min(finite, key=lambda sv: sv[1])  # the first occurrence of the minimum
        assert track.best == track.low  # a loss: lower is better
    kinds = [a.kind for a in found]
    assert kinds.count("non_finite") == (1 if len(finite) < len(series) else 0)  # named once
    assert kinds.count("diverging") <= 1


@settings(max_examples=300, deadline=None)
@given(values)
def test_divergence_is_healths_verdict_on_the_whole_series(series):
    """Fed in one go, the follow names divergence exactly when `health.divergence` does on the
    whole series (health reads up to 200 points; these series are shorter)."""
    _, found = fed(series, [])
    points = list(enumerate(series))
    expected = health.divergence(points, RULES.diverge)
    assert any(a.kind == "diverging" for a in found) == (expected is not None)
    if expected:
        (a,) = [a for a in found if a.kind == "diverging"]
        assert (a.step, a.value) == (expected["last_step"], expected["last"])


def test_plateau_after_patience_steps_without_a_better_value():
    rules = Rules(every_s=1, stall_ms=60_000, patience=5, diverge=1.0, deadline_ms=None, fail_on_anomaly=False)
    track = Track.new("r", "val_accuracy")  # higher is better
    assert track.higher
    points = [(s, 0, v) for s, v in enumerate([0.5, 0.7, 0.9, 0.8, 0.85, 0.9, 0.89])]
    track.add(points)
    assert check_points(track, points, rules, "run") == []  # best at step 2, now step 6: 4 steps
    more = [(7, 0, 0.88)]
    track.add(more)
    (a,) = check_points(track, more, rules, "run")
    assert a.kind == "plateau" and "no better value for 5 steps" in a.reason and "0.9 at step 2" in a.reason
    track.add([(8, 0, 0.5)])
    assert check_points(track, [(8, 0, 0.5)], rules, "run") == []  # named once


def test_trend_says_which_way_is_better():
    loss = Track.new("r", "loss")
    loss.add([(s, 0, 1 / (1 + s)) for s in range(30)])
    t = trend(loss)
    assert t["direction"] == "falling" and t["verdict"] == "improving" and t["points"] == 20
    acc = Track.new("r", "val_accuracy")
    acc.add([(s, 0, 1 - 1 / (1 + s)) for s in range(30)])
    assert trend(acc)["verdict"] == "improving"
    flat = Track.new("r", "loss")
    flat.add([(s, 0, 1.0 if s < 5 else 0.5 + 1e-6 * (s % 2)) for s in range(40)])
    assert trend(flat)["direction"] == "flat"
    assert trend(Track.new("r", "loss")) is None


def test_batches_group_runs_that_would_not_read_much_twice():
    cursors = {"new1": None, "new2": None, "a": (100, 0), "b": (104, 0), "far": (10_000, 0)}
    ends = {"new1": 50, "new2": 60, "a": 110, "b": 112, "far": 10_005}
    groups = batches(cursors, ends)
    assert groups == [(STEP_MIN, 60, ["new1", "new2"]), (100, 112, ["a", "b"]), (10_000, 10_005, ["far"])]
    many = {f"r{i}": None for i in range(250)}
    assert [len(ids) for _, _, ids in batches(many, dict.fromkeys(many, 5))] == [100, 100, 50]
