"""What can go wrong while a run is followed, judged on running figures (pure: no store).

A Track keeps one run's metric as a few numbers (first, min, max, best, last, NaN count and the
last TREND_POINTS points), never the series, so a follow of any length holds bounded memory.
Anomalies, each named once per run and metric:
  non_finite  a NaN or infinite value
  diverging   a loss-like metric far above its minimum: the rule of `health`, the same function
  plateau     no improvement of the best value over --patience steps
  stall       a RUNNING run with no write for --stall (or its writer on this host is gone)
  failed      the run ended FAILED or KILLED
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from mlflow_skill.core.formatting import fmt_duration, fmt_num, json_safe
from mlflow_skill.history.series import Point
from mlflow_skill.quant import catalog
from mlflow_skill.runs import health

TREND_POINTS = 20  # the trend is the least-squares slope over the last this many finite points
FLAT = 0.01  # a change under 1% of the range seen so far is flat
KINDS = {
    "non_finite": "NaN/inf",
    "diverging": "diverging",
    "plateau": "plateau",
    "stall": "stall",
    "failed": "ended FAILED/KILLED",
}


@dataclass(frozen=True)
class Rules:
    """The follow's flags, checked."""

    every_s: float
    stall_ms: int
    patience: int | None
    diverge: float
    deadline_ms: int | None
    fail_on_anomaly: bool

    def text(self) -> str:
        plateau = f"no better value over {self.patience:,} steps" if self.patience else "off (--patience STEPS)"
        return (
            f"rules: NaN/inf on any value; diverging = last − min > {self.diverge:g}× max(first − min, |min|) on "
            f"loss-like metrics (--diverge, as `health`); plateau: {plateau}; stall = RUNNING with no write for "
            f"{fmt_duration(self.stall_ms)} (--stall); FAILED/KILLED"
        )

    def record(self) -> dict:
        return {
            "every_s": self.every_s,
            "stall_ms": self.stall_ms,
            "patience": self.patience,
            "diverge": self.diverge,
            "deadline_ms": self.deadline_ms,
            "fail_on_anomaly": self.fail_on_anomaly,
        }


@dataclass
class Anomaly:
    kind: str
    run_id: str
    run_name: str
    reason: str
    metric: str | None = None
    step: int | None = None
    value: float | None = None

    def record(self) -> dict:
        return json_safe(
            {
                "kind": self.kind,
                "run_id": self.run_id,
                "run_name": self.run_name,
                "metric": self.metric,
                "step": self.step,
                "value": self.value,
                "reason": self.reason,
            }
        )

    def line(self) -> str:
        who = f"{self.run_name or self.run_id[:8]}"
        return f"{KINDS[self.kind]}: {who}: {self.reason}"


StepValue = tuple[int, float]


@dataclass
class Track:
    """One run's metric, as running figures."""

    run_id: str
    metric: str
    higher: bool  # which way is better (catalog.direction)
    direction_how: str
    loss_like: bool  # divergence is checked on these only, as in `health`
    points: int = 0
    sampled: bool = False  # the first read was the server's sample: counts and extremes are the sample's
    first: StepValue | None = None  # first finite point
    low: StepValue | None = None  # first occurrence of the minimum
    high: StepValue | None = None
    best: StepValue | None = None
    last: Point | None = None  # latest by (step, timestamp)
    finite: int = 0
    non_finite: int = 0
    first_bad: StepValue | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=TREND_POINTS))
    flagged: set[str] = field(default_factory=set)  # kinds already named for this metric

    @classmethod
    def new(cls, run_id: str, metric: str) -> Track:
        higher, how = catalog.direction(metric)
        loss = health.loss_like(metric)
        return cls(run_id, metric, higher, how, loss)

    @property
    def cursor(self) -> tuple[int, int] | None:
        """(step, timestamp) of the latest point read: the next read starts there."""
        return (self.last[0], self.last[1]) if self.last else None

    def add(self, points: list[Point]) -> None:
        """Points in (step, timestamp) order, none of them read before."""
        for p in points:
            self.points += 1
            if self.last is None or (p[0], p[1]) >= (self.last[0], self.last[1]):
                self.last = p
            step, value = p[0], p[2]
            if not math.isfinite(value):
                self.non_finite += 1
                self.first_bad = self.first_bad or (step, value)
                continue
            self.finite += 1
            self.recent.append((step, value))
            self.first = self.first or (step, value)
            if self.low is None or value < self.low[1]:
                self.low = (step, value)
            if self.high is None or value > self.high[1]:
                self.high = (step, value)
            if self.best is None or (value > self.best[1] if self.higher else value < self.best[1]):
                self.best = (step, value)


def check_points(track: Track, new: list[Point], rules: Rules, run_name: str) -> list[Anomaly]:
    """Anomalies the points just read show (each kind once per run and metric)."""
    found = []
    bad = next((p for p in new if not math.isfinite(p[2])), None)
    if bad is not None and "non_finite" not in track.flagged:
        reason = f"{track.metric} = {fmt_num(bad[2])} at step {bad[0]:,}"
        found.append(Anomaly("non_finite", track.run_id, run_name, reason, track.metric, bad[0], bad[2]))
    if track.loss_like and track.finite >= 3 and track.last and math.isfinite(track.last[2]):
        compact = [track.first, track.low, (track.last[0], track.last[2])]  # what divergence() reads of a series
        d = health.divergence(compact, rules.diverge)
        if d and "diverging" not in track.flagged:
            reason = (
                f"{track.metric} at {fmt_num(d['last'])} (step {d['last_step']:,}) is {fmt_num(d['rise'])} above its "
                f"minimum {fmt_num(d['min'])} at step {d['min_step']:,} (first {fmt_num(d['first'])}): "
                f"{d['ratio']:.1f}× max(first − min, |min|), limit {rules.diverge:g}×"
            )
            found.append(Anomaly("diverging", track.run_id, run_name, reason, track.metric, d["last_step"], d["last"]))
    if rules.patience and track.best and track.last and "plateau" not in track.flagged:
        idle = track.last[0] - track.best[0]
        if idle >= rules.patience:
            side = "highest" if track.higher else "lowest"
            reason = (
                f"{track.metric}: no better value for {idle:,} steps (best, {side}, {fmt_num(track.best[1])} at step "
                f"{track.best[0]:,}; now step {track.last[0]:,}; --patience {rules.patience:,})"
            )
            found.append(Anomaly("plateau", track.run_id, run_name, reason, track.metric, track.last[0], track.last[2]))
    for a in found:
        track.flagged.add(a.kind)
    return found


def ended_badly(run_id: str, run_name: str, status: str, error: str) -> Anomaly:
    reason = f"the run ended {status}" + (f": {error}" if error else " (no error tag)")
    return Anomaly("failed", run_id, run_name, reason)


def stalled(run_id: str, run_name: str, idle_ms: int, rules: Rules, writer_gone: str = "") -> Anomaly:
    if writer_gone:
        return Anomaly("stall", run_id, run_name, writer_gone)
    reason = (
        f"RUNNING with no write for {fmt_duration(idle_ms)} (--stall {fmt_duration(rules.stall_ms)}): "
        "its process may have died without ending the run; stopped following it"
    )
    return Anomaly("stall", run_id, run_name, reason)


def trend(track: Track) -> dict | None:
    """The least-squares slope over the last TREND_POINTS finite points, as the change it makes
    across them; flat when that is under FLAT of the range seen so far."""
    pts = list(track.recent)
    if len(pts) < 3 or pts[0][0] == pts[-1][0]:
        return None
    n = len(pts)
    mean_x = sum(p[0] for p in pts) / n
    mean_y = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mean_x) ** 2 for p in pts)
    slope = sum((p[0] - mean_x) * (p[1] - mean_y) for p in pts) / sxx if sxx else 0.0
    change = slope * (pts[-1][0] - pts[0][0])
    spread = (track.high[1] - track.low[1]) if track.high and track.low else 0.0
    if spread <= 0 or abs(change) < FLAT * spread:
        direction, verdict = "flat", "flat"
    else:
        direction = "rising" if change > 0 else "falling"
        verdict = "improving" if (change > 0) == track.higher else "worsening"
    return {"direction": direction, "verdict": verdict, "change": change, "points": n, "steps": [pts[0][0], pts[-1][0]]}


def trend_text(t: dict | None) -> str:
    if not t:
        return "trend: too few points"
    where = f"over the last {t['points']} points (steps {t['steps'][0]:,}→{t['steps'][1]:,})"
    if t["direction"] == "flat":
        return f"trend: flat {where}"
    return f"trend: {t['direction']} by {fmt_num(abs(t['change']))} {where}, {t['verdict']}"


def best_text(track: Track) -> str:
    if track.best is None:
        return "best: none (no finite value)"
    side = "higher" if track.higher else "lower"
    guessed = "" if track.direction_how == catalog.KNOWN else ", guessed from the name"
    scope = " of the sample" if track.sampled else ""
    return f"best{scope} {fmt_num(track.best[1])} at step {track.best[0]:,} ({side} is better{guessed})"
