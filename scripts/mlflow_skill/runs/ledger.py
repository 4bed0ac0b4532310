"""The trial ledger read from the store (the counting rules are quant/ledger.py's): every backtest
run of a research question, deleted and unfinished ones included, for `best` and for a sweep
being logged. `--ledger` chooses the question: `experiment` (default: each run's own experiment),
`sweep` (each run's own sweep, or a run's experiment when it is not in one), `sweep:PARENT_RUN_ID`,
or `experiments:NAME,NAME` (several experiments, one ledger).

For `best`, the deflated Sharpe of the runs shown takes N and V from the ledger, never from what
--filter or --top leave on screen, and the sweeps they belong to show the PBO logged with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlflow_skill.cli.view import View
from mlflow_skill.core.errors import NotFoundError, UsageError
from mlflow_skill.core.formatting import fmt_num, json_safe, md_table, truncate
from mlflow_skill.quant import ledger as ql
from mlflow_skill.quant import sharpe as sharpe_stats
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

LEDGER_HELP = (
    "which runs count as trials for the deflated Sharpe ratio: experiment (default), sweep, sweep:PARENT_RUN_ID, "
    "or experiments:NAME,NAME; deleted and failed runs included, re-logged duplicates once"
)
PBO_SHOWN = 3  # sweeps whose PBO `best` prints


@dataclass(frozen=True)
class Scope:
    kind: str  # experiment, sweep, experiments
    refs: tuple[str, ...] = ()  # sweep: the parent run id; experiments: names or ids


def parse_scope(text: str | None) -> Scope:
    value = (text or "experiment").strip()
    kind, _, rest = value.partition(":")
    refs = tuple(r.strip() for r in rest.split(",") if r.strip())
    if kind == "experiment" and not rest:
        return Scope("experiment")
    if kind == "sweep" and len(refs) <= 1 and (not rest or refs):
        return Scope("sweep", refs)
    if kind == "experiments" and refs:
        return Scope("experiments", refs)
    raise UsageError(
        f"--ledger {value!r}: pass experiment, sweep, sweep:PARENT_RUN_ID or experiments:NAME,NAME "
        "(the runs that count as trials of one research question)"
    )


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def entry_of(run: dict) -> ql.Entry | None:
    """A run as a trial, or None: a sweep's parent, or a run with neither a Sharpe ratio nor the tags
    log_backtest.py sets at creation (a run that failed before its metrics still counts)."""
    tags, metrics, params = lookups.run_tags(run), lookups.run_metrics(run), lookups.run_params(run)
    info = run["info"]
    if ql.SWEEP_TAG in tags:
        return None
    key = tags.get(ql.CONFIG_TAG) or tags.get(ql.FINGERPRINT_TAG)
    if key is None and "sharpe" not in metrics:
        return None
    bars = _number(params.get("data.periods"))
    return ql.Entry(
        key=key or f"run:{info['run_id']}",
        run_id=info["run_id"],
        experiment_id=str(info.get("experiment_id")),
        status=info.get("status", ""),
        deleted=info.get("lifecycle_stage") == "deleted",
        start_time=int(info.get("start_time") or 0),
        sharpe_annual=_number(metrics.get("sharpe")),
        periods_per_year=_number(params.get("data.periods_per_year")),
        bars=int(bars) if bars is not None else None,
        skew=_number(metrics.get("skew")),
        excess_kurtosis=_number(metrics.get("kurtosis")),
    )


def read_entries(store: Store, experiment_ids: list[str], parent_id: str | None = None) -> list[ql.Entry]:
    """Every trial run of the experiments (or of one sweep), active and deleted, any status."""
    body: dict = {"experiment_ids": list(experiment_ids), "run_view_type": "ALL"}
    if parent_id:
        body["filter"] = f"tags.`{ql.PARENT_TAG}` = '{parent_id}'"
    runs = lookups.paged(store, f"{lookups.API}/runs/search", body, "runs")
    return [e for e in (entry_of(r) for r in runs) if e is not None]


def experiment_ids(store: Store, refs: tuple[str, ...]) -> tuple[list[str], str]:
    """Experiments by name or id -> (ids, 'experiments 'a', 'b'')."""
    found = [lookups.get_experiment(store, ref) for ref in refs]
    ids = list(dict.fromkeys(e["experiment_id"] for e in found))
    return ids, "experiments " + ", ".join(repr(e["name"]) for e in found)


# ---------------------------------------------------------------------------------------------
# `best`: the shown runs deflated against their ledger
# ---------------------------------------------------------------------------------------------
@dataclass
class Resolved:
    """Which ledger each shown run is deflated against."""

    ledgers: dict[str, ql.Ledger]  # key -> ledger
    of_run: dict[str, str]  # run id -> ledger key


def resolve(store: Store, scope: Scope, shown: list[dict], names: dict[str, str]) -> Resolved:
    ledgers: dict[str, ql.Ledger] = {}
    of_run: dict[str, str] = {}
    if scope.kind == "experiments" or (scope.kind == "sweep" and scope.refs):
        if scope.kind == "experiments":
            ids, words = experiment_ids(store, scope.refs)
            entries = read_entries(store, ids)
        else:
            parent = lookups.get_run(store, scope.refs[0])
            words = f"sweep {lookups.run_name(parent)!r} ({scope.refs[0]})"
            entries = read_entries(store, [parent["info"]["experiment_id"]], scope.refs[0])
        ledgers["all"] = ql.build(words, entries)
        return Resolved(ledgers, {r["info"]["run_id"]: "all" for r in shown})
    for run in shown:
        exp_id = run["info"]["experiment_id"]
        parent_id = lookups.run_tags(run).get(ql.PARENT_TAG) if scope.kind == "sweep" else None
        key = f"sweep:{parent_id}" if parent_id else f"experiment:{exp_id}"
        if key not in ledgers:
            words = f"sweep {parent_id}" if parent_id else f"experiment {names.get(exp_id, exp_id)!r}"
            ledgers[key] = ql.build(words, read_entries(store, [exp_id], parent_id))
        of_run[run["info"]["run_id"]] = key
    return Resolved(ledgers, of_run)


def counted_as(ledger: ql.Ledger, trials_flag: int | None) -> str:
    if trials_flag:
        return (
            f"N = {trials_flag} given by --trials (the ledger of {ledger.scope} has {ledger.trials}); V from the ledger"
        )
    return f"N = {ledger.trials}: the trial ledger of {ledger.scope}: {ledger.describe()}"


def add_deflated_sharpe(store: Store, view: View, shown: list[dict], names: dict[str, str], args) -> None:
    """PSR, DSR and MinTRL of the shown runs, N and V from the trial ledger (or --trials N with the
    ledger's V), said in the answer; then the PBO of the sweeps they belong to."""
    from mlflow_skill.runs.compare import backtest_trial

    scope = parse_scope(getattr(args, "ledger", None))  # a bad --ledger is refused even with no backtest shown
    trials = {r["info"]["run_id"]: t for r in shown if (t := backtest_trial(r)) is not None}
    if not trials:
        return
    resolved = resolve(store, scope, shown, names)
    rows, result = [], {"psr": {}, "dsr": {}, "min_trl_years": {}}
    for run in shown:
        rid = run["info"]["run_id"]
        if rid not in trials:
            continue
        ledger = resolved.ledgers[resolved.of_run[rid]]
        deflated = ql.deflate(trials[rid], args.trials or ledger.trials, ledger.variance_annual)
        for key in result:
            result[key][rid] = getattr(deflated, key)
        rows.append(
            [
                truncate(lookups.run_name(run), 30),
                rid[:8],
                fmt_num(deflated.psr, 3),
                fmt_num(deflated.dsr, 3),
                _years(deflated.min_trl_years),
            ]
        )
    winner = next(rid for rid in (r["info"]["run_id"] for r in shown) if rid in trials)
    first = resolved.ledgers[resolved.of_run[winner]]
    ppy = trials[winner].periods_per_year
    n_first = args.trials or first.trials
    ledgers = list(resolved.ledgers.values())
    view.after += [
        "",
        *[f"Deflated Sharpe (Bailey & López de Prado): {counted_as(lg, args.trials)}" for lg in ledgers],
        f"V = {first.variance_annual:.3g} (variance of the trials' annualised Sharpe ratios; "
        f"{first.variance_per_bar(ppy):.3g} per bar²); expected best of N under no skill SR0 = "
        f"{sharpe_stats.expected_max_sharpe(n_first, first.variance_per_bar(ppy)):.3g} per bar. "
        "--filter and --top choose the runs shown, not N or V.",
        md_table(["run", "id", "PSR (SR>0)", "DSR (SR>SR0)", "MinTRL 95 % (years)"], rows),
        f"winner: {sharpe_stats.verdict(result['dsr'][winner])}",
    ]
    view.data["deflated_sharpe"] = {
        "trials": n_first,
        "trials_counted_as": counted_as(first, args.trials),
        "sharpe_variance_per_bar": first.variance_per_bar(ppy),
        "sharpe_variance_annual": first.variance_annual,
        "sr0_per_bar": sharpe_stats.expected_max_sharpe(n_first, first.variance_per_bar(ppy)),
        **{key: json_safe(values) for key, values in result.items()},
        "ledgers": [lg.as_dict() for lg in ledgers],
    }
    add_sweep_pbo(store, view, shown)


def _years(value: float) -> str:
    if math.isinf(value):
        return "never (SR <= 0)"
    return fmt_num(value, 3)


def add_sweep_pbo(store: Store, view: View, shown: list[dict]) -> None:
    """The PBO (and the figures beside it) logged on the parents of the sweeps the shown runs are in."""
    parents = list(dict.fromkeys(p for r in shown if (p := lookups.run_tags(r).get(ql.PARENT_TAG))))
    found = []
    for parent_id in parents[:PBO_SHOWN]:
        try:
            parent = lookups.get_run(store, parent_id)
        except NotFoundError:  # a parent deleted for good: nothing to show
            continue
        metrics = lookups.run_metrics(parent)
        if "pbo" not in metrics:
            continue
        slope, loss = metrics.get("pbo_degradation_slope"), metrics.get("pbo_prob_oos_loss")
        view.after.append(
            f"PBO of sweep **{lookups.run_name(parent)}** ({parent_id[:8]}, logged with it, CSCV): "
            f"{fmt_num(metrics['pbo'], 3)}; degradation slope {fmt_num(slope, 3)}, "
            f"P(loss out of sample) {fmt_num(loss, 3)}"
        )
        keys = ("pbo", "pbo_degradation_slope", "pbo_prob_oos_loss")
        found.append({"parent_run_id": parent_id, **{k: metrics.get(k) for k in keys}})
    if found:
        view.data["pbo"] = json_safe(found)
