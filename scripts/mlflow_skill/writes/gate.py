"""The promotion gate of promote_model.py: what a run must show before a version is registered
from it or an alias is pointed at it. Every check runs before anything is written; the first
that fails refuses the promotion (exit 8) with the figure it read and how to get a missing one.

- always: the run exists, is active (not deleted) and FINISHED;
- --require "FILTER": the run filter grammar of query_experiments.py (runs/search.py), evaluated
  on this one run: the server answers the filter with `attributes.run_id = '<id>'` added (OR
  groups and numeric params are evaluated here, as query_experiments.py does);
- --require-dsr X: the run's deflated Sharpe ratio, metric `dsr` (a sweep's child), or
  `best_dsr` on a sweep's parent, must be at least X;
- --require-pbo-below X: the probability of backtest overfitting, metric `pbo` of the sweep's
  parent (the run's `mlflow.parentRunId`, or the run itself when it is the parent), must be below X.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlflow_skill.core.errors import NotFoundError, RefusedError
from mlflow_skill.core.formatting import fmt_num, fmt_value
from mlflow_skill.runs import search
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

PARENT_TAG = "mlflow.parentRunId"
HOW_TO_GET = (
    "log the variants as a sweep (uv run scripts/log_backtest.py --returns FILE --columns PATTERN ...), "
    "which logs dsr on each variant and best_dsr and pbo on the sweep's parent"
)


@dataclass(frozen=True)
class Gate:
    require: str | None = None
    min_dsr: float | None = None
    pbo_below: float | None = None

    @property
    def asked(self) -> list[str]:
        """The checks asked beyond the one always made, as flags."""
        flags = []
        if self.require:
            flags.append(f'--require "{self.require}"')
        if self.min_dsr is not None:
            flags.append(f"--require-dsr {fmt_num(self.min_dsr)}")
        if self.pbo_below is not None:
            flags.append(f"--require-pbo-below {fmt_num(self.pbo_below)}")
        return flags


def refuse(run: dict, why: str) -> RefusedError:
    info = run["info"]
    return RefusedError(
        f"refused by the gate: run {lookups.run_name(run) or '(unnamed)'} ({info['run_id']}) {why}; "
        "nothing was registered or moved"
    )


def check(store: Store, run: dict, gate: Gate) -> list[str]:
    """Every check on `run`, in order; the passed ones as lines ('status FINISHED', 'dsr 0.97 >= 0.95')."""
    passed = [check_finished(run)]
    if gate.require:
        passed.append(check_require(store, run, gate.require))
    if gate.min_dsr is not None:
        passed.append(check_dsr(run, gate.min_dsr))
    if gate.pbo_below is not None:
        passed.append(check_pbo(store, run, gate.pbo_below))
    return passed


def check_finished(run: dict) -> str:
    info = run["info"]
    if info.get("lifecycle_stage") == "deleted":
        raise refuse(
            run, f"is deleted: restore it first (uv run scripts/tag_runs.py --run-id {info['run_id']} --restore)"
        )
    status = info.get("status")
    if status != "FINISHED":
        raise refuse(run, f"is {status}, not FINISHED: only a finished run can be promoted")
    return "status FINISHED"


def check_require(store: Store, run: dict, require: str) -> str:
    info = run["info"]
    query = search.build_query(
        store, [info["experiment_id"]], require, extra=[f"attributes.run_id = '{info['run_id']}'"], view="all"
    )
    matched = next(search.iter_runs(store, query, limit=1), None) is not None
    values = ", ".join(f"{label} = {value}" for label, value in referenced_values(run, query.refs))
    if not matched:
        raise refuse(run, f"does not satisfy --require `{require}`" + (f" ({values})" if values else ""))
    return f"`{require}`" + (f" ({values})" if values else "")


def referenced_values(run: dict, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The run's value of each key a filter names, as people read them ('(missing)' when absent)."""
    out = []
    for kind, key in refs:
        if kind == "datasets":
            continue
        value = search.sort_value(run, kind, key)
        shown = "(missing)" if value is None else fmt_num(value) if isinstance(value, float) else fmt_value(value)
        out.append((f"{'' if kind == 'attr' else kind + '.'}{key}", shown))
    return out


def metric(run: dict, key: str) -> float | None:
    value = lookups.run_metrics(run).get(key)
    return None if value is None or math.isnan(value) else value


def check_dsr(run: dict, minimum: float) -> str:
    key = "dsr" if metric(run, "dsr") is not None else "best_dsr"
    value = metric(run, key)
    if value is None:
        raise refuse(run, f"has no deflated Sharpe ratio (metric dsr, or best_dsr on a sweep's parent): {HOW_TO_GET}")
    if value < minimum:
        raise refuse(run, f"has {key} = {fmt_num(value)}, below --require-dsr {fmt_num(minimum)}")
    return f"{key} {fmt_num(value)} >= {fmt_num(minimum)}"


def check_pbo(store: Store, run: dict, below: float) -> str:
    parent_id = lookups.run_tags(run).get(PARENT_TAG)
    holder, where = run, "the run"
    if parent_id:
        try:
            holder, where = lookups.get_run(store, parent_id), f"its sweep's parent {parent_id}"
        except NotFoundError:
            raise refuse(run, f"names a parent run {parent_id} that does not exist, so it has no pbo") from None
    value = metric(holder, "pbo")
    if value is None:
        raise refuse(run, f"has no probability of backtest overfitting (metric pbo on {where}): {HOW_TO_GET}")
    if not value < below:
        raise refuse(run, f"comes from a sweep with pbo = {fmt_num(value)} ({where}), not below {fmt_num(below)}")
    return f"pbo {fmt_num(value)} < {fmt_num(below)} ({where})"
