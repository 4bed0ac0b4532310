"""Shaping loaded series for the renderers (pure: no store): one Summary per series, run labels,
and how many points each table shows."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow_skill.cli.frame import Context
from mlflow_skill.history.request import exact_command
from mlflow_skill.history.selection import shown
from mlflow_skill.history.series import Point, Series, Window
from mlflow_skill.history.summary import Summary, summarize
from mlflow_skill.store import lookups

DEFAULT_POINTS_ONE = 50
DEFAULT_POINTS_SEVERAL = 20


@dataclass
class Shaped:
    """Everything the renderers need, computed once."""

    runs: dict[str, dict]
    names: dict[str, str]  # run id -> its label in tables
    results: list[tuple[str, list[Series]]]  # (metric, the series of each run that logged it)
    summaries: list[Summary]
    series: dict[tuple[str, str], Series]  # (run_id, metric) -> Series
    limit: int  # points per table unless --full
    window: Window | None
    hidden: list[str]  # metrics left out by the default cap
    full: bool
    output: str | None  # --output: the points go to this file, not into the tables
    experiment: str = ""  # its label, for a single run

    @property
    def table_points(self) -> bool:
        return not self.output

    def series_of(self, summ: Summary) -> Series:
        return self.series[(summ.run_id, summ.metric)]

    def points_for(self, summ: Summary) -> list[Point]:
        if self.output:
            return []
        s = self.series_of(summ)
        return s.points if self.full else shown(summ, s, self.limit)


def run_labels(runs: dict[str, dict]) -> dict[str, str]:
    names = {r: lookups.run_name(run) or r[:8] for r, run in runs.items()}
    counts: dict[str, int] = {}
    for n in names.values():
        counts[n] = counts.get(n, 0) + 1
    return {r: (f"{n} ({r[:6]})" if counts[n] > 1 else n) for r, n in names.items()}


def shape(
    ctx: Context,
    runs: dict[str, dict],
    results: list[tuple[str, list[Series]]],
    window: Window | None,
    hidden: list[str],
    experiment: str = "",
) -> Shaped:
    args = ctx.args
    several = len(results) > 1 or len(runs) > 1
    limit = args.max_points or (DEFAULT_POINTS_SEVERAL if several else DEFAULT_POINTS_ONE)
    tracking_uri = getattr(args, "tracking_uri", None)
    summaries, by_key = [], {}
    for key, series_list in results:
        sampled_ids = [s.run_id for s in series_list if not s.exact]
        command = exact_command(tracking_uri, sampled_ids, key, window) if sampled_ids else None
        for s in series_list:
            summaries.append(summarize(s, lookups.run_name(runs[s.run_id]), window, command))
            by_key[(s.run_id, key)] = s
    return Shaped(
        runs, run_labels(runs), results, summaries, by_key, limit, window, hidden, args.full, args.output, experiment
    )
