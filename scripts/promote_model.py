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
"""Promote a run: register a model version from it and point an alias (champion) at it, behind a gate.

Usage:
  uv run scripts/promote_model.py --model NAME --run-id ID [--alias ALIAS] [gate]
  uv run scripts/promote_model.py --model NAME --version N --alias ALIAS [gate]
  uv run scripts/promote_model.py --model NAME --unset-alias ALIAS
  uv run scripts/promote_model.py --model NAME --version N --delete-version
  gate: [--require "FILTER"] [--require-dsr X] [--require-pbo-below X]

--run-id registers a version of NAME from the run (the model is created when missing): its
source is the run's model (an MLflow 3 logged model, or a folder holding an MLmodel file) when it
has one, else the run's artifact root; the run id is recorded on the version. A version already
registered from that run is reused, never registered twice. --alias then points the alias at it.
--version N --alias A moves an alias to an existing version; --unset-alias removes one.
--delete-version deletes a version (MLflow keeps no deleted versions; it is the undo of a
registration and refuses while an alias points at the version).

The gate runs before anything is written, and refuses with exit 8: the run must be FINISHED
(always); --require takes query_experiments.py's run filter grammar, evaluated on that run
("metrics.sharpe > 1 AND params.universe = 'btc'"); --require-dsr X needs the run's deflated
Sharpe ratio (metric dsr, or best_dsr on a sweep's parent) at least X; --require-pbo-below X
needs the sweep's probability of backtest overfitting (metric pbo on the run's parent) below X.
A run without the figure is refused with how to get it (log the variants as a sweep).

The answer shows what each alias pointed at before, and the exact commands that put it back.
Writes look first (the same command twice writes once: "already so") and are stamped with the
tag mlflow_skill.audit (this script, when, what). Read-only mode (MLFLOW_SKILL_READ_ONLY=1):
nothing is sent, exit 8.

Examples:
  uv run scripts/promote_model.py --model btc-momentum --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --alias champion
  uv run scripts/promote_model.py --model btc-momentum --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9 \\
      --alias champion --require "metrics.sharpe > 1" --require-dsr 0.95 --require-pbo-below 0.5
  uv run scripts/promote_model.py --model btc-momentum --version 2 --alias champion
  uv run scripts/promote_model.py --model btc-momentum --unset-alias challenger
  uv run scripts/promote_model.py --model btc-momentum --version 4 --delete-version
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, make_parser, run_main

SCRIPT = "promote_model.py"


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    parser.add_argument("--model", "-m", required=True, metavar="NAME", help="registered model name")
    parser.add_argument("--run-id", metavar="ID", help="register a version from this run (or find the one it has)")
    parser.add_argument("--version", "-v", metavar="N", help="an existing version (with --alias or --delete-version)")
    parser.add_argument("--alias", "-a", metavar="ALIAS", help="point this alias (e.g. champion) at the version")
    parser.add_argument("--unset-alias", metavar="ALIAS", help="remove this alias from the model")
    parser.add_argument("--delete-version", action="store_true", help="delete --version N (the undo of registering)")
    gate = parser.add_argument_group("gate (checked on the run before anything is written; refusal: exit 8)")
    gate.add_argument("--require", metavar="FILTER", help='run filter the run must match, e.g. "metrics.sharpe > 1"')
    gate.add_argument("--require-dsr", type=float, metavar="X", help="deflated Sharpe ratio (dsr/best_dsr) at least X")
    gate.add_argument(
        "--require-pbo-below", type=float, metavar="X", help="the sweep's probability of backtest overfitting below X"
    )
    return parser


def command(ctx: Context) -> int:
    from mlflow_skill.writes.promotion import cmd_promote

    return cmd_promote(ctx)


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
