"""The model registry, read-only, for query_experiments.py: `models` (registered models with their
latest versions, aliases, legacy stages, tags), `model NAME` (its versions with their source runs,
or one version in full), and `resolve_run_ref`, which lets any command that takes a run id take
`models:/NAME@alias` or `models:/NAME/VERSION` instead.

Everything goes through MLflow's REST API (registered-models/search|get|alias, model-versions/
search|get|get-download-uri), so it works on HTTP servers, on the embedded store, and for users
with READ permission only.
"""

from __future__ import annotations

import difflib
import shlex
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import Table, View
from mlflow_skill.core.errors import AuthError, NotFoundError, ServerError, UsageError
from mlflow_skill.core.formatting import (
    fmt_num,
    fmt_value,
    iso_time,
    json_safe,
    truncate,
)
from mlflow_skill.runs.targets import MODEL_URI, PROG, ModelRunId
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

RM = f"{lookups.API}/registered-models"
MV = f"{lookups.API}/model-versions"
PROMPT_TAG = "mlflow.prompt.is_prompt"  # MLflow 3 keeps prompts in the registry: hidden like MlflowClient does
NO_STAGE = ("", "None", None)
NAME_SCAN_LIMIT = 2_000  # registered-model names read to suggest close ones


# =============================================================================================
# Fetching
# =============================================================================================
def with_prompt_filter(filter_text: str | None) -> str:
    """The user's filter, plus MlflowClient's own clause that leaves prompts out."""
    text = (filter_text or "").strip()
    if PROMPT_TAG in text:
        return text
    clause = f"tag.`{PROMPT_TAG}` != 'true'"
    return f"{text} AND {clause}" if text else clause


def model_names(store: Store, limit: int = NAME_SCAN_LIMIT) -> list[str]:
    body = {"filter": with_prompt_filter(None)}
    return [
        m["name"] for m in lookups.paged(store, f"{RM}/search", body, "registered_models", limit, 1000, method="GET")
    ]


def close_hint(wanted: str, known: list[str], what: str) -> str:
    """'; did you mean 'a', 'b'?' from the known names, or the list when it is short."""
    close = difflib.get_close_matches(wanted, known, n=3, cutoff=0.5)
    close += [k for k in known if wanted.lower() in k.lower() and k not in close][: 3 - len(close)]
    if close:
        return f"; did you mean {', '.join(repr(k) for k in close)}?"
    if known and len(known) <= 8:
        return f"; {what}: {', '.join(repr(k) for k in known)}"
    return f"; none close among {len(known)} {what}" if known else f"; there are no {what}"


def get_model(store: Store, name: str) -> dict:
    """A registered model (with aliases and latest versions); unknown names get close ones."""
    name = name.strip()
    if not name:
        raise UsageError("empty model name: pass NAME (list them: " + f"{PROG} models)")
    try:
        return store.get(f"{RM}/get", {"name": name}, what=f"model {name!r}", expect="registered_model")[
            "registered_model"
        ]
    except NotFoundError:
        hint = close_hint(name, model_names(store), "registered models")
        raise NotFoundError(f"no registered model named {name!r}{hint} (list them: {PROG} models)") from None


def alias_map(model: dict) -> dict[str, str]:
    """alias -> version."""
    return {a["alias"]: str(a["version"]) for a in model.get("aliases", []) or []}


def aliases_by_version(model: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, version in sorted(alias_map(model).items()):
        out.setdefault(version, []).append(alias)
    return out


def version_numbers(store: Store, name: str, limit: int = 200) -> list[str]:
    body = {"filter": f"name = {quote_value(name)}", "order_by": ["version_number DESC"]}
    return [
        v["version"] for v in lookups.paged(store, f"{MV}/search", body, "model_versions", limit, limit, method="GET")
    ]


def get_version(store: Store, model: dict, version: str) -> dict:
    name = model["name"]
    version = str(version).strip()
    if not version.isdigit():
        raise UsageError(f"version {version!r} is not a number: pass --version 3 (or --alias NAME)")
    try:
        mv = store.get(
            f"{MV}/get",
            {"name": name, "version": version},
            what=f"model {name!r} version {version}",
            expect="model_version",
        )
    except NotFoundError:
        known = version_numbers(store, name)
        have = (
            f"; versions: {', '.join(known[:20])}" + (" …" if len(known) > 20 else "")
            if known
            else "; it has no versions"
        )
        raise NotFoundError(f"model {name!r} has no version {version} (deleted, or never created){have}") from None
    return mv["model_version"]


def get_by_alias(store: Store, model: dict, alias: str) -> dict:
    name = model["name"]
    alias = alias.strip()
    known = alias_map(model)
    if alias not in known:  # the server answers an unknown alias with 400, not 404: check first
        hint = close_hint(alias, sorted(known), "aliases")
        raise NotFoundError(f"model {name!r} has no alias {alias!r}{hint} (see them: {PROG} model {shlex.quote(name)})")
    answer = store.get(
        f"{RM}/alias", {"name": name, "alias": alias}, what=f"alias {alias!r} of {name!r}", expect="model_version"
    )
    return answer["model_version"]


def stage_version(store: Store, model: dict, stage: str) -> dict:
    """The latest version in a legacy stage (models:/NAME/Production), or the newest (latest)."""
    latest = model.get("latest_versions", []) or []
    if stage.lower() == "latest":
        pool = latest
    else:
        pool = [v for v in latest if str(v.get("current_stage", "")).lower() == stage.lower()]
    if not pool:
        stages = sorted({v.get("current_stage") for v in latest if v.get("current_stage") not in NO_STAGE})
        have = (
            f"stages in use: {', '.join(stages)}" if stages else "no version is in a stage (MLflow 2.9+ uses aliases)"
        )
        raise NotFoundError(f"model {model['name']!r} has no version in stage {stage!r}; {have}")
    return max(pool, key=lambda v: int(v["version"]))


def parse_model_uri(ref: str) -> tuple[str, str, str] | None:
    """'models:/m@champion' -> ('m', 'alias', 'champion'); 'models:/m/3' -> ('m', 'version', '3');
    'models:/m/Production' -> ('m', 'stage', 'Production'); anything else -> None."""
    ref = ref.strip()
    if not ref.startswith(MODEL_URI):
        return None
    rest = ref[len(MODEL_URI) :].strip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias and "/" not in alias:
            return name, "alias", alias
    elif "/" in rest:
        name, _, tail = rest.rpartition("/")
        if name and tail:
            return name, ("version" if tail.isdigit() else "stage"), tail
    raise UsageError(f"cannot read {ref!r}: write models:/NAME@ALIAS or models:/NAME/VERSION")


def resolve_version(store: Store, name: str, kind: str, value: str) -> tuple[dict, dict]:
    """(registered model, model version) for an alias, a version number or a stage."""
    model = get_model(store, name)
    if kind == "alias":
        return model, get_by_alias(store, model, value)
    if kind == "version":
        return model, get_version(store, model, value)
    return model, stage_version(store, model, value)


def resolve_run_ref(store: Store, ref: str) -> str:
    """A run id, or the source run of the version a models:/ URI names."""
    parsed = parse_model_uri(ref)
    if parsed is None:
        return ref.strip()
    _, mv = resolve_version(store, *parsed)
    if not mv.get("run_id"):
        raise NotFoundError(
            f"{ref} is version {mv['version']} of {mv['name']!r}, which has no source run (registered from "
            f"{mv.get('source') or 'an unknown source'}): nothing to read as a run"
        )
    name, kind, value = parsed
    named = f"{name}@{value} v{mv['version']}" if kind == "alias" else f"{name} v{mv['version']}"
    if kind == "stage":
        named += f" ({value})"
    return ModelRunId(mv["run_id"], named)


def quote_value(text: str) -> str:
    if "'" in text:
        raise UsageError(f"model name {text!r} contains a single quote, which MLflow's registry filter cannot express")
    return f"'{text}'"


def maybe_run(store: Store, run_id: str | None) -> dict | None:
    """A version's source run, or None when it has none or it is gone."""
    if not run_id:
        return None
    try:
        return store.get(f"{lookups.API}/runs/get", {"run_id": run_id}, expect="run")["run"]
    except (NotFoundError, AuthError):  # gone, or in an experiment this user may not read
        return None


# =============================================================================================
# Shaping
# =============================================================================================
def stage_of(mv: dict) -> str | None:
    stage = mv.get("current_stage")
    return None if stage in NO_STAGE else stage


def model_record(model: dict) -> dict:
    latest = sorted(model.get("latest_versions", []) or [], key=lambda v: -int(v["version"]))
    tags = lookups.kv(model.get("tags"))
    return {
        "name": model["name"],
        "latest_version": latest[0]["version"] if latest else None,
        "latest_versions": [
            {"version": v["version"], "stage": stage_of(v), "status": v.get("status"), "run_id": v.get("run_id")}
            for v in latest
        ],
        "aliases": alias_map(model),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        "description": model.get("description") or None,
        "created": iso_time(model.get("creation_timestamp")),
        "last_updated": iso_time(model.get("last_updated_timestamp")),
    }


def version_record(mv: dict, aliases: list[str], run: dict | None, metric_keys: list[str] | None) -> dict:
    metrics = lookups.run_metrics(run) if run else {}
    if metric_keys is not None:
        metrics = {k: metrics[k] for k in metric_keys if k in metrics}
    return {
        "name": mv.get("name"),
        "version": mv["version"],
        "aliases": aliases,
        "stage": stage_of(mv),
        "status": mv.get("status"),
        "run_id": mv.get("run_id") or None,
        "run_name": lookups.run_name(run) if run else None,
        "run_found": run is not None if mv.get("run_id") else None,
        "metrics": json_safe(metrics),
        "source": mv.get("source"),
        "created": iso_time(mv.get("creation_timestamp")),
        "last_updated": iso_time(mv.get("last_updated_timestamp")),
        "description": mv.get("description") or None,
        "tags": lookups.kv(mv.get("tags")),
    }


def key_metrics(runs: list[dict | None], wanted: list[str] | None, cap: int = 3) -> list[str]:
    """The metrics to show per version: --metric, else those most version runs have."""
    if wanted:
        return wanted
    counts: dict[str, int] = {}
    for run in runs:
        for key in lookups.run_metrics(run) if run else {}:
            if not key.startswith("system/"):
                counts[key] = counts.get(key, 0) + 1
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]]


def when(iso: str | None) -> str:
    """'2026-11-24T05:37:40.397Z' -> '2026-11-24 05:37:40' (UTC)."""
    return (iso or "?")[:19].replace("T", " ")


def run_command(run_id: str) -> str:
    return f"{PROG} run {run_id}"


# =============================================================================================
# Commands
# =============================================================================================
MODELS_DESCRIPTION = """Registered models (read-only): latest version, aliases (champion→v3), legacy stages where a
server still has them, tags, description, last update; paged. --filter takes MLflow's registry
grammar (name LIKE 'fraud%', tags.team = 'risk'); prompts (MLflow 3) are left out unless the
filter names tags.`mlflow.prompt.is_prompt`. --order-by: name, creation_timestamp or
last_updated_timestamp, with ASC/DESC.

Examples:
  uv run scripts/query_experiments.py models
  uv run scripts/query_experiments.py models --filter "name LIKE 'fraud%'" --order-by "last_updated_timestamp DESC"
  uv run scripts/query_experiments.py models --filter "tags.team = 'risk'" --format json"""

MODEL_DESCRIPTION = """One registered model: its versions newest first (version, aliases, stage, status, source run
and its run name, key metrics of that run, created, description), bounded by --max-results and
paged; --alias NAME or --version N shows one version in full: its run's params and metrics, the
source and artifact URIs, and the `run` command for its run. Unknown model, alias or version:
exit 3 with the close names. Anywhere a run id is taken (run, compare, returns, artifacts), models:/NAME@ALIAS or
models:/NAME/VERSION names that version's source run.

Examples:
  uv run scripts/query_experiments.py model fraud-detector
  uv run scripts/query_experiments.py model fraud-detector --alias champion
  uv run scripts/query_experiments.py model fraud-detector --version 3 --format json
  uv run scripts/query_experiments.py compare models:/fraud-detector@champion models:/fraud-detector@challenger"""


def cmd_models(ctx: Context) -> int:
    args = ctx.args
    if not 1 <= args.max_results <= 1000:
        raise UsageError("--max-results must be between 1 and 1000 (the server's maximum)")
    params: dict[str, Any] = {"filter": with_prompt_filter(args.filter), "max_results": args.max_results}
    if args.order_by:
        params["order_by"] = args.order_by
    if args.page_token:
        params["page_token"] = args.page_token
    answer = ctx.store.get(f"{RM}/search", params, what="registered models")
    records = [model_record(m) for m in answer.get("registered_models", []) or []]
    token = answer.get("next_page_token") or None
    ctx.emit(models_view(ctx, records, args.filter, token))
    return 0


def models_view(ctx: Context, records: list[dict], filter_text: str | None, token: str | None) -> View:
    has_stages = any(v["stage"] for r in records for v in r["latest_versions"])
    headers = ["model", "latest", "aliases", *(["stages"] if has_stages else []), "tags", "description", "last update"]
    rows, raw = [], []
    for r in records:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(r["aliases"].items()))
        stages = ", ".join(f"{v['stage']}: v{v['version']}" for v in r["latest_versions"] if v["stage"])
        tags = ", ".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))
        latest = f"v{r['latest_version']}" if r["latest_version"] else "(no versions)"
        rows.append(
            [
                truncate(r["name"], 40),
                latest,
                truncate(aliases, 50),
                *([stages] if has_stages else []),
                truncate(tags, 50),
                truncate(r["description"] or "", 40),
                when(r["last_updated"]),
            ]
        )
        raw.append(
            [
                r["name"],
                r["latest_version"],
                aliases,
                *([stages] if has_stages else []),
                tags,
                r["description"] or "",
                r["last_updated"],
            ]
        )
    where = f" matching `{filter_text}`" if filter_text else ""
    lines = [f"{len(records)} registered model{'s' if len(records) != 1 else ''}{where}", ""]
    after = []
    if records:
        first = records[0]["name"]
        after.append(f"\nversions, aliases and source runs of one model: `{PROG} model {shlex.quote(first)}`")
    return View(
        data={"filter": filter_text, "models": records},
        lines=lines,
        table=Table(headers, rows, raw),
        after=after,
        next_command=ctx.next_page(token),
        next_token=token,
        more_label="more models exist",
        empty="no registered models" + (" match the filter" if filter_text else " in this store"),
    )


def cmd_model(ctx: Context) -> int:
    args = ctx.args
    if args.alias and args.version:
        raise UsageError("pass --alias or --version, not both")
    metrics = [m.strip() for m in ",".join(args.metric or []).split(",") if m.strip()] or None
    if args.alias or args.version:
        model, mv = resolve_version(
            ctx.store, args.name, "alias" if args.alias else "version", args.alias or args.version
        )
        ctx.emit(one_version_view(ctx, model, mv, metrics))
        return 0
    if not 1 <= args.max_results <= 200:
        raise UsageError("--max-results must be between 1 and 200")
    model = get_model(ctx.store, args.name)
    params: dict[str, Any] = {
        "filter": f"name = {quote_value(model['name'])}",
        "order_by": ["version_number DESC"],
        "max_results": args.max_results,
    }
    if args.page_token:
        params["page_token"] = args.page_token
    answer = ctx.store.get(f"{MV}/search", params, what=f"versions of {model['name']!r}")
    versions = answer.get("model_versions", []) or []
    runs = {v["run_id"]: maybe_run(ctx.store, v.get("run_id")) for v in versions if v.get("run_id")}
    keys = key_metrics(list(runs.values()), metrics)
    by_version = aliases_by_version(model)
    records = [
        version_record(v, by_version.get(str(v["version"]), []), runs.get(v.get("run_id")), keys) for v in versions
    ]
    token = answer.get("next_page_token") or None
    ctx.emit(versions_view(ctx, model, records, keys, token))
    return 0


def versions_view(ctx: Context, model: dict, records: list[dict], keys: list[str], token: str | None) -> View:
    info = model_record(model)
    has_stage = any(r["stage"] for r in records)
    headers = [
        "version",
        "aliases",
        *(["stage"] if has_stage else []),
        "status",
        "run",
        "run id",
        *keys,
        "created",
        "description",
    ]
    rows, raw = [], []
    for r in records:
        run_label = r["run_name"] or ("(run not found or not readable)" if r["run_found"] is False else "")
        cells = [
            f"v{r['version']}",
            ", ".join(r["aliases"]),
            *([r["stage"] or ""] if has_stage else []),
            r["status"] or "",
            truncate(run_label, 30),
            r["run_id"] or "",
        ]
        rows.append(
            [
                *cells,
                *[fmt_num(r["metrics"].get(k)) for k in keys],
                when(r["created"])[:16],
                truncate(r["description"] or "", 40),
            ]
        )
        raw.append(
            [
                r["version"],
                " ".join(r["aliases"]),
                *([r["stage"] or ""] if has_stage else []),
                r["status"],
                r["run_name"] or "",
                r["run_id"] or "",
                *[r["metrics"].get(k) for k in keys],
                r["created"],
                r["description"] or "",
            ]
        )
    lines = [model_line(info), ""]
    after = version_hints(model, records)
    return View(
        data={"model": info, "metric_keys": keys, "versions": records},
        lines=lines,
        table=Table(headers, rows, raw),
        after=after,
        next_command=ctx.next_page(token),
        next_token=token,
        more_label="more (older) versions exist",
        empty="no versions (all deleted, or none registered yet)",
    )


def model_line(info: dict) -> str:
    parts = [f"Model **{info['name']}**"]
    if info["aliases"]:
        parts.append("aliases " + ", ".join(f"{a}→v{v}" for a, v in sorted(info["aliases"].items())))
    if info["tags"]:
        parts.append("tags " + truncate(", ".join(f"{k}={v}" for k, v in sorted(info["tags"].items())), 120))
    parts.append(f"updated {when(info['last_updated'])}")
    line = " · ".join(parts)
    if info["description"]:
        line += "\n" + truncate(info["description"], 200)
    return line


def version_hints(model: dict, records: list[dict]) -> list[str]:
    """The next steps: the run of the newest version, one version in full, champion vs challenger."""
    name = shlex.quote(model["name"])
    out = []
    newest = next((r for r in records if r["run_id"]), None)
    if newest:
        out.append(f"\nrun of v{newest['version']}: `{run_command(newest['run_id'])}`")
    aliases = sorted(alias_map(model), key=lambda a: (a != "champion", a))  # champion first: "champion vs challenger"
    if aliases:
        out.append(f"one version in full: `{PROG} model {name} --alias {shlex.quote(aliases[0])}` (or --version N)")
    else:
        out.append(f"one version in full: `{PROG} model {name} --version N`")
    if len(aliases) >= 2:
        refs = " ".join(shlex.quote(f"models:/{model['name']}@{a}") for a in aliases[:2])
        out.append(f"compare two versions' runs: `{PROG} compare {refs}`")
    return out


def one_version_view(ctx: Context, model: dict, mv: dict, metrics: list[str] | None) -> View:
    run = maybe_run(ctx.store, mv.get("run_id"))
    aliases = aliases_by_version(model).get(str(mv["version"]), [])
    record = version_record(mv, aliases, run, metrics)
    record["params"] = lookups.run_params(run) if run else {}
    record["run_status"] = run["info"].get("status") if run else None
    record["experiment_id"] = run["info"].get("experiment_id") if run else None
    record["artifact_uri"] = download_uri(ctx.store, mv)
    record["model"] = model_record(model)
    lines = [
        f"Model **{mv['name']}** version **{mv['version']}**"
        + (f" ({', '.join('@' + a for a in aliases)})" if aliases else "")
        + (f" · stage {record['stage']}" if record["stage"] else "")
        + f" · {record['status']}"
    ]
    lines.append(f"created {when(record['created'])} · updated {when(record['last_updated'])}")
    if record["description"]:
        lines.append("description: " + truncate(record["description"], 300))
    lines.append(f"source: {record['source'] or '?'}")
    if record["artifact_uri"] and record["artifact_uri"] != record["source"]:
        lines.append(f"artifacts: {record['artifact_uri']}")
    if record["tags"]:
        lines.append("version tags: " + "; ".join(f"{k}={truncate(v, 60)}" for k, v in sorted(record["tags"].items())))
    lines += run_lines(mv, run, record)
    return View(data=record, lines=lines)


def run_lines(mv: dict, run: dict | None, record: dict) -> list[str]:
    if not mv.get("run_id"):
        return ["source run: none (registered without a run)"]
    if run is None:
        return [f"source run: {mv['run_id']} (not found: deleted for good, or in an experiment you may not read)"]
    out = [
        f"source run: **{record['run_name'] or '(no name)'}** ({mv['run_id']}) · {record['run_status']} · experiment "
        f"{record['experiment_id']}"
    ]
    params = record["params"]
    out.append(
        "params: " + ("; ".join(f"{k}={fmt_value(v, 60)}" for k, v in sorted(params.items())) if params else "none")
    )
    metrics = record["metrics"]
    out.append(
        "metrics: "
        + (
            "; ".join(f"{k}={fmt_num(v) if v is not None else 'NaN'}" for k, v in sorted(metrics.items()))
            if metrics
            else "none"
        )
    )
    out.append(f"\nthe run in full: `{run_command(mv['run_id'])}`")
    return out


def download_uri(store: Store, mv: dict) -> str | None:
    """Where the version's files are (MLflow resolves models:/ and runs:/ sources)."""
    try:
        answer = store.get(
            f"{MV}/get-download-uri", {"name": mv["name"], "version": mv["version"]}, what="the download URI"
        )
    except (NotFoundError, UsageError, AuthError, ServerError):
        return None
    return answer.get("artifact_uri")
