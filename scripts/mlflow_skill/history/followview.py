"""What a follow prints: a progress line now and then on stderr, and at the end one summary
bounded whatever the follow's length (a sweep shows its leader and laggards, not every child;
at most MAX_ANOMALIES anomalies are listed, the rest counted). Pure: no store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.formatting import fmt_duration, fmt_num, json_safe, md_table, truncate
from mlflow_skill.history.anomalies import KINDS, Track, best_text, trend, trend_text
from mlflow_skill.history.markdown import render_single, summary_line
from mlflow_skill.history.shape import Shaped
from mlflow_skill.history.summary import Summary

if TYPE_CHECKING:
    from mlflow_skill.history.follow import Follow, Followed

SHOWN_LAGGARDS = 3  # the worst runs by the ranking metric
SHOWN_BEHIND = 2  # the running runs furthest behind in steps
MAX_ANOMALIES = 10  # listed in markdown (JSON: MAX_ANOMALIES_JSON)
MAX_ANOMALIES_JSON = 25
COMPACT_PAST = 4  # more metrics than this: two lines each
CSV_FIELDS = ["run_id", "run_name", "status", "metric", "last_step", "last_value", "best_step", "best_value", "trend"]


# =============================================================================================
# Leader and laggards
# =============================================================================================
def ranked(f: Follow) -> tuple[list[Followed], int]:
    """Runs by their best value of the ranking metric (best first), then those without one;
    and how many have one."""
    key = f.key

    def best(state: Followed):
        track = state.tracks.get(key) if key else None
        return track.best if track else None

    valued = [s for s in f.runs.values() if best(s)]
    higher = bool(valued) and valued[0].tracks[key].higher
    valued.sort(key=lambda s: best(s)[1], reverse=higher)
    rest = sorted((s for s in f.runs.values() if not best(s)), key=lambda s: s.name)
    return valued + rest, len(valued)


def standing(f: Follow) -> tuple[Followed | None, list[Followed], list[Followed]]:
    """(leader, laggards worst first, running runs furthest behind in steps)."""
    order, valued = ranked(f)
    leader = order[0] if valued else None
    laggards = list(reversed(order[max(1, valued - SHOWN_LAGGARDS) : valued]))
    steps = [s.last_step for s in f.runs.values() if s.last_step is not None]
    ahead = max(steps) if steps else None
    behind = [s for s in f.runs.values() if not s.done and s.last_step is not None and s.last_step < ahead]
    behind.sort(key=lambda s: s.last_step)
    return leader, laggards, behind[:SHOWN_BEHIND]


def shown_runs(f: Follow) -> list[Followed]:
    if f.mode == "run":
        return list(f.runs.values())
    leader, laggards, behind = standing(f)
    out: list[Followed] = []
    for state in [leader, *laggards, *behind]:
        if state is not None and state not in out:
            out.append(state)
    return out


# =============================================================================================
# Small pieces
# =============================================================================================
def main_track(f: Follow, state: Followed) -> Track | None:
    """The metric a one-line report names: the ranking metric, --metrics' first, a loss, or any."""
    tracks = state.tracks
    for key in [f.key, *(f.wanted or [])]:
        if key in tracks:
            return tracks[key]
    losses = [t for k, t in sorted(tracks.items()) if t.loss_like]
    return losses[0] if losses else next(iter(tracks.values()), None)


def now_text(track: Track, named: bool = True) -> str:
    name = f"{track.metric} " if named else ""
    if track.last is None:
        return f"{name}nothing logged yet"
    return f"{name}{fmt_num(track.last[2])} at step {track.last[0]:,}; {best_text(track)}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def statuses(states: list[Followed]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in states:
        label = "stalled" if s.stalled else s.status
        counts[label] = counts.get(label, 0) + 1
    return counts


def progress_line(f: Follow) -> str:
    cost = f"{f.polls} polls, {f.paced.requests} requests"
    head = f"follow {fmt_duration(f.elapsed_s * 1000)}:"
    if f.mode == "run":
        (state,) = f.runs.values()
        track = main_track(f, state)
        return f"{head} {state.name} {state.status} · {now_text(track) if track else 'no metrics yet'} · {cost}"
    leader, _, _ = standing(f)
    counts = " ".join(f"{k} {v}" for k, v in sorted(statuses(list(f.runs.values())).items()))
    lead = f"leader {leader.name}: {now_text(leader.tracks[f.key])}" if leader else "no leader yet"
    return f"{head} {len(f.runs)} runs ({counts}) · {lead} · {cost}"


def outcome_text(f: Follow) -> str:
    going = [s.name for s in f.everyone if not s.done]
    still = f"; still going: {', '.join(going[:5])}{' …' if len(going) > 5 else ''}" if going else ""
    stalled = [s.name for s in f.everyone if s.stalled]
    gave_up = f"; stopped waiting for stalled: {', '.join(stalled[:5])}" if stalled else ""
    if f.outcome == "anomaly":
        return "stopped at the first anomaly (--fail-on-anomaly)" + still + gave_up
    if f.outcome == "deadline":
        return f"--deadline {fmt_duration(f.rules.deadline_ms)} reached" + still + gave_up
    if f.outcome == "lost":
        return f"lost the store after {f.polls} polls: the figures are what was seen until then" + still
    if f.outcome == "interrupted":
        return "interrupted: the figures are what was seen until then" + still
    if f.mode == "run":
        (state,) = f.runs.values()
        return (
            f"stopped waiting: the run stalled, still {state.status}"
            if state.stalled
            else f"the run ended {state.status}"
        )
    parent = f" (parent {f.parent.status})" if f.parent else ""
    return f"all {len(f.runs)} runs ended{parent}" + gave_up


def anomaly_lines(f: Follow) -> list[str]:
    if not f.anomalies:
        return ["- anomalies: none"]
    counts = statuses_of_kinds(f)
    lines = [f"- anomalies: {len(f.anomalies)} ({counts})"]
    lines += [f"  - {truncate(a.line(), 300)}" for a in f.anomalies[:MAX_ANOMALIES]]
    if len(f.anomalies) > MAX_ANOMALIES:
        lines.append(f"  - … {len(f.anomalies) - MAX_ANOMALIES} more (--format json lists {MAX_ANOMALIES_JSON})")
    return lines


def statuses_of_kinds(f: Follow) -> str:
    counts: dict[str, int] = {}
    for a in f.anomalies:
        counts[KINDS[a.kind]] = counts.get(KINDS[a.kind], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())


# =============================================================================================
# The summary
# =============================================================================================
def track_record(t: Track) -> dict:
    return {
        "last": {"step": t.last[0], "timestamp": t.last[1], "value": t.last[2]} if t.last else None,
        "best": {"step": t.best[0], "value": t.best[1]} if t.best else None,
        "higher_is_better": t.higher,
        "points": t.points,
        "first_read_sampled": t.sampled,
        "non_finite": t.non_finite,
        "trend": trend(t),
    }


def run_record(state: Followed) -> dict:
    return {
        "run_id": state.run_id,
        "run_name": state.name,
        "status": state.status,
        "stalled": state.stalled,
        "last_step": state.last_step,
        "metrics": {k: track_record(t) for k, t in sorted(state.tracks.items())},
    }


def json_data(f: Follow, sh: Shaped | None, shown: list[Followed]) -> dict:
    leader, laggards, behind = standing(f) if f.mode != "run" else (None, [], [])
    return json_safe(
        {
            "store": f.ctx.settings.display_uri,
            "mode": f.mode,
            "outcome": f.outcome,
            "outcome_text": outcome_text(f),
            "followed_s": round(f.elapsed_s, 1),
            "polls": f.polls,
            "requests": f.paced.requests,
            "rules": f.rules.record(),
            "parent": run_record(f.parent) if f.parent else None,
            "runs_followed": len(f.runs),
            "statuses": statuses(list(f.runs.values())),
            "ranking_metric": f.key if f.mode != "run" else None,
            "leader": leader.run_id if leader else None,
            "laggards": [s.run_id for s in laggards],
            "behind": [s.run_id for s in behind],
            "anomaly_count": len(f.anomalies),
            "anomalies": [a.record() for a in f.anomalies[:MAX_ANOMALIES_JSON]],
            "runs": [run_record(s) for s in shown],
            "series": [summ.as_dict() for summ in sh.summaries] if sh else [],
        }
    )


def metric_lines(state: Followed, summaries: dict[tuple[str, str], Summary]) -> list[str]:
    """One run's metrics: the follow's now, best and trend, then the default view's figures (one
    line of them per metric past COMPACT_PAST metrics, so the summary stays a few KB)."""
    lines = []
    compact = len(state.tracks) > COMPACT_PAST
    if compact:
        lines += ["", f"### {len(state.tracks)} metrics: now, then the default view's figures"]
    for key, track in sorted(state.tracks.items()):
        now = f"now: {now_text(track, named=not compact)} · {trend_text(trend(track))}"
        summ = summaries.get((state.run_id, key))
        if summ is None:
            scope = " (the first read was a sample)" if track.sampled else ""
            bad = f"; NaN/inf {track.non_finite:,}" if track.non_finite else ""
            head = f"{key} — from the follow: {track.points:,} points read{scope}{bad}"
            lines += [f"- **{head}**; {now}"] if compact else ["", f"### {head}", f"- {now}"]
        elif compact:
            lines += [f"- **{key}**: {now}", "  " + summary_line(summ, key).removeprefix(f"- **{key}**: ")]
        else:
            body = render_single(summ, [], False, table=False)
            lines += ["", body[0], f"- {now}", *body[1:]]
    unfollowed = len(state.run.get("data", {}).get("metrics", []) or []) - len(state.tracks)
    if unfollowed > 0:
        lines += [
            "",
            f"{unfollowed} more metrics not followed (their latest values are checked for NaN/inf): --metrics",
        ]
    return lines


def several_lines(f: Follow, shown: list[Followed], summaries: dict[tuple[str, str], Summary]) -> list[str]:
    leader, laggards, behind = standing(f)
    key = f.key or "(no metric yet)"
    lines = []
    if leader:
        lines.append(f"- leader: **{leader.name}**: {now_text(leader.tracks[f.key])}")
    if laggards:
        worst = ", ".join(f"{s.name} {fmt_num(s.tracks[f.key].best[1])}" for s in laggards)
        lines.append(f"- laggards (by best {key}, worst first): {worst}")
    if behind:
        ahead = max(s.last_step for s in f.runs.values() if s.last_step is not None)
        lines.append(
            "- behind in steps: "
            + ", ".join(f"{s.name} at step {s.last_step:,}" for s in behind)
            + f" (most: {ahead:,})"
        )
    rows = []
    for s in shown:
        t = s.tracks.get(f.key) if f.key else None
        last = f"{fmt_num(t.last[2])} @{t.last[0]:,}" if t and t.last else ""
        best = f"{fmt_num(t.best[1])} @{t.best[0]:,}" if t and t.best else ""
        verdict = (trend(t) or {}).get("verdict", "") if t else ""
        kinds = sorted({KINDS[a.kind] for a in f.anomalies if a.run_id == s.run_id})
        rows.append([truncate(s.name, 30), "stalled" if s.stalled else s.status, last, best, verdict, ", ".join(kinds)])
    if rows:
        lines += ["", md_table(["run", "status", f"{key} last", "best", "trend", "anomalies"], rows)]
    hidden = len(f.runs) - len(shown)
    if hidden > 0:
        lines.append(f"({hidden} more runs between the leader and the laggards; --format json has the counts)")
    stats = [summary_line(summaries[(s.run_id, f.key)], s.name) for s in shown if (s.run_id, f.key) in summaries]
    if stats:
        lines += ["", f"### {key}: the default view's figures for these runs", *stats]
    return lines


def build_view(f: Follow, sh: Shaped | None, shown: list[Followed]) -> View:
    summaries = {(summ.run_id, summ.metric): summ for summ in sh.summaries} if sh else {}
    if f.mode == "run":
        (state,) = f.runs.values()
        head = f"## Followed run **{state.name}** ({state.run_id}): {state.status}"
    elif f.parent:
        head = f"## Followed sweep **{f.parent.name}** ({f.parent.run_id}): {len(f.runs)} children"
    else:
        head = f"## Followed {len(f.runs)} runs"
    rpm = f.paced.requests / max(f.elapsed_s / 60, 1 / 60)
    lines = [
        head,
        f"- outcome: {outcome_text(f)}",
        f"- followed {fmt_duration(f.elapsed_s * 1000)}: the first read, {plural(f.polls, 'poll')} "
        f"({plural(f.paced.requests, 'request')}, {rpm:.0f} a minute; at most one a second per run), the final read",
    ]
    if f.mode != "run":
        lines.append(
            "- statuses: " + " · ".join(f"{k} {v}" for k, v in sorted(statuses(list(f.runs.values())).items()))
        )
    lines += anomaly_lines(f) + ["- " + f.rules.text()]
    lines += metric_lines(shown[0], summaries) if f.mode == "run" else several_lines(f, shown, summaries)
    raw = []
    for s in shown:
        for key, t in sorted(s.tracks.items()):
            tr = trend(t)
            last = t.last or (None, None, None)
            best = t.best or (None, None)
            raw.append([s.run_id, s.name, s.status, key, last[0], last[2], best[0], best[1], tr and tr["verdict"]])
    return View(data=json_data(f, sh, shown), lines=lines, table=Table(CSV_FIELDS, [], raw=raw))
