"""Look-ups every script shares, over any Store: the one pager, experiments and runs by name or id,
experiment creation, run field accessors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.core.config import Settings
from mlflow_skill.core.errors import (
    ConnectionFailure,
    NotFoundError,
    ServerError,
    UsageError,
)
from mlflow_skill.core.values import to_float
from mlflow_skill.store.transport import API, Store


def paged(
    store: Store,
    path: str,
    body: dict,
    key: str,
    limit: int | None = None,
    page_size: int = 1000,
    method: str = "POST",
) -> Iterator[dict]:
    """Every item of a paged search, following next_page_token up to `limit` items. Each item is
    released as soon as it is consumed and a page is dropped before the next is requested, so at
    most one page of raw JSON is alive (export streams 20,000 runs through this). A server whose
    paging cannot end (PageGuard) stops it with exit 6."""
    body = dict(body)
    seen = 0
    guard = PageGuard(store, path)
    while True:
        body["max_results"] = min(page_size, limit - seen) if limit is not None else page_size
        page = store.post(path, body) if method == "POST" else store.get(path, body)
        token = check_page(store, path, page, key).get("next_page_token")
        items = page.pop(key, None) or []
        del page
        guard.check(items, token, body["max_results"])
        items.reverse()
        while items:
            yield items.pop()
            seen += 1
        if not token or (limit is not None and seen >= limit):
            return
        body["page_token"] = token


def check_page(store: Store, path: str, page: dict, key: str) -> dict:
    """A search answer without its list is empty only if it holds nothing else: MLflow omits empty
    lists but never answers with other keys (a health check's {"ok": true} is not "0 results").
    An empty answer is believed only from a server known to speak MLflow (Store._call checks)."""
    if key not in page and set(page) - {"next_page_token"}:
        raise ServerError(
            f"{store.settings.display_uri} ({store.settings.source}) answered {path} with JSON of another shape "
            f"(keys {', '.join(sorted(page))[:80]}): is this an MLflow tracking server? {store.settings.uri_fix}"
        )
    return page


SHORT_PAGES_TOLERATED = 3  # pages that offer more while bringing few new items
PAGE_FLOOR = 100  # fewer new items than this (or than asked) on a page that offers more is "short"
REMEMBERED = 200_000  # item ids kept to recognise repeats; past that only the previous page's


@dataclass
class PageGuard:
    """Refuses paging that cannot end: a page token seen before, a page that brings nothing new
    yet offers another, or more short pages than a real server sends (MLflow offers another page
    only after a full one). Any of these stops the command with exit 6 naming the endpoint."""

    store: Store
    path: str
    tokens: set[str] = field(default_factory=set)
    seen: set[Any] = field(default_factory=set)
    previous: set[Any] = field(default_factory=set)
    pages: int = 0
    short: int = 0

    def check(self, items: list, token: str | None, asked: int) -> None:
        self.pages += 1
        ids = {item_identity(item) for item in items}
        known = self.seen if len(self.seen) < REMEMBERED else self.previous
        new = len(ids - known)
        if len(self.seen) < REMEMBERED:
            self.seen |= ids
        self.previous = ids
        if not token:
            return
        if token in self.tokens:
            raise self.endless(f"page {self.pages} offered a page token it had offered before")
        if not new:
            raise self.endless(f"page {self.pages} brought nothing new yet offered another page")
        if new < min(asked, PAGE_FLOOR):
            self.short += 1
            if self.short > SHORT_PAGES_TOLERATED:
                raise self.endless(
                    f"{self.short} pages brought fewer than {min(asked, PAGE_FLOOR)} new items each yet offered more"
                )
        self.tokens.add(token)

    def endless(self, why: str) -> ServerError:
        settings = self.store.settings
        return ServerError(
            f"{settings.display_uri} ({settings.source}) keeps paging {self.path}: {why} ({self.pages} pages, "
            f"{len(self.seen)} distinct items); stopped, as it would never end: a proxy that rewrites page tokens, "
            f"or a server that is not MLflow? {settings.uri_fix}"
        )


def item_identity(item: Any) -> Any:
    """What makes an item of a paged answer itself: a run's id, an experiment's, a trace's, a
    model version's name and version, a metric point's fields; else its JSON."""
    if type(item) is dict:
        info = item.get("info")
        if type(info) is dict and "run_id" in info:
            return ("run", str(info["run_id"]))
        for key in ("experiment_id", "trace_id", "request_id"):
            if key in item:
                return (key, str(item[key]))
        if "name" in item:
            return ("model", str(item["name"]), str(item.get("version", "")))
        if "key" in item and "step" in item:
            return ("point", *(str(item.get(k)) for k in ("key", "step", "timestamp", "value", "run_id")))
    import json

    return json.dumps(item, sort_keys=True, default=str)


def all_experiments(store: Store, view: str = "ALL") -> list[dict]:
    return list(paged(store, f"{API}/experiments/search", {"view_type": view}, "experiments"))


def get_experiment(store: Store, name_or_id: str, deleted_ok: bool = False) -> dict:
    """An experiment by name or id; unknown ones get close names suggested. A deleted one is
    refused (exit 3, naming the restore) unless deleted_ok: read by name, it would otherwise
    answer every query with zero runs and exit 0, its deletion never mentioned."""
    ref = str(name_or_id).strip()
    if not ref:
        raise UsageError("empty experiment name: pass --experiment NAME or an id")
    found = None
    if ref.isdigit():
        try:
            found = store.get(f"{API}/experiments/get", {"experiment_id": ref}, expect="experiment")["experiment"]
        except NotFoundError:
            pass  # a name made of digits is still a name
    if found is None:
        found = _experiment_by_name(store, ref)
    if found is not None:
        if found.get("lifecycle_stage") == "deleted" and not deleted_ok:
            raise deleted_experiment(found)
        return found
    names = [e["name"] for e in all_experiments(store)]
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
    close += [n for n in names if ref.lower() in n.lower() and n not in close][: 3 - len(close)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise NotFoundError(
        f"no experiment named or numbered {ref!r}{hint} (list them: uv run scripts/query_experiments.py experiments)"
    )


def deleted_experiment(experiment: dict) -> NotFoundError:
    name = experiment.get("name", "")
    return NotFoundError(
        f"experiment {name!r} (id {experiment['experiment_id']}) is deleted, and its runs with it: restore it with "
        f"`uv run scripts/create_experiment.py --name {shlex_quote(name)} --restore`, or read its deleted runs with "
        f"`uv run scripts/query_experiments.py runs -e {shlex_quote(experiment['experiment_id'])} --view deleted`"
    )


def get_run(store: Store, run_id: str) -> dict:
    run_id = run_id.strip()
    try:
        return store.get(f"{API}/runs/get", {"run_id": run_id}, expect="run")["run"]
    except NotFoundError:
        raise NotFoundError(
            f"no run with id {run_id!r} (find ids: uv run scripts/query_experiments.py runs --experiment NAME)"
        ) from None


def kv(items: Iterable[dict] | None) -> dict[str, str]:
    """[{key, value}, ...] (MLflow's JSON for params and tags) -> {key: value}."""
    return {i["key"]: i.get("value", "") for i in items or []}


def run_metrics(run: dict) -> dict[str, float]:
    return {m["key"]: to_float(m.get("value")) for m in run.get("data", {}).get("metrics", []) or []}


def run_params(run: dict) -> dict[str, str]:
    return kv(run.get("data", {}).get("params"))


def run_tags(run: dict) -> dict[str, str]:
    return kv(run.get("data", {}).get("tags"))


def run_name(run: dict) -> str:
    info = run.get("info", {})
    return info.get("run_name") or run_tags(run).get("mlflow.runName", "")


def run_url(settings: Settings, experiment_id: str, run_id: str) -> str | None:
    if not settings.is_http:
        return None
    return f"{settings.display_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


DESCRIPTION_TAG = "mlflow.note.content"  # what the MLflow UI shows as the experiment's description


def ensure_experiment(
    store: Store,
    name: str,
    description: str | None = None,
    tags: dict[str, str] | None = None,
    artifact_location: str | None = None,
    restore: bool = False,
    update: bool = False,
) -> tuple[dict, str]:
    """Return (experiment, status) where status is created, exists, updated or restored.

    An active experiment is never changed unless update=True; a deleted one is restored only
    with restore=True, otherwise the caller gets an error that says how.
    """
    name = name.strip()
    if not name:
        raise UsageError("experiment name is empty: pass --name NAME")
    wanted_tags = dict(tags or {})
    if description is not None:
        wanted_tags[DESCRIPTION_TAG] = description
    existing = _experiment_by_name(store, name)
    status = "exists"
    if existing is None:
        body: dict[str, Any] = {"name": name, "tags": [{"key": k, "value": v} for k, v in wanted_tags.items()]}
        if artifact_location:
            body["artifact_location"] = artifact_location
        try:
            experiment_id = store.post(
                f"{API}/experiments/create", body, what="creating an experiment", expect="experiment_id"
            )["experiment_id"]
        except (UsageError, ConnectionFailure) as exc:
            # Another process may have created it between our look-up and our create, or our own
            # create reached the server and only its answer was lost: never create it twice.
            existing = _experiment_by_name(store, name)
            if existing is None:
                raise exc
            if isinstance(exc, ConnectionFailure):
                return existing, "created"
        else:
            return store.get(f"{API}/experiments/get", {"experiment_id": experiment_id}, expect="experiment")[
                "experiment"
            ], "created"
    if existing.get("lifecycle_stage") == "deleted":
        if not restore:
            raise UsageError(
                f"experiment {name!r} (id {existing['experiment_id']}) is deleted: restore it with "
                f"`uv run scripts/create_experiment.py --name {shlex_quote(name)} --restore`, or choose another name"
            )
        store.post(f"{API}/experiments/restore", {"experiment_id": existing["experiment_id"]}, what="restoring")
        status = "restored"
    current = kv(existing.get("tags"))
    changes = {k: v for k, v in wanted_tags.items() if current.get(k) != v}
    if changes and (update or status == "restored"):
        for key, value in changes.items():
            store.post(
                f"{API}/experiments/set-experiment-tag",
                {"experiment_id": existing["experiment_id"], "key": key, "value": value},
                what="setting experiment tags",
            )
        status = "updated" if status == "exists" else status
    experiment = store.get(f"{API}/experiments/get", {"experiment_id": existing["experiment_id"]}, expect="experiment")[
        "experiment"
    ]
    experiment["_unapplied"] = sorted(changes) if (changes and status == "exists") else []
    return experiment, status


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def near_experiment_names(store: Store, name: str, limit: int = 5) -> list[dict]:
    """Experiments (active or deleted) whose names are close to `name` but not equal: the same
    letters and digits ignoring case and punctuation (`cryptobt` vs `Crypto-BT`), or a small edit
    distance (at most 1 for names under 6 characters, 2 under 13, else 3). Closest first."""
    wanted = name.strip()
    squashed = _squash(wanted)
    found = []
    for exp in all_experiments(store):
        other = exp.get("name", "")
        if other == wanted:
            continue
        distance = 0 if squashed and _squash(other) == squashed else _edit_distance(wanted.lower(), other.lower())
        if distance <= (1 if len(wanted) < 6 else 2 if len(wanted) < 13 else 3):
            found.append((distance, other, exp))
    found.sort(key=lambda item: (item[0], item[1]))
    return [exp for _, _, exp in found[:limit]]


def _squash(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, stopping early above 3 (only small distances matter here)."""
    if abs(len(a) - len(b)) > 3:
        return 4
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > 3:
            return 4
        previous = current
    return previous[-1]


def _experiment_by_name(store: Store, name: str) -> dict | None:
    try:
        return store.get(f"{API}/experiments/get-by-name", {"experiment_name": name}, expect="experiment")["experiment"]
    except NotFoundError:
        return None
