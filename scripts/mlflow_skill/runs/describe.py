"""One run for query_experiments.py: `run` (info, params, latest metrics, tags, datasets, parent and
children, top-level artifacts, in a few dense lines) and `artifacts` (a run's artifact listing).
"""

from __future__ import annotations

import re
import shlex

from mlflow_skill.cli.frame import Context, one_run_id
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import NotFoundError, UsageError
from mlflow_skill.core.formatting import (
    fmt_bytes,
    fmt_duration,
    fmt_num,
    fmt_value,
    iso_time,
    json_safe,
    safe_text,
    truncate,
)
from mlflow_skill.core.values import to_float
from mlflow_skill.runs import columns as rc
from mlflow_skill.runs import search as rs
from mlflow_skill.runs.targets import PROG, RunRefResolver, run_id_of
from mlflow_skill.store import lookups, objectstore
from mlflow_skill.store.transport import Store

RUN_DESCRIPTION = """Describe one run compactly: info, every param, latest metric values (with their step when
it is not 0), non-system tags
(--all-tags adds mlflow.*), datasets, parent and child runs, top-level artifacts.

Examples:
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --all-tags --format json"""

ARTIFACTS_DESCRIPTION = """A run's artifacts: path, size, is_dir; --path lists inside a folder.

Examples:
  uv run scripts/query_experiments.py artifacts 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py artifacts 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --path model"""


def cmd_run(ctx: Context, resolve_ref: RunRefResolver) -> int:
    if ctx.fmt == "csv":
        raise UsageError("`run` describes one run: use --format markdown or json")
    run = lookups.get_run(ctx.store, run_id_of(ctx, one_run_id(ctx.args), resolve_ref))
    info = run["info"]
    experiment = lookups.get_experiment(ctx.store, info["experiment_id"], deleted_ok=True)
    parent_id = lookups.run_tags(run).get("mlflow.parentRunId")
    parent = _maybe_run(ctx.store, parent_id) if parent_id else None
    children = ctx.store.post(
        rs.SEARCH_RUNS,
        {
            "experiment_ids": [info["experiment_id"]],
            "filter": f"tags.mlflow.parentRunId = '{info['run_id']}'",
            "max_results": 25,
            "order_by": ["attributes.run_name ASC"],
            "run_view_type": "ALL",
        },
    )
    artifacts = objectstore.list_run_artifacts(ctx.store, info["run_id"]).get("files", [])
    result = shape_run(run, experiment, parent, parent_id, children, artifacts, ctx.args.all_tags)
    ctx.emit(View(data=result, lines=[render_run(result)]))
    return 0


def _maybe_run(store: Store, run_id: str) -> dict | None:
    try:
        return store.get(f"{lookups.API}/runs/get", {"run_id": run_id}, expect="run")["run"]
    except NotFoundError:
        return None


def shape_run(run, experiment, parent, parent_id, children, artifacts, all_tags) -> dict:
    info = run["info"]
    tags = lookups.run_tags(run)
    shown_tags = tags if all_tags else rc.user_tags(tags)
    metrics = run.get("data", {}).get("metrics", []) or []
    datasets = []
    for entry in (run.get("inputs") or {}).get("dataset_inputs", []) or []:
        ds = entry.get("dataset", {})
        datasets.append(
            {
                "name": ds.get("name"),
                "digest": ds.get("digest"),
                "source_type": ds.get("source_type"),
                "context": lookups.kv(entry.get("tags")).get("mlflow.data.context"),
            }
        )
    start, end = info.get("start_time"), info.get("end_time")
    return {
        "run_id": info["run_id"],
        "run_name": lookups.run_name(run),
        "status": info.get("status"),
        "lifecycle_stage": info.get("lifecycle_stage"),
        "experiment": {"id": experiment["experiment_id"], "name": experiment["name"]},
        "user": info.get("user_id"),
        "start_time": iso_time(start),
        "end_time": iso_time(end),
        "duration_ms": int(end) - int(start) if start and end else None,
        "params": lookups.run_params(run),
        "metrics": {
            m["key"]: {"value": json_safe(to_float(m.get("value"))), "step": int(m.get("step", 0) or 0)}
            for m in metrics
        },
        "tags": shown_tags,
        "system_tags_hidden": 0 if all_tags else len(tags) - len(shown_tags),
        "datasets": datasets,
        "parent": {"run_id": parent_id, "run_name": lookups.run_name(parent) if parent else None}
        if parent_id
        else None,
        "children": sorted(
            ({"run_id": ch["info"]["run_id"], "run_name": lookups.run_name(ch)} for ch in children.get("runs", [])),
            key=lambda ch: (natural_key(ch["run_name"]), ch["run_id"]),
        ),
        "more_children": bool(children.get("next_page_token")),
        "artifacts": [
            {"path": a["path"], "is_dir": bool(a.get("is_dir")), "size": a.get("file_size")} for a in artifacts
        ],
        "artifact_uri": info.get("artifact_uri"),
    }


def natural_key(name: str | None) -> list:
    """'child-10' after 'child-2': digit runs compared as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name or "") if part]


def render_run(r: dict) -> str:
    """Dense on purpose: every param, metric and non-system tag, in a fraction of `mlflow runs describe`."""
    deleted = " (deleted)" if r["lifecycle_stage"] == "deleted" else ""
    took = f" · {fmt_duration(r['duration_ms'])}" if r["duration_ms"] is not None else ""
    user = f" · user {safe_text(r['user'])}" if r["user"] and r["user"] != "unknown" else ""
    lines = [
        f"**{safe_text(r['run_name'] or '(no name)')}** · {r['run_id']} · {r['status']}{deleted}{took}",
        f"experiment {safe_text(r['experiment']['name'])} ({r['experiment']['id']}) · "
        f"{(r['start_time'] or '?')[:19].replace('T', ' ')}{user}",
    ]
    if r["parent"]:
        lines.append(f"parent: {safe_text(r['parent']['run_name'] or '(not found)')} ({r['parent']['run_id']})")
    if r["children"]:
        more = " and more" if r["more_children"] else ""
        lines.append(
            f"children ({len(r['children'])}{more}): "
            + ", ".join(f"{safe_text(ch['run_name'])} ({ch['run_id']})" for ch in r["children"])
        )
    lines.append(inline("params", [f"{k}={fmt_value(v, 80)}" for k, v in sorted(r["params"].items())]))
    lines.append(metrics_line(r["metrics"]))
    hidden = f" (+{r['system_tags_hidden']} mlflow.*: --all-tags)" if r["system_tags_hidden"] else ""
    lines.append(inline("tags", [f"{k}={truncate(v, 80)}" for k, v in sorted(r["tags"].items())]) + hidden)
    if r["datasets"]:
        lines.append(inline("datasets", [dataset_label(d) for d in r["datasets"]]))
    arts = [f"{a['path']}/" if a["is_dir"] else f"{a['path']} ({fmt_bytes(a['size'])})" for a in r["artifacts"]]
    lines.append(inline("artifacts", arts[:30] + ([f"… {len(arts) - 30} more"] if len(arts) > 30 else [])))
    return "\n".join(lines)


def dataset_label(d: dict) -> str:
    """`name (context, source type, digest D)`, leaving out what the dataset does not say."""
    details = (d["context"], d["source_type"], d["digest"] and "digest " + d["digest"])
    return f"{d['name']} ({', '.join(x for x in details if x)})"


def metrics_line(metrics: dict[str, dict]) -> str:
    """Latest values; the step is named once when every metric shares it, else per metric."""
    steps = {m["step"] for m in metrics.values()}
    one_step = len(steps) == 1
    label = f"metrics (step {next(iter(steps))})" if one_step and steps != {0} else "metrics"
    return inline(
        label,
        [
            f"{k}={fmt_num(m['value']) if m['value'] is not None else 'NaN'}"
            + ("" if one_step or not m["step"] else f"@{m['step']}")
            for k, m in sorted(metrics.items())
        ],
    )


def inline(label: str, items: list[str]) -> str:
    return f"{label}: " + safe_text("; ".join(items) if items else "none")


def cmd_artifacts(ctx: Context, resolve_ref: RunRefResolver) -> int:
    args = ctx.args
    run_id = run_id_of(ctx, one_run_id(args), resolve_ref)
    params = {"run_id": run_id}
    if args.path:
        params["path"] = args.path.strip("/")
    try:
        answer = objectstore.list_run_artifacts(ctx.store, run_id, params.get("path"))  # s3:// without a proxy too
    except NotFoundError:
        lookups.get_run(ctx.store, run_id)  # an unknown run gets the standard message
        raise NotFoundError(
            f"no artifact path {args.path!r} in run {run_id}: list the top level without --path"
        ) from None
    files = answer.get("files", []) or []
    entries = [
        {
            "path": f["path"],
            "is_dir": bool(f.get("is_dir")),
            "size": None if f.get("is_dir") else int(f.get("file_size", 0) or 0),
        }
        for f in files
    ]
    entries.sort(key=lambda e: (not e["is_dir"], e["path"]))
    ctx.emit(artifacts_view(args, run_id, answer.get("root_uri"), entries))
    return 0


def artifacts_view(args, run_id: str, root_uri: str | None, entries: list[dict]) -> View:
    shown = entries[: args.max_results]
    where = f"under {args.path}/ " if args.path else ""
    after = []
    dirs = [e["path"] for e in shown if e["is_dir"]]
    if dirs:
        after.append(f"\nlook inside a folder: `{PROG} artifacts {run_id} --path {shlex.quote(dirs[0])}`")
    if len(entries) > len(shown):
        after.append(f"\n{len(entries) - len(shown)} more: raise --max-results")
    rows = [
        [
            e["path"] + ("/" if e["is_dir"] else ""),
            fmt_bytes(e["size"]) if not e["is_dir"] else "",
            "yes" if e["is_dir"] else "",
        ]
        for e in shown
    ]
    return View(
        data={"run_id": run_id, "path": args.path or "", "root_uri": root_uri, "artifacts": entries},
        lines=[f"{len(entries)} artifacts {where}of run {run_id} (root {root_uri or '?'})", ""],
        table=Table(["path", "size", "is_dir"], rows, [[e["path"], e["size"], e["is_dir"]] for e in entries]),
        after=after,
        empty="no artifacts here",
    )


# =============================================================================================
