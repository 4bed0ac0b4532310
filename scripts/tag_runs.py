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
"""Tag runs, write their note, or soft-delete and restore them: by id, or every run a filter selects.

Usage:
  uv run scripts/tag_runs.py (RUN_ID ... | --run-id ID ... | --experiment NAME [--filter "..."])
                             [--set KEY=VALUE ...] [--unset KEY ...] [--note TEXT]
                             [--delete | --restore] [--yes]

Runs: ids (positional or --run-id, repeatable), or --experiment NAME (repeatable) with --filter in
query_experiments.py's grammar (MLflow's, plus OR, numeric params and IN). The runs that would
change are counted before anything is written; more than 20 need --yes.

Changes: --set KEY=VALUE (repeatable), --unset KEY (repeatable), --note TEXT (the run's
description in the MLflow UI, tag mlflow.note.content), --delete / --restore (soft: MLflow keeps a
deleted run until its garbage collector runs; --restore brings it back).

Every write looks first: what already is as asked is reported "already so" and not sent, so the
same command twice writes once. The answer lists each change (before -> after) and the exact
command that undoes it; changed runs get the tag mlflow_skill.audit (this script, when, which
keys). In read-only mode (MLFLOW_SKILL_READ_ONLY=1) nothing is sent and the exit code is 8.

Examples:
  uv run scripts/tag_runs.py --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --set reviewed=yes
  uv run scripts/tag_runs.py --experiment btc-momentum --filter "metrics.sharpe > 1.5" --set shortlist=yes
  uv run scripts/tag_runs.py 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --note "Overfit: the edge is gone after 2023"
  uv run scripts/tag_runs.py --experiment btc-momentum --filter "attributes.status = 'FAILED'" --delete --yes
  uv run scripts/tag_runs.py --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --unset shortlist --restore
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, add_run_ids, make_parser, run_main

SCRIPT = "tag_runs.py"


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    add_run_ids(parser, many=True, help_text="run ids to change")
    parser.add_argument(
        "--experiment", "-e", action="append", metavar="NAME_OR_ID", help="select runs of this experiment; repeatable"
    )
    parser.add_argument("--filter", "-f", help="with --experiment: MLflow's run filter, plus OR and numeric params")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="set a tag; repeatable")
    parser.add_argument("--unset", action="append", metavar="KEY", help="delete a tag; repeatable")
    parser.add_argument("--note", metavar="TEXT", help="the run's note (description), tag mlflow.note.content")
    lifecycle = parser.add_mutually_exclusive_group()
    lifecycle.add_argument("--delete", action="store_true", help="soft-delete the runs (--restore brings them back)")
    lifecycle.add_argument("--restore", action="store_true", help="restore soft-deleted runs")
    parser.add_argument("--yes", action="store_true", help="confirm a change to more than 20 runs")
    return parser


def command(ctx: Context) -> int:
    from mlflow_skill.writes.runtags import cmd_tag_runs

    return cmd_tag_runs(ctx)


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
