"""What log_backtest.py prints: for one backtest, what was logged where and the headline metrics
(labels and units from the metric registry); for a sweep, the common window, the winner's
deflated Sharpe and the ranking. The JSON form is built here from the typed job and its outcome.
"""

from __future__ import annotations

import dataclasses
import math

from mlflow_skill.backtest import sweep as sw
from mlflow_skill.backtest.job import HISTORY_TAG, UNDEFINED_TAG, BacktestJob
from mlflow_skill.backtest.outcome import Action, RunOutcome
from mlflow_skill.backtest.runstore import FINGERPRINT_TAG
from mlflow_skill.backtest.sweepjob import SweepJob
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.formatting import fmt_num, json_safe, truncate
from mlflow_skill.quant import catalog

RANKING_SHOWN = 10  # rows of the ranking in the markdown output; the artifact holds every row


# ---------------------------------------------------------------------------------------------
# The JSON form
# ---------------------------------------------------------------------------------------------
def run_fields(dry_run: bool, outcome: RunOutcome, fingerprint: str) -> dict:
    """The keys one backtest and a sweep share, from dry_run to previous."""
    return {
        "dry_run": dry_run,
        "action": outcome.action.value if outcome.action else None,
        "experiment": outcome.experiment,
        "experiment_id": outcome.experiment_id,
        "experiment_status": outcome.experiment_status,
        "run_name": outcome.run_name,
        "run_id": outcome.run_id,
        "status": outcome.status.value if outcome.status else None,
        "url": outcome.url,
        "fingerprint": fingerprint,
        "previous": outcome.previous.as_dict() if outcome.previous else None,
    }


def summary(job: BacktestJob) -> dict:
    outcome, result = job.outcome, job.result
    return {
        **run_fields(bool(job.args.dry_run), outcome, job.fingerprint),
        "periods_per_year": job.periods[0],
        "periods_per_year_how": job.periods[1],
        "risk_free": job.args.risk_free,
        "data": {k: v for k, v in job.params.items() if k.startswith("data.")},
        "notes": job.notes,
        "metrics": result.metrics,
        "undefined_metrics": result.undefined,
        "undefined_reasons": result.reasons,
        "params": job.params,
        "tags": job.tags,
        "histories": outcome.histories,
        "history_resampled": job.tags.get(HISTORY_TAG),
        "artifacts": outcome.artifacts,
        "requests": outcome.requests,
    }


def sweep_summary(job: SweepJob) -> dict:
    sweep = job.sweep
    return {
        **run_fields(bool(job.args.dry_run), job.outcome, job.fingerprint),
        "notes": job.notes,
        "params": job.params,
        "tags": job.tags,
        "metrics": job.metrics,
        "histories": job.outcome.histories,
        "artifacts": job.outcome.artifacts,
        "requests": job.outcome.requests,
        "periods_per_year": job.periods[0],
        "periods_per_year_how": job.periods[1],
        "window": {
            "start": sweep.start.isoformat(),
            "end": sweep.end.isoformat(),
            "bars": len(sweep.variants[0].returns),
            "shared_bars": sweep.bars_total,
            "last_to_start": sweep.last_to_start,
            "dropped_bars": {v.name: v.dropped for v in sweep.variants},
        },
        "out_of_sample": out_of_sample(job),
        "deflated_sharpe": dataclasses.asdict(job.deflated_sharpe) if job.deflated_sharpe else None,
        "pbo": job.overfitting.as_dict() if job.overfitting else None,
        "ranking": job.rows,
    }


def out_of_sample(job: SweepJob) -> dict | None:
    """The held-out bars and the in-sample winner's figures on both sides, with its out-of-sample rank."""
    oos = job.sweep.oos
    if oos is None or not job.rows:
        return None
    best = job.rows[0]
    by_oos = sorted(
        (r for r in job.rows if r.get("oos_sharpe") is not None),
        key=lambda r: -r["oos_sharpe"],
    )
    rank = next((i for i, r in enumerate(by_oos, 1) if r["variant"] == best["variant"]), None)
    return {
        "start": oos.start.isoformat(),
        "end": oos.end.isoformat(),
        "bars": oos.bars,
        "how": oos.how,
        "winner": best["variant"],
        "in_sample": {k: best.get(k) for k in ("sharpe", "cagr", "max_drawdown")},
        "out_of_sample": {k.removeprefix("oos_"): best.get(k) for k in sw.OOS_KEYS},
        "winner_oos_rank": rank,
        "variants": len(by_oos),
    }


# ---------------------------------------------------------------------------------------------
# One backtest
# ---------------------------------------------------------------------------------------------
def fmt_metric(key: str, value: float | None) -> str:
    if value is None:
        return "undefined"
    if catalog.shown_as_percent(key):
        return f"{fmt_num(value * 100)} %"
    return fmt_num(value)


def headline_metrics(metrics: dict[str, float]) -> list[catalog.Metric]:
    """The headline preset; its benchmark-relative rows only when there is a benchmark."""
    with_benchmark = any(k.startswith("benchmark_") for k in metrics)
    return [m for m in catalog.preset(catalog.HEADLINE) if with_benchmark or m.group != catalog.BENCHMARK]


def backtest_view(job: BacktestJob) -> View:
    s = summary(job)
    headline = headline_metrics(s["metrics"])
    rows = [[m.label, fmt_metric(m.key, s["metrics"].get(m.key)), m.key] for m in headline]
    return View(
        data=json_safe(s),
        lines=[*headline_line(s), *data_lines(s), ""],
        table=Table(
            ["metric", "value", "key"], rows, raw=[[m.label, s["metrics"].get(m.key), m.key] for m in headline]
        ),
        after=after_lines(s),
    )


def headline_line(s: dict) -> list[str]:
    where = f"in experiment **{s['experiment']}** (id {s['experiment_id']})"
    if s["dry_run"]:
        return [f"Dry run: nothing logged (experiment **{s['experiment']}**, run name **{s['run_name']}**)"]
    if s["action"] == Action.ALREADY_LOGGED:
        return [
            f"Already logged: run **{s['run_name']}** (id {s['run_id']}) {where}: {s['status']}; nothing written",
            "",
            (
                f"- same backtest (tag {FINGERPRINT_TAG}={s['fingerprint']}: "
                "data, params, periods, risk-free, run name); --force-new logs another run"
            ),
        ]
    lines = [f"Logged run **{s['run_name']}** (id {s['run_id']}) {where}: {s['status']}", ""]
    previous = s.get("previous")
    if s["action"] == Action.COMPLETED and previous:
        why = f"FAILED: {truncate(previous['error'], 160)}" if previous.get("error") else previous["status"]
        if previous["status"] == "RUNNING":
            why = "RUNNING, left by a process that is gone"
        lines.append(f"- completed an earlier run of this backtest (it was {why}); no new run created")
    if s.get("experiment_status") in ("created", "restored"):
        lines.append(f"- experiment **{s['experiment']}** {s['experiment_status']} by this call")
    return lines


def data_lines(s: dict) -> list[str]:
    lines = [f"- link: {s['url']}"] if s.get("url") else []
    d = s["data"]
    bench = ""
    if "data.benchmark_column" in d:
        column = d.get("data.benchmark_column")
        bench = f"; benchmark {d.get('data.benchmark_file') or ''}{' column ' + column if column else ''}"
    lines.append(
        f"- data: {d['data.file']} column {d['data.column']} ({d['data.kind']}), {d['data.periods']} bars "
        f"{d['data.start'][:19]} to {d['data.end'][:19]}{bench}"
    )
    lines.append(
        f"- periods per year: {fmt_num(s['periods_per_year'])} ({s['periods_per_year_how']}); "
        f"risk-free {fmt_num(s['risk_free'])} a year"
    )
    lines += [f"- note: {note}" for note in s["notes"]]
    return lines


def after_lines(s: dict) -> list[str]:
    verb = "would be logged" if s["dry_run"] else "logged" if s["action"] != Action.ALREADY_LOGGED else "in the run"
    lines = [
        "",
        f"- {len(s['metrics'])} metrics {verb} (all of them: --format json, or the backtest/metrics.json artifact)",
    ]
    if s["undefined_metrics"]:
        lines.append(
            f"- undefined for this data, not logged (tag {UNDEFINED_TAG}): {', '.join(s['undefined_metrics'])}"
        )
    if s["histories"]:
        lines.append(f"- histories: {', '.join(f'{k} ({v} steps)' for k, v in s['histories'].items())}")
        if s.get("history_resampled"):
            lines.append(f"- histories {s['history_resampled']} (tag {HISTORY_TAG}); --history-points N changes it")
    if s["artifacts"]:
        lines.append(f"- artifacts: {', '.join(s['artifacts'])}")
    return lines


# ---------------------------------------------------------------------------------------------
# A sweep
# ---------------------------------------------------------------------------------------------
def sweep_view(job: SweepJob, prog: str) -> View:
    s, rows = sweep_summary(job), job.rows
    params = list(dict.fromkeys(k for r in rows for k in r if k.startswith("param.")))
    headers = [
        "rank",
        "variant",
        *[p.removeprefix("param.") for p in params],
        "sharpe",
        "PSR",
        "DSR",
        "MinTRL (y)",
        "CAGR",
        "max DD",
        *(["OOS sharpe"] if s["out_of_sample"] else []),
        "run",
    ]
    shown = [
        [
            r["rank"],
            r["variant"],
            *[r.get(p, "") for p in params],
            fmt_num(r["sharpe"]),
            fmt_num(r["psr"], 3),
            fmt_num(r["dsr"], 3),
            _years(r.get("min_trl_years")),
            _pct(r["cagr"]),
            _pct(r["max_drawdown"]),
            *([fmt_num(r.get("oos_sharpe"))] if s["out_of_sample"] else []),
            (r["run_id"] or "")[:8],
        ]
        for r in rows[:RANKING_SHOWN]
    ]
    keys = ["sharpe", "psr", "dsr", "min_trl_years", "cagr", "max_drawdown"]
    keys += ["oos_sharpe", "run_id"] if s["out_of_sample"] else ["run_id"]
    raw = [[r["rank"], r["variant"], *[r.get(p) for p in params], *[r.get(k) for k in keys]] for r in rows]
    return View(
        data=json_safe(s),
        lines=[*_sweep_headline(s), "", *_sweep_facts(s), ""],
        table=Table(headers, shown, raw),
        after=_sweep_after(s, rows, prog),
    )


def _years(value: float | None) -> str:
    if value is None:
        return ""
    return "never" if math.isinf(value) else fmt_num(value, 3)


def _sweep_facts(s: dict) -> list[str]:
    """The window (and what each variant lost to it), the periods, notes, the deflated Sharpe with
    its ledger, PBO and the out-of-sample report."""
    w, d = s["window"], s["deflated_sharpe"]
    window = f"- window: {w['start'][:19]} to {w['end'][:19]}, {w['bars']} bars, the same for every variant"
    if w["bars"] < w["shared_bars"]:
        window += f" (from where {w['last_to_start']} starts; {w['shared_bars']} bars shared)"
    lines = [window]
    dropped = {k: n for k, n in w["dropped_bars"].items() if n}
    if dropped:
        listed = ", ".join(f"{k} {n}" for k, n in list(dropped.items())[:8])
        more = f", and {len(dropped) - 8} more (--format json)" if len(dropped) > 8 else ""
        lines.append(f"- bars of each variant's own data left out of the common window: {listed}{more}")
    lines.append(f"- periods per year: {fmt_num(s['periods_per_year'])} ({s['periods_per_year_how']})")
    lines += [f"- note: {n}" for n in s["notes"]]
    lines.append(f"- winner {d['winner']}: {d['verdict']}; deflated Sharpe with {d['trials_counted_as']}")
    lines += _pbo_lines(s["pbo"]) + _oos_lines(s["out_of_sample"])
    return lines


def _pbo_lines(pbo: dict | None) -> list[str]:
    if not pbo:
        return []
    if pbo.get("pbo") is None:
        return [f"- PBO not computed: {pbo.get('reason')}"]
    return [
        f"- probability of backtest overfitting (CSCV, {pbo['blocks']} blocks, {pbo['splits']:,} splits): "
        f"**{fmt_num(pbo['pbo'], 3)}**, the share of splits where the in-sample winner falls at or below the "
        f"out-of-sample median; degradation slope {fmt_num(pbo['degradation_slope'], 3)} (out-of-sample on "
        f"in-sample Sharpe), P(loss out of sample) {fmt_num(pbo['prob_oos_loss'], 3)}"
    ]


def _oos_lines(oos: dict | None) -> list[str]:
    if not oos:
        return []
    ins, out = oos["in_sample"], oos["out_of_sample"]
    return [
        f"- out of sample ({oos['how']}): {oos['start'][:10]} to {oos['end'][:10]}, {oos['bars']} bars, never used "
        f"to pick; the in-sample winner {oos['winner']}: Sharpe {fmt_num(ins['sharpe'], 3)} in sample, "
        f"{fmt_num(out['sharpe'], 3)} out; CAGR {_pct(ins['cagr'])} / {_pct(out['cagr'])}; max drawdown "
        f"{_pct(ins['max_drawdown'])} / {_pct(out['max_drawdown'])}; out-of-sample rank {oos['winner_oos_rank']} "
        f"of {oos['variants']} by Sharpe"
    ]


def _pct(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value * 100:.1f} %"


def _sweep_headline(s: dict) -> list[str]:
    where = f"in experiment **{s['experiment']}**" + (f" (id {s['experiment_id']})" if s["experiment_id"] else "")
    if s["dry_run"]:
        return [f"Dry run: sweep **{s['run_name']}**, {s['params']['sweep.variants']} variants, nothing logged"]
    if s["action"] == Action.ALREADY_LOGGED:
        return [
            f"Already logged: sweep **{s['run_name']}** (id {s['run_id']}) {where}: {s['status']}; nothing written "
            "(same data, variants, window and settings; --force-new logs another)"
        ]
    lines = [
        f"Logged sweep **{s['run_name']}** (id {s['run_id']}) {where}: {s['params']['sweep.variants']} child runs, "
        f"{s['status']}"
    ]
    if s.get("experiment_status") in ("created", "restored"):
        lines += ["", f"- experiment **{s['experiment']}** {s['experiment_status']} by this call"]
    return lines


def _sweep_after(s: dict, rows: list[dict], prog: str) -> list[str]:
    lines = [""]
    if len(rows) > RANKING_SHOWN:
        lines.append(
            f"- top {RANKING_SHOWN} of {len(rows)} variants by Sharpe; every row: --format json, or the parent's "
            f"backtest/ranking.csv"
        )
    if s["artifacts"]:
        lines.append(
            f"- parent artifacts: {', '.join(s['artifacts'])} (ranking table, one picture of every equity curve)"
        )
    top = [r["run_id"] for r in rows[:3] if r["run_id"]]
    if len(top) >= 2:
        lines.append(
            f"- compare the best: `{prog.replace('log_backtest.py', 'query_experiments.py')} compare {' '.join(top)} "
            f"--preset backtest`"
        )
    return lines
