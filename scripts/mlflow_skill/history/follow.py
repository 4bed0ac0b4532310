"""`get_metric_history.py --follow`: stay with running runs (one, several, or a sweep's children)
until they end, reading only what changed, naming anomalies as they appear, then one compact
summary with the honest figures of the default view.

The first read is the default view's (every point up to ~50,000, else the server's labelled
sample); each poll after it asks for status and latest metrics and reads only the points logged
since (livereads). Polls come every --every seconds, back off to BACKOFF_FACTOR times that while
nothing moves, and never send more than one request a second per run followed."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from mlflow_skill.cli.frame import Context, diag
from mlflow_skill.core.errors import (
    EXIT_CONNECTION,
    EXIT_OK,
    AnomalyFound,
    ConnectionFailure,
    ServerError,
    SkillError,
    UsageError,
)
from mlflow_skill.core.formatting import fmt_duration, fmt_num, truncate
from mlflow_skill.core.values import parse_duration_ms, to_float
from mlflow_skill.history import followview
from mlflow_skill.history import livereads as live
from mlflow_skill.history.anomalies import Anomaly, Rules, Track, check_points, ended_badly, stalled
from mlflow_skill.history.load import load_all
from mlflow_skill.history.request import DEFAULT_METRIC_CAP, Request, check_args, choose_metrics
from mlflow_skill.history.shape import Shaped, shape
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import liveness
from mlflow_skill.store import lookups

TERMINAL = ("FINISHED", "FAILED", "KILLED")
DEFAULT_EVERY_S = 10.0
DEFAULT_STALL = "1h"  # as `health --stale`
DEFAULT_DIVERGE = 1.0  # as `health --diverge`
BACKOFF_FACTOR = 4  # polls that see nothing new back off, doubling, up to 4x --every
BACKOFF_CAP_S = 120.0
PROGRESS_GAP_S = 30.0  # a progress line on stderr at most this often (or --every if longer)
LOST_POLLS = 3  # polls in a row the store may fail (each with the transport's own retries) before exit 4
CHILD_RECHECK = 5  # a run with no metrics of its own is asked for children every this many polls


@dataclass
class Followed:
    """One run as the follow knows it: its latest answer and one Track per metric."""

    run: dict
    changed_ms: int  # wall time of its last write this follow knows of
    tracks: dict[str, Track] = field(default_factory=dict)
    done: bool = False
    stalled: bool = False
    flagged_latest: set[str] = field(default_factory=set)  # unfollowed metrics already named non-finite

    @property
    def run_id(self) -> str:
        return self.run["info"]["run_id"]

    @property
    def name(self) -> str:
        return lookups.run_name(self.run) or self.run_id[:8]

    @property
    def status(self) -> str:
        return self.run["info"].get("status", "")

    @property
    def last_step(self) -> int | None:
        steps = [t.last[0] for t in self.tracks.values() if t.last]
        return max(steps) if steps else None


@dataclass
class Follow:
    """The whole follow: what is followed, what was seen, what it cost."""

    ctx: Context
    rules: Rules
    paced: live.PacedStore
    mode: str  # "run", "runs" or "sweep"
    runs: dict[str, Followed]
    wanted: list[str] | None  # --metrics
    experiment_ids: list[str]
    parent: Followed | None = None
    key: str | None = None  # the metric that ranks several runs
    anomalies: list[Anomaly] = field(default_factory=list)
    polls: int = 0
    started: float = field(default_factory=time.monotonic)
    failures: int = 0  # polls in a row the store failed
    lost: SkillError | None = None
    outcome: str = "following"  # ended, anomaly, deadline, lost
    last_progress: float = -math.inf
    moved: bool = True  # something changed since the last progress line

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def everyone(self) -> list[Followed]:
        return ([self.parent] if self.parent else []) + list(self.runs.values())

    def note(self, found: list[Anomaly]) -> None:
        for a in found:
            self.anomalies.append(a)
            if len(self.anomalies) <= followview.MAX_ANOMALIES:  # stderr stays bounded too
                diag(f"anomaly: {a.line()}")
            elif len(self.anomalies) == followview.MAX_ANOMALIES + 1:
                diag("anomaly: more anomalies; the summary counts them all")
        self.moved = self.moved or bool(found)

    def finished(self) -> bool:
        return all(s.done for s in self.everyone)


# =============================================================================================
# Flags
# =============================================================================================
def duration_ms(text: str, flag: str) -> int:
    """A duration with a unit (90s, 30m, 1h), or a plain number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        return parse_duration_ms(text, flag)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise UsageError(f"{flag} {text!r} must be a positive duration: e.g. 90s, 30m, 1h")
    return int(seconds * 1000)


def rules_from(args) -> Rules:
    """The follow's flags, checked before the first request."""
    for flag, given in (("--full", args.full), ("--output", args.output), ("--plot", args.plot)):
        if given:
            raise UsageError(f"--follow summarises; {flag} reads a finished run: run it again without --follow")
    if args.steps:
        raise UsageError("--follow reads every step: drop --steps")
    every = DEFAULT_EVERY_S if args.every is None else args.every
    if not (every >= 1 and math.isfinite(every)):
        raise UsageError(f"--every {every:g}: at least 1 second (a follow sends at most one request a second per run)")
    if args.patience is not None and args.patience < 1:
        raise UsageError("--patience takes a number of steps, at least 1")
    diverge = DEFAULT_DIVERGE if args.diverge is None else args.diverge
    if not (diverge > 0 and math.isfinite(diverge)):
        raise UsageError("--diverge must be a positive number (default 1, as `health`)")
    return Rules(
        every_s=every,
        stall_ms=duration_ms(args.stall or DEFAULT_STALL, "--stall"),
        patience=args.patience,
        diverge=diverge,
        deadline_ms=duration_ms(args.deadline, "--deadline") if args.deadline else None,
        fail_on_anomaly=args.fail_on_anomaly,
    )


# =============================================================================================
# Starting: the runs, the mode, the first read
# =============================================================================================
def start(ctx: Context, request: Request, rules: Rules) -> Follow:
    store = ctx.store
    first = [lookups.get_run(store, r) for r in request.run_ids]
    mode, parent, runs = ("run" if len(first) == 1 else "runs"), None, first
    if len(first) == 1:
        kids = live.children(store, first[0])
        if kids:
            mode, parent, runs = "sweep", first[0], kids
    now = liveness.now_ms()
    f = Follow(
        ctx=ctx,
        rules=rules,
        paced=live.PacedStore(store),
        mode=mode,
        runs={r["info"]["run_id"]: Followed(r, liveness.last_write_ms(r, now)) for r in runs},
        wanted=request.wanted,
        experiment_ids=sorted({r["info"]["experiment_id"] for r in first}),
    )
    if parent is not None:
        f.parent = Followed(parent, liveness.last_write_ms(parent, now))
    f.paced.pace(len(f.everyone))
    if request.wanted and all(r["info"].get("status") in TERMINAL for r in runs):
        keys = {s.run_id: sorted(lookups.run_metrics(s.run)) for s in f.runs.values()}
        choose_metrics(keys, request.wanted, False)  # ended runs without the metric: not found, with close names
    seed(f)
    settle(f, f.everyone)
    return f


def followed_metrics(f: Follow, state: Followed, latest_keys: list[str]) -> list[str]:
    """--metrics; else every metric of a single run (up to the default cap), or the ranking
    metric of several runs (the one most of them log, chosen once)."""
    if f.wanted:
        return [k for k in f.wanted if k in latest_keys]
    if f.mode == "run":
        ordered = sorted(latest_keys, key=lambda k: (k.startswith("system/"), k))
        return ordered[:DEFAULT_METRIC_CAP]
    if f.key is None:
        f.key = common_metric(f)
    return [f.key] if f.key in latest_keys else []


def common_metric(f: Follow) -> str | None:
    counts: dict[str, int] = {}
    for state in f.runs.values():
        for key in live.latest(state.run):
            if not key.startswith("system/"):
                counts[key] = counts.get(key, 0) + 1
    return min(counts, key=lambda k: (-counts[k], k)) if counts else None


def seed(f: Follow) -> None:
    """The first read, as the default view reads: every point up to ~50,000, else the sample."""
    plan: dict[str, list[str]] = {}
    for state in f.runs.values():
        latest = live.latest(state.run)
        keys = followed_metrics(f, state, sorted(latest))
        for key in keys:
            state.tracks[key] = Track.new(state.run_id, key)
            plan.setdefault(key, []).append(state.run_id)
        f.note(unfollowed_non_finite(state, latest, keys))
    if f.mode != "run" and f.wanted:
        f.key = f.wanted[0]
    for key, series_list in load_all(f.ctx, sorted(plan.items()), None, False):
        for s in series_list:
            state = f.runs[s.run_id]
            track = state.tracks[key]
            track.add(s.points)
            if not s.exact:
                track.sampled, track.points = True, s.est_total or len(s.points)
            f.note(check_points(track, s.points, f.rules, state.name))


# =============================================================================================
# One poll
# =============================================================================================
def answers(f: Follow) -> list[dict]:
    """Status and latest metrics of every run followed: one or two requests."""
    if f.mode == "runs":
        return live.several(f.paced, list(f.runs), f.experiment_ids)
    if f.mode == "sweep":
        f.parent.run = live.get_run(f.paced, f.parent.run_id)
        return live.children(f.paced, f.parent.run)
    (state,) = f.runs.values()
    run = live.get_run(f.paced, state.run_id)
    if not live.latest(run) and run["info"].get("status") not in TERMINAL and f.polls % CHILD_RECHECK == 0:
        kids = live.children(f.paced, run)  # a sweep's parent logs nothing of its own until its children end
        if kids:
            f.mode, f.parent, f.runs = "sweep", Followed(run, state.changed_ms), {}
            f.paced.pace(len(kids) + 1)
            return kids
    return [run]


def poll(f: Follow) -> bool:
    """One look at the runs; True when anything moved. A store that stops answering is said
    once and retried by the next polls (each with the transport's retries and back-off)."""
    f.polls += 1
    try:
        runs = answers(f)
        moved = read_moved(f, runs)
    except (ConnectionFailure, ServerError) as exc:
        f.failures += 1
        if f.failures == 1:
            diag(
                f"follow: {f.ctx.settings.display_uri} stopped answering ({truncate(str(exc), 120)}); "
                f"retrying with back-off, giving up after {LOST_POLLS} failed polls"
            )
        if f.failures >= LOST_POLLS:
            f.lost, f.outcome = exc, "lost"
        return False
    if f.failures:
        diag(f"follow: {f.ctx.settings.display_uri} answers again after {f.failures} failed polls")
        f.failures = 0
    moved = settle(f, [f.runs[r["info"]["run_id"]] for r in runs] + ([f.parent] if f.parent else [])) or moved
    check_stalls(f)
    f.moved = f.moved or moved
    return moved


def read_moved(f: Follow, runs: list[dict]) -> bool:
    """The points logged since the last read, for every followed metric whose latest point moved;
    then the new answers become the runs' state (statuses are settled after the points)."""
    now, moved = liveness.now_ms(), False
    pending: dict[str, dict[str, int]] = {}  # metric -> {run id: its latest step}
    for run in runs:
        run_id = run["info"]["run_id"]
        state = f.runs.get(run_id)
        if state is None:  # a sweep's new child
            state = f.runs[run_id] = Followed(run, now)
            f.paced.pace(len(f.everyone))
            moved = True
        if state.done:
            continue
        latest = live.latest(run)
        keys = followed_metrics(f, state, sorted(latest))
        for key in keys:
            track = state.tracks.setdefault(key, Track.new(run_id, key))
            step, stamp, _ = latest[key]
            if track.cursor is None or (step, stamp) > track.cursor:
                pending.setdefault(key, {})[run_id] = step
        f.note(unfollowed_non_finite(state, latest, keys))
    for key, steps in sorted(pending.items()):
        cursors = {r: f.runs[r].tracks[key].cursor for r in steps}
        for run_id, new in live.read_after(f.paced, key, cursors, steps).items():
            state = f.runs[run_id]
            if new:
                state.tracks[key].add(new)
                state.changed_ms, moved = now, True
                f.note(check_points(state.tracks[key], new, f.rules, state.name))
    for run in runs:
        f.runs[run["info"]["run_id"]].run = run
    return moved


def unfollowed_non_finite(state: Followed, latest: dict, followed: list[str]) -> list[Anomaly]:
    """A NaN or inf latest value of a metric whose history is not read: free in the status answer."""
    found = []
    for key, (step, _, value) in sorted(latest.items()):
        if key not in followed and key not in state.flagged_latest and not math.isfinite(to_float(value)):
            state.flagged_latest.add(key)
            reason = f"{key} = {fmt_num(to_float(value))} at step {step:,} (its latest value)"
            found.append(Anomaly("non_finite", state.run_id, state.name, reason, key, step, to_float(value)))
    return found


def settle(f: Follow, states: list[Followed]) -> bool:
    """Runs that ended are done; FAILED and KILLED are anomalies."""
    moved = False
    for state in states:
        if state.done or state.status not in TERMINAL:
            continue
        state.done = moved = True
        if state.status in ("FAILED", "KILLED"):
            why = "; ".join(f"{k}: {v}" for k, v in rc.error_tags(state.run).items())
            f.note([ended_badly(state.run_id, state.name, state.status, truncate(why, 160))])
    if f.parent and f.runs and any(s.changed_ms > f.parent.changed_ms for s in f.runs.values()):
        f.parent.changed_ms = max(s.changed_ms for s in f.runs.values())  # a sweep moves through its children
    return moved


def check_stalls(f: Follow) -> None:
    """RUNNING runs with no write for --stall (by the run's stamps and by what this follow saw),
    or whose writer on this host is gone: named, and no longer waited for."""
    now = liveness.now_ms()
    for state in f.everyone:
        if state.done:
            continue
        verdict = liveness.judge(state.run, f.rules.stall_ms, now)
        idle = now - max(state.changed_ms, liveness.last_write_ms(state.run, now))
        if verdict.state == liveness.WRITER_GONE or idle > f.rules.stall_ms:
            gone = verdict.reason if verdict.state == liveness.WRITER_GONE else ""
            f.note([stalled(state.run_id, state.name, idle, f.rules, gone)])
            state.done = state.stalled = True


# =============================================================================================
# The wait, and the command
# =============================================================================================
def watch(f: Follow) -> None:
    """Poll until every run is done, the first anomaly (--fail-on-anomaly), the deadline, or the
    store is lost; idle polls back off, doubling up to BACKOFF_FACTOR x --every."""
    every = f.rules.every_s
    cap = max(every, min(every * BACKOFF_FACTOR, BACKOFF_CAP_S, f.rules.stall_ms / 2000))
    interval = every
    progress(f, force=True)
    while not f.finished() and f.outcome == "following":
        if f.rules.fail_on_anomaly and f.anomalies:
            f.outcome = "anomaly"
            return
        remaining = None if f.rules.deadline_ms is None else f.rules.deadline_ms / 1000 - f.elapsed_s
        if remaining is not None and remaining <= interval:
            time.sleep(max(0.0, remaining))
            poll(f)  # one last look at the deadline: a run that just ended is not reported as going
            if not f.finished() and f.outcome == "following":
                f.outcome = "deadline"
            break
        time.sleep(interval)
        moved = poll(f)  # a failed poll keeps the pace: the transport's retries are its back-off
        interval = every if moved or f.failures else min(interval * 2, cap)
        progress(f)
    if f.outcome in ("following", "deadline") and f.rules.fail_on_anomaly and f.anomalies:
        f.outcome = "anomaly"
    elif f.outcome == "following":
        f.outcome = "ended"


def progress(f: Follow, force: bool = False) -> None:
    """A line on stderr when something moved, at most one per PROGRESS_GAP_S (or --every)."""
    now = time.monotonic()
    if force or (f.moved and now - f.last_progress >= max(f.rules.every_s, PROGRESS_GAP_S)):
        diag(followview.progress_line(f))
        f.last_progress, f.moved = now, False


def final_read(f: Follow, shown: list[Followed]) -> Shaped | None:
    """The default view's honest figures for the runs shown, read once at the end."""
    if f.outcome == "lost":
        return None
    plan: dict[str, list[str]] = {}
    for state in shown:
        for key in state.tracks:
            if state.tracks[key].points:
                plan.setdefault(key, []).append(state.run_id)
    try:
        results = load_all(f.ctx, sorted(plan.items()), None, bool(f.ctx.args.exact))
    except SkillError as exc:
        diag(f"follow: the final read failed ({truncate(str(exc), 120)}); figures from the follow only")
        return None
    runs = {s.run_id: s.run for s in shown}
    return shape(f.ctx, runs, results, None, [])


def command(ctx: Context) -> int:
    rules = rules_from(ctx.args)  # every usage error before the first request
    request = check_args(ctx.args)
    f = start(ctx, request, rules)
    try:
        watch(f)
    except KeyboardInterrupt:  # what was seen is still worth printing; run_main says "interrupted"
        f.outcome = "interrupted"
        ctx.emit(followview.build_view(f, None, followview.shown_runs(f)))
        raise
    shown = followview.shown_runs(f)
    ctx.emit(followview.build_view(f, final_read(f, shown), shown))
    if f.outcome == "lost":  # exit 4 for a server gone, 6 for one that kept failing
        raise SkillError(
            f"lost {ctx.settings.display_uri} while following ({truncate(str(f.lost), 160)}); the summary above is "
            "what was seen until then: run the same command again when the server is back",
            f.lost.exit_code,
        )
    if f.outcome == "deadline":
        going = [s.name for s in f.everyone if not s.done]
        raise SkillError(
            f"--deadline {fmt_duration(rules.deadline_ms)} reached; still going: {', '.join(going[:5])}"
            f"{' …' if len(going) > 5 else ''}: follow again to keep waiting, or raise --deadline",
            EXIT_CONNECTION,
        )
    if f.anomalies and rules.fail_on_anomaly:
        first = f.anomalies[0]
        raise AnomalyFound(f"anomaly while following (--fail-on-anomaly): {first.line()}")
    return EXIT_OK
