# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7,<3.19",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = false  # a first call compiles only what it imports, or borrows it (store/embedded.py)
# ///
# Dependencies: MLflow's client and tracking store without its ML stack (mlflow-skinny plus the
# database and server-handler packages full `mlflow` adds for the embedded sqlite store). Not
# compiled at install: compiling all of it took most of each script's first call, six times over;
# see store/transport.py bytecode_cache and store/embedded.py borrow_bytecode for what happens instead.
"""Create an MLflow experiment, idempotently, with a description and tags.

Usage:
  uv run scripts/create_experiment.py --name NAME [--description TEXT] [--tag K=V ...]
                                      [--artifact-location URI] [--restore] [--update]

An experiment that already exists and is active is reported with its id (exit 0) and left
as it is; --update sets the given description and tags on it. A deleted experiment is not
reused silently: --restore brings it back.

Examples:
  uv run scripts/create_experiment.py --name btc-momentum
  uv run scripts/create_experiment.py --name btc-momentum \\
      --description "Momentum strategies on BTC-USD, daily bars" --tag team=quant --tag asset=BTC
  uv run scripts/create_experiment.py --name old-study --restore
  doppler run -- uv run scripts/create_experiment.py --name btc-momentum --format json
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, make_parser, run_main
from mlflow_skill.cli.view import View
from mlflow_skill.core.errors import EXIT_OK
from mlflow_skill.core.formatting import truncate
from mlflow_skill.core.values import parse_key_values
from mlflow_skill.store import lookups
from mlflow_skill.writes.common import refuse_if_read_only

SCRIPT = "create_experiment.py"


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    parser.add_argument("--name", required=True, help="experiment name (a path like /Users/me/x on Databricks)")
    parser.add_argument("--description", help="description shown by the MLflow UI (tag mlflow.note.content)")
    parser.add_argument("--tag", action="append", metavar="K=V", help="experiment tag; repeatable")
    parser.add_argument("--artifact-location", help="where the runs' artifacts go (default: the server's)")
    parser.add_argument("--restore", action="store_true", help="restore the experiment if it was deleted")
    parser.add_argument("--update", action="store_true", help="set --description/--tag on an existing experiment")
    return parser


def command(ctx: Context) -> int:
    args = ctx.args
    tags = parse_key_values(args.tag, "--tag")
    refuse_if_read_only(ctx.settings, f"{SCRIPT} (experiment {args.name!r})")
    experiment, status = lookups.ensure_experiment(
        ctx.store,
        args.name,
        description=args.description,
        tags=tags,
        artifact_location=args.artifact_location,
        restore=args.restore,
        update=args.update,
    )
    unapplied = experiment.pop("_unapplied", [])
    ctx.emit(view(shape_result(ctx, experiment, status, unapplied)))
    return EXIT_OK


def shape_result(ctx: Context, experiment: dict, status: str, unapplied: list[str]) -> dict:
    tags = lookups.kv(experiment.get("tags"))
    description = tags.pop(lookups.DESCRIPTION_TAG, None)
    url = (
        f"{ctx.settings.display_uri.rstrip('/')}/#/experiments/{experiment['experiment_id']}"
        if ctx.settings.is_http
        else None
    )
    return {
        "status": status,
        "experiment_id": experiment["experiment_id"],
        "name": experiment["name"],
        "lifecycle_stage": experiment.get("lifecycle_stage"),
        "artifact_location": experiment.get("artifact_location"),
        "description": description,
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        "url": url,
        "unapplied": unapplied,
    }


def view(result: dict) -> View:
    verb = {
        "created": "Created",
        "exists": "Already exists:",
        "updated": "Updated",
        "restored": "Restored",
    }[result["status"]]
    lines = [f"{verb} experiment **{result['name']}** (id {result['experiment_id']})", ""]
    if result["description"]:
        lines.append(f"- description: {truncate(result['description'], 200)}")
    if result["tags"]:
        lines.append("- tags: " + ", ".join(f"{k}={truncate(v, 60)}" for k, v in sorted(result["tags"].items())))
    lines.append(f"- artifact location: {result['artifact_location']}")
    if result["url"]:
        lines.append(f"- link: {result['url']}")
    if result["unapplied"]:
        lines.append(
            "- not changed: "
            + ", ".join(result["unapplied"])
            + " (the stored values differ from yours; add --update to set them)"
        )
    return View(data=result, lines=lines)


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
