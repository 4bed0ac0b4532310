"""Run health for query_experiments.py's `health` command: one pass over an experiment's runs that
lists what deserves a look, each finding with its reason and the command to dig in.

Checks (all on the runs one search returns, except divergence, which samples histories):
  stale       RUNNING runs with no write (start or metric timestamp) for longer than --stale
  failed      FAILED and KILLED runs (counts, the newest listed with their error tags)
  non_finite  metrics whose last value is NaN or infinite
  diverging   loss-like metrics whose last value is far above the run's minimum, read from a
              server-sampled history (get-history-bulk-interval: 100 runs per request)
  outlier     a run's key metric far from its siblings' median (robust z-score: median/MAD)
  duplicate   FINISHED runs with identical params and different results, with the spread (unfinished
              runs with the same params are listed apart: their results are not comparable)
Pure shaping except `cmd_health`, `fetch_runs` and `sample_histories`.
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import NotFoundError, UsageError
from mlflow_skill.core.formatting import (
    fmt_duration,
    fmt_num,
    fmt_percent,
    json_safe,
    truncate,
)
from mlflow_skill.core.values import parse_duration_ms, to_float
from mlflow_skill.quant import catalog
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import liveness
from mlflow_skill.runs import search as rs
from mlflow_skill.runs.skipped import Skipped, skipped_line
from mlflow_skill.runs.targets import PROG
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

HISTORY_PROG = "uv run scripts/get_metric_history.py"
BULK_INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
RUNS_PER_CALL = 100  # the server's maximum run_ids per bulk-interval request
SAMPLE_POINTS = 200  # points per run and metric: enough to find a minimum, small enough to be quick
MIN_SIBLINGS = 5  # outliers need at least this many runs with the metric
MAD_SCALE = 0.6745  # modified z-score (Iglewicz & Hoaglin): 0.6745 (x - median) / MAD
MEAN_AD_SCALE = 1.253314  # fallback when MAD is 0: (x - median) / (1.253314 * mean absolute deviation)
LOSS_WORDS = ("loss", "error", "err", "mse", "mae", "rmse", "perplexity", "nll", "wer", "cer")
KINDS = {  # kind -> heading
    "stale": "stale RUNNING",
    "failed": "FAILED/KILLED",
    "non_finite": "NaN/inf last value",
    "diverging": "diverging loss",
    "outlier": "outlier vs siblings",
    "duplicate": "same params, different results",
}


@dataclass
class Finding:
    kind: str
    score: float  # worse is higher: findings are ranked by it within their kind
    reason: str
    command: str
    run_ids: list[str]
    run_name: str = ""
    metric: str | None = None
    value: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "run_ids": self.run_ids,
            "run_name": self.run_name,
            "metric": self.metric,
            "value": json_safe(self.value),
            "reason": self.reason,
            "command": self.command,
            "score": json_safe(self.score),
            **json_safe(self.detail),
        }


@dataclass
class Rules:
    stale_ms: int
    z: float
    diverge: float
    metrics: list[str] | None
    history_runs: int


# =============================================================================================
# Small helpers
# =============================================================================================
def finite(value: float | None) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def name_of(run: dict) -> str:
    return lookups.run_name(run) or "(no name)"


def rid(run: dict) -> str:
    return run["info"]["run_id"]


def run_cmd(run_id: str) -> str:
    return f"{PROG} run {run_id}"


def history_cmd(run_ids: list[str], metric: str) -> str:
    ids = " ".join(run_ids)
    return f"{HISTORY_PROG} --run-id {ids} --metrics {shlex.quote(metric)}"


def by_experiment(runs: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["info"]["experiment_id"], []).append(run)
    return groups


def loss_like(metric: str) -> bool:
    higher, _ = catalog.direction(metric)
    words = [w for w in "".join(ch if ch.isalnum() else " " for ch in metric.lower()).split()]
    return not higher and (any(w in LOSS_WORDS for w in words) or metric.lower().endswith(("loss", "error")))


# =============================================================================================
# Checks on the searched runs
# =============================================================================================
def check_stale(runs: list[dict], stale_ms: int, now_ms: int) -> list[Finding]:
    """RUNNING runs whose writer is gone or that wrote nothing for longer than stale_ms (runs.liveness)."""
    out = []
    for run in runs:
        verdict = liveness.judge(run, stale_ms, now_ms)
        if verdict.abandoned:
            detail = {"idle_ms": verdict.idle_ms, "state": verdict.state}
            finding = Finding(
                "stale", verdict.idle_ms, verdict.reason, run_cmd(rid(run)), [rid(run)], name_of(run), detail=detail
            )
            out.append(finding)
    return out


def check_failed(runs: list[dict]) -> list[Finding]:
    out = []
    for run in runs:
        status = run["info"].get("status")
        if status not in ("FAILED", "KILLED"):
            continue
        errors = rc.error_tags(run)
        why = "; ".join(f"{k}: {v}" for k, v in errors.items())
        reason = f"{status}" + (f": {truncate(why, 100)}" if why else " (no error tag)")
        when = int(run["info"].get("end_time") or run["info"].get("start_time") or 0)
        out.append(
            Finding("failed", when, reason, run_cmd(rid(run)), [rid(run)], name_of(run), detail={"status": status})
        )
    return out


def check_non_finite(runs: list[dict]) -> list[Finding]:
    out = []
    for run in runs:
        bad = [m for m in run.get("data", {}).get("metrics", []) or [] if not finite(to_float(m.get("value")))]
        if not bad:
            continue
        bad.sort(key=lambda m: m["key"])
        shown = ", ".join(
            f"{m['key']} = {fmt_num(to_float(m.get('value')))} (step {m.get('step', 0)})" for m in bad[:4]
        )
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        reason = f"last value not finite: {shown}{more}"
        first = bad[0]["key"]
        out.append(
            Finding(
                "non_finite",
                len(bad),
                reason,
                history_cmd([rid(run)], first),
                [rid(run)],
                name_of(run),
                first,
                to_float(bad[0].get("value")),
                {"metrics": [m["key"] for m in bad]},
            )
        )
    return out


def key_metrics(runs: list[dict], wanted: list[str] | None, cap: int = 8) -> list[str]:
    """--metric, else the (non-system) metrics at least half the runs have, most common first."""
    if wanted:
        return wanted
    counts: dict[str, int] = {}
    for run in runs:
        for key, value in lookups.run_metrics(run).items():
            if finite(value) and not key.startswith("system/"):
                counts[key] = counts.get(key, 0) + 1
    need = max(MIN_SIBLINGS, (len(runs) + 1) // 2)
    return [k for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= need][:cap]


def robust_z(values: list[float]) -> tuple[float, float, str] | None:
    """(median, scale, how) so that z = (x - median) / scale; None when the values do not vary."""
    med = median(values)
    mad = median(abs(v - med) for v in values)
    if mad > 0:
        return med, mad / MAD_SCALE, "median/MAD"
    mean_ad = sum(abs(v - med) for v in values) / len(values)
    if mean_ad > 0:
        return med, mean_ad * MEAN_AD_SCALE, "median/mean absolute deviation (MAD is 0)"
    return None


def check_outliers(runs: list[dict], metrics: list[str], z_limit: float, skips: dict[str, Skipped]) -> list[Finding]:
    """Outliers per metric; the values left out (NaN, infinite, never logged) are counted in `skips`."""
    out = []
    for metric in metrics:
        lacking = skips.setdefault(metric, Skipped())
        have = [(run, lookups.run_metrics(run).get(metric)) for run in runs]
        have = [(run, v) for run, v in have if lacking.usable(v, skip_infinite=True)]
        if len(have) < MIN_SIBLINGS:
            continue
        stats = robust_z([v for _, v in have])
        if stats is None:
            continue
        med, scale, how = stats
        typical = min(have, key=lambda rv: abs(rv[1] - med))[0]
        higher, _ = catalog.direction(metric)
        for run, value in have:
            z = (value - med) / scale
            if abs(z) <= z_limit:
                continue
            side = "above" if z > 0 else "below"
            worse = (z < 0) == higher
            reason = (
                f"{metric} = {fmt_num(value)}, far {side} the median {fmt_num(med)} of {len(have)} runs "
                f"(robust z {z:+.1f}, limit ±{z_limit:g}; {'worse' if worse else 'better'} side)"
            )
            command = f"{PROG} compare {rid(run)} {rid(typical)}" if typical is not run else run_cmd(rid(run))
            out.append(
                Finding(
                    "outlier",
                    abs(z),
                    reason,
                    command,
                    [rid(run)],
                    name_of(run),
                    metric,
                    value,
                    {"z": z, "median": med, "siblings": len(have), "method": how, "worse": worse},
                )
            )
    return out


def check_duplicates(runs: list[dict], twins: list[dict]) -> list[Finding]:
    """FINISHED runs with identical params and different results; unfinished runs sharing a
    configuration with another run go to `twins` (a FAILED run's metrics are not a result)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        params = lookups.run_params(run)
        if params:
            groups.setdefault(tuple(sorted(params.items())), []).append(run)
    out = []
    for key, members in groups.items():
        if len(members) < 2:
            continue
        config = truncate(", ".join(f"{k}={v}" for k, v in key), 70)
        finished = [r for r in members if r["info"].get("status") == "FINISHED"]
        unfinished = [r for r in members if r["info"].get("status") != "FINISHED"]
        if unfinished:
            twins.append(twin_record(config, finished, unfinished))
        spread = widest_spread(finished) if len(finished) >= 2 else None
        if spread is None:
            continue
        metric, lo, hi, rel, n_metrics = spread
        reason = (
            f"{len(finished)} FINISHED runs with identical params ({config}) differ: {metric} "
            f"{fmt_num(lo)}–{fmt_num(hi)} (spread {fmt_num(hi - lo)}, {fmt_percent(rel)} of |median|)"
            + (f"; {n_metrics - 1} more metrics differ" if n_metrics > 1 else "")
            + (
                f"; {len(unfinished)} unfinished twin{'s' if len(unfinished) > 1 else ''} left out"
                if unfinished
                else ""
            )
        )
        ids = [rid(r) for r in finished]
        out.append(
            Finding(
                "duplicate",
                rel,
                reason,
                f"{PROG} compare {' '.join(ids[:4])}",
                ids,
                name_of(finished[0]),
                metric,
                hi - lo,
                {"params": dict(key), "min": lo, "max": hi, "relative_spread": rel},
            )
        )
    return out


def twin_record(config: str, finished: list[dict], unfinished: list[dict]) -> dict:
    return {
        "params": config,
        "finished": [rid(r) for r in finished],
        "unfinished": [
            {"run_id": rid(r), "run_name": name_of(r), "status": r["info"].get("status")} for r in unfinished
        ],
    }


def twins_lines(twins: list[dict], top: int) -> list[str]:
    """Unfinished runs that share their params with other runs, one line per configuration."""
    if not twins:
        return []
    lines = ["", f"unfinished runs with the params of other runs ({len(twins)} configurations; not compared):"]
    for twin in twins[:top]:
        names = ", ".join(f"{truncate(u['run_name'], 30)} {u['status']} ({u['run_id']})" for u in twin["unfinished"])
        lines.append(f"- {twin['params']}: {names}; {len(twin['finished'])} FINISHED")
    if len(twins) > top:
        lines.append(f"- … {len(twins) - top} more: raise --top, or --format json")
    return lines


def widest_spread(members: list[dict]) -> tuple[str, float, float, float, int] | None:
    """(metric, min, max, spread/|median|, metrics that differ) over metrics every member has."""
    values = [lookups.run_metrics(r) for r in members]
    shared = set.intersection(*({k for k, v in m.items() if finite(v) and not k.startswith("system/")} for m in values))
    best = None
    differing = 0
    for metric in sorted(shared):
        vals = [m[metric] for m in values]
        lo, hi = min(vals), max(vals)
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            continue
        differing += 1
        rel = (hi - lo) / max(abs(median(vals)), 1e-12)
        if best is None or rel > best[3]:
            best = (metric, lo, hi, rel)
    return (*best, differing) if best else None


# =============================================================================================
# Divergence: sampled histories, bounded requests
# =============================================================================================
def sample_histories(store: Store, run_ids: list[str], metric: str) -> tuple[dict[str, list[tuple[int, float]]], int]:
    """{run_id: [(step, value), ...] by step} for at most SAMPLE_POINTS per run, and the request count."""
    out: dict[str, list[tuple[int, float]]] = {r: [] for r in run_ids}
    requests = 0
    for i in range(0, len(run_ids), RUNS_PER_CALL):
        params = {"run_ids": run_ids[i : i + RUNS_PER_CALL], "metric_key": metric, "max_results": SAMPLE_POINTS}
        payload = store.get(BULK_INTERVAL, params, what=f"history of {metric}")
        requests += 1
        for m in payload.get("metrics", []) or []:
            out.setdefault(m.get("run_id", ""), []).append((int(m.get("step", 0) or 0), to_float(m.get("value"))))
    return {r: sorted(p, key=lambda sv: sv[0]) for r, p in out.items()}, requests


def divergence(points: list[tuple[int, float]], limit: float) -> dict | None:
    """A finding's numbers when the last value is far above the minimum, else None."""
    values = [(s, v) for s, v in points if finite(v)]
    if len(values) < 3 or not finite(points[-1][1]):
        return None  # a non-finite last value is the non_finite check's finding
    first, last = values[0][1], values[-1][1]
    min_step, low = min(values, key=lambda sv: sv[1])
    scale = max(first - low, abs(low))
    rise = last - low
    if scale <= 0 or rise <= limit * scale:
        return None
    return {
        "first": first,
        "min": low,
        "min_step": min_step,
        "last": last,
        "last_step": values[-1][0],
        "rise": rise,
        "ratio": rise / scale,
        "points": len(points),
        "sampled": len(points) >= SAMPLE_POINTS,
    }


def check_diverging(store: Store, runs: list[dict], rules: Rules, notes: list[str]) -> list[Finding]:
    candidates: dict[str, list[dict]] = {}
    for run in runs:
        for m in run.get("data", {}).get("metrics", []) or []:
            if (
                int(m.get("step", 0) or 0) > 0
                and loss_like(m["key"])
                and (rules.metrics is None or m["key"] in rules.metrics)
            ):
                candidates.setdefault(m["key"], []).append(run)
    out, requests = [], 0
    for metric, with_history in sorted(candidates.items()):
        chosen = sorted(with_history, key=lambda r: -int(r["info"].get("start_time") or 0))[: rules.history_runs]
        if len(chosen) < len(with_history):
            notes.append(
                f"diverging: {metric} read for the newest {len(chosen)} of {len(with_history)} runs (--history-runs)"
            )
        try:
            series, n = sample_histories(store, [rid(r) for r in chosen], metric)
        except NotFoundError:
            notes.append("diverging: not checked, the store does not serve get-history-bulk-interval")
            return out
        requests += n
        for run in chosen:
            found = divergence(series.get(rid(run), []), rules.diverge)
            if found:
                out.append(diverging_finding(run, metric, found, rules.diverge))
    if candidates:
        notes.append(
            f"diverging: {', '.join(sorted(candidates))} sampled (≤{SAMPLE_POINTS} points per run, {requests} "
            f"request{'s' if requests != 1 else ''})"
        )
    return out


def diverging_finding(run: dict, metric: str, d: dict, limit: float) -> Finding:
    sampled = " (sampled)" if d["sampled"] else ""
    reason = (
        f"{metric} ends at {fmt_num(d['last'])} (step {d['last_step']}), {fmt_num(d['rise'])} above its minimum "
        f"{fmt_num(d['min'])} at step {d['min_step']} (first {fmt_num(d['first'])}): {d['ratio']:.1f}× max(first − "
        f"min, |min|), "
        f"limit {limit:g}×{sampled}"
    )
    return Finding(
        "diverging", d["ratio"], reason, history_cmd([rid(run)], metric), [rid(run)], name_of(run), metric, d["last"], d
    )


# =============================================================================================
# The command
# =============================================================================================
HEALTH_DESCRIPTION = """What deserves a look in an experiment, each finding with its reason and the command to dig in:
  stale       RUNNING runs with no write (start, metric timestamps) for longer than --stale (default 1h)
  failed      FAILED and KILLED runs (counted; the newest listed with their error tags)
  non_finite  metrics whose last value is NaN or infinite
  diverging   loss-like metrics whose last value is far above the run's minimum: last - min >
              --diverge x max(first - min, |min|), from a history sampled on the server (at most
              200 points per run, 100 runs per request; --history-runs bounds the runs read)
  outlier     key metrics far from the siblings' median: robust z = 0.6745 (x - median) / MAD
              beyond --z (default 3.5), among at least 5 runs of the same experiment
  duplicate   FINISHED runs with identical params and different results, with the spread;
              unfinished runs sharing those params are listed apart, not compared
Without --experiment every active experiment is checked, each run against its own experiment's runs.
Key metrics: --metric, else those at least half the runs have. Shows the worst --top per kind
and counts the rest; --format json lists every finding.

Examples:
  uv run scripts/query_experiments.py health --experiment mnist
  uv run scripts/query_experiments.py health --experiment mnist --stale 30m --metric val_loss --top 10
  uv run scripts/query_experiments.py health --experiment mnist --filter "params.model = 'cnn'" --format json"""


def rules_from(args) -> Rules:
    stale_ms = parse_duration_ms(args.stale, "--stale")
    if args.z <= 0 or args.diverge <= 0:
        raise UsageError("--z and --diverge must be positive")
    if args.top < 1 or args.limit < 1 or args.history_runs < 1:
        raise UsageError("--top, --limit and --history-runs must be at least 1")
    metrics = [m.strip() for m in ",".join(args.metric or []).split(",") if m.strip()] or None
    return Rules(stale_ms, args.z, args.diverge, metrics, args.history_runs)


def fetch_runs(ctx: Context, limit: int) -> tuple[rs.Query, list[dict], bool]:
    query = rs.build_query(ctx.store, ctx.args.experiment, ctx.args.filter, None, None, "active")
    runs = list(rs.iter_runs(ctx.store, query, limit + 1))
    return query, runs[:limit], len(runs) > limit


def cmd_health(ctx: Context) -> int:
    args = ctx.args
    rules = rules_from(args)  # no --experiment: every active experiment, each run against its own siblings
    query, runs, truncated = fetch_runs(ctx, args.limit)
    notes: list[str] = []
    findings = check_stale(runs, rules.stale_ms, int(time.time() * 1000)) + check_failed(runs) + check_non_finite(runs)
    findings += check_diverging(ctx.store, runs, rules, notes)
    checked: dict[str, list[str]] = {}
    skips: dict[str, Skipped] = {}
    twins: list[dict] = []
    for exp_id, siblings in by_experiment(runs).items():
        metrics = key_metrics(siblings, rules.metrics)
        checked[exp_id] = metrics
        findings += check_outliers(siblings, metrics, rules.z, skips) + check_duplicates(siblings, twins)
    skipped = skipped_line("the outlier check", skips)
    notes += [skipped] if skipped else []
    view = health_view(ctx, query, runs, truncated, findings, checked, rules, notes)
    view.data["outlier_skipped"] = {metric: s.record() for metric, s in skips.items()}
    view.data["unfinished_twins"] = twins
    view.after = twins_lines(twins, ctx.args.top) + view.after
    ctx.emit(view)
    return 0


def ranked(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {kind: [] for kind in KINDS}
    for f in findings:
        out[f.kind].append(f)
    for items in out.values():
        items.sort(key=lambda f: -f.score)
    return out


def rule_lines(rules: Rules, checked: dict[str, list[str]], names: dict[str, str]) -> list[str]:
    metrics = sorted({m for ms in checked.values() for m in ms})
    return [
        f"rules: stale = RUNNING with no write for > {fmt_duration(rules.stale_ms)} (--stale); outlier = robust z "
        f"(median/MAD) beyond ±{rules.z:g} among ≥{MIN_SIBLINGS} runs (--z) on "
        + (
            ", ".join(metrics[:8]) + (" …" if len(metrics) > 8 else "")
            if metrics
            else "no metric (too few runs share one; --metric)"
        )
        + f"; diverging = last − min > {rules.diverge:g}× max(first − min, |min|) (--diverge)",
    ]


def health_view(ctx, query, runs, truncated, findings, checked, rules, notes) -> View:
    by_kind = ranked(findings)
    names = rc.exp_name_map(query)
    status = {
        s: sum(1 for r in runs if r["info"].get("status") == s)
        for s in ("RUNNING", "FINISHED", "FAILED", "KILLED", "SCHEDULED")
    }
    counts = {kind: len(items) for kind, items in by_kind.items()}
    shown = [f for kind in KINDS for f in by_kind[kind][: ctx.args.top]]
    total = sum(counts.values())
    scope = rc.scope_line(query)
    head = f"Health of runs {scope}: {len(runs)} runs checked" + (f" (first {len(runs)}; --limit)" if truncated else "")
    lines = [
        head + (f"; {total} findings" if total else "; nothing to flag"),
        "statuses: " + ", ".join(f"{k} {v}" for k, v in status.items() if v),
    ]
    if total:
        lines.append("found: " + " · ".join(f"{KINDS[k]} {n}" for k, n in counts.items() if n))
    lines += rule_lines(rules, checked, names) + notes + [""]
    rows = [[KINDS[f.kind], truncate(f.run_name, 30), f.reason, f"`{f.command}`"] for f in shown]
    raw = [[f.kind, f.run_name, f.reason, f.command] for f in shown]  # ids: in the command, and in --format json
    after = []
    hidden = total - len(shown)
    if hidden:
        after.append(
            f"\n{hidden} more findings not shown (worst {ctx.args.top} per kind): raise --top, or --format json for all"
        )
    if counts["failed"]:
        scope = "".join(f" --experiment {shlex.quote(e)}" for e in ctx.args.experiment or [])
        after.append(f"failed runs with their error tags: `{PROG} failed{scope}`")
    data = {
        "experiments": [{"id": e["experiment_id"], "name": e["name"]} for e in query.experiments],
        "runs_checked": len(runs),
        "truncated": truncated,
        "statuses": status,
        "counts": counts,
        "rules": {
            "stale_ms": rules.stale_ms,
            "z": rules.z,
            "diverge": rules.diverge,
            "min_siblings": MIN_SIBLINGS,
            "sample_points": SAMPLE_POINTS,
        },
        "key_metrics": {names.get(k, k): v for k, v in checked.items()},
        "notes": notes,
        "findings": [f.record() for kind in KINDS for f in by_kind[kind]],
    }
    return View(
        data=data,
        lines=lines,
        table=Table(["kind", "run", "reason", "dig in"], rows, raw),
        after=after,
        empty="no stale, failed, non-finite, diverging, outlying or duplicated runs",
    )
