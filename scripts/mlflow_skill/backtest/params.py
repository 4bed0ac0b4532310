"""A backtest run's params and tags: the strategy's (--params JSON, --param, --tag) and the data's
facts, checked against what MLflow accepts before any request is sent.
"""

from __future__ import annotations

import json
import re

from mlflow_skill.backtest import data as bd
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.values import parse_key_values

# What MLflow accepts in one request and one value
BATCH_METRICS = 1000  # MLflow: MAX_METRICS_PER_BATCH / MAX_ENTITIES_PER_BATCH
BATCH_PARAMS_TAGS = 100  # MLflow: MAX_PARAMS_TAGS_PER_BATCH
MAX_PARAM_VALUE = 6000  # MLflow: MAX_PARAM_VAL_LENGTH
MAX_TAG_VALUE = 8000  # MLflow: MAX_TAG_VAL_LENGTH
MAX_KEY = 250  # MLflow: MAX_ENTITY_KEY_LENGTH
KEY_RE = re.compile(r"^[/\w.\- :]*$")  # MLflow's valid param/metric/tag names


def collect_params(args, inputs: bd.Inputs, ppy: float, qs_version: str) -> tuple[dict[str, str], dict[str, str]]:
    """Strategy params (--params JSON, --param) + data facts; tags. Validated before any request."""
    params = strategy_params(args)
    facts = data_facts(args, inputs, ppy, qs_version)
    clash = sorted(set(params) & set(facts))
    if clash:
        raise UsageError(f"param {clash[0]!r} is reserved for the data's facts: rename it")
    params.update(facts)
    tags = parse_key_values(args.tag, "--tag")
    check_keys(params, tags)
    return params, tags


def strategy_params(args) -> dict[str, str]:
    """--params JSON (non-string values kept as JSON text) and then --param K=V."""
    params: dict[str, str] = {}
    if args.params:
        try:
            loaded = json.loads(args.params)
        except ValueError as exc:
            raise UsageError(
                f"--params is not valid JSON ({exc.msg} at character {exc.pos}): pass an object like '{{\"fast\": 20}}'"
            ) from None
        if not isinstance(loaded, dict):
            raise UsageError("--params must be a JSON object like '{\"fast\": 20}'")
        for key, value in loaded.items():
            params[str(key)] = value if isinstance(value, str) else json.dumps(value)
    params.update(parse_key_values(args.param, "--param"))
    return params


def data_facts(args, inputs: bd.Inputs, ppy: float, qs_version: str) -> dict[str, str]:
    """The data.* params: what was read, how, and the settings the metrics used."""
    returns = inputs.returns
    facts = {
        "data.file": inputs.file.name,
        "data.sha256": bd.sha256(inputs.file),
        "data.column": inputs.column,
        "data.kind": "prices" if args.prices else "returns",
        "data.start": returns.index[0].isoformat(),
        "data.end": returns.index[-1].isoformat(),
        "data.periods": str(len(returns)),
        "data.periods_per_year": f"{ppy:g}",
        "data.risk_free": f"{args.risk_free:g}",
        "quantstats_version": qs_version,
    }
    if inputs.benchmark is not None:
        if inputs.benchmark_file is not None:
            facts["data.benchmark_file"] = inputs.benchmark_file.name
            facts["data.benchmark_sha256"] = bd.sha256(inputs.benchmark_file)
        facts["data.benchmark_column"] = inputs.benchmark_column
    return facts


def check_keys(params: dict[str, str], tags: dict[str, str]) -> None:
    """Every key valid for MLflow, every value within its length, and not too many of either."""
    for kind, items, limit in (("param", params, MAX_PARAM_VALUE), ("tag", tags, MAX_TAG_VALUE)):
        for key, value in items.items():
            if len(key) > MAX_KEY or not KEY_RE.match(key) or _path_not_unique(key):
                raise UsageError(
                    f"{kind} key {key!r} is not a valid MLflow key: "
                    f"use letters, digits, _ - . / : and spaces (max {MAX_KEY} chars)"
                )
            if len(str(value)) > limit:
                raise UsageError(f"{kind} {key!r} is {len(str(value))} characters long; MLflow allows {limit}")
    if len(params) > 2 * BATCH_PARAMS_TAGS or len(tags) > 2 * BATCH_PARAMS_TAGS - 10:
        raise UsageError(
            f"too many params/tags ({len(params)}/{len(tags)}): at most 200 each; "
            "put the rest in --params of fewer keys"
        )


def _path_not_unique(name: str) -> bool:
    """MLflow refuses keys that are not a normalised relative path (`a/../b`, `./a`, `/a`)."""
    import posixpath

    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith(("..", "/"))
