"""The cheap reads a follow repeats: each poll asks for the runs' status and latest metrics (one
runs/get, or one runs/search for several runs or a sweep's children), then only the points logged
after the last one read (get-history-bulk-interval from the last step seen, every run that moved
in one request per metric), through a store that spaces its requests so a follow never sends
more than one a second per run it follows."""

from __future__ import annotations

import time
from typing import Any

from mlflow_skill.core.errors import NotFoundError
from mlflow_skill.history import load
from mlflow_skill.history.series import STEP_MIN, Point, sorted_points
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import API, Store

SEARCH_RUNS = f"{API}/runs/search"
PARENT_TAG = "mlflow.parentRunId"


class PacedStore:
    """The store, with its requests spaced at least 1/runs seconds apart, and counted."""

    def __init__(self, store: Store, runs: int = 1):
        self.store = store
        self.settings = store.settings
        self.requests = 0
        self.gap_s = 1.0 / max(1, runs)
        self._next = 0.0

    def __getattr__(self, name: str) -> Any:  # the rest of the Store's interface, as it is
        return getattr(self.store, name)

    def pace(self, runs: int) -> None:
        self.gap_s = 1.0 / max(1, runs)

    def _wait(self) -> None:
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = time.monotonic() + self.gap_s
        self.requests += 1

    def get(self, path: str, params: dict | None = None, what: str = "", expect: str | None = None) -> dict:
        self._wait()
        return self.store.get(path, params, what, expect)

    def post(self, path: str, body: dict | None = None, what: str = "", expect: str | None = None) -> dict:
        self._wait()
        return self.store.post(path, body, what, expect)


def get_run(store: Store | PacedStore, run_id: str) -> dict:
    return store.get(f"{API}/runs/get", {"run_id": run_id}, expect="run")["run"]


def search(store: Store | PacedStore, experiment_ids: list[str], filter_string: str) -> list[dict]:
    body = {"experiment_ids": experiment_ids, "filter": filter_string, "run_view_type": "ALL"}
    return list(lookups.paged(store, SEARCH_RUNS, body, "runs"))  # type: ignore[arg-type]


def children(store: Store | PacedStore, parent: dict, limit: int | None = None) -> list[dict]:
    """A sweep's children: the runs whose mlflow.parentRunId tag names the parent."""
    info = parent["info"]
    body = {
        "experiment_ids": [info["experiment_id"]],
        "filter": f"tags.{PARENT_TAG} = '{info['run_id']}'",
        "run_view_type": "ALL",
    }
    return list(lookups.paged(store, SEARCH_RUNS, body, "runs", limit=limit))  # type: ignore[arg-type]


def several(store: Store | PacedStore, run_ids: list[str], experiment_ids: list[str]) -> list[dict]:
    """Several runs in one search (run_id IN is the one attribute list MLflow's filter takes)."""
    ids = ", ".join(f"'{r}'" for r in run_ids)
    return search(store, sorted(set(experiment_ids)), f"attributes.run_id IN ({ids})")


def latest(run: dict) -> dict[str, tuple[int, int, Any]]:
    """{metric: (step, timestamp, value)} of the run's latest points, as runs/get and search give them."""
    return {
        m["key"]: (int(m.get("step", 0) or 0), int(m.get("timestamp", 0) or 0), m.get("value"))
        for m in run.get("data", {}).get("metrics", []) or []
    }


def batches(cursors: dict[str, tuple[int, int] | None], ends: dict[str, int]) -> list[tuple[int, int, list[str]]]:
    """Runs grouped into requests (start step, end step, run ids): a run joins a group when the
    steps it would read again (from the group's start to its own cursor) are no more than its
    new ones, so batching never reads much more than twice what changed; at most 100 a group."""
    order = sorted(cursors, key=lambda r: cursors[r][0] if cursors[r] else STEP_MIN)
    groups: list[tuple[int, int, list[str]]] = []
    for run_id in order:
        first = cursors[run_id][0] if cursors[run_id] else STEP_MIN
        if groups:
            start, end, ids = groups[-1]
            if len(ids) < load.MAX_RUNS_PER_CALL and first - start <= max(1, ends[run_id] - first):
                groups[-1] = (start, max(end, ends[run_id]), [*ids, run_id])
                continue
        groups.append((first, ends[run_id], [run_id]))
    return groups


def read_after(
    store: PacedStore, key: str, cursors: dict[str, tuple[int, int] | None], ends: dict[str, int]
) -> dict[str, list[Point]]:
    """The points of `key` after each run's cursor (step, timestamp) up to its latest step, in
    get-history-bulk-interval requests for groups of runs (batches); a run whose answer was the
    server's sample (2,500 points) is read again alone, whole."""
    got: dict[str, list[Point]] = {r: [] for r in cursors}
    try:
        for start, end, run_ids in batches(cursors, ends):
            params = {
                "run_ids": run_ids,
                "metric_key": key,
                "max_results": load.SAMPLE_SIZE,
                "start_step": start,
                "end_step": end,
            }
            for m in store.get(load.BULK_INTERVAL, params, what=f"metric {key}").get("metrics", []) or []:
                got.setdefault(m.get("run_id", run_ids[0]), []).append(load.parse_point(m))
    except NotFoundError:  # a server without the sampling endpoint: its pages, whole (costly, rare)
        got = {r: load.fetch_all(store, r, key, None) for r in cursors}  # type: ignore[arg-type]
    out = {}
    for run_id, cursor in cursors.items():
        points = got.get(run_id, [])
        if len(points) >= load.SAMPLE_SIZE:  # the sample keeps the first row: no window from STEP_MIN to split
            first = cursor[0] if cursor else min(p[0] for p in points)
            points = read_whole(store, run_id, key, (first, max(ends[run_id], *(p[0] for p in points))))
        out[run_id] = [p for p in sorted_points(points) if cursor is None or (p[0], p[1]) > cursor]
    return out


def read_whole(store: PacedStore, run_id: str, key: str, window: tuple[int, int]) -> list[Point]:
    try:
        return load.read_window(store, run_id, key, window)  # type: ignore[arg-type]
    except load.Unsplittable:
        return load.fetch_all(store, run_id, key, window)  # type: ignore[arg-type]
